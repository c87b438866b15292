// Reports over the results store: leaderboards (compile/correct rates, fast_p, geometric-mean
// speedup, pass@k, tokens, cost), the paper table (speedup = reference time / kernel time,
// roofline %), search
// trajectories, review flags, regression verdicts between two databases, and exports. Library
// code returns data and strings; only the CLI prints.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core.hpp"
#include "store.hpp"

namespace kb::report {

// ---------------------------------------------------------------------------------------------
// Metrics (exposed for tests and other tools)
// ---------------------------------------------------------------------------------------------

// KernelBench's fast_p: (problems whose speedup is > p, strictly) / problems. `best_speedups`
// holds one entry per problem: the best correct speedup, or nullopt when no correct kernel.
// Returns 0 for no problems.
double fast_p(const std::vector<std::optional<double>>& best_speedups, double p);
// Geometric mean of positive values; nullopt when empty. Throws kb::Error on a value <= 0.
std::optional<double> geometric_mean(const std::vector<double>& values);
// Unbiased pass@k estimator 1 - C(n-c, k) / C(n, k) for n samples of which c are correct.
// Requires 0 <= c <= n and 1 <= k <= n (kb::Error otherwise).
double pass_at_k(int64_t n, int64_t c, int64_t k);

// Two-sided Mann-Whitney U test of samples a against b.
struct MannWhitney {
  double u = 0.0;       // U statistic of a
  double z = 0.0;       // normal approximation's z (0 when exact)
  double p_value = 1.0; // two-sided
  bool exact = false;   // exact distribution (small samples without ties) or normal approx.
};
// Throws kb::Error when either sample is empty.
MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

// ---------------------------------------------------------------------------------------------
// Report data
// ---------------------------------------------------------------------------------------------

struct ReportOptions {
  std::vector<int64_t> run_ids; // empty: every run in the database
  std::optional<int> level;     // only this level
  // A correct kernel faster than this speedup is marked for review (as is any stored review flag
  // and any roofline % above 100); reviewed kernels never rank in fast_p, geomean or the paper
  // table until cleared.
  double review_speedup = 10.0;
  std::vector<int64_t> pass_k{1, 5, 10};
  std::vector<double> fast_p_thresholds{0.0, 0.5, 0.8, 1.0, 1.5, 2.0};
  // Text formats show speedups as a percentage of the reference's speed ("484%" = 4.84x), the
  // way the seed article's table does; CSV and JSON always give the plain ratio.
  bool speedup_percent = false;
};

// Speedups are reference time / kernel time: 2.0 means the kernel takes half the reference's
// time, 0.5 twice as long.
struct LeaderboardRow {
  // Model label (see model_labels); "<label> [<protocol>]" when the runs used several protocols.
  std::string model;
  Protocol protocol = Protocol::kbench; // every figure of the row was measured under it
  std::optional<int> level;             // nullopt: all levels together
  int64_t problems = 0;                 // problems with at least one candidate
  int64_t candidates = 0;               // candidates generated, evaluated or not
  int64_t attempts = 0;                 // evaluated attempts
  // Rates over evaluated attempts / problems; nullopt when nothing was evaluated ("not
  // evaluated", never 0%).
  std::optional<double> compile_rate;            // attempts that compiled / attempts
  std::optional<double> correct_rate;            // attempts correct / attempts
  std::optional<double> problems_solved;         // problems with a correct kernel / problems
  std::vector<std::pair<double, double>> fast_p; // (p, fast_p); empty when nothing was evaluated
  // One entry per problem: its best correct speedup not held for review (nullopt: none). The
  // fast_p curve is drawn from these.
  std::vector<std::optional<double>> best_speedups;
  std::optional<double> geomean_speedup;    // over problems' best correct speedups
  std::optional<double> geomean_vs_eager;   // vs PyTorch eager where recorded
  std::optional<double> geomean_vs_compile; // vs torch.compile where recorded
  int64_t problems_vs_eager = 0, problems_vs_compile = 0;
  std::vector<std::pair<int64_t, double>> pass_at_k; // (k, mean over problems with n >= k)
  int64_t tokens_in = 0, tokens_out = 0;
  double cost_usd = 0.0;
  double wall_s = 0.0; // LLM latency + compile + worker start + check + timing
  int64_t flagged = 0; // correct kernels held for review
  // Requests the provider never answered (after retries, and not answered by a resume since):
  // not candidates, so they count in no rate, fast_p or pass@k; shown so a score over fewer
  // answers than asked is visible.
  int64_t provider_failures = 0;
  bool evaluated() const { return attempts > 0; }
};

// One problem × model line of the paper table: the best correct kernel not held for review.
struct PaperRow {
  std::string problem_id;
  int level = 0;
  std::string model;
  Protocol protocol = Protocol::kbench;
  std::optional<int64_t> candidate_id;
  std::optional<double> kernel_ms;   // candidate median
  std::optional<double> baseline_ms; // cuBLAS/cuDNN median in the same evaluation
  std::optional<double> speedup;     // baseline time / kernel time (> 1: the kernel is faster)
  std::optional<double> eager_ms, speedup_vs_eager;     // PyTorch eager time / kernel time
  std::optional<double> compile_ms, speedup_vs_compile; // torch.compile time / kernel time
  std::optional<double> roofline_pct;
  std::string idea;
  // "correct", else the best outcome reached ("compile_error", ...), "held_for_review", or
  // "not_evaluated" when no candidate was evaluated.
  std::string outcome;
  int64_t held_for_review = 0; // faster correct kernels held for review
};

// Best time per round of one problem × model search.
struct TrajectoryPoint {
  int round = 0;
  int64_t attempts = 0, correct = 0;
  std::optional<double> round_best_ms; // best correct (not held) in this round
  std::optional<double> best_so_far_ms;
  std::optional<int64_t> candidate_id; // producer of round_best_ms
  std::string idea;
};
struct Trajectory {
  std::string problem_id;
  std::string model;
  std::vector<TrajectoryPoint> points;
};

// A kernel held for review.
struct ReviewItem {
  int64_t candidate_id = 0;
  std::string problem_id;
  std::string model;
  double speedup = 0.0;
  double roofline_pct = 0.0;
  std::vector<std::string> reasons; // flag names, "speedup_above_review", "above_roofline"
};

struct RunSummary {
  int64_t id = 0;
  std::string gpu_name, kbench_version, git_commit;
  Protocol protocol = Protocol::kbench;
  std::string status, origin;
};

struct Report {
  std::vector<RunSummary> runs;
  // Sentences that explain missing or partial data (a level without attempts, candidates not
  // evaluated); renderers show them in place of empty tables.
  std::vector<std::string> notes;
  std::vector<LeaderboardRow> leaderboard; // per model (level nullopt), then per model and level
  std::vector<PaperRow> paper;
  std::vector<Trajectory> trajectories;
  std::vector<ReviewItem> review;
  ReportOptions options;
};

// Reads the store and computes every table. Throws kb::Error when a run id is unknown.
Report build_report(store::Store& s, const ReportOptions& o = {});

enum class Format { terminal, markdown, html, csv, json };
// Parses "terminal"/"text", "markdown"/"md", "html", "csv", "json".
std::optional<Format> parse_format(std::string_view name);

// Renders a report. HTML is one self-contained file (inline CSS and SVG charts, no scripts, no
// external assets) with every string escaped. CSV is the leaderboard table only; the other tables
// come from render_csv_tables.
std::string render(const Report& r, Format f);

// The report as CSV, one table per entry: ("leaderboard", csv), ("paper", csv),
// ("trajectories", csv), ("review", csv). Every table has exactly one header row; cells that a
// spreadsheet would read as a formula are neutralised (see csv_field).
std::vector<std::pair<std::string, std::string>> render_csv_tables(const Report& r);

// Readable model labels by model row id: "provider/model_id", and where several rows share
// provider and model id, the settings that differ between them, e.g.
// "openai/mock-a (name=a-east, base_url=http://host-a/v1)". Labels are the same for the same
// settings in any database, so compare matches models across databases by them.
std::map<int64_t, std::string> model_labels(store::Store& s);

// RFC 4180 CSV field (quoted when it holds a comma, quote or line break) with formula cells
// neutralised: text starting with '=', '+', '-', '@', tab or carriage return gets a leading
// apostrophe, so a spreadsheet shows it as text. Plain numbers ("-0.5") are left as they are.
std::string csv_field(std::string_view s);

// Keys of external baselines of `source` that match no problem recorded in the database (by
// ProblemRow::baseline_keys), sorted. Reports can only use entries that match a problem.
std::vector<std::string> unmatched_external_baselines(store::Store& s, std::string_view source);

// ---------------------------------------------------------------------------------------------
// Regression verdicts
// ---------------------------------------------------------------------------------------------

struct CompareOptions {
  double threshold = 0.05;                   // relative time change that counts (0.05 = 5%)
  double alpha = 0.01;                       // significance level of the Mann-Whitney test
  std::vector<int64_t> base_runs, head_runs; // empty: all runs
};

enum class Verdict {
  unchanged,     // within threshold or not significant
  regression,    // slower beyond threshold, significant
  improvement,   // faster beyond threshold, significant
  new_failure,   // correct in base, no correct kernel in head
  fixed,         // no correct kernel in base, correct in head
  still_failing, // no correct kernel in either
  missing,       // in base, absent in head
  added,         // absent in base, present in head
  no_samples     // correct in both but raw samples absent in one: no test possible
};
std::string_view verdict_name(Verdict v);

struct CompareRow {
  std::string problem_id;
  std::string model;
  Verdict verdict = Verdict::unchanged;
  std::optional<double> base_ms, head_ms; // medians of the best correct kernels
  std::optional<double> change;           // head / base - 1
  std::optional<MannWhitney> test;
  int64_t base_samples = 0, head_samples = 0;
};

struct CompareResult {
  std::string base_path, head_path;
  CompareOptions options;
  std::vector<CompareRow> rows; // sorted by problem, model
  int64_t regressions = 0, improvements = 0, new_failures = 0, fixed = 0, missing = 0;
};

// Compares the best correct kernel per problem × model (models matched by label).
CompareResult compare(store::Store& base, store::Store& head, const CompareOptions& o = {});
// 1 when a significant regression beyond the threshold exists, else 0. (New failures and
// missing problems are reported; they are not timing regressions.)
int compare_exit_code(const CompareResult& r);
// Markdown, JSON or terminal rendering (other formats fall back to terminal).
std::string render_compare(const CompareResult& r, Format f);

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

enum class ExportFormat { csv, json, gbench };
std::optional<ExportFormat> parse_export_format(std::string_view name);

// Every candidate (csv/json: one row each, no source; outcome "not_evaluated" in CSV and null in
// JSON for a candidate never evaluated; CSV is one table with one header row and formula cells
// neutralised); gbench: Google Benchmark's JSON
// with one benchmark per problem × model (best correct kernel, every raw sample as a repetition
// plus mean/median/stddev aggregates) and one per problem for the cuBLAS/cuDNN baseline, so
// compare.py and dashboards that read that format work on kbench results.
std::string export_results(store::Store& s, ExportFormat f, const std::vector<int64_t>& run_ids);

} // namespace kb::report
