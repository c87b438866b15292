// Store and report benchmarks: attempt ingest rate (evaluations per second, one transaction per
// attempt as the runner writes them) and report/compare time over a 100,000-evaluation database.
#include <filesystem>
#include <random>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include "report.hpp"
#include "store.hpp"

namespace fs = std::filesystem;
using namespace kb;

namespace {

std::string temp_db(const std::string& name) {
  return (fs::temp_directory_path() / ("kb-bench-store-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

void remove_db(const std::string& p) {
  for (const char* suffix : {"", "-wal", "-shm"})
    fs::remove(p + suffix);
}

// A realistic attempt: LLM call with a 4 KB answer, a 4 KB kernel, an evaluation with 100 raw
// samples for the candidate and the baseline.
store::Attempt make_attempt(int64_t run, int64_t model, int i, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.5, 4.0);
  store::Attempt a;
  std::string problem = "l" + std::to_string(1 + i % 3) + "/p" + std::to_string(i % 250);
  a.llm_call = store::LlmCall{run,  model, problem, "req" + std::to_string(i), 3000, 5000, 12.0,
                              "ok", "",    0.02,    std::string(4000, 'r')};
  a.candidate = store::Candidate{run,
                                 problem,
                                 model,
                                 "ideas",
                                 i % 5,
                                 std::nullopt,
                                 "idea " + std::to_string(i),
                                 std::string(4000, 'k')};
  EvalResult r;
  r.outcome = (i % 4 == 0) ? Outcome::compile_error : Outcome::correct;
  if (r.outcome == Outcome::correct) {
    TimingStats t, b;
    double c = u(rng), base = u(rng);
    for (int k = 0; k < 100; ++k) {
      t.samples_ms.push_back(c * (1 + 0.001 * (k % 7)));
      b.samples_ms.push_back(base * (1 + 0.001 * (k % 5)));
    }
    t.median_ms = c;
    b.median_ms = base;
    t.samples = b.samples = 100;
    r.candidate_time = t;
    r.baseline_time = b;
    r.speedup = base / c;
    r.roofline_pct = 50;
  } else {
    r.message = "error: expected ';'";
    r.compile_log = std::string(1000, 'e');
  }
  a.evaluation = r;
  return a;
}

void fill(store::Store& s, int n) {
  int64_t run = s.begin_run({});
  int64_t models[2] = {s.upsert_model("vllm", "kevin", "{}"), s.upsert_model("openai", "o3", "{}")};
  std::mt19937 rng(7);
  store::Store::Transaction tx(s);
  for (int i = 0; i < n; ++i)
    s.record_attempt(make_attempt(run, models[i % 2], i, rng));
  tx.commit();
  s.end_run(run);
}

// One transaction per attempt, as the runner writes (durable against kill -9).
void BM_IngestAttempt(benchmark::State& state) {
  std::string path = temp_db("ingest.db");
  remove_db(path);
  store::Store s(path);
  int64_t run = s.begin_run({});
  int64_t model = s.upsert_model("vllm", "kevin", "{}");
  std::mt19937 rng(1);
  int i = 0;
  for (auto _ : state)
    s.record_attempt(make_attempt(run, model, i++, rng));
  state.SetItemsProcessed(state.iterations());
  state.counters["evaluations_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  remove_db(path);
}
BENCHMARK(BM_IngestAttempt)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();

// Database of 100,000 evaluations built once, shared by the report benchmarks.
const std::string& big_db() {
  static const std::string path = [] {
    std::string p = temp_db("big.db");
    remove_db(p);
    store::Store s(p);
    fill(s, 100000);
    return p;
  }();
  return path;
}

void BM_Report100k(benchmark::State& state) {
  store::Store s(big_db(), {.read_only = true});
  for (auto _ : state) {
    auto r = report::build_report(s);
    auto md = report::render(r, report::Format::markdown);
    benchmark::DoNotOptimize(md);
  }
  state.counters["evaluations"] = 100000;
}
BENCHMARK(BM_Report100k)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

void BM_ReportHtml100k(benchmark::State& state) {
  store::Store s(big_db(), {.read_only = true});
  for (auto _ : state) {
    auto html = report::render(report::build_report(s), report::Format::html);
    benchmark::DoNotOptimize(html);
  }
}
BENCHMARK(BM_ReportHtml100k)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

void BM_Compare100k(benchmark::State& state) {
  store::Store a(big_db(), {.read_only = true}), b(big_db(), {.read_only = true});
  for (auto _ : state) {
    auto r = report::compare(a, b);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Compare100k)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  remove_db(temp_db("big.db"));
  return 0;
}
