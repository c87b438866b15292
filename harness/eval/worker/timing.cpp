// The sample timer: rotating input sets re-drawn before every sample, outputs poisoned, L2
// flushed, events on the stream around the call and the host clock around the call and a
// device-wide synchronisation; empty calls calibrate the overhead between the two; outputs of
// randomly chosen samples are kept for judging. One code path for candidate and baseline.
#include <algorithm>
#include <atomic>
#include <chrono>

#include <fmt/format.h>

#include "worker.hpp"

namespace kb::worker {

namespace {

using Clock = std::chrono::steady_clock;

// How long a launch hold waits for the host before it lets the stream go on its own.
constexpr double k_hold_timeout_s = 0.05;

// Timing errors during a call are the caller's to attribute: they surface as CudaError.
float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0.f;
  KB_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms;
}

} // namespace

SampleTimer::SampleTimer(const Problem& p, const eval::TimePrepare& prep, cudaStream_t stream,
                         CallFn call, TimerHooks hooks, TensorSet reuse_in, TensorSet reuse_out)
    : m_problem(p), m_prep(prep), m_kernelbench(is_kernelbench(prep.protocol)), m_stream(stream),
      m_call(std::move(call)), m_hooks(std::move(hooks)), m_dists(own_distributions(p)),
      m_keep_rng(prep.keep_secret) {
  const TimingOptions& opts = m_prep.timing;
  int device = 0;
  KB_CUDA_CHECK(cudaGetDevice(&device));
  int l2_bytes = 0;
  KB_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
  // KernelBench flushes with 256 MiB; kbench with twice the L2 (enough to evict all of it).
  const std::size_t flush_bytes =
      m_kernelbench ? (256u << 20)
                    : std::max<std::size_t>(2u * static_cast<std::size_t>(l2_bytes), 1u << 20);
  m_flush = gpu::DeviceBuffer(flush_bytes);
  KB_CUDA_CHECK(cudaEventCreate(&m_start));
  KB_CUDA_CHECK(cudaEventCreate(&m_stop));
  KB_CUDA_CHECK(cudaEventCreate(&m_stop_wide));
  // KernelBench times its own way (the host's launch path included); kbench may hold the launch.
  m_hold = opts.hold_launch && !m_kernelbench;
  if (m_hold) {
    KB_CUDA_CHECK(cudaEventCreateWithFlags(&m_held, cudaEventDisableTiming));
    void* host = nullptr;
    KB_CUDA_CHECK(cudaHostAlloc(&host, 2 * sizeof(int), cudaHostAllocMapped));
    m_flags = static_cast<volatile int*>(host);
    m_flags[0] = m_flags[1] = 0;
    void* dev = nullptr;
    KB_CUDA_CHECK(cudaHostGetDevicePointer(&dev, host, 0));
    m_flags_dev = static_cast<volatile int*>(dev);
  }

  // Kept slots first (they are what makes skipping samples detectable), then the rotating sets
  // from what is left of the memory share.
  const std::size_t out_b = std::max<std::size_t>(output_bytes(p), 1);
  std::size_t free_b = 0, total_b = 0;
  KB_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const auto kept_fit =
      static_cast<long long>(0.15 * static_cast<double>(free_b) / static_cast<double>(out_b));
  const int kept = static_cast<int>(std::clamp<long long>(
      kept_fit, std::min<long long>(1, m_prep.kept_slots), m_prep.kept_slots));
  for (int k = 0; k < kept; ++k) {
    Kept slot;
    slot.outputs = alloc_outputs(p, false);
    m_kept.push_back(std::move(slot));
  }
  m_discard = alloc_outputs(p, false);

  const bool reuse = !reuse_in.tensors.empty() && !reuse_out.tensors.empty();
  if (reuse) {
    m_in.push_back(std::move(reuse_in));
    m_out.push_back(std::move(reuse_out));
  }
  int sets = 1;
  if (!m_kernelbench) {
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
    if (s >= static_cast<int>(m_in.size())) {
      m_in.push_back(alloc_inputs(p, true));
      m_out.push_back(alloc_outputs(p, false, true));
    }
    for (const auto& b : m_in[s].buffers)
      b.arm(m_stream);
    for (const auto& b : m_out[s].buffers)
      b.arm(m_stream);
    fill_inputs(m_in[s], m_dists, eval::mix_seed(m_prep.seed_base, 0xC0FFEEull + s), m_stream);
    m_zones.push_back(GuardWatch::zones_of({&m_in[s], &m_out[s]}));
  }
  if (m_kernelbench) // one fixed input set, drawn once
    fill_inputs(m_in[0], m_dists, eval::sample_seed(m_prep.seed_base, 0, true), m_stream);
  KB_CUDA_CHECK(cudaStreamSynchronize(m_stream));
  m_ready.sets = sets;
  m_ready.kept_slots = kept;

  const int warmup = m_kernelbench ? 3 : opts.warmup;
  for (int i = 0; i < warmup; ++i) {
    if (m_hooks.before_call)
      m_hooks.before_call(m_stream);
    hold();
    m_call(m_in[0].tensors, m_out[0].tensors, m_stream);
    // A call that waits on the GPU inside it (against the ABI) would wait for the hold: it ran
    // into the timeout, and every sample is timed without the hold instead.
    if (release())
      m_hold = false;
    KB_CUDA_CHECK(cudaDeviceSynchronize());
  }
  m_ready.launch_held = m_hold;
  // Empty calls: the same sample with nothing called, so the host clock's overhead over the
  // events (launch latency, synchronisation) is measured in this process, now.
  for (int i = 0; i < opts.empty_calls; ++i) {
    const Sample s = one(i % sets, true, "empty call");
    m_ready.empty_stream_ms.push_back(s.stream_ms);
    m_ready.empty_wide_ms.push_back(s.wide_ms);
    m_ready.empty_host_ms.push_back(s.host_ms);
  }
}

void SampleTimer::hold() {
  if (!m_hold)
    return;
  m_flags[0] = 0;
  m_flags[1] = 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  hold_stream(m_flags_dev, m_flags_dev + 1, k_hold_timeout_s, m_stream);
  // The legacy default stream waits for the hold too, and with it every blocking stream
  // (cudaStreamPerThread): work a call puts there cannot run, unseen, while the timed stream is
  // held.
  KB_CUDA_CHECK(cudaEventRecord(m_held, m_stream));
  KB_CUDA_CHECK(cudaStreamWaitEvent(cudaStreamLegacy, m_held, 0));
}

bool SampleTimer::release() {
  if (!m_hold)
    return false;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  m_flags[0] = 1;
  KB_CUDA_CHECK(cudaDeviceSynchronize());
  return m_flags[1] != 0;
}

SampleTimer::~SampleTimer() {
  if (m_flags)
    cudaFreeHost(const_cast<int*>(m_flags));
  if (m_held)
    cudaEventDestroy(m_held);
  if (m_start)
    cudaEventDestroy(m_start);
  if (m_stop)
    cudaEventDestroy(m_stop);
  if (m_stop_wide)
    cudaEventDestroy(m_stop_wide);
}

SampleTimer::Sample SampleTimer::one(int set, bool empty, const char* what) {
  const auto& in = m_in[set];
  const auto& out = m_out[set];
  if (m_hooks.before_call && !empty)
    m_hooks.before_call(m_stream);
  // Flushing is stream-ordered; the synchronisation below leaves the device idle.
  KB_CUDA_CHECK(cudaMemsetAsync(m_flush.get(), static_cast<int>(m_next_sample & 0xff),
                                m_flush.size(), m_stream));
  KB_CUDA_CHECK(cudaDeviceSynchronize());
  Sample s;
  hold();
  const auto h0 = Clock::now();
  KB_CUDA_CHECK(cudaEventRecord(m_start, m_stream));
  if (!empty)
    m_call(in.tensors, out.tensors, m_stream);
  KB_CUDA_CHECK(cudaEventRecord(m_stop, m_stream));
  // An event on the legacy default stream waits for the legacy stream and for every blocking
  // stream (cudaStreamPerThread among them): the wide span covers work the call put there. The
  // device-wide synchronisation ends the host span after work on any stream.
  KB_CUDA_CHECK(cudaEventRecord(m_stop_wide, cudaStreamLegacy));
  if (m_hold) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    m_flags[0] = 1; // everything is enqueued: let the GPU run it
  }
  const cudaError_t e = cudaDeviceSynchronize();
  const auto h1 = Clock::now();
  if (e != cudaSuccess)
    gpu::check_cuda(e, what, __FILE__, __LINE__);
  s.host_ms = std::chrono::duration<double, std::milli>(h1 - h0).count();
  s.stream_ms = elapsed_ms(m_start, m_stop);
  s.wide_ms = elapsed_ms(m_start, m_stop_wide);
  return s;
}

void SampleTimer::keep(int set, int64_t sample) {
  // Reservoir sampling over every timed sample: each one ends up kept with the same chance, and
  // which are kept depends on a secret the call cannot see. Every sample's outputs are copied
  // (into a discard slot when not kept), so the loop costs nearly the same whichever samples
  // are kept and the parent's clock sees little difference between rounds.
  int slot = -1;
  const auto k = static_cast<int64_t>(m_kept.size());
  if (k > 0) {
    if (sample < k)
      slot = static_cast<int>(sample);
    else if (const auto r = static_cast<int64_t>(m_keep_rng() % static_cast<uint64_t>(sample + 1));
             r < k)
      slot = static_cast<int>(r);
  }
  copy_set(m_out[set], slot >= 0 ? m_kept[slot].outputs : m_discard, m_stream);
  if (slot < 0)
    return;
  m_kept[slot].sample = sample;
  m_kept[slot].input_checksums = checksums(m_in[set], m_stream);
}

eval::RoundDone SampleTimer::round(int n) {
  eval::RoundDone r;
  const int sets = static_cast<int>(m_in.size());
  for (int i = 0; i < n; ++i) {
    const int64_t sample = m_next_sample++;
    const int set = static_cast<int>(sample % sets);
    if (!m_kernelbench) {
      // Fresh values in every sample: results cached by address or by call count go stale.
      fill_inputs(m_in[set], m_dists, eval::sample_seed(m_prep.seed_base, sample, false), m_stream);
      poison_all(m_out[set], m_stream);
    }
    const Sample s = one(set, false, "timed call");
    r.stream_ms.push_back(s.stream_ms);
    r.wide_ms.push_back(s.wide_ms);
    r.host_ms.push_back(s.host_ms);
    m_guards.watch(m_zones[set], m_stream);
    if (m_hooks.after_call)
      m_hooks.after_call(m_guards, m_stream);
    keep(set, sample);
  }
  r.guards_intact = m_guards.intact(m_stream);
  return r;
}

const SampleTimer::Kept& SampleTimer::kept(int slot) const {
  if (slot < 0 || slot >= static_cast<int>(m_kept.size()) || m_kept[slot].sample < 0)
    throw Error(fmt::format("no kept outputs in slot {}", slot));
  return m_kept[slot];
}

} // namespace kb::worker
