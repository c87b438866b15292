// Input generation (counter-based Philox4x32-10), poisoning, dtype conversion, checksums and
// plain copies.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

struct Philox4 {
  uint32_t v[4];
};

// Philox4x32 with 10 rounds: a bijection of the counter keyed by the seed.
__device__ __forceinline__ Philox4 philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                          uint32_t k0, uint32_t k1) {
  constexpr uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u, w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    const uint32_t lo0 = m0 * c0, hi0 = __umulhi(m0, c0);
    const uint32_t lo1 = m1 * c2, hi1 = __umulhi(m1, c2);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += w0;
    k1 += w1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

__device__ __forceinline__ void store_double(void* p, DType t, int64_t i, double v) {
  switch (t) {
  case DType::f32:
    static_cast<float*>(p)[i] = static_cast<float>(v);
    break;
  case DType::f16:
    static_cast<__half*>(p)[i] = __double2half(v);
    break;
  case DType::bf16:
    static_cast<__nv_bfloat16*>(p)[i] = __double2bfloat16(v);
    break;
  case DType::f64:
    static_cast<double*>(p)[i] = v;
    break;
  case DType::i32:
    static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v);
    break;
  case DType::i64:
    static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v);
    break;
  case DType::b8:
    static_cast<uint8_t*>(p)[i] = v != 0.0 ? 1 : 0;
    break;
  }
}

__device__ __forceinline__ double load_double(const void* p, DType t, int64_t i) {
  switch (t) {
  case DType::f32:
    return static_cast<const float*>(p)[i];
  case DType::f16:
    return __half2float(static_cast<const __half*>(p)[i]);
  case DType::bf16:
    return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  case DType::f64:
    return static_cast<const double*>(p)[i];
  case DType::i32:
    return static_cast<const int32_t*>(p)[i];
  case DType::i64:
    return static_cast<double>(static_cast<const int64_t*>(p)[i]);
  case DType::b8:
    return static_cast<const uint8_t*>(p)[i];
  }
  return 0.0;
}

__device__ __forceinline__ int64_t load_int(const void* p, DType t, int64_t i) {
  switch (t) {
  case DType::i32:
    return static_cast<const int32_t*>(p)[i];
  case DType::i64:
    return static_cast<const int64_t*>(p)[i];
  case DType::b8:
    return static_cast<const uint8_t*>(p)[i];
  default:
    return 0;
  }
}

__device__ __forceinline__ void store_int(void* p, DType t, int64_t i, int64_t v) {
  switch (t) {
  case DType::i32:
    static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v);
    break;
  case DType::i64:
    static_cast<int64_t*>(p)[i] = v;
    break;
  case DType::b8:
    static_cast<uint8_t*>(p)[i] = v != 0 ? 1 : 0;
    break;
  default:
    break;
  }
}

constexpr double k_two_pow_m53 = 1.0 / 9007199254740992.0;

__global__ void fill_kernel(void* data, DType dtype, int64_t n, DistKind kind, double a, double b,
                            uint32_t k0, uint32_t k1, uint32_t s0, uint32_t s1) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    double v = a;
    if (kind != DistKind::constant) {
      const uint64_t ui = static_cast<uint64_t>(i);
      const Philox4 r =
          philox(static_cast<uint32_t>(ui), static_cast<uint32_t>(ui >> 32), s0, s1, k0, k1);
      const uint64_t bits0 = ((uint64_t{r.v[0]} << 32) | r.v[1]) >> 11;
      const double u = static_cast<double>(bits0) * k_two_pow_m53; // [0, 1)
      if (kind == DistKind::uniform) {
        v = a + (b - a) * u;
        if (v >= b && b > a) // rounding of a + (b - a) * u may reach b
          v = nextafter(b, a);
      } else if (kind == DistKind::randint) {
        v = floor(a + (b - a) * u);
        if (v >= b)
          v = b - 1.0;
      } else { // normal, ill_conditioned: Box-Muller
        const double u1 = static_cast<double>(bits0 + 1) * k_two_pow_m53; // (0, 1]
        const uint64_t bits1 = ((uint64_t{r.v[2]} << 32) | r.v[3]) >> 11;
        const double u2 = static_cast<double>(bits1) * k_two_pow_m53;
        v = a + b * sqrt(-2.0 * log(u1)) * cospi(2.0 * u2);
      }
    }
    store_double(data, dtype, i, v);
  }
}

template <class W> __global__ void pattern_kernel(W* data, int64_t n, W pattern) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    data[i] = pattern;
}

__global__ void convert_kernel(const void* src, DType st, void* dst, DType dt, int64_t n,
                               bool integral) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    if (integral)
      store_int(dst, dt, i, load_int(src, st, i));
    else
      store_double(dst, dt, i, load_double(src, st, i));
  }
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Sum over words of mix(word, position): order-sensitive because the position enters the mix,
// and exact to reduce in any order because addition mod 2^64 is associative.
__global__ void checksum_kernel(const uint8_t* data, int64_t bytes, bool aligned,
                                unsigned long long* result) {
  const int64_t words = (bytes + 7) / 8;
  uint64_t acc = 0;
  for (int64_t w = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; w < words;
       w += int64_t{gridDim.x} * blockDim.x) {
    uint64_t word = 0;
    if (aligned && (w + 1) * 8 <= bytes) {
      word = reinterpret_cast<const uint64_t*>(data)[w];
    } else {
      for (int b = 0; b < 8 && w * 8 + b < bytes; ++b)
        word |= uint64_t{data[w * 8 + b]} << (8 * b);
    }
    acc += splitmix64(word ^ splitmix64(static_cast<uint64_t>(w)));
  }
  __shared__ uint64_t shared[32];
  for (int o = 16; o > 0; o >>= 1)
    acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0)
    shared[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    uint64_t t = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i)
      t += shared[i];
    atomicAdd(result, static_cast<unsigned long long>(t));
  }
}

bool is_integral(DType t) {
  return t == DType::i32 || t == DType::i64 || t == DType::b8;
}

} // namespace

void fill(const DeviceTensor& t, const Distribution& dist, uint64_t seed, uint64_t stream_id,
          cudaStream_t stream) {
  const int64_t n = t.numel();
  if (n == 0)
    return;
  if (!t.data)
    throw Error("fill: tensor has no memory");
  if (dist.kind == DistKind::uniform || dist.kind == DistKind::randint) {
    if (!(dist.b > dist.a))
      throw Error(str_cat("fill: ", dist_kind_name(dist.kind), " needs b > a, got a=", dist.a,
                          " b=", dist.b));
  }
  if ((dist.kind == DistKind::normal || dist.kind == DistKind::ill_conditioned) && dist.b < 0)
    throw Error(str_cat("fill: ", dist_kind_name(dist.kind), " needs std >= 0, got ", dist.b));
  fill_kernel<<<grid_for(n, 256, 4096), 256, 0, stream>>>(
      t.data, t.dtype, n, dist.kind, dist.a, dist.b, static_cast<uint32_t>(seed),
      static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(stream_id),
      static_cast<uint32_t>(stream_id >> 32));
  KB_CUDA_CHECK_LAUNCH();
}

void poison(const DeviceTensor& t, cudaStream_t stream) {
  const int64_t n = t.numel();
  if (n == 0)
    return;
  if (!t.data)
    throw Error("poison: tensor has no memory");
  const int grid = grid_for(n, 256, 4096);
  switch (t.dtype) {
  case DType::f32:
    pattern_kernel<<<grid, 256, 0, stream>>>(static_cast<uint32_t*>(t.data), n, 0x7FC5A5A5u);
    break;
  case DType::f16:
    pattern_kernel<<<grid, 256, 0, stream>>>(static_cast<uint16_t*>(t.data), n,
                                             static_cast<uint16_t>(0x7E5A));
    break;
  case DType::bf16:
    pattern_kernel<<<grid, 256, 0, stream>>>(static_cast<uint16_t*>(t.data), n,
                                             static_cast<uint16_t>(0x7FA5));
    break;
  case DType::f64:
    pattern_kernel<<<grid, 256, 0, stream>>>(static_cast<uint64_t*>(t.data), n,
                                             static_cast<uint64_t>(0x7FF8A5A5A5A5A5A5ull));
    break;
  default:
    KB_CUDA_CHECK(cudaMemsetAsync(t.data, 0xA5, t.bytes(), stream));
    return;
  }
  KB_CUDA_CHECK_LAUNCH();
}

void convert(const DeviceTensor& src, const DeviceTensor& dst, cudaStream_t stream) {
  if (src.shape != dst.shape && src.numel() != dst.numel())
    throw Error(str_cat("convert: element counts differ: ", shape_str(src.shape), " vs ",
                        shape_str(dst.shape)));
  const int64_t n = src.numel();
  if (n == 0)
    return;
  if (!src.data || !dst.data)
    throw Error("convert: tensor has no memory");
  if (src.dtype == dst.dtype) {
    KB_CUDA_CHECK(
        cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const bool integral = is_integral(src.dtype) && is_integral(dst.dtype);
  convert_kernel<<<grid_for(n, 256, 4096), 256, 0, stream>>>(src.data, src.dtype, dst.data,
                                                             dst.dtype, n, integral);
  KB_CUDA_CHECK_LAUNCH();
}

uint64_t checksum(const DeviceTensor& t, cudaStream_t stream) {
  const int64_t bytes = static_cast<int64_t>(t.bytes());
  unsigned long long* d_result = nullptr;
  KB_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&d_result), sizeof(*d_result), stream));
  unsigned long long h_result = 0;
  try {
    KB_CUDA_CHECK(cudaMemsetAsync(d_result, 0, sizeof(*d_result), stream));
    if (bytes > 0) {
      if (!t.data)
        throw Error("checksum: tensor has no memory");
      const bool aligned = reinterpret_cast<uintptr_t>(t.data) % 8 == 0;
      checksum_kernel<<<grid_for((bytes + 7) / 8, 256, 2048), 256, 0, stream>>>(
          static_cast<const uint8_t*>(t.data), bytes, aligned, d_result);
      KB_CUDA_CHECK_LAUNCH();
    }
    KB_CUDA_CHECK(
        cudaMemcpyAsync(&h_result, d_result, sizeof(h_result), cudaMemcpyDeviceToHost, stream));
    KB_CUDA_CHECK(cudaFreeAsync(d_result, stream));
    KB_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (...) {
    cudaFreeAsync(d_result, stream);
    throw;
  }
  // Mix in the length so tensors differing only by trailing zero bytes differ.
  uint64_t x = h_result ^ (static_cast<uint64_t>(bytes) * 0x9E3779B97F4A7C15ull);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void copy_tensor(const DeviceTensor& src, const DeviceTensor& dst, cudaStream_t s) {
  if (src.bytes() != dst.bytes())
    throw Error(str_cat("copy: sizes differ: ", src.bytes(), " vs ", dst.bytes(), " bytes"));
  if (src.data != dst.data && src.bytes() > 0)
    KB_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, s));
}

} // namespace kb::gpu
