// Error checks, device memory, the Context (library handles, workspaces, plan cache) and the
// op dispatch of run_op.
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "cuda_error.hpp"
#include "gpu_internal.hpp"

namespace kb::gpu {

namespace {

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR:
    return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR:
    return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  case CUBLAS_STATUS_LICENSE_ERROR:
    return "CUBLAS_STATUS_LICENSE_ERROR";
  default:
    return "CUBLAS_STATUS_UNKNOWN";
  }
}

} // namespace

void check_cuda(cudaError_t e, const char* expr, const char* file, int line) {
  if (e == cudaSuccess)
    return;
  throw CudaError(e,
                  fmt::format("{}:{}: {}: {}: {}", file, line, expr, cudaGetErrorName(e),
                              cudaGetErrorString(e)),
                  expr);
}

void check_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS)
    return;
  throw Error(fmt::format("{}:{}: {}: {}: {}", file, line, expr, cublas_status_name(s),
                          cublasGetStatusString(s)));
}

void check_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS)
    return;
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  throw Error(fmt::format("{}:{}: {}: {}{}{}", file, line, expr, cudnnGetErrorString(s),
                          detail[0] ? ": " : "", detail));
}

// ----- DeviceBuffer ---------------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(std::size_t bytes) : m_bytes(bytes) {
  if (bytes > 0)
    KB_CUDA_CHECK(cudaMalloc(&m_ptr, bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (m_ptr)
    cudaFree(m_ptr); // destructors never throw; a failure here leaves nothing to recover
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : m_ptr(o.m_ptr), m_bytes(o.m_bytes) {
  o.m_ptr = nullptr;
  o.m_bytes = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (m_ptr)
      cudaFree(m_ptr);
    m_ptr = o.m_ptr;
    m_bytes = o.m_bytes;
    o.m_ptr = nullptr;
    o.m_bytes = 0;
  }
  return *this;
}

// ----- Context --------------------------------------------------------------------------------

namespace {
constexpr std::size_t k_lt_workspace_bytes = std::size_t{32} << 20;
}

Context::Context(cudaStream_t stream, bool allow_tf32) : m_impl(std::make_unique<Impl>()) {
  Impl& c = *m_impl;
  c.stream = stream;
  c.allow_tf32 = allow_tf32;
  c.allow_tf32_conv = allow_tf32;
  KB_CUDA_CHECK(cudaGetDevice(&c.device));
  KB_CUDA_CHECK(cudaDeviceGetAttribute(&c.sm_count, cudaDevAttrMultiProcessorCount, c.device));
  KB_CUDA_CHECK(cudaDeviceGetAttribute(&c.l2_bytes, cudaDevAttrL2CacheSize, c.device));
  KB_CUBLAS_CHECK(cublasCreate(&c.cublas));
  KB_CUBLAS_CHECK(cublasSetStream(c.cublas, stream));
  // Strict FP32 unless the contract allows TF32; the math mode only matters for cublas<t>gemm,
  // GemmEx calls choose their compute type explicitly.
  KB_CUBLAS_CHECK(
      cublasSetMathMode(c.cublas, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
  KB_CUBLAS_CHECK(cublasLtCreate(&c.lt));
  c.lt_workspace = DeviceBuffer(k_lt_workspace_bytes);
}

Context::~Context() {
  if (!m_impl)
    return;
  m_impl->plans.clear(); // plans may hold descriptors of the handles below
  if (m_impl->cudnn_handle)
    cudnnDestroy(m_impl->cudnn_handle);
  if (m_impl->lt)
    cublasLtDestroy(m_impl->lt);
  if (m_impl->cublas)
    cublasDestroy(m_impl->cublas);
}

cudaStream_t Context::stream() const {
  return m_impl->stream;
}
bool Context::allow_tf32() const {
  return m_impl->allow_tf32;
}
void Context::set_conv_tf32(bool on) {
  m_impl->allow_tf32_conv = on;
}
void Context::set_prefer_cudnn(bool on) {
  m_impl->prefer_cudnn = on;
}
Context::Impl& Context::impl() {
  return *m_impl;
}

cudnnHandle_t Context::Impl::cudnn() {
  if (!cudnn_handle) {
    KB_CUDNN_CHECK(cudnnCreate(&cudnn_handle));
    KB_CUDNN_CHECK(cudnnSetStream(cudnn_handle, stream));
  }
  return cudnn_handle;
}

void* Context::Impl::scratch(std::size_t bytes) {
  if (bytes == 0)
    bytes = 256;
  if (scratch_buffer.size() < bytes) {
    // Freeing memory a queued kernel may still use would be a race: wait for the device first.
    KB_CUDA_CHECK(cudaStreamSynchronize(stream));
    scratch_buffer = DeviceBuffer();
    scratch_buffer = DeviceBuffer(bytes);
  }
  return scratch_buffer.get();
}

Plan* Context::Impl::find_plan(std::string_view key) {
  auto it = plans.find(key);
  return it == plans.end() ? nullptr : it->second.get();
}

Plan* Context::Impl::put_plan(std::string key, std::unique_ptr<Plan> plan) {
  Plan* p = plan.get();
  plans[std::move(key)] = std::move(plan);
  return p;
}

// ----- helpers --------------------------------------------------------------------------------

cudnnDataType_t cudnn_data_type(DType t) {
  switch (t) {
  case DType::f16:
    return CUDNN_DATA_HALF;
  case DType::bf16:
    return CUDNN_DATA_BFLOAT16;
  case DType::f64:
    return CUDNN_DATA_DOUBLE;
  default:
    return CUDNN_DATA_FLOAT;
  }
}

void op_fail(const OpNode& node, const std::string& message) {
  throw Error(fmt::format("{}: GPU reference: {}", node.op, message));
}

void require_float_dtype(const OpNode& node, const DeviceTensor& t, const char* what) {
  if (t.dtype != DType::f32 && t.dtype != DType::f16 && t.dtype != DType::bf16 &&
      t.dtype != DType::f64)
    op_fail(node,
            fmt::format("{} has dtype {}, expected a floating dtype", what, dtype_name(t.dtype)));
}

int64_t norm_dim(const OpNode& node, int64_t dim, int64_t rank) {
  const int64_t d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= std::max<int64_t>(rank, 1))
    op_fail(node, fmt::format("dim {} out of range for rank {}", dim, rank));
  return d;
}

int64_t shape_prod(const Shape& s, std::size_t begin, std::size_t end) {
  int64_t p = 1;
  for (std::size_t i = begin; i < end && i < s.size(); ++i)
    p *= s[i];
  return p;
}

int grid_for(int64_t n, int block, int max_blocks) {
  const int64_t g = (n + block - 1) / block;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(g, max_blocks)));
}

// ----- run_op ---------------------------------------------------------------------------------

namespace {

const std::unordered_map<std::string_view, OpFn>& op_table() {
  static const std::unordered_map<std::string_view, OpFn> table = [] {
    std::unordered_map<std::string_view, OpFn> t;
    t["matmul"] = op_matmul;
    t["linear"] = op_linear;
    t["scaled_dot_product_attention"] = op_attention;
    for (auto n : {"conv1d", "conv2d", "conv3d"})
      t[n] = op_conv;
    for (auto n : {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"})
      t[n] = op_conv_transpose;
    for (auto n :
         {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d"})
      t[n] = op_pool;
    for (auto n : {"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                   "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"})
      t[n] = op_adaptive_pool;
    for (auto n : {"layer_norm", "rms_norm", "batch_norm", "group_norm", "instance_norm"})
      t[n] = op_norm;
    t["batch_norm_train"] = op_norm;
    for (auto n : {"relu", "leaky_relu", "gelu", "sigmoid", "tanh", "swish", "elu", "selu",
                   "hardtanh", "hardsigmoid", "hardswish", "mish", "softplus", "softsign", "abs",
                   "exp", "log", "sqrt", "clamp"})
      t[n] = op_unary;
    for (auto n : {"add", "sub", "mul", "div"})
      t[n] = op_binary;
    for (auto n : {"sum", "mean", "max", "min", "argmax", "argmin"})
      t[n] = op_reduce;
    t["softmax"] = op_softmax;
    t["log_softmax"] = op_softmax;
    t["cumsum"] = op_cumsum;
    t["mse_loss"] = op_loss;
    t["cross_entropy"] = op_loss;
    for (auto n : {"smooth_l1_loss", "huber_loss", "kl_div", "triplet_margin_loss"})
      t[n] = op_loss;
    t["cosine_similarity"] = op_cosine_similarity;
    t["lstm"] = op_recurrent;
    t["gru"] = op_recurrent;
    for (auto n : {"reshape", "permute", "transpose", "slice", "masked_fill_causal"})
      t[n] = op_layout;
    for (auto n : {"relu6", "sign", "log2", "neg", "reciprocal", "square", "rsqrt"})
      t[n] = op_unary;
    for (auto n : {"pow", "minimum", "maximum"})
      t[n] = op_binary;
    t["prod"] = op_reduce;
    t["logsumexp"] = op_logsumexp;
    t["cumprod"] = op_cumsum;
    for (auto n : {"pad", "tril", "triu", "flip", "roll", "diag"})
      t[n] = op_layout;
    t["concat"] = op_join;
    t["stack"] = op_join;
    t["gather"] = op_gather;
    return t;
  }();
  return table;
}

} // namespace

bool has_gpu_op(std::string_view name) {
  return op_table().contains(name);
}

void run_op(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
            const DeviceTensor& out) {
  auto it = op_table().find(node.op);
  if (it == op_table().end())
    throw Error(fmt::format("{}: no GPU reference for this op", node.op));
  if (out.numel() > 0 && !out.data)
    op_fail(node, "output has no memory");
  for (std::size_t i = 0; i < in.size(); ++i)
    if (in[i].numel() > 0 && !in[i].data)
      op_fail(node, fmt::format("input {} has no memory", i));
  it->second(ctx, node, in, out);
}

} // namespace kb::gpu
