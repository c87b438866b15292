// Internals of the GPU op library shared by its .cpp and .cu files: library error checks, the
// Context's state (handles, workspaces, plan cache) and the per-family op entry points.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include "gpu_ops.hpp"

namespace kb::gpu {

// Throw kb::Error("file:line: expr: STATUS_NAME: message") on failure.
#define KB_CUBLAS_CHECK(expr) ::kb::gpu::check_cublas((expr), #expr, __FILE__, __LINE__)
#define KB_CUDNN_CHECK(expr) ::kb::gpu::check_cudnn((expr), #expr, __FILE__, __LINE__)
// Checks the last kernel launch (configuration errors) without synchronising.
#define KB_CUDA_CHECK_LAUNCH()                                                                     \
  ::kb::gpu::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
void check_cublas(cublasStatus_t s, const char* expr, const char* file, int line);
void check_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line);

// A cached, shape-specific execution plan (cuBLASLt algorithm, cuDNN descriptors, ...).
struct Plan {
  virtual ~Plan() = default;
};

struct Context::Impl {
  cudaStream_t stream = nullptr;
  bool allow_tf32 = false;
  bool allow_tf32_conv = false; // cuDNN convolutions only (PyTorch's default lets them use TF32)
  bool prefer_cudnn = false;    // pooling, softmax, layer/RMS norm through cuDNN where supported
  int device = 0;
  int sm_count = 0;
  int l2_bytes = 0;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t lt = nullptr;
  cudnnHandle_t cudnn_handle = nullptr; // created on first use: loading cuDNN is slow
  DeviceBuffer lt_workspace;            // fixed size, for cuBLASLt
  DeviceBuffer scratch_buffer;          // grows on demand; ops carve it
  std::map<std::string, std::unique_ptr<Plan>, std::less<>> plans;

  // The cuDNN handle bound to the stream.
  cudnnHandle_t cudnn();
  // At least `bytes` of device scratch, valid until the next call; grows (synchronising the
  // device) when too small, which only happens on the first run of a shape.
  void* scratch(std::size_t bytes);
  // The cached plan under `key`, or nullptr.
  Plan* find_plan(std::string_view key);
  Plan* put_plan(std::string key, std::unique_ptr<Plan> plan);
};

using OpFn = void (*)(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);

// Entry points, one per op family (same contract as run_op).
void op_matmul(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_linear(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_attention(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_conv(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_conv_transpose(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_pool(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_adaptive_pool(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_norm(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_unary(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_binary(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_reduce(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_softmax(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_cumsum(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_loss(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_cosine_similarity(Context&, const OpNode&, std::span<const DeviceTensor>,
                          const DeviceTensor&);
void op_recurrent(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_layout(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
// logsumexp (stable: an online maximum and rescaled sum); concat and stack (any number of
// inputs); gather. op_cumsum runs cumprod too, op_reduce prod.
void op_logsumexp(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_join(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);
void op_gather(Context&, const OpNode&, std::span<const DeviceTensor>, const DeviceTensor&);

// Row-major C[b] (M x N, out_dtype) = alpha * op(A[b]) (M x K) * op(B[b]) (K x N) (+ bias[N]),
// fp32 accumulation for f32/f16/bf16 (TF32 only when the Context allows), f64 for f64. Strides
// are in elements; a stride of 0 broadcasts that operand over the batch.
void gemm(Context& ctx, const OpNode& node, DType in_dtype, DType out_dtype, bool ta, bool tb,
          int64_t M, int64_t N, int64_t K, int64_t batch, const void* A, int64_t sa, const void* B,
          int64_t sb, void* C, int64_t sc, const void* bias, double alpha);

// ----- kernels shared between families --------------------------------------------------------

// out[r, c] += bias[c] for a [rows, cols] tensor (bias has out's dtype).
void launch_add_bias_cols(const DeviceTensor& out, const DeviceTensor& bias, int64_t rows,
                          int64_t cols, cudaStream_t s);
// out[n, c, i] += bias[c] for a [n, channels, inner] tensor.
void launch_add_bias_channels(const DeviceTensor& out, const DeviceTensor& bias, int64_t n,
                              int64_t channels, int64_t inner, cudaStream_t s);
// (Log-)softmax of each row of a contiguous [rows, cols] tensor `in` into `out` (same shape; the
// dtypes may differ, e.g. fp32 scores to bf16 probabilities). With causal_rows = L > 0, row r is
// row r % L of an L x cols matrix and its columns c > r % L are masked out (-inf).
void launch_softmax_rows(const OpNode& node, const void* in, DType in_dtype, void* out,
                         DType out_dtype, int64_t rows, int64_t cols, bool log, int64_t causal_rows,
                         cudaStream_t s);
// Fused attention forward (f16/bf16, head dims E == Ev in {64, 128}, 16-byte aligned pointers):
// o [B, L, Ev] = softmax(scale * q [B, L, E] k^T + causal mask) v, with k [B or 1, S, E] and
// v [B or 1, S, Ev] (a broadcast operand has no batch dim). Returns false, launching nothing,
// when the arguments are outside what the kernel supports.
bool launch_flash_attention(DType dtype, const void* q, const void* k, const void* v, void* o,
                            int64_t B, int64_t L, int64_t S, int64_t E, int64_t Ev,
                            bool k_broadcast, bool v_broadcast, double scale, bool causal,
                            cudaStream_t s);
// Geometry of a convolution with up to 3 spatial dims, padded at the front to 3 (D, H, W) with
// size 1, stride 1, padding 0, dilation 1.
struct ConvGeom {
  int64_t N = 0, Cin = 0, Cout = 0, groups = 1;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
};
// Direct convolution (one thread per output, accumulation in fp32 / f64): the float64 reference
// and the fallback where cuDNN has no algorithm. transposed: x [N, Cin, in], w [Cin, Cout/g, k],
// y [N, Cout, out]; else w [Cout, Cin/g, k]. No bias.
void launch_conv_direct(const OpNode& node, const DeviceTensor& x, const DeviceTensor& w,
                        const DeviceTensor& y, const ConvGeom& g, bool transposed, cudaStream_t s);
// A transposed convolution's filter w [Cin, Cout/g, k] rewritten as the forward filter
// wf [Cout, Cin/g, k] with every spatial axis reversed: with stride 1 and no output padding the
// transposed convolution equals the forward one with this filter and padding dil * (k - 1) - pad.
void launch_transposed_filter_as_forward(const OpNode& node, const DeviceTensor& w, void* wf,
                                         const ConvGeom& g, cudaStream_t s);
// dst = src (same dtype); a plain device copy on the stream.
void copy_tensor(const DeviceTensor& src, const DeviceTensor& dst, cudaStream_t s);

// cuDNN's data type for a kbench dtype (f32, f16, bf16, f64).
cudnnDataType_t cudnn_data_type(DType t);
// Pooling geometry for cudnn_pool: x viewed as [n, c, spatial...] with nsp (2 or 3) spatial dims
// right-aligned in the arrays (a 2-D pool uses entries 1 and 2; a 1-D pool has height 1).
struct CudnnPoolArgs {
  int nsp = 2;
  int64_t n = 0, c = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1},
          p[3] = {0, 0, 0}, d[3] = {1, 1, 1};
  bool count_include_pad = true, is_max = false;
};
// cuDNN pooling (x viewed as `a` describes it) and softmax over the middle dim of
// [outer, R, inner]; each returns false, doing nothing, where cuDNN does not support the case
// (dilation, ceil_mode output sizes, 32-bit limits), leaving it to the own kernel.
bool cudnn_pool(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& out,
                const CudnnPoolArgs& a);
bool cudnn_softmax(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& out,
                   int64_t outer, int64_t R, int64_t inner, bool log);
// cuDNN's backend norm operation (inference) on x [rows, cols] normalised over cols: layer norm
// (weight and bias) or, with rms, RMS norm (weight); false where cuDNN has no engine for it.
bool cudnn_norm(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& out,
                const void* weight, const void* bias, int64_t rows, int64_t cols, double eps,
                bool rms);

// ----- small host helpers ---------------------------------------------------------------------

// Concatenates the arguments' stream renderings (nvcc cannot compile fmt's consteval checks).
template <class... A> std::string str_cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}

// Throws kb::Error("<op>: GPU reference: message").
[[noreturn]] void op_fail(const OpNode& node, const std::string& message);
// Throws unless `t` has a floating dtype the GPU kernels support (f32, f16, bf16, f64).
void require_float_dtype(const OpNode& node, const DeviceTensor& t, const char* what);
// A per-spatial-dim attribute of a convolution or pooling op as PyTorch takes it (one int, a list
// of one int, or a list of `sd` ints), as `sd` entries; `fallback` when absent.
std::vector<int64_t> spatial_attr(const OpNode& node, std::string_view key, std::size_t sd,
                                  std::vector<int64_t> fallback);
// Maps a possibly negative dim into [0, rank).
int64_t norm_dim(const OpNode& node, int64_t dim, int64_t rank);
// Product of shape[begin, end).
int64_t shape_prod(const Shape& s, std::size_t begin, std::size_t end);
int grid_for(int64_t n, int block, int max_blocks = 65535 * 8);

} // namespace kb::gpu
