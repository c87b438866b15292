// scaled_dot_product_attention. f16/bf16 with head dim 64 or 128 run the fused kernel
// (flash_attention.cu); everything else runs as PyTorch's math path does it: S = scale * Q K^T
// (cuBLAS, fp32 or f64 scores), causal mask + softmax (own kernel, probabilities in the input
// dtype), O = P V.
#include <cmath>

#include <fmt/format.h>

#include "gpu_internal.hpp"

namespace kb::gpu {

void op_attention(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                  const DeviceTensor& out) {
  if (in.size() != 3)
    op_fail(node, "expects q, k, v");
  const DeviceTensor &q = in[0], &k = in[1], &v = in[2];
  require_float_dtype(node, q, "q");
  if (k.dtype != q.dtype || v.dtype != q.dtype || out.dtype != q.dtype)
    op_fail(node, "q, k, v and the output must share one dtype");
  if (q.shape.size() < 2 || k.shape.size() < 2 || v.shape.size() < 2)
    op_fail(node, "q, k, v must have rank >= 2");
  const int64_t L = q.shape[q.shape.size() - 2], E = q.shape.back();
  const int64_t S = k.shape[k.shape.size() - 2];
  const int64_t Ev = v.shape.back();
  if (k.shape.back() != E || v.shape[v.shape.size() - 2] != S)
    op_fail(node, fmt::format("shapes do not fit: q {}, k {}, v {}", shape_str(q.shape),
                              shape_str(k.shape), shape_str(v.shape)));
  const int64_t B = q.numel() / std::max<int64_t>(L * E, 1);
  const int64_t Bk = k.numel() / std::max<int64_t>(S * E, 1);
  const int64_t Bv = v.numel() / std::max<int64_t>(S * Ev, 1);
  if ((Bk != B && Bk != 1) || (Bv != B && Bv != 1))
    op_fail(node, "the GPU reference needs k and v with q's batch dims (or none)");
  if (out.numel() != B * L * Ev)
    op_fail(node, "output size mismatch");
  if (out.numel() == 0)
    return;
  const bool causal = attr_bool(node.attrs, "causal", false);
  const double scale = attr_double(node.attrs, "scale", 1.0 / std::sqrt(static_cast<double>(E)));
  // The fused kernel takes f16/bf16 with E == Ev in {64, 128} and 16-byte aligned data; it
  // declines (returns false) anything else, which stays on the unfused path below.
  const bool fusable_dtype = q.dtype == DType::f16 || q.dtype == DType::bf16;
  if (fusable_dtype && launch_flash_attention(q.dtype, q.data, k.data, v.data, out.data, B, L, S, E,
                                              Ev, Bk == 1, Bv == 1, scale, causal, ctx.stream()))
    return;
  const DType score_dtype = q.dtype == DType::f64 ? DType::f64 : DType::f32;
  const std::size_t score_bytes = static_cast<std::size_t>(B * L * S) * dtype_size(score_dtype);
  const std::size_t prob_bytes =
      q.dtype == score_dtype ? 0 : static_cast<std::size_t>(B * L * S) * dtype_size(q.dtype);
  char* mem = static_cast<char*>(ctx.impl().scratch(score_bytes + prob_bytes + 256));
  void* scores = mem;
  void* probs = q.dtype == score_dtype ? mem : mem + ((score_bytes + 255) / 256) * 256;
  gemm(ctx, node, q.dtype, score_dtype, false, true, L, S, E, B, q.data, L * E, k.data,
       Bk == 1 ? 0 : S * E, scores, L * S, nullptr, scale);
  launch_softmax_rows(node, scores, score_dtype, probs, q.dtype, B * L, S, false, causal ? L : 0,
                      ctx.stream());
  gemm(ctx, node, q.dtype, q.dtype, false, false, L, Ev, S, B, probs, L * S, v.data,
       Bv == 1 ? 0 : S * Ev, out.data, L * Ev, nullptr, 1.0);
}

} // namespace kb::gpu
