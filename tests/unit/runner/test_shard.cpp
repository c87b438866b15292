// Unit tests of suites split into shards: the slice each shard takes, the suite id and budget
// share, a shard's resume, the merge of shards into one run equal to the unsharded run (rows and
// report), evaluation slices filled back in, and one worker per GPU with the placement recorded
// (replay model, fake evaluation back end: no GPU, no network).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fake_backend.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "shard.hpp"
#include "store.hpp"

namespace kb::runner {
namespace {

namespace fs = std::filesystem;
using fakes::FakeBackend;
using nlohmann::json;

// Sets an environment variable for one scope and restores what was there.
class ScopedEnv {
public:
  ScopedEnv(const char* name, const char* value) : m_name(name) {
    if (const char* old = std::getenv(name))
      m_old = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (m_old)
      ::setenv(m_name, m_old->c_str(), 1);
    else
      ::unsetenv(m_name);
  }

private:
  const char* m_name;
  std::optional<std::string> m_old;
};

std::vector<TaskKey> make_tasks(int problems, int models) {
  std::vector<TaskKey> out;
  for (int p = 0; p < problems; ++p)
    for (int m = 0; m < models; ++m)
      out.push_back({"l1/problem_" + std::to_string(p), "model-" + std::to_string(m)});
  return out;
}

TEST(Shard, ParsesKOfNAndRefusesTheRest) {
  EXPECT_EQ(parse_shard("3/16"), (Shard{3, 16}));
  EXPECT_EQ(parse_shard("1/1"), (Shard{1, 1}));
  EXPECT_EQ(parse_shard("3/16").label(), "3/16");
  for (const char* bad : {"0/4", "5/4", "a/b", "3", "3/0", "/4", "3/", "1/100001", "-1/4", "1 /4"})
    EXPECT_THROW(parse_shard(bad), InputError) << bad;
  try {
    parse_shard("5/4", "--slice");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--slice"), std::string::npos) << e.what();
  }
}

TEST(Shard, EveryTaskHasOneShardAndShardsDifferByAtMostOne) {
  const auto tasks = make_tasks(23, 3);
  for (int n = 1; n <= 9; ++n) {
    const auto owner = shard_assignment(tasks, n);
    std::map<int, int> sizes;
    for (int o : owner) {
      ASSERT_GE(o, 1);
      ASSERT_LE(o, n);
      ++sizes[o];
    }
    std::size_t total = 0;
    for (int k = 1; k <= n; ++k) {
      const auto mine = shard_tasks(tasks, Shard{k, n});
      total += mine.size();
      EXPECT_EQ(static_cast<int>(mine.size()), sizes[k]);
      EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    }
    EXPECT_EQ(total, tasks.size());
    const auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end(),
                                              [](auto& a, auto& b) { return a.second < b.second; });
    EXPECT_LE(hi->second - lo->second, 1) << n << " shards";
  }
}

TEST(Shard, TheSliceDependsOnTheTasksNotTheirOrder) {
  const auto tasks = make_tasks(17, 2);
  std::map<TaskKey, int> before;
  const auto owner = shard_assignment(tasks, 4);
  for (std::size_t i = 0; i < tasks.size(); ++i)
    before[tasks[i]] = owner[i];
  auto shuffled = tasks;
  std::mt19937 rng(7);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const auto again = shard_assignment(shuffled, 4);
    for (std::size_t i = 0; i < shuffled.size(); ++i)
      EXPECT_EQ(again[i], before[shuffled[i]]) << shuffled[i].problem_id << shuffled[i].model;
  }
  // Pinned: the slice of a suite is the same on every machine and in every build of this
  // version, so a shard resumed elsewhere searches what it searched before.
  const std::vector<TaskKey> small{{"l1/a", "m"}, {"l1/b", "m"}, {"l1/c", "m"}, {"l1/d", "m"}};
  std::vector<int> got = shard_assignment(small, 2);
  std::vector<int> expected;
  {
    // The rule itself: order by xxh64 of "problem\nmodel", deal round-robin.
    std::vector<std::pair<std::string, std::size_t>> order;
    for (std::size_t i = 0; i < small.size(); ++i)
      order.emplace_back(content_hash(small[i].problem_id + "\n" + small[i].model), i);
    std::sort(order.begin(), order.end());
    expected.assign(small.size(), 0);
    for (std::size_t pos = 0; pos < order.size(); ++pos)
      expected[order[pos].second] = static_cast<int>(pos % 2) + 1;
  }
  EXPECT_EQ(got, expected);
  EXPECT_THROW(shard_assignment({{"l1/a", "m"}, {"l1/a", "m"}}, 2), Error);
  EXPECT_THROW(shard_assignment(small, 0), Error);
}

TEST(Shard, SuiteIdsAndBudgetShares) {
  check_suite_id("20261205-063112-3fa9c1");
  check_suite_id("paper.v2_final");
  for (const char* bad : {"", "-x", ".x", "a b", "a/b", "x;rm", std::string(65, 'a').c_str()})
    EXPECT_THROW(check_suite_id(bad), InputError) << bad;
  const std::string id = new_suite_id();
  check_suite_id(id);
  EXPECT_EQ(id.size(), 22u) << id;
  EXPECT_NE(id, new_suite_id());

  search::BudgetLimits suite{10, 0, 3, 1.0, 30.0};
  const auto b = shard_budget(suite, 4);
  EXPECT_EQ(b.tokens, 2);
  EXPECT_EQ(b.tokens_in, 0); // no limit stays no limit
  EXPECT_EQ(b.tokens_out, 1);
  EXPECT_DOUBLE_EQ(b.usd, 0.25);
  EXPECT_DOUBLE_EQ(b.minutes, 30.0); // wall time: per shard
  EXPECT_EQ(shard_budget(suite, 1).tokens, 10);
}

TEST(Placement, WorkersSeeTheDeviceThisProcessCallsTheirGpu) {
  {
    ScopedEnv env("CUDA_VISIBLE_DEVICES", nullptr);
    EXPECT_EQ(worker_visible_device(3), "3");
  }
  {
    ScopedEnv env("CUDA_VISIBLE_DEVICES", "4, 6");
    EXPECT_EQ(worker_visible_device(0), "4");
    EXPECT_EQ(worker_visible_device(1), "6");
    try {
      worker_visible_device(2);
      FAIL() << "GPU 2 is not visible";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("CUDA_VISIBLE_DEVICES"), std::string::npos);
    }
  }
  {
    ScopedEnv env("CUDA_VISIBLE_DEVICES", "GPU-8f1e,MIG-77a0");
    EXPECT_EQ(worker_visible_device(1), "MIG-77a0");
  }
  {
    ScopedEnv env("CUDA_VISIBLE_DEVICES", "");
    EXPECT_THROW(worker_visible_device(0), Error);
  }
}

TEST(Placement, SlurmCpusBoundTheDefaultCompileJobs) {
  ScopedEnv env("SLURM_CPUS_PER_TASK", "1");
  EXPECT_EQ(detail::available_cpus(), 1);
  ScopedEnv bad("SLURM_CPUS_PER_TASK", "many");
  EXPECT_GE(detail::available_cpus(), 1);
}

// ---------------------------------------------------------------------------------------------

const char* k_problems[] = {"relu_4096x393216",       "softmax_4096x65536",
                            "sum_dim1_128x4096x4095", "layer_norm_16x64x256x256",
                            "matmul_fp32_4096",       "kb_gelu"};

class ShardRun : public ::testing::Test {
protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("kb_shard_unit_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "models.yaml") << "models:\n  replay-a:\n    provider: replay\n"
                                          "    replay_dir: levels/examples\n  replay-b:\n"
                                          "    provider: replay\n    replay_dir: levels/examples\n";
    opts.levels_dir = std::string(KB_SOURCE_DIR) + "/levels";
    opts.models_file = (dir / "models.yaml").string();
    opts.models = {"replay-a", "replay-b"};
    opts.levels = {1};
    opts.problems.assign(std::begin(k_problems), std::end(k_problems));
    opts.strategy.kind = search::StrategyKind::best_of_n;
    opts.strategy.samples = 2;
    opts.concurrency = 3;
    opts.jobs = 2;
  }
  void TearDown() override { fs::remove_all(dir); }

  RunSummary run(const std::string& name, std::optional<Shard> shard = {},
                 const std::string& suite = "", const std::atomic<bool>* cancel = nullptr) {
    RunOptions o = opts;
    o.db = (dir / name).string();
    o.shard = shard;
    o.suite = suite;
    FakeBackend backend;
    return run_suite(o, &backend, cancel, {});
  }
  std::string db(const std::string& name) const { return (dir / name).string(); }

  fs::path dir;
  RunOptions opts;
};

// Everything that makes a candidate and its verdict, without ids and times.
using Row =
    std::tuple<std::string, std::string, std::string, int, std::string, bool, std::string, double>;

std::multiset<Row> rows_of(const std::string& path) {
  store::Store s(path, {.read_only = true});
  std::map<int64_t, std::string> label;
  for (const auto& m : s.models())
    label[m.id] = m.label;
  std::multiset<Row> out;
  for (const auto& a : s.attempts({}))
    out.emplace(a.problem_id, label[a.model_id], a.strategy, a.round, a.source_hash, a.evaluated,
                a.evaluated ? std::string(outcome_name(a.eval.outcome)) : "",
                a.evaluated ? a.eval.speedup : 0.0);
  return out;
}

// The report as JSON without what differs between any two runs of one suite: ids, wall time.
json report_of(const std::string& path) {
  store::Store s(path, {.read_only = true});
  json j = json::parse(report::render(report::build_report(s), report::Format::json));
  std::function<void(json&)> strip = [&](json& v) {
    if (v.is_object()) {
      for (const char* k : {"runs", "wall_s", "candidate_id", "id", "run_id"})
        v.erase(k);
      for (auto& [k, x] : v.items())
        strip(x);
    } else if (v.is_array()) {
      for (auto& x : v)
        strip(x);
    }
  };
  strip(j);
  return j;
}

TEST_F(ShardRun, ShardsMergedAreTheRunUnsharded) {
  const RunSummary whole = run("whole.db");
  ASSERT_EQ(whole.status, RunStatus::completed);
  ASSERT_EQ(whole.tasks.size(), 12u);
  std::size_t searched = 0;
  for (int k = 1; k <= 3; ++k) {
    const RunSummary s = run("shard" + std::to_string(k) + ".db", Shard{k, 3}, "paper");
    ASSERT_EQ(s.status, RunStatus::completed) << s.message;
    EXPECT_EQ(s.tasks.size(), 4u); // 12 tasks over 3 shards
    searched += s.tasks.size();
    store::Store st(db("shard" + std::to_string(k) + ".db"), {.read_only = true});
    const auto r = st.run(s.run_id);
    EXPECT_EQ(r->info.shard, std::to_string(k) + "/3");
    const json cfg = json::parse(r->info.config_json);
    EXPECT_EQ(cfg["suite"]["id"], "paper");
    EXPECT_EQ(cfg["shard"]["index"], k);
    EXPECT_EQ(cfg["suite"]["fingerprint"].get<std::string>().size(), 16u);
  }
  EXPECT_EQ(searched, 12u);

  const std::string merged = db("merged.db");
  {
    store::Store m(merged);
    for (int k = 1; k <= 3; ++k) {
      const auto sum = m.merge_from(db("shard" + std::to_string(k) + ".db"));
      EXPECT_EQ(sum.shards_merged, 1);
      EXPECT_EQ(sum.runs_copied, 0);
    }
    const auto runs = m.runs();
    ASSERT_EQ(runs.size(), 1u); // one suite, one run
    EXPECT_EQ(runs[0].status, "completed");
    EXPECT_EQ(runs[0].info.shard, "");
    EXPECT_EQ(runs[0].origin, "suite paper");
    const json cfg = json::parse(runs[0].info.config_json);
    EXPECT_FALSE(cfg.contains("shard"));
    EXPECT_EQ(cfg["suite"]["shards"].size(), 3u);
    EXPECT_EQ(cfg["suite"]["count"], 3);
    const auto suites = m.suites();
    ASSERT_EQ(suites.size(), 1u);
    EXPECT_TRUE(suites[0].missing.empty());
    EXPECT_TRUE(suites[0].unfinished.empty());
    // One baseline per problem, as the unsharded run has.
    store::Store w(db("whole.db"), {.read_only = true});
    EXPECT_EQ(m.baseline_timings({runs[0].id}).size(), w.baseline_timings({whole.run_id}).size());
    EXPECT_EQ(m.call_tally(runs[0].id).answered, w.call_tally(whole.run_id).answered);
    // Merging a shard again adds nothing.
    const auto again = m.merge_from(db("shard2.db"));
    EXPECT_EQ(again.shards_merged, 0);
    EXPECT_EQ(again.candidates, 0);
    ASSERT_EQ(again.notes.size(), 1u);
    EXPECT_NE(again.notes[0].find("already merged"), std::string::npos) << again.notes[0];
  }
  const auto rows = rows_of(db("whole.db"));
  EXPECT_EQ(rows.size(), 24u); // 6 problems x 2 models x 2 samples
  EXPECT_EQ(rows_of(merged), rows);
  const json report = report_of(db("whole.db"));
  ASSERT_EQ(report.at("leaderboard").size(), 2u) << report.dump(1); // one line per model
  EXPECT_EQ(report_of(merged), report);
  // A shard alone is not the suite.
  EXPECT_NE(report_of(db("shard1.db")), report);
}

TEST_F(ShardRun, MergeSaysWhatIsMissingAndLeavesOutWhatDoesNotBelong) {
  for (int k = 1; k <= 2; ++k)
    ASSERT_EQ(run("shard" + std::to_string(k) + ".db", Shard{k, 3}, "s1").status,
              RunStatus::completed);
  // Another run of shard 2 (another database), and a shard of the same suite id with another
  // strategy: neither joins.
  ASSERT_EQ(run("again2.db", Shard{2, 3}, "s1").status, RunStatus::completed);
  opts.strategy.samples = 3;
  ASSERT_EQ(run("other3.db", Shard{3, 3}, "s1").status, RunStatus::completed);

  store::Store m(db("merged.db"));
  m.merge_from(db("shard1.db"));
  m.merge_from(db("shard2.db"));
  const auto dup = m.merge_from(db("again2.db"));
  EXPECT_EQ(dup.shards_merged, 0);
  ASSERT_EQ(dup.notes.size(), 1u);
  EXPECT_NE(dup.notes[0].find("holds this shard already"), std::string::npos) << dup.notes[0];
  const auto other = m.merge_from(db("other3.db"));
  EXPECT_EQ(other.shards_merged, 0);
  ASSERT_EQ(other.notes.size(), 1u);
  EXPECT_NE(other.notes[0].find("another configuration"), std::string::npos) << other.notes[0];

  const auto runs = m.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, "interrupted"); // a shard is missing
  EXPECT_EQ(runs[0].info.shard, "1,2/3");
  const auto suites = m.suites();
  ASSERT_EQ(suites.size(), 1u);
  EXPECT_EQ(suites[0].merged, (std::vector<int>{1, 2}));
  EXPECT_EQ(suites[0].missing, (std::vector<int>{3}));
  EXPECT_EQ(m.integrity_check(), "ok");
}

TEST_F(ShardRun, AShardInItsDatabaseAlreadyIsResumedNotStartedAgain) {
  // Stopped at once: the shard's run exists and holds little.
  std::atomic<bool> cancel{true};
  const RunSummary first = run("s.db", Shard{2, 2}, "", &cancel);
  EXPECT_EQ(first.status, RunStatus::interrupted);
  const RunSummary second = run("s.db", Shard{2, 2});
  EXPECT_EQ(second.run_id, first.run_id); // the same run, resumed
  EXPECT_EQ(second.status, RunStatus::completed);
  const RunSummary third = run("s.db", Shard{2, 2});
  EXPECT_TRUE(third.already_completed);
  {
    store::Store s(db("s.db"), {.read_only = true});
    EXPECT_EQ(s.runs().size(), 1u);
    // The derived suite id is the fingerprint's: shards on other machines get the same one.
    const json cfg = json::parse(s.runs()[0].info.config_json);
    EXPECT_EQ(cfg["suite"]["id"].get<std::string>(),
              "fp-" + cfg["suite"]["fingerprint"].get<std::string>());
    EXPECT_EQ(plan_suite(opts).fingerprint, cfg["suite"]["fingerprint"]);
  }
  // The same shard of the same suite id with other settings is refused, naming both.
  ASSERT_EQ(run("t.db", Shard{1, 2}, "fixed").status, RunStatus::completed);
  opts.strategy.samples = 3;
  try {
    run("t.db", Shard{1, 2}, "fixed");
    FAIL() << "a shard of another configuration was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another configuration"), std::string::npos) << e.what();
  }
  // Every (problem, model) of shard 2 once: nothing asked twice.
  store::Store s(db("s.db"), {.read_only = true});
  std::set<std::string> hashes;
  for (const auto& c : s.llm_calls(first.run_id))
    if (c.call.status == "ok") {
      EXPECT_TRUE(hashes.insert(c.call.request_hash).second);
    }
}

TEST_F(ShardRun, AShardRecordsTheSuiteAndItsShareOfTheBudget) {
  opts.run_budget.tokens = 1000000;
  const RunSummary s = run("s.db", Shard{1, 4}, "budgeted");
  store::Store st(db("s.db"), {.read_only = true});
  const json cfg = json::parse(st.run(s.run_id)->info.config_json);
  EXPECT_EQ(cfg["run_budget"]["tokens"], 250000);
  EXPECT_EQ(cfg["suite"]["run_budget"]["tokens"], 1000000);
  // Merged, the suite's run shows the suite's budget, not a shard's share.
  store::Store m(db("m.db"));
  m.merge_from(db("s.db"));
  const json mcfg = json::parse(m.runs().at(0).info.config_json);
  EXPECT_EQ(mcfg["run_budget"]["tokens"], 1000000);
}

TEST_F(ShardRun, EvaluationSlicesOfCopiesMergeIntoOneEvaluatedRun) {
  opts.mode = Mode::generate;
  const RunSummary g = run("gen.db");
  ASSERT_EQ(g.status, RunStatus::completed);
  for (const char* copy : {"whole.db", "slice1.db", "slice2.db"})
    fs::copy_file(db("gen.db"), db(copy));
  auto evaluate = [&](const std::string& name, std::optional<Shard> slice) {
    FakeBackend backend;
    EvaluateOptions e;
    e.db = db(name);
    e.run_id = g.run_id;
    e.levels_dir = opts.levels_dir;
    e.jobs = 2;
    e.slice = slice;
    return evaluate_stored(e, backend, nullptr, {});
  };
  const auto all = evaluate("whole.db", std::nullopt);
  const auto one = evaluate("slice1.db", Shard{1, 2});
  const auto two = evaluate("slice2.db", Shard{2, 2});
  EXPECT_GT(one.candidates, 0);
  EXPECT_GT(two.candidates, 0);
  EXPECT_EQ(one.candidates + two.candidates, all.candidates);

  store::Store m(db("merged.db"));
  EXPECT_EQ(m.merge_from(db("slice1.db")).runs_copied, 1);
  const auto filled = m.merge_from(db("slice2.db"));
  EXPECT_EQ(filled.evaluations_filled, two.candidates);
  EXPECT_EQ(m.merge_from(db("slice2.db")).evaluations_filled, 0); // nothing left to fill
  EXPECT_EQ(rows_of(db("merged.db")), rows_of(db("whole.db")));
}

TEST_F(ShardRun, ASnapshotIsOneWholeFileWithoutTheOriginalsLease) {
  const RunSummary r = run("live.db");
  ASSERT_EQ(r.status, RunStatus::completed);
  store::Store live(db("live.db"));
  // A writer holds the run (as a task killed mid-run left it): the copy must not carry that.
  ASSERT_FALSE(live.acquire_run_lease(r.run_id, "writer-on-another-node"));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    store::Store w(db("live.db"));
    store::LlmCall c;
    c.run_id = r.run_id;
    c.model_id = w.models().front().id;
    c.status = "budget";
    for (int i = 0; i < 200 && !stop; ++i)
      w.record_llm_call(c);
  });
  for (int i = 0; i < 5; ++i) {
    store::Store(db("live.db"), {.read_only = true}).snapshot_to(db("copy.db"));
    EXPECT_FALSE(fs::exists(db("copy.db") + "-wal"));
    store::Store copy(db("copy.db"), {.read_only = true});
    EXPECT_EQ(copy.integrity_check(), "ok");
    EXPECT_EQ(copy.runs().size(), 1u);
  }
  stop = true;
  writer.join();
  store::Store copy(db("copy.db"));
  EXPECT_FALSE(copy.acquire_run_lease(r.run_id, "a-resumed-task")) << "the copy kept a lease";
  EXPECT_TRUE(live.acquire_run_lease(r.run_id, "a-resumed-task")) << "the original lost its lease";
  EXPECT_EQ(rows_of(db("copy.db")), rows_of(db("live.db")));
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_NE(e.path().extension(), ".tmp") << "a temporary copy was left: " << e.path();
  EXPECT_THROW(store::Store(db("live.db"), {.read_only = true}).snapshot_to(db("live.db")), Error);
}

// A back end with several GPUs whose evaluators check that no GPU ever judges two candidates at
// once.
class CountingBackend final : public EvalBackend {
public:
  explicit CountingBackend(int gpus) : m_in_flight(static_cast<std::size_t>(gpus)) {
    for (auto& n : m_in_flight)
      n = 0;
  }
  std::atomic<int> overlaps{0};
  std::mutex mutex;
  std::set<int> used;

  CompileResult compile(std::string_view source) override {
    CompileResult c;
    c.ok = source.find("kb_forward") != std::string_view::npos;
    c.so_path = "/nonexistent.so";
    return c;
  }
  class Gpu final : public GpuEvaluator {
  public:
    Gpu(CountingBackend& b, int gpu) : m_b(b), m_gpu(gpu) {}
    EvalResult evaluate_compiled(const Problem&, const CompileResult&) override {
      auto& n = m_b.m_in_flight[static_cast<std::size_t>(m_gpu)];
      if (++n > 1)
        ++m_b.overlaps;
      {
        std::lock_guard lock(m_b.mutex);
        m_b.used.insert(m_gpu);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      --n;
      EvalResult r;
      r.outcome = Outcome::correct;
      r.speedup = 1.5;
      return r;
    }

  private:
    CountingBackend& m_b;
    int m_gpu;
  };
  std::unique_ptr<GpuEvaluator> open_gpu(int gpu, const GpuCeilings&) override {
    return std::make_unique<Gpu>(*this, gpu);
  }
  DoctorReport doctor() override {
    DoctorReport d;
    d.worker_ran = true;
    for (std::size_t i = 0; i < m_in_flight.size(); ++i) {
      GpuInfo g;
      g.index = static_cast<int>(i);
      g.name = "Fake GPU";
      d.gpus.push_back(g);
    }
    return d;
  }

private:
  std::vector<std::atomic<int>> m_in_flight;
};

TEST_F(ShardRun, EveryGpuGetsOneWorkerAndTimesOneCandidateAtATime) {
  ScopedEnv cvd("CUDA_VISIBLE_DEVICES", "5,6,7");
  ScopedEnv task("SLURM_ARRAY_TASK_ID", "3");
  opts.db = db("gpus.db");
  opts.concurrency = 8;
  opts.calibrate = false;
  CountingBackend backend(3);
  const RunSummary s = run_suite(opts, &backend, nullptr, {});
  ASSERT_EQ(s.status, RunStatus::completed) << s.message;
  EXPECT_EQ(backend.overlaps.load(), 0);
  EXPECT_GE(backend.used.size(), 2u); // the work spread over the GPUs
  store::Store st(opts.db, {.read_only = true});
  const json cfg = json::parse(st.run(s.run_id)->info.config_json);
  const json& placement = cfg.at("placement");
  EXPECT_EQ(placement["workers_per_gpu"], 1);
  EXPECT_NE(placement["timing"].get<std::string>().find("one candidate per GPU at a time"),
            std::string::npos);
  ASSERT_EQ(placement["gpus"].size(), 3u);
  EXPECT_EQ(placement["gpus"][2]["device"], "7"); // what the workers of GPU 2 see
  EXPECT_EQ(cfg["environment"]["CUDA_VISIBLE_DEVICES"], "5,6,7");
  EXPECT_EQ(cfg["environment"]["SLURM_ARRAY_TASK_ID"], "3");
}

} // namespace
} // namespace kb::runner
