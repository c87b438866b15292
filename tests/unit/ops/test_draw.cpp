// The host input generator: Philox known-answer vectors, the distributions' ranges and
// determinism, rounding to each dtype and the raw encodings kbench-baseline's dump format uses.
#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

#include "op.hpp"

namespace kb {
namespace {

TEST(HostDraw, PhiloxMatchesRandom123KnownAnswers) {
  using C = std::array<uint32_t, 4>;
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (C{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  const uint32_t f = 0xffffffffu;
  EXPECT_EQ(philox4x32_10({f, f, f, f}, {f, f}),
            (C{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                          {0xa4093822u, 0x299f31d0u}),
            (C{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(HostDraw, UniformUsesTheFirstTwoWordsOfTheCounterBlock) {
  // Element 5 of stream 3 for seed 7: counter (5, 0, 3, 0), key (7, 0); 53 bits of words 0 and 1.
  const auto r = philox4x32_10({5, 0, 3, 0}, {7, 0});
  const uint64_t bits = ((uint64_t{r[0]} << 32) | r[1]) >> 11;
  const double u = static_cast<double>(bits) / 9007199254740992.0;
  const auto v = draw_host({DistKind::uniform, 0.0, 1.0}, DType::f64, 6, 7, 3);
  EXPECT_EQ(v[5], u);
  const auto w = draw_host({DistKind::uniform, -2.0, 6.0}, DType::f64, 6, 7, 3);
  EXPECT_EQ(w[5], std::fma(8.0, u, -2.0));
}

TEST(HostDraw, DeterministicPerSeedAndStream) {
  const Distribution d{DistKind::normal, 0.0, 1.0};
  const auto a = draw_host(d, DType::f32, 100, 42, 0);
  EXPECT_EQ(a, draw_host(d, DType::f32, 100, 42, 0));
  EXPECT_NE(a, draw_host(d, DType::f32, 100, 43, 0));
  EXPECT_NE(a, draw_host(d, DType::f32, 100, 42, 1));
  // A prefix of a longer draw: element i depends only on i, not on the tensor's size.
  const auto longer = draw_host(d, DType::f32, 300, 42, 0);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), longer.begin()));
}

TEST(HostDraw, DistributionsStayInRangeAndLookRight) {
  const int64_t n = 20000;
  const auto u = draw_host({DistKind::uniform, -1.0, 3.0}, DType::f32, n, 1, 0);
  double sum = 0;
  for (double v : u) {
    ASSERT_GE(v, -1.0);
    ASSERT_LT(v, 3.0);
    sum += v;
  }
  EXPECT_NEAR(sum / n, 1.0, 0.05);
  const auto ri = draw_host({DistKind::randint, 0.0, 10.0}, DType::i64, n, 1, 1);
  std::array<int, 10> counts{};
  for (double v : ri) {
    ASSERT_EQ(v, std::floor(v));
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 10.0);
    ++counts[static_cast<std::size_t>(v)];
  }
  for (int c : counts)
    EXPECT_GT(c, n / 20); // every value drawn about n / 10 times
  const auto nm = draw_host({DistKind::normal, 5.0, 2.0}, DType::f64, n, 1, 2);
  double m = 0, m2 = 0;
  for (double v : nm)
    m += v;
  m /= n;
  for (double v : nm)
    m2 += (v - m) * (v - m);
  EXPECT_NEAR(m, 5.0, 0.1);
  EXPECT_NEAR(std::sqrt(m2 / n), 2.0, 0.1);
  const auto c = draw_host({DistKind::constant, 2.5, 0.0}, DType::f16, 7, 1, 3);
  EXPECT_EQ(c, std::vector<double>(7, 2.5));
  const auto mask = draw_host({DistKind::randint, 0.0, 2.0}, DType::b8, 1000, 1, 4);
  int ones = 0;
  for (double v : mask) {
    ASSERT_TRUE(v == 0.0 || v == 1.0);
    ones += v == 1.0;
  }
  EXPECT_GT(ones, 400);
  EXPECT_LT(ones, 600);
}

TEST(HostDraw, BadDistributionsAreErrors) {
  EXPECT_THROW(draw_host({DistKind::uniform, 1.0, 1.0}, DType::f32, 4, 0, 0), Error);
  EXPECT_THROW(draw_host({DistKind::randint, 3.0, 2.0}, DType::i64, 4, 0, 0), Error);
  EXPECT_THROW(draw_host({DistKind::normal, 0.0, -1.0}, DType::f32, 4, 0, 0), Error);
  EXPECT_THROW(draw_host({DistKind::uniform, 0.0, 1.0}, DType::f32, -1, 0, 0), Error);
}

TEST(HostDraw, RoundsToEachDtypeToNearestEven) {
  const double third = 1.0 / 3.0;
  EXPECT_EQ(round_to_dtype(third, DType::f32), static_cast<double>(1.0f / 3.0f));
  EXPECT_EQ(round_to_dtype(third, DType::f16), 0.333251953125);           // 0x3555
  EXPECT_EQ(round_to_dtype(third, DType::bf16), 0.333984375);             // 0x3EAB
  EXPECT_EQ(round_to_dtype(1.0 + std::ldexp(1.0, -11), DType::f16), 1.0); // tie to even
  EXPECT_EQ(round_to_dtype(1.0 + 3 * std::ldexp(1.0, -11), DType::f16),
            1.0 + std::ldexp(1.0, -9)); // tie rounds up to the even mantissa
  EXPECT_EQ(round_to_dtype(65519.0, DType::f16), 65504.0);
  EXPECT_EQ(round_to_dtype(65520.0, DType::f16), std::numeric_limits<double>::infinity());
  EXPECT_EQ(round_to_dtype(-1e6, DType::f16), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(round_to_dtype(std::ldexp(1.0, -25) * 1.5, DType::f16), std::ldexp(1.0, -24));
  EXPECT_EQ(round_to_dtype(std::ldexp(1.0, -26), DType::f16), 0.0); // below half the least
  EXPECT_EQ(round_to_dtype(std::ldexp(255.0, 120), DType::bf16), std::ldexp(255.0, 120)); // max
  EXPECT_EQ(round_to_dtype(1e39, DType::bf16), std::numeric_limits<double>::infinity());
  EXPECT_EQ(round_to_dtype(-2.7, DType::i64), -2.0);
  EXPECT_EQ(round_to_dtype(0.25, DType::b8), 1.0);
  EXPECT_THROW(round_to_dtype(1e20, DType::i32), Error);
  EXPECT_THROW(round_to_dtype(std::nan(""), DType::i64), Error);
}

template <class T> T read_as(const std::vector<unsigned char>& bytes, std::size_t i) {
  T v;
  std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
  return v;
}

TEST(HostDraw, EncodesRawLittleEndianElements) {
  const std::vector<double> v = {1.0, -2.0, 1.0 / 3.0, 65504.0, std::ldexp(1.0, -24), 0.0};
  const auto h = encode_dtype(v, DType::f16);
  ASSERT_EQ(h.size(), v.size() * 2);
  const uint16_t want_h[] = {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x0000};
  for (std::size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(read_as<uint16_t>(h, i), want_h[i]) << i;
  const auto b = encode_dtype(v, DType::bf16);
  const uint16_t want_b[] = {0x3F80, 0xC000, 0x3EAB, 0x4780, 0x3380, 0x0000};
  for (std::size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(read_as<uint16_t>(b, i), want_b[i]) << i;
  const auto f = encode_dtype(v, DType::f32);
  EXPECT_EQ(read_as<float>(f, 2), 1.0f / 3.0f);
  const auto d = encode_dtype(v, DType::f64);
  EXPECT_EQ(read_as<double>(d, 2), 1.0 / 3.0);
  const auto i64 = encode_dtype(std::vector<double>{3, -4}, DType::i64);
  EXPECT_EQ(read_as<int64_t>(i64, 1), -4);
  const auto m = encode_dtype(std::vector<double>{0, 1, 0.5}, DType::b8);
  EXPECT_EQ(m, (std::vector<unsigned char>{0, 1, 1}));
}

} // namespace
} // namespace kb
