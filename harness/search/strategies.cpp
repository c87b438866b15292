// The four strategies: oneshot and best-of-n (independent samples), refine (multi-turn with
// the verdict fed back) and ideas (natural-language ideas realised as several branches, the
// best kernels seeding the next round).
#include <algorithm>

#include <fmt/format.h>

#include "search.hpp"

namespace kb::search {

std::string_view strategy_name(StrategyKind k) {
  switch (k) {
  case StrategyKind::oneshot:
    return "oneshot";
  case StrategyKind::best_of_n:
    return "best-of-n";
  case StrategyKind::refine:
    return "refine";
  case StrategyKind::ideas:
    return "ideas";
  }
  return "?";
}

std::optional<StrategyKind> parse_strategy(std::string_view name) {
  if (name == "oneshot" || name == "one-shot")
    return StrategyKind::oneshot;
  if (name == "best-of-n" || name == "best_of_n")
    return StrategyKind::best_of_n;
  if (name == "refine")
    return StrategyKind::refine;
  if (name == "ideas")
    return StrategyKind::ideas;
  return std::nullopt;
}

bool samples_independently(StrategyKind k) {
  return k == StrategyKind::best_of_n || k == StrategyKind::ideas;
}

std::string_view stop_kind_name(StopKind k) {
  switch (k) {
  case StopKind::done:
    return "done";
  case StopKind::run_budget:
    return "run_budget";
  case StopKind::problem_budget:
    return "problem_budget";
  case StopKind::interrupted:
    return "interrupted";
  case StopKind::provider_failure:
    return "provider_failure";
  case StopKind::failed:
    return "failed";
  }
  return "?";
}

std::string provider_failure_class(const llm::ChatResponse& r) {
  if (r.ok() || r.status == llm::ChatStatus::budget || r.error_class == "replay_not_found")
    return "";
  return std::string(llm::chat_status_name(r.status));
}

bool needs_verdicts(StrategyKind k) {
  return k == StrategyKind::refine || k == StrategyKind::ideas;
}

void validate(const StrategyOptions& o) {
  auto check = [](bool ok, const char* field, const std::string& msg) {
    if (!ok)
      throw InputError("command line", 0, field, msg);
  };
  check(o.samples >= 1 && o.samples <= 1024, "--samples", "must be in 1..1024");
  check(o.turns >= 1 && o.turns <= 100, "--turns", "must be in 1..100");
  check(o.rounds >= 1 && o.rounds <= 100, "--rounds", "must be in 1..100");
  check(o.ideas >= 1 && o.ideas <= 64, "--ideas", "must be in 1..64");
  check(o.branches >= 1 && o.branches <= 64, "--branches", "must be in 1..64");
  check(o.seeds >= 1 && o.seeds <= 64, "--seeds", "must be in 1..64");
  check(!o.temperature || (*o.temperature >= 0.0 && *o.temperature <= 2.0), "--temperature",
        "must be in 0..2");
  check(o.context_tokens >= 1000, "--context-tokens", "must be at least 1000");
}

namespace {

bool cancelled(const SearchContext& ctx) {
  return ctx.cancel && ctx.cancel->load();
}

// Shared mechanics: requests, drafts, verdict bookkeeping and stop reasons.
class StrategyBase : public Strategy {
public:
  explicit StrategyBase(StrategyOptions o) : m_o(std::move(o)) {}
  std::string_view name() const override { return strategy_name(m_o.kind); }

protected:
  StrategyOptions m_o;

  llm::ChatRequest request(const SearchContext& ctx, std::vector<llm::ChatMessage> messages,
                           int sample_index) const {
    llm::ChatRequest r;
    r.messages = std::move(messages);
    r.temperature = m_o.temperature;
    r.seed = m_o.seed;
    if (samples_independently(m_o.kind)) {
      if (!r.temperature)
        r.temperature = k_sampling_temperature;
      r.seed = m_o.seed.value_or(0) + sample_index;
    }
    r.problem_id = ctx.problem->id;
    r.sample_index = sample_index;
    return r;
  }

  std::vector<llm::ChatMessage> first_messages(const SearchContext& ctx) const {
    const llm::PromptVars vars = llm::prompt_vars(ctx.prompt);
    return {{"system", ctx.prompts->render("system", vars)},
            {"user", ctx.prompts->render("problem", vars)}};
  }

  std::future<Answer> ask(SearchContext& ctx, SearchResult& res, llm::ChatRequest r) {
    ++res.calls;
    return ctx.llm->ask(ctx.scope, std::move(r));
  }

  // True (and counted) when the answer failed at the provider: no candidate is made of it.
  static bool provider_failed(const Answer& a, SearchResult& res) {
    if (provider_failure_class(a.response).empty())
      return false;
    ++res.provider_failures;
    return true;
  }

  // Stops a search whose next step depends on an answer the provider did not give (refine's
  // next turn, ideas' next round): a resume asks that request again and continues exactly where
  // the search stopped, so no step is taken on a different path than the record.
  static void stop_provider_failure(SearchResult& res, const Answer& a) {
    stop(res, StopKind::provider_failure, "provider_failure",
         fmt::format("the provider failed ({}) after retries; resume the run to ask again",
                     provider_failure_class(a.response)));
  }

  // Sets the result's stop reason unless one is set already (the first reason stands).
  static void stop(SearchResult& res, StopKind kind, std::string code, std::string message) {
    if (res.stop != StopKind::done)
      return;
    res.stop = kind;
    res.stop_code = std::move(code);
    res.stop_message = std::move(message);
  }

  // True (and the result's stop reason set) when the answer is a budget refusal.
  static bool refused(const Answer& a, SearchResult& res) {
    if (a.response.status != llm::ChatStatus::budget)
      return false;
    if (a.refusal)
      stop(res, a.refusal->kind, a.refusal->code, a.refusal->message);
    else // a budget status without the ledger's refusal: the run's own limit
      stop(res, StopKind::run_budget,
           a.response.error_class.empty() ? "budget" : a.response.error_class,
           a.response.error_message);
    return true;
  }

  static void stop_interrupted(SearchResult& res) {
    stop(res, StopKind::interrupted, "interrupted", "interrupted");
  }

  CandidateDraft draft(const SearchContext& ctx, Answer a, int round, std::optional<int64_t> parent,
                       std::string idea) const {
    CandidateDraft d;
    d.problem_id = ctx.problem->id;
    d.strategy = std::string(name());
    d.round = round;
    d.parent_id = parent;
    d.idea = std::move(idea);
    const llm::ChatResponse& r = a.response;
    if (!r.ok()) {
      d.no_code_reason =
          fmt::format("no answer from model {}: {}{}{}{}", r.model, llm::chat_status_name(r.status),
                      r.error_class.empty() ? "" : " (" + r.error_class + ")",
                      r.http_status ? fmt::format(", HTTP {}", r.http_status) : "",
                      r.error_message.empty() ? "" : ": " + r.error_message);
      if (r.retries > 0)
        d.no_code_reason += fmt::format(" after {} retries", r.retries);
    } else {
      const llm::ExtractedCode code = llm::extract_code(r.text);
      if (code.found) {
        d.source = code.code;
      } else {
        d.no_code_reason = fmt::format("no code in the answer: {}", code.reason);
        // A short one-line answer says why better than any summary of it (a replay model
        // without a kernel for the problem answers so).
        if (!r.text.empty() && r.text.size() <= 600 && r.text.find('\n') == std::string::npos)
          d.no_code_reason += ": " + sanitize_utf8(r.text);
      }
    }
    d.answer = std::move(a);
    return d;
  }

  // Books a verdict into the trajectory and the best-so-far, and tells the runner.
  void book(SearchContext& ctx, SearchResult& res, const CandidateDraft& d, const Verdict& v,
            bool from_bank = false) const {
    TrajectoryStep s;
    s.candidate_id = v.candidate_id;
    s.round = d.round;
    s.parent_id = d.parent_id;
    s.idea = d.idea;
    s.from_bank = from_bank;
    if (v.eval) {
      s.outcome = v.eval->outcome;
      s.speedup = v.eval->outcome == Outcome::correct ? v.eval->speedup : 0.0;
      if (!from_bank && s.outcome == Outcome::correct &&
          (!res.best_id || s.speedup > res.best_speedup)) {
        res.best_id = v.candidate_id;
        res.best_speedup = s.speedup;
      }
    }
    res.steps.push_back(s);
    if (ctx.on_event) {
      SearchEvent e;
      e.problem_id = d.problem_id;
      e.model = ctx.llm->model().name;
      e.strategy = d.strategy;
      e.round = d.round;
      e.candidate_id = v.candidate_id;
      e.outcome = s.outcome;
      e.speedup = s.speedup;
      ctx.on_event(e);
    }
  }
};

// oneshot and best-of-n: n independent samples of the same prompt.
class Sampling final : public StrategyBase {
public:
  using StrategyBase::StrategyBase;

  SearchResult run(SearchContext& ctx) override {
    SearchResult res;
    const int n = m_o.kind == StrategyKind::oneshot ? 1 : m_o.samples;
    const auto messages = first_messages(ctx);
    std::vector<std::future<Answer>> answers;
    for (int i = 0; i < n; ++i) {
      if (cancelled(ctx)) {
        stop_interrupted(res);
        break;
      }
      answers.push_back(ask(ctx, res, request(ctx, messages, i)));
    }
    std::vector<std::pair<CandidateDraft, std::future<Verdict>>> pending;
    for (auto& f : answers) {
      Answer a = f.get();
      if (refused(a, res) || provider_failed(a, res))
        continue;
      CandidateDraft d = draft(ctx, std::move(a), 0, std::nullopt, "");
      auto v = ctx.evaluate(d);
      pending.emplace_back(std::move(d), std::move(v));
    }
    for (auto& [d, v] : pending)
      book(ctx, res, d, v.get());
    return res;
  }
};

// refine: one conversation; each turn's verdict goes back as the next user message.
class Refine final : public StrategyBase {
public:
  using StrategyBase::StrategyBase;

  SearchResult run(SearchContext& ctx) override {
    SearchResult res;
    const auto head = first_messages(ctx);
    std::vector<llm::ChatMessage> turns; // (assistant summary, user feedback) pairs
    std::optional<int64_t> parent;
    for (int t = 0; t < m_o.turns; ++t) {
      if (cancelled(ctx)) {
        stop_interrupted(res);
        break;
      }
      Answer a = ask(ctx, res, request(ctx, conversation(head, turns), t)).get();
      if (refused(a, res))
        break;
      if (provider_failed(a, res)) {
        stop_provider_failure(res, a);
        break;
      }
      const bool answered = a.response.ok();
      const std::string text = a.response.text;
      CandidateDraft d = draft(ctx, std::move(a), t, parent, "");
      const Verdict v = ctx.evaluate(d).get();
      book(ctx, res, d, v);
      parent = v.candidate_id;
      if (!answered)
        continue; // nothing to answer to: the next turn asks again
      llm::PromptContext pc = ctx.prompt;
      pc.kernel = d.source;
      turns.push_back({"assistant", summarize_answer(text, m_o.summary_chars)});
      turns.push_back({"user", feedback_text(*ctx.prompts, pc, v, d.no_code_reason)});
    }
    return res;
  }

private:
  // The system and problem messages, then the newest turns that fit in the context budget
  // (always at least the last one).
  std::vector<llm::ChatMessage> conversation(const std::vector<llm::ChatMessage>& head,
                                             const std::vector<llm::ChatMessage>& turns) const {
    int64_t used = 0;
    for (const auto& m : head)
      used += llm::estimate_tokens(m.content) + 4;
    std::size_t first = turns.size();
    while (first >= 2) {
      const int64_t pair = llm::estimate_tokens(turns[first - 2].content) +
                           llm::estimate_tokens(turns[first - 1].content) + 8;
      if (first != turns.size() && used + pair > m_o.context_tokens)
        break;
      used += pair;
      first -= 2;
    }
    std::vector<llm::ChatMessage> out = head;
    if (first > 0)
      out[1].content += fmt::format("\n\n(Earlier attempts: {} turns omitted to keep the "
                                    "conversation short.)",
                                    first / 2);
    out.insert(out.end(), turns.begin() + static_cast<std::ptrdiff_t>(first), turns.end());
    return out;
  }
};

// ideas: per round, ask for ideas conditioned on what was tried, realise each as several
// branches from the best kernels so far; bank kernels (measured first) seed round 1.
class Ideas final : public StrategyBase {
public:
  using StrategyBase::StrategyBase;

  SearchResult run(SearchContext& ctx) override {
    SearchResult res;
    struct Seed {
      int64_t id;
      std::string source;
      double speedup;
      std::string label;
    };
    std::vector<Seed> seeds;
    std::vector<std::string> history;

    if (m_o.use_bank && !ctx.bank.empty()) {
      std::vector<std::pair<CandidateDraft, std::future<Verdict>>> pending;
      for (const auto& [label, source] : ctx.bank) {
        CandidateDraft d;
        d.problem_id = ctx.problem->id;
        d.strategy = "bank";
        d.round = 0;
        d.idea = "bank: " + label;
        d.source = source;
        auto v = ctx.evaluate(d);
        pending.emplace_back(std::move(d), std::move(v));
      }
      for (auto& [d, fv] : pending) {
        const Verdict v = fv.get();
        book(ctx, res, d, v, true);
        history.push_back(fmt::format("- Known kernel '{}': {}", d.idea.substr(6), result_text(v)));
        if (v.eval && v.eval->outcome == Outcome::correct)
          seeds.push_back({v.candidate_id, d.source, v.eval->speedup, d.idea});
      }
    }

    for (int r = 1; r <= m_o.rounds; ++r) {
      if (cancelled(ctx)) {
        stop_interrupted(res);
        break;
      }
      llm::PromptContext pc = ctx.prompt;
      pc.history = history.empty() ? "Nothing yet: this is the first round."
                                   : fmt::format("{}", fmt::join(history, "\n"));
      pc.num_ideas = m_o.ideas;
      const llm::PromptVars vars = llm::prompt_vars(pc);
      Answer ia = ask(ctx, res,
                      request(ctx,
                              {{"system", ctx.prompts->render("system", vars)},
                               {"user", ctx.prompts->render("idea_generation", vars)}},
                              r))
                      .get();
      if (refused(ia, res))
        break;
      if (provider_failed(ia, res)) {
        stop_provider_failure(res, ia);
        break;
      }
      if (!ia.response.ok()) {
        history.push_back(fmt::format("- Round {}: asking for ideas failed ({}).", r,
                                      llm::chat_status_name(ia.response.status)));
        continue;
      }
      std::vector<std::string> ideas = parse_ideas(ia.response.text);
      if (ideas.size() > static_cast<std::size_t>(m_o.ideas))
        ideas.resize(static_cast<std::size_t>(m_o.ideas));

      std::sort(seeds.begin(), seeds.end(),
                [](const Seed& a, const Seed& b) { return a.speedup > b.speedup; });
      if (seeds.size() > static_cast<std::size_t>(m_o.seeds))
        seeds.resize(static_cast<std::size_t>(m_o.seeds));

      struct Branch {
        std::size_t idea;
        std::optional<int64_t> parent;
        std::future<Answer> answer;
      };
      std::vector<Branch> branches;
      for (std::size_t i = 0; i < ideas.size() && !cancelled(ctx); ++i) {
        const Seed* seed = seeds.empty() ? nullptr : &seeds[i % seeds.size()];
        llm::PromptContext rc = ctx.prompt;
        rc.idea = ideas[i];
        rc.kernel = seed ? seed->source : "";
        const llm::PromptVars rv = llm::prompt_vars(rc);
        const std::vector<llm::ChatMessage> msgs{
            {"system", ctx.prompts->render("system", rv)},
            {"user", ctx.prompts->render("idea_realisation", rv)}};
        for (int b = 0; b < m_o.branches; ++b)
          branches.push_back({i, seed ? std::optional(seed->id) : std::nullopt,
                              ask(ctx, res, request(ctx, msgs, b))});
      }
      std::vector<std::pair<CandidateDraft, std::future<Verdict>>> pending;
      for (auto& br : branches) {
        Answer a = br.answer.get();
        if (refused(a, res))
          continue;
        if (provider_failed(a, res)) {
          // The round's other branches are judged; the next round waits for a resume.
          stop_provider_failure(res, a);
          continue;
        }
        CandidateDraft d = draft(ctx, std::move(a), r, br.parent, ideas[br.idea]);
        auto v = ctx.evaluate(d);
        pending.emplace_back(std::move(d), std::move(v));
      }
      // Per idea: the best result of its branches goes into the history.
      std::map<std::string, std::pair<Verdict, int>> per_idea;
      for (auto& [d, fv] : pending) {
        const Verdict v = fv.get();
        book(ctx, res, d, v);
        if (v.eval && v.eval->outcome == Outcome::correct)
          seeds.push_back({v.candidate_id, d.source, v.eval->speedup, d.idea});
        auto [it, fresh] = per_idea.try_emplace(d.idea, v, 0);
        ++it->second.second;
        if (!fresh && better(v, it->second.first))
          it->second.first = v;
      }
      for (const auto& idea : ideas) {
        auto it = per_idea.find(idea);
        if (it != per_idea.end())
          history.push_back(fmt::format("- Round {}, idea: {}\n  Result (best of {}): {}", r, idea,
                                        it->second.second, result_text(it->second.first)));
      }
      if (res.stop != StopKind::done)
        break;
    }
    if (cancelled(ctx))
      stop_interrupted(res);
    return res;
  }

private:
  static double score(const Verdict& v) {
    if (!v.eval)
      return -2.0;
    if (v.eval->outcome == Outcome::correct)
      return v.eval->speedup;
    return v.eval->outcome == Outcome::mismatch ? -0.5 : -1.0;
  }
  static bool better(const Verdict& a, const Verdict& b) { return score(a) > score(b); }

  static std::string result_text(const Verdict& v) {
    if (!v.eval)
      return "not evaluated";
    const EvalResult& e = *v.eval;
    if (e.outcome == Outcome::correct)
      return fmt::format("correct, {:.3g}x the baseline ({:.1f}% of roofline)", e.speedup,
                         e.roofline_pct);
    std::string msg = e.message;
    if (msg.size() > 200)
      msg = msg.substr(0, 200) + " [...]";
    return fmt::format("{}{}", outcome_name(e.outcome), msg.empty() ? "" : ": " + msg);
  }
};

} // namespace

std::unique_ptr<Strategy> make_strategy(const StrategyOptions& o) {
  validate(o);
  switch (o.kind) {
  case StrategyKind::oneshot:
  case StrategyKind::best_of_n:
    return std::make_unique<Sampling>(o);
  case StrategyKind::refine:
    return std::make_unique<Refine>(o);
  case StrategyKind::ideas:
    return std::make_unique<Ideas>(o);
  }
  throw Error("unknown strategy");
}

} // namespace kb::search
