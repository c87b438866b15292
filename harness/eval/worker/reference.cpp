// Reference mode: a process that never loads candidate code. It owns the mailboxes candidates
// ship outputs into, regenerates the same inputs from the seeds, computes the fp32 baseline and
// the float64 reference, compares and decides; it also times the baseline.
#include <chrono>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "protocol.hpp"
#include "worker.hpp"

namespace kb::worker {

namespace {

std::string bytes_to_hex(const void* p, std::size_t n) {
  static const char* k_digits = "0123456789abcdef";
  std::string s;
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    s += k_digits[b[i] >> 4];
    s += k_digits[b[i] & 15];
  }
  return s;
}

// Everything held for one problem; rebuilt when the problem changes.
struct Session {
  Problem problem;
  std::unique_ptr<gpu::Context> ctx;
  std::unique_ptr<gpu::GraphRunner> baseline, reference;
  TensorSet in, base_out, ref_out, mailbox;
};

std::string session_key(const Problem& p) {
  return p.id + "#" + p.content_hash;
}

int serve() {
  cudaStream_t stream = nullptr;
  KB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::optional<Session> session;
  std::string key;
  emit({{"event", "ready"}});
  nlohmann::json cmd;
  while (read_message(cmd)) {
    const std::string what = cmd.value("cmd", "");
    try {
      if (what == "begin") {
        Problem p = cmd.at("problem").get<Problem>();
        if (!session || key != session_key(p)) {
          session.reset();
          session.emplace();
          session->problem = std::move(p);
          session->ctx =
              std::make_unique<gpu::Context>(stream, session->problem.precision.allow_tf32);
          session->baseline = std::make_unique<gpu::GraphRunner>(*session->ctx, session->problem);
          session->reference =
              std::make_unique<gpu::GraphRunner>(*session->ctx, session->problem, true);
          session->mailbox = alloc_outputs(session->problem, false);
          key = session_key(session->problem);
        }
        // Nothing of an earlier candidate may be left for this one to find.
        poison_all(session->mailbox, stream);
        KB_CUDA_CHECK(cudaStreamSynchronize(stream));
        nlohmann::json handles = nlohmann::json::array();
        for (const auto& t : session->mailbox.tensors) {
          cudaIpcMemHandle_t h;
          KB_CUDA_CHECK(cudaIpcGetMemHandle(&h, t.data));
          handles.push_back(bytes_to_hex(&h, sizeof h));
        }
        emit({{"ok", true}, {"mailboxes", handles}});
      } else if (what == "judge") {
        if (!session)
          throw Error("judge before begin");
        const auto check = cmd.at("check").get<eval::CheckSpec>();
        const auto reported = cmd.at("input_checksums").get<std::vector<uint64_t>>();
        const double atol = cmd.at("atol").get<double>(), rtol = cmd.at("rtol").get<double>();
        const double k = cmd.at("relative_k").get<double>();
        const bool kernelbench = cmd.value("protocol", "") == "kernelbench";
        // Held only while judging: the candidate's timing must find the memory free.
        session->in = alloc_inputs(session->problem);
        session->base_out = alloc_outputs(session->problem, false);
        session->ref_out = alloc_outputs(session->problem, true);
        fill_inputs(session->in, check.dists, check.seed, stream);
        const auto own = checksums(session->in, stream);
        session->baseline->run(session->in.tensors, session->base_out.tensors);
        session->reference->run(session->in.tensors, session->ref_out.tensors);
        KB_CUDA_CHECK(cudaStreamSynchronize(stream));
        nlohmann::json outs = nlohmann::json::array();
        std::string reason;
        int bad_output = -1;
        for (std::size_t o = 0; o < session->mailbox.tensors.size(); ++o) {
          const auto& ref = session->ref_out.tensors[o];
          const ErrorStats c = compare_device(session->mailbox.tensors[o], ref, atol, rtol, stream);
          const ErrorStats b =
              compare_device(session->base_out.tensors[o], ref, atol, rtol, stream);
          std::string r;
          if (kernelbench) // torch.allclose: values and NaN/Inf only
            r = c.nan_count || c.inf_count || c.missed_special ? "nan_parity"
                : c.mismatch_count                             ? "values"
                                                               : "";
          else
            // Never stricter than the fp32 baseline manages: where it misses the fixed tolerance
            // too (ill-conditioned inputs, long fp32 reductions), the bound is relative to it.
            r = judge_output(c, &b, check.relative || b.mismatch_count > 0, k, atol);
          if (!r.empty() && reason.empty()) {
            reason = r;
            bad_output = static_cast<int>(o);
          }
          outs.push_back({{"cand", c},
                          {"base", b},
                          {"reason", r},
                          {"cand_checksum", gpu::checksum(session->mailbox.tensors[o], stream)},
                          {"ref_checksum", gpu::checksum(ref, stream)}});
        }
        session->in = {};
        session->base_out = {};
        session->ref_out = {};
        const bool mutated = !kernelbench && own != reported;
        emit({{"ok", true},
              {"input_mutated", mutated},
              {"reason", mutated ? "input_mutated" : reason},
              {"bad_output", mutated ? -1 : bad_output},
              {"outputs", outs}});
      } else if (what == "time_baseline") {
        if (!session)
          throw Error("time_baseline before begin");
        const auto opts = cmd.at("timing").get<TimingOptions>();
        std::vector<Distribution> dists;
        for (const auto& t : session->problem.inputs)
          dists.push_back(t.dist);
        for (const auto& t : session->problem.params)
          dists.push_back(t.dist);
        auto* runner = session->baseline.get();
        const CallFn call = [runner](const std::vector<gpu::DeviceTensor>& i,
                                     const std::vector<gpu::DeviceTensor>& o,
                                     cudaStream_t) { runner->run(i, o); };
        TimingRun tr = run_timing(session->problem, dists, opts, cmd.at("protocol"),
                                  cmd.at("timing_seed").get<uint64_t>(), stream, call);
        emit({{"ok", true}, {"timing", tr.stats}, {"off_stream", tr.off_stream}});
      } else if (what == "end") {
        break;
      } else {
        throw Error(fmt::format("unknown command '{}'", what));
      }
    } catch (const std::exception& e) {
      // A failure here is the harness's (or its op library's); the context may be unusable, so
      // this process ends and the parent starts a fresh one.
      emit({{"ok", false}, {"error", e.what()}});
      return 1;
    }
  }
  return 0;
}

} // namespace

int run_reference() {
  try {
    KB_CUDA_CHECK(cudaFree(nullptr));
    return serve();
  } catch (const std::exception& e) {
    emit({{"ok", false}, {"error", e.what()}});
    return 1;
  }
}

} // namespace kb::worker
