// The rules that judge a timing series: off-stream samples against the empty calls' overhead,
// the counted time, and the parent's clock bound against a claimed time.
#include <gtest/gtest.h>

#include "protocol.hpp"

namespace {

using kb::eval::TimingRecord;

// n samples: stream span `stream`, wide span `wide` (the legacy stream's event), host `host`.
TimingRecord record(double stream, double wide, double host, int n) {
  TimingRecord r;
  for (int i = 0; i < 24; ++i) {
    r.ready.empty_stream_ms.push_back(0.002);
    r.ready.empty_wide_ms.push_back(0.002 + (i % 3) * 0.0004); // at most 0.8 us later
    r.ready.empty_host_ms.push_back(0.012);
  }
  for (int i = 0; i < n; ++i) {
    r.stream_ms.push_back(stream);
    r.wide_ms.push_back(wide);
    r.host_ms.push_back(host);
  }
  r.stop_reason = "converged";
  return r;
}

TEST(OffStream, RuleComesFromTheEmptyCalls) {
  const auto rule = kb::eval::off_stream_rule(record(0, 0, 0, 0).ready);
  EXPECT_NEAR(rule.threshold_ms, 0.0008 + 0.001, 1e-9); // the worst empty gap + resolution
}

TEST(OffStream, HonestSamplesAreCountedByTheirStreamEvents) {
  // The legacy stream's event runs while the kernel is still busy: it lands before the stop.
  const auto j = kb::eval::judge_timing(record(0.034, 0.003, 0.045, 30));
  EXPECT_FALSE(j.off_stream);
  EXPECT_EQ(j.off_stream_samples, 0);
  EXPECT_DOUBLE_EQ(j.stats.median_ms, 0.034);
}

TEST(OffStream, WorkOnAnotherStreamIsCountedByTheWideSpan) {
  // The measured attack: the given stream's events 0.0059 ms, the work on cudaStreamPerThread.
  const auto j = kb::eval::judge_timing(record(0.0059, 0.034, 0.0458, 30));
  EXPECT_TRUE(j.off_stream);
  EXPECT_EQ(j.off_stream_samples, 30);
  EXPECT_DOUBLE_EQ(j.stats.median_ms, 0.034);
}

TEST(OffStream, ASmallHiddenTailAboveTheEmptyGapIsStillSeen) {
  // 3 us of work finishing after the given stream: far below the old 50 us allowance.
  const auto j = kb::eval::judge_timing(record(0.030, 0.033, 0.045, 30));
  EXPECT_TRUE(j.off_stream);
  EXPECT_DOUBLE_EQ(j.stats.median_ms, 0.033);
}

TEST(OffStream, AFewSamplesAreCountedButDoNotFlag) {
  auto r = record(0.034, 0.003, 0.045, 40);
  r.wide_ms[7] = 0.050;
  r.wide_ms[21] = 0.040;
  const auto j = kb::eval::judge_timing(r);
  EXPECT_FALSE(j.off_stream);
  EXPECT_EQ(j.off_stream_samples, 2);
  EXPECT_DOUBLE_EQ(j.stats.median_ms, 0.034);
  EXPECT_DOUBLE_EQ(j.stats.samples_ms[7], 0.050);
}

TimingRecord rounds(TimingRecord r, double wall_per_sample_ms, int rounds_n = 4) {
  for (int i = 0; i < rounds_n; ++i) {
    r.round_wall_ms.push_back(10 * wall_per_sample_ms);
    r.round_samples.push_back(10);
  }
  return r;
}

TEST(ClockBound, HonestClaimIsCorroborated) {
  // Baseline: host span 0.05 ms, wall 0.15 ms per sample -> loop overhead 0.10 ms.
  const auto base = rounds(record(0.04, 0.0, 0.05, 40), 0.15);
  const auto cand = rounds(record(0.02, 0.0, 0.03, 40), 0.131);
  const auto b = kb::eval::clock_bound(base, cand, 0.0);
  EXPECT_NEAR(b.loop_overhead_ms, 0.10, 1e-9);
  EXPECT_NEAR(b.estimate_ms, 0.031, 1e-9);
  EXPECT_TRUE(b.corroborated);
}

TEST(ClockBound, ARoundDisturbedByOtherWorkOnTheHostDoesNotFlagAnHonestClaim) {
  const auto base = rounds(record(0.04, 0.0, 0.05, 40), 0.15);
  auto cand = rounds(record(0.02, 0.0, 0.03, 40), 0.131);
  cand.round_wall_ms[1] = 10 * 0.9; // a compile job took the CPU during this round
  cand.round_wall_ms[3] = 10 * 0.6;
  EXPECT_TRUE(kb::eval::clock_bound(base, cand, 0.0).corroborated);
}

TEST(ClockBound, ForgedFastClaimIsNot) {
  const auto base = rounds(record(0.04, 0.0, 0.05, 40), 0.15);
  // It really spends 0.33 ms per sample in the timed span and claims 0.03.
  const auto cand = rounds(record(0.02, 0.0, 0.03, 40), 0.43);
  const auto b = kb::eval::clock_bound(base, cand, 0.0);
  EXPECT_FALSE(b.corroborated);
  EXPECT_NEAR(b.estimate_ms, 0.33, 1e-9);
}

TEST(ClockBound, WorkspaceScramblingIsCreditedToTheCandidate) {
  const auto base = rounds(record(0.04, 0.0, 0.05, 40), 0.15);
  const auto cand = rounds(record(0.02, 0.0, 0.03, 40), 0.43);
  EXPECT_TRUE(kb::eval::clock_bound(base, cand, 0.30).corroborated);
}

TEST(Seeds, TimedSamplesGetDistinctSeedsUnderKbenchAndOneUnderKernelBench) {
  EXPECT_NE(kb::eval::sample_seed(7, 0, false), kb::eval::sample_seed(7, 1, false));
  EXPECT_EQ(kb::eval::sample_seed(42, 0, true), kb::eval::sample_seed(42, 99, true));
}

TEST(Envelope, RoundTripsAndRejectsWhatIsNotOne) {
  kb::eval::CheckDone d;
  d.index = 3;
  d.input_checksums = {1, 2};
  const std::string line = kb::eval::encode(d, 17, "tok");
  auto e = kb::eval::decode(line, nullptr);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->type, "check_done");
  EXPECT_EQ(e->seq, 17u);
  EXPECT_EQ(e->token, "tok");
  EXPECT_EQ(e->body.get<kb::eval::CheckDone>().index, 3);
  std::string why;
  EXPECT_FALSE(kb::eval::decode(R"({"event":"done","timing":{}})", &why).has_value());
  EXPECT_EQ(why, "not a message envelope");
  EXPECT_FALSE(kb::eval::decode("garbage", &why).has_value());
}

} // namespace
