// kbench-worker plumbing: the result channel, problem tensors with guard zones, the scrambled
// workspace and the CUDA start-up shared by every mode.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "worker.hpp"

namespace kb::worker {

namespace {

// The result descriptor: $KB_RESULT_FD (removed from the environment once read), else fd 3 when
// open (manual runs), else stdout.
int result_fd() {
  static const int fd = [] {
    int f = -1;
    if (const char* env = std::getenv("KB_RESULT_FD")) {
      f = std::atoi(env);
      ::unsetenv("KB_RESULT_FD");
    }
    if (f < 3 || ::fcntl(f, F_GETFD) == -1)
      f = ::fcntl(3, F_GETFD) != -1 ? 3 : 1;
    return f;
  }();
  return fd;
}

void write_line(const std::string& line) {
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(result_fd(), p, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return; // the parent is gone; nothing else to tell
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

} // namespace

void emit(const nlohmann::json& j) {
  write_line(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

Channel::Channel() {
  (void)result_fd(); // take the descriptor from the environment before any candidate code runs
}

bool Channel::next(eval::Envelope& cmd) {
  std::string line;
  if (!std::getline(std::cin, line))
    return false;
  std::string why;
  auto e = eval::decode(line, &why);
  if (!e)
    throw Error(fmt::format("malformed command from the parent: {}", why));
  cmd = std::move(*e);
  m_seq = cmd.seq;
  return true;
}

void Channel::write(const std::string& line) {
  write_line(line);
}

int32_t abi_dtype(DType t) {
  return static_cast<int32_t>(t);
}

// ---------------------------------------------------------------------------------------------
// Guarded buffers
// ---------------------------------------------------------------------------------------------

GuardedBuffer::GuardedBuffer(std::size_t bytes, bool guarded)
    : m_buf(std::max<std::size_t>(bytes, 16) + (guarded ? 2 * k_guard_bytes : 0)),
      m_bytes(std::max<std::size_t>(bytes, 16)), m_guarded(guarded) {}

void* GuardedBuffer::get() const {
  return static_cast<char*>(m_buf.get()) + (m_guarded ? k_guard_bytes : 0);
}

const void* GuardedBuffer::zone_before() const {
  return m_guarded ? m_buf.get() : nullptr;
}

const void* GuardedBuffer::zone_after() const {
  return m_guarded ? static_cast<const char*>(m_buf.get()) + k_guard_bytes + m_bytes : nullptr;
}

void GuardedBuffer::arm(cudaStream_t stream) const {
  if (!m_guarded)
    return;
  auto* base = static_cast<char*>(m_buf.get());
  KB_CUDA_CHECK(cudaMemsetAsync(base, k_guard_byte, k_guard_bytes, stream));
  KB_CUDA_CHECK(
      cudaMemsetAsync(base + k_guard_bytes + m_bytes, k_guard_byte, k_guard_bytes, stream));
}

void GuardedBuffer::check(int* flag, cudaStream_t stream) const {
  if (!m_guarded)
    return;
  auto* base = static_cast<const char*>(m_buf.get());
  check_guard_zone(base, k_guard_bytes, k_guard_byte, flag, stream);
  check_guard_zone(base + k_guard_bytes + m_bytes, k_guard_bytes, k_guard_byte, flag, stream);
}

std::size_t TensorSet::bytes() const {
  std::size_t b = 0;
  for (const auto& t : tensors)
    b += t.bytes();
  return b;
}

namespace {
void add_tensor(TensorSet& s, const Shape& shape, DType dtype, bool guarded) {
  gpu::DeviceTensor t;
  t.shape = shape;
  t.dtype = dtype;
  s.buffers.emplace_back(t.bytes(), guarded);
  t.data = s.buffers.back().get();
  s.tensors.push_back(std::move(t));
}
} // namespace

TensorSet alloc_inputs(const Problem& p, bool guarded) {
  TensorSet s;
  for (const auto& t : p.inputs)
    add_tensor(s, t.shape, t.dtype, guarded);
  for (const auto& t : p.params)
    add_tensor(s, t.shape, t.dtype, guarded);
  return s;
}

TensorSet alloc_outputs(const Problem& p, bool f64, bool guarded) {
  TensorSet s;
  for (const auto& o : p.outputs) {
    const ValueSpec& v = p.output_spec(o);
    add_tensor(s, v.shape, f64 ? DType::f64 : v.dtype, guarded);
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

void copy_set(const TensorSet& from, const TensorSet& to, cudaStream_t stream) {
  for (std::size_t k = 0; k < from.tensors.size() && k < to.tensors.size(); ++k)
    KB_CUDA_CHECK(cudaMemcpyAsync(to.tensors[k].data, from.tensors[k].data, from.tensors[k].bytes(),
                                  cudaMemcpyDeviceToDevice, stream));
}

GuardWatch::GuardWatch() : m_flag(sizeof(int)) {
  KB_CUDA_CHECK(cudaMemset(m_flag.get(), 0, sizeof(int)));
}

void GuardWatch::watch(const TensorSet& s, cudaStream_t stream) const {
  for (const auto& b : s.buffers)
    b.check(static_cast<int*>(m_flag.get()), stream);
}

GuardWatch::Zones GuardWatch::zones_of(const std::vector<const TensorSet*>& sets) {
  std::vector<const void*> z;
  for (const auto* s : sets)
    for (const auto& b : s->buffers)
      if (b.guarded()) {
        z.push_back(b.zone_before());
        z.push_back(b.zone_after());
      }
  Zones out;
  out.count = static_cast<int>(z.size());
  out.addresses = gpu::DeviceBuffer(std::max<std::size_t>(z.size(), 1) * sizeof(void*));
  if (!z.empty())
    KB_CUDA_CHECK(cudaMemcpy(out.addresses.get(), z.data(), z.size() * sizeof(void*),
                             cudaMemcpyHostToDevice));
  return out;
}

void GuardWatch::watch(const Zones& z, cudaStream_t stream) const {
  if (z.count > 0)
    check_guard_zones(static_cast<const void* const*>(z.addresses.get()), z.count, k_guard_byte,
                      static_cast<int*>(m_flag.get()), stream);
}

bool GuardWatch::intact(cudaStream_t stream) {
  int v = 0;
  KB_CUDA_CHECK(cudaMemcpyAsync(&v, m_flag.get(), sizeof v, cudaMemcpyDeviceToHost, stream));
  KB_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (v != 0)
    KB_CUDA_CHECK(cudaMemsetAsync(m_flag.get(), 0, sizeof(int), stream));
  return v == 0;
}

Workspace::Workspace(std::size_t bytes) : m_buf(bytes, true), m_bytes(bytes) {}

void Workspace::scramble(cudaStream_t stream) {
  if (m_bytes == 0)
    return;
  // A byte that changes every call (never the guard byte): whatever a call leaves here is gone
  // before the next one, so the workspace cannot carry state between calls.
  unsigned char b = static_cast<unsigned char>(0x3B + 0x6D * (++m_calls));
  if (b == k_guard_byte)
    b ^= 0x10;
  KB_CUDA_CHECK(cudaMemsetAsync(m_buf.get(), b, m_bytes, stream));
}

std::vector<Distribution> own_distributions(const Problem& p) {
  std::vector<Distribution> d;
  for (const auto& t : p.inputs)
    d.push_back(t.dist);
  for (const auto& t : p.params)
    d.push_back(t.dist);
  return d;
}

eval::DeviceInfo device_info() {
  eval::DeviceInfo d;
  int dev = 0;
  KB_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  KB_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  d.name = p.name;
  d.sm_count = p.multiProcessorCount;
  d.l2_bytes = static_cast<uint64_t>(p.l2CacheSize);
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  return d;
}

void start_cuda() {
  const cudaError_t e = cudaFree(nullptr);
  if (e != cudaSuccess)
    throw Error(
        fmt::format("no usable CUDA GPU: {}: {}", cudaGetErrorName(e), cudaGetErrorString(e)));
}

} // namespace kb::worker
