// The exit-code contract of the real kbench binary (0 ok, 2 bad input, 3 internal) for CLI
// misuse, with messages that say what was wrong and what was meant, and docs/cli.md equal to
// what the CLI definitions generate.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kbench_cli.hpp"

namespace {

using Result = kb::test::CliResult;

Result kbench_via(const std::string& prefix, const std::string& args) {
  return kb::test::run_kbench_via(prefix, args);
}

Result kbench(const std::string& args) {
  return kb::test::run_kbench(args);
}

TEST(CliContract, UnknownCommandIsBadInputAndSuggestsTheNearestOne) {
  const auto r = kbench("rnu --level 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'rnu'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'run'"), std::string::npos) << r.err;
  const auto b = kbench("bogus");
  EXPECT_EQ(b.code, 2);
  EXPECT_NE(b.err.find("unknown command 'bogus'"), std::string::npos) << b.err;
  EXPECT_EQ(b.err.find("A subcommand is required"), std::string::npos) << b.err;
}

TEST(CliContract, MisspelledFlagIsBadInputAndSuggestsTheFlag) {
  const auto r = kbench("run --levle 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("did you mean --level?"), std::string::npos) << r.err;
  const auto c = kbench("compare --treshold 1 a.db b.db");
  EXPECT_EQ(c.code, 2);
  EXPECT_NE(c.err.find("--threshold"), std::string::npos) << c.err;
}

TEST(CliContract, MalformedValuesAndMissingCommandsAreExitTwoNotCli11Codes) {
  for (const char* args : {"run --jobs abc", "", "eval", "list --level", "report --format"}) {
    const auto r = kbench(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find("kbench: error:"), std::string::npos) << args << ": " << r.err;
  }
}

TEST(CliContract, HelpAndVersionSucceed) {
  EXPECT_EQ(kbench("--help").code, 0);
  EXPECT_EQ(kbench("run --help").code, 0);
  const auto v = kbench("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("commit"), std::string::npos) << v.out;
}

TEST(CliContract, ReadOnlyCommandsWorkOnADatabaseNobodyMayWrite) {
  // A database in a folder this process cannot write (a read-only mount, another user's files):
  // SQLite cannot create the log's shared-memory file there.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kb-ro-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = (dir / "base.db").string();
  const auto imp =
      kbench("import-baselines " + std::string(KB_SOURCE_DIR) +
             "/data/kernelbench-timings/H100_Modal/baseline_time_torch.json --db " + db);
  ASSERT_EQ(imp.code, 0) << imp.err;
  for (const char* extra : {"-shm", "-wal"})
    fs::remove(db + extra);
  fs::permissions(db, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                           fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  std::string as_other;
  if (::geteuid() == 0) { // root ignores permissions: read as nobody
    if (::system("command -v setpriv >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "running as root without setpriv: cannot drop to another user";
    as_other = "--reuid=65534 --regid=65534 --clear-groups ";
  }
  auto run = [&](const std::string& args) {
    return as_other.empty() ? kbench(args) : kbench_via("setpriv " + as_other, args);
  };
  for (const std::string args :
       {"runs --db " + db, "report --db " + db, "compare " + db + " " + db}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
    EXPECT_EQ(r.err.find("readonly"), std::string::npos) << args << ": " << r.err;
  }
  fs::permissions(dir, fs::perms::owner_all);
  fs::remove_all(dir);
}

// The same on a real read-only mount (a bind mount remounted read-only in a private user and
// mount namespace), with a database that holds a run.
TEST(CliContract, ReadOnlyCommandsWorkOnAReadOnlyMount) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kb-ro-mount-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string mount = "unshare --user --map-root-user --mount sh -c 'mount --bind " +
                            dir.string() + " " + dir.string() + " && mount -o remount,bind,ro " +
                            dir.string() + " && ";
  if (::system((mount + "! touch " + dir.string() + "/probe' >/dev/null 2>&1").c_str()) != 0) {
    fs::remove_all(dir);
    GTEST_SKIP() << "no private user and mount namespaces here (unshare refused): read-only "
                    "mount not tried; ReadOnlyCommandsWorkOnADatabaseNobodyMayWrite covers the "
                    "same failure of SQLite";
  }
  const std::string db = (dir / "base.db").string();
  const auto g = kbench("generate --problems relu_4096x393216 --db " + db);
  ASSERT_EQ(g.code, 0) << g.err;
  for (const char* extra : {"-shm", "-wal"})
    fs::remove(db + extra);
  for (const std::string& args : {"runs --db " + db, "show 1 --db " + db, "report --db " + db,
                                  "export --db " + db, "compare " + db + " " + db}) {
    const auto r = kbench_via(mount + "exec \"$0\" \"$@\"' ", args);
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
    EXPECT_EQ(r.err.find("readonly"), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(r.err.find("unable to open"), std::string::npos) << args << ": " << r.err;
    if (args.starts_with("runs")) {
      EXPECT_NE(r.out.find("generate"), std::string::npos) << r.out;
    }
  }
  fs::remove_all(dir);
}

// Problem files with sizes beyond 64 bits, 40 dimensions or a name that is not UTF-8 are named
// with their line and field; the listing of the others survives, as valid JSON with --json.
TEST(CliContract, HostileProblemFilesAreNamedAndTheListingIsKept) {
  namespace fs = std::filesystem;
  const fs::path root =
      fs::temp_directory_path() / ("kb-hostile-cli-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "level1");
  auto problem = [](const std::string& name, const std::string& shape) {
    return "name: \"" + name +
           "\"\ndescription: d\nprovenance: {source: kbench, ref: r}\ninputs:\n"
           "  - {name: x, shape: " +
           shape +
           ", dtype: f32, dist: {kind: uniform, low: 0, high: 1}}\n"
           "graph:\n  - {out: y, op: relu, in: [x]}\noutputs: [y]\n";
  };
  std::string forty = "[1";
  for (int i = 1; i < 40; ++i)
    forty += ", 1";
  forty += "]";
  std::ofstream(root / "level1" / "good.yaml") << problem("good", "[4, 8]");
  std::ofstream(root / "level1" / "huge.yaml")
      << problem("huge", "[1000000000000, 1000000000000, 1000000000000]");
  std::ofstream(root / "level1" / "deep.yaml") << problem("deep", forty);
  std::ofstream(root / "level1" / "bytes.yaml", std::ios::binary) << problem("a\xff"
                                                                             "b",
                                                                             "[4]");
  const std::string levels = " --levels-dir " + root.string();
  const std::string file = (root / "level1").string() + "/";
  const std::vector<std::string> named = {
      file + "huge.yaml:5: inputs[0].shape:", file + "deep.yaml:5: inputs[0].shape: ",
      file + "bytes.yaml:1: name: invalid UTF-8 (byte 0xFF at offset 1)"};

  const auto j = kbench("list --json" + levels);
  EXPECT_EQ(j.code, 1) << j.err; // docs/cli.md: a problem file did not load
  const auto listed = nlohmann::json::parse(j.out, nullptr, false);
  ASSERT_TRUE(listed.is_array()) << j.out;
  ASSERT_EQ(listed.size(), 1u) << j.out;
  EXPECT_EQ(listed[0]["id"], "l1/good");
  EXPECT_EQ(j.err.find("internal error"), std::string::npos) << j.err;
  for (const auto& n : named)
    EXPECT_NE(j.err.find(n), std::string::npos) << n << "\n" << j.err;

  const auto t = kbench("list" + levels);
  EXPECT_EQ(t.code, 1) << t.err;
  EXPECT_NE(t.out.find("l1/good"), std::string::npos) << t.out;
  EXPECT_FALSE(std::regex_search(t.out, std::regex(" -[0-9]"))) << t.out; // no negative cost
  EXPECT_EQ(t.out.find("huge"), std::string::npos) << t.out;

  for (const char* stem : {"huge", "deep", "bytes"}) {
    const auto p = kbench("problem --json " + file + stem + ".yaml" + levels);
    EXPECT_EQ(p.code, 2) << stem << ": " << p.err;
    EXPECT_NE(p.err.find(file + stem + ".yaml:"), std::string::npos) << p.err;
    EXPECT_TRUE(p.out.empty()) << p.out;
  }
  fs::remove_all(root);
}

// A models file whose model id is not UTF-8 ends `generate` as bad input naming the file, line
// and field, before anything is written.
TEST(CliContract, ModelsFileThatIsNotUtf8IsBadInputNamingItsPlace) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kb-models-cli-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "models.yaml", std::ios::binary)
      << "models:\n  mine:\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n"
         "    model: gpt-\xff\n";
  const std::string db = (dir / "kb.db").string();
  const auto r = kbench("generate --models mine --models-file " + (dir / "models.yaml").string() +
                        " --problems relu_4096x393216 --db " + db);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("models.yaml:5: models.mine.model: invalid UTF-8"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db));
  fs::remove_all(dir);
}

// Every command the reference documents answers --help with 0 and misuse with 2 and a message of
// kbench's own that points to that command's help (never CLI11's exit codes), and its section
// names its exit codes.
TEST(CliContract, EveryDocumentedCommandFollowsTheContract) {
  const auto ref = kbench("cli-reference");
  ASSERT_EQ(ref.code, 0) << ref.err;
  std::istringstream in(ref.out);
  std::string line;
  std::vector<std::string> commands;
  while (std::getline(in, line))
    if (line.starts_with("## kbench "))
      commands.push_back(line.substr(10));
  ASSERT_GE(commands.size(), 15u);
  for (const auto& c : commands) {
    const auto at = ref.out.find("## kbench " + c + "\n");
    const auto exits = ref.out.find("Exit codes: 0 done", at);
    EXPECT_LT(exits, ref.out.find("\n## ", at + 1)) << c << ": no exit codes in its section";
    EXPECT_EQ(kbench(c + " --help").code, 0) << c;
    const auto r = kbench(c + " --no-such-flag");
    EXPECT_EQ(r.code, 2) << c << ": " << r.err;
    EXPECT_NE(r.err.find("kbench: error:"), std::string::npos) << c << ": " << r.err;
    EXPECT_NE(r.err.find("(kbench " + c + " --help)"), std::string::npos) << c << ": " << r.err;
  }
}

TEST(CliContract, MalformedJsonNamesItsLineAndColumn) {
  const std::string bad = ::testing::TempDir() + "kbench-bad.json";
  std::ofstream(bad) << "{\"level1\": {\n  \"a.py\": {\"mean\": 1.0,}\n}}\n";
  const auto r = kbench("import-baselines " + bad + " --db " + ::testing::TempDir() + "kb-bad.db");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("kbench-bad.json:2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 2, column"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(":0:"), std::string::npos) << r.err;
}

TEST(CliContract, ShowNamesTheVersionOnce) {
  const std::string db = ::testing::TempDir() + "kb-show-" + std::to_string(::getpid()) + ".db";
  const auto g = kbench("generate --problems relu_4096x393216 --db " + db);
  ASSERT_EQ(g.code, 0) << g.err;
  const auto r = kbench("show 1 --db " + db);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto at = r.out.find("  kbench ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  const auto commit = line.find("(commit ");
  ASSERT_NE(commit, std::string::npos) << line;
  EXPECT_EQ(line.find("(commit ", commit + 1), std::string::npos) << line;
  EXPECT_EQ(line.find(") ("), std::string::npos) << line;
}

TEST(CliContract, DocsCliMdIsWhatTheDefinitionsGenerate) {
  const auto r = kbench("cli-reference");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream f(std::string(KB_SOURCE_DIR) + "/docs/cli.md");
  ASSERT_TRUE(f) << "docs/cli.md is missing";
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), r.out) << "docs/cli.md is out of date: regenerate it with "
                                "`build/bin/kbench cli-reference > docs/cli.md`";
  for (const char* cmd : {"## kbench run", "## kbench eval", "## kbench report",
                          "## kbench compare", "## Exit codes"})
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
}

} // namespace
