// The run recorder: one connection per run, the run lease and its heartbeat.
#include <random>

#include <fmt/format.h>

#include "recorder.hpp"

namespace kb::runner::detail {

namespace {
std::string random_token() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", rd(), rd(), rd(), rd());
}
constexpr auto k_heartbeat = std::chrono::seconds(2);
} // namespace

RunRecorder::RunRecorder(const std::string& db)
    : m_path(db), m_store(std::make_unique<store::Store>(db)), m_token(random_token()) {}

RunRecorder::~RunRecorder() {
  {
    std::lock_guard lock(m_beat_mutex);
    m_closing = true;
  }
  m_beat_cv.notify_all();
  if (m_beat.joinable())
    m_beat.join();
  if (m_held && !m_lost) {
    try {
      with([&](store::Store& s) { s.release_run_lease(m_run_id, m_token); });
    } catch (...) {
    }
  }
}

void RunRecorder::acquire_lease(int64_t run_id) {
  auto holder = with([&](store::Store& s) { return s.acquire_run_lease(run_id, m_token); });
  if (holder)
    throw Error(fmt::format("run {} of {} is being written by process {} on {} (last sign of life "
                            "{:.0f} s ago); a run has one writer at a time: wait for it to end, or "
                            "resume once it has stopped",
                            run_id, m_path, holder->pid,
                            holder->host.empty() ? "an unknown host" : holder->host,
                            holder->heartbeat_age_s));
  m_run_id = run_id;
  m_held = true;
}

void RunRecorder::abandon(std::string_view status) {
  if (!m_held || m_lost)
    return;
  with([&](store::Store& s) {
    s.end_run(m_run_id, std::string(status));
    s.release_run_lease(m_run_id, m_token);
  });
  m_held = false;
}

void RunRecorder::start_heartbeat(std::function<void()> on_lost) {
  if (!m_held || m_beat.joinable())
    return;
  m_on_lost = std::move(on_lost);
  m_beat = std::thread([this] { heartbeat(); });
}

void RunRecorder::heartbeat() {
  std::unique_lock lock(m_beat_mutex);
  while (!m_beat_cv.wait_for(lock, k_heartbeat, [this] { return m_closing; })) {
    lock.unlock();
    bool ours = true;
    try {
      ours = with([&](store::Store& s) { return s.renew_run_lease(m_run_id, m_token); });
    } catch (const std::exception&) {
      // A busy database delays a beat; the lease goes stale only after a minute without one.
    }
    lock.lock();
    if (!ours) {
      m_lost = true;
      if (m_on_lost)
        m_on_lost();
      return;
    }
  }
}

} // namespace kb::runner::detail
