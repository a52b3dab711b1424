// IEEE 754 arithmetic for the RISC-V F and D extensions (see fpu.h).
//
// Strategy:
//  * Rounding modes RNE/RTZ/RDN/RUP: the host SSE/FMA unit does the arithmetic. Each
//    operation is a single asm block that loads MXCSR with the wanted rounding mode, all
//    exceptions masked, DAZ/FTZ off and the flags clear, runs the instruction, reads the
//    sticky flags and loads the default MXCSR (nearest) back. One asm block per operation means
//    the compiler cannot fold, hoist or reorder the arithmetic across the mode switch.
//    x86 SSE detects tininess after rounding, like RISC-V. NaN results are replaced by the
//    canonical NaN (x86's default NaN is negative).
//  * RMM (round to nearest, ties to max magnitude), which x86 lacks:
//      - double add/sub/mul/div/fma: an integer software path that forms the exact result
//        (or the exact result with a sticky bit) in 128 bits and rounds it once;
//      - single add/sub/mul/div/fma: the operation is done in double with RTZ and the
//        inexact flag ORed into the lowest significand bit ("round to odd"). 53 >= 24 + 2
//        bits, so rounding that value to single in any mode is correctly rounded; the
//        final double->single rounding is the software rounder.
//      - sqrt: a square root is never exactly half-way between two floating-point numbers
//        (a midpoint has p+1 significant bits and its square would need 2p+1), so RMM and
//        RNE agree and RNE is used.
//  * Single-precision FMA uses the host's single FMA (vfmadd231ss) for the four hardware
//    modes; RMM (or a host without FMA) uses the round-to-odd path above: the product of
//    two singles is exact in double, the sum is rounded to odd in double, then to single.
//  * Conversions to and from integers are done in integer arithmetic: saturation per the
//    unpriv spec's FCVT table, all five rounding modes alike.
//
// Build note: define NIMBUS_FPU_PORTABLE to use <cfenv> instead of x86 asm (the portable
// path relies on the host detecting tininess after rounding, as x86 does).

#include "cpu/fpu.h"

#include <bit>
#include <cstdint>
#include <utility>

#include "cpu/fpu_detail.h"

#if !defined(__x86_64__) || defined(NIMBUS_FPU_PORTABLE)
#define NIMBUS_FPU_USE_FENV 1
#include <cfenv>
#include <cmath>
#endif

namespace nimbus::cpu::fpu {

namespace {

using u128 = unsigned __int128;

constexpr uint32_t kSign32 = 0x80000000u;
constexpr uint64_t kSign64 = 0x8000000000000000ull;
constexpr uint32_t kInf32 = 0x7f800000u;
constexpr uint64_t kInf64 = 0x7ff0000000000000ull;

inline float f32(uint32_t x) { return std::bit_cast<float>(x); }
inline uint32_t b32(float x) { return std::bit_cast<uint32_t>(x); }
inline double f64(uint64_t x) { return std::bit_cast<double>(x); }
inline uint64_t b64(double x) { return std::bit_cast<uint64_t>(x); }

inline bool is_nan32(uint32_t a) { return (a & ~kSign32) > kInf32; }
inline bool is_snan32(uint32_t a) { return is_nan32(a) && !(a & 0x00400000u); }
inline bool is_inf32(uint32_t a) { return (a & ~kSign32) == kInf32; }
inline bool is_zero32(uint32_t a) { return (a & ~kSign32) == 0; }
inline bool is_nan64(uint64_t a) { return (a & ~kSign64) > kInf64; }
inline bool is_snan64(uint64_t a) { return is_nan64(a) && !(a & 0x0008000000000000ull); }
inline bool is_inf64(uint64_t a) { return (a & ~kSign64) == kInf64; }
inline bool is_zero64(uint64_t a) { return (a & ~kSign64) == 0; }

inline uint32_t canon32(float r) {
  uint32_t x = b32(r);
  return is_nan32(x) ? kCanonicalNaN32 : x;
}
inline uint64_t canon64(double r) {
  uint64_t x = b64(r);
  return is_nan64(x) ? kCanonicalNaN64 : x;
}

// 0 * inf in a fused multiply-add: invalid even when the addend is a quiet NaN.
inline bool inf_times_zero32(uint32_t a, uint32_t b) {
  return (is_inf32(a) && is_zero32(b)) || (is_zero32(a) && is_inf32(b));
}
inline bool inf_times_zero64(uint64_t a, uint64_t b) {
  return (is_inf64(a) && is_zero64(b)) || (is_zero64(a) && is_inf64(b));
}

// ---------------------------------------------------------------------------------------
// Host arithmetic in a given rounding mode (never called with RMM for final results).

#ifndef NIMBUS_FPU_USE_FENV

// MXCSR: all exceptions masked (bits 7-12), flags clear, DAZ and FTZ off; RC in bits 13-14
// (00 nearest, 01 down, 10 up, 11 toward zero). Indexed by rm; 4..7 map to nearest.
constexpr uint32_t kMxcsr[8] = {0x1f80, 0x7f80, 0x3f80, 0x5f80, 0x1f80, 0x1f80, 0x1f80, 0x1f80};

// Each operation is one asm statement: load the mode (flags cleared), compute, read the
// flags, load the default MXCSR back. Only one STMXCSR per operation (it is the slow part on
// some hosts); the host is left in its default state (round to nearest, all exceptions
// masked, flags clear) rather than having its own sticky flags restored, which nothing on
// the host side reads.
#define NIMBUS_HOST_BINOP(NAME, T, INSN)                        \
  inline T NAME(T a, T b, uint32_t rm, uint32_t& fl) {          \
    uint32_t mx = kMxcsr[rm & 7], dflt = kMxcsr[0], after;      \
    asm volatile("ldmxcsr %[mx]\n\t" INSN                       \
                 " %[b], %[a]\n\t"                              \
                 "stmxcsr %[after]\n\t"                         \
                 "ldmxcsr %[dflt]"                              \
                 : [a] "+x"(a), [after] "=m"(after)             \
                 : [b] "x"(b), [mx] "m"(mx), [dflt] "m"(dflt)); \
    fl |= mxcsr_flags(after);                                   \
    return a;                                                   \
  }

NIMBUS_HOST_BINOP(h_add_s, float, "addss")
NIMBUS_HOST_BINOP(h_sub_s, float, "subss")
NIMBUS_HOST_BINOP(h_mul_s, float, "mulss")
NIMBUS_HOST_BINOP(h_div_s, float, "divss")
NIMBUS_HOST_BINOP(h_add_d, double, "addsd")
NIMBUS_HOST_BINOP(h_sub_d, double, "subsd")
NIMBUS_HOST_BINOP(h_mul_d, double, "mulsd")
NIMBUS_HOST_BINOP(h_div_d, double, "divsd")
#undef NIMBUS_HOST_BINOP

#define NIMBUS_HOST_UNOP(NAME, TR, TA, INSN)                    \
  inline TR NAME(TA a, uint32_t rm, uint32_t& fl) {             \
    uint32_t mx = kMxcsr[rm & 7], dflt = kMxcsr[0], after;      \
    TR r;                                                       \
    asm volatile("ldmxcsr %[mx]\n\t" INSN                       \
                 " %[a], %[r]\n\t"                              \
                 "stmxcsr %[after]\n\t"                         \
                 "ldmxcsr %[dflt]"                              \
                 : [r] "=&x"(r), [after] "=m"(after)            \
                 : [a] "x"(a), [mx] "m"(mx), [dflt] "m"(dflt)); \
    fl |= mxcsr_flags(after);                                   \
    return r;                                                   \
  }

NIMBUS_HOST_UNOP(h_sqrt_s, float, float, "sqrtss")
NIMBUS_HOST_UNOP(h_sqrt_d, double, double, "sqrtsd")
NIMBUS_HOST_UNOP(h_cvt_s_d, float, double, "cvtsd2ss")
#undef NIMBUS_HOST_UNOP

// c = a * b + c with one rounding (FMA3). Only called when the CPU has FMA.
#define NIMBUS_HOST_FMA(NAME, T, INSN)                                      \
  inline T NAME(T a, T b, T c, uint32_t rm, uint32_t& fl) {                 \
    uint32_t mx = kMxcsr[rm & 7], dflt = kMxcsr[0], after;                  \
    asm volatile("ldmxcsr %[mx]\n\t" INSN                                   \
                 " %[b], %[a], %[c]\n\t"                                    \
                 "stmxcsr %[after]\n\t"                                     \
                 "ldmxcsr %[dflt]"                                          \
                 : [c] "+x"(c), [after] "=m"(after)                         \
                 : [a] "x"(a), [b] "x"(b), [mx] "m"(mx), [dflt] "m"(dflt)); \
    fl |= mxcsr_flags(after);                                               \
    return c;                                                               \
  }

NIMBUS_HOST_FMA(h_fma_s, float, "vfmadd231ss")
NIMBUS_HOST_FMA(h_fma_d, double, "vfmadd231sd")
#undef NIMBUS_HOST_FMA

bool detect_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("fma");
}
const bool kHostFma = detect_fma();

#else  // NIMBUS_FPU_USE_FENV

inline int fe_mode(uint32_t rm) {
  switch (rm) {
    case kRTZ:
      return FE_TOWARDZERO;
    case kRDN:
      return FE_DOWNWARD;
    case kRUP:
      return FE_UPWARD;
    default:
      return FE_TONEAREST;
  }
}

// Runs f() with the rounding mode set and the flags cleared; operands live in volatile
// storage inside f so the arithmetic cannot move out of the window.
template <typename F>
inline auto host_run(uint32_t rm, uint32_t& fl, F f) {
  std::fesetround(fe_mode(rm));
  std::feclearexcept(FE_ALL_EXCEPT);
  auto r = f();
  int e = std::fetestexcept(FE_ALL_EXCEPT);
  std::fesetround(FE_TONEAREST);
  if (e & FE_INVALID) fl |= kNV;
  if (e & FE_DIVBYZERO) fl |= kDZ;
  if (e & FE_OVERFLOW) fl |= kOF;
  if (e & FE_UNDERFLOW) fl |= kUF;
  if (e & FE_INEXACT) fl |= kNX;
  return r;
}

#define NIMBUS_HOST_BINOP(NAME, T, OP)                 \
  inline T NAME(T a, T b, uint32_t rm, uint32_t& fl) { \
    return host_run(rm, fl, [&] {                      \
      volatile T x = a, y = b;                         \
      volatile T r = x OP y;                           \
      return static_cast<T>(r);                        \
    });                                                \
  }
NIMBUS_HOST_BINOP(h_add_s, float, +)
NIMBUS_HOST_BINOP(h_sub_s, float, -)
NIMBUS_HOST_BINOP(h_mul_s, float, *)
NIMBUS_HOST_BINOP(h_div_s, float, /)
NIMBUS_HOST_BINOP(h_add_d, double, +)
NIMBUS_HOST_BINOP(h_sub_d, double, -)
NIMBUS_HOST_BINOP(h_mul_d, double, *)
NIMBUS_HOST_BINOP(h_div_d, double, /)
#undef NIMBUS_HOST_BINOP

inline float h_sqrt_s(float a, uint32_t rm, uint32_t& fl) {
  return host_run(rm, fl, [&] {
    volatile float x = a;
    volatile float r = std::sqrt(x);
    return static_cast<float>(r);
  });
}
inline double h_sqrt_d(double a, uint32_t rm, uint32_t& fl) {
  return host_run(rm, fl, [&] {
    volatile double x = a;
    volatile double r = std::sqrt(x);
    return static_cast<double>(r);
  });
}
inline float h_cvt_s_d(double a, uint32_t rm, uint32_t& fl) {
  return host_run(rm, fl, [&] {
    volatile double x = a;
    volatile float r = static_cast<float>(x);
    return static_cast<float>(r);
  });
}
inline float h_fma_s(float a, float b, float c, uint32_t rm, uint32_t& fl) {
  return host_run(rm, fl, [&] {
    volatile float x = a, y = b, z = c;
    volatile float r = std::fma(x, y, z);
    return static_cast<float>(r);
  });
}
inline double h_fma_d(double a, double b, double c, uint32_t rm, uint32_t& fl) {
  return host_run(rm, fl, [&] {
    volatile double x = a, y = b, z = c;
    volatile double r = std::fma(x, y, z);
    return static_cast<double>(r);
  });
}
const bool kHostFma = true;  // std::fma is correctly rounded

#endif  // NIMBUS_FPU_USE_FENV

// ---------------------------------------------------------------------------------------
// Software rounding.

template <int P, int BIAS>
struct Fmt {
  static constexpr int kP = P;        // precision including the hidden bit
  static constexpr int kBias = BIAS;  // emax = BIAS, emin = 1 - BIAS
  static constexpr uint64_t kInf = uint64_t(2 * BIAS + 1) << (P - 1);
  static constexpr uint64_t kSign = P == 24 ? 0x80000000ull : 0x8000000000000000ull;
};
using F32 = Fmt<24, 127>;
using F64 = Fmt<53, 1023>;

inline uint64_t shift_right_jam64(uint64_t x, int d) {
  if (d <= 0) return x;
  if (d >= 64) return x != 0;
  return (x >> d) | ((x << (64 - d)) != 0);
}
inline u128 shift_right_jam128(u128 x, int d) {
  if (d <= 0) return x;
  if (d >= 128) return x != 0;
  return (x >> d) | ((x << (128 - d)) != 0);
}
inline int top_bit128(u128 x) {  // x != 0
  uint64_t hi = uint64_t(x >> 64);
  return hi ? 127 - std::countl_zero(hi) : 63 - std::countl_zero(uint64_t(x));
}

// Whether to add one unit in the last place: q is the truncated significand, extra the
// discarded bits, half the weight of the first discarded bit.
inline bool round_increment(uint64_t q, uint64_t extra, uint64_t half, bool sign, uint32_t rm) {
  switch (rm) {
    case kRTZ:
      return false;
    case kRDN:
      return sign && extra != 0;
    case kRUP:
      return !sign && extra != 0;
    case kRMM:
      return extra >= half;
    default:
      return extra > half || (extra == half && (q & 1));
  }
}

template <class F>
uint64_t overflow_result(bool sign, uint32_t rm, uint32_t& fl) {
  fl |= kOF | kNX;
  bool to_inf;
  switch (rm) {
    case kRTZ:
      to_inf = false;
      break;
    case kRDN:
      to_inf = sign;
      break;
    case kRUP:
      to_inf = !sign;
      break;
    default:
      to_inf = true;
      break;
  }
  return (sign ? F::kSign : 0) | (to_inf ? F::kInf : F::kInf - 1);
}

// Rounds sign * (sig / 2^62) * 2^exp to format F. sig is normalized (bit 62 set, bit 63
// clear) and carries any sticky information in its low bits. Tininess is detected after
// rounding, as RISC-V requires.
template <class F>
uint64_t round_pack(bool sign, int exp, uint64_t sig, uint32_t rm, uint32_t& fl) {
  constexpr int kShift = 63 - F::kP;  // discarded bits below the last kept one
  constexpr uint64_t kMask = (uint64_t(1) << kShift) - 1;
  constexpr uint64_t kHalf = uint64_t(1) << (kShift - 1);
  constexpr int kEmin = 1 - F::kBias;
  if (exp > F::kBias) return overflow_result<F>(sign, rm, fl);
  bool tiny = false;
  if (exp < kEmin) {
    tiny = true;
    if (exp == kEmin - 1) {
      // Rounded to kP bits with an unbounded exponent, does it reach 2^emin?
      uint64_t q = sig >> kShift;
      q += round_increment(q, sig & kMask, kHalf, sign, rm);
      if (q >> F::kP) tiny = false;
    }
    sig = shift_right_jam64(sig, kEmin - exp);
    exp = kEmin;
  }
  uint64_t extra = sig & kMask;
  uint64_t q = sig >> kShift;
  q += round_increment(q, extra, kHalf, sign, rm);
  // A subnormal that rounds up to 2^emin, or a significand that carries out, moves into
  // the exponent field by the addition.
  uint64_t bits = (uint64_t(exp + F::kBias - 1) << (F::kP - 1)) + q;
  if (bits >= F::kInf) return overflow_result<F>(sign, rm, fl);
  if (extra) fl |= tiny ? (kNX | kUF) : kNX;
  return bits | (sign ? F::kSign : 0);
}

// Rounds sign * m * 2^e (m != 0) to format F.
template <class F>
uint64_t norm_round(bool sign, u128 m, int e, uint32_t rm, uint32_t& fl) {
  int t = top_bit128(m);
  uint64_t sig = t > 62 ? uint64_t(shift_right_jam128(m, t - 62)) : uint64_t(m) << (62 - t);
  return round_pack<F>(sign, e + t, sig, rm, fl);
}

// A finite nonzero double as sign * m * 2^e with m in [2^52, 2^53).
struct Unpacked {
  bool sign;
  int e;
  uint64_t m;
};
inline Unpacked unpack64(uint64_t a) {
  Unpacked u;
  u.sign = a >> 63;
  int field = int((a >> 52) & 0x7ff);
  uint64_t frac = a & 0x000fffffffffffffull;
  if (field) {
    u.m = frac | (uint64_t(1) << 52);
    u.e = field - 1075;
  } else {
    int lz = std::countl_zero(frac) - 11;
    u.m = frac << lz;
    u.e = -1074 - lz;
  }
  return u;
}

inline uint64_t signed_zero64(bool neg) { return neg ? kSign64 : 0; }

// Sign of an exact zero sum of operands with signs sa and sb.
inline bool zero_sum_sign(bool sa, bool sb, uint32_t rm) { return sa == sb ? sa : rm == kRDN; }

// Double -> single rounding of a non-NaN double value.
uint32_t round_d_to_s(uint64_t a, uint32_t rm, uint32_t& fl) {
  bool sign = a >> 63;
  if (is_inf64(a)) return (sign ? kSign32 : 0) | kInf32;
  if (is_zero64(a)) return sign ? kSign32 : 0;
  Unpacked u = unpack64(a);
  return uint32_t(norm_round<F32>(sign, u.m, u.e, rm, fl));
}

// Single result from a double computed with RTZ on exact single operands (flags `hf`
// from that computation): ORing the inexact flag into the lowest significand bit gives
// the round-to-odd double, from which one more rounding to single is correct.
inline uint32_t single_from_odd(double t, uint32_t hf, uint32_t rm, uint32_t& fl) {
  fl |= hf & (kNV | kDZ);
  uint64_t bits = b64(t);
  if (is_nan64(bits)) return kCanonicalNaN32;
  if (hf & kNX) bits |= 1;  // never zero or infinite here: singles cannot under/overflow
  if (rm == kRMM) return round_d_to_s(bits, rm, fl);
  return canon32(h_cvt_s_d(f64(bits), rm, fl));
}

inline double widen(uint32_t a) { return static_cast<double>(f32(a)); }  // a is not NaN

inline bool any_nan32(uint32_t a, uint32_t b, uint32_t& fl) {
  if (!is_nan32(a) && !is_nan32(b)) return false;
  if (is_snan32(a) || is_snan32(b)) fl |= kNV;
  return true;
}
inline bool any_nan64(uint64_t a, uint64_t b, uint32_t& fl) {
  if (!is_nan64(a) && !is_nan64(b)) return false;
  if (is_snan64(a) || is_snan64(b)) fl |= kNV;
  return true;
}

uint32_t fma_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& fl) {
  if (rm != kRMM && kHostFma) [[likely]] {
    if (inf_times_zero32(a, b)) fl |= kNV;
    return canon32(h_fma_s(f32(a), f32(b), f32(c), rm, fl));
  }
  return detail::odd_fma_s(a, b, c, rm, fl);
}

uint64_t fma_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& fl) {
  if (rm != kRMM && kHostFma) [[likely]] {
    if (inf_times_zero64(a, b)) fl |= kNV;
    return canon64(h_fma_d(f64(a), f64(b), f64(c), rm, fl));
  }
  return detail::soft_fma_d(a, b, c, rm, fl);
}

// Ordered integer key: key(x) < key(y) iff x < y for non-NaN x, y, with -0 < +0.
inline uint32_t key32(uint32_t x) { return (x & kSign32) ? ~x : x | kSign32; }
inline uint64_t key64(uint64_t x) { return (x & kSign64) ? ~x : x | kSign64; }

// ---- float -> integer ----

enum class IntKind { kW, kWU, kL, kLU };

// Rounds a non-NaN value to an integer: sign and magnitude (capped at 2^100 for huge
// values and infinities), with `inexact` set when the rounding discarded a fraction.
template <class F>
u128 round_to_int(uint64_t a, uint32_t rm, bool& sign, bool& inexact) {
  constexpr int kFracBits = F::kP - 1;
  constexpr uint64_t kFracMask = (uint64_t(1) << kFracBits) - 1;
  constexpr int kExpMax = 2 * F::kBias + 1;
  sign = (a & F::kSign) != 0;
  inexact = false;
  int field = int((a >> kFracBits) & uint64_t(kExpMax));
  uint64_t frac = a & kFracMask;
  if (field == kExpMax) return u128(1) << 100;  // infinity
  if (field == 0 && frac == 0) return 0;
  uint64_t m = field ? frac | (uint64_t(1) << kFracBits) : frac;
  int e = (field ? field : 1) - F::kBias - kFracBits;  // value = m * 2^e
  if (e >= 0) return e > 64 ? u128(1) << 100 : u128(m) << e;
  int sh = -e;
  uint64_t q, extra, half;
  if (sh > 62) {  // |value| < 2^(kP - 62) <= 1/4; all that matters is that it is nonzero
    q = 0;
    extra = 1;
    half = 2;
  } else {
    q = m >> sh;
    extra = m & ((uint64_t(1) << sh) - 1);
    half = uint64_t(1) << (sh - 1);
  }
  inexact = extra != 0;
  return q + round_increment(q, extra, half, sign, rm);
}

template <class F>
uint64_t to_int(uint64_t a, bool nan, IntKind kind, uint32_t rm, uint32_t& fl) {
  constexpr u128 kMaxW = 0x7fffffff, kMaxWU = 0xffffffff;
  constexpr u128 kMaxL = 0x7fffffffffffffffull, kMaxLU = ~uint64_t(0);
  uint64_t pos_sat, neg_sat;
  u128 pos_max, neg_max;  // largest magnitudes representable for each sign
  switch (kind) {
    case IntKind::kW:
      pos_sat = 0x7fffffff, neg_sat = 0xffffffff80000000ull, pos_max = kMaxW, neg_max = kMaxW + 1;
      break;
    case IntKind::kWU:
      pos_sat = ~uint64_t(0), neg_sat = 0, pos_max = kMaxWU, neg_max = 0;
      break;
    case IntKind::kL:
      pos_sat = 0x7fffffffffffffffull, neg_sat = kSign64, pos_max = kMaxL, neg_max = kMaxL + 1;
      break;
    default:
      pos_sat = ~uint64_t(0), neg_sat = 0, pos_max = kMaxLU, neg_max = 0;
      break;
  }
  if (nan) {
    fl |= kNV;
    return pos_sat;
  }
  bool sign, inexact;
  u128 mag = round_to_int<F>(a, rm, sign, inexact);
  if (sign ? mag > neg_max : mag > pos_max) {
    fl |= kNV;
    return sign ? neg_sat : pos_sat;
  }
  if (inexact) fl |= kNX;
  uint64_t v = sign ? 0 - uint64_t(mag) : uint64_t(mag);
  if (kind == IntKind::kW || kind == IntKind::kWU) v = uint64_t(int64_t(int32_t(uint32_t(v))));
  return v;
}

template <class F>
uint64_t from_int(bool sign, uint64_t mag, uint32_t rm, uint32_t& fl) {
  if (mag == 0) return 0;
  return norm_round<F>(sign, mag, 0, rm, fl);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Software paths.

namespace detail {

uint64_t soft_add_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& fl) {
  if (any_nan64(a, b, fl)) return kCanonicalNaN64;
  bool sa = a >> 63, sb = b >> 63;
  if (is_inf64(a)) {
    if (is_inf64(b) && sa != sb) {
      fl |= kNV;
      return kCanonicalNaN64;
    }
    return a;
  }
  if (is_inf64(b)) return b;
  if (is_zero64(a) && is_zero64(b)) return signed_zero64(zero_sum_sign(sa, sb, rm));
  if (is_zero64(a)) return b;
  if (is_zero64(b)) return a;
  Unpacked x = unpack64(a), y = unpack64(b);
  if (x.e < y.e || (x.e == y.e && x.m < y.m)) std::swap(x, y);  // |x| >= |y|
  int d = x.e - y.e;
  // x's significand sits 64 bits up, so it is even; y is shifted into place with its lost
  // bits jammed into bit 0. Bits are only lost when d > 64, and then the sum has >= 115
  // bits, so the jammed value rounds exactly like the true sum.
  u128 mx = u128(x.m) << 64;
  u128 my = shift_right_jam128(u128(y.m) << 64, d);
  u128 m = x.sign == y.sign ? mx + my : mx - my;
  if (m == 0) return signed_zero64(rm == kRDN);
  return norm_round<F64>(x.sign, m, x.e - 64, rm, fl);
}

uint64_t soft_mul_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& fl) {
  if (any_nan64(a, b, fl)) return kCanonicalNaN64;
  bool s = (a ^ b) >> 63;
  if (inf_times_zero64(a, b)) {
    fl |= kNV;
    return kCanonicalNaN64;
  }
  if (is_inf64(a) || is_inf64(b)) return signed_zero64(s) | kInf64;
  if (is_zero64(a) || is_zero64(b)) return signed_zero64(s);
  Unpacked x = unpack64(a), y = unpack64(b);
  return norm_round<F64>(s, u128(x.m) * y.m, x.e + y.e, rm, fl);
}

uint64_t soft_div_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& fl) {
  if (any_nan64(a, b, fl)) return kCanonicalNaN64;
  bool s = (a ^ b) >> 63;
  if ((is_inf64(a) && is_inf64(b)) || (is_zero64(a) && is_zero64(b))) {
    fl |= kNV;
    return kCanonicalNaN64;
  }
  if (is_inf64(a) || is_zero64(b)) {
    if (!is_inf64(a)) fl |= kDZ;
    return signed_zero64(s) | kInf64;
  }
  if (is_inf64(b) || is_zero64(a)) return signed_zero64(s);
  Unpacked x = unpack64(a), y = unpack64(b);
  u128 n = u128(x.m) << 74;  // quotient >= 2^73: plenty of bits below the rounding point
  u128 q = n / y.m;
  u128 r = n % y.m;
  return norm_round<F64>(s, q | (r != 0), x.e - y.e - 74, rm, fl);
}

uint64_t soft_fma_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& fl) {
  if (is_nan64(a) || is_nan64(b) || is_nan64(c)) {
    if (is_snan64(a) || is_snan64(b) || is_snan64(c) || inf_times_zero64(a, b)) fl |= kNV;
    return kCanonicalNaN64;
  }
  if (inf_times_zero64(a, b)) {
    fl |= kNV;
    return kCanonicalNaN64;
  }
  bool sp = (a ^ b) >> 63, sc = c >> 63;
  if (is_inf64(a) || is_inf64(b)) {
    if (is_inf64(c) && sc != sp) {
      fl |= kNV;
      return kCanonicalNaN64;
    }
    return signed_zero64(sp) | kInf64;
  }
  if (is_inf64(c)) return c;
  if (is_zero64(a) || is_zero64(b)) {
    if (is_zero64(c)) return signed_zero64(zero_sum_sign(sp, sc, rm));
    return c;
  }
  Unpacked x = unpack64(a), y = unpack64(b);
  u128 mp = u128(x.m) * y.m;  // 105 or 106 bits
  int ep = x.e + y.e;
  if (is_zero64(c)) return norm_round<F64>(sp, mp, ep, rm, fl);
  Unpacked z = unpack64(c);
  // Put both terms' leading bits at bit 125: the product then has >= 19 clear low bits
  // and the addend 73. Bits of the smaller term are lost only when the exponent gap is
  // >= 20, and then the sum has >= 125 bits, so jamming them into bit 0 (which makes the
  // sum odd, i.e. never on a rounding boundary) rounds exactly like the true sum.
  int tp = top_bit128(mp);
  u128 mx = mp << (125 - tp);
  int ex = ep - (125 - tp);
  bool sx = sp;
  u128 my = u128(z.m) << 73;
  int ey = z.e - 73;
  bool sy = sc;
  if (ex < ey || (ex == ey && mx < my)) {
    std::swap(mx, my);
    std::swap(ex, ey);
    std::swap(sx, sy);
  }
  my = shift_right_jam128(my, ex - ey);
  u128 m = sx == sy ? mx + my : mx - my;
  if (m == 0) return signed_zero64(rm == kRDN);
  return norm_round<F64>(sx, m, ex, rm, fl);
}

uint32_t soft_cvt_s_d(uint64_t a, uint32_t rm, uint32_t& fl) {
  if (is_nan64(a)) {
    if (is_snan64(a)) fl |= kNV;
    return kCanonicalNaN32;
  }
  return round_d_to_s(a, rm, fl);
}

uint32_t odd_add_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& fl) {
  if (any_nan32(a, b, fl)) return kCanonicalNaN32;
  uint32_t hf = 0;
  double t = h_add_d(widen(a), widen(b), kRTZ, hf);
  // An exact zero sum (cancellation or two zeros): RTZ gave the sign; RDN may differ.
  if ((b64(t) << 1) == 0) return zero_sum_sign(a >> 31, b >> 31, rm) ? kSign32 : 0;
  return single_from_odd(t, hf, rm, fl);
}

uint32_t odd_mul_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& fl) {
  if (any_nan32(a, b, fl)) return kCanonicalNaN32;
  uint32_t hf = 0;
  double t = h_mul_d(widen(a), widen(b), kRTZ, hf);  // exact: 24x24 bits
  return single_from_odd(t, hf, rm, fl);
}

uint32_t odd_div_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& fl) {
  if (any_nan32(a, b, fl)) return kCanonicalNaN32;
  uint32_t hf = 0;
  double t = h_div_d(widen(a), widen(b), kRTZ, hf);
  return single_from_odd(t, hf, rm, fl);
}

uint32_t odd_fma_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& fl) {
  if (is_nan32(a) || is_nan32(b) || is_nan32(c)) {
    if (is_snan32(a) || is_snan32(b) || is_snan32(c) || inf_times_zero32(a, b)) fl |= kNV;
    return kCanonicalNaN32;
  }
  uint32_t hf = 0;
  double p = h_mul_d(widen(a), widen(b), kRTZ, hf);  // exact (or NaN with NV for 0*inf)
  double t = h_add_d(p, widen(c), kRTZ, hf);
  // An exact zero sum (cancellation or two zeros): RTZ gave the sign; RDN may differ.
  if ((b64(t) << 1) == 0) return zero_sum_sign(b64(p) >> 63, c >> 31, rm) ? kSign32 : 0;
  return single_from_odd(t, hf, rm, fl);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Single precision.

uint32_t add_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::odd_add_s(a, b, rm, flags);
  return canon32(h_add_s(f32(a), f32(b), rm, flags));
}
uint32_t sub_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::odd_add_s(a, b ^ kSign32, rm, flags);
  return canon32(h_sub_s(f32(a), f32(b), rm, flags));
}
uint32_t mul_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::odd_mul_s(a, b, rm, flags);
  return canon32(h_mul_s(f32(a), f32(b), rm, flags));
}
uint32_t div_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::odd_div_s(a, b, rm, flags);
  return canon32(h_div_s(f32(a), f32(b), rm, flags));
}
uint32_t sqrt_s(uint32_t a, uint32_t rm, uint32_t& flags) {
  return canon32(h_sqrt_s(f32(a), rm == kRMM ? kRNE : rm, flags));  // never a tie: RMM == RNE
}
uint32_t fmadd_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags) {
  return fma_s(a, b, c, rm, flags);
}
uint32_t fmsub_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags) {
  return fma_s(a, b, c ^ kSign32, rm, flags);
}
uint32_t fnmsub_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags) {
  return fma_s(a ^ kSign32, b, c, rm, flags);
}
uint32_t fnmadd_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags) {
  return fma_s(a ^ kSign32, b, c ^ kSign32, rm, flags);
}

uint32_t min_s(uint32_t a, uint32_t b, uint32_t& flags) {
  bool an = is_nan32(a), bn = is_nan32(b);
  if (an || bn) {
    if (is_snan32(a) || is_snan32(b)) flags |= kNV;
    return an && bn ? kCanonicalNaN32 : an ? b : a;
  }
  return key32(a) <= key32(b) ? a : b;
}
uint32_t max_s(uint32_t a, uint32_t b, uint32_t& flags) {
  bool an = is_nan32(a), bn = is_nan32(b);
  if (an || bn) {
    if (is_snan32(a) || is_snan32(b)) flags |= kNV;
    return an && bn ? kCanonicalNaN32 : an ? b : a;
  }
  return key32(a) >= key32(b) ? a : b;
}

bool eq_s(uint32_t a, uint32_t b, uint32_t& flags) {
  if (is_nan32(a) || is_nan32(b)) {
    if (is_snan32(a) || is_snan32(b)) flags |= kNV;
    return false;
  }
  return a == b || ((a | b) & ~kSign32) == 0;
}
bool lt_s(uint32_t a, uint32_t b, uint32_t& flags) {
  if (is_nan32(a) || is_nan32(b)) {
    flags |= kNV;
    return false;
  }
  if (((a | b) & ~kSign32) == 0) return false;
  return key32(a) < key32(b);
}
bool le_s(uint32_t a, uint32_t b, uint32_t& flags) {
  if (is_nan32(a) || is_nan32(b)) {
    flags |= kNV;
    return false;
  }
  if (((a | b) & ~kSign32) == 0) return true;
  return key32(a) <= key32(b);
}

uint64_t class_s(uint32_t a) {
  bool neg = a >> 31;
  uint32_t exp = (a >> 23) & 0xff, frac = a & 0x7fffff;
  if (exp == 0xff) {
    if (frac == 0) return neg ? 1u << 0 : 1u << 7;
    return (frac & 0x400000) ? 1u << 9 : 1u << 8;
  }
  if (exp == 0) {
    if (frac == 0) return neg ? 1u << 3 : 1u << 4;
    return neg ? 1u << 2 : 1u << 5;
  }
  return neg ? 1u << 1 : 1u << 6;
}

// ---------------------------------------------------------------------------------------
// Double precision.

uint64_t add_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::soft_add_d(a, b, rm, flags);
  return canon64(h_add_d(f64(a), f64(b), rm, flags));
}
uint64_t sub_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::soft_add_d(a, b ^ kSign64, rm, flags);
  return canon64(h_sub_d(f64(a), f64(b), rm, flags));
}
uint64_t mul_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::soft_mul_d(a, b, rm, flags);
  return canon64(h_mul_d(f64(a), f64(b), rm, flags));
}
uint64_t div_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::soft_div_d(a, b, rm, flags);
  return canon64(h_div_d(f64(a), f64(b), rm, flags));
}
uint64_t sqrt_d(uint64_t a, uint32_t rm, uint32_t& flags) {
  return canon64(h_sqrt_d(f64(a), rm == kRMM ? kRNE : rm, flags));  // never a tie: RMM == RNE
}
uint64_t fmadd_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags) {
  return fma_d(a, b, c, rm, flags);
}
uint64_t fmsub_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags) {
  return fma_d(a, b, c ^ kSign64, rm, flags);
}
uint64_t fnmsub_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags) {
  return fma_d(a ^ kSign64, b, c, rm, flags);
}
uint64_t fnmadd_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags) {
  return fma_d(a ^ kSign64, b, c ^ kSign64, rm, flags);
}

uint64_t min_d(uint64_t a, uint64_t b, uint32_t& flags) {
  bool an = is_nan64(a), bn = is_nan64(b);
  if (an || bn) {
    if (is_snan64(a) || is_snan64(b)) flags |= kNV;
    return an && bn ? kCanonicalNaN64 : an ? b : a;
  }
  return key64(a) <= key64(b) ? a : b;
}
uint64_t max_d(uint64_t a, uint64_t b, uint32_t& flags) {
  bool an = is_nan64(a), bn = is_nan64(b);
  if (an || bn) {
    if (is_snan64(a) || is_snan64(b)) flags |= kNV;
    return an && bn ? kCanonicalNaN64 : an ? b : a;
  }
  return key64(a) >= key64(b) ? a : b;
}

bool eq_d(uint64_t a, uint64_t b, uint32_t& flags) {
  if (is_nan64(a) || is_nan64(b)) {
    if (is_snan64(a) || is_snan64(b)) flags |= kNV;
    return false;
  }
  return a == b || ((a | b) & ~kSign64) == 0;
}
bool lt_d(uint64_t a, uint64_t b, uint32_t& flags) {
  if (is_nan64(a) || is_nan64(b)) {
    flags |= kNV;
    return false;
  }
  if (((a | b) & ~kSign64) == 0) return false;
  return key64(a) < key64(b);
}
bool le_d(uint64_t a, uint64_t b, uint32_t& flags) {
  if (is_nan64(a) || is_nan64(b)) {
    flags |= kNV;
    return false;
  }
  if (((a | b) & ~kSign64) == 0) return true;
  return key64(a) <= key64(b);
}

uint64_t class_d(uint64_t a) {
  bool neg = a >> 63;
  uint64_t exp = (a >> 52) & 0x7ff, frac = a & 0x000fffffffffffffull;
  if (exp == 0x7ff) {
    if (frac == 0) return neg ? 1u << 0 : 1u << 7;
    return (frac & 0x0008000000000000ull) ? 1u << 9 : 1u << 8;
  }
  if (exp == 0) {
    if (frac == 0) return neg ? 1u << 3 : 1u << 4;
    return neg ? 1u << 2 : 1u << 5;
  }
  return neg ? 1u << 1 : 1u << 6;
}

// ---------------------------------------------------------------------------------------
// Conversions.

uint64_t cvt_w_s(uint32_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F32>(a, is_nan32(a), IntKind::kW, rm, flags);
}
uint64_t cvt_wu_s(uint32_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F32>(a, is_nan32(a), IntKind::kWU, rm, flags);
}
uint64_t cvt_l_s(uint32_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F32>(a, is_nan32(a), IntKind::kL, rm, flags);
}
uint64_t cvt_lu_s(uint32_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F32>(a, is_nan32(a), IntKind::kLU, rm, flags);
}
uint64_t cvt_w_d(uint64_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F64>(a, is_nan64(a), IntKind::kW, rm, flags);
}
uint64_t cvt_wu_d(uint64_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F64>(a, is_nan64(a), IntKind::kWU, rm, flags);
}
uint64_t cvt_l_d(uint64_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F64>(a, is_nan64(a), IntKind::kL, rm, flags);
}
uint64_t cvt_lu_d(uint64_t a, uint32_t rm, uint32_t& flags) {
  return to_int<F64>(a, is_nan64(a), IntKind::kLU, rm, flags);
}

uint32_t cvt_s_w(uint64_t a, uint32_t rm, uint32_t& flags) {
  int32_t v = int32_t(uint32_t(a));
  return uint32_t(from_int<F32>(v < 0, v < 0 ? 0 - uint64_t(int64_t(v)) : uint64_t(v), rm, flags));
}
uint32_t cvt_s_wu(uint64_t a, uint32_t rm, uint32_t& flags) {
  return uint32_t(from_int<F32>(false, uint32_t(a), rm, flags));
}
uint32_t cvt_s_l(uint64_t a, uint32_t rm, uint32_t& flags) {
  bool neg = int64_t(a) < 0;
  return uint32_t(from_int<F32>(neg, neg ? 0 - a : a, rm, flags));
}
uint32_t cvt_s_lu(uint64_t a, uint32_t rm, uint32_t& flags) {
  return uint32_t(from_int<F32>(false, a, rm, flags));
}
uint64_t cvt_d_w(uint64_t a, uint32_t rm, uint32_t& flags) {
  int32_t v = int32_t(uint32_t(a));
  return from_int<F64>(v < 0, v < 0 ? 0 - uint64_t(int64_t(v)) : uint64_t(v), rm, flags);
}
uint64_t cvt_d_wu(uint64_t a, uint32_t rm, uint32_t& flags) {
  return from_int<F64>(false, uint32_t(a), rm, flags);
}
uint64_t cvt_d_l(uint64_t a, uint32_t rm, uint32_t& flags) {
  bool neg = int64_t(a) < 0;
  return from_int<F64>(neg, neg ? 0 - a : a, rm, flags);
}
uint64_t cvt_d_lu(uint64_t a, uint32_t rm, uint32_t& flags) {
  return from_int<F64>(false, a, rm, flags);
}

uint32_t cvt_s_d(uint64_t a, uint32_t rm, uint32_t& flags) {
  if (rm == kRMM) [[unlikely]]
    return detail::soft_cvt_s_d(a, rm, flags);
  return canon32(h_cvt_s_d(f64(a), rm, flags));
}
uint64_t cvt_d_s(uint32_t a, uint32_t /*rm: exact*/, uint32_t& flags) {
  if (is_nan32(a)) {
    if (is_snan32(a)) flags |= kNV;
    return kCanonicalNaN64;
  }
  return b64(widen(a));  // exact
}

}  // namespace nimbus::cpu::fpu
