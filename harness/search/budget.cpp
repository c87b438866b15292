// Budget ledger: run-wide and per-scope limits on tokens, money and wall time, with in-flight
// reservations so concurrent requests cannot overrun a limit by more than they can use.
#include <string_view>

#include <fmt/format.h>

#include "search.hpp"

namespace kb::search {

bool BudgetLimits::any() const {
  return tokens > 0 || tokens_in > 0 || tokens_out > 0 || usd > 0.0 || minutes > 0.0;
}

BudgetLedger::BudgetLedger(BudgetLimits run, BudgetLimits problem)
    : m_run_limits(run), m_problem_limits(problem), m_start(std::chrono::steady_clock::now()) {}

double BudgetLedger::elapsed_minutes() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count() / 60.0;
}

void BudgetLedger::add_spent(const std::string& scope, const Usage& u) {
  std::lock_guard lock(m_mutex);
  auto add = [&u](Usage& s) {
    s.tokens_in += u.tokens_in;
    s.tokens_out += u.tokens_out;
    s.cost_usd += u.cost_usd;
    s.calls += u.calls;
  };
  add(m_run.spent);
  add(m_scopes[scope].spent);
}

namespace {
// One dimension of a limit: spent, reserved by requests in flight, and this request's share.
struct Dim {
  const char* name;
  double limit;
  double spent;
  double reserved;
  double estimate;
  const char* unit;
};
} // namespace

std::optional<Refusal> BudgetLedger::reached(const Account& a, const BudgetLimits& l,
                                             const char* prefix) const {
  Refusal r;
  if (check(a, l, Estimate{}, prefix, &r) == Check::refuse)
    return r;
  return std::nullopt;
}

BudgetLedger::Check BudgetLedger::check(const Account& a, const BudgetLimits& l, const Estimate& e,
                                        const char* prefix, Refusal* why) const {
  if (l.minutes > 0.0) {
    const double m = elapsed_minutes();
    if (m >= l.minutes) {
      why->code = fmt::format("{}_minutes", prefix);
      why->message = fmt::format("{} budget of {:g} minutes reached ({:.2f} minutes elapsed)",
                                 prefix, l.minutes, m);
      return Check::refuse;
    }
  }
  const Dim dims[] = {
      {"tokens", static_cast<double>(l.tokens), static_cast<double>(a.spent.total()),
       static_cast<double>(a.reserved.tokens_in + a.reserved.tokens_out),
       static_cast<double>(e.tokens_in + e.tokens_out), "tokens"},
      {"tokens_in", static_cast<double>(l.tokens_in), static_cast<double>(a.spent.tokens_in),
       static_cast<double>(a.reserved.tokens_in), static_cast<double>(e.tokens_in), "input tokens"},
      {"tokens_out", static_cast<double>(l.tokens_out), static_cast<double>(a.spent.tokens_out),
       static_cast<double>(a.reserved.tokens_out), static_cast<double>(e.tokens_out),
       "output tokens"},
      {"usd", l.usd, a.spent.cost_usd, a.reserved.usd, e.usd, "USD"},
  };
  Check out = Check::admit;
  for (const Dim& d : dims) {
    if (d.limit <= 0.0)
      continue;
    if (d.spent >= d.limit) {
      why->code = fmt::format("{}_{}", prefix, d.name);
      // Whole tokens and cents as they are recorded (never "1e+06"); the requests still in
      // flight when the limit is reached are recorded too and show in the run's summary.
      const bool money = std::string_view(d.name) == "usd";
      why->message = money ? fmt::format("{} budget of ${:.4f} reached (${:.4f} used)", prefix,
                                         d.limit, d.spent)
                           : fmt::format("{} budget of {:.0f} {} reached ({:.0f} used)", prefix,
                                         d.limit, d.unit, d.spent);
      return Check::refuse;
    }
    // Alone in flight, a request may always go while something is left: that is what bounds
    // the overrun to one request when its estimate is too large to ever fit.
    if (a.in_flight > 0 && d.spent + d.reserved + d.estimate > d.limit)
      out = Check::wait;
  }
  return out;
}

std::optional<Refusal> BudgetLedger::admit(const std::string& scope, const Estimate& e,
                                           const std::atomic<bool>* cancel) {
  std::unique_lock lock(m_mutex);
  for (;;) {
    if (cancel && cancel->load()) {
      return Refusal{StopKind::interrupted, "interrupted",
                     "interrupted before the request was sent"};
    }
    Account& s = m_scopes[scope];
    Refusal why;
    const Check run = check(m_run, m_run_limits, e, "run", &why);
    if (run == Check::refuse) {
      why.kind = StopKind::run_budget;
      return why;
    }
    const Check sc = check(s, m_problem_limits, e, "problem", &why);
    if (sc == Check::refuse) {
      why.kind = StopKind::problem_budget;
      return why;
    }
    if (run == Check::admit && sc == Check::admit) {
      for (Account* a : {&m_run, &s}) {
        a->reserved.tokens_in += e.tokens_in;
        a->reserved.tokens_out += e.tokens_out;
        a->reserved.usd += e.usd;
        ++a->in_flight;
      }
      return std::nullopt;
    }
    // Woken by settle(); the timeout re-checks cancellation and the wall-time limit.
    m_cv.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void BudgetLedger::settle(const std::string& scope, const Estimate& e, const Usage& used) {
  {
    std::lock_guard lock(m_mutex);
    for (Account* a : {&m_run, &m_scopes[scope]}) {
      a->reserved.tokens_in -= e.tokens_in;
      a->reserved.tokens_out -= e.tokens_out;
      a->reserved.usd -= e.usd;
      --a->in_flight;
      a->spent.tokens_in += used.tokens_in;
      a->spent.tokens_out += used.tokens_out;
      a->spent.cost_usd += used.cost_usd;
      a->spent.calls += 1;
    }
  }
  m_cv.notify_all();
}

std::optional<Refusal> BudgetLedger::exhausted(const std::string& scope) const {
  std::lock_guard lock(m_mutex);
  if (auto r = reached(m_run, m_run_limits, "run")) {
    r->kind = StopKind::run_budget;
    return r;
  }
  auto it = m_scopes.find(scope);
  static const Account k_empty;
  auto r = reached(it == m_scopes.end() ? k_empty : it->second, m_problem_limits, "problem");
  if (r)
    r->kind = StopKind::problem_budget;
  return r;
}

Usage BudgetLedger::spent_run() const {
  std::lock_guard lock(m_mutex);
  return m_run.spent;
}

Usage BudgetLedger::spent(const std::string& scope) const {
  std::lock_guard lock(m_mutex);
  auto it = m_scopes.find(scope);
  return it == m_scopes.end() ? Usage{} : it->second.spent;
}

int BudgetLedger::in_flight_run() const {
  std::lock_guard lock(m_mutex);
  return m_run.in_flight;
}

} // namespace kb::search
