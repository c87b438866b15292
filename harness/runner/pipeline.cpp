// The evaluation pipeline (compile pool -> one worker per GPU) and the store-backed journal.
#include <fmt/format.h>

#include "pipeline.hpp"

namespace kb::runner::detail {

ProgressTicker::ProgressTicker(const std::atomic<bool>* cancel, std::atomic<bool>& stop,
                               std::function<Progress()> snapshot,
                               std::function<void(const Progress&)> progress) {
  m_thread = std::thread(
      [this, cancel, &stop, snapshot = std::move(snapshot), progress = std::move(progress)] {
        while (!m_done) {
          if (progress)
            progress(snapshot());
          for (int i = 0; i < 5 && !m_done; ++i) {
            if (cancel && cancel->load())
              stop = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
        }
      });
}

ProgressTicker::~ProgressTicker() {
  stop();
}

void ProgressTicker::stop() {
  m_done = true;
  if (m_thread.joinable())
    m_thread.join();
}

EvalResult no_code_result(const std::string& reason, Protocol protocol) {
  EvalResult r;
  r.outcome = Outcome::no_code;
  r.message = reason.empty() ? "the answer contained no code" : reason;
  r.protocol = protocol;
  return r;
}

EvalResult compile_failure_result(const CompileResult& c, Protocol protocol) {
  EvalResult r;
  r.outcome = Outcome::compile_error;
  r.message = c.message.empty() ? "compilation failed" : c.message;
  r.compile_log = c.log;
  r.compile_s = c.seconds;
  r.compile_cached = c.cached;
  r.protocol = protocol;
  return r;
}

EvalPipeline::EvalPipeline(EvalBackend& backend, const std::vector<int>& gpus,
                           std::map<int, GpuCeilings> ceilings, int jobs, Protocol protocol,
                           std::atomic<bool>& stop, Record record, PipelineStats& stats)
    : m_backend(backend), m_ceilings(std::move(ceilings)), m_protocol(protocol), m_stop(stop),
      m_record(std::move(record)), m_stats(stats) {
  for (int i = 0; i < std::max(1, jobs); ++i)
    m_compile_threads.emplace_back([this] { compile_loop(); });
  for (int g : gpus)
    m_gpu_threads.emplace_back([this, g] { gpu_loop(g); });
}

EvalPipeline::~EvalPipeline() {
  drain();
}

void EvalPipeline::drain() {
  {
    std::lock_guard lock(m_mutex);
    if (m_closing)
      return;
    m_closing = true;
  }
  m_compile_cv.notify_all();
  for (auto& t : m_compile_threads)
    t.join();
  m_gpu_cv.notify_all();
  for (auto& t : m_gpu_threads)
    t.join();
  // No GPU worker is left (none was configured or all failed): whatever waits is recorded.
  for (auto& job : m_gpu_q)
    finish_unevaluated(job);
}

std::string EvalPipeline::failure() const {
  std::lock_guard lock(m_mutex);
  return m_failure;
}

std::vector<std::string> EvalPipeline::plumbing_errors() const {
  std::lock_guard lock(m_mutex);
  return m_plumbing_errors;
}

std::future<search::Verdict> EvalPipeline::submit(EvalJob job) {
  auto f = job.promise.get_future();
  ++m_stats.queued;
  {
    std::lock_guard lock(m_mutex);
    m_compile_q.push_back(std::move(job));
  }
  m_compile_cv.notify_one();
  return f;
}

void EvalPipeline::finish_unevaluated(EvalJob& job) {
  --m_stats.queued;
  try {
    const int64_t id = job.existing_id ? *job.existing_id : m_record(job, nullptr);
    job.promise.set_value(search::Verdict{id, std::nullopt});
  } catch (...) {
    job.promise.set_exception(std::current_exception());
  }
}

void EvalPipeline::fail(EvalJob& job, std::exception_ptr e, const std::string& what) {
  {
    std::lock_guard lock(m_mutex);
    if (m_failure.empty())
      m_failure = what;
  }
  m_stop = true;
  --m_stats.queued;
  try {
    if (!job.existing_id)
      m_record(job, nullptr); // nothing is lost: `kbench evaluate` can finish it later
  } catch (...) {
  }
  job.promise.set_exception(e);
}

void EvalPipeline::compile_loop() {
  for (;;) {
    EvalJob job;
    {
      std::unique_lock lock(m_mutex);
      m_compile_cv.wait(lock, [this] { return m_closing || !m_compile_q.empty(); });
      if (m_compile_q.empty())
        return;
      job = std::move(m_compile_q.front());
      m_compile_q.pop_front();
      ++m_compiling;
    }
    auto done_compiling = [this] {
      std::lock_guard lock(m_mutex);
      --m_compiling;
    };
    if (m_stop) {
      finish_unevaluated(job);
      done_compiling();
      m_gpu_cv.notify_all();
      continue;
    }
    // A harness failure while compiling (a cache write, a temporary directory) is this
    // candidate's: it is tried once more, then recorded without evaluation (`kbench evaluate` or
    // a resume finishes it) and the other candidates go on.
    std::string compile_error;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        job.compiled = m_backend.compile(job.candidate.source);
        compile_error.clear();
        break;
      } catch (const std::exception& e) {
        compile_error = e.what();
      }
    }
    if (!compile_error.empty()) {
      {
        std::lock_guard lock(m_mutex);
        m_plumbing_errors.push_back(compile_error);
      }
      finish_unevaluated(job);
      done_compiling();
      m_gpu_cv.notify_all();
      continue;
    }
    if (!job.compiled.ok) {
      // A compile failure is a verdict: recorded here, no GPU needed.
      const EvalResult r = compile_failure_result(job.compiled, m_protocol);
      try {
        const int64_t id = m_record(job, &r);
        --m_stats.queued;
        ++m_stats.evaluated;
        job.promise.set_value(search::Verdict{id, r});
      } catch (const std::exception& e) {
        fail(job, std::current_exception(), e.what());
      }
      done_compiling();
      m_gpu_cv.notify_all();
      continue;
    }
    {
      std::lock_guard lock(m_mutex);
      m_gpu_q.push_back(std::move(job));
      --m_compiling;
    }
    m_gpu_cv.notify_one();
  }
}

void EvalPipeline::gpu_loop(int gpu) {
  std::unique_ptr<GpuEvaluator> ev;
  for (;;) {
    EvalJob job;
    {
      std::unique_lock lock(m_mutex);
      m_gpu_cv.wait(lock, [this] {
        return !m_gpu_q.empty() || (m_closing && m_compile_q.empty() && m_compiling == 0);
      });
      if (m_gpu_q.empty())
        return;
      job = std::move(m_gpu_q.front());
      m_gpu_q.pop_front();
    }
    if (m_stop) {
      finish_unevaluated(job);
      continue;
    }
    try {
      auto open = [&] {
        auto it = m_ceilings.find(gpu);
        ev = m_backend.open_gpu(gpu, it == m_ceilings.end() ? GpuCeilings{} : it->second);
      };
      if (!ev)
        open();
      EvalResult r;
      try {
        r = ev->evaluate_compiled(*job.problem, job.compiled);
      } catch (const std::exception&) {
        // One more try on a fresh evaluator before the GPU counts as unable to run.
        ev.reset();
        open();
        r = ev->evaluate_compiled(*job.problem, job.compiled);
      }
      r.protocol = m_protocol; // the backend was opened with the run's protocol
      const int64_t id = m_record(job, &r);
      --m_stats.queued;
      ++m_stats.evaluated;
      if (r.outcome == Outcome::correct)
        ++m_stats.correct;
      job.promise.set_value(search::Verdict{id, std::move(r)});
    } catch (const std::exception& e) {
      fail(job, std::current_exception(), fmt::format("GPU {}: {}", gpu, e.what()));
    }
  }
}

// ---------------------------------------------------------------------------------------------

StoreJournal::StoreJournal(RunRecorder& recorder, int64_t run_id,
                           std::map<std::string, int64_t> model_rows,
                           std::map<std::string, const llm::Client*> clients, bool use_cache)
    : m_recorder(recorder), m_run_id(run_id), m_model_rows(std::move(model_rows)),
      m_clients(std::move(clients)), m_use_cache(use_cache) {}

std::map<std::pair<std::string, int64_t>, search::Usage> StoreJournal::load_run_calls() {
  std::lock_guard lock(m_mutex);
  std::map<std::pair<std::string, int64_t>, search::Usage> usage;
  for (auto& row : m_recorder.with([&](store::Store& s) { return s.llm_calls(m_run_id); })) {
    const auto& c = row.call;
    // Stop markers and refusals are not answers; cache hits cost nothing.
    if (c.request_hash.empty() || c.status == "budget")
      continue;
    if (c.error_class != "cache_hit") {
      auto& u = usage[{c.problem_id, c.model_id}];
      u.tokens_in += c.tokens_in;
      u.tokens_out += c.tokens_out;
      u.cost_usd += c.cost_usd;
      ++u.calls;
    }
    m_run_calls[c.request_hash].push_back(row);
  }
  return usage;
}

int64_t StoreJournal::replayed() const {
  std::lock_guard lock(m_mutex);
  return m_replayed;
}

std::string StoreJournal::redact(const std::string& model, const std::string& text) const {
  auto it = m_clients.find(model);
  return it == m_clients.end() ? llm::redact_patterns(text) : it->second->redact(text);
}

std::optional<search::Answer> StoreJournal::lookup(const std::string& model,
                                                   const std::string& problem_id,
                                                   const std::string& request_hash) {
  std::lock_guard lock(m_mutex);
  search::Answer a;
  auto it = m_run_calls.find(request_hash);
  // A request that failed at the provider is asked again (a failure is not an answer); its
  // earlier row stays as the record of the failure.
  while (it != m_run_calls.end() && !it->second.empty() && it->second.front().call.status != "ok" &&
         it->second.front().call.error_class != "replay_not_found")
    it->second.pop_front();
  if (it != m_run_calls.end() && !it->second.empty()) {
    // This run asked exactly this before it was interrupted: replay the record.
    const store::LlmCallRow row = it->second.front();
    it->second.pop_front();
    const auto& c = row.call;
    a.call_id = row.id;
    a.replayed = true;
    a.response.tokens_in = c.tokens_in;
    a.response.tokens_out = c.tokens_out;
    a.response.cost_usd = c.cost_usd;
    a.response.cached = true;
    if (c.status == "ok") {
      auto cached =
          m_recorder.with([&](store::Store& s) { return s.find_cached_response(request_hash); });
      if (!cached)
        return std::nullopt; // cannot happen with an ok row; ask again rather than guess
      a.response.text = cached->response_text;
      a.response.status = llm::ChatStatus::ok;
    } else {
      a.response.status = llm::parse_chat_status(c.status).value_or(llm::ChatStatus::http_error);
      a.response.error_class = c.error_class;
      // Failures keep their (redacted) message in response_text.
      a.response.error_message = "(recorded before the resume) " + c.response_text;
    }
    ++m_replayed;
    return a;
  }
  if (!m_use_cache)
    return std::nullopt;
  auto cached =
      m_recorder.with([&](store::Store& s) { return s.find_cached_response(request_hash); });
  if (!cached)
    return std::nullopt;
  // An answer from another run: recorded in this run too (cost 0: nothing was paid now).
  store::LlmCall call;
  call.run_id = m_run_id;
  call.problem_id = problem_id;
  call.request_hash = request_hash;
  call.tokens_in = cached->tokens_in;
  call.tokens_out = cached->tokens_out;
  call.status = "ok";
  call.error_class = "cache_hit";
  call.response_text = cached->response_text;
  auto row = m_model_rows.find(model);
  if (row == m_model_rows.end())
    throw Error(fmt::format("internal: model '{}' has no store row", model));
  call.model_id = row->second;
  a.response.text = cached->response_text;
  a.response.tokens_in = cached->tokens_in;
  a.response.tokens_out = cached->tokens_out;
  a.response.status = llm::ChatStatus::ok;
  a.response.cached = true;
  a.replayed = true;
  a.call_id = m_recorder.with([&](store::Store& s) { return s.record_llm_call(call); });
  return a;
}

int64_t StoreJournal::record(const std::string& problem_id, const llm::ChatResponse& r) {
  std::lock_guard lock(m_mutex);
  store::LlmCall call;
  call.run_id = m_run_id;
  auto it = m_model_rows.find(r.model);
  if (it == m_model_rows.end())
    throw Error(fmt::format("internal: model '{}' has no store row", r.model));
  call.model_id = it->second;
  call.problem_id = problem_id;
  call.request_hash = r.request_hash;
  call.tokens_in = r.tokens_in;
  call.tokens_out = r.tokens_out;
  call.latency_s = r.latency_s;
  call.status = std::string(llm::chat_status_name(r.status));
  call.error_class = r.error_class;
  call.cost_usd = r.cost_usd;
  call.response_text = redact(r.model, r.ok() ? r.text : r.error_message);
  call.seed = r.seed;
  call.response_bytes = r.answer_bytes;
  return m_recorder.with([&](store::Store& s) { return s.record_llm_call(call); });
}

} // namespace kb::runner::detail
