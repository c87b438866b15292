// Input generation and buffer utilities of the GPU op library: fill() determinism and moments,
// poison(), convert() and checksum().
#include <cmath>
#include <cstring>
#include <set>

#include "gpu_ops.hpp"
#include "gpu_test.hpp"

namespace kb::gpu {
namespace {

class GpuFillTest : public test::GpuTest {
protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (!IsSkipped())
      KB_CUDA_CHECK(cudaStreamCreate(&m_stream));
  }
  void TearDown() override {
    if (m_stream)
      cudaStreamDestroy(m_stream);
  }
  template <class T> std::vector<T> download(const DeviceTensor& t) {
    std::vector<T> h(t.numel());
    KB_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    KB_CUDA_CHECK(cudaMemcpy(h.data(), t.data, t.bytes(), cudaMemcpyDeviceToHost));
    return h;
  }
  cudaStream_t m_stream = nullptr;
};

struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v)
    m.mean += x;
  m.mean /= v.size();
  for (double x : v)
    m.var += (x - m.mean) * (x - m.mean);
  m.var /= v.size();
  return m;
}

TEST_F(GpuFillTest, SameSeedAndStreamGiveTheSameBitsAndPrefixesAgree) {
  const Distribution d{DistKind::normal, 0, 1};
  DeviceBuffer a(1000 * 4), b(1000 * 4), c(10 * 4);
  DeviceTensor ta{a.get(), DType::f32, {1000}}, tb{b.get(), DType::f32, {1000}},
      tc{c.get(), DType::f32, {10}};
  fill(ta, d, 42, 3, m_stream);
  fill(tb, d, 42, 3, m_stream);
  fill(tc, d, 42, 3, m_stream);
  EXPECT_EQ(checksum(ta, m_stream), checksum(tb, m_stream));
  const auto va = download<float>(ta), vc = download<float>(tc);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(va[i], vc[i]) << i; // element i depends only on (seed, stream, i)
  fill(tb, d, 43, 3, m_stream);
  EXPECT_NE(checksum(ta, m_stream), checksum(tb, m_stream));
  fill(tb, d, 42, 4, m_stream);
  EXPECT_NE(checksum(ta, m_stream), checksum(tb, m_stream));
}

TEST_F(GpuFillTest, DistributionsHaveTheirMoments) {
  const int64_t n = 1 << 20;
  DeviceBuffer buf(n * 8);
  DeviceTensor t{buf.get(), DType::f64, {n}};
  struct Expect {
    Distribution d;
    double mean, var, lo, hi;
  };
  const Expect expects[] = {
      {{DistKind::uniform, 2, 5}, 3.5, 0.75, 2, 5},
      {{DistKind::normal, 1, 2}, 1, 4, -1e9, 1e9},
      {{DistKind::ill_conditioned, 1000, 0.1}, 1000, 0.01, -1e9, 1e9},
      {{DistKind::randint, 0, 10}, 4.5, 8.25, 0, 9},
      {{DistKind::constant, 1.5, 0}, 1.5, 0, 1.5, 1.5},
  };
  for (const auto& e : expects) {
    SCOPED_TRACE(std::string(dist_kind_name(e.d.kind)));
    fill(t, e.d, 7, 1, m_stream);
    const auto v = download<double>(t);
    const Moments m = moments(v);
    const double sd = std::sqrt(e.var);
    EXPECT_NEAR(m.mean, e.mean, 5 * sd / std::sqrt(double(n)) + 1e-12);
    EXPECT_NEAR(m.var, e.var, 0.01 * e.var + 1e-12);
    for (double x : v) {
      ASSERT_GE(x, e.lo);
      ASSERT_LE(x, e.hi);
      if (e.d.kind == DistKind::randint) {
        ASSERT_EQ(x, std::floor(x));
      }
      if (e.d.kind == DistKind::uniform) {
        ASSERT_LT(x, e.hi); // half-open
      }
    }
  }
}

TEST_F(GpuFillTest, FillsEveryDtypeFromTheSameStream) {
  // The f32 and bf16 draws are the f64 draw rounded: same generator, same values.
  const int64_t n = 4096;
  DeviceBuffer b64(n * 8), b32(n * 4), bi(n * 8);
  DeviceTensor t64{b64.get(), DType::f64, {n}}, t32{b32.get(), DType::f32, {n}},
      ti{bi.get(), DType::i64, {n}};
  const Distribution d{DistKind::uniform, -3, 3};
  fill(t64, d, 5, 9, m_stream);
  fill(t32, d, 5, 9, m_stream);
  const auto v64 = download<double>(t64);
  const auto v32 = download<float>(t32);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(v32[i], static_cast<float>(v64[i])) << i;
  fill(ti, {DistKind::randint, -5, 5}, 5, 9, m_stream);
  const auto vi = download<int64_t>(ti);
  std::set<int64_t> seen(vi.begin(), vi.end());
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(*seen.begin(), -5);
  EXPECT_EQ(*seen.rbegin(), 4);
}

TEST_F(GpuFillTest, PoisonWritesNaNOrA5) {
  DeviceBuffer f(100 * 4), h(100 * 2), i(100 * 8);
  DeviceTensor tf{f.get(), DType::f32, {100}}, th{h.get(), DType::bf16, {100}},
      ti{i.get(), DType::i64, {100}};
  fill(tf, {DistKind::uniform, 0, 1}, 1, 0, m_stream);
  poison(tf, m_stream);
  poison(th, m_stream);
  poison(ti, m_stream);
  for (float x : download<float>(tf))
    ASSERT_TRUE(std::isnan(x));
  for (uint16_t x : download<uint16_t>(th))
    ASSERT_TRUE((x & 0x7F80) == 0x7F80 && (x & 0x7F) != 0); // bf16 NaN
  for (int64_t x : download<int64_t>(ti))
    ASSERT_EQ(static_cast<uint64_t>(x), 0xA5A5A5A5A5A5A5A5ull);
}

TEST_F(GpuFillTest, ConvertRoundTripsAndRounds) {
  const std::vector<double> values = {0.0, 1.0, -2.5, 3.140625, 65504.0, -0.0009765625, 7.0};
  const int64_t n = static_cast<int64_t>(values.size());
  DeviceBuffer src(n * 8), mid(n * 8), back(n * 8);
  KB_CUDA_CHECK(cudaMemcpy(src.get(), values.data(), n * 8, cudaMemcpyHostToDevice));
  DeviceTensor t64{src.get(), DType::f64, {n}}, r64{back.get(), DType::f64, {n}};
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    DeviceTensor m{mid.get(), t, {n}};
    convert(t64, m, m_stream);
    convert(m, r64, m_stream);
    const auto r = download<double>(r64);
    for (int64_t i = 0; i < n; ++i) {
      if (t == DType::bf16 && values[i] == 65504.0)
        EXPECT_EQ(r[i], 65536.0); // bf16 has 8 significant bits: rounds to nearest
      else if (t == DType::bf16 && values[i] == 3.140625)
        EXPECT_EQ(r[i], 3.140625);
      else
        EXPECT_EQ(r[i], values[i]);
    }
  }
  // Integers convert exactly through i64 <-> i32 and truncate from floating values.
  const std::vector<int64_t> ints = {-3, 0, 5, 1 << 30};
  DeviceBuffer bi(4 * 8), bj(4 * 4), bf(4 * 8);
  KB_CUDA_CHECK(cudaMemcpy(bi.get(), ints.data(), 4 * 8, cudaMemcpyHostToDevice));
  DeviceTensor ti{bi.get(), DType::i64, {4}}, tj{bj.get(), DType::i32, {4}},
      tf{bf.get(), DType::f64, {4}};
  convert(ti, tj, m_stream);
  const auto vj = download<int32_t>(tj);
  for (int k = 0; k < 4; ++k)
    EXPECT_EQ(vj[k], ints[k]);
  convert(tj, tf, m_stream);
  const auto vf = download<double>(tf);
  for (int k = 0; k < 4; ++k)
    EXPECT_EQ(vf[k], static_cast<double>(ints[k]));
}

TEST_F(GpuFillTest, ChecksumSeesEveryByteAndItsPosition) {
  std::vector<uint8_t> bytes(1001);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  DeviceBuffer buf(bytes.size());
  DeviceTensor t{buf.get(), DType::b8, {static_cast<int64_t>(bytes.size())}};
  auto upload = [&] {
    KB_CUDA_CHECK(cudaMemcpy(buf.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  };
  upload();
  const uint64_t base = checksum(t, m_stream);
  EXPECT_EQ(checksum(t, m_stream), base);
  bytes[1000] ^= 1; // the tail byte past the last full word
  upload();
  EXPECT_NE(checksum(t, m_stream), base);
  bytes[1000] ^= 1;
  std::swap(bytes[0], bytes[8]); // same multiset of words, different order
  upload();
  EXPECT_NE(checksum(t, m_stream), base);
  std::swap(bytes[0], bytes[8]);
  upload();
  EXPECT_EQ(checksum(t, m_stream), base);
  DeviceTensor shorter{buf.get(), DType::b8, {1000}};
  EXPECT_NE(checksum(shorter, m_stream), base);
}

} // namespace
} // namespace kb::gpu
