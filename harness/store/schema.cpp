// The kbench database schema as forward migrations. Never edit a shipped migration: add one.
#include "schema.hpp"

namespace kb::store::detail {

namespace {

// v1: runs, problems, models, LLM calls, candidates, evaluations, baseline timings.
constexpr std::string_view k_v1 = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta(key, value) VALUES ('created_by', 'kbench');
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  ended_at TEXT,
  status TEXT NOT NULL DEFAULT 'running',
  command TEXT NOT NULL DEFAULT '',
  config_json TEXT NOT NULL DEFAULT '{}',
  kbench_version TEXT NOT NULL DEFAULT '',
  git_commit TEXT NOT NULL DEFAULT '',
  gpu_name TEXT NOT NULL DEFAULT '',
  gpu_uuid TEXT NOT NULL DEFAULT '',
  driver_version TEXT NOT NULL DEFAULT '',
  cuda_version TEXT NOT NULL DEFAULT '',
  cublas_version TEXT NOT NULL DEFAULT '',
  cudnn_version TEXT NOT NULL DEFAULT '',
  nvcc_version TEXT NOT NULL DEFAULT '',
  host TEXT NOT NULL DEFAULT '',
  protocol TEXT NOT NULL DEFAULT ''
);
CREATE TABLE problems (
  id TEXT PRIMARY KEY,
  level INTEGER NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  content_hash TEXT NOT NULL DEFAULT '',
  provenance_source TEXT NOT NULL DEFAULT '',
  provenance_version TEXT NOT NULL DEFAULT '',
  provenance_ref TEXT NOT NULL DEFAULT '',
  flops REAL NOT NULL DEFAULT 0,
  min_bytes REAL NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  provider TEXT NOT NULL,
  model_id TEXT NOT NULL,
  settings_json TEXT NOT NULL DEFAULT '{}',
  UNIQUE (provider, model_id, settings_json)
);
CREATE TABLE llm_calls (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  model_id INTEGER NOT NULL REFERENCES models(id),
  problem_id TEXT NOT NULL DEFAULT '',
  request_hash TEXT NOT NULL DEFAULT '',
  tokens_in INTEGER NOT NULL DEFAULT 0,
  tokens_out INTEGER NOT NULL DEFAULT 0,
  latency_s REAL NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT '',
  error_class TEXT NOT NULL DEFAULT '',
  cost_usd REAL NOT NULL DEFAULT 0,
  response_text TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX llm_calls_request ON llm_calls(request_hash);
CREATE INDEX llm_calls_run ON llm_calls(run_id);
CREATE TABLE candidates (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  problem_id TEXT NOT NULL,
  problem_hash TEXT NOT NULL DEFAULT '',
  model_id INTEGER NOT NULL REFERENCES models(id),
  strategy TEXT NOT NULL DEFAULT '',
  round INTEGER NOT NULL DEFAULT 0,
  parent_id INTEGER REFERENCES candidates(id),
  idea TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT '',
  source_hash TEXT NOT NULL DEFAULT '',
  llm_call_id INTEGER REFERENCES llm_calls(id),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX candidates_run ON candidates(run_id, problem_id, model_id);
CREATE TABLE evaluations (
  id INTEGER PRIMARY KEY,
  candidate_id INTEGER NOT NULL UNIQUE REFERENCES candidates(id),
  outcome TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  flags INTEGER NOT NULL DEFAULT 0,
  protocol TEXT NOT NULL DEFAULT '',
  speedup REAL NOT NULL DEFAULT 0,
  cand_median_ms REAL, cand_mean_ms REAL, cand_stderr_ms REAL, cand_median_stderr_ms REAL,
  cand_min_ms REAL, cand_host_median_ms REAL, cand_samples INTEGER, cand_stop_reason TEXT,
  cand_samples_ms BLOB,
  base_median_ms REAL, base_mean_ms REAL, base_stderr_ms REAL, base_median_stderr_ms REAL,
  base_min_ms REAL, base_host_median_ms REAL, base_samples INTEGER, base_stop_reason TEXT,
  base_samples_ms BLOB,
  mismatch_json TEXT,
  compile_log TEXT NOT NULL DEFAULT '',
  compile_s REAL NOT NULL DEFAULT 0,
  start_s REAL NOT NULL DEFAULT 0,
  check_s REAL NOT NULL DEFAULT 0,
  time_s REAL NOT NULL DEFAULT 0,
  compile_cached INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE baseline_timings (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  problem_id TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT 'cublas/cudnn',
  median_ms REAL NOT NULL, mean_ms REAL NOT NULL, stderr_ms REAL NOT NULL,
  median_stderr_ms REAL NOT NULL, min_ms REAL NOT NULL, host_median_ms REAL NOT NULL,
  samples INTEGER NOT NULL, stop_reason TEXT NOT NULL DEFAULT '',
  samples_ms BLOB,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX baseline_timings_run ON baseline_timings(run_id, problem_id);
)sql";

// v2: run identity and provenance for merging shards, roofline % and library calls on
// evaluations, external baselines (PyTorch eager, torch.compile) and calibration figures.
constexpr std::string_view k_v2 = R"sql(
ALTER TABLE runs ADD COLUMN uuid TEXT;
ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN shard TEXT NOT NULL DEFAULT '';
UPDATE runs SET uuid = lower(hex(randomblob(16))) WHERE uuid IS NULL;
CREATE UNIQUE INDEX runs_uuid ON runs(uuid);
ALTER TABLE evaluations ADD COLUMN roofline_pct REAL NOT NULL DEFAULT 0;
ALTER TABLE evaluations ADD COLUMN library_calls_json TEXT NOT NULL DEFAULT '[]';
CREATE TABLE external_baselines (
  id INTEGER PRIMARY KEY,
  problem_key TEXT NOT NULL,
  source TEXT NOT NULL,
  hardware TEXT NOT NULL DEFAULT '',
  time_ms REAL NOT NULL,
  std_ms REAL NOT NULL DEFAULT 0,
  min_ms REAL NOT NULL DEFAULT 0,
  max_ms REAL NOT NULL DEFAULT 0,
  num_trials INTEGER NOT NULL DEFAULT 0,
  file TEXT NOT NULL DEFAULT '',
  imported_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  UNIQUE (problem_key, source, hardware)
);
CREATE TABLE calibrations (
  run_id INTEGER PRIMARY KEY REFERENCES runs(id),
  gpu_name TEXT NOT NULL DEFAULT '',
  bandwidth_gbs REAL NOT NULL DEFAULT 0,
  fp32_tflops REAL NOT NULL DEFAULT 0,
  tf32_tflops REAL NOT NULL DEFAULT 0,
  fp16_tflops REAL NOT NULL DEFAULT 0,
  bf16_tflops REAL NOT NULL DEFAULT 0,
  measured INTEGER NOT NULL DEFAULT 0
);
)sql";

// v3: one writer per run (the run lease), the request seed and the answer's size before the cap
// on LLM calls.
constexpr std::string_view k_v3 = R"sql(
CREATE TABLE run_leases (
  run_id INTEGER PRIMARY KEY REFERENCES runs(id),
  holder TEXT NOT NULL,
  host TEXT NOT NULL DEFAULT '',
  pid INTEGER NOT NULL DEFAULT 0,
  acquired_at REAL NOT NULL,
  heartbeat_at REAL NOT NULL
);
ALTER TABLE llm_calls ADD COLUMN seed INTEGER;
ALTER TABLE llm_calls ADD COLUMN response_bytes INTEGER NOT NULL DEFAULT 0;
)sql";

} // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> k_all{{1, k_v1}, {2, k_v2}, {3, k_v3}};
  return k_all;
}

} // namespace kb::store::detail
