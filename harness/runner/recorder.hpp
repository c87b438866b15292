// Internal to kb_runner: the run recorder, the one writer of a run's rows. It owns the run's
// database connection (every write of the suite, the call journal, the compile pool and the GPU
// workers goes through it, serialised) and the run lease with its heartbeat.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "store.hpp"

namespace kb::runner::detail {

class RunRecorder {
public:
  // Opens (creating and migrating) the database.
  explicit RunRecorder(const std::string& db);
  ~RunRecorder(); // stops the heartbeat and releases the lease when held
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  // Runs `f(store)` with the connection held: every read and write of the run.
  template <class F> auto with(F&& f) -> decltype(f(std::declval<store::Store&>())) {
    std::lock_guard lock(m_mutex);
    return f(*m_store);
  }

  // Takes the lease of `run_id`; throws kb::Error naming the holder when another live process
  // has it.
  void acquire_lease(int64_t run_id);
  // Renews the lease every 2 s from now on; `on_lost` is called (once, from the heartbeat
  // thread) when another process took the run over.
  void start_heartbeat(std::function<void()> on_lost);
  bool lease_lost() const { return m_lost; }
  // For a process about to leave without unwinding (a second Ctrl-C): ends the run with
  // `status` and gives the lease up, through this connection. Thread-safe; nothing when the
  // lease is not held (any more).
  void abandon(std::string_view status);
  const std::string& path() const { return m_path; }

private:
  void heartbeat();

  std::string m_path;
  std::mutex m_mutex;
  std::unique_ptr<store::Store> m_store;
  std::string m_token;
  int64_t m_run_id = 0;
  bool m_held = false;
  std::atomic<bool> m_lost{false};
  std::function<void()> m_on_lost;
  std::mutex m_beat_mutex;
  std::condition_variable m_beat_cv;
  bool m_closing = false;
  std::thread m_beat;
};

} // namespace kb::runner::detail
