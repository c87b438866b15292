// The host input generator against the GPU's (kb::draw_host vs kb::gpu::fill, so that
// `kbench cpu-reference` draws the tensors the harness draws), bool masks in the GPU's binary
// ops against the float64 CPU reference, and a graph with a mask input through GraphRunner.
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "gpu_ops.hpp"
#include "gpu_test.hpp"
#include "op.hpp"

namespace kb::gpu {
namespace {

class Stream {
public:
  Stream() { KB_CUDA_CHECK(cudaStreamCreate(&m_s)); }
  ~Stream() { cudaStreamDestroy(m_s); }
  cudaStream_t get() const { return m_s; }

private:
  cudaStream_t m_s = nullptr;
};

// The tensor's values as doubles (through convert(), exact for every dtype used here).
std::vector<double> download_f64(const DeviceTensor& t, cudaStream_t s) {
  DeviceBuffer buf(std::max<std::size_t>(8, numel(t.shape) * sizeof(double)));
  DeviceTensor d{buf.get(), DType::f64, t.shape};
  convert(t, d, s);
  std::vector<double> h(numel(t.shape));
  KB_CUDA_CHECK(cudaStreamSynchronize(s));
  KB_CUDA_CHECK(cudaMemcpy(h.data(), buf.get(), h.size() * sizeof(double), cudaMemcpyDeviceToHost));
  return h;
}

class GpuMaskDrawTest : public test::GpuTest {};

TEST_F(GpuMaskDrawTest, HostDrawEqualsGpuFill) {
  Stream stream;
  cudaStream_t s = stream.get();
  const int64_t n = 5000;
  struct Draw {
    Distribution dist;
    DType dtype;
    bool exact; // uniform, randint, constant: bit for bit; normal: cos vs cospi may differ
  };
  const std::vector<Draw> draws = {
      {{DistKind::uniform, -1.0, 1.0}, DType::f64, true},
      {{DistKind::uniform, 0.0, 1.0}, DType::f32, true},
      {{DistKind::uniform, -3.0, 2.0}, DType::f16, true},
      {{DistKind::uniform, -3.0, 2.0}, DType::bf16, true},
      {{DistKind::randint, 0.0, 7.0}, DType::i64, true},
      {{DistKind::randint, 0.0, 2.0}, DType::b8, true},
      {{DistKind::constant, 0.25, 0.0}, DType::f32, true},
      {{DistKind::normal, 0.5, 2.0}, DType::f64, false},
      {{DistKind::normal, 0.0, 1.0}, DType::f32, false},
      {{DistKind::ill_conditioned, 1000.0, 0.1}, DType::f32, false},
  };
  for (std::size_t k = 0; k < draws.size(); ++k) {
    const Draw& d = draws[k];
    SCOPED_TRACE(fmt::format("{} {}", dist_kind_name(d.dist.kind), dtype_name(d.dtype)));
    DeviceBuffer buf(n * dtype_size(d.dtype));
    DeviceTensor t{buf.get(), d.dtype, {n}};
    const uint64_t seed = 0x123456789ull + k, stream_id = 3 + k;
    fill(t, d.dist, seed, stream_id, s);
    const std::vector<double> gpu = download_f64(t, s);
    const std::vector<double> host = draw_host(d.dist, d.dtype, n, seed, stream_id);
    int mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double g = gpu[i], h = host[i];
      // Normal draws: the double before rounding may differ in its last bit, which rounding to
      // f32 almost always hides; allow one f32 ulp.
      const double tol = d.exact ? 0.0 : (d.dtype == DType::f64 ? 1e-13 : 1.2e-7) * std::abs(h);
      if (!(std::abs(g - h) <= tol) && mismatches++ < 5)
        ADD_FAILURE() << "element " << i << ": GPU " << g << ", host " << h;
    }
    EXPECT_EQ(mismatches, 0);
  }
}

// y = op(x, mask) or op(mask, x) on the GPU in each floating dtype, against the CPU reference.
TEST_F(GpuMaskDrawTest, BoolMasksInBinaryOpsMatchCpuReference) {
  Stream stream;
  cudaStream_t s = stream.get();
  Context ctx(s);
  struct Shapes {
    Shape x, mask;
  };
  const std::vector<Shapes> shapes = {{{4, 37}, {4, 37}}, {{3, 5, 8}, {5, 1}}, {{7}, {3, 1, 7}}};
  int checked = 0;
  for (const char* op : {"mul", "add", "div", "pow", "minimum", "maximum"})
    for (const Shapes& sh : shapes)
      for (const bool mask_first : {false, true})
        for (DType dt : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
          SCOPED_TRACE(fmt::format("{} x{} mask{} {} {}", op, shape_str(sh.x), shape_str(sh.mask),
                                   mask_first ? "mask first" : "mask second", dtype_name(dt)));
          DeviceBuffer xb(numel(sh.x) * dtype_size(dt)), mb(numel(sh.mask));
          DeviceTensor x{xb.get(), dt, sh.x}, m{mb.get(), DType::b8, sh.mask};
          // Positive x keeps pow real and div finite where the mask is first.
          fill(x, {DistKind::uniform, 0.25, 2.0}, 77, 0, s);
          fill(m, {DistKind::randint, 0.0, 2.0}, 77, 1, s);
          OpNode node{op,
                      mask_first ? std::vector<std::string>{"m", "x"}
                                 : std::vector<std::string>{"x", "m"},
                      "y",
                      {},
                      0};
          const std::vector<ValueSpec> specs =
              mask_first ? std::vector<ValueSpec>{{sh.mask, DType::b8}, {sh.x, dt}}
                         : std::vector<ValueSpec>{{sh.x, dt}, {sh.mask, DType::b8}};
          const ValueSpec out_spec = check_node(node, specs);
          ASSERT_EQ(out_spec.dtype, dt);
          DeviceBuffer yb(numel(out_spec.shape) * dtype_size(dt));
          DeviceTensor y{yb.get(), dt, out_spec.shape};
          poison(y, s);
          const std::vector<DeviceTensor> ins =
              mask_first ? std::vector<DeviceTensor>{m, x} : std::vector<DeviceTensor>{x, m};
          run_op(ctx, node, ins, y);
          std::vector<HostTensor> host;
          for (const DeviceTensor& t : ins)
            host.emplace_back(t.shape, download_f64(t, s));
          HostTensor want(out_spec.shape);
          find_op(op)->cpu(node.attrs, host, want);
          const std::vector<double> got = download_f64(y, s);
          const double tol = dt == DType::f64 ? 1e-12 : (dt == DType::f32 ? 1e-6 : 1e-2);
          for (std::size_t i = 0; i < got.size(); ++i) {
            const double w = want.data[i];
            if (std::isinf(w)) {
              EXPECT_EQ(got[i], w) << "element " << i;
              continue;
            }
            ASSERT_NEAR(got[i], w, tol * (1 + std::abs(w))) << "element " << i;
          }
          ++checked;
        }
  EXPECT_EQ(checked, 6 * 3 * 2 * 4);
}

// cumsum(x * mask) (KernelBench L1/93's masked cumulative sum) through GraphRunner, fast and
// float64, against run_graph_cpu on the same tensors.
TEST_F(GpuMaskDrawTest, GraphRunnerTakesABoolMaskInput) {
  Problem p;
  p.id = "test/masked_cumsum";
  p.inputs = {{"x", {3, 300}, DType::f32, {DistKind::uniform, -1, 1}, {}},
              {"mask", {3, 300}, DType::b8, {DistKind::randint, 0, 2}, {}}};
  p.graph = {{"mul", {"x", "mask"}, "m", {}, 1}, {"cumsum", {"m"}, "y", {{"dim", int64_t{1}}}, 2}};
  p.outputs = {"y"};
  p.values["m"] = {{3, 300}, DType::f32};
  p.values["y"] = {{3, 300}, DType::f32};
  Stream stream;
  cudaStream_t s = stream.get();
  Context ctx(s);
  DeviceBuffer xb(900 * 4), mb(900);
  std::vector<DeviceTensor> ins = {{xb.get(), DType::f32, {3, 300}},
                                   {mb.get(), DType::b8, {3, 300}}};
  std::map<std::string, HostTensor, std::less<>> feeds;
  for (std::size_t k = 0; k < ins.size(); ++k) {
    fill(ins[k], p.inputs[k].dist, 5, k, s);
    feeds[p.inputs[k].name] = HostTensor(ins[k].shape, download_f64(ins[k], s));
  }
  const auto want =
      run_graph_cpu(p.graph, feeds, p.outputs, {{"x", DType::f32}, {"mask", DType::b8}});
  for (const bool as_f64 : {false, true}) {
    SCOPED_TRACE(as_f64 ? "f64" : "f32");
    const DType dt = as_f64 ? DType::f64 : DType::f32;
    DeviceBuffer yb(900 * dtype_size(dt));
    std::vector<DeviceTensor> outs = {{yb.get(), dt, {3, 300}}};
    GraphRunner runner(ctx, p, as_f64);
    poison(outs[0], s);
    runner.run(ins, outs);
    const auto got = download_f64(outs[0], s);
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[0].data[i], as_f64 ? 1e-12 : 1e-4) << "element " << i;
  }
}

} // namespace
} // namespace kb::gpu
