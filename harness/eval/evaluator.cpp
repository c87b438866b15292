// The parent side of an evaluation: drives the candidate worker one command at a time under a
// watchdog scaled to the baseline, believes only replies it asked for (in order, with the
// session's token), has the reference process judge every output it ships (checks and secretly
// kept timed samples), sets the parent's own clock against the claimed times, and assembles the
// EvalResult. No CUDA. docs/evaluation.md has the protocol and its threat model.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
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
// Samples per timing round while a sample's wall time is short; fewer for slow samples.
constexpr int k_round_samples = 10;
constexpr double k_slow_round_ms = 200.0;

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
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
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
    msg += "; stderr: " + sanitize_utf8(tail_of(err, 1500));
  return msg;
}

// One reply, or why there is none.
struct Reply {
  enum Kind { ok, failure, closed, timeout, violation } kind = ok;
  eval::Envelope env;
  std::string why; // violation: what was wrong with the line
  double wall_ms = 0.0;
};

// A worker process spoken to through the protocol. Every command gets the next sequence number;
// a reply is believed only when it carries that number, the session token and the type the
// command asks for (or is a failure). Anything else on the channel is a violation.
class Link {
public:
  Link(ChildProcess& proc, std::string token) : m_proc(proc), m_token(std::move(token)) {}

  template <class Cmd> bool send(const Cmd& cmd) {
    ++m_seq;
    m_sent = Clock::now();
    return m_proc.send(eval::encode(cmd, m_seq, m_token));
  }

  // Waits for the reply of type R to the last command (or, with seq 0, the start-up message).
  template <class R> Reply await(double timeout_s, bool startup = false) {
    Reply r;
    std::string line;
    const auto got = m_proc.receive(line, after(timeout_s));
    r.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - m_sent).count();
    if (got == ChildProcess::Recv::timeout) {
      r.kind = Reply::timeout;
      return r;
    }
    if (got == ChildProcess::Recv::closed) {
      r.kind = Reply::closed;
      return r;
    }
    std::string why;
    auto env = eval::decode(line, &why);
    if (!env) {
      r.kind = Reply::violation;
      r.why = fmt::format("{}: {}", why, sanitize_utf8(tail_of(line, 200)));
      return r;
    }
    const uint64_t want_seq = startup ? 0 : m_seq;
    const std::string want_token = startup ? std::string() : m_token;
    if (env->seq != want_seq || env->token != want_token) {
      r.kind = Reply::violation;
      r.why = fmt::format("a '{}' line with the wrong sequence number or token", env->type);
      return r;
    }
    if (env->type == eval::message_type<eval::Failure>()) {
      r.kind = Reply::failure;
      r.env = std::move(*env);
      return r;
    }
    if (env->type != eval::message_type<R>()) {
      r.kind = Reply::violation;
      r.why = fmt::format("'{}' where '{}' was asked for", env->type, eval::message_type<R>());
      return r;
    }
    r.env = std::move(*env);
    return r;
  }

  // After the last reply: nothing more may arrive before the channel closes.
  std::optional<std::string> stray_line(double timeout_s) {
    std::string line;
    if (m_proc.receive(line, after(timeout_s)) == ChildProcess::Recv::line)
      return line;
    return std::nullopt;
  }

private:
  ChildProcess& m_proc;
  std::string m_token;
  uint64_t m_seq = 0;
  Clock::time_point m_sent = Clock::now();
};

// A candidate the protocol caught misbehaving, timing out or failing: ends the evaluation with
// this outcome and message.
struct Stop {
  Outcome outcome;
  std::string message;
};

std::string random_token(std::mt19937_64& rng) {
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

// Round size: k_round_samples while samples are short, so the parent's clock sees each round,
// fewer when one sample takes long.
int round_size(double wall_per_sample_ms, int left) {
  int m = k_round_samples;
  if (wall_per_sample_ms * k_round_samples > k_slow_round_ms)
    m = std::clamp(static_cast<int>(k_slow_round_ms / std::max(wall_per_sample_ms, 1e-3)), 1,
                   k_round_samples);
  return std::max(1, std::min(m, left));
}

bool finite_nonnegative(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x) && x >= 0.0; });
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

std::string worker_visible_device(int gpu) {
  const char* env = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!env)
    return std::to_string(gpu);
  // This process sees only the devices listed (Slurm's --gres, a container): a worker shown
  // "gpu" itself would see the machine's device of that number, which may belong to another job.
  std::vector<std::string> devices;
  std::string_view list(env);
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (!item.empty())
      devices.emplace_back(item);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  if (gpu < 0 || static_cast<std::size_t>(gpu) >= devices.size())
    throw Error(fmt::format("GPU {} is not one of the {} devices of CUDA_VISIBLE_DEVICES='{}' "
                            "(GPUs count from 0 among them)",
                            gpu, devices.size(), env));
  return devices[static_cast<std::size_t>(gpu)];
}

// What the baseline's timing left for every candidate of a problem: its statistics and the
// record the clock bound compares candidates against.
struct BaselineRecord {
  TimingStats stats;
  eval::TimingRecord record;
  double wall_per_sample_ms = 0.0;
};

// A candidate worker started ahead of its job (so CUDA starts while nvcc runs).
struct Spawned {
  TempDir dir;
  int result_fd = 3;
  std::unique_ptr<ChildProcess> proc;
};

struct Evaluator::Impl {
  EvalOptions opts;
  std::string worker;
  uint64_t secret = 0;
  uint64_t evaluations = 0;
  std::mt19937_64 rng;
  std::unique_ptr<ChildProcess> ref;
  std::unique_ptr<Link> ref_link;
  bool ref_ready = false;
  eval::DeviceInfo device;
  std::map<std::string, BaselineRecord> baseline_cache;
  std::unique_ptr<Spawned> spare;

  ProcessSpec worker_spec(const std::string& mode, const std::string& cwd, int result_fd) const {
    ProcessSpec s;
    s.argv = {worker, mode};
    s.env = {{"CUDA_VISIBLE_DEVICES", worker_visible_device(opts.gpu)},
             {"KB_RESULT_FD", std::to_string(result_fd)}};
    s.cwd = cwd;
    s.result_channel = true;
    s.result_fd = result_fd;
    s.output_limit_bytes = opts.output_limit_bytes;
    s.limits.no_core = true;
    return s;
  }

  std::unique_ptr<Spawned> spawn_candidate() {
    auto s = std::make_unique<Spawned>();
    // Not fd 3: a candidate that guesses the channel's descriptor by its usual number writes
    // into nothing. (The design does not rely on it: see Link.)
    s->result_fd = 64 + static_cast<int>(rng() % 900);
    ProcessSpec spec = worker_spec("candidate", s->dir.path(), s->result_fd);
    spec.limits.cpu_s = static_cast<double>(opts.cpu_limit_s);
    spec.limits.file_size_bytes = opts.file_size_limit_bytes;
    s->proc = std::make_unique<ChildProcess>(spec);
    return s;
  }

  // Starts the next candidate's worker unless one is waiting (never while something is timed).
  void prespawn() {
    try {
      if (!spare)
        spare = spawn_candidate();
    } catch (...) {
      spare.reset(); // the next evaluation starts its own and reports why it cannot
    }
  }

  void start_reference() {
    if (ref && ref->running())
      return;
    ref_link.reset();
    ref = std::make_unique<ChildProcess>(worker_spec("reference", "", 3));
    ref_link = std::make_unique<Link>(*ref, random_token(rng));
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
    ref_link.reset();
    ref.reset();
    throw Error(msg);
  }

  // The reply of the reference process (trusted, but it can fail: then it is restarted later).
  template <class R> R ref_reply(double timeout_s, bool startup = false) {
    Reply r = ref_link->await<R>(timeout_s, startup);
    switch (r.kind) {
    case Reply::timeout:
      reference_failed(fmt::format("did not answer within {:.0f} s", timeout_s));
    case Reply::closed:
      reference_failed("ended unexpectedly");
    case Reply::violation:
      reference_failed("sent an unexpected message: " + r.why);
    case Reply::failure: {
      const auto f = r.env.body.get<eval::Failure>();
      if (startup) {
        // No GPU, no driver: one clear line, nothing of the harness's internals.
        ref_link.reset();
        ref.reset();
        throw Error(fmt::format("GPU {}: {}", opts.gpu, f.message));
      }
      reference_failed("reported an error: " + f.message);
    }
    case Reply::ok:
      break;
    }
    return r.env.body.get<R>();
  }

  template <class Cmd, class R> R ref_call(const Cmd& cmd, double timeout_s) {
    if (!ref_link->send(cmd))
      reference_failed("stopped reading commands");
    return ref_reply<R>(timeout_s);
  }

  void await_reference() {
    start_reference();
    if (ref_ready)
      return;
    device = ref_reply<eval::Started>(opts.start_timeout_s, true).device;
    ref_ready = true;
    if (opts.ceilings.gpu_name.empty())
      opts.ceilings = default_ceilings(device.name);
  }

  // Datasheet figures for the device when nothing was measured.
  static GpuCeilings default_ceilings(const std::string& name) {
    if (auto c = datasheet_ceilings(name))
      return *c;
    GpuCeilings c = datasheet_ceilings_h100();
    c.gpu_name = fmt::format("{} (unknown to the datasheet table; H100 SXM figures assumed)", name);
    return c;
  }

  // Deadline of one candidate command that makes `calls` calls (docs/evaluation.md).
  double deadline_s(const BaselineRecord& b, double calls) const {
    const double expected_s = calls * b.wall_per_sample_ms / 1000.0;
    return std::clamp(opts.timeout_floor_s + opts.timeout_factor * expected_s, opts.timeout_floor_s,
                      std::max(opts.timeout_s, opts.timeout_floor_s));
  }

  // Compiles for the architecture options name, else for the GPU's (see Evaluator::evaluate).
  CompileResult compile_for_gpu(std::string_view source) {
    CompileOptions co = opts.compile;
    if (!co.arch.empty())
      return compile_candidate(source, co);
    if (ref_ready) {
      co.arch = gpu_arch(device.cc_major, device.cc_minor);
      return compile_candidate(source, co);
    }
    // Until the reference process names the GPU, nvcc works on this build's architectures.
    CompileOptions early_opts = co;
    early_opts.arch = default_arch();
    std::future<CompileResult> early;
    if (!early_opts.arch.empty())
      early = std::async(std::launch::async,
                         [&early_opts, source] { return compile_candidate(source, early_opts); });
    await_reference(); // on failure, early's destructor waits for nvcc
    co.arch = gpu_arch(device.cc_major, device.cc_minor);
    if (early.valid()) {
      CompileResult r = early.get();
      const std::string list = "," + early_opts.arch + ",";
      if (co.arch.empty() || list.find("," + co.arch + ",") != std::string::npos)
        return r;
    }
    return compile_candidate(source, co);
  }

  const BaselineRecord& baseline(const Problem& problem, uint64_t timing_seed);
  bool preflight(const CompileResult& cr, EvalResult& r) const;
  EvalResult run(const Problem& problem, const CompileResult& cr);
  class Run;
};

// ---------------------------------------------------------------------------------------------
// Timing driven round by round (candidate and baseline alike)
// ---------------------------------------------------------------------------------------------

namespace {

// Drives one timing phase: prepare, rounds until the stopping rule holds, through `ask`, which
// sends a command and returns its reply (or throws Stop). The parent's clock times each round.
template <class Ask>
eval::TimingRecord drive_timing(const eval::TimePrepare& prep, bool kernelbench, Ask&& ask) {
  const TimingOptions& o = prep.timing;
  eval::TimingRecord rec;
  const auto t_prep = Clock::now();
  rec.ready = ask.prepare(prep);
  rec.prepare_wall_ms = seconds_since(t_prep) * 1e3;
  const double spent_limit_ms = o.time_cap_s * 1000.0;
  double spent_ms = 0.0, wall_per_sample = 0.0;
  const int fixed = 100;
  for (;;) {
    const int n = static_cast<int>(rec.stream_ms.size());
    if (kernelbench) {
      if (n >= fixed) {
        rec.stop_reason = "fixed";
        break;
      }
    } else {
      if (n >= o.max_samples) {
        rec.stop_reason = "sample_cap";
        break;
      }
      if (n > 0 &&
          timing_converged(eval::judge_timing(rec).stats.samples_ms, o.target_rse, o.min_samples)) {
        rec.stop_reason = "converged";
        break;
      }
      if (spent_ms > spent_limit_ms && n >= 3) {
        rec.stop_reason = "time_cap";
        break;
      }
    }
    const int m = round_size(wall_per_sample, (kernelbench ? fixed : o.max_samples) - n);
    double wall_ms = 0.0;
    eval::RoundDone round = ask.round(m, wall_ms);
    rec.stream_ms.insert(rec.stream_ms.end(), round.stream_ms.begin(), round.stream_ms.end());
    rec.wide_ms.insert(rec.wide_ms.end(), round.wide_ms.begin(), round.wide_ms.end());
    rec.host_ms.insert(rec.host_ms.end(), round.host_ms.begin(), round.host_ms.end());
    rec.round_wall_ms.push_back(wall_ms);
    rec.round_samples.push_back(m);
    spent_ms += wall_ms;
    wall_per_sample = wall_ms / m;
  }
  return rec;
}

double median_wall_per_sample(const eval::TimingRecord& r) {
  return median_of(eval::wall_per_sample_by_round(r));
}

} // namespace

const BaselineRecord& Evaluator::Impl::baseline(const Problem& problem, uint64_t timing_seed) {
  const std::string key =
      problem.id + "#" + problem.content_hash + "#" + std::string(protocol_name(opts.protocol));
  if (auto it = baseline_cache.find(key); it != baseline_cache.end())
    return it->second;
  const bool kernelbench = is_kernelbench(opts.protocol);
  const double limit_s = std::max(120.0, 10.0 * opts.timing.time_cap_s);
  struct RefAsk {
    Impl& self;
    double limit_s;
    eval::TimeReady prepare(const eval::TimePrepare& p) {
      return self.ref_call<eval::TimePrepare, eval::TimeReady>(p, limit_s);
    }
    eval::RoundDone round(int m, double& wall_ms) {
      if (!self.ref_link->send(eval::TimeRound{m}))
        self.reference_failed("stopped reading commands");
      Reply r = self.ref_link->await<eval::RoundDone>(limit_s);
      if (r.kind != Reply::ok)
        self.reference_failed("failed while timing the baseline");
      wall_ms = r.wall_ms;
      return r.env.body.get<eval::RoundDone>();
    }
  } ask{*this, limit_s};
  eval::TimePrepare prep;
  prep.timing = opts.timing;
  prep.protocol = opts.protocol;
  prep.seed_base = timing_seed;
  // The same kept slots as a candidate gets, so both loops do the same work.
  prep.kept_slots = 2 * std::max(1, opts.timing.judged_samples);
  prep.keep_secret = rng();
  BaselineRecord b;
  b.record = drive_timing(prep, kernelbench, ask);
  ref_call<eval::Finish, eval::Finished>(eval::Finish{}, limit_s);
  b.stats = eval::judge_timing(b.record).stats;
  b.wall_per_sample_ms = median_wall_per_sample(b.record);
  return baseline_cache.emplace(key, std::move(b)).first->second;
}

Evaluator::Evaluator(EvalOptions opts) : m_opts(std::move(opts)), m_impl(std::make_unique<Impl>()) {
  if (!(m_opts.timeout_floor_s > 0.0) || !(m_opts.timeout_s > 0.0) ||
      !(m_opts.timeout_factor > 0.0))
    throw Error("the watchdog's floor, ceiling and factor must be positive");
  m_impl->opts = m_opts;
  m_impl->worker = m_opts.worker_path.empty() ? default_worker_path() : m_opts.worker_path;
  m_impl->secret = m_opts.secret;
  std::random_device rd;
  if (m_impl->secret == 0)
    m_impl->secret = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  m_impl->rng.seed((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ m_impl->secret);
}

Evaluator::~Evaluator() {
  if (m_impl && m_impl->ref) {
    m_impl->spare.reset();
    m_impl->ref->close_stdin();
    m_impl->ref->wait(after(5.0));
  }
}

bool gpu_driver_present(const std::string& dev_dir) {
  std::error_code ec;
  return fs::exists(fs::path(dev_dir) / "nvidiactl", ec) ||
         fs::exists(fs::path(dev_dir) / "dxg", ec);
}

EvalResult Evaluator::evaluate(const Problem& problem, std::string_view source) {
  // No GPU is said in one line before anything is compiled.
  if (m_opts.gpu_probe && !gpu_driver_present())
    throw Error("no NVIDIA GPU driver on this machine (/dev/nvidiactl is missing): candidates "
                "cannot be evaluated here; `kbench generate` stores candidates without a GPU");
  // The reference process and the candidate's worker start now, so CUDA starts while nvcc runs.
  m_impl->start_reference();
  if (!m_impl->spare)
    m_impl->spare = m_impl->spawn_candidate();
  const CompileResult cr = m_impl->compile_for_gpu(source);
  return evaluate_compiled(problem, cr);
}

EvalResult Evaluator::evaluate_compiled(const Problem& problem, const CompileResult& cr) {
  return m_impl->run(problem, cr);
}

const GpuCeilings& Evaluator::ceilings() const {
  return m_impl->opts.ceilings;
}

// Compile result, screening, export: false when the candidate ends here (r says why).
bool Evaluator::Impl::preflight(const CompileResult& cr, EvalResult& r) const {
  r.protocol = opts.protocol;
  r.compile_s = cr.seconds;
  r.compile_cached = cr.cached;
  r.compile_log = sanitize_utf8(cr.log);
  if (!cr.ok) {
    r.outcome = Outcome::compile_error;
    r.message = sanitize_utf8(cr.message);
    return false;
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
    return false;
  }
  if (!rep.has_forward) {
    r.outcome = Outcome::load_error;
    r.message = "the object does not export kb_forward (declare it extern \"C\" with the "
                "signature of kbench/kb_abi.h)";
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The candidate session
// ---------------------------------------------------------------------------------------------

namespace {

// One candidate worker, driven command by command. Every method either returns what the worker
// reported, checked for form, or throws Stop with the outcome the evaluation ends in.
class CandidateSession {
public:
  CandidateSession(ChildProcess& proc, std::string token, std::string& phase)
      : m_proc(proc), m_link(proc, std::move(token)), m_phase(phase) {}

  // Sends a command and waits for its reply. A worker that stopped reading has ended or is
  // ending: its channel says how, so the reply is awaited either way.
  template <class R, class Cmd> R ask(const Cmd& cmd, double timeout_s) {
    (void)m_link.send(cmd);
    return reply<R>(timeout_s);
  }

  template <class R> R reply(double timeout_s, bool startup = false) {
    Reply r = m_link.await<R>(timeout_s, startup);
    m_last_wall_ms = r.wall_ms;
    switch (r.kind) {
    case Reply::ok:
      try {
        return r.env.body.get<R>();
      } catch (const nlohmann::json::exception& e) {
        malformed(fmt::format("a '{}' reply whose body is not one: {}", r.env.type, e.what()));
      }
    case Reply::failure: {
      eval::Failure f;
      try {
        f = r.env.body.get<eval::Failure>();
      } catch (const nlohmann::json::exception& e) {
        malformed(fmt::format("a failure reply whose body is not one: {}", e.what()));
      }
      m_proc.kill_group();
      // Whatever the worker says is text from the candidate's process: never trusted to be
      // UTF-8, never an outcome it may choose beyond the failing ones.
      Outcome o = parse_outcome(f.outcome).value_or(Outcome::runtime_error);
      if (o == Outcome::correct || o == Outcome::no_code || o == Outcome::compile_error ||
          o == Outcome::rejected)
        o = Outcome::runtime_error;
      throw Stop{o, sanitize_utf8(f.message)};
    }
    case Reply::timeout:
      m_proc.kill_group();
      m_proc.wait(after(5.0));
      throw Stop{Outcome::timeout,
                 fmt::format("no reply within {:.1f} s (during {}); the worker's process group "
                             "was killed",
                             timeout_s, m_phase)};
    case Reply::closed: {
      const ExitStatus st = m_proc.wait(after(5.0));
      throw Stop{Outcome::runtime_error,
                 describe_failure(m_proc, st) + " (during " + m_phase + ")"};
    }
    case Reply::violation:
      m_proc.kill_group();
      throw Stop{Outcome::runtime_error,
                 fmt::format("the result channel carried a message the evaluator did not ask for "
                             "({}) during {}: a forged or corrupted reply; nothing this worker "
                             "reported is used",
                             r.why, m_phase)};
    }
    throw Stop{Outcome::runtime_error, "unreachable"};
  }

  [[noreturn]] void malformed(const std::string& what) {
    m_proc.kill_group();
    throw Stop{Outcome::runtime_error,
               fmt::format("the worker's reply during {} does not add up ({}): nothing it "
                           "reported is used",
                           m_phase, what)};
  }

  double last_wall_ms() const { return m_last_wall_ms; }
  Link& link() { return m_link; }

private:
  ChildProcess& m_proc;
  Link m_link;
  std::string& m_phase;
  double m_last_wall_ms = 0.0;
};

} // namespace

// One candidate's evaluation after preflight, phase by phase: start-up, correctness checks,
// timing, judging kept timed samples, teardown, finalisation. Each phase either returns or
// throws Stop with the outcome the evaluation ends in.
class Evaluator::Impl::Run {
public:
  Run(Impl& impl, const Problem& problem, EvalResult& r)
      : m_impl(impl), m_opts(impl.opts), m_problem(problem), m_r(r),
        m_kernelbench(is_kernelbench(impl.opts.protocol)),
        m_tol(eval::protocol_tolerance(problem, impl.opts.protocol)),
        m_timing_seed(m_kernelbench ? 42 : eval::mix_seed(impl.secret, 1000 + impl.evaluations++)) {
    for (const auto* list : {&problem.inputs, &problem.params})
      for (const auto& t : *list) {
        m_own_dists.push_back(t.dist);
        m_own_relative = m_own_relative || t.dist.kind == DistKind::ill_conditioned;
      }
  }

  // Reference session, candidate worker, baseline, the job: until the candidate is loaded.
  void start(const CompileResult& cr);
  void checks();
  eval::TimingRecord time();
  void judge_kept(const eval::TimingRecord& rec);
  void finish();
  void finalise(const eval::TimingRecord& rec);
  // After a Stop: the phase times so far, and the worker ended.
  void stopped(const Stop& stop);

private:
  // The reference process's verdict on what the candidate worker shipped; throws Stop on a
  // mismatch (the judgement).
  void judge(const eval::CheckSpec& c, const std::vector<uint64_t>& input_sums,
             const std::string& where);
  [[noreturn]] void out_of_bounds(const std::string& where);
  CandidateSession& session() { return *m_session; }

  Impl& m_impl;
  const EvalOptions& m_opts;
  const Problem& m_problem;
  EvalResult& m_r;
  const bool m_kernelbench;
  const Tolerance m_tol;
  const uint64_t m_timing_seed;
  std::vector<Distribution> m_own_dists;
  bool m_own_relative = false;
  std::string m_phase = "start-up";
  std::unique_ptr<Spawned> m_cand;
  std::unique_ptr<CandidateSession> m_session;
  const BaselineRecord* m_base = nullptr;
  eval::Ready m_ready;
  std::vector<uint64_t> m_first_cand_sums, m_first_ref_sums;
  Clock::time_point m_t0 = Clock::now(), m_t_ready = m_t0, m_t_timing = m_t0;
};

void Evaluator::Impl::Run::start(const CompileResult& cr) {
  m_impl.await_reference();
  const auto begun = m_impl.ref_call<eval::RefBegin, eval::RefBegun>(
      eval::RefBegin{m_problem, m_opts.protocol}, m_opts.start_timeout_s);
  // A spare worker started earlier may still be starting CUDA: the baseline is timed only once
  // it is idle, so nothing else runs on the GPU meanwhile.
  m_cand = std::move(m_impl.spare);
  if (!m_cand || !m_cand->proc->running())
    m_cand = m_impl.spawn_candidate();
  m_session = std::make_unique<CandidateSession>(*m_cand->proc, random_token(m_impl.rng), m_phase);
  session().reply<eval::Started>(m_opts.start_timeout_s, true);
  m_base = &m_impl.baseline(m_problem, m_timing_seed);
  eval::CandidateJob job;
  job.problem = m_problem;
  job.so_path = fs::absolute(cr.so_path).string();
  job.protocol = m_opts.protocol;
  job.mailboxes = begun.mailboxes;
  m_ready = session().ask<eval::Ready>(job, m_opts.start_timeout_s);
  m_t_ready = Clock::now();
  m_r.start_s = seconds_since(m_t0);
  if (m_ready.device.name != m_impl.device.name)
    session().malformed("the candidate worker reports another GPU than the reference process");
}

void Evaluator::Impl::Run::judge(const eval::CheckSpec& c, const std::vector<uint64_t>& input_sums,
                                 const std::string& where) {
  eval::Judge cmd;
  cmd.check = c;
  cmd.input_checksums = input_sums;
  cmd.atol = m_tol.atol;
  cmd.rtol = m_tol.rtol;
  cmd.relative_k = m_opts.relative_k;
  cmd.protocol = m_opts.protocol;
  const auto v = m_impl.ref_call<eval::Judge, eval::Verdict>(cmd, std::max(60.0, m_opts.timeout_s));
  std::string reason = v.reason;
  int bad = v.bad_output;
  if (v.outputs.size() != m_problem.outputs.size())
    m_impl.reference_failed("judged another number of outputs than the problem has");
  if (reason.empty() && !m_kernelbench) {
    // Same bits for different inputs while the reference changed: the output ignores inputs.
    if (m_first_cand_sums.empty()) {
      for (const auto& o : v.outputs) {
        m_first_cand_sums.push_back(o.cand_checksum);
        m_first_ref_sums.push_back(o.ref_checksum);
      }
    } else {
      for (std::size_t o = 0; o < v.outputs.size(); ++o)
        if (v.outputs[o].cand_checksum == m_first_cand_sums[o] &&
            v.outputs[o].ref_checksum != m_first_ref_sums[o]) {
          reason = "constant_output";
          bad = static_cast<int>(o);
          break;
        }
    }
  }
  if (reason.empty())
    return;
  MismatchInfo m;
  m.reason = reason;
  m.seed_index = c.index;
  m.distribution = where;
  if (bad >= 0) {
    const ErrorStats& es = v.outputs.at(bad).cand;
    m.output = m_problem.outputs.at(bad);
    m.max_abs_err = es.max_abs_err;
    m.max_rel_err = es.max_rel_err;
    m.mismatch_count = es.mismatch_count;
    m.first_bad_index = es.first_bad_index;
    m.nan_count = es.nan_count;
    m.inf_count = es.inf_count;
  }
  m_r.mismatch = m;
  const std::string which = c.index >= 0 ? fmt::format("check {}", c.index) : "a timed sample";
  if (reason == "input_mutated")
    throw Stop{Outcome::mismatch,
               fmt::format("the candidate modified its inputs ({}, {})", which, where)};
  throw Stop{Outcome::mismatch,
             fmt::format("output '{}' is wrong ({}) in {} ({}): {} of {} elements beyond "
                         "atol={:g} rtol={:g}, max abs err {:.3g}, max rel err {:.3g}, first bad "
                         "index {}, NaN {}, Inf {}",
                         m.output, reason, which, where, m.mismatch_count,
                         numel(m_problem.output_spec(m.output).shape), m_tol.atol, m_tol.rtol,
                         m.max_abs_err, m.max_rel_err, m.first_bad_index, m.nan_count,
                         m.inf_count)};
}

void Evaluator::Impl::Run::out_of_bounds(const std::string& where) {
  MismatchInfo m;
  m.reason = "out_of_bounds";
  m.distribution = where;
  m_r.mismatch = m;
  throw Stop{Outcome::mismatch,
             fmt::format("the candidate wrote outside its outputs or workspace ({}): the guard "
                         "zones around them changed",
                         where)};
}

void Evaluator::Impl::Run::checks() {
  // One command per check; the reference process judges every one.
  m_phase = "correctness checks";
  for (const auto& c : eval::make_checks(m_problem, m_opts.protocol, m_opts.seeds, m_impl.secret)) {
    eval::RunCheck cmd{c, c.index == 0 && !m_kernelbench};
    const auto done =
        session().ask<eval::CheckDone>(cmd, m_impl.deadline_s(*m_base, cmd.repeat ? 2.0 : 1.0));
    if (done.index != c.index || done.input_checksums.size() != m_own_dists.size())
      session().malformed("a check reply for another check");
    if (!done.deterministic)
      m_r.flags |= flag_nondeterministic;
    if (!done.guards_intact)
      out_of_bounds(fmt::format("check {}", c.index));
    judge(c, done.input_checksums, c.dist_name);
  }
  m_r.check_s = seconds_since(m_t_ready);
}

eval::TimingRecord Evaluator::Impl::Run::time() {
  // Round by round; the parent's clock times every round.
  m_phase = "timing";
  m_t_timing = Clock::now();
  eval::TimePrepare prep;
  prep.timing = m_opts.timing;
  prep.protocol = m_opts.protocol;
  prep.seed_base = m_timing_seed;
  prep.kept_slots = 2 * std::max(1, m_opts.timing.judged_samples);
  prep.keep_secret = m_impl.rng();
  bool guards_ok = true;
  struct CandAsk {
    CandidateSession& s;
    const Impl& impl;
    const BaselineRecord& base;
    bool& guards_ok;
    eval::TimeReady prepare(const eval::TimePrepare& p) {
      const double calls = p.timing.warmup + p.timing.empty_calls + p.timing.max_sets + 3;
      auto ready = s.ask<eval::TimeReady>(p, impl.deadline_s(base, calls));
      if (ready.sets < 1 || ready.kept_slots < 1 || ready.kept_slots > p.kept_slots ||
          ready.empty_host_ms.size() != static_cast<std::size_t>(p.timing.empty_calls) ||
          ready.empty_stream_ms.size() != ready.empty_host_ms.size() ||
          ready.empty_wide_ms.size() != ready.empty_host_ms.size() ||
          !finite_nonnegative(ready.empty_host_ms) || !finite_nonnegative(ready.empty_stream_ms) ||
          !finite_nonnegative(ready.empty_wide_ms))
        s.malformed("timing preparation");
      return ready;
    }
    eval::RoundDone round(int m, double& wall_ms) {
      auto done = s.ask<eval::RoundDone>(eval::TimeRound{m}, impl.deadline_s(base, m));
      wall_ms = s.last_wall_ms();
      if (done.stream_ms.size() != static_cast<std::size_t>(m) ||
          done.host_ms.size() != done.stream_ms.size() ||
          done.wide_ms.size() != done.stream_ms.size() || !finite_nonnegative(done.stream_ms) ||
          !finite_nonnegative(done.wide_ms) || !finite_nonnegative(done.host_ms))
        s.malformed("a timing round");
      double claimed = 0.0;
      for (double h : done.host_ms)
        claimed += h;
      if (claimed > wall_ms + 1.0) // more host time than the round took on the parent's clock
        s.malformed("a timing round claims more time than it took");
      guards_ok = guards_ok && done.guards_intact;
      return done;
    }
  } ask{session(), m_impl, *m_base, guards_ok};
  eval::TimingRecord rec = drive_timing(prep, m_kernelbench, ask);
  if (!guards_ok)
    out_of_bounds("timing");
  m_r.time_s = seconds_since(m_t_timing);
  if (std::getenv("KB_EVAL_TRACE")) {
    double rounds_ms = 0.0;
    for (double w : rec.round_wall_ms)
      rounds_ms += w;
    fmt::print(
        stderr,
        "kbench eval trace: timing {:.1f} ms: prepare {:.1f} ms, {} rounds {:.1f} ms, launch "
        "{}\n",
        m_r.time_s * 1e3, rec.prepare_wall_ms, rec.round_wall_ms.size(), rounds_ms,
        rec.ready.launch_held       ? "held"
        : m_opts.timing.hold_launch ? "not held (the call waited "
                                      "on the GPU)"
                                    : "not held");
  }
  return rec;
}

void Evaluator::Impl::Run::judge_kept(const eval::TimingRecord& rec) {
  // The parent picks which kept samples to judge only now.
  m_phase = "judging timed outputs";
  const int judged = std::max(1, m_opts.timing.judged_samples);
  const int kept = rec.ready.kept_slots;
  std::vector<int> slots(static_cast<std::size_t>(kept));
  for (int k = 0; k < kept; ++k)
    slots[k] = k;
  std::shuffle(slots.begin(), slots.end(), m_impl.rng);
  slots.resize(static_cast<std::size_t>(std::min(judged, kept)));
  const auto total = static_cast<int64_t>(rec.stream_ms.size());
  std::vector<int64_t> seen;
  for (int slot : slots) {
    const auto sh =
        session().ask<eval::Shipped>(eval::ShipKept{slot}, m_impl.deadline_s(*m_base, 1.0));
    if (sh.slot != slot || sh.sample < 0 || sh.sample >= total ||
        std::find(seen.begin(), seen.end(), sh.sample) != seen.end() ||
        sh.input_checksums.size() != m_own_dists.size())
      session().malformed("a kept sample's reply");
    seen.push_back(sh.sample);
    eval::CheckSpec c;
    c.index = -1;
    c.seed = eval::sample_seed(m_timing_seed, sh.sample, m_kernelbench);
    c.dists = m_own_dists;
    c.relative = m_own_relative;
    judge(c, sh.input_checksums, fmt::format("timed sample {}", sh.sample));
  }
}

void Evaluator::Impl::Run::finish() {
  m_phase = "teardown";
  session().ask<eval::Finished>(eval::Finish{}, m_opts.timeout_floor_s);
  m_cand->proc->close_stdin();
  // Nothing may follow the last reply.
  if (auto stray = session().link().stray_line(1.0))
    throw Stop{Outcome::runtime_error,
               fmt::format("the result channel carried a message after the last reply: {}; "
                           "nothing this worker reported is used",
                           sanitize_utf8(tail_of(*stray, 200)))};
  m_cand->proc->wait(after(5.0));
}

void Evaluator::Impl::Run::finalise(const eval::TimingRecord& rec) {
  // The counted time, the parent's clock against it, speedup and flags.
  const BaselineRecord& base = *m_base;
  const eval::TimingJudgement tj = eval::judge_timing(rec);
  m_r.candidate_time = tj.stats;
  m_r.baseline_time = base.stats;
  if (tj.off_stream)
    m_r.flags |= flag_off_stream;
  const GpuCeilings& ceil = m_impl.opts.ceilings;
  const double ws_allowance_ms =
      ceil.bandwidth_gbs > 0.0
          ? static_cast<double>(m_ready.workspace_bytes) / (0.5 * ceil.bandwidth_gbs * 1e6)
          : 0.0;
  const eval::ClockBound cb = eval::clock_bound(base.record, rec, ws_allowance_ms);
  if (std::getenv("KB_EVAL_TRACE"))
    fmt::print(stderr,
               "kbench eval trace: {} samples, off-stream threshold {:.4f} ms ({} of {} samples "
               "off-stream); clock: loop overhead {:.4f} ms, estimate {:.4f} ms, claimed host "
               "{:.4f} ms, slack {:.4f} ms, corroborated {}; baseline host {:.4f} ms wall/sample "
               "{:.4f} ms; candidate wall/sample {:.4f} ms\n",
               rec.stream_ms.size(), tj.rule.threshold_ms, tj.off_stream_samples,
               rec.stream_ms.size(), cb.loop_overhead_ms, cb.estimate_ms, cb.claimed_ms,
               cb.slack_ms, cb.corroborated, median_of(base.record.host_ms),
               base.wall_per_sample_ms, median_wall_per_sample(rec));
  if (!cb.corroborated) {
    m_r.flags |= flag_unverified_time;
    m_r.message = fmt::format("the parent's clock does not corroborate the claimed time: host "
                              "span {:.4f} ms per sample claimed, {:.4f} ms measured from the "
                              "rounds' wall time (slack {:.4f} ms)",
                              cb.claimed_ms, cb.estimate_ms, cb.slack_ms);
  }
  const TimingStats& ct = *m_r.candidate_time;
  const double cand_ms = m_kernelbench ? ct.mean_ms : ct.median_ms;
  const double base_ms = m_kernelbench ? base.stats.mean_ms : base.stats.median_ms;
  m_r.outcome = Outcome::correct;
  if (cand_ms > 0.0) {
    m_r.speedup = base_ms / cand_ms;
    const double floor_ms = floor_time_ms(m_problem, ceil);
    m_r.roofline_pct = floor_ms / cand_ms * 100.0;
    // The floor comes from a measured copy, which a streaming kernel can match to within noise:
    // only a clear margin beyond it is suspicious.
    if (cand_ms < floor_ms / k_roofline_margin)
      m_r.flags |= flag_above_roofline;
  }
  if (m_r.speedup > m_opts.speedup_threshold)
    m_r.flags |= flag_speedup_threshold;
  if (ct.stop_reason == "time_cap" || ct.stop_reason == "sample_cap")
    m_r.flags |= flag_noisy;
}

void Evaluator::Impl::Run::stopped(const Stop& stop) {
  m_r.outcome = stop.outcome;
  m_r.message = stop.message;
  if (m_r.outcome != Outcome::mismatch)
    m_r.mismatch.reset();
  if (m_t_ready != m_t0 && m_r.check_s == 0.0)
    m_r.check_s = seconds_since(m_t_ready);
  if (m_t_timing != m_t0 && m_r.time_s == 0.0)
    m_r.time_s = seconds_since(m_t_timing);
  if (m_cand) {
    m_cand->proc->kill_group();
    m_cand->proc->wait(after(2.0));
  }
}

EvalResult Evaluator::Impl::run(const Problem& problem, const CompileResult& cr) {
  EvalResult r;
  if (!preflight(cr, r)) {
    spare.reset();
    return r;
  }
  // The next candidate's worker starts as soon as this evaluation ends (its CUDA start-up then
  // overlaps whatever comes before the next evaluation); no candidate code is loaded in it.
  struct PrespawnNext {
    Impl& self;
    ~PrespawnNext() { self.prespawn(); }
  } prespawn_next{*this};
  Run run(*this, problem, r);
  try {
    run.start(cr);
    run.checks();
    const eval::TimingRecord rec = run.time();
    // Nothing is timed from here on: the next worker's CUDA start-up overlaps the judging.
    prespawn();
    run.judge_kept(rec);
    run.finish();
    run.finalise(rec);
  } catch (const Stop& stop) {
    run.stopped(stop);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Doctor and calibration
// ---------------------------------------------------------------------------------------------

std::string gpu_arch(int cc_major, int cc_minor) {
  if (cc_major <= 0)
    return "";
  if (cc_major == 9 && cc_minor == 0)
    return "sm_90a";
  return fmt::format("sm_{}{}", cc_major, cc_minor);
}

std::string GpuInfo::arch() const {
  return gpu_arch(cc_major, cc_minor);
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
      run_worker_mode(worker_path, "calibrate",
                      {{"CUDA_VISIBLE_DEVICES", worker_visible_device(gpu)}}, timeout_s, &failure);
  if (j.is_null())
    throw Error(failure);
  if (!j.value("ok", false))
    throw Error("calibration failed: " + j.value("error", std::string("?")));
  return j.at("ceilings").get<GpuCeilings>();
}

} // namespace kb
