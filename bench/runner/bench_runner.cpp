// Harness overhead per LLM call: the whole runner + store path (journal, budget, candidate row)
// with the instant replay provider, in generate mode, per candidate recorded.
#include <filesystem>

#include <benchmark/benchmark.h>

#include "runner.hpp"

namespace {

namespace fs = std::filesystem;

void BM_RunnerPerCall(benchmark::State& state) {
  const fs::path dir =
      fs::temp_directory_path() / ("kb_bench_runner_" + std::to_string(::getpid()));
  const int samples = static_cast<int>(state.range(0));
  int64_t calls = 0;
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir);
    fs::create_directories(dir);
    kb::runner::RunOptions o;
    o.mode = kb::runner::Mode::generate;
    o.db = (dir / "kb.db").string();
    o.levels_dir = std::string(KB_SOURCE_DIR) + "/levels";
    o.models_file = std::string(KB_SOURCE_DIR) + "/config/models.yaml";
    o.levels = {1};
    o.problems = {"relu_4096x393216", "softmax_4096x65536", "matmul_fp32_4096",
                  "layer_norm_16x64x256x256"};
    o.strategy.kind = kb::search::StrategyKind::best_of_n;
    o.strategy.samples = samples;
    o.use_cache = false;
    state.ResumeTiming();
    const auto s = kb::runner::run_suite(o, nullptr);
    calls += s.progress.llm_calls;
  }
  state.counters["calls"] = benchmark::Counter(static_cast<double>(calls));
  state.counters["per_call"] = benchmark::Counter(
      static_cast<double>(calls), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  fs::remove_all(dir);
}
BENCHMARK(BM_RunnerPerCall)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
