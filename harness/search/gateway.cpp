// The model gateway: every LLM call of a strategy goes through the journal (cache and resume),
// the budget ledger, the client, and back into the journal.
#include <algorithm>

#include <fmt/format.h>

#include "search.hpp"

namespace kb::search {

std::optional<Answer> MemoryCallJournal::lookup(const std::string&, const std::string&,
                                                const std::string& request_hash) {
  std::lock_guard lock(m_mutex);
  auto it = m_ok.find(request_hash);
  if (it == m_ok.end())
    return std::nullopt;
  Answer a;
  a.response = m_rows[it->second];
  a.response.cached = true;
  a.call_id = static_cast<int64_t>(it->second) + 1;
  a.replayed = true;
  return a;
}

int64_t MemoryCallJournal::record(const std::string&, const llm::ChatResponse& r) {
  std::lock_guard lock(m_mutex);
  m_rows.push_back(r);
  if (r.ok())
    m_ok.emplace(r.request_hash, m_rows.size() - 1);
  return static_cast<int64_t>(m_rows.size());
}

std::size_t MemoryCallJournal::size() const {
  std::lock_guard lock(m_mutex);
  return m_rows.size();
}

ModelGateway::ModelGateway(llm::Client& client, BudgetLedger& ledger, CallJournal* journal,
                           const std::atomic<bool>* cancel)
    : m_client(client), m_ledger(ledger), m_journal(journal), m_cancel(cancel),
      m_slots_free(std::max(1, client.max_in_flight())) {}

ModelGateway::~ModelGateway() = default;

const llm::ModelConfig& ModelGateway::model() const {
  return m_client.config();
}

Estimate ModelGateway::estimate(const llm::ChatRequest& r) const {
  const auto& cfg = m_client.config();
  Estimate e;
  for (const auto& m : r.messages)
    e.tokens_in += llm::estimate_tokens(m.content) + 4; // role and framing tokens
  e.tokens_out = r.max_tokens.value_or(cfg.max_output_tokens);
  e.usd = llm::cost_usd(cfg, e.tokens_in, e.tokens_out);
  return e;
}

Usage ModelGateway::fresh_usage() const {
  std::lock_guard lock(m_mutex);
  return m_fresh;
}

std::future<Answer> ModelGateway::ask(const std::string& scope, llm::ChatRequest request) {
  const std::string key = llm::cache_key(m_client.config(), request);
  if (m_journal) {
    if (auto hit = m_journal->lookup(m_client.config().name, request.problem_id, key)) {
      hit->response.request_hash = key;
      hit->response.model = m_client.config().name;
      std::promise<Answer> p;
      p.set_value(std::move(*hit));
      return p.get_future();
    }
  }
  const Estimate e = estimate(request);
  if (auto refusal = m_ledger.admit(scope, e, m_cancel)) {
    Answer a;
    a.response.status = llm::ChatStatus::budget;
    a.response.error_class = refusal->code;
    a.response.error_message = refusal->message;
    a.refusal = *refusal;
    a.response.model = m_client.config().name;
    a.response.request_hash = key;
    std::promise<Answer> p;
    p.set_value(std::move(a));
    return p.get_future();
  }
  // The call settles its reservation the moment it returns, not when the strategy reads it:
  // a strategy blocked in admit() waits for exactly that.
  return std::async(std::launch::async, [this, scope, e, req = std::move(request)]() mutable {
    const std::string problem_id = req.problem_id;
    // A slot from before the request is sent until its answer is recorded.
    {
      std::unique_lock lock(m_slot_mutex);
      m_slot_cv.wait(lock, [this] { return m_slots_free > 0; });
      --m_slots_free;
    }
    struct SlotRelease {
      ModelGateway* g;
      ~SlotRelease() {
        {
          std::lock_guard lock(g->m_slot_mutex);
          ++g->m_slots_free;
        }
        g->m_slot_cv.notify_one();
      }
    } slot{this};
    llm::ChatResponse r;
    try {
      r = m_client.chat(std::move(req));
    } catch (...) {
      m_ledger.settle(scope, e, Usage{});
      throw;
    }
    Usage used{r.tokens_in, r.tokens_out, r.cost_usd, 1};
    if (used.cost_usd <= 0.0)
      used.cost_usd = llm::cost_usd(m_client.config(), r.tokens_in, r.tokens_out);
    r.cost_usd = used.cost_usd;
    m_ledger.settle(scope, e, used);
    {
      std::lock_guard lock(m_mutex);
      m_fresh.tokens_in += used.tokens_in;
      m_fresh.tokens_out += used.tokens_out;
      m_fresh.cost_usd += used.cost_usd;
      ++m_fresh.calls;
    }
    Answer a;
    a.response = std::move(r);
    if (m_journal)
      a.call_id = m_journal->record(problem_id, a.response);
    return a;
  });
}

} // namespace kb::search
