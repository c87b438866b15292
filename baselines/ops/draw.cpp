// Host twin of the GPU input generator (kb::gpu::fill): the same Philox4x32-10 counter stream and
// the same maps to each distribution, plus rounding to and encoding in each dtype, for tools that
// need a problem's inputs without a GPU (`kbench cpu-reference`).
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "ops_internal.hpp"

namespace kb {
namespace {

struct Philox4 {
  uint32_t v[4];
};

uint32_t mulhi(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((uint64_t{a} * b) >> 32);
}

// Philox4x32 with 10 rounds, word for word as fill.cu computes it (Random123's known-answer
// vectors hold for both; a unit test checks them).
Philox4 philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u, w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    const uint32_t lo0 = m0 * c0, hi0 = mulhi(m0, c0);
    const uint32_t lo1 = m1 * c2, hi1 = mulhi(m1, c2);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += w0;
    k1 += w1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

constexpr double k_two_pow_m53 = 1.0 / 9007199254740992.0;

// Rounds v to a binary format with `mant_bits` stored mantissa bits, smallest normal exponent
// `min_exp` and largest finite value `max_finite`: round to nearest, ties to even, subnormals kept,
// overflow to infinity (what the GPU's __double2half / __double2bfloat16 do).
double round_to_format(double v, int mant_bits, int min_exp, double max_finite) {
  if (!std::isfinite(v) || v == 0.0)
    return v;
  int e = 0;
  std::frexp(v, &e); // |v| = f * 2^e with f in [0.5, 1): the leading bit has weight 2^(e-1)
  const int lead = std::max(e - 1, min_exp);
  const double quantum = std::ldexp(1.0, lead - mant_bits);
  // v / quantum is exact (a power-of-two scaling); nearbyint rounds half to even.
  const double r = std::nearbyint(v / quantum) * quantum;
  if (std::abs(r) > max_finite)
    return std::copysign(std::numeric_limits<double>::infinity(), v);
  return r;
}

constexpr double k_f16_max = 65504.0;
const double k_bf16_max = std::ldexp(255.0, 120); // (2 - 2^-7) * 2^127

uint16_t half_bits(double r) {
  // r is already an f16 value.
  const uint16_t sign = std::signbit(r) ? 0x8000 : 0;
  if (std::isnan(r))
    return 0x7E00;
  const double a = std::abs(r);
  if (std::isinf(a))
    return sign | 0x7C00;
  if (a < std::ldexp(1.0, -14)) // subnormal (or zero): multiples of 2^-24
    return sign | static_cast<uint16_t>(std::ldexp(a, 24));
  const int e = std::ilogb(a);
  const auto mant = static_cast<uint16_t>(std::ldexp(a, 10 - e) - 1024.0);
  return sign | static_cast<uint16_t>((e + 15) << 10) | mant;
}

uint16_t bfloat_bits(double r) {
  // r is already a bf16 value, hence exactly a float whose low 16 bits are zero.
  if (std::isnan(r))
    return 0x7FC0;
  const float f = static_cast<float>(r);
  uint32_t u = 0;
  std::memcpy(&u, &f, sizeof(u));
  return static_cast<uint16_t>(u >> 16);
}

// v itself when its truncation lies in [lo, hi); throws otherwise (a conversion would be
// undefined).
double checked_integer(double v, double lo, double hi, DType t) {
  if (!(std::trunc(v) >= lo && std::trunc(v) < hi))
    throw Error(fmt::format("value {} does not fit in {}", v, dtype_name(t)));
  return v;
}

template <class T> void put(std::vector<unsigned char>& out, std::size_t i, T v) {
  std::memcpy(out.data() + i * sizeof(T), &v, sizeof(T));
}

} // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter,
                                      std::array<uint32_t, 2> key) {
  const Philox4 r = philox(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
  return {r.v[0], r.v[1], r.v[2], r.v[3]};
}

double round_to_dtype(double v, DType t) {
  switch (t) {
  case DType::f32:
    return static_cast<double>(static_cast<float>(v));
  case DType::f16:
    return round_to_format(v, 10, -14, k_f16_max);
  case DType::bf16:
    return round_to_format(v, 7, -126, k_bf16_max);
  case DType::f64:
    return v;
  case DType::i32:
    return std::trunc(checked_integer(v, -2147483648.0, 2147483648.0, t));
  case DType::i64:
    return std::trunc(checked_integer(v, -9223372036854775808.0, 9223372036854775808.0, t));
  case DType::b8:
    return v != 0.0 ? 1.0 : 0.0;
  }
  return v;
}

std::vector<double> draw_host(const Distribution& dist, DType dtype, int64_t n, uint64_t seed,
                              uint64_t stream_id) {
  if (n < 0)
    throw Error(fmt::format("draw_host: negative element count {}", n));
  if ((dist.kind == DistKind::uniform || dist.kind == DistKind::randint) && !(dist.b > dist.a))
    throw Error(fmt::format("draw_host: {} needs b > a, got a={} b={}", dist_kind_name(dist.kind),
                            dist.a, dist.b));
  if ((dist.kind == DistKind::normal || dist.kind == DistKind::ill_conditioned) && dist.b < 0)
    throw Error(
        fmt::format("draw_host: {} needs std >= 0, got {}", dist_kind_name(dist.kind), dist.b));
  const auto k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const auto s0 = static_cast<uint32_t>(stream_id), s1 = static_cast<uint32_t>(stream_id >> 32);
  std::vector<double> out(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double v = dist.a;
    if (dist.kind != DistKind::constant) {
      const auto ui = static_cast<uint64_t>(i);
      const Philox4 r =
          philox(static_cast<uint32_t>(ui), static_cast<uint32_t>(ui >> 32), s0, s1, k0, k1);
      const uint64_t bits0 = ((uint64_t{r.v[0]} << 32) | r.v[1]) >> 11;
      const double u = static_cast<double>(bits0) * k_two_pow_m53; // [0, 1)
      const double a = dist.a, b = dist.b;
      if (dist.kind == DistKind::uniform) {
        // fma: nvcc contracts the GPU's a + (b - a) * u into one by default (--fmad=true), so
        // the host rounds alike.
        v = std::fma(b - a, u, a);
        if (v >= b && b > a)
          v = std::nextafter(b, a);
      } else if (dist.kind == DistKind::randint) {
        v = std::floor(std::fma(b - a, u, a));
        if (v >= b)
          v = b - 1.0;
      } else { // normal, ill_conditioned: Box-Muller
        const double u1 = static_cast<double>(bits0 + 1) * k_two_pow_m53; // (0, 1]
        const uint64_t bits1 = ((uint64_t{r.v[2]} << 32) | r.v[3]) >> 11;
        const double u2 = static_cast<double>(bits1) * k_two_pow_m53;
        // The GPU uses cospi(2 u2); cos(2 pi u2) may differ from it in the last bit.
        v = std::fma(b * std::sqrt(-2.0 * std::log(u1)), std::cos(2.0 * std::numbers::pi * u2), a);
      }
    }
    out[static_cast<std::size_t>(i)] = round_to_dtype(v, dtype);
  }
  return out;
}

std::vector<unsigned char> encode_dtype(std::span<const double> values, DType t) {
  std::vector<unsigned char> out(values.size() * dtype_size(t));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    switch (t) {
    case DType::f32:
      put(out, i, static_cast<float>(v));
      break;
    case DType::f16:
      put(out, i, half_bits(round_to_dtype(v, t)));
      break;
    case DType::bf16:
      put(out, i, bfloat_bits(round_to_dtype(v, t)));
      break;
    case DType::f64:
      put(out, i, v);
      break;
    case DType::i32:
      put(out, i, static_cast<int32_t>(v));
      break;
    case DType::i64:
      put(out, i, static_cast<int64_t>(v));
      break;
    case DType::b8:
      put(out, i, static_cast<uint8_t>(v != 0.0 ? 1 : 0));
      break;
    }
  }
  return out;
}

} // namespace kb
