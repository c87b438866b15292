// End-to-end tests of the store and report subcommands of the real kbench binary on temporary
// databases, plus the HTML report rendered in a real headless browser (Debian's chromium).
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "report_fixture.hpp"
#include "store.hpp"

namespace fs = std::filesystem;

namespace {

struct Result {
  int code = -1;
  std::string output; // stdout and stderr together
};

Result sh(const std::string& cmd) {
  Result r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p)
    return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    r.output.append(buf.data(), n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string kbench() {
  return std::string(KB_BIN_DIR) + "/kbench";
}

class ReportCli : public ::testing::Test {
protected:
  void SetUp() override {
    m_dir = fs::temp_directory_path() / ("kb-report-e2e-" + std::to_string(::getpid()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
    m_db = (m_dir / "fixture.db").string();
    kb::test::build_report_fixture(m_db);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  std::string file(const std::string& n) const { return (m_dir / n).string(); }
  fs::path m_dir;
  std::string m_db;
};

// One correct kernel on l1/a with the given samples.
void one_kernel_db(const std::string& path, const std::vector<double>& samples) {
  kb::store::Store s(path);
  int64_t run = s.begin_run({});
  int64_t m = s.upsert_model("vllm", "kevin", "{}");
  kb::store::Attempt a;
  a.candidate = kb::store::Candidate{run, "l1/a", m, "oneshot"};
  kb::EvalResult r;
  r.outcome = kb::Outcome::correct;
  kb::TimingStats t;
  t.samples_ms = samples;
  t.samples = static_cast<int>(samples.size());
  t.median_ms = samples[samples.size() / 2];
  r.candidate_time = t;
  r.speedup = 1.0;
  a.evaluation = r;
  s.record_attempt(a);
}

} // namespace

TEST_F(ReportCli, RunsShowAndReportFormats) {
  auto runs = sh(kbench() + " runs --db " + m_db);
  ASSERT_EQ(runs.code, 0) << runs.output;
  EXPECT_NE(runs.output.find("completed"), std::string::npos);
  auto show = sh(kbench() + " show 1 --db " + m_db);
  ASSERT_EQ(show.code, 0) << show.output;
  EXPECT_NE(show.output.find("vllm/kevin: compile_error=2 correct=5 mismatch=1 no_code=1"),
            std::string::npos)
      << show.output;
  EXPECT_EQ(sh(kbench() + " show 99 --db " + m_db).code, 2);
  for (const char* f : {"terminal", "markdown", "csv", "json", "html"}) {
    auto r = sh(kbench() + " report --db " + m_db + " --format " + f);
    EXPECT_EQ(r.code, 0) << f << ": " << r.output;
    // CSV is one table (the leaderboard) unless --table picks another.
    EXPECT_NE(r.output.find(std::string(f) == "csv" ? "vllm/kevin" : "l1/matmul"),
              std::string::npos)
        << f;
  }
  auto md =
      sh(kbench() + " report --db " + m_db + " --format markdown --level 1 -o " + file("r.md"));
  ASSERT_EQ(md.code, 0) << md.output;
  EXPECT_EQ(kb::read_file(file("r.md")).find("l2/conv_relu"), std::string::npos);
}

TEST_F(ReportCli, BadInputExitsTwoNamingTheFile) {
  std::ofstream(file("notes.txt")) << "plain text, not a database at all, long enough to tell\n";
  for (const std::string& cmd :
       {kbench() + " report --db " + file("missing.db"),
        kbench() + " runs --db " + file("notes.txt"),
        kbench() + " compare " + m_db + " " + file("missing.db"),
        kbench() + " compare " + file("notes.txt") + " " + m_db,
        kbench() + " import-baselines " + file("notes.txt") + " --db " + file("x.db"),
        kbench() + " merge " + file("missing.db") + " -o " + file("out.db")}) {
    auto r = sh(cmd);
    EXPECT_EQ(r.code, 2) << cmd << "\n" << r.output;
    EXPECT_TRUE(r.output.find("missing.db") != std::string::npos ||
                r.output.find("notes.txt") != std::string::npos)
        << cmd << "\n"
        << r.output;
  }
  EXPECT_FALSE(fs::exists(file("out.db")));
}

TEST_F(ReportCli, CompareExitCodes) {
  one_kernel_db(file("base.db"), {1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01});
  one_kernel_db(file("same.db"), {1.0, 0.99, 1.01, 1.0, 1.02, 0.98, 1.01, 1.0});
  one_kernel_db(file("slow.db"), {1.3, 1.31, 1.29, 1.3, 1.32, 1.28, 1.3, 1.31});
  auto same = sh(kbench() + " compare " + file("base.db") + " " + file("same.db"));
  EXPECT_EQ(same.code, 0) << same.output;
  auto slow = sh(kbench() + " compare " + file("base.db") + " " + file("slow.db") +
                 " --format json -o " + file("verdict.json"));
  EXPECT_EQ(slow.code, 1) << slow.output;
  auto j = nlohmann::json::parse(kb::read_file(file("verdict.json")));
  EXPECT_EQ(j["regressions"], 1);
  EXPECT_EQ(j["rows"][0]["verdict"], "regression");
  // A threshold above the change makes it pass.
  EXPECT_EQ(
      sh(kbench() + " compare " + file("base.db") + " " + file("slow.db") + " --threshold 0.5")
          .code,
      0);
}

TEST_F(ReportCli, MergeImportAndExport) {
  std::string copy = file("copy.db");
  kb::test::build_report_fixture(copy); // same content, different run uuid
  auto m = sh(kbench() + " merge " + m_db + " " + copy + " -o " + file("merged.db"));
  ASSERT_EQ(m.code, 0) << m.output;
  auto again = sh(kbench() + " merge " + m_db + " -o " + file("merged.db"));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("0 run(s) copied, 1 already present"), std::string::npos)
      << again.output;
  kb::store::Store merged(file("merged.db"), {.read_only = true});
  EXPECT_EQ(merged.runs().size(), 2u);

  // KernelBench's published timings ship with the repository (data/kernelbench-timings).
  const std::string eager =
      std::string(KB_SOURCE_DIR) + "/data/kernelbench-timings/H100_Modal/baseline_time_torch.json";
  ASSERT_TRUE(fs::exists(eager)) << eager;
  auto imp = sh(kbench() + " import-baselines " + eager + " --db " + file("merged.db"));
  ASSERT_EQ(imp.code, 0) << imp.output;
  EXPECT_NE(imp.output.find("250 baselines as 'pytorch-eager'"), std::string::npos) << imp.output;
  auto gb = sh(kbench() + " export --db " + m_db + " --format gbench -o " + file("gb.json"));
  ASSERT_EQ(gb.code, 0) << gb.output;
  auto j = nlohmann::json::parse(kb::read_file(file("gb.json")));
  EXPECT_FALSE(j["benchmarks"].empty());
  auto csv = sh(kbench() + " export --db " + m_db + " --format csv");
  ASSERT_EQ(csv.code, 0);
  EXPECT_EQ(csv.output.rfind("run_id,candidate_id,", 0), 0u);
}

// The HTML report in a real browser: it renders, its charts are present, and a <script> in a
// candidate's idea text does not run. A control page proves scripts do run in this browser.
TEST_F(ReportCli, HtmlReportInHeadlessChromium) {
  std::string chromium;
  for (const char* c : {"chromium", "chromium-browser"})
    if (sh(std::string("command -v ") + c).code == 0) {
      chromium = c;
      break;
    }
  if (chromium.empty())
    GTEST_SKIP() << "chromium not installed (apt-get install chromium): browser test skipped";
  auto r = sh(kbench() + " report --db " + m_db + " --format html -o " + file("report.html"));
  ASSERT_EQ(r.code, 0) << r.output;
  std::string flags = " --headless --no-sandbox --disable-gpu --disable-background-networking "
                      "--disable-component-update --disable-sync --no-first-run --user-data-dir=" +
                      file("profile") + " --dump-dom ";
  std::ofstream(file("control.html"))
      << "<!DOCTYPE html><html><body><p>control</p><script>"
         "document.body.setAttribute('data-pwned','1')</script></body></html>";
  auto control = sh("timeout 90 " + chromium + flags + "file://" + file("control.html"));
  ASSERT_NE(control.output.find("data-pwned=\"1\""), std::string::npos)
      << "scripts do not run in this browser, the check below would prove nothing:\n"
      << control.output;

  auto dom = sh("timeout 90 " + chromium + flags + "file://" + file("report.html"));
  ASSERT_NE(dom.output.find("<h1>kbench report</h1>"), std::string::npos) << dom.output;
  EXPECT_NE(dom.output.find("id=\"speedup-chart\""), std::string::npos);
  EXPECT_NE(dom.output.find("id=\"trajectory-chart\""), std::string::npos);
  EXPECT_NE(dom.output.find("id=\"roofline-chart\""), std::string::npos);
  EXPECT_NE(dom.output.find("<rect class=\"bar\""), std::string::npos);
  EXPECT_NE(dom.output.find("<polyline class=\"trajectory\""), std::string::npos);
  // The injected text is shown as text, and it never ran.
  EXPECT_NE(dom.output.find("&lt;script&gt;document.body.setAttribute"), std::string::npos);
  EXPECT_EQ(dom.output.find("data-pwned=\"1\""), std::string::npos) << dom.output;

  auto shot = sh("timeout 90 " + chromium + flags.substr(0, flags.size() - 11) +
                 " --window-size=1400,2000 --screenshot=" + file("report.png") + " file://" +
                 file("report.html"));
  EXPECT_TRUE(fs::exists(file("report.png"))) << shot.output;
  if (fs::exists(file("report.png"))) {
    EXPECT_GT(fs::file_size(file("report.png")), 10000u);
  }
}

namespace {

// Two models over level 1 whose names, problem ids and ideas carry script, handler and
// javascript: payloads; every payload would mark <body> with data-pwned if it ever ran.
void hostile_two_model_db(const std::string& path) {
  kb::store::Store s(path);
  kb::store::RunInfo info;
  info.gpu_name = "NVIDIA H100 80GB HBM3";
  info.kbench_version = "0.1.0 (commit abc)";
  info.git_commit = "abc";
  info.protocol = kb::Protocol::kbench;
  int64_t run = s.begin_run(info);
  const std::vector<std::string> problems{
      "l1/<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">",
      "l1/javascript:document.body.setAttribute('data-pwned','js')", "l1/matmul", "l1/softmax",
      "l1/relu"};
  for (const auto& id : problems) {
    kb::Problem p;
    p.id = id;
    p.level = 1;
    p.name = id;
    p.content_hash = "h" + id;
    s.upsert_problem(p);
  }
  int64_t a =
      s.upsert_model("openai", "<script>document.body.setAttribute('data-pwned','model')</script>",
                     R"j({"base_url":"javascript:alert(1)"})j");
  int64_t b = s.upsert_model("anthropic",
                             "<svg onload=\"document.body.setAttribute('data-pwned',"
                             "'svg')\"></svg>",
                             "{}");
  int call = 0;
  for (int64_t m : {a, b})
    for (std::size_t i = 0; i < problems.size(); ++i) {
      kb::store::Attempt at;
      at.llm_call =
          kb::store::LlmCall{run, m,    problems[i], "r" + std::to_string(++call), 1000,    400,
                             1.0, "ok", "",          m == a ? 0.02 : 0.05,         "answer"};
      at.candidate = kb::store::Candidate{
          run,
          problems[i],
          m,
          "oneshot",
          0,
          std::nullopt,
          "<a href=\"javascript:document.body.setAttribute('data-pwned','a')\">idea</a>",
          "// k" + std::to_string(call)};
      kb::EvalResult r;
      r.protocol = kb::Protocol::kbench;
      if ((i + static_cast<std::size_t>(m)) % 4 == 3) {
        r.outcome = kb::Outcome::mismatch;
      } else {
        double kernel = 0.5 + 0.4 * static_cast<double>(i) + (m == a ? 0.0 : 0.3);
        r.outcome = kb::Outcome::correct;
        r.candidate_time = kb::test::fixture_timing(kernel);
        r.baseline_time = kb::test::fixture_timing(1.0);
        r.speedup = 1.0 / kernel;
        r.roofline_pct = 40.0;
      }
      at.evaluation = r;
      s.record_attempt(at);
    }
  s.end_run(run, "completed");
}

// Appended to a copy of the report: records the page width and the charts found on <body>.
const char* k_measure = "<script>document.body.setAttribute('data-kb-width',Math.max("
                        "document.documentElement.scrollWidth,document.body.scrollWidth));"
                        "document.body.setAttribute('data-kb-fastp',"
                        "document.querySelectorAll('svg#fastp-chart polyline').length);"
                        "document.body.setAttribute('data-kb-cost',"
                        "document.querySelectorAll('svg#cost-chart circle').length);"
                        "document.body.setAttribute('data-kb-speedup',"
                        "document.querySelectorAll('svg#speedup-chart rect.bar').length);"
                        "</script>";

int body_attr(const std::string& dom, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(dom, m, std::regex(name + "=\"([0-9]+)\"")))
    return -1;
  return std::stoi(m[1]);
}

} // namespace

// The HTML report of two models over level 1 in a 1366-pixel-wide headless chromium: the fast_p,
// cost and per-problem speedup charts are drawn, nothing overflows the window, and no script or
// handler from the data runs, even with the page's Content-Security-Policy removed (escaping
// alone must keep the data inert).
TEST_F(ReportCli, HtmlReportFitsALaptopAndDataStaysInert) {
  std::string chromium;
  for (const char* c : {"chromium", "chromium-browser"})
    if (sh(std::string("command -v ") + c).code == 0) {
      chromium = c;
      break;
    }
  if (chromium.empty())
    GTEST_SKIP() << "chromium not installed (tools/setup.sh installs it): browser test skipped";
  std::string db = file("hostile.db");
  hostile_two_model_db(db);
  auto r = sh(kbench() + " report --db " + db + " --format html -o " + file("hostile.html"));
  ASSERT_EQ(r.code, 0) << r.output;
  std::string html = kb::read_file(file("hostile.html"));
  for (const char* id : {"fastp-chart", "cost-chart", "speedup-chart"})
    EXPECT_NE(html.find(std::string("id=\"") + id + "\""), std::string::npos) << id;

  // The measured copy: CSP removed, the measuring script appended.
  auto csp = html.find("<meta http-equiv=\"Content-Security-Policy\"");
  ASSERT_NE(csp, std::string::npos);
  std::string open_copy = html;
  open_copy.erase(csp, html.find('>', csp) + 1 - csp);
  open_copy.insert(open_copy.rfind("</body>"), k_measure);
  std::ofstream(file("measured.html")) << open_copy;
  std::ofstream(file("wide.html")) << "<!DOCTYPE html><html><body><div style=\"width:2000px\">"
                                      "wide</div>"
                                   << k_measure << "</body></html>";
  std::string flags = " --headless --no-sandbox --disable-gpu --disable-background-networking "
                      "--disable-component-update --disable-sync --no-first-run "
                      "--window-size=1366,900 --user-data-dir=" +
                      file("profile") + " --dump-dom file://";

  // Control: the measurement sees a page wider than the window.
  auto wide = sh("timeout 90 " + chromium + flags + file("wide.html"));
  ASSERT_GT(body_attr(wide.output, "data-kb-width"), 1366)
      << "the width measurement does not work in this browser:\n"
      << wide.output;

  auto dom = sh("timeout 90 " + chromium + flags + file("measured.html"));
  ASSERT_NE(dom.output.find("<h1>kbench report</h1>"), std::string::npos) << dom.output;
  int width = body_attr(dom.output, "data-kb-width");
  EXPECT_GT(width, 0) << dom.output;
  EXPECT_LE(width, 1366) << "the report overflows a 1366-pixel window";
  // Two fast_p curves, two cost points, and one bar per correct problem × model (the fixture
  // has 8 of them), each in its own chart.
  EXPECT_EQ(body_attr(dom.output, "data-kb-fastp"), 2) << dom.output;
  EXPECT_EQ(body_attr(dom.output, "data-kb-cost"), 2) << dom.output;
  EXPECT_EQ(body_attr(dom.output, "data-kb-speedup"), 8) << dom.output;
  // No payload ran (it would have set the attribute), and none became an element.
  EXPECT_EQ(dom.output.find("data-pwned=\""), std::string::npos) << dom.output;
  EXPECT_EQ(dom.output.find("<img"), std::string::npos);
  EXPECT_EQ(dom.output.find("<svg onload"), std::string::npos);
  EXPECT_EQ(dom.output.find("<a href"), std::string::npos);
  EXPECT_EQ(dom.output.find("<script>document.body.setAttribute('data-pwned'"), std::string::npos);
  EXPECT_NE(dom.output.find("&lt;a href=\"javascript:"), std::string::npos);
  EXPECT_NE(dom.output.find("&lt;script&gt;document.body.setAttribute"), std::string::npos);
  EXPECT_NE(dom.output.find("&lt;img src=x onerror="), std::string::npos);

  // The report as written, with its policy, renders to a screenshot at laptop size.
  auto shot = sh("timeout 90 " + chromium + flags.substr(0, flags.find(" --dump-dom")) +
                 " --screenshot=" + file("hostile.png") + " file://" + file("hostile.html"));
  EXPECT_TRUE(fs::exists(file("hostile.png"))) << shot.output;
}

TEST_F(ReportCli, CsvIsOneTablePerFile) {
  auto all = sh(kbench() + " report --db " + m_db + " --format csv --table all -o " + file("csv"));
  ASSERT_EQ(all.code, 0) << all.output;
  for (const char* name : {"leaderboard", "paper", "trajectories", "review"}) {
    std::string csv = kb::read_file(file(std::string("csv/") + name + ".csv"));
    EXPECT_EQ(csv.find("\n\n"), std::string::npos) << name;
    EXPECT_FALSE(csv.empty()) << name;
  }
  auto paper = sh(kbench() + " report --db " + m_db + " --format csv --table paper");
  ASSERT_EQ(paper.code, 0) << paper.output;
  EXPECT_EQ(paper.output.rfind("level,problem,model,outcome,", 0), 0u) << paper.output;
  EXPECT_EQ(sh(kbench() + " report --db " + m_db + " --format csv --table all").code, 2);
  EXPECT_EQ(sh(kbench() + " report --db " + m_db + " --format markdown --table paper").code, 2);
}

TEST_F(ReportCli, ReviewSpeedupZeroSaysWhatIsWrong) {
  auto r = sh(kbench() + " report --db " + m_db + " --review-speedup 0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("must be a positive number"), std::string::npos) << r.output;
  EXPECT_FALSE(std::regex_search(r.output, std::regex("[0-9]{30}"))) << r.output;
  EXPECT_LT(r.output.size(), 400u) << r.output;
}

TEST_F(ReportCli, ImportBaselinesNamesEntriesMatchingNoProblem) {
  std::ofstream(file("level1_eager.json"))
      << R"({"level1": {"1_Square_matrix_multiplication_.py": {"mean": 2.6, "std": 0.01,)"
         R"( "min": 2.5, "max": 2.7, "num_trials": 100, "hardware": "NVIDIA H100 80GB HBM3"},)"
         R"( "999_No_such_problem.py": {"mean": 1.0, "std": 0.01, "min": 0.9, "max": 1.1,)"
         R"( "num_trials": 100, "hardware": "NVIDIA H100 80GB HBM3"}}})";
  auto r = sh(kbench() + " import-baselines " + file("level1_eager.json") + " --db " + m_db);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 'pytorch-eager' entries match no problem"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("l1/999_no_such_problem"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("1_square_matrix"), std::string::npos) << r.output;
}
