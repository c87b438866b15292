// nvcc to shared object: flags, content-hash cache, timeout and bounded logs.
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "compile.hpp"

namespace fs = std::filesystem;

namespace kb {

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool is_executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// First line of a log that names an error, for the one-line message.
std::string first_error_line(const std::string& log) {
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line))
    if (line.find("error") != std::string::npos)
      return line.size() > 300 ? line.substr(0, 300) + "..." : line;
  return {};
}

std::string read_if_exists(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec))
    return {};
  try {
    return read_file(p.string());
  } catch (const Error&) {
    return {};
  }
}

// A cache entry (object or recorded failure) for res.key: fills res and returns true.
bool lookup_cache(const fs::path& cache_dir, CompileResult& res) {
  std::error_code ec;
  const fs::path so = cache_dir / (res.key + ".so");
  const fs::path fail = cache_dir / (res.key + ".fail");
  if (fs::exists(so, ec)) {
    res.ok = true;
    res.cached = true;
    res.so_path = so.string();
    res.log = read_if_exists(cache_dir / (res.key + ".log"));
    return true;
  }
  if (fs::exists(fail, ec)) {
    res.cached = true;
    res.message = read_if_exists(fail);
    res.log = read_if_exists(cache_dir / (res.key + ".log"));
    return true;
  }
  return false;
}

// Holds one cache entry's compile in this process; a second holder waits for the first.
class InFlightGuard {
public:
  explicit InFlightGuard(std::string entry) : m_entry(std::move(entry)) {
    std::unique_lock lock(mutex());
    cv().wait(lock, [&] { return !entries().count(m_entry); });
    entries().insert(m_entry);
  }
  ~InFlightGuard() {
    {
      std::lock_guard lock(mutex());
      entries().erase(m_entry);
    }
    cv().notify_all();
  }
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;

private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::condition_variable& cv() {
    static std::condition_variable c;
    return c;
  }
  static std::set<std::string>& entries() {
    static std::set<std::string> e;
    return e;
  }
  std::string m_entry;
};

} // namespace

std::string resolve_nvcc(const CompileOptions& opts) {
  if (!opts.nvcc.empty())
    return opts.nvcc;
  if (auto v = env_or_empty("KB_NVCC"); !v.empty())
    return v;
  const std::string path = env_or_empty("PATH");
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = path.find(':', start);
    const std::string dir = path.substr(start, end == std::string::npos ? end : end - start);
    if (!dir.empty() && is_executable(fs::path(dir) / "nvcc"))
      return (fs::path(dir) / "nvcc").string();
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  if (is_executable("/usr/local/cuda/bin/nvcc"))
    return "/usr/local/cuda/bin/nvcc";
  return "nvcc";
}

std::string resolve_cache_dir(const CompileOptions& opts) {
  if (!opts.cache_dir.empty())
    return opts.cache_dir;
  if (auto v = env_or_empty("KB_CACHE_DIR"); !v.empty())
    return v;
  if (auto v = env_or_empty("XDG_CACHE_HOME"); !v.empty())
    return (fs::path(v) / "kbench").string();
  if (auto v = env_or_empty("HOME"); !v.empty())
    return (fs::path(v) / ".cache" / "kbench").string();
  return (fs::temp_directory_path() / "kbench-cache").string();
}

std::string resolve_include_dir(const CompileOptions& opts) {
  if (!opts.include_dir.empty())
    return opts.include_dir;
  if (auto v = env_or_empty("KB_INCLUDE_DIR"); !v.empty())
    return v;
  return KB_ABI_INCLUDE_DIR;
}

NvccVersion nvcc_version(const std::string& nvcc) {
  static std::mutex mutex;
  static std::map<std::string, NvccVersion> cache;
  {
    std::lock_guard lock(mutex);
    if (auto it = cache.find(nvcc); it != cache.end())
      return it->second;
  }
  ProcessSpec spec;
  spec.argv = {nvcc, "--version"};
  ProcessResult r;
  try {
    r = run_process(spec, 60.0);
  } catch (const Error& e) {
    throw Error(
        fmt::format("cannot run nvcc ('{}'): {}; set KB_NVCC or put nvcc on PATH", nvcc, e.what()));
  }
  if (!r.status.exited || r.status.exit_code != 0)
    throw Error(
        fmt::format("'{} --version' failed ({}): {}", nvcc, r.status.describe(), r.err.text));
  NvccVersion v;
  static const std::regex k_release(R"(release ([0-9]+\.[0-9]+))");
  std::smatch m;
  if (std::regex_search(r.out.text, m, k_release))
    v.release = m[1].str();
  std::istringstream in(r.out.text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      v.full = line;
  if (v.release.empty())
    throw Error(fmt::format("'{} --version' printed no release number: {}", nvcc, r.out.text));
  std::lock_guard lock(mutex);
  cache[nvcc] = v;
  return v;
}

std::string default_arch() {
  return KB_BUILD_ARCHS;
}

std::vector<std::string> nvcc_flags(const CompileOptions& opts) {
  // -cudart shared: the object imports the runtime's entry points instead of carrying a static
  // runtime, which is what lets screening see every CUDA call it makes.
  // -gencode with machine code only: the object runs on the GPU it was compiled for, so no PTX is
  // embedded for later JIT; that takes about a quarter off the compile of a small kernel.
  const std::string archs = opts.arch.empty() ? default_arch() : opts.arch;
  std::vector<std::string> f = {"-shared", "-Xcompiler", "-fPIC", "-O3"};
  std::string_view rest = archs;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string arch(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (arch.empty())
      continue;
    const std::string virt = arch.rfind("sm_", 0) == 0 ? "compute_" + arch.substr(3) : arch;
    f.push_back("-gencode");
    f.push_back("arch=" + virt + ",code=" + arch);
  }
  if (f.size() == 4)
    throw Error(opts.arch.empty()
                    ? std::string("no GPU architecture to compile candidates for: this build's "
                                  "KB_CUDA_ARCHITECTURES names none by number; name one (kbench "
                                  "eval --arch sm_89)")
                    : fmt::format("no GPU architecture in '{}'", opts.arch));
  f.push_back("-cudart");
  f.push_back("shared");
  f.push_back("-I" + resolve_include_dir(opts));
  for (const auto& x : opts.extra_flags)
    f.push_back(x);
  if (opts.allow_library_calls) {
    f.push_back("-lcublas");
    f.push_back("-lcublasLt");
    f.push_back("-lcudnn");
  }
  return f;
}

CompileResult compile_candidate(std::string_view source, const CompileOptions& opts) {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  CompileResult res;
  const std::string nvcc = resolve_nvcc(opts);
  const NvccVersion version = nvcc_version(nvcc);
  const std::vector<std::string> flags = nvcc_flags(opts);
  const std::string abi_header =
      read_if_exists(fs::path(resolve_include_dir(opts)) / "kbench" / "kb_abi.h");
  if (abi_header.empty())
    throw Error(fmt::format("kbench/kb_abi.h not found under '{}' (set KB_INCLUDE_DIR)",
                            resolve_include_dir(opts)));
  std::string key_material(source);
  key_material += '\0';
  for (const auto& f : flags)
    key_material += f + '\0';
  key_material += version.full + '\0' + abi_header;
  res.key = content_hash(key_material);

  fs::path cache_dir;
  std::error_code ec;
  if (opts.use_cache) {
    cache_dir = resolve_cache_dir(opts);
    fs::create_directories(cache_dir, ec);
    if (ec)
      throw Error(fmt::format("cannot create the compile cache '{}': {}", cache_dir.string(),
                              ec.message()));
    if (lookup_cache(cache_dir, res)) {
      res.seconds = elapsed();
      return res;
    }
  }
  // Identical sources in flight in this process compile once: the others wait for that compile
  // and read its cache entry.
  std::optional<InFlightGuard> in_flight;
  if (opts.use_cache) {
    in_flight.emplace((cache_dir / res.key).string());
    if (lookup_cache(cache_dir, res)) {
      res.seconds = elapsed();
      return res;
    }
  }

  // A private directory: nvcc's temporaries and the output never collide between parallel jobs.
  const fs::path base = opts.use_cache ? cache_dir : fs::temp_directory_path();
  std::string tmpl = (base / "tmp-XXXXXX").string();
  if (!::mkdtemp(tmpl.data()))
    throw Error(fmt::format("cannot create a temporary directory in '{}': {}", base.string(),
                            std::strerror(errno)));
  const fs::path work(tmpl);
  write_file_atomic((work / "candidate.cu").string(), source);

  ProcessSpec spec;
  spec.argv.push_back(nvcc);
  for (const auto& f : flags)
    spec.argv.push_back(f);
  spec.argv.insert(spec.argv.end(), {"-o", "candidate.so", "candidate.cu"});
  spec.cwd = work.string();
  spec.env = {{"TMPDIR", work.string()}};
  spec.limits.address_space_bytes = opts.memory_limit_bytes;
  spec.limits.file_size_bytes = 1ull << 30;
  spec.output_limit_bytes = opts.log_limit_bytes / 2;
  const ProcessResult r = run_process(spec, opts.timeout_s);
  res.log = r.out.text;
  if (!r.err.text.empty())
    res.log += (res.log.empty() || res.log.back() == '\n' ? "" : "\n") + r.err.text;
  if (res.log.size() > opts.log_limit_bytes)
    res.log.resize(opts.log_limit_bytes);

  auto cleanup = [&] { fs::remove_all(work, ec); };
  if (r.timed_out) {
    res.timed_out = true;
    res.message =
        fmt::format("nvcc timed out after {:.0f} s (its process group was killed)", opts.timeout_s);
    cleanup();
  } else if (!r.status.exited || r.status.exit_code != 0 ||
             !fs::exists(work / "candidate.so", ec)) {
    const std::string first = first_error_line(res.log);
    res.message =
        fmt::format("nvcc failed ({}){}{}", r.status.describe(), first.empty() ? "" : ": ", first);
    if (opts.use_cache) {
      // Another process may have completed this entry first: either version is the same verdict.
      write_file_atomic((cache_dir / (res.key + ".log")).string(), res.log);
      write_file_atomic((cache_dir / (res.key + ".fail")).string(), res.message);
    }
    cleanup();
  } else if (opts.use_cache) {
    const fs::path so = cache_dir / (res.key + ".so");
    if (fs::exists(so, ec)) {
      // Another process completed this entry first: its object is the hit, ours is dropped.
      res.cached = true;
    } else {
      write_file_atomic((cache_dir / (res.key + ".log")).string(), res.log);
      fs::rename(work / "candidate.so", so, ec);
      if (ec && !fs::exists(so))
        throw Error(fmt::format("cannot move the compiled object into '{}': {}", so.string(),
                                ec.message()));
    }
    res.ok = true;
    res.so_path = so.string();
    cleanup();
  } else {
    res.ok = true;
    res.so_path = (work / "candidate.so").string();
  }
  res.seconds = elapsed();
  return res;
}

std::vector<CompileResult> compile_many(const std::vector<std::string>& sources,
                                        const CompileOptions& opts, int jobs) {
  std::vector<CompileResult> results(sources.size());
  std::vector<std::string> errors(sources.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < sources.size(); i = next++) {
      try {
        results[i] = compile_candidate(sources[i], opts);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  };
  const int n = std::max(1, std::min<int>(jobs, static_cast<int>(sources.size())));
  std::vector<std::thread> threads;
  for (int t = 1; t < n; ++t)
    threads.emplace_back(work);
  work();
  for (auto& t : threads)
    t.join();
  for (const auto& e : errors)
    if (!e.empty())
      throw Error(e);
  return results;
}

} // namespace kb
