// The evaluation protocol shared by the parent (kb_eval_client) and kbench-worker: the checks an
// evaluation runs, the typed commands and replies exchanged over the workers' pipes, the timing
// statistics and the tolerance rules. Depends on core only, so the worker links nothing of the
// parent. docs/evaluation.md describes the protocol and its threat model.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core.hpp"

namespace kb {

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

struct TimingOptions {
  int warmup = 3;               // untimed calls before sampling
  double target_rse = 0.005;    // stop when stderr(median)/median <= this ...
  int min_samples = 20;         // ... and at least this many samples were taken
  int max_samples = 5000;       // hard stop (stop_reason "sample_cap")
  double time_cap_s = 5.0;      // stop after this much sampling time ("time_cap")
  double memory_fraction = 0.4; // rotating input sets fill at most this share of free memory
  int max_sets = 32;            // at most this many rotating sets
  int judged_samples = 3;       // timed samples whose outputs are judged after the timing
  int empty_calls = 24;         // calls that launch nothing, timed to calibrate the overhead
  // Holds the timed stream (and the legacy default stream) with a one-thread kernel until the
  // call has been enqueued, so a sample's events span the GPU's work alone, not the host's launch
  // path (the microseconds that dominate the spread of ~10 us kernels). Off by default until
  // measured; falls back to unheld samples when the call waits on the GPU inside it.
  bool hold_launch = false;
};

// ---------------------------------------------------------------------------------------------
// Statistics (pure)
// ---------------------------------------------------------------------------------------------

double median_of(std::vector<double> v);
// The q-quantile (0..1) by linear interpolation between order statistics; 0 for an empty series.
double quantile_of(std::vector<double> v, double q);
// Distribution-free standard error of the median from the order statistics that bound its 95%
// confidence interval: (x[u] - x[l]) / (2 * 1.96), l,u = n/2 -/+ 0.98 sqrt(n). 0 for n < 3.
double median_stderr(const std::vector<double>& v);
// True when sampling may stop: enough samples and stderr(median)/median <= target.
bool timing_converged(const std::vector<double>& samples_ms, double target_rse, int min_samples);
// Summary of a series (event times) with the host-clock series beside it.
TimingStats summarize_timing(const std::vector<double>& samples_ms,
                             const std::vector<double>& host_ms, std::string stop_reason);

// ---------------------------------------------------------------------------------------------
// Tolerance rules (pure; the reference process computes the same statistics on the GPU)
// ---------------------------------------------------------------------------------------------

// Element-wise comparison of an output against the float64 reference.
struct ErrorStats {
  int64_t numel = 0;
  int64_t mismatch_count = 0; // |c - r| > atol + rtol*|r| (NaN/Inf handled by parity)
  int64_t first_bad_index = -1;
  double max_abs_err = 0.0; // over elements where both are finite
  double max_rel_err = 0.0; // |c - r| / |r| over finite, non-zero r
  double sum_sq_err = 0.0;  // over elements where both are finite
  int64_t finite_count = 0;
  int64_t nan_count = 0;                 // candidate NaN where the reference is not
  int64_t inf_count = 0;                 // candidate Inf where the reference is not that Inf
  int64_t missed_special = 0;            // reference NaN/Inf where the candidate is finite
  double cand_min = 0.0, cand_max = 0.0; // finite range of the candidate
  double ref_min = 0.0, ref_max = 0.0;   // finite range of the reference
  double rms_err() const;
};

// Computes ErrorStats on the host (tests, small outputs).
ErrorStats compare_host(const std::vector<double>& cand, const std::vector<double>& ref,
                        double atol, double rtol);

// Decision for one output of one check. `baseline` is the fp32 baseline's own error against the
// same reference; used only when `relative` (ill-conditioned inputs): then the candidate passes
// when rms <= k*rms_base + atol and max_abs <= k*max_abs_base + atol even if elements exceed the
// fixed tolerance. Returns "" for a pass, else the MismatchInfo reason ("values", "nan_parity",
// "constant_output", "values_vs_baseline").
std::string judge_output(const ErrorStats& cand, const ErrorStats* baseline, bool relative,
                         double k, double atol);

void to_json(nlohmann::json& j, const TimingOptions& t);
void from_json(const nlohmann::json& j, TimingOptions& t);
void to_json(nlohmann::json& j, const ErrorStats& s);
void from_json(const nlohmann::json& j, ErrorStats& s);

} // namespace kb

namespace kb::eval {

// ---------------------------------------------------------------------------------------------
// Checks and seeds
// ---------------------------------------------------------------------------------------------

// One correctness check: every input and parameter drawn from `seed` (tensor j uses stream id j)
// with the distribution at the same position of `dists` (inputs then params, ABI order).
struct CheckSpec {
  int index = 0;
  uint64_t seed = 0;
  std::vector<Distribution> dists;
  std::string dist_name; // "uniform(0,1)", "ill_conditioned(1000,0.1)", ...
  bool relative = false; // ill-conditioned: judged relative to the baseline's own error
};

// Tolerances a protocol applies to a problem.
Tolerance protocol_tolerance(const Problem& p, Protocol protocol);

// The checks of an evaluation. kbench: `seeds` seeds for each distribution group (group 0 = every
// tensor's own dist, group g = each tensor's check_dists[g-1] where it has one), seeds mixed with
// `secret`. kernelbench: 5 checks with seeds 42..46 on the problems' own distributions.
std::vector<CheckSpec> make_checks(const Problem& p, Protocol protocol, int seeds, uint64_t secret);

// splitmix64 of a and b: seeds nobody can predict without the secret.
uint64_t mix_seed(uint64_t a, uint64_t b);
// The seed of timed sample `sample` (kbench: fresh per sample; kernelbench: one fixed set).
uint64_t sample_seed(uint64_t seed_base, int64_t sample, bool kernelbench);

std::string dist_label(const Distribution& d);

// ---------------------------------------------------------------------------------------------
// Messages. Every line on a pipe is one JSON object {"type", "seq", "token", "body"}: the parent
// numbers its commands, and a reply must carry the command's number, the session's token and
// the type the command asks for, or the parent stops believing the process (docs/evaluation.md).
// ---------------------------------------------------------------------------------------------

// Commands to the candidate worker (c_*), to the reference worker (r_*) and to both (timing).
struct CandidateJob {
  Problem problem;
  std::string so_path;
  Protocol protocol = Protocol::kbench;
  std::vector<std::string> mailboxes; // CUDA IPC handles (hex) of the reference's buffers
};
struct RunCheck {
  CheckSpec check;
  bool repeat = false; // call twice on the same inputs (determinism)
};
struct TimePrepare {
  TimingOptions timing;
  Protocol protocol = Protocol::kbench;
  uint64_t seed_base = 0;
  int kept_slots = 0;       // outputs of this many timed samples are kept (reservoir sampling)
  uint64_t keep_secret = 0; // drives which samples are kept
};
struct TimeRound {
  int samples = 0;
};
struct ShipKept {
  int slot = 0;
};
struct Finish {};
struct RefBegin {
  Problem problem;
  // The baseline's precision follows the protocol: KernelBench times PyTorch with its defaults
  // (TF32 in cuDNN convolutions), kbench holds the problem's contract.
  Protocol protocol = Protocol::kbench;
};
struct Judge {
  CheckSpec check;
  std::vector<uint64_t> input_checksums; // what the candidate worker reported
  double atol = 0.0, rtol = 0.0, relative_k = 8.0;
  Protocol protocol = Protocol::kbench;
};

// Replies.
struct DeviceInfo {
  std::string name;
  int sm_count = 0;
  uint64_t l2_bytes = 0;
  int cc_major = 0, cc_minor = 0;
};
// Sent once by a worker when CUDA has started, before it reads any command (sequence 0, no
// token yet; no candidate code has been loaded at that point).
struct Started {
  DeviceInfo device;
};
struct Ready {
  double start_s = 0.0;
  uint64_t workspace_bytes = 0;
  DeviceInfo device;
};
struct CheckDone {
  int index = 0;
  std::vector<uint64_t> input_checksums;
  bool deterministic = true;
  bool guards_intact = true; // no write landed in the guard zones around outputs/workspace
};
// Per sample: stream_ms between events on the given stream around the call; wide_ms from the
// same start to an event on the legacy default stream recorded after the call (it waits for the
// legacy stream and every blocking stream, cudaStreamPerThread included); host_ms on the host
// clock around the call and a device-wide synchronisation.
struct TimeReady {
  int sets = 0;
  int kept_slots = 0;
  bool launch_held = false; // hold_launch asked and kept (the warm-up calls never waited on it)
  std::vector<double> empty_stream_ms, empty_wide_ms, empty_host_ms; // the empty calls
};
struct RoundDone {
  std::vector<double> stream_ms, wide_ms, host_ms;
  bool guards_intact = true;
};
struct Shipped {
  int slot = 0;
  int64_t sample = -1;
  std::vector<uint64_t> input_checksums;
};
struct Finished {};
struct RefBegun {
  std::vector<std::string> mailboxes;
};
struct OutputVerdict {
  ErrorStats cand, base;
  std::string reason;
  uint64_t cand_checksum = 0, ref_checksum = 0;
};
struct Verdict {
  bool input_mutated = false;
  std::string reason;
  int bad_output = -1;
  std::vector<OutputVerdict> outputs;
};
// Sent instead of the expected reply when the process cannot go on.
struct Failure {
  std::string outcome = "runtime_error"; // an Outcome name
  std::string cuda_error;
  std::string message;
};

// Type names on the wire.
template <class T> constexpr std::string_view message_type();
#define KB_MESSAGE_TYPE(T, name)                                                                   \
  template <> constexpr std::string_view message_type<T>() {                                       \
    return name;                                                                                   \
  }
KB_MESSAGE_TYPE(CandidateJob, "job")
KB_MESSAGE_TYPE(RunCheck, "check")
KB_MESSAGE_TYPE(TimePrepare, "time_prepare")
KB_MESSAGE_TYPE(TimeRound, "time_round")
KB_MESSAGE_TYPE(ShipKept, "ship_kept")
KB_MESSAGE_TYPE(Finish, "finish")
KB_MESSAGE_TYPE(RefBegin, "begin")
KB_MESSAGE_TYPE(Judge, "judge")
KB_MESSAGE_TYPE(Started, "started")
KB_MESSAGE_TYPE(Ready, "ready")
KB_MESSAGE_TYPE(CheckDone, "check_done")
KB_MESSAGE_TYPE(TimeReady, "time_ready")
KB_MESSAGE_TYPE(RoundDone, "round_done")
KB_MESSAGE_TYPE(Shipped, "shipped")
KB_MESSAGE_TYPE(Finished, "finished")
KB_MESSAGE_TYPE(RefBegun, "begun")
KB_MESSAGE_TYPE(Verdict, "verdict")
KB_MESSAGE_TYPE(Failure, "failure")
#undef KB_MESSAGE_TYPE

// One decoded line: its envelope and body.
struct Envelope {
  std::string type;
  uint64_t seq = 0;
  std::string token;
  nlohmann::json body;
};

// Encodes a message as one line (with the trailing newline).
std::string encode_json(std::string_view type, uint64_t seq, const std::string& token,
                        const nlohmann::json& body);
template <class T> std::string encode(const T& msg, uint64_t seq, const std::string& token) {
  return encode_json(message_type<T>(), seq, token, nlohmann::json(msg));
}
// Decodes one line; nullopt (with `why`) when it is not a well-formed envelope.
std::optional<Envelope> decode(std::string_view line, std::string* why);

void to_json(nlohmann::json& j, const CheckSpec& c);
void from_json(const nlohmann::json& j, CheckSpec& c);
#define KB_MESSAGE_JSON(T)                                                                         \
  void to_json(nlohmann::json& j, const T& m);                                                     \
  void from_json(const nlohmann::json& j, T& m);
KB_MESSAGE_JSON(CandidateJob)
KB_MESSAGE_JSON(RunCheck)
KB_MESSAGE_JSON(TimePrepare)
KB_MESSAGE_JSON(TimeRound)
KB_MESSAGE_JSON(ShipKept)
KB_MESSAGE_JSON(Finish)
KB_MESSAGE_JSON(RefBegin)
KB_MESSAGE_JSON(Judge)
KB_MESSAGE_JSON(DeviceInfo)
KB_MESSAGE_JSON(Started)
KB_MESSAGE_JSON(Ready)
KB_MESSAGE_JSON(CheckDone)
KB_MESSAGE_JSON(TimeReady)
KB_MESSAGE_JSON(RoundDone)
KB_MESSAGE_JSON(Shipped)
KB_MESSAGE_JSON(Finished)
KB_MESSAGE_JSON(RefBegun)
KB_MESSAGE_JSON(OutputVerdict)
KB_MESSAGE_JSON(Verdict)
KB_MESSAGE_JSON(Failure)
#undef KB_MESSAGE_JSON

// ---------------------------------------------------------------------------------------------
// Judging a timing series (pure, so the rules are tested without a GPU)
// ---------------------------------------------------------------------------------------------

// What a process reported for one timing phase, with what the parent's own clock saw.
struct TimingRecord {
  TimeReady ready;
  std::vector<double> stream_ms, wide_ms, host_ms; // per sample, as the process reported them
  std::vector<double> round_wall_ms; // per round: the parent's clock, command to reply
  std::vector<int> round_samples;    // per round: samples asked for
  double prepare_wall_ms = 0.0;      // the parent's clock over the preparation
  std::string stop_reason;
};

// Work outside the given stream (docs/evaluation.md, "Timing"): a sample is off-stream when its
// wide span (up to the legacy stream's event) exceeds its stream span by more than any empty
// call's did, i.e. when something still ran on another stream after the given stream was done.
struct OffStreamRule {
  double threshold_ms = 0.0; // wide - stream beyond this is work off the stream
};
OffStreamRule off_stream_rule(const TimeReady& ready);

struct TimingJudgement {
  TimingStats stats;          // over the counted samples (stream span, or wide span off-stream)
  int off_stream_samples = 0; // samples with work on other streams after the given one was done
  bool off_stream = false;    // at least 10% of the samples
  OffStreamRule rule;
};
// Counts every sample: its stream span, or, when it is off-stream, its wide span, which covers
// the work on the other streams. kernelbench: the statistic is the mean (summarize_timing gives
// both).
TimingJudgement judge_timing(const TimingRecord& rec);

// The parent's clock against a claimed timing (docs/evaluation.md, "Corroboration"): the
// per-sample overhead outside the host span is measured on the trusted baseline, the same loop
// in the reference process; the candidate's host span per sample then follows from its fastest
// round's wall time. A claim shorter than that estimate beyond the allowed slack is not
// corroborated.
struct ClockBound {
  double loop_overhead_ms = 0.0; // baseline: fastest round's wall per sample - host span
  double estimate_ms = 0.0;      // candidate: fastest round's wall per sample - loop overhead
  double claimed_ms = 0.0;       // candidate: median host span it reported
  double slack_ms = 0.0;
  bool corroborated = true;
};
// The parent's wall time per sample of each round (rounds with samples only).
std::vector<double> wall_per_sample_by_round(const TimingRecord& rec);

// `extra_overhead_ms`: per-sample work the candidate's loop does and the baseline's does not
// (re-poisoning a workspace), credited to the candidate.
ClockBound clock_bound(const TimingRecord& baseline, const TimingRecord& candidate,
                       double extra_overhead_ms);

// Slack of the clock bound: a share of the estimate, a share of the loop overhead (whose
// host-latency part varies by tens of percent between processes on small problems, measured on
// an H200) and an absolute floor.
constexpr double k_clock_rel_slack = 0.10;
constexpr double k_clock_overhead_slack = 0.15;
constexpr double k_clock_abs_slack_ms = 0.040;

} // namespace kb::eval
