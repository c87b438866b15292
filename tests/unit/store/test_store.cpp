// Unit tests of the results store: schema, migrations from v1, writes and queries, merge, bad
// files, and durability of attempts under SIGKILL.
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

#include "store.hpp"

namespace fs = std::filesystem;
using namespace kb;
using namespace kb::store;

namespace {

using kb::test::TempDir;

Problem make_problem(const std::string& id, int level = 1) {
  Problem p;
  p.id = id;
  p.level = level;
  p.name = id;
  p.content_hash = "hash-" + id;
  p.flops = 1e9;
  p.min_bytes = 1e6;
  return p;
}

TimingStats make_timing(double median, int n = 20) {
  TimingStats t;
  t.median_ms = t.mean_ms = t.min_ms = t.host_median_ms = median;
  t.stderr_ms = 0.001;
  t.samples = n;
  t.stop_reason = "converged";
  for (int i = 0; i < n; ++i)
    t.samples_ms.push_back(median + 0.001 * (i % 5));
  return t;
}

EvalResult make_eval(Outcome o, double cand_ms, double base_ms) {
  EvalResult r;
  r.outcome = o;
  r.protocol = kb::Protocol::kbench;
  if (o == Outcome::correct) {
    r.candidate_time = make_timing(cand_ms);
    r.baseline_time = make_timing(base_ms);
    r.speedup = base_ms / cand_ms;
    r.roofline_pct = 42.0;
  } else {
    r.message = "nvcc: error: expected ';'";
  }
  r.library_calls = {"cublasSgemm_v2"};
  return r;
}

RunInfo make_run_info() {
  RunInfo i;
  i.command = "kbench run --suite l1";
  i.config_json = R"({"suite":"l1"})";
  i.gpu_name = "NVIDIA H100 80GB HBM3";
  i.protocol = kb::Protocol::kbench;
  return i;
}

int64_t count(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
  int64_t n = -1;
  if (sqlite3_step(s) == SQLITE_ROW)
    n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

} // namespace

TEST(StoreSchema, CreatesCurrentVersionWithWal) {
  TempDir d;
  Store s(d.file("a.db"));
  EXPECT_EQ(s.schema_version(), k_schema_version);
  EXPECT_EQ(s.integrity_check(), "ok");
  EXPECT_EQ(count(d.file("a.db"), "PRAGMA user_version"), k_schema_version);
  sqlite3* db = nullptr;
  sqlite3_open(d.file("a.db").c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(StoreSchema, NoColumnForSecrets) {
  TempDir d;
  Store s(d.file("a.db"));
  std::string cols;
  sqlite3* db = nullptr;
  sqlite3_open(d.file("a.db").c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT group_concat(p.name) FROM sqlite_master m, "
                     "pragma_table_info(m.name) p WHERE m.type = 'table'",
                     -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  cols = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  EXPECT_NE(cols.find("request_hash"), std::string::npos);
  EXPECT_EQ(cols.find("key"), cols.find("key,")) << cols; // only meta.key
  EXPECT_EQ(cols.find("api"), std::string::npos) << cols;
  EXPECT_EQ(cols.find("secret"), std::string::npos) << cols;
  EXPECT_EQ(cols.find("token,"), std::string::npos) << cols;
}

TEST(StoreSchema, MigratesFrozenV1Database) {
  TempDir d;
  std::string path = d.file("v1.db");
  {
    std::string sql = read_file(std::string(KB_SOURCE_DIR) + "/tests/unit/store/v1_database.sql");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_close(db);
  }
  ASSERT_EQ(count(path, "PRAGMA user_version"), 1);
  {
    // Read-only open of an old database works and migrates nothing.
    Store ro(path, {.read_only = true});
    EXPECT_EQ(ro.schema_version(), 1);
  }
  Store s(path);
  EXPECT_EQ(s.schema_version(), k_schema_version);
  EXPECT_EQ(s.integrity_check(), "ok");
  auto runs = s.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].uuid.size(), 32u);
  EXPECT_EQ(runs[0].status, "completed");
  EXPECT_EQ(runs[0].info.gpu_name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(runs[0].candidates, 1);
  auto at = s.attempts({.with_samples = true});
  ASSERT_EQ(at.size(), 1u);
  EXPECT_TRUE(at[0].evaluated);
  EXPECT_EQ(at[0].eval.outcome, Outcome::correct);
  EXPECT_DOUBLE_EQ(at[0].eval.speedup, 1.25);
  EXPECT_DOUBLE_EQ(at[0].eval.roofline_pct, 0.0); // column added by v2 with its default
  EXPECT_EQ(at[0].tokens_out, 2000);
  // v2 tables are usable.
  s.record_calibration(runs[0].id, GpuCeilings{"H100", 3000, 51.6, 400, 800, 800, true});
  EXPECT_TRUE(s.calibration(runs[0].id).has_value());
  EXPECT_EQ(s.find_cached_response("req1")->response_text, "answer");
}

TEST(StoreSchema, StepwiseMigrationFromV1KeepsRows) {
  TempDir d;
  std::string path = d.file("a.db");
  {
    Store s(path, {.max_schema_version = 1});
    EXPECT_EQ(s.schema_version(), 1);
  }
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  ASSERT_EQ(
      sqlite3_exec(db, "INSERT INTO runs(command) VALUES ('a'), ('b')", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  Store s(path);
  auto runs = s.runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_NE(runs[0].uuid, runs[1].uuid);
}

TEST(StoreErrors, BadFilesNameThePath) {
  TempDir d;
  std::string text = d.file("notes.txt");
  std::ofstream(text) << "this is not a database, just some text that is long enough to fail\n";
  try {
    Store s(text);
    FAIL() << "opened a text file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
  try {
    Store s(d.file("missing.db"), {.read_only = true});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.db"), std::string::npos);
  }
  // A SQLite database of another application.
  std::string other = d.file("other.db");
  sqlite3* db = nullptr;
  sqlite3_open(other.c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_THROW(Store{other}, Error);
  // A database from a newer kbench.
  std::string newer = d.file("newer.db");
  { Store s(newer); }
  sqlite3_open(newer.c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  try {
    Store s(newer);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos);
  }
}

TEST(StoreWrites, AttemptRoundTrip) {
  TempDir d;
  Store s(d.file("a.db"));
  int64_t run = s.begin_run(make_run_info());
  s.upsert_problem(make_problem("l1/softmax"));
  int64_t m = s.upsert_model("vllm", "cognition-ai/Kevin-32B", R"({"temperature":0.7})");
  EXPECT_EQ(m, s.upsert_model("vllm", "cognition-ai/Kevin-32B", R"({"temperature":0.7})"));
  EXPECT_NE(m, s.upsert_model("vllm", "cognition-ai/Kevin-32B", R"({"temperature":0})"));

  Attempt a;
  a.llm_call = LlmCall{run, m, "l1/softmax", "req-abc", 1200, 3400, 9.5, "ok", "", 0.02, "resp"};
  a.candidate = Candidate{
      run, "l1/softmax", m, "refine", 2, std::nullopt, "use warp shuffles", "__global__ void k(){}",
      "",  std::nullopt};
  EvalResult r = make_eval(Outcome::mismatch, 0, 0);
  r.mismatch = MismatchInfo{"y", 1, "normal", 0.5, 0.2, 10, 3, 0, 0, "values"};
  r.flags = flag_noisy | flag_library_calls;
  a.evaluation = r;
  auto ids = s.record_attempt(a);
  ASSERT_TRUE(ids.llm_call_id && ids.evaluation_id);

  auto rows = s.attempts({.with_source = true, .with_samples = true});
  ASSERT_EQ(rows.size(), 1u);
  const auto& row = rows[0];
  EXPECT_EQ(row.idea, "use warp shuffles");
  EXPECT_EQ(row.round, 2);
  EXPECT_EQ(row.source, "__global__ void k(){}");
  EXPECT_EQ(row.source_hash, content_hash("__global__ void k(){}"));
  EXPECT_EQ(row.eval.outcome, Outcome::mismatch);
  ASSERT_TRUE(row.eval.mismatch);
  EXPECT_EQ(row.eval.mismatch->mismatch_count, 10);
  EXPECT_EQ(row.eval.flags, flag_noisy | flag_library_calls);
  EXPECT_EQ(row.eval.library_calls, std::vector<std::string>{"cublasSgemm_v2"});
  EXPECT_EQ(row.tokens_in, 1200);
  EXPECT_EQ(row.tokens_out, 3400);
  EXPECT_EQ(row.level, 1);

  // Correct evaluation with raw samples.
  Candidate c2 = a.candidate;
  c2.parent_id = ids.candidate_id;
  int64_t cid = s.add_candidate(c2);
  s.record_evaluation(cid, make_eval(Outcome::correct, 1.0, 2.0));
  auto rows2 = s.attempts({.problem_id = "l1/softmax", .with_samples = true});
  ASSERT_EQ(rows2.size(), 2u);
  EXPECT_EQ(rows2[1].parent_id, ids.candidate_id);
  ASSERT_TRUE(rows2[1].eval.candidate_time);
  EXPECT_EQ(rows2[1].eval.candidate_time->samples_ms, make_timing(1.0).samples_ms);
  EXPECT_DOUBLE_EQ(rows2[1].eval.speedup, 2.0);
  EXPECT_DOUBLE_EQ(rows2[1].eval.roofline_pct, 42.0);
  auto without = s.attempts({});
  EXPECT_TRUE(without[1].eval.candidate_time->samples_ms.empty());

  EXPECT_EQ(s.attempts_done(run, "l1/softmax", m), 2);
  EXPECT_EQ((s.attempt_counts(run)[{"l1/softmax", m}]), 2);
  EXPECT_EQ(s.attempts_done(run, "l1/other", m), 0);

  auto cached = s.find_cached_response("req-abc");
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->response_text, "resp");
  EXPECT_FALSE(s.find_cached_response("req-missing"));

  s.record_baseline_timing(run, "l1/softmax", make_timing(2.0));
  auto bases = s.baseline_timings({run});
  ASSERT_EQ(bases.size(), 1u);
  EXPECT_EQ(bases[0].source, "cublas/cudnn");
  EXPECT_EQ(bases[0].time.samples_ms.size(), 20u);

  s.end_run(run, "completed");
  auto rr = s.run(run);
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->status, "completed");
  EXPECT_FALSE(rr->ended_at.empty());
  s.resume_run(run);
  EXPECT_EQ(s.run(run)->status, "running");
  EXPECT_THROW(s.end_run(999), Error);
}

TEST(StoreWrites, FailedAttemptWritesNothing) {
  TempDir d;
  Store s(d.file("a.db"));
  int64_t run = s.begin_run(make_run_info());
  int64_t m = s.upsert_model("p", "m", "");
  Attempt a;
  a.llm_call = LlmCall{run, m, "l1/x", "h", 1, 1, 1, "ok", "", 0, "r"};
  a.candidate = Candidate{run, "l1/x", 999999 /* no such model: FK fails */, "oneshot"};
  a.evaluation = make_eval(Outcome::correct, 1, 1);
  EXPECT_THROW(s.record_attempt(a), Error);
  EXPECT_EQ(count(d.file("a.db"), "SELECT count(*) FROM llm_calls"), 0);
  EXPECT_EQ(count(d.file("a.db"), "SELECT count(*) FROM candidates"), 0);
}

TEST(StoreWrites, TransactionRollsBackWithoutCommit) {
  TempDir d;
  Store s(d.file("a.db"));
  {
    Store::Transaction tx(s);
    s.begin_run(make_run_info());
  }
  EXPECT_TRUE(s.runs().empty());
  {
    Store::Transaction tx(s);
    s.begin_run(make_run_info());
    tx.commit();
  }
  EXPECT_EQ(s.runs().size(), 1u);
}

TEST(StoreBaselines, ImportsKernelBenchTimingJson) {
  TempDir d;
  Store s(d.file("a.db"));
  const std::string h100 =
      std::string(KB_SOURCE_DIR) + "/data/kernelbench-timings/H100_Modal/baseline_time_torch.json";
  auto sum = s.import_kernelbench_timings(h100, "pytorch-eager");
  EXPECT_EQ(sum.imported, 250);
  EXPECT_EQ(sum.hardware, "NVIDIA H100 80GB HBM3");
  auto rows = s.external_baselines();
  auto it = std::find_if(rows.begin(), rows.end(), [](const auto& r) {
    return r.baseline.problem_key == "l1/1_square_matrix_multiplication_";
  });
  ASSERT_NE(it, rows.end());
  EXPECT_DOUBLE_EQ(it->baseline.time_ms, 2.66);
  EXPECT_EQ(it->baseline.num_trials, 100);
  // Importing again replaces, never duplicates.
  s.import_kernelbench_timings(h100, "pytorch-eager");
  EXPECT_EQ(s.external_baselines().size(), 250u);
}

TEST(StoreBaselines, EveryShippedTimingProfileImports) {
  namespace fs = std::filesystem;
  int files = 0;
  for (const auto& dir :
       fs::directory_iterator(std::string(KB_SOURCE_DIR) + "/data/kernelbench-timings")) {
    if (!dir.is_directory())
      continue;
    for (const char* name :
         {"baseline_time_torch.json", "baseline_time_torch_compile_inductor_default.json"}) {
      TempDir d;
      Store s(d.file("a.db"));
      const auto sum = s.import_kernelbench_timings((dir.path() / name).string(), "");
      EXPECT_GE(sum.imported, 200) << dir.path() << "/" << name;
      EXPECT_FALSE(sum.hardware.empty()) << dir.path() << "/" << name;
      // T4 published one null entry per file (a problem that did not run there): skipped.
      EXPECT_EQ(sum.unmeasured.size(), dir.path().filename() == "T4_modal" ? 1u : 0u)
          << dir.path() << "/" << name;
      ++files;
    }
  }
  EXPECT_EQ(files, 16); // 8 hardware profiles x (eager, torch.compile)
}

TEST(StoreBaselines, ImportRejectsBadJsonNamingFileAndField) {
  TempDir d;
  Store s(d.file("a.db"));
  std::string bad = d.file("bad.json");
  std::ofstream(bad) << R"({"level1": {"1_x.py": {"std": 1}}})";
  try {
    s.import_kernelbench_timings(bad, "pytorch-eager");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), bad);
    EXPECT_EQ(e.field(), "level1.1_x.py");
  }
  std::ofstream(d.file("broken.json")) << "{ nope";
  EXPECT_THROW(s.import_kernelbench_timings(d.file("broken.json"), "x"), InputError);
  EXPECT_TRUE(s.external_baselines().empty());
}

TEST(StoreBaselines, ProblemKeysForKernelBenchMirrors) {
  ProblemRow p;
  p.id = "l1/matmul_square_4096";
  p.level = 1;
  p.provenance_source = "kernelbench";
  p.provenance_ref = "L1/1 1_Square_matrix_multiplication_";
  auto keys = p.baseline_keys();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[1], "l1/1_square_matrix_multiplication_");
}

TEST(StoreMerge, ShardsMergeWithoutDuplicatesAndKeepProvenance) {
  TempDir d;
  auto fill = [](const std::string& path, const std::string& problem, int n) {
    Store s(path);
    s.upsert_problem(make_problem(problem));
    int64_t run = s.begin_run(make_run_info());
    int64_t m = s.upsert_model("vllm", "kevin", "{}");
    std::optional<int64_t> parent;
    for (int i = 0; i < n; ++i) {
      Attempt a;
      a.llm_call = LlmCall{run, m, problem, "h" + problem + std::to_string(i), 10, 20, 1, "ok"};
      a.candidate = Candidate{run, problem, m, "refine", i, parent, "idea", "src" + problem};
      a.evaluation = make_eval(Outcome::correct, 1.0 + i, 2.0);
      parent = s.record_attempt(a).candidate_id;
    }
    s.record_baseline_timing(run, problem, make_timing(2.0));
    s.record_calibration(run, GpuCeilings{"H100", 3000, 60, 400, 800, 800, true});
    s.end_run(run);
  };
  fill(d.file("a.db"), "l1/a", 3);
  fill(d.file("b.db"), "l1/b", 4);
  Store out(d.file("out.db"));
  auto s1 = out.merge_from(d.file("a.db"));
  auto s2 = out.merge_from(d.file("b.db"));
  EXPECT_EQ(s1.runs_copied, 1);
  EXPECT_EQ(s2.candidates, 4);
  EXPECT_EQ(s2.evaluations, 4);
  // Merging again copies nothing.
  auto s3 = out.merge_from(d.file("a.db"));
  EXPECT_EQ(s3.runs_copied, 0);
  EXPECT_EQ(s3.runs_skipped, 1);
  auto runs = out.runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].origin, d.file("a.db") + "#1");
  EXPECT_EQ(runs[1].origin, d.file("b.db") + "#1");
  EXPECT_EQ(out.models().size(), 1u);
  EXPECT_EQ(out.problems().size(), 2u);
  auto rows = out.attempts({.run_ids = {runs[1].id}});
  ASSERT_EQ(rows.size(), 4u);
  // Parent links point inside the merged database.
  EXPECT_EQ(rows[1].parent_id, rows[0].candidate_id);
  EXPECT_EQ(rows[3].eval.outcome, Outcome::correct);
  EXPECT_EQ(rows[3].tokens_out, 20);
  EXPECT_EQ(out.baseline_timings().size(), 2u);
  EXPECT_TRUE(out.calibration(runs[1].id).has_value());
  EXPECT_EQ(out.integrity_check(), "ok");
  // Merge of a merged database into a fresh one keeps the first origin.
  Store out2(d.file("out2.db"));
  out2.merge_from(d.file("out.db"));
  EXPECT_EQ(out2.runs()[0].origin, d.file("a.db") + "#1");
  EXPECT_EQ(out2.runs()[0].uuid, runs[0].uuid);
  EXPECT_THROW(out.merge_from(d.file("out.db")), Error);
}

TEST(StoreMerge, MigratesOldSourceWithoutTouchingIt) {
  TempDir d;
  std::string v1 = d.file("v1.db");
  {
    std::string sql = read_file(std::string(KB_SOURCE_DIR) + "/tests/unit/store/v1_database.sql");
    sqlite3* db = nullptr;
    sqlite3_open(v1.c_str(), &db);
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  Store out(d.file("out.db"));
  auto sum = out.merge_from(v1);
  EXPECT_EQ(sum.runs_copied, 1);
  EXPECT_EQ(sum.evaluations, 1);
  EXPECT_EQ(count(v1, "PRAGMA user_version"), 1);
}

// A child process writes attempts in a loop; it is SIGKILLed at random moments. Every time the
// database must pass integrity_check, hold only whole attempts, and accept more writes (resume).
TEST(StoreDurability, KillNineDuringWritesLosesAtMostTheAttemptInFlight) {
  TempDir d;
  std::string path = d.file("kill.db");
  int64_t run = 0, model = 0;
  {
    Store s(path);
    s.upsert_problem(make_problem("l1/k"));
    run = s.begin_run(make_run_info());
    model = s.upsert_model("p", "m", "{}");
  }
  std::mt19937 rng(1234);
  int64_t previous = 0;
  for (int round = 0; round < 6; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        Store s(path);
        s.resume_run(run);
        for (int i = 0;; ++i) {
          Attempt a;
          a.llm_call = LlmCall{
              run, model, "l1/k", "h", 100, 200, 1.0, "ok", "", 0.01, std::string(2000, 'x')};
          a.candidate = Candidate{run, "l1/k",       model,  "oneshot",
                                  i,   std::nullopt, "idea", std::string(4000, 'k')};
          EvalResult r = make_eval(Outcome::correct, 1.0, 2.0);
          r.candidate_time->samples_ms.assign(500, 1.0);
          a.evaluation = r;
          s.record_attempt(a);
        }
      } catch (...) {
        _exit(3);
      }
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(30, 250)(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited early with status " << status;
    Store s(path);
    EXPECT_EQ(s.integrity_check(), "ok");
    int64_t cands = count(path, "SELECT count(*) FROM candidates");
    EXPECT_EQ(cands, count(path, "SELECT count(*) FROM evaluations"));
    EXPECT_EQ(cands, count(path, "SELECT count(*) FROM llm_calls"));
    EXPECT_EQ(0, count(path, "SELECT count(*) FROM candidates WHERE llm_call_id IS NULL"));
    EXPECT_GE(cands, previous);
    EXPECT_EQ(s.attempts_done(run, "l1/k", model), cands);
    previous = cands;
  }
  EXPECT_GT(previous, 0);
}

// One writing process per run: a second one is refused while the holder lives, and takes over
// once the holder died (SIGKILL) or stopped beating.
TEST(StoreLease, SecondWriterRefusedWhileHolderLivesAndTakesOverAfterKillNine) {
  TempDir d;
  std::string path = d.file("lease.db");
  int64_t run = 0;
  {
    Store s(path);
    run = s.begin_run(make_run_info());
    EXPECT_FALSE(s.acquire_run_lease(run, "me"));
    EXPECT_FALSE(s.acquire_run_lease(run, "me")); // the holder again
    EXPECT_TRUE(s.renew_run_lease(run, "me"));
    s.release_run_lease(run, "me");
    EXPECT_FALSE(s.renew_run_lease(run, "me"));
  }
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Store s(path);
    const bool taken = !s.acquire_run_lease(run, "child");
    const char c = taken ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    for (;;)
      ::pause();
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  Store s(path);
  auto holder = s.acquire_run_lease(run, "parent");
  ASSERT_TRUE(holder);
  EXPECT_EQ(holder->pid, pid);
  EXPECT_LT(holder->heartbeat_age_s, 60.0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_FALSE(s.acquire_run_lease(run, "parent"));
  // A holder whose heartbeat is older than the limit is stale too, even when its pid lives.
  {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "UPDATE run_leases SET holder = 'other', heartbeat_at = heartbeat_at - 120",
                 nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  EXPECT_FALSE(s.renew_run_lease(run, "parent")); // taken over: the old holder learns it
  EXPECT_FALSE(s.acquire_run_lease(run, "parent", 60.0));
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(StoreCalls, TallyCountsUnansweredProviderFailuresOnly) {
  TempDir d;
  Store s(d.file("t.db"));
  const int64_t run = s.begin_run(make_run_info());
  const int64_t model = s.upsert_model("p", "m", "{}");
  auto call = [&](std::string hash, std::string status, std::string cls, int64_t in) {
    LlmCall c{
        run, model, "l1/k", std::move(hash), in, 2 * in, 0.1, std::move(status), std::move(cls),
        0.5, "text"};
    s.record_llm_call(c);
  };
  call("a", "ok", "", 10);
  call("b", "rate_limited", "http_429", 0);
  call("c", "timeout", "read", 0);
  call("c", "ok", "", 10); // answered on resume: no longer a failure
  call("d", "http_error", "replay_not_found", 0);
  call("e", "malformed", "json", 3);
  call("", "budget", "run_tokens", 0);
  call("f", "ok", "cache_hit", 100);
  const CallTally t = s.call_tally(run);
  EXPECT_EQ(t.answered, 3);
  EXPECT_EQ(t.provider_failures, 2);
  EXPECT_EQ(t.failures_by_class.at("rate_limited"), 1);
  EXPECT_EQ(t.failures_by_class.at("malformed"), 1);
  EXPECT_EQ(t.tokens_in, 23);
  EXPECT_EQ(t.tokens_out, 46);
}

TEST(StoreSamples, EncodeDecodeRoundTrip) {
  std::vector<double> v{0.0, -1.5, 1e-300, 3.14159, 1e300};
  EXPECT_EQ(decode_samples(encode_samples(v)), v);
  EXPECT_TRUE(decode_samples("").empty());
}
