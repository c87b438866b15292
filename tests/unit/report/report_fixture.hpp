// A small, hand-computable results database shared by the report unit, golden and e2e tests.
// Expected figures (review speedup 10):
//   vllm/kevin: 4 problems, 9 evaluated attempts, 6 compiled, 5 correct; best speedups
//     matmul 1.25, softmax 0.5, conv_relu none, layernorm 1.5 (a 20x kernel is held for review);
//     fast_0 3/4, fast_0.5 2/4 (0.5 ties), fast_0.8 2/4, fast_1 2/4, fast_1.5 0/4 (ties),
//     fast_2 0/4; geomean (1.25*0.5*1.5)^(1/3); pass@1 (2/3 + 1/2 + 0 + 1)/4, pass@2 3/4.
//   openai/o3: 2 problems, best speedups matmul 0.8, softmax none; fast_0.8 0 (ties).
#pragma once

#include <string>

#include "store.hpp"

namespace kb::test {

inline TimingStats fixture_timing(double median_ms, int n = 8) {
  TimingStats t;
  t.median_ms = t.mean_ms = t.min_ms = t.host_median_ms = median_ms;
  t.stderr_ms = median_ms * 0.001;
  t.samples = n;
  t.stop_reason = "converged";
  for (int i = 0; i < n; ++i)
    t.samples_ms.push_back(median_ms * (1.0 + 0.001 * (i - n / 2)));
  return t;
}

inline const char* k_injected_idea =
    "<script>document.body.setAttribute('data-pwned','1')</script> fuse | \"pipes\", commas";

inline void build_report_fixture(const std::string& path) {
  using namespace kb::store;
  Store s(path);
  RunInfo info;
  info.command = "kbench run --suite fixture";
  info.gpu_name = "NVIDIA H100 80GB HBM3";
  info.kbench_version = "0.1.0";
  info.git_commit = "abc123";
  info.protocol = kb::Protocol::kbench;
  int64_t run = s.begin_run(info);

  auto problem = [&](const std::string& id, int level, const std::string& ref) {
    Problem p;
    p.id = id;
    p.level = level;
    p.name = id;
    p.content_hash = "h-" + id;
    if (!ref.empty())
      p.provenance = {"kernelbench", "v0.1", ref};
    s.upsert_problem(p);
  };
  problem("l1/matmul", 1, "L1/1 1_Square_matrix_multiplication_");
  problem("l1/softmax", 1, "");
  problem("l1/layernorm", 1, "");
  problem("l2/conv_relu", 2, "");
  s.record_external_baseline({"l1/1_square_matrix_multiplication_", "pytorch-eager",
                              "NVIDIA H100 80GB HBM3", 2.66, 0.02, 2.65, 2.86, 100, "fixture"});
  s.record_external_baseline({"l1/1_square_matrix_multiplication_", "torch-compile",
                              "NVIDIA H100 80GB HBM3", 2.67, 0.05, 2.66, 3.18, 100, "fixture"});

  int64_t kevin = s.upsert_model("vllm", "kevin", "{}");
  int64_t o3 = s.upsert_model("openai", "o3", "{}");

  int call_no = 0;
  auto attempt = [&](int64_t model, const std::string& problem_id, int round, Outcome o,
                     double cand_ms, double base_ms, const std::string& idea, uint32_t flags = 0,
                     double roofline = 0.0) {
    Attempt a;
    a.llm_call =
        LlmCall{run, model, problem_id, "req" + std::to_string(++call_no), 1000, 500, 2.0, "ok",
                "",  0.01,  "answer"};
    a.candidate = Candidate{run,   problem_id,   model, "refine",
                            round, std::nullopt, idea,  "// kernel " + std::to_string(call_no)};
    EvalResult r;
    r.outcome = o;
    r.protocol = kb::Protocol::kbench;
    r.flags = flags;
    r.compile_s = 1.0;
    if (o == Outcome::correct) {
      r.candidate_time = fixture_timing(cand_ms);
      r.baseline_time = fixture_timing(base_ms);
      r.speedup = base_ms / cand_ms;
      r.roofline_pct = roofline;
    } else {
      r.message = std::string(outcome_name(o)) + " in fixture";
    }
    a.evaluation = r;
    s.record_attempt(a);
  };
  // vllm/kevin
  attempt(kevin, "l1/matmul", 0, Outcome::correct, 2.0, 2.0, "tile 64x64", 0, 40.0);
  attempt(kevin, "l1/matmul", 1, Outcome::correct, 1.6, 2.0, "double buffering", 0, 50.0);
  attempt(kevin, "l1/matmul", 1, Outcome::compile_error, 0, 0, "tensor cores");
  attempt(kevin, "l1/softmax", 0, Outcome::mismatch, 0, 0, "one pass");
  attempt(kevin, "l1/softmax", 0, Outcome::correct, 4.0, 2.0, "two pass");
  attempt(kevin, "l2/conv_relu", 0, Outcome::compile_error, 0, 0, "implicit gemm");
  attempt(kevin, "l2/conv_relu", 1, Outcome::no_code, 0, 0, "");
  attempt(kevin, "l1/layernorm", 0, Outcome::correct, 0.1, 2.0, "skip the work",
          flag_speedup_threshold | flag_above_roofline, 300.0);
  attempt(kevin, "l1/layernorm", 1, Outcome::correct, 2.0 / 1.5, 2.0, k_injected_idea, 0, 60.0);
  // openai/o3
  attempt(o3, "l1/matmul", 0, Outcome::correct, 2.5, 2.0, "cublas-like tiling", 0, 30.0);
  attempt(o3, "l1/softmax", 0, Outcome::runtime_error, 0, 0, "warp per row");
  s.record_baseline_timing(run, "l1/matmul", fixture_timing(2.0));
  s.end_run(run, "completed");
}

} // namespace kb::test
