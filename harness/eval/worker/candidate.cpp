// Candidate mode: loads one candidate object, runs the correctness checks (shipping each output
// to the reference process's mailbox and waiting for its word), then times it. Judges nothing.
#include <chrono>
#include <cstring>

#include <dlfcn.h>

#include <fmt/format.h>

#include "kbench/kb_abi.h"
#include "protocol.hpp"
#include "worker.hpp"

namespace kb::worker {

namespace {

using Clock = std::chrono::steady_clock;

// Failure of the candidate itself (not of the harness): reported with an outcome.
struct CandidateFailure : Error {
  CandidateFailure(Outcome o, const std::string& what) : Error(what), outcome(o) {}
  Outcome outcome;
};

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

// Waits for the parent's word on the last shipped outputs; false means stop now.
bool parent_says_continue() {
  nlohmann::json cmd;
  if (!read_message(cmd))
    return false;
  return cmd.value("cmd", "") == "continue";
}

int run(const nlohmann::json& job) {
  const auto t_start = Clock::now();
  const Problem problem = job.at("problem").get<Problem>();
  const auto checks = job.at("checks").get<std::vector<eval::CheckSpec>>();
  const auto timing = job.at("timing").get<TimingOptions>();
  const std::string protocol = job.at("protocol").get<std::string>();
  const uint64_t timing_seed = job.at("timing_seed").get<uint64_t>();

  std::vector<std::string> in_names, out_names;
  for (const auto& t : problem.inputs)
    in_names.push_back(t.name);
  for (const auto& t : problem.params)
    in_names.push_back(t.name);
  out_names = problem.outputs;

  cudaStream_t stream = nullptr;
  KB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  // Mailboxes: the reference process's buffers, one per output; only copies land there.
  Mailbox mail;
  for (const auto& h : job.at("mailboxes")) {
    cudaIpcMemHandle_t handle;
    hex_to_bytes(h.get<std::string>(), &handle, sizeof handle);
    void* p = nullptr;
    KB_CUDA_CHECK(cudaIpcOpenMemHandle(&p, handle, cudaIpcMemLazyEnablePeerAccess));
    mail.ptrs.push_back(p);
  }
  if (mail.ptrs.size() != problem.outputs.size())
    throw Error("mailbox count differs from the problem's outputs");

  const Candidate cand = load_candidate(job.at("so_path").get<std::string>());
  TensorSet in = alloc_inputs(problem);
  TensorSet out = alloc_outputs(problem, false);
  const auto in_shapes = abi_view(in.tensors, in_names, false);
  const auto out_shapes = abi_view(out.tensors, out_names, false);
  std::size_t ws_bytes = 0;
  if (cand.workspace_bytes)
    ws_bytes = cand.workspace_bytes(in_shapes.data(), static_cast<int>(in_shapes.size()),
                                    out_shapes.data(), static_cast<int>(out_shapes.size()));
  if (ws_bytes > (64ull << 30))
    throw CandidateFailure(Outcome::runtime_error,
                           fmt::format("kb_workspace_bytes asked for {} bytes", ws_bytes));
  gpu::DeviceBuffer workspace(std::max<std::size_t>(ws_bytes, 16));
  void* ws_ptr = ws_bytes > 0 ? workspace.get() : nullptr;
  if (cand.setup) {
    const int rc = cand.setup(in_shapes.data(), static_cast<int>(in_shapes.size()),
                              out_shapes.data(), static_cast<int>(out_shapes.size()));
    check_candidate_cuda(cudaDeviceSynchronize(), "after kb_setup:");
    if (rc != 0)
      throw CandidateFailure(Outcome::runtime_error, fmt::format("kb_setup returned {}", rc));
  }

  const CallFn call = [&](const std::vector<gpu::DeviceTensor>& i,
                          const std::vector<gpu::DeviceTensor>& o, cudaStream_t s) {
    auto iv = abi_view(i, in_names, true);
    auto ov = abi_view(o, out_names, true);
    const int rc = cand.forward(iv.data(), static_cast<int>(iv.size()), ov.data(),
                                static_cast<int>(ov.size()), ws_ptr, s);
    if (rc != 0)
      throw CandidateFailure(Outcome::runtime_error, fmt::format("kb_forward returned {}", rc));
  };
  auto ship = [&](const TensorSet& outputs) {
    for (std::size_t k = 0; k < outputs.tensors.size(); ++k)
      KB_CUDA_CHECK(cudaMemcpyAsync(mail.ptrs[k], outputs.tensors[k].data,
                                    outputs.tensors[k].bytes(), cudaMemcpyDeviceToDevice, stream));
    KB_CUDA_CHECK(cudaStreamSynchronize(stream));
  };
  emit({{"event", "ready"},
        {"start_s", std::chrono::duration<double>(Clock::now() - t_start).count()}});

  // Correctness: candidate first; the reference process computes its side only after this.
  for (const auto& c : checks) {
    fill_inputs(in, c.dists, c.seed, stream);
    poison_all(out, stream);
    KB_CUDA_CHECK(cudaStreamSynchronize(stream));
    call(in.tensors, out.tensors, stream);
    check_candidate_cuda(cudaDeviceSynchronize(), "during kb_forward:");
    const auto in_sums = checksums(in, stream);
    const auto out_sums = checksums(out, stream);
    ship(out);
    bool deterministic = true;
    if (c.index == 0 && protocol != "kernelbench") {
      // Same inputs again: the bits must repeat.
      poison_all(out, stream);
      call(in.tensors, out.tensors, stream);
      check_candidate_cuda(cudaDeviceSynchronize(), "during kb_forward (repeat):");
      deterministic = checksums(out, stream) == out_sums;
    }
    emit({{"event", "check"},
          {"index", c.index},
          {"input_checksums", in_sums},
          {"deterministic", deterministic}});
    if (!parent_says_continue())
      return 0;
  }

  // Timing, on the problem's own distributions.
  std::vector<Distribution> dists;
  for (const auto& t : problem.inputs)
    dists.push_back(t.dist);
  for (const auto& t : problem.params)
    dists.push_back(t.dist);
  emit({{"event", "timing_start"}});
  TimingRun tr = run_timing(problem, dists, timing, protocol, timing_seed, stream, call,
                            std::move(in), std::move(out));
  for (const auto& [set, seed] : tr.judged) {
    ship(tr.outputs[set]);
    emit({{"event", "timed_check"},
          {"set", set},
          {"seed", seed},
          {"input_checksums", checksums(tr.inputs[set], stream)}});
    if (!parent_says_continue())
      return 0;
  }
  if (cand.teardown)
    cand.teardown();
  emit({{"event", "done"},
        {"timing", tr.stats},
        {"off_stream", tr.off_stream},
        {"off_stream_samples", tr.off_stream_samples},
        {"sets", tr.sets}});
  return 0;
}

} // namespace

int run_candidate() {
  try {
    // CUDA starts before the job arrives, so start-up overlaps the parent's preparations.
    KB_CUDA_CHECK(cudaFree(nullptr));
    nlohmann::json job;
    if (!read_message(job))
      return 2;
    return run(job);
  } catch (const CudaFailure& e) {
    emit({{"event", "failure"},
          {"outcome", "runtime_error"},
          {"cuda_error", e.name},
          {"message", e.what()}});
  } catch (const CandidateFailure& e) {
    emit({{"event", "failure"}, {"outcome", outcome_name(e.outcome)}, {"message", e.what()}});
  } catch (const std::exception& e) {
    // Errors of harness calls after candidate code ran are most often the candidate's doing
    // (a sticky CUDA error surfaces in the next call): reported as runtime errors.
    emit({{"event", "failure"}, {"outcome", "runtime_error"}, {"message", e.what()}});
  }
  return 1;
}

} // namespace kb::worker
