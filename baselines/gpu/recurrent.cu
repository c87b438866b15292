// lstm and gru: per layer, one GEMM per direction projects the inputs of every time step at once;
// then each time step runs one GEMM for the hidden projections of both directions (strided-batched
// over the directions) and one kernel for the gates of both directions. Projections and the cell
// state (LSTM) or a copy of the hidden state (GRU) are kept in fp32 (f64 for f64); the hidden state
// the next step's GEMM reads is stored in the op's dtype, as PyTorch stores it.
#include <type_traits>

#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

// Per-direction slices of the step buffers start at multiples of this many elements, so that
// every matrix of a strided-batched GEMM is as aligned as the buffer itself.
constexpr int64_t k_align_elems = 64;

int64_t padded(int64_t n) {
  return (n + k_align_elems - 1) / k_align_elems * k_align_elems;
}

template <class A> __device__ __forceinline__ A sigmoid_of(A v) {
  return A(1) / (A(1) + d_exp(-v));
}

// One time step of both directions. Direction d reads time t = step (forward) or steps - 1 - step
// (reverse), whose rows of x (and of the layer output y) are t * batch + b, or b * steps + t when
// batch_first.
template <class T> struct StepArgs {
  const Acc<T>* xp[2] = {nullptr, nullptr}; // [rows, G * H]: input projections without bias
  const Acc<T>* hp[2] = {nullptr, nullptr}; // [batch, G * H]: hidden projections without bias
  const T* b_ih[2] = {nullptr, nullptr};    // [G * H] or nullptr (bias=false)
  const T* b_hh[2] = {nullptr, nullptr};
  T* h[2] = {nullptr, nullptr};       // [batch, H]: hidden state in T, rewritten in place
  Acc<T>* s[2] = {nullptr, nullptr};  // [batch, H]: LSTM cell state, or the GRU hidden state
  T* y = nullptr;                     // [rows, dirs * H] layer output, or nullptr
  T* h_final[2] = {nullptr, nullptr}; // [batch, H], written at the last step, or nullptr
  T* c_final[2] = {nullptr, nullptr}; // LSTM only
  int64_t steps = 0, batch = 0, hidden = 0, step = 0;
  int dirs = 1;
  bool batch_first = false;
};

template <class T, bool Lstm> __global__ void rnn_gates_kernel(const StepArgs<T> a) {
  using A = Acc<T>;
  const int64_t H = a.hidden;
  const int64_t G = (Lstm ? 4 : 3) * H;
  const int64_t per_dir = a.batch * H;
  const int64_t n = a.dirs * per_dir;
  const bool last = a.step == a.steps - 1;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int d = e >= per_dir ? 1 : 0;
    const int64_t k = e - d * per_dir; // b * H + j
    const int64_t b = k / H, j = k - b * H;
    const int64_t t = d == 0 ? a.step : a.steps - 1 - a.step;
    const int64_t row = a.batch_first ? b * a.steps + t : t * a.batch + b;
    const A* xg = a.xp[d] + row * G + j;
    const A* hg = a.hp[d] + b * G + j;
    const T* bi = a.b_ih[d];
    const T* bh = a.b_hh[d];
    // Gate q's input and hidden parts (rows q * H + j of the projections, plus their biases).
    auto in_part = [&](int q) { return xg[q * H] + (bi ? to_acc(bi[q * H + j]) : A(0)); };
    auto hid_part = [&](int q) { return hg[q * H] + (bh ? to_acc(bh[q * H + j]) : A(0)); };
    A h;
    if constexpr (Lstm) {
      const A ig = sigmoid_of(in_part(0) + hid_part(0));
      const A fg = sigmoid_of(in_part(1) + hid_part(1));
      const A gg = d_tanh(in_part(2) + hid_part(2));
      const A og = sigmoid_of(in_part(3) + hid_part(3));
      const A c = fg * a.s[d][k] + ig * gg;
      a.s[d][k] = c;
      h = og * d_tanh(c);
      if (last && a.c_final[d])
        a.c_final[d][k] = from_acc<T>(c);
    } else {
      const A r = sigmoid_of(in_part(0) + hid_part(0));
      const A z = sigmoid_of(in_part(1) + hid_part(1));
      const A nn = d_tanh(in_part(2) + r * hid_part(2));
      h = (A(1) - z) * nn + z * a.s[d][k];
      a.s[d][k] = h;
    }
    const T hv = from_acc<T>(h);
    a.h[d][k] = hv;
    if (a.y)
      a.y[row * a.dirs * H + d * H + j] = hv;
    if (last && a.h_final[d])
      a.h_final[d][k] = hv;
  }
}

// Initial states of one layer: h[d] = h0 rows, s[d] = c0 rows (LSTM) or h0 rows (GRU), in the
// padded per-direction slices of the state buffers.
template <class T>
__global__ void rnn_init_kernel(const T* __restrict__ h0, const T* __restrict__ c0, int64_t dirs,
                                int64_t per_dir, int64_t stride_h, int64_t stride_s, T* h,
                                Acc<T>* s) {
  const int64_t n = dirs * per_dir;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t d = e / per_dir, k = e - d * per_dir;
    h[d * stride_h + k] = h0[e];
    s[d * stride_s + k] = to_acc(c0 ? c0[e] : h0[e]);
  }
}

struct RnnGeom {
  bool lstm = true;
  int64_t gates = 4, hidden = 0, layers = 1, dirs = 1;
  bool batch_first = false, bias = true;
  std::string output;
  int64_t steps = 0, batch = 0, input = 0;
  int64_t states = 2, per_layer = 4;
  // Index of weight `k` (0 w_ih, 1 w_hh, 2 b_ih, 3 b_hh) of layer l, direction d.
  std::size_t weight(int64_t l, int64_t d, int64_t k) const {
    return static_cast<std::size_t>(1 + states + per_layer * (l * dirs + d) + k);
  }
};

RnnGeom rnn_geom(const OpNode& node, std::span<const DeviceTensor> in, const DeviceTensor& out) {
  RnnGeom g;
  g.lstm = node.op == "lstm";
  g.gates = g.lstm ? 4 : 3;
  g.hidden = attr_int(node.attrs, "hidden_size");
  g.layers = attr_int(node.attrs, "num_layers", 1);
  g.dirs = attr_bool(node.attrs, "bidirectional", false) ? 2 : 1;
  g.batch_first = attr_bool(node.attrs, "batch_first", false);
  g.bias = attr_bool(node.attrs, "bias", true);
  g.output = attr_string(node.attrs, "output", "out");
  g.states = g.lstm ? 2 : 1;
  g.per_layer = g.bias ? 4 : 2;
  if (g.hidden < 1 || g.layers < 1)
    op_fail(node, "hidden_size and num_layers must be >= 1");
  if (g.output != "out" && g.output != "h_n" && !(g.lstm && g.output == "c_n"))
    op_fail(node, "unknown output '" + g.output + "'");
  const std::size_t want = static_cast<std::size_t>(1 + g.states + g.per_layer * g.layers * g.dirs);
  if (in.size() != want)
    op_fail(node, str_cat("expects ", want, " inputs, got ", in.size()));
  require_float_dtype(node, in[0], "x");
  for (const auto& t : in)
    if (t.dtype != in[0].dtype)
      op_fail(node, "inputs must share one dtype");
  if (out.dtype != in[0].dtype)
    op_fail(node, "output dtype differs from x");
  if (in[0].shape.size() != 3)
    op_fail(node, "x must have rank 3");
  g.steps = g.batch_first ? in[0].shape[1] : in[0].shape[0];
  g.batch = g.batch_first ? in[0].shape[0] : in[0].shape[1];
  g.input = in[0].shape[2];
  if (g.steps < 1 || g.batch < 1 || g.input < 1)
    op_fail(node, "x must have a time step, a batch entry and a feature");
  const Shape state = {g.layers * g.dirs, g.batch, g.hidden};
  for (int64_t s = 1; s <= g.states; ++s)
    if (in[s].shape != state)
      op_fail(node, str_cat("initial state ", s, " has shape ", shape_str(in[s].shape),
                            ", expected ", shape_str(state)));
  const int64_t G = g.gates * g.hidden;
  for (int64_t l = 0; l < g.layers; ++l)
    for (int64_t d = 0; d < g.dirs; ++d) {
      const int64_t in_size = l == 0 ? g.input : g.dirs * g.hidden;
      const Shape want_shapes[4] = {{G, in_size}, {G, g.hidden}, {G}, {G}};
      for (int64_t k = 0; k < g.per_layer; ++k)
        if (in[g.weight(l, d, k)].shape != want_shapes[k])
          op_fail(node, str_cat("weight ", k, " of layer ", l, " direction ", d, " has shape ",
                                shape_str(in[g.weight(l, d, k)].shape), ", expected ",
                                shape_str(want_shapes[k])));
    }
  const Shape want_out = g.output != "out"
                             ? state
                             : (g.batch_first ? Shape{g.batch, g.steps, g.dirs * g.hidden}
                                              : Shape{g.steps, g.batch, g.dirs * g.hidden});
  if (out.shape != want_out)
    op_fail(node,
            str_cat("output has shape ", shape_str(out.shape), ", expected ", shape_str(want_out)));
  return g;
}

template <class T>
void run_rnn(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
             const DeviceTensor& out, const RnnGeom& g) {
  using A = Acc<T>;
  auto& c = ctx.impl();
  cudaStream_t s = ctx.stream();
  const DType dt = in[0].dtype;
  const DType acc_dt = std::is_same_v<A, double> ? DType::f64 : DType::f32;
  const int64_t steps_n = g.steps, B = g.batch, H = g.hidden, D = g.dirs;
  const int64_t G = g.gates * H;
  const int64_t rows = steps_n * B;
  // Scratch, each buffer at a 256-byte boundary: input projections [D][rows, G], hidden
  // projections [D][B, G], hidden state [D][B, H] in T, cell (or GRU hidden) state [D][B, H] in A,
  // both directions' w_hh side by side [D][G, H] (bidirectional only), and two layer outputs
  // [rows, D * H] (more than one layer only).
  const int64_t xp_dir = rows * G, hp_dir = padded(B * G), h_dir = padded(B * H);
  const int64_t w_dir = padded(G * H);
  std::size_t offset = 0;
  auto reserve = [&offset](std::size_t bytes) {
    const std::size_t at = offset;
    offset += (bytes + 255) / 256 * 256;
    return at;
  };
  const std::size_t xp_at = reserve(sizeof(A) * D * xp_dir);
  const std::size_t hp_at = reserve(sizeof(A) * D * hp_dir);
  const std::size_t h_at = reserve(sizeof(T) * D * h_dir);
  const std::size_t s_at = reserve(sizeof(A) * D * h_dir);
  const std::size_t w_at = reserve(D == 2 ? sizeof(T) * D * w_dir : 0);
  const std::size_t y_at = reserve(g.layers > 1 ? sizeof(T) * 2 * rows * D * H : 0);
  char* mem = static_cast<char*>(c.scratch(offset));
  A* xp = reinterpret_cast<A*>(mem + xp_at);
  A* hp = reinterpret_cast<A*>(mem + hp_at);
  T* h = reinterpret_cast<T*>(mem + h_at);
  A* st = reinterpret_cast<A*>(mem + s_at);
  T* w_pair = reinterpret_cast<T*>(mem + w_at);
  T* y_buf[2] = {nullptr, nullptr};
  if (g.layers > 1) {
    y_buf[0] = reinterpret_cast<T*>(mem + y_at);
    y_buf[1] = y_buf[0] + rows * D * H;
  }
  auto data = [&in](std::size_t i) { return static_cast<const T*>(in[i].data); };
  const T* h0 = data(1);
  const T* c0 = g.lstm ? data(2) : nullptr;
  T* y_out = static_cast<T*>(out.data);

  for (int64_t l = 0; l < g.layers; ++l) {
    const T* layer_x = l == 0 ? data(0) : y_buf[(l - 1) % 2];
    const int64_t in_size = l == 0 ? g.input : D * H;
    const bool top = l == g.layers - 1;
    T* layer_y = !top ? y_buf[l % 2] : (g.output == "out" ? y_out : nullptr);
    // Input projections of every time step.
    for (int64_t d = 0; d < D; ++d)
      gemm(ctx, node, dt, acc_dt, false, true, rows, G, in_size, 1, layer_x, 0,
           data(g.weight(l, d, 0)), 0, xp + d * xp_dir, 0, nullptr, 1.0);
    const T* w_hh = data(g.weight(l, 0, 1));
    if (D == 2) {
      for (int64_t d = 0; d < D; ++d)
        KB_CUDA_CHECK(cudaMemcpyAsync(w_pair + d * w_dir, data(g.weight(l, d, 1)),
                                      sizeof(T) * G * H, cudaMemcpyDeviceToDevice, s));
      w_hh = w_pair;
    }
    rnn_init_kernel<T><<<grid_for(D * B * H, 256), 256, 0, s>>>(
        h0 + l * D * B * H, c0 ? c0 + l * D * B * H : nullptr, D, B * H, h_dir, h_dir, h, st);
    KB_CUDA_CHECK_LAUNCH();
    StepArgs<T> a;
    for (int64_t d = 0; d < D; ++d) {
      a.xp[d] = xp + d * xp_dir;
      a.hp[d] = hp + d * hp_dir;
      a.b_ih[d] = g.bias ? data(g.weight(l, d, 2)) : nullptr;
      a.b_hh[d] = g.bias ? data(g.weight(l, d, 3)) : nullptr;
      a.h[d] = h + d * h_dir;
      a.s[d] = st + d * h_dir;
      // h_n / c_n: row l * D + d of the output holds this layer and direction's final state.
      if (g.output == "h_n")
        a.h_final[d] = y_out + (l * D + d) * B * H;
      if (g.output == "c_n")
        a.c_final[d] = y_out + (l * D + d) * B * H;
    }
    a.y = layer_y;
    a.steps = steps_n;
    a.batch = B;
    a.hidden = H;
    a.dirs = static_cast<int>(D);
    a.batch_first = g.batch_first;
    const int grid = grid_for(D * B * H, 256);
    for (int64_t step = 0; step < steps_n; ++step) {
      // hp[d] [B, G] = h[d] [B, H] * w_hh[d]^T for both directions in one call.
      gemm(ctx, node, dt, acc_dt, false, true, B, G, H, D, h, h_dir, w_hh, w_dir, hp, hp_dir,
           nullptr, 1.0);
      a.step = step;
      if (g.lstm)
        rnn_gates_kernel<T, true><<<grid, 256, 0, s>>>(a);
      else
        rnn_gates_kernel<T, false><<<grid, 256, 0, s>>>(a);
      KB_CUDA_CHECK_LAUNCH();
    }
  }
}

} // namespace

void op_recurrent(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                  const DeviceTensor& out) {
  if (node.op != "lstm" && node.op != "gru")
    op_fail(node, "not a recurrent op");
  if (in.empty())
    op_fail(node, "expects inputs");
  const RnnGeom g = rnn_geom(node, in, out);
  KB_DISPATCH_FLOAT(in[0].dtype, node, { run_rnn<T>(ctx, node, in, out, g); });
}

} // namespace kb::gpu
