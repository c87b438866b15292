// kbench-worker plumbing: result channel, problem tensors and the timing loop shared by the
// candidate and the baseline (one code path for both, so their times compare).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "worker.hpp"

namespace kb::worker {

void emit(const nlohmann::json& j) {
  static const int fd = ::fcntl(3, F_GETFD) != -1 ? 3 : 1;
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return; // the parent is gone; nothing else to tell
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

bool read_message(nlohmann::json& j) {
  std::string line;
  if (!std::getline(std::cin, line))
    return false;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("malformed message from the parent: {}", e.what()));
  }
  return true;
}

void check_candidate_cuda(cudaError_t e, const char* where) {
  if (e == cudaSuccess)
    return;
  throw CudaFailure(cudaGetErrorName(e),
                    fmt::format("{} {}: {}", where, cudaGetErrorName(e), cudaGetErrorString(e)));
}

int32_t abi_dtype(DType t) {
  return static_cast<int32_t>(t);
}

std::size_t TensorSet::bytes() const {
  std::size_t b = 0;
  for (const auto& t : tensors)
    b += t.bytes();
  return b;
}

namespace {
void add_tensor(TensorSet& s, const Shape& shape, DType dtype) {
  gpu::DeviceTensor t;
  t.shape = shape;
  t.dtype = dtype;
  s.buffers.emplace_back(std::max<std::size_t>(t.bytes(), 16));
  t.data = s.buffers.back().get();
  s.tensors.push_back(std::move(t));
}
} // namespace

TensorSet alloc_inputs(const Problem& p) {
  TensorSet s;
  for (const auto& t : p.inputs)
    add_tensor(s, t.shape, t.dtype);
  for (const auto& t : p.params)
    add_tensor(s, t.shape, t.dtype);
  return s;
}

TensorSet alloc_outputs(const Problem& p, bool f64) {
  TensorSet s;
  for (const auto& o : p.outputs) {
    const ValueSpec& v = p.output_spec(o);
    add_tensor(s, v.shape, f64 ? DType::f64 : v.dtype);
  }
  return s;
}

std::size_t input_bytes(const Problem& p) {
  std::size_t b = 0;
  for (const auto& t : p.inputs)
    b += static_cast<std::size_t>(numel(t.shape)) * dtype_size(t.dtype);
  for (const auto& t : p.params)
    b += static_cast<std::size_t>(numel(t.shape)) * dtype_size(t.dtype);
  return b;
}

std::size_t output_bytes(const Problem& p) {
  std::size_t b = 0;
  for (const auto& o : p.outputs) {
    const ValueSpec& v = p.output_spec(o);
    b += static_cast<std::size_t>(numel(v.shape)) * dtype_size(v.dtype);
  }
  return b;
}

void fill_inputs(const TensorSet& s, const std::vector<Distribution>& dists, uint64_t seed,
                 cudaStream_t stream) {
  if (dists.size() != s.tensors.size())
    throw Error(fmt::format("{} distributions for {} tensors", dists.size(), s.tensors.size()));
  for (std::size_t j = 0; j < s.tensors.size(); ++j)
    gpu::fill(s.tensors[j], dists[j], seed, j, stream);
}

void poison_all(const TensorSet& s, cudaStream_t stream) {
  for (const auto& t : s.tensors)
    gpu::poison(t, stream);
}

std::vector<uint64_t> checksums(const TensorSet& s, cudaStream_t stream) {
  std::vector<uint64_t> c;
  for (const auto& t : s.tensors)
    c.push_back(gpu::checksum(t, stream));
  return c;
}

namespace {

using Clock = std::chrono::steady_clock;

struct Events {
  cudaEvent_t start = nullptr, stream_stop = nullptr, end = nullptr;
  Events() {
    KB_CUDA_CHECK(cudaEventCreate(&start));
    KB_CUDA_CHECK(cudaEventCreate(&stream_stop));
    KB_CUDA_CHECK(cudaEventCreate(&end));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stream_stop);
    cudaEventDestroy(end);
  }
};

float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0.f;
  check_candidate_cuda(cudaEventElapsedTime(&ms, a, b), "timing events");
  return ms;
}

} // namespace

TimingRun run_timing(const Problem& p, const std::vector<Distribution>& dists,
                     const TimingOptions& opts, const std::string& protocol, uint64_t seed_base,
                     cudaStream_t stream, const CallFn& call, TensorSet reuse_in,
                     TensorSet reuse_out) {
  TimingRun run;
  const bool kernelbench = protocol == "kernelbench";
  int device = 0;
  KB_CUDA_CHECK(cudaGetDevice(&device));
  int l2_bytes = 0;
  KB_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
  // KernelBench flushes with 256 MiB; kbench with twice the L2 (enough to evict all of it).
  const std::size_t flush_bytes =
      kernelbench ? (256u << 20)
                  : std::max<std::size_t>(2u * static_cast<std::size_t>(l2_bytes), 1u << 20);
  gpu::DeviceBuffer flush(flush_bytes);

  // Rotating sets: as many as fit in a share of the free memory, at least 2 where memory allows
  // (kbench); the caller's buffers, when given, are the first.
  const bool reuse = !reuse_in.tensors.empty() && !reuse_out.tensors.empty();
  if (reuse) {
    run.inputs.push_back(std::move(reuse_in));
    run.outputs.push_back(std::move(reuse_out));
  }
  int sets = 1;
  if (!kernelbench) {
    std::size_t free_b = 0, total_b = 0;
    KB_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const std::size_t per_set = std::max<std::size_t>(input_bytes(p) + output_bytes(p), 1);
    const auto fit = static_cast<long long>(opts.memory_fraction * static_cast<double>(free_b) /
                                            static_cast<double>(per_set));
    const long long have = reuse ? 1 : 0;
    sets = static_cast<int>(std::clamp<long long>(have + fit, std::min<long long>(2, have + fit),
                                                  std::max(2, opts.max_sets)));
    sets = std::max(sets, 1);
  }
  for (int s = 0; s < sets; ++s) {
    if (s >= static_cast<int>(run.inputs.size())) {
      run.inputs.push_back(alloc_inputs(p));
      run.outputs.push_back(alloc_outputs(p, false));
    }
    fill_inputs(run.inputs[s], dists, seed_base + static_cast<uint64_t>(s), stream);
  }
  run.sets = sets;
  std::vector<uint64_t> last_seed(sets);
  for (int s = 0; s < sets; ++s)
    last_seed[s] = seed_base + static_cast<uint64_t>(s);
  KB_CUDA_CHECK(cudaStreamSynchronize(stream));

  auto sync_device = [](const char* where) {
    check_candidate_cuda(cudaDeviceSynchronize(), where);
  };
  const int warmup = kernelbench ? 3 : opts.warmup;
  for (int i = 0; i < warmup; ++i) {
    call(run.inputs[0].tensors, run.outputs[0].tensors, stream);
    sync_device("warm-up call");
  }

  Events ev;
  std::vector<double> samples, host;
  const auto t_begin = Clock::now();
  std::string stop = "fixed";
  const int n_fixed = 100;
  uint64_t next_seed = seed_base + static_cast<uint64_t>(sets);
  for (int i = 0;; ++i) {
    if (kernelbench) {
      if (i >= n_fixed)
        break;
    } else {
      const double spent = std::chrono::duration<double>(Clock::now() - t_begin).count();
      if (i >= opts.max_samples) {
        stop = "sample_cap";
        break;
      }
      if (i > 0 && i % 10 == 0 && timing_converged(samples, opts.target_rse, opts.min_samples)) {
        stop = "converged";
        break;
      }
      if (spent > opts.time_cap_s && i >= 3) {
        stop = "time_cap";
        break;
      }
    }
    const int s = i % sets;
    const auto& in = run.inputs[s];
    const auto& out = run.outputs[s];
    if (!kernelbench) {
      // Fresh values in every sample: results cached by address or by call count go stale.
      last_seed[s] = next_seed++;
      fill_inputs(in, dists, last_seed[s], stream);
      poison_all(out, stream);
    }
    KB_CUDA_CHECK(cudaMemsetAsync(flush.get(), i & 0xff, flush.size(), stream));
    sync_device("before a timed call");
    const auto h0 = Clock::now();
    KB_CUDA_CHECK(cudaEventRecord(ev.start, stream));
    call(in.tensors, out.tensors, stream);
    KB_CUDA_CHECK(cudaEventRecord(ev.stream_stop, stream));
    if (kernelbench) {
      sync_device("timed call");
    } else {
      // The device-wide synchronisation waits for work on any stream; the end event after it
      // therefore covers work the candidate hid from its stream.
      sync_device("timed call");
      KB_CUDA_CHECK(cudaEventRecord(ev.end, stream));
      check_candidate_cuda(cudaEventSynchronize(ev.end), "timed call");
    }
    const auto h1 = Clock::now();
    const double host_ms = std::chrono::duration<double, std::milli>(h1 - h0).count();
    const double stream_ms = elapsed_ms(ev.start, ev.stream_stop);
    double t = stream_ms;
    if (!kernelbench) {
      const double device_ms = elapsed_ms(ev.start, ev.end);
      if (device_ms > 1.5 * stream_ms + 0.05) {
        ++run.off_stream_samples;
        t = device_ms;
      }
    }
    if (host_ms > 1.5 * t + 0.05)
      ++run.off_stream_samples;
    samples.push_back(t);
    host.push_back(host_ms);
  }
  run.stats = summarize_timing(samples, host, stop);
  run.off_stream = run.off_stream_samples > 0 &&
                   run.off_stream_samples >= std::max<int>(1, run.stats.samples / 10);
  // The sets used by the last samples hold the outputs of their last calls.
  const int n = run.stats.samples;
  for (int k = 0; k < std::min(opts.judged_sets, sets) && n - 1 - k >= 0; ++k) {
    const int s = (n - 1 - k) % sets;
    run.judged.emplace_back(s, last_seed[s]);
  }
  return run;
}

} // namespace kb::worker
