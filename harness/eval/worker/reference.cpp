// Reference mode: a process that never loads candidate code. It owns the mailboxes candidates
// ship outputs into, regenerates the same inputs from the seeds, computes the fp32 baseline and
// the float64 reference, compares and decides; it also times the baseline with the candidate's
// own sample timer, round by round as the parent asks.
#include <memory>
#include <optional>

#include <fmt/format.h>

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
  std::unique_ptr<SampleTimer> timer;
};

std::string session_key(const Problem& p) {
  return p.id + "#" + p.content_hash;
}

eval::Verdict judge(Session& s, const eval::Judge& cmd, cudaStream_t stream) {
  const bool kernelbench = is_kernelbench(cmd.protocol);
  // Held only while judging: the candidate's timing must find the memory free.
  s.in = alloc_inputs(s.problem);
  s.base_out = alloc_outputs(s.problem, false);
  s.ref_out = alloc_outputs(s.problem, true);
  fill_inputs(s.in, cmd.check.dists, cmd.check.seed, stream);
  const auto own = checksums(s.in, stream);
  s.baseline->run(s.in.tensors, s.base_out.tensors);
  s.reference->run(s.in.tensors, s.ref_out.tensors);
  KB_CUDA_CHECK(cudaStreamSynchronize(stream));
  eval::Verdict v;
  for (std::size_t o = 0; o < s.mailbox.tensors.size(); ++o) {
    const auto& ref = s.ref_out.tensors[o];
    eval::OutputVerdict ov;
    ov.cand = compare_device(s.mailbox.tensors[o], ref, cmd.atol, cmd.rtol, stream);
    ov.base = compare_device(s.base_out.tensors[o], ref, cmd.atol, cmd.rtol, stream);
    if (kernelbench) // torch.allclose: values and NaN/Inf only
      ov.reason = ov.cand.nan_count || ov.cand.inf_count || ov.cand.missed_special ? "nan_parity"
                  : ov.cand.mismatch_count                                         ? "values"
                                                                                   : "";
    else
      // Never stricter than the fp32 baseline manages: where it misses the fixed tolerance too
      // (ill-conditioned inputs, long fp32 reductions), the bound is relative to it.
      ov.reason = judge_output(ov.cand, &ov.base, cmd.check.relative || ov.base.mismatch_count > 0,
                               cmd.relative_k, cmd.atol);
    if (!ov.reason.empty() && v.reason.empty()) {
      v.reason = ov.reason;
      v.bad_output = static_cast<int>(o);
    }
    ov.cand_checksum = gpu::checksum(s.mailbox.tensors[o], stream);
    ov.ref_checksum = gpu::checksum(ref, stream);
    v.outputs.push_back(std::move(ov));
  }
  s.in = {};
  s.base_out = {};
  s.ref_out = {};
  // Whatever a later judgement finds in the mailboxes must have been shipped after this one.
  poison_all(s.mailbox, stream);
  KB_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (!kernelbench && own != cmd.input_checksums) {
    v.input_mutated = true;
    v.reason = "input_mutated";
    v.bad_output = -1;
  }
  return v;
}

int serve(Channel& ch) {
  cudaStream_t stream = nullptr;
  KB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::optional<Session> session;
  std::string key;
  ch.reply(eval::Started{device_info()});
  eval::Envelope cmd;
  while (ch.next(cmd)) {
    ch.set_token(cmd.token);
    try {
      if (cmd.type == eval::message_type<eval::RefBegin>()) {
        auto begin = cmd.body.get<eval::RefBegin>();
        Problem p = std::move(begin.problem);
        const std::string this_key =
            session_key(p) + "#" + std::string(protocol_name(begin.protocol));
        if (!session || key != this_key) {
          session.reset();
          session.emplace();
          session->problem = std::move(p);
          session->ctx =
              std::make_unique<gpu::Context>(stream, session->problem.precision.allow_tf32);
          if (is_kernelbench(begin.protocol))
            session->ctx->set_conv_tf32(true);
          session->baseline = std::make_unique<gpu::GraphRunner>(*session->ctx, session->problem);
          session->reference =
              std::make_unique<gpu::GraphRunner>(*session->ctx, session->problem, true);
          session->mailbox = alloc_outputs(session->problem, false);
          key = this_key;
        }
        session->timer.reset();
        // Nothing of an earlier candidate may be left for this one to find.
        poison_all(session->mailbox, stream);
        KB_CUDA_CHECK(cudaStreamSynchronize(stream));
        eval::RefBegun begun;
        for (const auto& t : session->mailbox.tensors) {
          cudaIpcMemHandle_t h;
          KB_CUDA_CHECK(cudaIpcGetMemHandle(&h, t.data));
          begun.mailboxes.push_back(bytes_to_hex(&h, sizeof h));
        }
        ch.reply(begun);
      } else if (cmd.type == eval::message_type<eval::Judge>()) {
        if (!session)
          throw Error("judge before begin");
        ch.reply(judge(*session, cmd.body.get<eval::Judge>(), stream));
      } else if (cmd.type == eval::message_type<eval::TimePrepare>()) {
        if (!session)
          throw Error("time_prepare before begin");
        auto* runner = session->baseline.get();
        CallFn call = [runner](const std::vector<gpu::DeviceTensor>& i,
                               const std::vector<gpu::DeviceTensor>& o,
                               cudaStream_t) { runner->run(i, o); };
        session->timer.reset();
        session->timer =
            std::make_unique<SampleTimer>(session->problem, cmd.body.get<eval::TimePrepare>(),
                                          stream, std::move(call), TimerHooks{});
        ch.reply(session->timer->ready());
      } else if (cmd.type == eval::message_type<eval::TimeRound>()) {
        if (!session || !session->timer)
          throw Error("time_round before time_prepare");
        ch.reply(session->timer->round(cmd.body.get<eval::TimeRound>().samples));
      } else if (cmd.type == eval::message_type<eval::Finish>()) {
        if (session)
          session->timer.reset(); // the baseline's sets are freed before any candidate runs
        ch.reply(eval::Finished{});
      } else {
        throw Error(fmt::format("unknown command '{}'", cmd.type));
      }
    } catch (const std::exception& e) {
      // A failure here is the harness's (or its op library's); the context may be unusable, so
      // this process ends and the parent starts a fresh one.
      eval::Failure f;
      f.message = e.what();
      ch.reply(f);
      return 1;
    }
  }
  return 0;
}

} // namespace

int run_reference() {
  Channel ch;
  try {
    start_cuda();
    return serve(ch);
  } catch (const std::exception& e) {
    eval::Failure f;
    f.message = e.what();
    ch.reply(f);
    return 1;
  }
}

} // namespace kb::worker
