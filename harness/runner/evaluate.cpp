// `kbench evaluate`: the second step of the two-step workflow. Every stored candidate of a run
// that has source and no evaluation goes through the evaluation pipeline; the rows are written
// by the run's recorder under the run's lease, like `kbench run`.
#include <filesystem>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "pipeline.hpp"

namespace kb::runner {

EvaluateSummary evaluate_stored(const EvaluateOptions& opts, EvalBackend& backend,
                                const std::atomic<bool>* cancel, const RunHooks& hooks) {
  EvaluateSummary out;
  std::optional<store::RunRow> run;
  {
    store::Store probe(opts.db, store::OpenOptions{.create = false});
    run = probe.run(opts.run_id);
  }
  if (!run)
    throw Error(fmt::format("{}: no run {}", opts.db, opts.run_id));
  detail::RunRecorder recorder(opts.db);
  recorder.acquire_lease(opts.run_id);
  store::Store& s = recorder.with([](store::Store& st) -> store::Store& { return st; });
  const Catalog catalog =
      load_catalog(opts.levels_dir.empty() ? default_levels_dir() : opts.levels_dir);
  std::map<std::string, std::string> stored_hash;
  for (const auto& p : s.problems())
    stored_hash[p.id] = p.content_hash;
  const DoctorReport doctor = backend.doctor();
  const std::vector<int> gpus = detail::gpus_to_use(opts.gpus, doctor, "");
  detail::target_gpus(backend, gpus, doctor);
  std::vector<store::AttemptRow> todo;
  std::map<std::string, int64_t> skipped;
  auto attempts = s.attempts(store::AttemptFilter{.run_ids = {opts.run_id}, .with_source = true});
  // A slice: the shard's share of the run's (problem, model) pairs, over every candidate of the
  // run (evaluated or not), so each copy of the database computes the same slices.
  std::map<int64_t, std::string> label;
  std::set<TaskKey> slice;
  if (opts.slice) {
    for (const auto& m : s.models())
      label[m.id] = m.label;
    std::set<TaskKey> pairs;
    for (const auto& a : attempts)
      pairs.insert({a.problem_id, label[a.model_id]});
    const std::vector<TaskKey> keys(pairs.begin(), pairs.end());
    for (std::size_t i : shard_tasks(keys, *opts.slice))
      slice.insert(keys[i]);
  }
  for (auto& a : attempts) {
    if (a.evaluated || a.source.empty())
      continue;
    if (opts.slice && !slice.count({a.problem_id, label[a.model_id]}))
      continue; // another slice's
    const Problem* p = catalog.find(a.problem_id);
    if (!p) {
      ++skipped[fmt::format("problem {} is not in the catalog", a.problem_id)];
      continue;
    }
    if (stored_hash.count(p->id) && !stored_hash[p->id].empty() &&
        stored_hash[p->id] != p->content_hash) {
      ++skipped[fmt::format("problem {} changed since the candidates were generated",
                            a.problem_id)];
      continue;
    }
    todo.push_back(std::move(a));
  }
  // Roofline ceilings per GPU model (only when there is something to evaluate: resolving may
  // calibrate).
  detail::CeilingsPlan ceilings;
  if (!todo.empty()) {
    ceilings = detail::plan_ceilings(gpus, doctor, opts.calibration_file, opts.db, backend,
                                     opts.calibrate, hooks.log);
    for (const auto& line : ceilings.lines)
      if (hooks.log)
        hooks.log(line);
    out.ceilings = ceilings.lines;
    detail::record_ceilings(s, opts.run_id, ceilings, hooks.log);
  }
  const std::string previous_status = run->status;
  s.resume_run(opts.run_id);
  std::set<std::string> baselines; // problems whose baseline this session recorded
  for (const auto& b : s.baseline_timings({opts.run_id}))
    baselines.insert(b.problem_id);
  // From here on other threads write too: every use of the connection goes through the
  // recorder.
  std::atomic<bool> stop{false};
  recorder.start_heartbeat([&stop] { stop = true; });
  AbandonHandle abandon;
  abandon.set(hooks, [&recorder] { recorder.abandon("interrupted"); });
  detail::PipelineStats stats;
  std::vector<std::future<search::Verdict>> futures;
  std::string failure;
  {
    const Protocol protocol = run->info.protocol;
    detail::EvalPipeline pipeline(
        backend, gpus, ceilings.by_gpu, detail::default_jobs(opts.jobs), protocol, stop,
        [&](detail::EvalJob& job, const EvalResult* r) {
          if (r)
            recorder.with([&](store::Store& st) {
              st.record_evaluation(*job.existing_id, *r);
              // kbench's own baseline, once per problem of the run.
              if (r->baseline_time && baselines.insert(job.problem->id).second)
                st.record_baseline_timing(opts.run_id, job.problem->id, *r->baseline_time);
            });
          return *job.existing_id;
        },
        stats);
    for (const auto& a : todo) {
      detail::EvalJob job;
      job.problem = catalog.find(a.problem_id);
      job.candidate.source = a.source;
      job.existing_id = a.candidate_id;
      futures.push_back(pipeline.submit(std::move(job)));
    }
    const auto t0 = std::chrono::steady_clock::now();
    detail::ProgressTicker ticker(
        cancel, stop,
        [&] {
          Progress p;
          p.candidates = static_cast<int64_t>(todo.size());
          p.evaluated = stats.evaluated;
          p.correct = stats.correct;
          p.evals_queued = stats.queued;
          p.elapsed_s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          return p;
        },
        hooks.progress);
    for (std::size_t i = 0; i < futures.size(); ++i) {
      try {
        const search::Verdict v = futures[i].get();
        if (v.eval) {
          ++out.candidates;
          ++out.outcomes[std::string(outcome_name(v.eval->outcome))];
          if (hooks.log)
            hooks.log(fmt::format("{} candidate {}: {}", todo[i].problem_id, v.candidate_id,
                                  outcome_name(v.eval->outcome)));
        } else {
          ++out.skipped;
        }
      } catch (const std::exception& e) {
        ++out.skipped;
        if (failure.empty())
          failure = e.what();
      }
    }
    pipeline.drain();
    ticker.stop();
    for (const auto& e : pipeline.plumbing_errors())
      out.messages.push_back(
          fmt::format("recorded without evaluation after a harness error: {}", e));
  }
  for (const auto& [msg, n] : skipped) {
    out.skipped += n;
    out.messages.push_back(fmt::format("{} ({} candidates skipped)", msg, n));
  }
  abandon.reset();
  recorder.with([&](store::Store& st) {
    st.end_run(opts.run_id, parse_run_status(previous_status) == RunStatus::running
                                ? std::string(run_status_name(RunStatus::interrupted))
                                : previous_status);
  });
  if (!failure.empty())
    throw Error(fmt::format("evaluating run {} of {} failed: {}", opts.run_id, opts.db, failure));
  return out;
}

} // namespace kb::runner
