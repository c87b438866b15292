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
  std::unique_ptr<GpuEvaluator> open_gpu(int gpu) override {
    EvalOptions o = m_opts;
    o.gpu = gpu;
    return std::make_unique<RealGpu>(std::move(o));
  }
  DoctorReport doctor() override {
    try {
      const std::string worker =
          m_opts.worker_path.empty() ? default_worker_path() : m_opts.worker_path;
      return run_doctor(worker);
    } catch (const std::exception& e) {
      DoctorReport d;
      d.error = e.what();
      return d;
    }
  }

private:
  EvalOptions m_opts;
};

} // namespace

std::unique_ptr<EvalBackend> make_eval_backend(const EvalOptions& base) {
  return std::make_unique<RealBackend>(base);
}

} // namespace kb::runner
