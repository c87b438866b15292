-- A kbench results database at schema version 1 (frozen): the migration tests start from it.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('created_by','kbench');
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
INSERT INTO runs VALUES(1,'2025-01-01T00:00:00.000Z','2025-01-01T01:00:00.000Z','completed','kbench run --suite l1','{}','','','NVIDIA H100 80GB HBM3','','','','','','','','kbench');
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
INSERT INTO problems VALUES('l1/matmul_square_4096',1,'Square matmul','aaaa','kernelbench','','L1/1 1_Square_matrix_multiplication_',0.0,0.0,'2026-11-24T20:26:22.761Z');
CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  provider TEXT NOT NULL,
  model_id TEXT NOT NULL,
  settings_json TEXT NOT NULL DEFAULT '{}',
  UNIQUE (provider, model_id, settings_json)
);
INSERT INTO models VALUES(1,'vllm','cognition-ai/Kevin-32B','{}');
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
INSERT INTO llm_calls VALUES(1,1,1,'l1/matmul_square_4096','req1',1000,2000,12.5,'ok','',0.0,'answer','2026-11-24T20:26:22.762Z');
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
INSERT INTO candidates VALUES(1,1,'l1/matmul_square_4096','aaaa',1,'oneshot',0,NULL,'','__global__ void k(){}','h1',1,'2026-11-24T20:26:22.762Z');
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
INSERT INTO evaluations VALUES(1,1,'correct','',0,'',1.25,2.0,2.0,0.010000000000000000208,0.010000000000000000208,1.8999999999999999111,2.1000000000000000888,50,'converged',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'',0.0,0.0,0.0,0.0,0,'2026-11-24T20:26:22.762Z');
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
INSERT INTO baseline_timings VALUES(1,1,'l1/matmul_square_4096','cublas/cudnn',2.5,2.5,0.010000000000000000208,0.010000000000000000208,2.3999999999999999111,2.6000000000000000888,50,'',NULL,'2026-11-24T20:26:22.763Z');
CREATE INDEX llm_calls_request ON llm_calls(request_hash);
CREATE INDEX llm_calls_run ON llm_calls(run_id);
CREATE INDEX candidates_run ON candidates(run_id, problem_id, model_id);
CREATE INDEX baseline_timings_run ON baseline_timings(run_id, problem_id);
COMMIT;
PRAGMA user_version=1;
PRAGMA application_id=1801614196;
