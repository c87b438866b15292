// matmul and linear on cuBLASLt (algorithm chosen once per shape, bias fused as an epilogue),
// with cublasGemmStridedBatchedEx as fallback and cublasDgemm for the float64 reference.
#include <algorithm>
#include <climits>

#include <fmt/format.h>

#include "gpu_internal.hpp"

namespace kb::gpu {

namespace {

cudaDataType_t cuda_type(const OpNode& node, DType t) {
  switch (t) {
  case DType::f32:
    return CUDA_R_32F;
  case DType::f16:
    return CUDA_R_16F;
  case DType::bf16:
    return CUDA_R_16BF;
  case DType::f64:
    return CUDA_R_64F;
  default:
    op_fail(node, fmt::format("unsupported dtype {}", dtype_name(t)));
  }
}

struct LtPlan : Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
  ~LtPlan() override {
    if (a)
      cublasLtMatrixLayoutDestroy(a);
    if (b)
      cublasLtMatrixLayoutDestroy(b);
    if (c)
      cublasLtMatrixLayoutDestroy(c);
    if (desc)
      cublasLtMatmulDescDestroy(desc);
  }
};

int alignment_of(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  if (v == 0)
    return 256;
  return static_cast<int>(std::min<uintptr_t>(256, v & (~v + 1)));
}

cublasLtMatrixLayout_t make_layout(cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld,
                                   int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  KB_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, rows, cols, ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    KB_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                     sizeof(count)));
    KB_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                     &stride, sizeof(stride)));
  }
  return l;
}

} // namespace

// Row-major C[b] (M x N, out_dtype) = alpha * op(A[b]) (M x K) * op(B[b]) (K x N) (+ bias[N]),
// with fp32 accumulation for f32/f16/bf16 and f64 for f64. Strides are in elements (0 broadcasts).
void gemm(Context& ctx, const OpNode& node, DType in_dtype, DType out_dtype, bool ta, bool tb,
          int64_t M, int64_t N, int64_t K, int64_t batch, const void* A, int64_t sa, const void* B,
          int64_t sb, void* C, int64_t sc, const void* bias, double alpha) {
  if (M == 0 || N == 0 || batch == 0)
    return;
  auto& c = ctx.impl();
  // cuBLAS is column-major: compute C^T (N x M) = op(B)^T * op(A)^T, so cuBLAS's "A" is our B.
  const cublasOperation_t op_a = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t lda = tb ? K : N;
  const int64_t ldb = ta ? M : K;
  const int64_t ldc = N;
  if (K == 0) {
    // Empty inner dimension: the product is zero (plus bias).
    KB_CUDA_CHECK(cudaMemsetAsync(
        C, 0, static_cast<std::size_t>(batch * M * N) * dtype_size(out_dtype), c.stream));
    if (bias)
      launch_add_bias_cols(DeviceTensor{C, out_dtype, {batch * M, N}},
                           DeviceTensor{const_cast<void*>(bias), out_dtype, {N}}, batch * M, N,
                           c.stream);
    return;
  }

  if (in_dtype == DType::f64) {
    if (out_dtype != DType::f64)
      op_fail(node, "f64 GEMM must write f64");
    const double beta = 0.0;
    KB_CUBLAS_CHECK(cublasDgemmStridedBatched_64(
        c.cublas, op_a, op_b, N, M, K, &alpha, static_cast<const double*>(B), lda, sb,
        static_cast<const double*>(A), ldb, sa, &beta, static_cast<double*>(C), ldc, sc, batch));
    if (bias)
      launch_add_bias_cols(DeviceTensor{C, out_dtype, {batch * M, N}},
                           DeviceTensor{const_cast<void*>(bias), out_dtype, {N}}, batch * M, N,
                           c.stream);
    return;
  }

  const cudaDataType_t ti = cuda_type(node, in_dtype);
  const cudaDataType_t to = cuda_type(node, out_dtype);
  const cublasComputeType_t compute =
      in_dtype == DType::f32 && c.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const int align = std::min(
      {alignment_of(A), alignment_of(B), alignment_of(C), bias ? alignment_of(bias) : 256});
  const std::string key = fmt::format("lt:{}:{}:{}{}:{}x{}x{}:b{}:{},{},{}:bias{}:tf32{}:al{}",
                                      dtype_name(in_dtype), dtype_name(out_dtype), ta, tb, M, N, K,
                                      batch, sa, sb, sc, bias != nullptr, c.allow_tf32, align);
  auto* plan = static_cast<LtPlan*>(c.find_plan(key));
  if (!plan) {
    auto p = std::make_unique<LtPlan>();
    KB_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F));
    KB_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    KB_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    if (bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      KB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                     sizeof(epi)));
      KB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                     &to, sizeof(to)));
    }
    p->a = make_layout(ti, tb ? K : N, tb ? N : K, lda, batch, sb);
    p->b = make_layout(ti, ta ? M : K, ta ? K : M, ldb, batch, sa);
    p->c = make_layout(to, N, M, ldc, batch, sc);
    cublasLtMatmulPreference_t pref = nullptr;
    KB_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    try {
      const uint64_t ws = c.lt_workspace.size();
      KB_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
          pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
      const uint32_t al = static_cast<uint32_t>(align);
      for (auto attr :
           {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        KB_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al)));
      cublasLtMatmulHeuristicResult_t result{};
      int count = 0;
      const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c.lt, p->desc, p->a, p->b, p->c,
                                                               p->c, pref, 1, &result, &count);
      // NOT_SUPPORTED means no Lt algorithm fits this shape; the GemmEx path below takes it.
      if (st != CUBLAS_STATUS_NOT_SUPPORTED)
        KB_CUBLAS_CHECK(st);
      if (st == CUBLAS_STATUS_SUCCESS && count > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
        p->algo = result.algo;
        p->has_algo = true;
      }
    } catch (...) {
      cublasLtMatmulPreferenceDestroy(pref);
      throw;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    plan = static_cast<LtPlan*>(c.put_plan(key, std::move(p)));
  }

  const float alpha_f = static_cast<float>(alpha), beta_f = 0.0f;
  if (plan->has_algo) {
    if (bias)
      KB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                     &bias, sizeof(bias)));
    KB_CUBLAS_CHECK(cublasLtMatmul(c.lt, plan->desc, &alpha_f, B, plan->a, A, plan->b, &beta_f, C,
                                   plan->c, C, plan->c, &plan->algo, c.lt_workspace.get(),
                                   c.lt_workspace.size(), c.stream));
    return;
  }
  KB_CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(c.cublas, op_a, op_b, N, M, K, &alpha_f, B, ti, lda,
                                                sb, A, ti, ldb, sa, &beta_f, C, to, ldc, sc, batch,
                                                compute, CUBLAS_GEMM_DEFAULT));
  if (bias)
    launch_add_bias_cols(DeviceTensor{C, out_dtype, {batch * M, N}},
                         DeviceTensor{const_cast<void*>(bias), out_dtype, {N}}, batch * M, N,
                         c.stream);
}

void op_matmul(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
               const DeviceTensor& out) {
  if (in.size() != 2)
    op_fail(node, "expects two inputs");
  const DeviceTensor& a = in[0];
  const DeviceTensor& b = in[1];
  require_float_dtype(node, a, "a");
  if (b.dtype != a.dtype || out.dtype != a.dtype)
    op_fail(node, "a, b and the output must share one dtype");
  if (a.shape.empty() || b.shape.empty())
    op_fail(node, "inputs must have rank >= 1");
  const bool ta = attr_bool(node.attrs, "transpose_a", false);
  const bool tb = attr_bool(node.attrs, "transpose_b", false);
  // 1-D operands follow torch.matmul: a [K] is a row [1, K], b [K] a column [K, 1].
  Shape as = a.shape, bs = b.shape;
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec)
    as = {1, as[0]};
  if (b_vec)
    bs = {bs[0], 1};
  const std::size_t ra = as.size(), rb = bs.size();
  const int64_t M = ta && !a_vec ? as[ra - 1] : as[ra - 2];
  const int64_t K = ta && !a_vec ? as[ra - 2] : as[ra - 1];
  const int64_t kb = tb && !b_vec ? bs[rb - 1] : bs[rb - 2];
  const int64_t N = tb && !b_vec ? bs[rb - 2] : bs[rb - 1];
  if (K != kb)
    op_fail(node, fmt::format("inner dims differ: {} vs {}", K, kb));
  const bool eff_ta = ta && !a_vec, eff_tb = tb && !b_vec;

  Shape ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  const std::size_t rank = std::max(ab.size(), bb.size());
  ab.insert(ab.begin(), rank - ab.size(), 1);
  bb.insert(bb.begin(), rank - bb.size(), 1);
  Shape ob(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    if (ab[i] != bb[i] && ab[i] != 1 && bb[i] != 1)
      op_fail(node, fmt::format("batch dims do not broadcast: {} vs {}", shape_str(a.shape),
                                shape_str(b.shape)));
    ob[i] = std::max(ab[i], bb[i]);
  }
  const int64_t batch = numel(ob), a_batch = numel(ab), b_batch = numel(bb);
  if (out.numel() != batch * M * N)
    op_fail(node,
            fmt::format("output {} does not hold {} x {} x {}", shape_str(out.shape), batch, M, N));
  const DType dt = a.dtype;
  if (b_batch == 1 && !eff_ta && a_batch == batch) {
    // A shared 2-D b: fold a's batch into M, one large GEMM.
    gemm(ctx, node, dt, dt, false, eff_tb, batch * M, N, K, 1, a.data, 0, b.data, 0, out.data, 0,
         nullptr, 1.0);
    return;
  }
  if ((a_batch == batch || a_batch == 1) && (b_batch == batch || b_batch == 1)) {
    gemm(ctx, node, dt, dt, eff_ta, eff_tb, M, N, K, batch, a.data, a_batch == 1 ? 0 : M * K,
         b.data, b_batch == 1 ? 0 : K * N, out.data, M * N, nullptr, 1.0);
    return;
  }
  // Partial broadcasting of batch dims (e.g. [B, 1] against [1, H]): one GEMM per output matrix.
  const Shape sa = contiguous_strides(ab), sbs = contiguous_strides(bb);
  const std::size_t es = dtype_size(dt);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t rem = i, oa = 0, obb = 0;
    for (std::size_t d = rank; d-- > 0;) {
      const int64_t idx = rem % ob[d];
      rem /= ob[d];
      oa += (ab[d] == 1 ? 0 : idx) * sa[d];
      obb += (bb[d] == 1 ? 0 : idx) * sbs[d];
    }
    gemm(ctx, node, dt, dt, eff_ta, eff_tb, M, N, K, 1,
         static_cast<const char*>(a.data) + oa * M * K * es, 0,
         static_cast<const char*>(b.data) + obb * K * N * es, 0,
         static_cast<char*>(out.data) + i * M * N * es, 0, nullptr, 1.0);
  }
}

void op_linear(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
               const DeviceTensor& out) {
  if (in.size() < 2 || in.size() > 3)
    op_fail(node, "expects x, w and an optional b");
  const DeviceTensor& x = in[0];
  const DeviceTensor& w = in[1];
  require_float_dtype(node, x, "x");
  for (const auto& t : in)
    if (t.dtype != x.dtype)
      op_fail(node, "inputs must share one dtype");
  if (out.dtype != x.dtype)
    op_fail(node, "output dtype differs from x");
  if (x.shape.empty() || w.shape.size() != 2)
    op_fail(node, "x must have rank >= 1 and w rank 2");
  const int64_t K = x.shape.back();
  const int64_t N = w.shape[0];
  if (w.shape[1] != K)
    op_fail(node, fmt::format("w {} does not match x {}", shape_str(w.shape), shape_str(x.shape)));
  const int64_t M = K == 0 ? shape_prod(x.shape, 0, x.shape.size() - 1) : x.numel() / K;
  if (out.numel() != M * N)
    op_fail(node, "output size mismatch");
  const void* bias = nullptr;
  if (in.size() == 3) {
    if (in[2].numel() != N)
      op_fail(node, fmt::format("bias {} must have {} elements", shape_str(in[2].shape), N));
    bias = in[2].data;
  }
  gemm(ctx, node, x.dtype, x.dtype, false, true, M, N, K, 1, x.data, 0, w.data, 0, out.data, 0,
       bias, 1.0);
}

} // namespace kb::gpu
