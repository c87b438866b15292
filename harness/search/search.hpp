// kbench search module: the strategies that turn a problem into candidates (oneshot, best-of-n,
// multi-turn refine, idea-branch search), the token/money/time budgets they run under, and the
// gateway that puts every LLM call through the budgets, the response cache and the journal.
// Strategies see the model through LlmPort and the evaluator through an EvaluateFn, so they run
// against fakes in tests (no GPU, no network). The only public header of kb_search.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core.hpp"
#include "llm.hpp"

namespace kb::search {

// ---------------------------------------------------------------------------------------------
// Strategy options
// ---------------------------------------------------------------------------------------------

enum class StrategyKind { oneshot, best_of_n, refine, ideas };

// "oneshot", "best-of-n", "refine", "ideas" (the names the CLI and the store use).
std::string_view strategy_name(StrategyKind k);
// Parses the names above (also "best_of_n", "one-shot"); nullopt otherwise.
std::optional<StrategyKind> parse_strategy(std::string_view name);
// Whether the strategy needs verdicts to continue (refine, ideas): such strategies cannot run
// in generate-only mode.
bool needs_verdicts(StrategyKind k);

struct StrategyOptions {
  StrategyKind kind = StrategyKind::oneshot;
  int samples = 4;  // best-of-n: independent samples
  int turns = 4;    // refine: turns (the first answer included)
  int rounds = 3;   // ideas: rounds
  int ideas = 4;    // ideas: ideas asked for per round
  int branches = 2; // ideas: implementations per idea
  int seeds = 2;    // ideas: best kernels carried into the next round
  // Unset: the model's configured temperature for oneshot and refine, and
  // k_sampling_temperature for best-of-n and ideas (independent samples must differ).
  std::optional<double> temperature;
  // best-of-n and ideas send seed + sample index as each request's seed where the API takes one
  // (seed unset: the sample index), so every sample is distinct and reproducible; oneshot and
  // refine send the seed as given.
  std::optional<int64_t> seed;
  // refine: earlier answers keep at most this many characters of their explanation (reasoning
  // is dropped); the conversation keeps the newest turns that fit in context_tokens.
  int summary_chars = 600;
  int64_t context_tokens = 24000;
  bool use_bank = true; // ideas: measure the shipped example kernels and seed round 0 with them
};

// The default temperature of strategies that draw several independent samples (best-of-n, the
// ideas and branches of ideas).
inline constexpr double k_sampling_temperature = 0.8;
// Whether the strategy draws independent samples of one prompt (best-of-n, ideas).
bool samples_independently(StrategyKind k);

// An answer that failed at the provider (after the client's retries): its class
// ("rate_limited", "timeout", "malformed", "network", "http_error"), or "" for an answer (a
// replay model without a kernel for the problem answers "no code": not a provider failure) and
// for budget refusals.
std::string provider_failure_class(const llm::ChatResponse& r);

// Throws kb::InputError (field named, file "command line") when an option is out of range.
void validate(const StrategyOptions& o);

// ---------------------------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------------------------

// Limits of one scope; 0 means unlimited.
struct BudgetLimits {
  int64_t tokens = 0; // input + output
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double usd = 0.0;
  double minutes = 0.0; // wall time since the ledger started
  bool any() const;
};

struct Usage {
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost_usd = 0.0;
  int64_t calls = 0;
  int64_t total() const { return tokens_in + tokens_out; }
};

// What a request may use at most (input estimate, max output tokens, their price).
struct Estimate {
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double usd = 0.0;
};

// Why a request was refused: code names the limit ("run_tokens", "problem_tokens_out",
// "run_usd", "run_minutes", "interrupted"), message says it with numbers.
// Why one (problem, model) search, or one request of it, stopped.
enum class StopKind {
  done,           // the strategy ran to its end
  run_budget,     // a run-wide limit ("run_tokens", "run_usd", "run_minutes", ...)
  problem_budget, // a per-problem limit ("problem_tokens_out", ...)
  interrupted,
  provider_failure, // refine/ideas stopped at a request the provider did not answer
  failed,           // a harness error
};
std::string_view stop_kind_name(StopKind k);

// A request the budget ledger did not send: the kind of stop, the code naming the limit
// ("run_tokens", "problem_usd", ...; "interrupted") and a sentence.
struct Refusal {
  StopKind kind = StopKind::run_budget;
  std::string code;
  std::string message;
};

// The budgets of a run and of each (problem, model) scope inside it; thread-safe.
// Admission rule, for every limit of the run and of the scope: a request is refused once the
// spent amount has reached the limit; otherwise it is admitted when nothing else is in flight
// in that scope, or when spent + estimates in flight + its own estimate fit in the limit, and
// waits for in-flight requests to settle when they do not. So a budget is overrun at most by
// the requests in flight when it is reached, and by one request when estimates are upper
// bounds (output is capped by max tokens).
class BudgetLedger {
public:
  BudgetLedger(BudgetLimits run, BudgetLimits problem);

  // Counts usage spent before this ledger started (a resumed run) against the run and scope.
  void add_spent(const std::string& scope, const Usage& u);
  // Blocks until the request is admitted (nullopt) or refused. `cancel` set refuses with code
  // "interrupted".
  std::optional<Refusal> admit(const std::string& scope, const Estimate& e,
                               const std::atomic<bool>* cancel = nullptr);
  // Settles an admitted request with its real usage (zero for a failure that used nothing).
  void settle(const std::string& scope, const Estimate& e, const Usage& used);
  // The first limit reached in the run or the scope; nullopt while every limit has room.
  std::optional<Refusal> exhausted(const std::string& scope) const;
  Usage spent_run() const;
  Usage spent(const std::string& scope) const;
  int in_flight_run() const;
  const BudgetLimits& run_limits() const { return m_run_limits; }
  const BudgetLimits& problem_limits() const { return m_problem_limits; }
  double elapsed_minutes() const;

private:
  struct Account {
    Usage spent;
    Estimate reserved;
    int in_flight = 0;
  };
  enum class Check { admit, wait, refuse };
  Check check(const Account& a, const BudgetLimits& l, const Estimate& e, const char* prefix,
              Refusal* why) const;
  std::optional<Refusal> reached(const Account& a, const BudgetLimits& l, const char* prefix) const;

  BudgetLimits m_run_limits, m_problem_limits;
  std::chrono::steady_clock::time_point m_start;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  Account m_run;
  std::map<std::string, Account, std::less<>> m_scopes;
};

// ---------------------------------------------------------------------------------------------
// The model as strategies see it
// ---------------------------------------------------------------------------------------------

// An answer and the journal row that records it.
struct Answer {
  llm::ChatResponse response;
  // Set for a request the budget ledger refused (response.status is then budget).
  std::optional<Refusal> refusal;
  std::optional<int64_t> call_id; // recorded LLM call (journal id); nullopt for budget refusals
  bool replayed = false;          // answered from this run's own journal (resume) or the cache
};

// Where LLM calls are recorded and found again (the runner backs it with the store).
// Implementations must be thread-safe.
class CallJournal {
public:
  virtual ~CallJournal() = default;
  // A recorded answer to this request: this run's own record first (a resumed run replays its
  // successes and failures without sending anything), then a successful answer of any run.
  // The returned call_id is the row the answer is (now) recorded under in this run.
  virtual std::optional<Answer> lookup(const std::string& model, const std::string& problem_id,
                                       const std::string& request_hash) = 0;
  // Records a call that was sent (any status) or refused; returns its row id.
  virtual int64_t record(const std::string& problem_id, const llm::ChatResponse& r) = 0;
};

// In-memory journal (tests and runs without a store). Replays only successes, by hash.
class MemoryCallJournal final : public CallJournal {
public:
  std::optional<Answer> lookup(const std::string& model, const std::string& problem_id,
                               const std::string& request_hash) override;
  int64_t record(const std::string& problem_id, const llm::ChatResponse& r) override;
  std::size_t size() const;

private:
  mutable std::mutex m_mutex;
  std::vector<llm::ChatResponse> m_rows;
  std::map<std::string, std::size_t, std::less<>> m_ok; // hash -> row index
};

// What strategies ask through; thread-safe.
class LlmPort {
public:
  virtual ~LlmPort() = default;
  // Asks the model within the budgets of `scope`. Never throws for I/O or budgets: a refused
  // request comes back with status budget and the refusal's code as error_class.
  virtual std::future<Answer> ask(const std::string& scope, llm::ChatRequest request) = 0;
  // Model name, max output tokens and temperature, for prompts and records.
  virtual const llm::ModelConfig& model() const = 0;
};

// The real port: journal lookup (cache, resume), budget admission, the client, settlement and
// recording. Answers from the journal cost nothing against the budgets.
class ModelGateway final : public LlmPort {
public:
  // Nothing is owned; all must outlive the gateway. `journal` may be null (no cache).
  ModelGateway(llm::Client& client, BudgetLedger& ledger, CallJournal* journal,
               const std::atomic<bool>* cancel = nullptr);
  ~ModelGateway() override; // waits for the calls in flight
  std::future<Answer> ask(const std::string& scope, llm::ChatRequest request) override;
  const llm::ModelConfig& model() const override;
  // Upper bound of a request's usage: estimated input tokens plus its max output tokens.
  Estimate estimate(const llm::ChatRequest& r) const;
  Usage fresh_usage() const; // tokens of calls actually sent through this gateway

private:
  llm::Client& m_client;
  BudgetLedger& m_ledger;
  CallJournal* m_journal;
  const std::atomic<bool>* m_cancel;
  mutable std::mutex m_mutex;
  Usage m_fresh;
  // Calls between sending and being recorded, at most the client's in-flight limit: a process
  // killed at any moment loses at most that many answers (a resume asks them again).
  std::mutex m_slot_mutex;
  std::condition_variable m_slot_cv;
  int m_slots_free = 1;
  std::vector<std::future<void>> m_pending;
};

// ---------------------------------------------------------------------------------------------
// Candidates and verdicts
// ---------------------------------------------------------------------------------------------

// A candidate as a strategy produced it, before evaluation.
struct CandidateDraft {
  std::string problem_id;
  std::string strategy;
  int round = 0;
  std::optional<int64_t> parent_id;
  std::string idea;
  std::string source;           // empty when the answer had no code (or no answer came)
  std::string no_code_reason;   // why source is empty
  std::optional<Answer> answer; // the call behind it; nullopt for bank kernels
};

// A candidate as recorded: its id and, unless running generate-only, its evaluation.
struct Verdict {
  int64_t candidate_id = 0;
  std::optional<EvalResult> eval;
};

// Evaluates (unless generate-only) and records a candidate; the runner queues compile and GPU
// work behind it. Must be callable from several threads. A candidate without source must come
// back with outcome no_code (never evaluated).
using EvaluateFn = std::function<std::future<Verdict>(CandidateDraft)>;

// One line of the conversation with a strategy's progress, for the runner's display.
struct SearchEvent {
  std::string problem_id;
  std::string model;
  std::string strategy;
  int round = 0;
  int64_t candidate_id = 0;
  std::optional<Outcome> outcome; // nullopt: recorded without evaluation
  double speedup = 0.0;
};

// Everything a strategy works with for one (problem, model).
struct SearchContext {
  const Problem* problem = nullptr;
  const llm::PromptLibrary* prompts = nullptr;
  llm::PromptContext prompt; // problem, ABI, GPU, example kernel filled in
  LlmPort* llm = nullptr;
  EvaluateFn evaluate;
  std::string scope; // budget scope ("<problem id>|<model>")
  // Known good kernels for the idea search: (name, source).
  std::vector<std::pair<std::string, std::string>> bank;
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(const SearchEvent&)> on_event; // may be null
};

// A candidate as the strategy saw it (for trajectories and tests).
struct TrajectoryStep {
  int64_t candidate_id = 0;
  int round = 0;
  std::optional<int64_t> parent_id;
  std::string idea;
  std::optional<Outcome> outcome;
  double speedup = 0.0;
  bool from_bank = false;
};

struct SearchResult {
  std::vector<TrajectoryStep> steps;
  std::optional<int64_t> best_id; // best correct candidate (not a bank kernel)
  double best_speedup = 0.0;
  int calls = 0; // LLM requests asked (cache and replay included)
  // Requests that failed at the provider after retries: recorded as calls, never as candidates
  // (a resume asks them again).
  int provider_failures = 0;
  // Why the search stopped: done, interrupted, provider_failure (refine and ideas stop at an
  // unanswered request their next step depends on) or a budget; stop_code names it precisely
  // ("done", "interrupted", "provider_failure", or the limit: "run_tokens", "problem_usd", ...).
  StopKind stop = StopKind::done;
  std::string stop_code = "done";
  std::string stop_message;
};

// A search strategy. run() never throws for a failing model or candidate (those are data);
// it throws kb::Error only when the harness itself fails (e.g. the evaluator cannot run).
class Strategy {
public:
  virtual ~Strategy() = default;
  virtual std::string_view name() const = 0;
  virtual SearchResult run(SearchContext& ctx) = 0;
};

// Throws kb::InputError for invalid options.
std::unique_ptr<Strategy> make_strategy(const StrategyOptions& o);

// ---------------------------------------------------------------------------------------------
// Helpers the strategies share (public for tests)
// ---------------------------------------------------------------------------------------------

// Parses a numbered or bulleted list of ideas ("1. ...", "2) ...", "- ...", "**Idea 3:** ...")
// into its items (multi-line items joined); a text without list markers is one idea.
std::vector<std::string> parse_ideas(std::string_view text);

// The feedback a refine turn sends after a verdict: the template of the outcome class rendered
// with the compile log (trimmed), runtime error, mismatch statistics or speedup and roofline %.
std::string feedback_text(const llm::PromptLibrary& prompts, llm::PromptContext ctx,
                          const Verdict& v, const std::string& no_code_reason);

// An earlier answer as refine keeps it: reasoning dropped, the explanation cut to max_chars,
// the code block kept whole.
std::string summarize_answer(std::string_view answer, int max_chars);

} // namespace kb::search
