// Unit tests of the report: each metric against hand-computed figures, the leaderboard, paper
// table, trajectories and review list of the fixture, compare on synthetic samples, exports, and
// golden files for Markdown, CSV and JSON.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <unistd.h>

#include <gtest/gtest.h>

#include "temp_dir.hpp"
#include <nlohmann/json.hpp>

#include "report.hpp"
#include "report_fixture.hpp"
#include "store.hpp"

namespace fs = std::filesystem;
using namespace kb;
using namespace kb::report;

namespace {

using kb::test::TempDir;

const LeaderboardRow& row_of(const Report& r, const std::string& model,
                             std::optional<int> level = std::nullopt) {
  for (const auto& row : r.leaderboard)
    if (row.model == model && row.level == level)
      return row;
  throw std::runtime_error("no leaderboard row for " + model);
}

double fast_at(const LeaderboardRow& r, double p) {
  for (const auto& [q, v] : r.fast_p)
    if (q == p)
      return v;
  throw std::runtime_error("no fast_p");
}

void check_golden(const std::string& name, const std::string& actual) {
  std::string path = std::string(KB_SOURCE_DIR) + "/tests/data/report/" + name;
  if (std::getenv("KB_UPDATE_GOLDEN")) {
    write_file_atomic(path, actual);
    GTEST_SKIP() << "golden file rewritten: " << path;
  }
  std::string expected = read_file(path);
  EXPECT_EQ(actual, expected) << "golden file " << path
                              << " differs (KB_UPDATE_GOLDEN=1 rewrites it after review)";
}

} // namespace

// --- metrics ---

TEST(Metrics, FastPIsStrictAndCountsUnsolvedProblems) {
  std::vector<std::optional<double>> best{1.0, 0.5, std::nullopt, 2.0};
  EXPECT_DOUBLE_EQ(fast_p(best, 0.0), 0.75);
  EXPECT_DOUBLE_EQ(fast_p(best, 0.5), 0.5);  // 0.5 is not > 0.5
  EXPECT_DOUBLE_EQ(fast_p(best, 1.0), 0.25); // 1.0 is not > 1.0
  EXPECT_DOUBLE_EQ(fast_p(best, 2.0), 0.0);
  EXPECT_DOUBLE_EQ(fast_p({}, 1.0), 0.0);
}

TEST(Metrics, GeometricMean) {
  EXPECT_NEAR(*geometric_mean({1.25, 0.5, 1.5}), std::cbrt(0.9375), 1e-12);
  EXPECT_NEAR(*geometric_mean({4.0, 0.25}), 1.0, 1e-12);
  EXPECT_FALSE(geometric_mean({}).has_value());
  EXPECT_THROW(geometric_mean({1.0, 0.0}), Error);
}

TEST(Metrics, PassAtKUnbiasedEstimator) {
  EXPECT_NEAR(pass_at_k(3, 2, 1), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12); // C(7,5)/C(10,5)
  EXPECT_DOUBLE_EQ(pass_at_k(5, 0, 3), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(5, 3, 3), 1.0); // n - c < k
  EXPECT_NEAR(pass_at_k(200, 1, 1), 0.005, 1e-12);
  EXPECT_THROW(pass_at_k(3, 4, 1), Error);
  EXPECT_THROW(pass_at_k(3, 1, 4), Error);
}

TEST(Metrics, MannWhitneyExactSmallSamples) {
  auto r = mann_whitney_u({1, 2, 3}, {4, 5, 6});
  EXPECT_TRUE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 0.0);
  EXPECT_NEAR(r.p_value, 0.1, 1e-12); // 2 * 1/C(6,3)
  auto same = mann_whitney_u({1, 4, 5}, {2, 3, 6});
  EXPECT_DOUBLE_EQ(same.u, 4.0);
  EXPECT_NEAR(same.p_value, 1.0, 1e-12);
}

TEST(Metrics, MannWhitneyNormalApproximationWithTies) {
  // Hand-computed: ranks 1,3,3,5.5 for a; U = 2.5; tie-corrected variance 11.2857; continuity
  // corrected z = -5 / 3.35942 = -1.48836; p = 0.13666.
  auto r = mann_whitney_u({1, 2, 2, 3}, {2, 3, 4, 5});
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 2.5);
  EXPECT_NEAR(r.z, -1.48836, 1e-4);
  EXPECT_NEAR(r.p_value, 0.13666, 2e-4);
  EXPECT_DOUBLE_EQ(mann_whitney_u({1, 1}, {1, 1}).p_value, 1.0);
  EXPECT_THROW(mann_whitney_u({}, {1}), Error);
}

// --- report over the fixture ---

class ReportFixture : public ::testing::Test {
protected:
  void SetUp() override {
    kb::test::build_report_fixture(m_dir.file("fixture.db"));
    m_store.emplace(m_dir.file("fixture.db"));
    ReportOptions o;
    o.pass_k = {1, 2};
    m_report = build_report(*m_store, o);
  }
  TempDir m_dir;
  std::optional<store::Store> m_store;
  Report m_report;
};

TEST_F(ReportFixture, LeaderboardMatchesHandComputedFigures) {
  const auto& k = row_of(m_report, "vllm/kevin");
  EXPECT_EQ(k.problems, 4);
  EXPECT_EQ(k.attempts, 9);
  EXPECT_DOUBLE_EQ(*k.compile_rate, 6.0 / 9.0);
  EXPECT_DOUBLE_EQ(*k.correct_rate, 5.0 / 9.0);
  EXPECT_DOUBLE_EQ(*k.problems_solved, 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(fast_at(k, 0.0), 0.75);
  EXPECT_DOUBLE_EQ(fast_at(k, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(fast_at(k, 0.8), 0.5);
  EXPECT_DOUBLE_EQ(fast_at(k, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(fast_at(k, 1.5), 0.0);
  EXPECT_DOUBLE_EQ(fast_at(k, 2.0), 0.0);
  ASSERT_TRUE(k.geomean_speedup);
  EXPECT_NEAR(*k.geomean_speedup, std::cbrt(1.25 * 0.5 * 1.5), 1e-12);
  ASSERT_EQ(k.pass_at_k.size(), 2u);
  EXPECT_NEAR(k.pass_at_k[0].second, (2.0 / 3.0 + 0.5 + 0.0 + 1.0) / 4.0, 1e-12);
  EXPECT_NEAR(k.pass_at_k[1].second, 0.75, 1e-12);
  EXPECT_EQ(k.flagged, 1);
  EXPECT_EQ(k.tokens_in, 9000);
  EXPECT_EQ(k.tokens_out, 4500);
  EXPECT_NEAR(k.cost_usd, 0.09, 1e-12);
  EXPECT_NEAR(k.wall_s, 27.0, 1e-9);
  // Against PyTorch: only matmul has external times: 2.66 / 1.6 and 2.67 / 1.6.
  EXPECT_EQ(k.problems_vs_eager, 1);
  EXPECT_NEAR(*k.geomean_vs_eager, 2.66 / 1.6, 1e-12);
  EXPECT_NEAR(*k.geomean_vs_compile, 2.67 / 1.6, 1e-12);

  const auto& o = row_of(m_report, "openai/o3");
  EXPECT_EQ(o.problems, 2);
  EXPECT_DOUBLE_EQ(fast_at(o, 0.0), 0.5);
  EXPECT_DOUBLE_EQ(fast_at(o, 0.8), 0.0); // 0.8 is not > 0.8
  EXPECT_NEAR(*o.geomean_speedup, 0.8, 1e-12);

  // Per-level rows exist for the model that spans two levels.
  const auto& k2 = row_of(m_report, "vllm/kevin", 2);
  EXPECT_EQ(k2.problems, 1);
  EXPECT_DOUBLE_EQ(*k2.compile_rate, 0.0);
  EXPECT_FALSE(k2.geomean_speedup);
}

TEST_F(ReportFixture, BankKernelsAreNotTheModels) {
  // A known good kernel measured as a seed of the idea search (strategy "bank") solves the
  // conv_relu problem 3x faster; it must not count for the model in any way.
  store::Candidate c{0, "l2/conv_relu", 0, "bank", 0, std::nullopt, "", "// bank kernel"};
  c.run_id = m_store->runs().front().id;
  c.model_id = m_store->models().front().id;
  EvalResult r;
  r.outcome = Outcome::correct;
  r.protocol = kb::Protocol::kbench;
  r.candidate_time = kb::test::fixture_timing(1.0);
  r.baseline_time = kb::test::fixture_timing(3.0);
  r.speedup = 3.0;
  m_store->record_attempt({std::nullopt, c, r});
  ReportOptions o;
  o.pass_k = {1, 2};
  Report again = build_report(*m_store, o);
  const auto& before = row_of(m_report, "vllm/kevin");
  const auto& after = row_of(again, "vllm/kevin");
  EXPECT_EQ(after.attempts, before.attempts);
  EXPECT_EQ(after.problems_solved, before.problems_solved);
  EXPECT_DOUBLE_EQ(fast_at(after, 2.0), 0.0);
  EXPECT_EQ(after.geomean_speedup, before.geomean_speedup);
}

TEST_F(ReportFixture, ProviderFailuresAreAColumnAndNeverAnAttempt) {
  const int64_t run = m_store->runs().front().id;
  int64_t o3 = 0, kevin = 0;
  for (const auto& m : m_store->models())
    (m.info.model_id == "o3" ? o3 : kevin) = m.id;
  auto call = [&](int64_t model, const std::string& problem, const std::string& hash,
                  const std::string& status, const std::string& cls) {
    m_store->record_llm_call(
        store::LlmCall{run, model, problem, hash, 0, 0, 1.0, status, cls, 0.0, ""});
  };
  // o3: one request failed twice (one failure), one failed and a resume answered it (none), a
  // budget refusal and a replay without a kernel (neither is a provider failure), one failure
  // at level 2 where o3 has no candidate at all.
  call(o3, "l1/softmax", "fail-a", "rate_limited", "http_429");
  call(o3, "l1/softmax", "fail-a", "rate_limited", "http_429");
  call(o3, "l1/matmul", "fail-b", "timeout", "read_timeout");
  call(o3, "l1/matmul", "fail-b", "ok", "");
  call(o3, "l1/matmul", "budget-c", "budget", "run_tokens");
  call(o3, "l1/matmul", "replay-d", "http_error", "replay_not_found");
  call(o3, "l2/conv_relu", "fail-e", "http_error", "http_503");
  // A database written before schema v3 kept a failed request as a candidate without code.
  store::Candidate c{run, "l1/softmax", o3, "refine", 0, std::nullopt, "", ""};
  EvalResult r;
  r.outcome = Outcome::no_code;
  r.message = "no answer from model o3: rate_limited (HTTP 429)";
  m_store->record_attempt({std::nullopt, c, r});

  ReportOptions o;
  o.pass_k = {1, 2};
  const Report again = build_report(*m_store, o);
  const auto& before = row_of(m_report, "openai/o3");
  const auto& after = row_of(again, "openai/o3");
  EXPECT_EQ(after.provider_failures, 2);
  EXPECT_EQ(after.attempts, before.attempts); // the old-style failure is not an attempt
  EXPECT_EQ(after.candidates, before.candidates);
  EXPECT_EQ(after.correct_rate, before.correct_rate);
  EXPECT_EQ(row_of(again, "openai/o3", 1).provider_failures, 1);
  EXPECT_EQ(row_of(again, "openai/o3", 2).provider_failures, 1); // a row of failures alone
  EXPECT_EQ(row_of(again, "openai/o3", 2).problems, 0);
  EXPECT_EQ(row_of(again, "vllm/kevin").provider_failures, 0);
  EXPECT_EQ(m_store->call_tally(run).provider_failures, 2);
  const std::string md = render(again, Format::markdown);
  EXPECT_NE(md.find("provider_failures"), std::string::npos);
  const auto j = nlohmann::json::parse(render(again, Format::json));
  bool seen = false;
  for (const auto& row : j["leaderboard"])
    if (row["model"] == "openai/o3" && row["level"] == "all") {
      EXPECT_EQ(row["provider_failures"], 2);
      seen = true;
    }
  EXPECT_TRUE(seen);
}

TEST_F(ReportFixture, RunsUnderTwoProtocolsAreNeverCombined) {
  // A second run of the same model under KernelBench's protocol: its kernel is 4x faster on
  // matmul, which must not become kevin's kbench figure.
  store::RunInfo info;
  info.command = "kbench run --protocol kernelbench";
  info.gpu_name = "NVIDIA H100 80GB HBM3";
  info.protocol = kb::Protocol::kernelbench;
  const int64_t run = m_store->begin_run(info);
  int64_t kevin = 0;
  for (const auto& m : m_store->models())
    if (m.info.model_id == "kevin")
      kevin = m.id;
  store::Candidate c{run, "l1/matmul", kevin, "refine", 0, std::nullopt, "", "// kb kernel"};
  EvalResult r;
  r.outcome = Outcome::correct;
  r.protocol = kb::Protocol::kernelbench;
  r.candidate_time = kb::test::fixture_timing(0.5);
  r.baseline_time = kb::test::fixture_timing(2.0);
  r.speedup = 4.0;
  m_store->record_attempt({std::nullopt, c, r});
  m_store->end_run(run, "completed");

  ReportOptions o;
  o.pass_k = {1, 2};
  const Report again = build_report(*m_store, o);
  const auto& kb_row = row_of(again, "vllm/kevin [kbench]");
  const auto& kern_row = row_of(again, "vllm/kevin [kernelbench]");
  EXPECT_EQ(kb_row.protocol, kb::Protocol::kbench);
  EXPECT_EQ(kern_row.protocol, kb::Protocol::kernelbench);
  // The kbench row is exactly the single-protocol report's row.
  const auto& before = row_of(m_report, "vllm/kevin");
  EXPECT_EQ(kb_row.attempts, before.attempts);
  EXPECT_EQ(kb_row.geomean_speedup, before.geomean_speedup);
  EXPECT_EQ(kern_row.attempts, 1);
  EXPECT_NEAR(*kern_row.geomean_speedup, 4.0, 1e-12);
  bool noted = false;
  for (const auto& n : again.notes)
    noted = noted || n.find("2 protocols (kbench, kernelbench)") != std::string::npos;
  EXPECT_TRUE(noted);
  for (const auto& p : again.paper)
    if (p.problem_id == "l1/matmul" && p.model == "vllm/kevin [kernelbench]")
      EXPECT_EQ(p.protocol, kb::Protocol::kernelbench);
}

TEST_F(ReportFixture, SpeedupsAsPercentOfTheReferenceLikeTheArticle) {
  ReportOptions o;
  o.pass_k = {1, 2};
  o.speedup_percent = true;
  const Report p = build_report(*m_store, o);
  const std::string md = render(p, Format::markdown);
  // kevin's matmul: 2.0 / 1.6 = 1.25x against cuBLAS, 2.66 / 1.6 against eager.
  EXPECT_NE(md.find("| 1.6 | 2 | 125% | 166% | 167% |"), std::string::npos) << md;
  EXPECT_NE(md.find("% of the reference's speed"), std::string::npos);
  EXPECT_EQ(md.find("1.25x"), std::string::npos);
  // Machine-readable formats keep the ratio.
  const auto j = nlohmann::json::parse(render(p, Format::json));
  for (const auto& row : j["paper"])
    if (row["problem_id"] == "l1/matmul" && row["model"] == "vllm/kevin")
      EXPECT_NEAR(row["speedup"].get<double>(), 1.25, 1e-12);
}

TEST_F(ReportFixture, FlaggedKernelIsNeverRankedFirst) {
  const PaperRow* ln = nullptr;
  for (const auto& p : m_report.paper)
    if (p.problem_id == "l1/layernorm")
      ln = &p;
  ASSERT_NE(ln, nullptr);
  EXPECT_NEAR(*ln->speedup, 1.5, 1e-9);
  EXPECT_EQ(ln->held_for_review, 1);
  ASSERT_EQ(m_report.review.size(), 1u);
  EXPECT_EQ(m_report.review[0].problem_id, "l1/layernorm");
  EXPECT_NEAR(m_report.review[0].speedup, 20.0, 1e-9);
  EXPECT_NE(std::find(m_report.review[0].reasons.begin(), m_report.review[0].reasons.end(),
                      "speedup_above_review"),
            m_report.review[0].reasons.end());
  // A tighter review threshold holds the 1.5x kernel too.
  ReportOptions strict;
  strict.review_speedup = 1.4;
  auto r2 = build_report(*m_store, strict);
  EXPECT_DOUBLE_EQ(fast_at(row_of(r2, "vllm/kevin"), 1.0), 0.25); // matmul 1.25 only
  EXPECT_EQ(row_of(r2, "vllm/kevin").flagged, 2);
}

TEST_F(ReportFixture, PaperTableAndTrajectories) {
  const PaperRow* mm = nullptr;
  for (const auto& p : m_report.paper)
    if (p.problem_id == "l1/matmul" && p.model == "vllm/kevin")
      mm = &p;
  ASSERT_NE(mm, nullptr);
  EXPECT_NEAR(*mm->speedup, 1.25, 1e-9);
  EXPECT_NEAR(*mm->speedup_vs_eager, 2.66 / 1.6, 1e-9);
  EXPECT_NEAR(*mm->roofline_pct, 50.0, 1e-9);
  EXPECT_EQ(mm->idea, "double buffering");
  for (const auto& p : m_report.paper) {
    if (p.problem_id == "l2/conv_relu") {
      EXPECT_EQ(p.outcome, "compile_error");
    }
  }

  const Trajectory* t = nullptr;
  for (const auto& tr : m_report.trajectories)
    if (tr.problem_id == "l1/matmul" && tr.model == "vllm/kevin")
      t = &tr;
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->points.size(), 2u);
  EXPECT_NEAR(*t->points[0].best_so_far_ms, 2.0, 1e-12);
  EXPECT_NEAR(*t->points[1].best_so_far_ms, 1.6, 1e-12);
  EXPECT_EQ(t->points[1].idea, "double buffering");
  EXPECT_EQ(t->points[1].attempts, 2);
}

TEST_F(ReportFixture, UnknownRunIsAnError) {
  EXPECT_THROW(build_report(*m_store, ReportOptions{.run_ids = {42}}), Error);
}

TEST_F(ReportFixture, LevelFilter) {
  auto r = build_report(*m_store, ReportOptions{.level = 2});
  ASSERT_EQ(r.leaderboard.size(), 1u);
  EXPECT_EQ(r.leaderboard[0].level, 2);
  EXPECT_EQ(r.paper.size(), 1u);
}

TEST_F(ReportFixture, GoldenMarkdown) {
  check_golden("fixture.md", render(m_report, Format::markdown));
}
TEST_F(ReportFixture, GoldenCsvOneTablePerFile) {
  auto tables = render_csv_tables(m_report);
  ASSERT_EQ(tables.size(), 4u);
  EXPECT_EQ(render(m_report, Format::csv), tables[0].second);
  for (const auto& [name, csv] : tables) {
    // One table: one header row, no blank line separating a second table.
    EXPECT_EQ(csv.find("\n\n"), std::string::npos) << name;
    check_golden("fixture-" + name + ".csv", csv);
  }
}
TEST_F(ReportFixture, GoldenJson) {
  check_golden("fixture.json", render(m_report, Format::json));
}
TEST_F(ReportFixture, GoldenTerminal) {
  check_golden("fixture.txt", render(m_report, Format::terminal));
}

TEST_F(ReportFixture, HtmlEscapesModelText) {
  std::string html = render(m_report, Format::html);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
  EXPECT_NE(html.find("id=\"speedup-chart\""), std::string::npos);
  EXPECT_NE(html.find("id=\"trajectory-chart\""), std::string::npos);
  EXPECT_NE(html.find("id=\"roofline-chart\""), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg")); // no external asset
  std::string md = render(m_report, Format::markdown);
  EXPECT_EQ(md.find("<script>"), std::string::npos);
}

TEST_F(ReportFixture, ExportFormats) {
  std::string csv = export_results(*m_store, ExportFormat::csv, {});
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 12); // header + 11 attempts (+ none split)
  auto j = nlohmann::json::parse(export_results(*m_store, ExportFormat::json, {}));
  EXPECT_EQ(j.size(), 11u);
  auto g = nlohmann::json::parse(export_results(*m_store, ExportFormat::gbench, {}));
  ASSERT_TRUE(g.contains("context"));
  // Best kernel of vllm/kevin on matmul: 8 repetitions + 3 aggregates, times in ms.
  int reps = 0, aggregates = 0;
  for (const auto& b : g["benchmarks"]) {
    if (b["run_name"] != "l1/matmul/vllm/kevin")
      continue;
    EXPECT_EQ(b["time_unit"], "ms");
    if (b["run_type"] == "iteration")
      ++reps;
    else if (b["aggregate_name"] == "median") {
      ++aggregates;
      EXPECT_NEAR(b["real_time"].get<double>(), 1.6, 0.01);
    } else
      ++aggregates;
  }
  EXPECT_EQ(reps, 8);
  EXPECT_EQ(aggregates, 3);
  EXPECT_THROW(export_results(*m_store, ExportFormat::csv, {99}), Error);
}

// --- compare on synthetic samples ---

namespace {

std::vector<double> noisy(double center, double rel_sd, int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(center, center * rel_sd);
  std::vector<double> v;
  for (int i = 0; i < n; ++i)
    v.push_back(d(rng));
  return v;
}

// One database with one correct kernel per (problem, samples) entry; nullopt samples write a
// failing attempt.
void write_db(const std::string& path,
              const std::vector<std::pair<std::string, std::optional<std::vector<double>>>>& rows) {
  store::Store s(path);
  int64_t run = s.begin_run({});
  int64_t m = s.upsert_model("vllm", "kevin", "{}");
  for (const auto& [problem, samples] : rows) {
    store::Attempt a;
    a.candidate = store::Candidate{run, problem, m, "oneshot"};
    EvalResult r;
    if (samples) {
      r.outcome = Outcome::correct;
      TimingStats t;
      auto sorted = *samples;
      std::sort(sorted.begin(), sorted.end());
      t.median_ms = sorted[sorted.size() / 2];
      t.samples_ms = *samples;
      t.samples = static_cast<int>(samples->size());
      r.candidate_time = t;
      r.speedup = 1.0;
    } else {
      r.outcome = Outcome::mismatch;
    }
    a.evaluation = r;
    s.record_attempt(a);
  }
}

const CompareRow& find_row(const CompareResult& r, const std::string& problem) {
  for (const auto& row : r.rows)
    if (row.problem_id == problem)
      return row;
  throw std::runtime_error("no row " + problem);
}

} // namespace

TEST(Compare, NoChangeIsNotARegression) {
  TempDir d;
  write_db(d.file("base.db"), {{"l1/a", noisy(1.0, 0.01, 40, 1)}});
  write_db(d.file("head.db"), {{"l1/a", noisy(1.0, 0.01, 40, 2)}});
  store::Store b(d.file("base.db")), h(d.file("head.db"));
  auto r = compare(b, h);
  EXPECT_EQ(find_row(r, "l1/a").verdict, Verdict::unchanged);
  EXPECT_EQ(compare_exit_code(r), 0);
}

TEST(Compare, ClearRegressionExitsOne) {
  TempDir d;
  write_db(d.file("base.db"), {{"l1/a", noisy(1.0, 0.01, 40, 1)}});
  write_db(d.file("head.db"), {{"l1/a", noisy(1.2, 0.01, 40, 2)}});
  store::Store b(d.file("base.db")), h(d.file("head.db"));
  auto r = compare(b, h);
  const auto& row = find_row(r, "l1/a");
  EXPECT_EQ(row.verdict, Verdict::regression);
  EXPECT_NEAR(*row.change, 0.2, 0.02);
  EXPECT_LT(row.test->p_value, 1e-6);
  EXPECT_EQ(compare_exit_code(r), 1);
  // Reversed, it is an improvement and passes.
  auto rev = compare(h, b);
  EXPECT_EQ(find_row(rev, "l1/a").verdict, Verdict::improvement);
  EXPECT_EQ(compare_exit_code(rev), 0);
}

TEST(Compare, NoiseBelowSignificanceOrThreshold) {
  TempDir d;
  // +10% median shift on 4 samples with 30% noise: not significant.
  write_db(d.file("base.db"), {{"l1/noisy", std::vector<double>{0.7, 1.0, 1.3, 0.9}},
                               {"l1/small", noisy(1.0, 0.001, 60, 3)}});
  write_db(d.file("head.db"), {{"l1/noisy", std::vector<double>{0.8, 1.1, 1.4, 1.0}},
                               // significant but only +2%: under the 5% threshold
                               {"l1/small", noisy(1.02, 0.001, 60, 4)}});
  store::Store b(d.file("base.db")), h(d.file("head.db"));
  auto r = compare(b, h);
  EXPECT_EQ(find_row(r, "l1/noisy").verdict, Verdict::unchanged);
  EXPECT_GT(find_row(r, "l1/noisy").test->p_value, 0.01);
  EXPECT_EQ(find_row(r, "l1/small").verdict, Verdict::unchanged);
  EXPECT_LT(find_row(r, "l1/small").test->p_value, 0.01);
  EXPECT_EQ(compare_exit_code(r), 0);
  // With a 1% threshold the small shift is a regression.
  auto strict = compare(b, h, CompareOptions{.threshold = 0.01});
  EXPECT_EQ(find_row(strict, "l1/small").verdict, Verdict::regression);
}

TEST(Compare, FailuresFixesAndMissingProblems) {
  TempDir d;
  write_db(d.file("base.db"), {{"l1/breaks", noisy(1.0, 0.01, 10, 1)},
                               {"l1/fixed", std::nullopt},
                               {"l1/gone", noisy(1.0, 0.01, 10, 2)}});
  write_db(d.file("head.db"), {{"l1/breaks", std::nullopt},
                               {"l1/fixed", noisy(1.0, 0.01, 10, 3)},
                               {"l1/new", noisy(1.0, 0.01, 10, 4)}});
  store::Store b(d.file("base.db")), h(d.file("head.db"));
  auto r = compare(b, h);
  EXPECT_EQ(find_row(r, "l1/breaks").verdict, Verdict::new_failure);
  EXPECT_EQ(find_row(r, "l1/fixed").verdict, Verdict::fixed);
  EXPECT_EQ(find_row(r, "l1/gone").verdict, Verdict::missing);
  EXPECT_EQ(find_row(r, "l1/new").verdict, Verdict::added);
  EXPECT_EQ(r.new_failures, 1);
  EXPECT_EQ(r.missing, 1);
  EXPECT_EQ(compare_exit_code(r), 0);
}

TEST(Compare, GoldenMarkdownAndJson) {
  TempDir d;
  write_db(d.file("base.db"), {{"l1/a", std::vector<double>{1.0, 1.01, 0.99, 1.0, 1.02, 0.98}},
                               {"l1/b", std::nullopt}});
  write_db(d.file("head.db"), {{"l1/a", std::vector<double>{1.3, 1.31, 1.29, 1.3, 1.32, 1.28}},
                               {"l1/b", std::vector<double>{2.0, 2.1}}});
  store::Store b(d.file("base.db")), h(d.file("head.db"));
  auto r = compare(b, h);
  auto scrub = [&](std::string s) {
    for (std::size_t p; (p = s.find(d.dir())) != std::string::npos;)
      s.replace(p, d.dir().size(), "<tmp>");
    return s;
  };
  check_golden("compare.md", scrub(render_compare(r, Format::markdown)));
  check_golden("compare.json", scrub(render_compare(r, Format::json)));
}

// --- regression tests of issue "hostile input never crashes or misleads" (reports) ---

namespace {

// A run with one model that generated `n` candidates for l1/a and evaluated none of them.
void generate_only_db(const std::string& path, int n) {
  store::Store s(path);
  int64_t run = s.begin_run({});
  int64_t m = s.upsert_model("openai", "gen", "{}");
  for (int i = 0; i < n; ++i)
    s.record_attempt({std::nullopt,
                      store::Candidate{run, "l1/a", m, "oneshot", 0, std::nullopt, "",
                                       "// kernel " + std::to_string(i)},
                      std::nullopt});
}

} // namespace

TEST(ReportLabels, SpeedupIsReferenceOverKernelAndSaysSo) {
  // A 4 ms kernel against a 2 ms baseline takes twice as long: speedup 0.5x, never "50% of
  // reference time".
  TempDir d;
  {
    store::Store s(d.file("r.db"));
    int64_t run = s.begin_run({});
    int64_t m = s.upsert_model("vllm", "kevin", "{}");
    store::Attempt a;
    a.candidate = store::Candidate{run, "l1/slow", m, "oneshot"};
    EvalResult r;
    r.outcome = Outcome::correct;
    r.candidate_time = kb::test::fixture_timing(4.0);
    r.baseline_time = kb::test::fixture_timing(2.0);
    r.speedup = 0.5;
    a.evaluation = r;
    s.record_attempt(a);
  }
  store::Store s(d.file("r.db"));
  auto rep = build_report(s);
  ASSERT_EQ(rep.paper.size(), 1u);
  EXPECT_NEAR(*rep.paper[0].speedup, 0.5, 1e-12);
  for (auto f : {Format::terminal, Format::markdown, Format::html}) {
    std::string text = render(rep, f);
    EXPECT_EQ(text.find("% of reference"), std::string::npos);
    EXPECT_EQ(text.find("50.0%"), std::string::npos) << text;
    EXPECT_NE(text.find("0.5x"), std::string::npos);
    EXPECT_NE(text.find("reference time / kernel time"), std::string::npos);
  }
  auto paper_csv = render_csv_tables(rep)[1].second;
  EXPECT_NE(paper_csv.find(",speedup,"), std::string::npos);
  EXPECT_NE(paper_csv.find(",4,2,0.5,"), std::string::npos) << paper_csv;
  auto j = nlohmann::json::parse(render(rep, Format::json));
  EXPECT_DOUBLE_EQ(j["paper"][0]["speedup"].get<double>(), 0.5);
  EXPECT_FALSE(j["paper"][0].contains("pct_of_baseline"));
}

TEST(ReportLabels, GenerateOnlyDatabaseIsNotEvaluated) {
  TempDir d;
  generate_only_db(d.file("g.db"), 3);
  store::Store s(d.file("g.db"));
  auto rep = build_report(s);
  ASSERT_EQ(rep.leaderboard.size(), 1u);
  const auto& row = rep.leaderboard[0];
  EXPECT_FALSE(row.evaluated());
  EXPECT_EQ(row.candidates, 3);
  EXPECT_FALSE(row.compile_rate);
  EXPECT_FALSE(row.problems_solved);
  EXPECT_TRUE(row.fast_p.empty());
  ASSERT_EQ(rep.paper.size(), 1u);
  EXPECT_EQ(rep.paper[0].outcome, "not_evaluated");
  ASSERT_FALSE(rep.notes.empty());
  EXPECT_NE(rep.notes[0].find("Nothing evaluated yet"), std::string::npos);
  for (auto f : {Format::terminal, Format::markdown, Format::html}) {
    std::string text = render(rep, f);
    EXPECT_NE(text.find("not evaluated"), std::string::npos);
    EXPECT_EQ(text.find("0.0%"), std::string::npos) << text;
  }
  auto j = nlohmann::json::parse(render(rep, Format::json));
  EXPECT_TRUE(j["leaderboard"][0]["compile_rate"].is_null());
  EXPECT_TRUE(j["leaderboard"][0]["fast_p"].is_null());
  EXPECT_FALSE(j["leaderboard"][0]["evaluated"].get<bool>());
  // The export names the state too.
  auto csv = export_results(s, ExportFormat::csv, {});
  EXPECT_NE(csv.find(",not_evaluated,"), std::string::npos) << csv;
}

TEST(ReportLabels, PartlyEvaluatedRunHasANote) {
  TempDir d;
  generate_only_db(d.file("g.db"), 2);
  {
    store::Store s(d.file("g.db"));
    store::Attempt a;
    a.candidate = store::Candidate{s.runs().front().id, "l1/a", s.models().front().id, "oneshot", 0,
                                   std::nullopt,        "",     "// evaluated"};
    EvalResult r;
    r.outcome = Outcome::compile_error;
    a.evaluation = r;
    s.record_attempt(a);
  }
  store::Store s(d.file("g.db"));
  auto rep = build_report(s);
  ASSERT_EQ(rep.notes.size(), 1u);
  EXPECT_EQ(rep.notes[0], "2 of 3 candidates not evaluated; rates count evaluated attempts only.");
  EXPECT_DOUBLE_EQ(*rep.leaderboard[0].compile_rate, 0.0);
}

TEST_F(ReportFixture, MissingLevelGivesANoteNotEmptyTables) {
  auto rep = build_report(*m_store, ReportOptions{.level = 3});
  EXPECT_TRUE(rep.leaderboard.empty());
  ASSERT_EQ(rep.notes.size(), 1u);
  EXPECT_EQ(rep.notes[0],
            "No candidates at level 3 in the selected runs (levels with candidates: 1, 2).");
  std::string term = render(rep, Format::terminal);
  EXPECT_NE(term.find("note: No candidates at level 3"), std::string::npos) << term;
  EXPECT_EQ(term.find("model  level"), std::string::npos) << term; // no header-only table
  std::string md = render(rep, Format::markdown);
  EXPECT_NE(md.find("> No candidates at level 3"), std::string::npos) << md;
  EXPECT_EQ(md.find("| model |"), std::string::npos) << md;
  EXPECT_EQ(md.find("| level |"), std::string::npos) << md;
  EXPECT_NE(render(rep, Format::html).find("No candidates at level 3"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(render(rep, Format::json))["notes"].size(), 1u);
}

TEST(ReportLabels, RunHeaderNamesMissingParts) {
  TempDir d;
  generate_only_db(d.file("g.db"), 1); // RunInfo{}: no GPU, version or commit
  store::Store s(d.file("g.db"));
  auto rep = build_report(s);
  std::string md = render(rep, Format::markdown);
  EXPECT_EQ(md.find("run 1: ,"), std::string::npos) << md;
  EXPECT_NE(md.find("- run 1: unknown GPU, kbench version unknown,"), std::string::npos) << md;
  EXPECT_EQ(md.find("()"), std::string::npos) << md;
  // A version that already names its commit does not repeat it.
  RunSummary run{1, "H100", "0.1.0 (commit abc)", "abc", kb::Protocol::kbench, "completed", ""};
  Report r2;
  r2.runs.push_back(run);
  EXPECT_NE(render(r2, Format::terminal).find("kbench 0.1.0 (commit abc) | protocol"),
            std::string::npos)
      << render(r2, Format::terminal);
}

TEST(ReportLabels, ModelsDifferingOnlyInEndpointAreLabelledByWhatDiffers) {
  TempDir d;
  {
    store::Store s(d.file("m.db"));
    s.upsert_model("openai", "mock-a",
                   R"({"name":"mock-a","base_url":"http://127.0.0.1:8001/v1","temperature":0})");
    s.upsert_model("openai", "other", "{}");
    s.upsert_model("openai", "mock-a",
                   R"({"name":"mock-a","base_url":"http://127.0.0.1:8002/v1","temperature":0})");
  }
  store::Store s(d.file("m.db"));
  auto labels = model_labels(s);
  ASSERT_EQ(labels.size(), 3u);
  EXPECT_EQ(labels[1], "openai/mock-a (base_url=http://127.0.0.1:8001/v1)");
  EXPECT_EQ(labels[2], "openai/other");
  EXPECT_EQ(labels[3], "openai/mock-a (base_url=http://127.0.0.1:8002/v1)");
}

TEST(ReportCsv, FormulaCellsAreNeutralised) {
  EXPECT_EQ(csv_field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
  EXPECT_EQ(csv_field("+1+2"), "'+1+2");
  EXPECT_EQ(csv_field("-cmd"), "'-cmd");
  EXPECT_EQ(csv_field("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(csv_field("\t=1"), "'\t=1");
  EXPECT_EQ(csv_field("\r=1"), "\"'\r=1\"");
  EXPECT_EQ(csv_field("-0.5"), "-0.5"); // a plain number stays a number
  EXPECT_EQ(csv_field("1e-3"), "1e-3");
  EXPECT_EQ(csv_field("tile 64x64"), "tile 64x64");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");

  // Through the report and the export: no cell of either starts a formula.
  TempDir d;
  {
    store::Store s(d.file("f.db"));
    int64_t run = s.begin_run({});
    int64_t m = s.upsert_model("=1+1", "m", "{}");
    store::Attempt a;
    a.candidate = store::Candidate{
        run,   "l1/a", m, "oneshot", 0, std::nullopt, "=HYPERLINK(\"http://evil\",\"click\")",
        "// k"};
    EvalResult r;
    r.outcome = Outcome::correct;
    r.candidate_time = kb::test::fixture_timing(1.0);
    r.baseline_time = kb::test::fixture_timing(1.0);
    r.speedup = 1.0;
    a.evaluation = r;
    s.record_attempt(a);
  }
  store::Store s(d.file("f.db"));
  std::vector<std::string> texts{export_results(s, ExportFormat::csv, {})};
  for (const auto& [name, csv] : render_csv_tables(build_report(s)))
    texts.push_back(csv);
  for (const auto& csv : texts) {
    EXPECT_EQ(csv.find(",="), std::string::npos) << csv;
    EXPECT_EQ(csv.find(",\"="), std::string::npos) << csv;
    EXPECT_EQ(csv.find("\n="), std::string::npos) << csv;
  }
  EXPECT_NE(texts[0].find("'=HYPERLINK"), std::string::npos) << texts[0];
  EXPECT_NE(texts[0].find(",'=1+1/m,"), std::string::npos) << texts[0];
}

// Text the store got from models and LLM answers is untrusted bytes: ill-formed UTF-8 in a model
// name, a problem id, an idea or the code is replaced in every JSON output (report, compare,
// export) instead of ending in an internal error, and no other format fails on it.
TEST(ReportText, IllFormedUtf8InStoredTextIsReplacedNotAnError) {
  TempDir d;
  {
    store::Store s(d.file("u.db"));
    int64_t run = s.begin_run({});
    int64_t m = s.upsert_model("openai", "gpt-\xff", "{\"base_url\":\"http://x/\xfe\"}");
    store::Attempt a;
    a.candidate = store::Candidate{run,          "l1/a\xc0\xaf",      m,          "oneshot", 0,
                                   std::nullopt, "idea \xed\xa0\x80", "// k \xff"};
    EvalResult r;
    r.outcome = Outcome::correct;
    r.candidate_time = kb::test::fixture_timing(1.0);
    r.baseline_time = kb::test::fixture_timing(2.0);
    r.speedup = 2.0;
    a.evaluation = r;
    s.record_attempt(a);
  }
  store::Store s(d.file("u.db"));
  Report rep;
  ASSERT_NO_THROW(rep = build_report(s));
  for (auto f : {Format::terminal, Format::markdown, Format::html, Format::csv})
    EXPECT_NO_THROW((void)render(rep, f)) << static_cast<int>(f);
  std::vector<std::string> jsons;
  ASSERT_NO_THROW(jsons.push_back(render(rep, Format::json)));
  ASSERT_NO_THROW(jsons.push_back(render_compare(compare(s, s), Format::json)));
  ASSERT_NO_THROW(jsons.push_back(export_results(s, ExportFormat::json, {})));
  ASSERT_NO_THROW(jsons.push_back(export_results(s, ExportFormat::gbench, {})));
  EXPECT_NO_THROW((void)export_results(s, ExportFormat::csv, {}));
  for (const auto& j : jsons) {
    EXPECT_EQ(invalid_utf8_at(j), std::nullopt) << j;
    EXPECT_FALSE(nlohmann::json::parse(j, nullptr, false).is_discarded()) << j;
  }
  EXPECT_NE(jsons[0].find("gpt-\xef\xbf\xbd"), std::string::npos) << jsons[0]; // U+FFFD
  EXPECT_NE(jsons[2].find("idea \xef\xbf\xbd"), std::string::npos) << jsons[2];
}

TEST_F(ReportFixture, UnmatchedExternalBaselines) {
  // The fixture's matmul entries match the problem through its KernelBench provenance.
  EXPECT_TRUE(unmatched_external_baselines(*m_store, "pytorch-eager").empty());
  m_store->record_external_baseline(
      {"l1/99_nothing_here", "pytorch-eager", "NVIDIA H100 80GB HBM3", 1.0, 0, 1, 1, 10, "x"});
  EXPECT_EQ(unmatched_external_baselines(*m_store, "pytorch-eager"),
            std::vector<std::string>{"l1/99_nothing_here"});
  EXPECT_TRUE(unmatched_external_baselines(*m_store, "torch-compile").empty());
}

TEST_F(ReportFixture, HtmlChartsAndFoldedLeaderboard) {
  std::string html = render(m_report, Format::html);
  for (const char* id : {"fastp-chart", "cost-chart", "speedup-chart"})
    EXPECT_NE(html.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  EXPECT_NE(html.find("<polyline class=\"fastp\""), std::string::npos);
  EXPECT_NE(html.find("<circle class=\"cost-point\""), std::string::npos);
  EXPECT_NE(html.find("<table class=\"leaderboard\">"), std::string::npos);
  EXPECT_NE(html.find("<details><summary>All leaderboard columns"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}
