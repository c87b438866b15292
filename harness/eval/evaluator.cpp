// The parent side of an evaluation: spawns the candidate worker under a watchdog, relays its
// shipped outputs to the reference process for judgement, and assembles the EvalResult. No CUDA.
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog.hpp"
#include "eval.hpp"
#include "protocol.hpp"

namespace fs = std::filesystem;

namespace kb {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// above_roofline needs the candidate faster than the floor by more than this factor.
constexpr double k_roofline_margin = 1.05;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Clock::time_point after(double s) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(s * 1e6));
}

std::string tail_of(const std::string& s, std::size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

// A private working directory for one worker, removed with it.
class TempDir {
public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kbench-eval-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      throw Error(fmt::format("cannot create a temporary directory: {}", std::strerror(errno)));
    m_path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(m_path, ec);
  }
  const std::string& path() const { return m_path; }

private:
  std::string m_path;
};

std::string describe_failure(const ChildProcess& c, const ExitStatus& st) {
  std::string msg = st.exited && st.exit_code == 0
                        ? "the worker exited without a result (exit status 0)"
                        : fmt::format("the worker died without a result ({})", st.describe());
  const std::string err = c.err().text;
  if (!err.empty())
    msg += "; stderr: " + tail_of(err, 1500);
  return msg;
}

} // namespace

std::string default_worker_path() {
  if (const char* env = std::getenv("KB_WORKER"); env && *env)
    return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = self.parent_path() / "kbench-worker";
    if (fs::exists(beside, ec))
      return beside.string();
  }
  if (fs::exists(KB_WORKER_BUILD_PATH, ec))
    return KB_WORKER_BUILD_PATH;
  throw Error("kbench-worker not found beside the kbench executable nor at " +
              std::string(KB_WORKER_BUILD_PATH) + " (set KB_WORKER)");
}

struct Evaluator::Impl {
  EvalOptions opts;
  std::string worker;
  uint64_t secret = 0;
  uint64_t evaluations = 0;
  std::unique_ptr<ChildProcess> ref;
  bool ref_ready = false;
  std::map<std::string, TimingStats> baseline_cache;

  ProcessSpec worker_spec(const std::string& mode, const std::string& cwd) const {
    ProcessSpec s;
    s.argv = {worker, mode};
    s.env = {{"CUDA_VISIBLE_DEVICES", std::to_string(opts.gpu)}};
    s.cwd = cwd;
    s.result_channel = true;
    s.output_limit_bytes = opts.output_limit_bytes;
    s.limits.no_core = true;
    return s;
  }

  void start_reference() {
    if (ref && ref->running())
      return;
    ref = std::make_unique<ChildProcess>(worker_spec("reference", ""));
    ref_ready = false;
  }

  [[noreturn]] void reference_failed(const std::string& what) {
    std::string msg = "the reference process " + what;
    if (ref) {
      ref->kill_group();
      const ExitStatus st = ref->wait(after(1.0));
      msg += fmt::format(" ({})", st.describe());
      if (!ref->err().text.empty())
        msg += "; stderr: " + tail_of(ref->err().text, 1500);
    }
    ref.reset();
    throw Error(msg);
  }

  json ref_receive(double timeout_s) {
    std::string line;
    switch (ref->receive(line, after(timeout_s))) {
    case ChildProcess::Recv::timeout:
      reference_failed(fmt::format("did not answer within {:.0f} s", timeout_s));
    case ChildProcess::Recv::closed:
      reference_failed("ended unexpectedly");
    case ChildProcess::Recv::line:
      break;
    }
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      reference_failed("sent a malformed message: " + tail_of(line, 200));
    }
    if (!j.value("ok", true))
      reference_failed("reported an error: " + j.value("error", std::string("?")));
    return j;
  }

  void await_reference() {
    if (ref_ready)
      return;
    ref_receive(opts.start_timeout_s);
    ref_ready = true;
  }

  json ref_call(const json& cmd, double timeout_s) {
    if (!ref->send(cmd.dump() + "\n"))
      reference_failed("stopped reading commands");
    return ref_receive(timeout_s);
  }

  EvalResult run(const Problem& problem, const CompileResult& cr);
};

Evaluator::Evaluator(EvalOptions opts) : m_opts(std::move(opts)), m_impl(std::make_unique<Impl>()) {
  if (m_opts.protocol != "kbench" && m_opts.protocol != "kernelbench")
    throw Error(fmt::format("unknown protocol '{}' (kbench or kernelbench)", m_opts.protocol));
  m_impl->opts = m_opts;
  m_impl->worker = m_opts.worker_path.empty() ? default_worker_path() : m_opts.worker_path;
  m_impl->secret = m_opts.secret;
  if (m_impl->secret == 0) {
    std::random_device rd;
    m_impl->secret = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  if (m_impl->opts.ceilings.gpu_name.empty())
    m_impl->opts.ceilings = datasheet_ceilings_h100();
}

Evaluator::~Evaluator() {
  if (m_impl && m_impl->ref) {
    m_impl->ref->send(json{{"cmd", "end"}}.dump() + "\n");
    m_impl->ref->close_stdin();
    m_impl->ref->wait(after(5.0));
  }
}

EvalResult Evaluator::evaluate(const Problem& problem, std::string_view source) {
  const CompileResult cr = compile_candidate(source, m_opts.compile);
  return evaluate_compiled(problem, cr);
}

EvalResult Evaluator::evaluate_compiled(const Problem& problem, const CompileResult& cr) {
  return m_impl->run(problem, cr);
}

EvalResult Evaluator::Impl::run(const Problem& problem, const CompileResult& cr) {
  EvalResult r;
  r.protocol = opts.protocol;
  r.compile_s = cr.seconds;
  r.compile_cached = cr.cached;
  r.compile_log = cr.log;
  if (!cr.ok) {
    r.outcome = Outcome::compile_error;
    r.message = cr.message;
    return r;
  }
  const ScreenReport rep = screen_object(cr.so_path, {opts.compile.allow_library_calls});
  r.library_calls = rep.library_calls;
  if (!r.library_calls.empty())
    r.flags |= flag_library_calls;
  if (opts.screen && !rep.ok) {
    r.outcome = Outcome::rejected;
    r.message = "symbol screening refused the object: " + rep.reason;
    if (rep.violations.size() > 1)
      r.message += fmt::format(" (and {} more: {})", rep.violations.size() - 1,
                               fmt::join(rep.violations.begin() + 1, rep.violations.end(), "; "));
    return r;
  }
  if (!rep.has_forward) {
    r.outcome = Outcome::load_error;
    r.message = "the object does not export kb_forward (declare it extern \"C\" with the "
                "signature of kbench/kb_abi.h)";
    return r;
  }

  const bool kernelbench = opts.protocol == "kernelbench";
  const Tolerance tol = eval::protocol_tolerance(problem, opts.protocol);
  const auto checks = eval::make_checks(problem, opts.protocol, opts.seeds, secret);
  const uint64_t timing_seed = kernelbench ? 42 : eval::mix_seed(secret, 1000 + evaluations++);
  std::vector<Distribution> own_dists;
  bool own_relative = false;
  for (const auto* list : {&problem.inputs, &problem.params})
    for (const auto& t : *list) {
      own_dists.push_back(t.dist);
      own_relative = own_relative || t.dist.kind == DistKind::ill_conditioned;
    }

  const auto t0 = Clock::now();
  TempDir dir;
  start_reference();
  ProcessSpec cspec = worker_spec("candidate", dir.path());
  cspec.limits.cpu_s = static_cast<double>(opts.cpu_limit_s);
  cspec.limits.file_size_bytes = opts.file_size_limit_bytes;
  ChildProcess cand(cspec);
  await_reference();
  const json begin = ref_call({{"cmd", "begin"}, {"problem", problem}}, opts.start_timeout_s);
  json job = {{"problem", problem},
              {"so_path", fs::absolute(cr.so_path).string()},
              {"checks", checks},
              {"timing", opts.timing},
              {"protocol", opts.protocol},
              {"timing_seed", timing_seed},
              {"mailboxes", begin.at("mailboxes")}};
  cand.send(job.dump() + "\n");

  // The candidate's budget counts only time spent waiting on it, not on the reference.
  double budget_s = opts.timeout_s;
  std::string phase = "start-up";
  auto t_ready = t0, t_timing = t0;
  std::vector<uint64_t> first_cand_sums, first_ref_sums;
  bool done = false;

  auto judge = [&](const eval::CheckSpec& c, const json& msg, const std::string& where) -> bool {
    const json v = ref_call({{"cmd", "judge"},
                             {"check", c},
                             {"input_checksums", msg.at("input_checksums")},
                             {"atol", tol.atol},
                             {"rtol", tol.rtol},
                             {"relative_k", opts.relative_k},
                             {"protocol", opts.protocol}},
                            std::max(60.0, opts.timeout_s));
    std::string reason = v.value("reason", "");
    int bad = v.value("bad_output", -1);
    std::vector<uint64_t> cand_sums, ref_sums;
    for (const auto& o : v.at("outputs")) {
      cand_sums.push_back(o.at("cand_checksum").get<uint64_t>());
      ref_sums.push_back(o.at("ref_checksum").get<uint64_t>());
    }
    if (reason.empty() && !kernelbench && c.index >= 0) {
      // Same bits for different inputs while the reference changed: the output ignores inputs.
      if (first_cand_sums.empty()) {
        first_cand_sums = cand_sums;
        first_ref_sums = ref_sums;
      } else {
        for (std::size_t o = 0; o < cand_sums.size(); ++o)
          if (cand_sums[o] == first_cand_sums[o] && ref_sums[o] != first_ref_sums[o]) {
            reason = "constant_output";
            bad = static_cast<int>(o);
            break;
          }
      }
    }
    if (reason.empty())
      return true;
    MismatchInfo m;
    m.reason = reason;
    m.seed_index = c.index;
    m.distribution = where;
    if (bad >= 0) {
      const auto s = v.at("outputs").at(bad).at("cand").get<ErrorStats>();
      m.output = problem.outputs.at(bad);
      m.max_abs_err = s.max_abs_err;
      m.max_rel_err = s.max_rel_err;
      m.mismatch_count = s.mismatch_count;
      m.first_bad_index = s.first_bad_index;
      m.nan_count = s.nan_count;
      m.inf_count = s.inf_count;
    }
    r.outcome = Outcome::mismatch;
    if (reason == "input_mutated")
      r.message = fmt::format("the candidate modified its inputs (check {}, {})", c.index, where);
    else
      r.message = fmt::format(
          "output '{}' is wrong ({}) in check {} ({}): {} of {} elements beyond atol={:g} "
          "rtol={:g}, max abs err {:.3g}, max rel err {:.3g}, first bad index {}, NaN {}, Inf {}",
          m.output, reason, c.index, where, m.mismatch_count,
          numel(problem.output_spec(m.output).shape), tol.atol, tol.rtol, m.max_abs_err,
          m.max_rel_err, m.first_bad_index, m.nan_count, m.inf_count);
    r.mismatch = m;
    return false;
  };

  for (;;) {
    std::string line;
    const auto wait_start = Clock::now();
    const auto got = cand.receive(line, after(budget_s));
    budget_s -= seconds_since(wait_start);
    if (got == ChildProcess::Recv::timeout) {
      cand.kill_group();
      cand.wait(after(5.0));
      r.outcome = Outcome::timeout;
      r.message = fmt::format("no result within {:.0f} s (during {}); the worker's process group "
                              "was killed",
                              opts.timeout_s, phase);
      break;
    }
    if (got == ChildProcess::Recv::closed) {
      const ExitStatus st = cand.wait(after(5.0));
      r.outcome = Outcome::runtime_error;
      r.message = describe_failure(cand, st) + " (during " + phase + ")";
      break;
    }
    json msg;
    try {
      msg = json::parse(line);
    } catch (const json::exception&) {
      cand.kill_group();
      cand.wait(after(5.0));
      r.outcome = Outcome::runtime_error;
      r.message = "malformed message on the result channel: " + tail_of(line, 200);
      break;
    }
    const std::string ev = msg.value("event", "");
    if (ev == "ready") {
      t_ready = Clock::now();
      r.start_s = seconds_since(t0);
      phase = "correctness checks";
    } else if (ev == "check") {
      const int idx = msg.at("index").get<int>();
      if (idx < 0 || idx >= static_cast<int>(checks.size()))
        throw Error("candidate worker reported an unknown check");
      if (!msg.value("deterministic", true))
        r.flags |= flag_nondeterministic;
      const bool pass = judge(checks[idx], msg, checks[idx].dist_name);
      cand.send(json{{"cmd", pass ? "continue" : "stop"}}.dump() + "\n");
      if (!pass)
        break;
    } else if (ev == "timing_start") {
      t_timing = Clock::now();
      r.check_s = std::chrono::duration<double>(t_timing - t_ready).count();
      phase = "timing";
    } else if (ev == "timed_check") {
      eval::CheckSpec c;
      c.index = -1;
      c.seed = msg.at("seed").get<uint64_t>();
      c.dists = own_dists;
      c.relative = own_relative;
      const bool pass =
          judge(c, msg, fmt::format("timed outputs of rotating set {}", msg.value("set", 0)));
      cand.send(json{{"cmd", pass ? "continue" : "stop"}}.dump() + "\n");
      if (!pass)
        break;
    } else if (ev == "done") {
      r.time_s = seconds_since(t_timing);
      r.candidate_time = msg.at("timing").get<TimingStats>();
      if (msg.value("off_stream", false))
        r.flags |= flag_off_stream;
      done = true;
      break;
    } else if (ev == "failure") {
      r.outcome =
          parse_outcome(msg.value("outcome", "runtime_error")).value_or(Outcome::runtime_error);
      r.message = msg.value("message", std::string("the candidate failed"));
      if (r.check_s == 0.0 && t_ready != t0)
        r.check_s = seconds_since(t_ready);
      break;
    } else {
      r.outcome = Outcome::runtime_error;
      r.message = "unexpected message on the result channel: " + tail_of(line, 200);
      break;
    }
  }
  cand.close_stdin();
  cand.wait(after(done ? 10.0 : 2.0));
  if (!done) {
    if (r.outcome == Outcome::mismatch && r.check_s == 0.0)
      r.check_s = seconds_since(t_ready);
    return r;
  }

  // The baseline: same timing code, same GPU, same run; measured once per problem.
  const std::string key = problem.id + "#" + problem.content_hash + "#" + opts.protocol;
  auto it = baseline_cache.find(key);
  if (it == baseline_cache.end()) {
    const json b = ref_call({{"cmd", "time_baseline"},
                             {"timing", opts.timing},
                             {"protocol", opts.protocol},
                             {"timing_seed", timing_seed}},
                            std::max(120.0, 10.0 * opts.timing.time_cap_s));
    it = baseline_cache.emplace(key, b.at("timing").get<TimingStats>()).first;
  }
  r.baseline_time = it->second;
  const TimingStats& ct = *r.candidate_time;
  const double cand_ms = kernelbench ? ct.mean_ms : ct.median_ms;
  const double base_ms = kernelbench ? it->second.mean_ms : it->second.median_ms;
  r.outcome = Outcome::correct;
  if (cand_ms > 0.0) {
    r.speedup = base_ms / cand_ms;
    const double floor_ms = floor_time_ms(problem, opts.ceilings);
    r.roofline_pct = floor_ms / cand_ms * 100.0;
    // The floor comes from a measured copy, which a streaming kernel can match to within noise:
    // only a clear margin beyond it is suspicious.
    if (cand_ms < floor_ms / k_roofline_margin)
      r.flags |= flag_above_roofline;
  }
  if (r.speedup > opts.speedup_threshold)
    r.flags |= flag_speedup_threshold;
  if (ct.stop_reason == "time_cap" || ct.stop_reason == "sample_cap")
    r.flags |= flag_noisy;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Doctor and calibration
// ---------------------------------------------------------------------------------------------

std::string GpuInfo::arch() const {
  if (cc_major == 9 && cc_minor == 0)
    return "sm_90a";
  return fmt::format("sm_{}{}", cc_major, cc_minor);
}

void to_json(json& j, const GpuInfo& g) {
  j = {{"index", g.index},
       {"name", g.name},
       {"compute_capability", fmt::format("{}.{}", g.cc_major, g.cc_minor)},
       {"arch", g.arch()},
       {"sm_count", g.sm_count},
       {"memory_bytes", g.memory_bytes},
       {"l2_bytes", g.l2_bytes},
       {"sm_clock_mhz", g.sm_clock_mhz},
       {"memory_clock_mhz", g.memory_clock_mhz},
       {"memory_bus_bits", g.memory_bus_bits}};
}

void to_json(json& j, const DoctorReport& d) {
  j = {{"worker_ran", d.worker_ran},
       {"error", d.error},
       {"gpus", d.gpus},
       {"driver_version", d.driver_version},
       {"runtime_version", d.runtime_version},
       {"cublas_version", d.cublas_version},
       {"cudnn_version", d.cudnn_version},
       {"nvcc_release", d.nvcc_release},
       {"nvcc_error", d.nvcc_error},
       {"missing", d.missing}};
}

namespace {
// Runs a worker mode to completion and returns its one result line.
json run_worker_mode(const std::string& worker, const std::string& mode,
                     const std::vector<std::pair<std::string, std::string>>& env, double timeout_s,
                     std::string* failure) {
  ProcessSpec s;
  s.argv = {worker, mode};
  s.env = env;
  s.result_channel = true;
  ChildProcess c(s);
  c.close_stdin();
  std::string line;
  const auto got = c.receive(line, after(timeout_s));
  if (got != ChildProcess::Recv::line) {
    if (got == ChildProcess::Recv::timeout)
      c.kill_group();
    const ExitStatus st = c.wait(after(5.0));
    *failure = got == ChildProcess::Recv::timeout
                   ? fmt::format("kbench-worker {} did not answer within {:.0f} s", mode, timeout_s)
                   : fmt::format("kbench-worker {} ended without a result ({}): {}", mode,
                                 st.describe(), tail_of(c.err().text, 1500));
    return {};
  }
  c.wait(after(10.0));
  try {
    return json::parse(line);
  } catch (const json::exception&) {
    *failure = "kbench-worker " + mode + " sent a malformed result: " + tail_of(line, 200);
    return {};
  }
}
} // namespace

DoctorReport run_doctor(const std::string& worker_path, double timeout_s) {
  DoctorReport d;
  try {
    d.nvcc_release = nvcc_version(resolve_nvcc({})).release;
  } catch (const Error& e) {
    d.nvcc_error = e.what();
    d.missing.push_back("nvcc (candidates cannot be compiled)");
  }
  std::string failure;
  json j;
  try {
    j = run_worker_mode(worker_path, "doctor", {}, timeout_s, &failure);
  } catch (const Error& e) {
    failure = e.what();
  }
  if (j.is_null()) {
    d.error = failure;
    d.missing.push_back("a working kbench-worker");
    return d;
  }
  d.worker_ran = true;
  d.driver_version = j.value("driver_version", 0);
  d.runtime_version = j.value("runtime_version", 0);
  d.cublas_version = j.value("cublas_version", 0);
  d.cudnn_version = j.value("cudnn_version", 0);
  if (!j.value("ok", false)) {
    d.error = j.value("error", std::string("the worker reported no GPU"));
    d.missing.push_back("a CUDA GPU");
  }
  for (const auto& g : j.value("gpus", json::array())) {
    GpuInfo info;
    info.index = g.value("index", 0);
    info.name = g.value("name", "");
    info.cc_major = g.value("cc_major", 0);
    info.cc_minor = g.value("cc_minor", 0);
    info.sm_count = g.value("sm_count", 0);
    info.memory_bytes = g.value("memory_bytes", uint64_t{0});
    info.l2_bytes = g.value("l2_bytes", uint64_t{0});
    info.sm_clock_mhz = g.value("sm_clock_mhz", 0);
    info.memory_clock_mhz = g.value("memory_clock_mhz", 0);
    info.memory_bus_bits = g.value("memory_bus_bits", 0);
    d.gpus.push_back(info);
  }
  if (d.driver_version == 0)
    d.missing.push_back("the CUDA driver");
  if (d.cudnn_version == 0)
    d.missing.push_back("cuDNN");
  if (d.cublas_version == 0)
    d.missing.push_back("cuBLAS");
  return d;
}

GpuCeilings run_calibrate(const std::string& worker_path, int gpu, double timeout_s) {
  std::string failure;
  const json j =
      run_worker_mode(worker_path, "calibrate", {{"CUDA_VISIBLE_DEVICES", std::to_string(gpu)}},
                      timeout_s, &failure);
  if (j.is_null())
    throw Error(failure);
  if (!j.value("ok", false))
    throw Error("calibration failed: " + j.value("error", std::string("?")));
  return j.at("ceilings").get<GpuCeilings>();
}

} // namespace kb
