// The real evaluation back end: kb_compile for nvcc, kb::Evaluator per GPU, run_doctor.
#include <algorithm>

#include <fmt/format.h>

#include "runner.hpp"

namespace kb::runner {

namespace {

class RealGpu final : public GpuEvaluator {
public:
  explicit RealGpu(EvalOptions o) : m_ev(std::move(o)) {}
  EvalResult evaluate_compiled(const Problem& p, const CompileResult& c) override {
    return m_ev.evaluate_compiled(p, c);
  }

private:
  Evaluator m_ev;
};

class RealBackend final : public EvalBackend {
public:
  explicit RealBackend(EvalOptions o)
      : m_opts(std::move(o)), m_arch_chosen(!m_opts.compile.arch.empty()) {}
  CompileResult compile(std::string_view source) override {
    return compile_candidate(source, m_opts.compile);
  }
  std::unique_ptr<GpuEvaluator> open_gpu(int gpu, const GpuCeilings& ceilings) override {
    EvalOptions o = m_opts;
    o.gpu = gpu;
    o.ceilings = ceilings;
    return std::make_unique<RealGpu>(std::move(o));
  }
  DoctorReport doctor() override {
    try {
      return run_doctor(worker());
    } catch (const std::exception& e) {
      DoctorReport d;
      d.error = e.what();
      return d;
    }
  }
  void target(const std::vector<GpuInfo>& gpus) override {
    if (m_arch_chosen)
      return;
    // Every architecture among the GPUs (usually one): an object runs on any GPU of the run.
    std::vector<std::string> archs;
    for (const auto& g : gpus)
      if (const std::string a = g.arch();
          !a.empty() && std::find(archs.begin(), archs.end(), a) == archs.end())
        archs.push_back(a);
    m_opts.compile.arch = fmt::format("{}", fmt::join(archs, ","));
  }
  GpuCeilings calibrate(int gpu) override {
    // A calibration on an idle GPU takes seconds; the watchdog only stops a hung worker.
    return run_calibrate(worker(), gpu, 120.0);
  }

private:
  std::string worker() const {
    return m_opts.worker_path.empty() ? default_worker_path() : m_opts.worker_path;
  }
  EvalOptions m_opts;
  bool m_arch_chosen = false; // the options name the architecture: target() leaves it
};

} // namespace

std::unique_ptr<EvalBackend> make_eval_backend(const EvalOptions& base) {
  return std::make_unique<RealBackend>(base);
}

} // namespace kb::runner
