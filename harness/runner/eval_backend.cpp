// The real evaluation back end: kb_compile for nvcc, kb::Evaluator per GPU, run_doctor.
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
  explicit RealBackend(EvalOptions o) : m_opts(std::move(o)) {}
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
  GpuCeilings calibrate(int gpu) override {
    // A calibration on an idle GPU takes seconds; the watchdog only stops a hung worker.
    return run_calibrate(worker(), gpu, 120.0);
  }

private:
  std::string worker() const {
    return m_opts.worker_path.empty() ? default_worker_path() : m_opts.worker_path;
  }
  EvalOptions m_opts;
};

} // namespace

std::unique_ptr<EvalBackend> make_eval_backend(const EvalOptions& base) {
  return std::make_unique<RealBackend>(base);
}

} // namespace kb::runner
