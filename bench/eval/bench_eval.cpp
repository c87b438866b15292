// Evaluator benchmarks on a GPU: per-candidate overhead from source to verdict split by phase
// (without and with a compile-cache hit), throughput over many candidates with parallel
// compiles, and the coefficient of variation of reported medians across fresh processes (a
// >= 1 ms kernel and a ~10 us one, candidate and baseline).
// Environment: KB_BENCH_CANDIDATES (throughput count, default 30), KB_BENCH_REPEATS (default 10),
// KB_BENCH_HOLD_LAUNCH=1 (repeatability with TimingOptions::hold_launch).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "catalog.hpp"
#include "eval.hpp"

namespace {

const std::string k_data = std::string(KB_SOURCE_DIR) + "/tests/data/kernels";

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

kb::Problem problem(const std::string& stem) {
  return kb::load_problem(k_data + "/levels/level1/" + stem + ".yaml", k_data + "/levels");
}

kb::EvalOptions options(const std::string& cache) {
  kb::EvalOptions o;
  o.worker_path = std::string(KB_BIN_DIR) + "/kbench-worker";
  o.compile.include_dir = std::string(KB_SOURCE_DIR) + "/include";
  o.compile.cache_dir = cache;
  return o;
}

// A source no cache has seen: the trivial kernel with a unique comment.
std::string unique_relu() {
  static std::mt19937_64 rng(std::random_device{}());
  return kb::read_file(k_data + "/ok/relu.cu") + fmt::format("// {:016x}\n", rng());
}

void report_phases(benchmark::State& state, const std::vector<kb::EvalResult>& rs) {
  double c = 0, s = 0, k = 0, t = 0;
  for (const auto& r : rs) {
    if (r.outcome != kb::Outcome::correct)
      state.SkipWithError(("not correct: " + r.message).c_str());
    c += r.compile_s;
    s += r.start_s;
    k += r.check_s;
    t += r.time_s;
  }
  const double n = static_cast<double>(rs.size());
  state.counters["compile_s"] = c / n;
  state.counters["start_s"] = s / n;
  state.counters["check_s"] = k / n;
  state.counters["time_s"] = t / n;
  state.counters["total_s"] = (c + s + k + t) / n;
}

// Source to verdict for a trivial kernel, nothing cached, fresh evaluator (reference start
// included in start_s), default protocol.
void BM_OverheadCold(benchmark::State& state) {
  const auto p = problem("relu_small");
  std::vector<kb::EvalResult> rs;
  for (auto _ : state) {
    kb::Evaluator ev(options("/tmp/kbench-bench-cache"));
    rs.push_back(ev.evaluate(p, unique_relu()));
  }
  report_phases(state, rs);
}
BENCHMARK(BM_OverheadCold)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same with a compile-cache hit and a warm reference process (the steady state of a run).
void BM_OverheadCached(benchmark::State& state) {
  const auto p = problem("relu_small");
  const std::string src = unique_relu();
  kb::Evaluator ev(options("/tmp/kbench-bench-cache"));
  ev.evaluate(p, src); // fills the cache and the baseline timing
  std::vector<kb::EvalResult> rs;
  for (auto _ : state)
    rs.push_back(ev.evaluate(p, src));
  report_phases(state, rs);
}
BENCHMARK(BM_OverheadCached)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();

// Many distinct candidates on one GPU: compiles in parallel (16 jobs), evaluations in turn.
void BM_Throughput(benchmark::State& state) {
  const auto p = problem("relu_small");
  const int n = env_int("KB_BENCH_CANDIDATES", 30);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> sources;
    for (int i = 0; i < n; ++i)
      sources.push_back(unique_relu());
    auto opts = options("/tmp/kbench-bench-cache");
    const auto compiled = kb::compile_many(sources, opts.compile, 16);
    kb::Evaluator ev(opts);
    int correct = 0;
    for (const auto& c : compiled)
      correct += ev.evaluate_compiled(p, c).outcome == kb::Outcome::correct;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.counters["candidates"] = n;
    state.counters["correct"] = correct;
    state.counters["candidates_per_hour"] = n / s * 3600.0;
  }
}
BENCHMARK(BM_Throughput)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// One kernel timed in KB_BENCH_REPEATS fresh processes: the CV of the reported statistic (median
// under kbench, mean under KernelBench's protocols) of the candidate and of the baseline. The
// >= 1 ms naive matmul, and the ~10 us ReLU 1024x1024 where a sample is a few microseconds of
// work beside the event clock's resolution and the launch path.
void repeatability(benchmark::State& state, kb::Protocol protocol, const std::string& stem,
                   const std::string& kernel) {
  const auto p = problem(stem);
  const std::string src = kb::read_file(k_data + "/ok/" + kernel);
  const int n = env_int("KB_BENCH_REPEATS", 10);
  auto cv_pct = [](const std::vector<double>& v) {
    double mean = 0, ss = 0;
    for (double x : v)
      mean += x / static_cast<double>(v.size());
    for (double x : v)
      ss += (x - mean) * (x - mean);
    return 100.0 * std::sqrt(ss / static_cast<double>(v.size() - 1)) / mean;
  };
  for (auto _ : state) {
    std::vector<double> cand, base;
    for (int i = 0; i < n; ++i) {
      auto o = options("/tmp/kbench-bench-cache");
      o.protocol = protocol;
      o.seeds = 1;
      o.timing.hold_launch = env_int("KB_BENCH_HOLD_LAUNCH", 0) != 0;
      kb::Evaluator ev(o); // fresh worker processes every time
      const auto r = ev.evaluate(p, src);
      if (r.outcome != kb::Outcome::correct || !r.candidate_time || !r.baseline_time) {
        state.SkipWithError(("not correct: " + r.message).c_str());
        return;
      }
      const bool mean = kb::is_kernelbench(protocol);
      cand.push_back(mean ? r.candidate_time->mean_ms : r.candidate_time->median_ms);
      base.push_back(mean ? r.baseline_time->mean_ms : r.baseline_time->median_ms);
    }
    double mean = 0;
    for (double x : cand)
      mean += x / static_cast<double>(cand.size());
    state.counters["time_ms"] = mean;
    state.counters["cv_pct"] = cv_pct(cand);
    state.counters["baseline_cv_pct"] = cv_pct(base);
    state.counters["processes"] = n;
  }
}
void BM_RepeatabilityKbench(benchmark::State& s) {
  repeatability(s, kb::Protocol::kbench, "matmul_2048", "matmul_naive.cu");
}
void BM_RepeatabilityKernelBench(benchmark::State& s) {
  repeatability(s, kb::Protocol::kernelbench, "matmul_2048", "matmul_naive.cu");
}
void BM_RepeatabilitySmallKbench(benchmark::State& s) {
  repeatability(s, kb::Protocol::kbench, "relu_small", "relu.cu");
}
void BM_RepeatabilitySmallKernelBench(benchmark::State& s) {
  repeatability(s, kb::Protocol::kernelbench, "relu_small", "relu.cu");
}
BENCHMARK(BM_RepeatabilityKbench)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_RepeatabilityKernelBench)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_RepeatabilitySmallKbench)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_RepeatabilitySmallKernelBench)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
