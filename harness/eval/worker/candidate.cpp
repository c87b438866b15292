// Candidate mode: loads one candidate object and does exactly what the parent asks, one command
// at a time: run a check (shipping the outputs to the reference process's mailboxes), prepare
// the timing, run a round of samples, ship a kept sample's outputs. Judges nothing.
#include <chrono>
#include <cstring>
#include <memory>

#include <dlfcn.h>

#include <fmt/format.h>

#include "kbench/kb_abi.h"
#include "worker.hpp"

namespace kb::worker {

namespace {

using Clock = std::chrono::steady_clock;

struct Candidate {
  void* handle = nullptr;
  kb_forward_fn forward = nullptr;
  kb_workspace_bytes_fn workspace_bytes = nullptr;
  kb_setup_fn setup = nullptr;
  kb_teardown_fn teardown = nullptr;
};

Candidate load_candidate(const std::string& path) {
  Candidate c;
  c.handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!c.handle) {
    const char* e = ::dlerror();
    throw CandidateFailure(Outcome::load_error, fmt::format("dlopen failed: {}", e ? e : "?"));
  }
  c.forward = reinterpret_cast<kb_forward_fn>(::dlsym(c.handle, "kb_forward"));
  if (!c.forward)
    throw CandidateFailure(Outcome::load_error,
                           "the object does not export kb_forward (declare it extern \"C\")");
  c.workspace_bytes =
      reinterpret_cast<kb_workspace_bytes_fn>(::dlsym(c.handle, "kb_workspace_bytes"));
  c.setup = reinterpret_cast<kb_setup_fn>(::dlsym(c.handle, "kb_setup"));
  c.teardown = reinterpret_cast<kb_teardown_fn>(::dlsym(c.handle, "kb_teardown"));
  return c;
}

// ABI views of device tensors; names point into the problem, which outlives them.
std::vector<kb_tensor> abi_view(const std::vector<gpu::DeviceTensor>& ts,
                                const std::vector<std::string>& names, bool with_data) {
  std::vector<kb_tensor> v(ts.size());
  for (std::size_t i = 0; i < ts.size(); ++i) {
    kb_tensor& k = v[i];
    std::memset(&k, 0, sizeof k);
    k.data = with_data ? ts[i].data : nullptr;
    k.dtype = abi_dtype(ts[i].dtype);
    k.ndim = static_cast<int32_t>(ts[i].shape.size());
    const Shape st = contiguous_strides(ts[i].shape);
    for (std::size_t d = 0; d < ts[i].shape.size() && d < KB_MAX_DIMS; ++d) {
      k.shape[d] = ts[i].shape[d];
      k.strides[d] = st[d];
    }
    k.name = names[i].c_str();
  }
  return v;
}

struct Mailbox {
  std::vector<void*> ptrs;
  ~Mailbox() {
    for (void* p : ptrs)
      if (p)
        cudaIpcCloseMemHandle(p);
  }
};

void hex_to_bytes(const std::string& hex, void* out, std::size_t n) {
  if (hex.size() != 2 * n)
    throw Error("malformed IPC handle from the parent");
  auto* b = static_cast<unsigned char*>(out);
  for (std::size_t i = 0; i < n; ++i)
    b[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
}

// A CUDA error raised while the candidate is loaded is the candidate's: a sticky error from its
// kernel surfaces in whatever call comes next. Named after the candidate's last call, without
// the harness's sources.
[[noreturn]] void blame(const gpu::CudaError& e, const std::string& last_call) {
  throw CandidateFailure(Outcome::runtime_error,
                         fmt::format("after {}: {}: {}", last_call, e.name, e.text), e.name);
}

class Session {
public:
  Session(Channel& ch, const eval::CandidateJob& job, Clock::time_point t_start)
      : m_ch(ch), m_problem(job.problem), m_protocol(job.protocol) {
    for (const auto& t : m_problem.inputs)
      m_in_names.push_back(t.name);
    for (const auto& t : m_problem.params)
      m_in_names.push_back(t.name);
    m_out_names = m_problem.outputs;
    KB_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
    // Mailboxes: the reference process's buffers, one per output; only copies land there.
    for (const auto& h : job.mailboxes) {
      cudaIpcMemHandle_t handle;
      hex_to_bytes(h, &handle, sizeof handle);
      void* p = nullptr;
      KB_CUDA_CHECK(cudaIpcOpenMemHandle(&p, handle, cudaIpcMemLazyEnablePeerAccess));
      m_mail.ptrs.push_back(p);
    }
    if (m_mail.ptrs.size() != m_problem.outputs.size())
      throw Error("mailbox count differs from the problem's outputs");

    m_in = alloc_inputs(m_problem, true);
    m_out = alloc_outputs(m_problem, false, true);
    for (const auto* set : {&m_in, &m_out})
      for (const auto& b : set->buffers)
        b.arm(m_stream);
    m_cand = load_candidate(job.so_path);
    const auto in_shapes = abi_view(m_in.tensors, m_in_names, false);
    const auto out_shapes = abi_view(m_out.tensors, m_out_names, false);
    std::size_t ws_bytes = 0;
    m_last_call = "kb_workspace_bytes";
    if (m_cand.workspace_bytes)
      ws_bytes = m_cand.workspace_bytes(in_shapes.data(), static_cast<int>(in_shapes.size()),
                                        out_shapes.data(), static_cast<int>(out_shapes.size()));
    if (ws_bytes > (64ull << 30))
      throw CandidateFailure(
          Outcome::runtime_error,
          fmt::format("kb_workspace_bytes asked for {} bytes (at most 64 GiB)", ws_bytes));
    m_ws = std::make_unique<Workspace>(ws_bytes);
    m_ws->buffer().arm(m_stream);
    if (m_cand.setup) {
      m_last_call = "kb_setup";
      const int rc = m_cand.setup(in_shapes.data(), static_cast<int>(in_shapes.size()),
                                  out_shapes.data(), static_cast<int>(out_shapes.size()));
      KB_CUDA_CHECK(cudaDeviceSynchronize());
      if (rc != 0)
        throw CandidateFailure(Outcome::runtime_error, fmt::format("kb_setup returned {}", rc));
    }
    KB_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    eval::Ready ready;
    ready.start_s = std::chrono::duration<double>(Clock::now() - t_start).count();
    ready.workspace_bytes = ws_bytes;
    ready.device = device_info();
    m_ch.reply(ready);
  }

  ~Session() {
    m_timer.reset();
    if (m_stream)
      cudaStreamDestroy(m_stream);
  }

  void call(const std::vector<gpu::DeviceTensor>& i, const std::vector<gpu::DeviceTensor>& o,
            cudaStream_t s) {
    auto iv = abi_view(i, m_in_names, true);
    auto ov = abi_view(o, m_out_names, true);
    m_last_call = "kb_forward";
    const int rc = m_cand.forward(iv.data(), static_cast<int>(iv.size()), ov.data(),
                                  static_cast<int>(ov.size()), m_ws->ptr(), s);
    if (rc != 0)
      throw CandidateFailure(Outcome::runtime_error, fmt::format("kb_forward returned {}", rc));
  }

  void ship(const TensorSet& outputs) {
    for (std::size_t k = 0; k < outputs.tensors.size(); ++k)
      KB_CUDA_CHECK(cudaMemcpyAsync(m_mail.ptrs[k], outputs.tensors[k].data,
                                    outputs.tensors[k].bytes(), cudaMemcpyDeviceToDevice,
                                    m_stream));
    KB_CUDA_CHECK(cudaStreamSynchronize(m_stream));
  }

  void check(const eval::RunCheck& rc) {
    eval::CheckDone done;
    done.index = rc.check.index;
    fill_inputs(m_in, rc.check.dists, rc.check.seed, m_stream);
    poison_all(m_out, m_stream);
    m_ws->scramble(m_stream);
    KB_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    call(m_in.tensors, m_out.tensors, m_stream);
    KB_CUDA_CHECK(cudaDeviceSynchronize());
    watch_guards();
    done.input_checksums = checksums(m_in, m_stream);
    const auto out_sums = checksums(m_out, m_stream);
    ship(m_out);
    if (rc.repeat) {
      // Same inputs again: the bits must repeat.
      poison_all(m_out, m_stream);
      m_ws->scramble(m_stream);
      call(m_in.tensors, m_out.tensors, m_stream);
      KB_CUDA_CHECK(cudaDeviceSynchronize());
      watch_guards();
      done.deterministic = checksums(m_out, m_stream) == out_sums;
    }
    done.guards_intact = m_guards.intact(m_stream);
    m_ch.reply(done);
  }

  void time_prepare(const eval::TimePrepare& prep) {
    CallFn fn = [this](const std::vector<gpu::DeviceTensor>& i,
                       const std::vector<gpu::DeviceTensor>& o, cudaStream_t s) { call(i, o, s); };
    TimerHooks hooks;
    hooks.before_call = [this](cudaStream_t s) { m_ws->scramble(s); };
    hooks.after_call = [this](GuardWatch& g, cudaStream_t s) { g.watch(m_ws->buffer(), s); };
    m_timer = std::make_unique<SampleTimer>(m_problem, prep, m_stream, std::move(fn),
                                            std::move(hooks), std::move(m_in), std::move(m_out));
    m_ch.reply(m_timer->ready());
  }

  void time_round(const eval::TimeRound& r) {
    if (!m_timer)
      throw Error("time_round before time_prepare");
    m_ch.reply(m_timer->round(r.samples));
  }

  void ship_kept(const eval::ShipKept& k) {
    if (!m_timer)
      throw Error("ship_kept before time_prepare");
    const auto& kept = m_timer->kept(k.slot);
    ship(kept.outputs);
    eval::Shipped s;
    s.slot = k.slot;
    s.sample = kept.sample;
    s.input_checksums = kept.input_checksums;
    m_ch.reply(s);
  }

  void finish() {
    if (m_cand.teardown) {
      m_last_call = "kb_teardown";
      m_cand.teardown();
    }
    m_ch.reply(eval::Finished{});
  }

  const std::string& last_call() const { return m_last_call; }

private:
  void watch_guards() {
    m_guards.watch(m_out, m_stream);
    m_guards.watch(m_in, m_stream);
    m_guards.watch(m_ws->buffer(), m_stream);
  }

  Channel& m_ch;
  Problem m_problem;
  Protocol m_protocol = Protocol::kbench;
  std::vector<std::string> m_in_names, m_out_names;
  cudaStream_t m_stream = nullptr;
  Mailbox m_mail;
  TensorSet m_in, m_out;
  Candidate m_cand;
  std::unique_ptr<Workspace> m_ws;
  GuardWatch m_guards;
  std::unique_ptr<SampleTimer> m_timer;
  std::string m_last_call = "loading the object";
};

void reply_failure(Channel& ch, const std::string& outcome, const std::string& message,
                   const std::string& cuda_error = {}) {
  eval::Failure f;
  f.outcome = outcome;
  f.message = message;
  f.cuda_error = cuda_error;
  ch.reply(f);
}

} // namespace

int run_candidate() {
  const auto t_start = Clock::now();
  Channel ch;
  std::unique_ptr<Session> session;
  try {
    // CUDA starts before the job arrives, so start-up overlaps the parent's preparations.
    start_cuda();
    ch.reply(eval::Started{device_info()});
    eval::Envelope cmd;
    if (!ch.next(cmd))
      return 2;
    ch.set_token(cmd.token);
    if (cmd.type != eval::message_type<eval::CandidateJob>())
      throw Error("the first command must be the job");
    try {
      session = std::make_unique<Session>(ch, cmd.body.get<eval::CandidateJob>(), t_start);
      while (ch.next(cmd)) {
        if (cmd.type == eval::message_type<eval::RunCheck>())
          session->check(cmd.body.get<eval::RunCheck>());
        else if (cmd.type == eval::message_type<eval::TimePrepare>())
          session->time_prepare(cmd.body.get<eval::TimePrepare>());
        else if (cmd.type == eval::message_type<eval::TimeRound>())
          session->time_round(cmd.body.get<eval::TimeRound>());
        else if (cmd.type == eval::message_type<eval::ShipKept>())
          session->ship_kept(cmd.body.get<eval::ShipKept>());
        else if (cmd.type == eval::message_type<eval::Finish>()) {
          session->finish();
          return 0;
        } else
          throw Error(fmt::format("unknown command '{}'", cmd.type));
      }
      return 0;
    } catch (const gpu::CudaError& e) {
      blame(e, session ? session->last_call() : std::string("loading the object"));
    }
  } catch (const CandidateFailure& e) {
    reply_failure(ch, std::string(outcome_name(e.outcome)), e.what(), e.cuda_error);
  } catch (const std::exception& e) {
    // Anything else after candidate code ran is most often the candidate's doing too.
    reply_failure(ch, "runtime_error",
                  session ? fmt::format("after {}: {}", session->last_call(), e.what())
                          : std::string(e.what()));
  }
  return 1;
}

} // namespace kb::worker
