// End-to-end tests of the store and report subcommands of the real kbench binary on temporary
// databases, plus the HTML report rendered in a real headless browser (Debian's chromium).
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

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

  const std::string eager = "/work/shared/data/kernelbench-h100/baseline_time_torch.json";
  if (fs::exists(eager)) {
    auto imp = sh(kbench() + " import-baselines " + eager + " --db " + file("merged.db"));
    ASSERT_EQ(imp.code, 0) << imp.output;
    EXPECT_NE(imp.output.find("250 baselines as 'pytorch-eager'"), std::string::npos) << imp.output;
  }
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
