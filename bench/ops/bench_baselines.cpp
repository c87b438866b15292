// bench_baselines: times every catalog problem's GPU baseline (GraphRunner, op by op) at full
// shape, with an L2 flush before each iteration, and compares with KernelBench's PyTorch eager
// times on an H100 where the problem mirrors a KernelBench problem.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "catalog.hpp"
#include "gpu_ops.hpp"

namespace {

using kb::gpu::DeviceBuffer;
using kb::gpu::DeviceTensor;

constexpr std::size_t k_flush_bytes = std::size_t{256} << 20;

// PyTorch eager mean time (ms) of a KernelBench problem from a ref like "L1/19 19_ReLU".
std::optional<double> torch_time_ms(const nlohmann::json& times, const std::string& ref) {
  std::istringstream is(ref);
  std::string where, file;
  if (!(is >> where >> file) || where.size() < 2 || where[0] != 'L')
    return std::nullopt;
  const std::string level = "level" + where.substr(1, where.find('/') - 1);
  if (!times.contains(level) || !times[level].contains(file + ".py"))
    return std::nullopt;
  return times[level][file + ".py"].value("mean", 0.0);
}

class Bench {
public:
  Bench(const kb::Problem& p, std::optional<double> torch_ms, bool as_f64, bool per_op,
        bool cudnn_ops)
      : m_p(p), m_torch_ms(torch_ms), m_as_f64(as_f64), m_per_op(per_op), m_cudnn_ops(cudnn_ops) {}

  void operator()(benchmark::State& state) const {
    try {
      run(state);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  }

private:
  void run(benchmark::State& state) const {
    cudaStream_t s = nullptr;
    KB_CUDA_CHECK(cudaStreamCreate(&s));
    cudaEvent_t start = nullptr, stop = nullptr;
    KB_CUDA_CHECK(cudaEventCreate(&start));
    KB_CUDA_CHECK(cudaEventCreate(&stop));
    {
      std::vector<DeviceBuffer> buffers;
      std::vector<DeviceTensor> inputs, outputs;
      uint64_t stream_id = 0;
      for (const auto* list : {&m_p.inputs, &m_p.params})
        for (const kb::TensorSpec& t : *list) {
          buffers.emplace_back(
              std::max<std::size_t>(8, kb::numel(t.shape) * kb::dtype_size(t.dtype)));
          inputs.push_back({buffers.back().get(), t.dtype, t.shape});
          kb::gpu::fill(inputs.back(), t.dist, 42, stream_id++, s);
        }
      for (const auto& name : m_p.outputs) {
        const kb::ValueSpec& v = m_p.output_spec(name);
        const kb::DType t = m_as_f64 ? kb::DType::f64 : v.dtype;
        buffers.emplace_back(std::max<std::size_t>(8, kb::numel(v.shape) * kb::dtype_size(t)));
        outputs.push_back({buffers.back().get(), t, v.shape});
      }
      DeviceBuffer flush(k_flush_bytes);
      kb::gpu::Context ctx(s, m_p.precision.allow_tf32);
      ctx.set_prefer_cudnn(m_cudnn_ops);
      kb::gpu::GraphRunner runner(ctx, m_p, m_as_f64);
      runner.run(inputs, outputs); // warm-up: plans, algorithm choice, workspace growth
      KB_CUDA_CHECK(cudaStreamSynchronize(s));
      int i = 0;
      double total_ms = 0.0;
      for (auto _ : state) {
        KB_CUDA_CHECK(cudaMemsetAsync(flush.get(), i++ & 0xFF, k_flush_bytes, s));
        KB_CUDA_CHECK(cudaEventRecord(start, s));
        runner.run(inputs, outputs);
        KB_CUDA_CHECK(cudaEventRecord(stop, s));
        KB_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0.0f;
        KB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        state.SetIterationTime(ms / 1e3);
        total_ms += ms;
      }
      KB_CUDA_CHECK(cudaGetLastError());
      if (m_per_op) {
        // Which op of the baseline takes the time: a few more flushed runs with per-op events.
        runner.set_step_timing(true);
        for (int r = 0; r < 5; ++r) {
          KB_CUDA_CHECK(cudaMemsetAsync(flush.get(), r & 0xFF, k_flush_bytes, s));
          runner.run(inputs, outputs);
        }
        for (const auto& st : runner.step_times())
          std::fprintf(stderr, "per-op %s %s = %s: %.4f ms\n", m_p.id.c_str(), st.output.c_str(),
                       st.op.c_str(), st.mean_ms);
      }
      const double mean_ms = i > 0 ? total_ms / i : 0.0;
      state.counters["mean_ms"] = mean_ms;
      if (m_torch_ms && mean_ms > 0 && !m_as_f64) {
        // > 1: the baseline is faster than PyTorch eager was on KernelBench's H100.
        state.counters["torch_ms"] = *m_torch_ms;
        state.counters["torch_over_baseline"] = *m_torch_ms / mean_ms;
        state.SetLabel(m_p.provenance.ref);
      }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaStreamDestroy(s);
  }

  const kb::Problem& m_p;
  std::optional<double> m_torch_ms;
  bool m_as_f64 = false;
  bool m_per_op = false;
  bool m_cudnn_ops = false;
};

// Takes "--name=value" out of argv (Google Benchmark rejects flags it does not know).
std::optional<std::string> take_flag(int& argc, char** argv, const std::string& name) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      std::string v = argv[i] + prefix.size();
      for (int j = i; j + 1 < argc; ++j)
        argv[j] = argv[j + 1];
      --argc;
      return v;
    }
  return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
  const std::string levels = take_flag(argc, argv, "levels").value_or(kb::default_levels_dir());
  const std::string torch_path =
      take_flag(argc, argv, "torch_times")
          .value_or(std::string(KB_SOURCE_DIR) +
                    "/data/kernelbench-timings/H100_Modal/baseline_time_torch.json");
  // --f64=1 times the float64 reference instead of the baseline.
  const bool as_f64 = take_flag(argc, argv, "f64").value_or("0") == "1";
  // --per_op=1 also prints each op's mean time (stderr lines starting "per-op").
  const bool per_op = take_flag(argc, argv, "per_op").value_or("0") == "1";
  // --cudnn_ops=1 runs pooling and softmax through cuDNN (where supported) instead of the own
  // kernels, to compare the two.
  const bool cudnn_ops = take_flag(argc, argv, "cudnn_ops").value_or("0") == "1";
  benchmark::Initialize(&argc, argv);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "bench_baselines: no CUDA device; nothing to time\n");
    return 0;
  }
  nlohmann::json times = nlohmann::json::object();
  if (std::ifstream f(torch_path); f) {
    try {
      times = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_baselines: ignoring %s: %s\n", torch_path.c_str(), e.what());
    }
  } else {
    std::fprintf(stderr, "bench_baselines: no PyTorch times at %s\n", torch_path.c_str());
  }
  static kb::Catalog catalog;
  try {
    catalog = kb::load_catalog(levels);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_baselines: %s\n", e.what());
    return 1;
  }
  for (const auto& issue : catalog.errors)
    std::fprintf(stderr, "bench_baselines: skipped %s\n", issue.str().c_str());
  for (const kb::Problem& p : catalog.problems) {
    std::optional<double> torch_ms;
    if (p.provenance.source == "kernelbench")
      torch_ms = torch_time_ms(times, p.provenance.ref);
    benchmark::RegisterBenchmark((as_f64 ? p.id + "/f64" : p.id).c_str(),
                                 Bench(p, torch_ms, as_f64, per_op, cudnn_ops))
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(as_f64 ? 2 : 20);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
