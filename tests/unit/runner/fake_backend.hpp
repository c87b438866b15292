// The fake evaluation back end of the runner's unit tests: compiles anything defining kb_forward,
// "evaluates" with a speedup from the problem id, reports the GPUs it is told to, records the
// ceilings each GPU's evaluator was opened with, and calibrates on request (no GPU, no nvcc).
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runner.hpp"

namespace kb::runner::fakes {

class FakeBackend final : public EvalBackend {
public:
  // GPUs the doctor reports: index i gets names[i].
  explicit FakeBackend(std::vector<std::string> names = {"Fake GPU"}) : m_names(std::move(names)) {}

  std::atomic<int> compiles{0}, evaluations{0}, calibrations{0};
  // What calibrate() returns (gpu_name empty: the doctor's name of that GPU); throws when unset.
  std::optional<GpuCeilings> measured;

  // A source containing this text fails in the harness (as a cache write can), every time.
  std::string throw_on;

  CompileResult compile(std::string_view source) override {
    ++compiles;
    if (!throw_on.empty() && source.find(throw_on) != std::string_view::npos)
      throw Error("cannot rename <cache>/x.log.tmp to <cache>/x.log: No such file or directory");
    CompileResult c;
    c.ok = source.find("kb_forward") != std::string_view::npos;
    c.message = c.ok ? "" : "nvcc exited with status 2";
    c.log = c.ok ? "" : "error: no kb_forward";
    c.so_path = "/nonexistent.so";
    return c;
  }
  class Gpu final : public GpuEvaluator {
  public:
    explicit Gpu(FakeBackend& b) : m_b(b) {}
    EvalResult evaluate_compiled(const Problem& p, const CompileResult&) override {
      ++m_b.evaluations;
      EvalResult r;
      r.outcome = Outcome::correct;
      r.speedup = 1.0 + static_cast<double>(p.id.size() % 7) / 10.0;
      r.baseline_time = TimingStats{};
      r.baseline_time->median_ms = 2.0;
      r.baseline_time->samples = 3;
      r.baseline_time->samples_ms = {2.0, 2.0, 2.0};
      r.candidate_time = TimingStats{};
      r.candidate_time->median_ms = 2.0 / r.speedup;
      return r;
    }

  private:
    FakeBackend& m_b;
  };
  std::unique_ptr<GpuEvaluator> open_gpu(int gpu, const GpuCeilings& ceilings) override {
    std::lock_guard lock(m_mutex);
    m_opened.emplace_back(gpu, ceilings);
    return std::make_unique<Gpu>(*this);
  }
  DoctorReport doctor() override {
    DoctorReport d;
    d.worker_ran = true;
    for (std::size_t i = 0; i < m_names.size(); ++i) {
      GpuInfo g;
      g.index = static_cast<int>(i);
      g.name = m_names[i];
      g.sm_count = 10;
      g.l2_bytes = 4 << 20;
      g.cc_major = 8;
      g.cc_minor = 9;
      d.gpus.push_back(g);
    }
    d.driver_version = 13000;
    return d;
  }
  void target(const std::vector<GpuInfo>& gpus) override {
    std::lock_guard lock(m_mutex);
    std::vector<int> indices;
    for (const auto& g : gpus)
      indices.push_back(g.index);
    m_targets.push_back(indices);
  }
  // The GPU indices of every target() call, in order.
  std::vector<std::vector<int>> targets() const {
    std::lock_guard lock(m_mutex);
    return m_targets;
  }
  GpuCeilings calibrate(int gpu) override {
    ++calibrations;
    if (!measured)
      throw Error("no GPU here");
    GpuCeilings c = *measured;
    if (c.gpu_name.empty())
      c.gpu_name = m_names.at(static_cast<std::size_t>(gpu));
    return c;
  }
  // (GPU, ceilings) of every evaluator opened, in order.
  std::vector<std::pair<int, GpuCeilings>> opened() const {
    std::lock_guard lock(m_mutex);
    return m_opened;
  }

private:
  std::vector<std::string> m_names;
  mutable std::mutex m_mutex;
  std::vector<std::pair<int, GpuCeilings>> m_opened;
  std::vector<std::vector<int>> m_targets;
};

} // namespace kb::runner::fakes
