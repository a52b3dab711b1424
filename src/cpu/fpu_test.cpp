// Unit tests for the F/D arithmetic. Expected values are derived by hand from the RISC-V
// unprivileged spec (F and D chapters) and IEEE 754 rounding rules; the randomized tests at
// the end cross-check the software (RMM) paths against the host FPU in the other modes and
// against an independent midpoint-comparison reference for RMM.
#include "cpu/fpu.h"

#include <gtest/gtest.h>

#include <bit>
#include <cfenv>
#include <cstdint>
#include <random>

#include "cpu/fpu_detail.h"

namespace nimbus::cpu::fpu {

namespace {

// CHECK_FP's comparison, out of line: with two EXPECT_EQs expanded in place at each of the
// hundreds of checks below, this file took the longest of the build to compile.
template <typename T>
::testing::AssertionResult fp_is(const char* expr, T got, T want, uint32_t flags,
                                 uint32_t want_flags) {
  if (got == want && flags == want_flags) return ::testing::AssertionSuccess();
  ::testing::Message m;
  m << expr << std::hex;
  if (got != want) m << ": got 0x" << uint64_t(got) << " want 0x" << uint64_t(want);
  if (flags != want_flags) m << ": flags 0x" << flags << " want 0x" << want_flags;
  return ::testing::AssertionFailure() << m;
}

// Runs EXPR (which uses a local `fl`, starting at 0) and checks its value and flags.
#define CHECK_FP(EXPR, WANT, WANT_FLAGS)                                  \
  do {                                                                    \
    uint32_t fl = 0;                                                      \
    auto got_ = (EXPR);                                                   \
    EXPECT_TRUE(fp_is(#EXPR, got_, static_cast<decltype(got_)>(WANT), fl, \
                      static_cast<uint32_t>(WANT_FLAGS)));                \
  } while (0)

constexpr uint32_t kNone = 0;

// Singles.
constexpr uint32_t kS1 = 0x3f800000;     // 1.0
constexpr uint32_t kSm1 = 0xbf800000;    // -1.0
constexpr uint32_t kS2 = 0x40000000;     // 2.0
constexpr uint32_t kS3 = 0x40400000;     // 3.0
constexpr uint32_t kSHalf = 0x3f000000;  // 0.5
constexpr uint32_t kS2m24 = 0x33800000;  // 2^-24 (half an ulp of 1.0)
constexpr uint32_t kSZero = 0x00000000;
constexpr uint32_t kSNegZero = 0x80000000;
constexpr uint32_t kSInf = 0x7f800000;
constexpr uint32_t kSNegInf = 0xff800000;
constexpr uint32_t kSMax = 0x7f7fffff;      // (2 - 2^-23) * 2^127
constexpr uint32_t kSMinNorm = 0x00800000;  // 2^-126
constexpr uint32_t kSMinSub = 0x00000001;   // 2^-149
constexpr uint32_t kSQNaN = 0x7fc00000;
constexpr uint32_t kSSNaN = 0x7f800001;
constexpr uint32_t kSNegQNaN = 0xffc00000;  // x86's default NaN

// Doubles.
constexpr uint64_t kD1 = 0x3ff0000000000000;
constexpr uint64_t kDm1 = 0xbff0000000000000;
constexpr uint64_t kD2 = 0x4000000000000000;
constexpr uint64_t kD3 = 0x4008000000000000;
constexpr uint64_t kD2m53 = 0x3ca0000000000000;  // half an ulp of 1.0
constexpr uint64_t kDZero = 0;
constexpr uint64_t kDNegZero = 0x8000000000000000;
constexpr uint64_t kDInf = 0x7ff0000000000000;
constexpr uint64_t kDNegInf = 0xfff0000000000000;
constexpr uint64_t kDMax = 0x7fefffffffffffff;
constexpr uint64_t kDMinNorm = 0x0010000000000000;
constexpr uint64_t kDMinSub = 0x0000000000000001;
constexpr uint64_t kDQNaN = 0x7ff8000000000000;
constexpr uint64_t kDSNaN = 0x7ff0000000000001;
constexpr uint64_t kDNegQNaN = 0xfff8000000000000;

constexpr uint32_t kAllModes[] = {kRNE, kRTZ, kRDN, kRUP, kRMM};

// ---------------------------------------------------------------------------------------
// Rounding of add/sub.

TEST(FpuAdd, SingleTieToEvenVsAway) {
  // 1 + 2^-24 is exactly half-way between 1.0 (even) and 1 + 2^-23 (odd).
  CHECK_FP(add_s(kS1, kS2m24, kRNE, fl), 0x3f800000, kNX);
  CHECK_FP(add_s(kS1, kS2m24, kRMM, fl), 0x3f800001, kNX);
  CHECK_FP(add_s(kS1, kS2m24, kRTZ, fl), 0x3f800000, kNX);
  CHECK_FP(add_s(kS1, kS2m24, kRDN, fl), 0x3f800000, kNX);
  CHECK_FP(add_s(kS1, kS2m24, kRUP, fl), 0x3f800001, kNX);
  // (1 + 2^-23) + 2^-24: tie between ...01 (odd) and ...10 (even): both nearest modes go up.
  CHECK_FP(add_s(0x3f800001, kS2m24, kRNE, fl), 0x3f800002, kNX);
  CHECK_FP(add_s(0x3f800001, kS2m24, kRMM, fl), 0x3f800002, kNX);
  CHECK_FP(add_s(0x3f800001, kS2m24, kRTZ, fl), 0x3f800001, kNX);
  // Negative tie: -1 - 2^-24.
  CHECK_FP(add_s(kSm1, kS2m24 | 0x80000000, kRNE, fl), 0xbf800000, kNX);
  CHECK_FP(add_s(kSm1, kS2m24 | 0x80000000, kRMM, fl), 0xbf800001, kNX);
  CHECK_FP(add_s(kSm1, kS2m24 | 0x80000000, kRDN, fl), 0xbf800001, kNX);
  CHECK_FP(add_s(kSm1, kS2m24 | 0x80000000, kRUP, fl), 0xbf800000, kNX);
  CHECK_FP(add_s(kSm1, kS2m24 | 0x80000000, kRTZ, fl), 0xbf800000, kNX);
  // Same via sub_s.
  CHECK_FP(sub_s(kSm1, kS2m24, kRMM, fl), 0xbf800001, kNX);
  CHECK_FP(sub_s(kS1, kS2m24 | 0x80000000, kRMM, fl), 0x3f800001, kNX);
}

TEST(FpuAdd, SingleNonTies) {
  // 1 + 0.75 ulp (3 * 2^-25 = 0x33c00000): nearest modes round up.
  for (uint32_t rm : {kRNE, kRMM, kRUP}) CHECK_FP(add_s(kS1, 0x33c00000, rm, fl), 0x3f800001, kNX);
  for (uint32_t rm : {kRTZ, kRDN}) CHECK_FP(add_s(kS1, 0x33c00000, rm, fl), 0x3f800000, kNX);
  // 1 + 0.25 ulp (2^-25 = 0x33000000): nearest modes round down.
  for (uint32_t rm : {kRNE, kRMM, kRTZ, kRDN}) CHECK_FP(add_s(kS1, 0x33000000, rm, fl), kS1, kNX);
  CHECK_FP(add_s(kS1, 0x33000000, kRUP, fl), 0x3f800001, kNX);
  // Exact.
  for (uint32_t rm : kAllModes) CHECK_FP(add_s(kS1, kS2, rm, fl), kS3, kNone);
}

TEST(FpuAdd, DoubleTies) {
  CHECK_FP(add_d(kD1, kD2m53, kRNE, fl), kD1, kNX);
  CHECK_FP(add_d(kD1, kD2m53, kRMM, fl), 0x3ff0000000000001, kNX);
  CHECK_FP(add_d(kD1, kD2m53, kRTZ, fl), kD1, kNX);
  CHECK_FP(add_d(kD1, kD2m53, kRDN, fl), kD1, kNX);
  CHECK_FP(add_d(kD1, kD2m53, kRUP, fl), 0x3ff0000000000001, kNX);
  CHECK_FP(add_d(0x3ff0000000000001, kD2m53, kRNE, fl), 0x3ff0000000000002, kNX);
  CHECK_FP(add_d(0x3ff0000000000001, kD2m53, kRMM, fl), 0x3ff0000000000002, kNX);
  CHECK_FP(add_d(0x3ff0000000000001, kD2m53, kRTZ, fl), 0x3ff0000000000001, kNX);
  CHECK_FP(sub_d(kDm1, kD2m53, kRMM, fl), 0xbff0000000000001, kNX);
  CHECK_FP(sub_d(kDm1, kD2m53, kRNE, fl), kDm1, kNX);
  CHECK_FP(sub_d(kDm1, kD2m53, kRDN, fl), 0xbff0000000000001, kNX);
  // 1 + 2^-54 (quarter ulp) under RMM: stays at 1.
  CHECK_FP(add_d(kD1, 0x3c90000000000000, kRMM, fl), kD1, kNX);
  // A tiny addend far below the rounding point still makes the result inexact.
  CHECK_FP(add_d(kD1, kDMinSub, kRMM, fl), kD1, kNX);
  CHECK_FP(add_d(kD1, kDMinSub, kRUP, fl), 0x3ff0000000000001, kNX);
  CHECK_FP(sub_d(kD1, kDMinSub, kRMM, fl), kD1, kNX);
  CHECK_FP(sub_d(kD1, kDMinSub, kRTZ, fl), 0x3fefffffffffffff, kNX);
  for (uint32_t rm : kAllModes) CHECK_FP(add_d(kD1, kD2, rm, fl), kD3, kNone);
}

TEST(FpuAdd, SignedZeros) {
  // x + (-x) is +0 in every mode except RDN, where it is -0.
  for (uint32_t rm : {kRNE, kRTZ, kRUP, kRMM}) {
    CHECK_FP(add_s(kS3, kS3 | 0x80000000, rm, fl), kSZero, kNone);
    CHECK_FP(sub_s(kS3, kS3, rm, fl), kSZero, kNone);
    CHECK_FP(add_d(kD3, kD3 | kDNegZero, rm, fl), kDZero, kNone);
    CHECK_FP(sub_d(kD3, kD3, rm, fl), kDZero, kNone);
    CHECK_FP(add_s(kSZero, kSNegZero, rm, fl), kSZero, kNone);
    CHECK_FP(add_d(kDNegZero, kDZero, rm, fl), kDZero, kNone);
  }
  CHECK_FP(add_s(kS3, kS3 | 0x80000000, kRDN, fl), kSNegZero, kNone);
  CHECK_FP(sub_s(kS3, kS3, kRDN, fl), kSNegZero, kNone);
  CHECK_FP(add_d(kD3, kD3 | kDNegZero, kRDN, fl), kDNegZero, kNone);
  CHECK_FP(add_s(kSZero, kSNegZero, kRDN, fl), kSNegZero, kNone);
  CHECK_FP(add_d(kDNegZero, kDZero, kRDN, fl), kDNegZero, kNone);
  // Same-signed zeros keep their sign in all modes.
  for (uint32_t rm : kAllModes) {
    CHECK_FP(add_s(kSNegZero, kSNegZero, rm, fl), kSNegZero, kNone);
    CHECK_FP(add_d(kDNegZero, kDNegZero, rm, fl), kDNegZero, kNone);
    CHECK_FP(sub_d(kDNegZero, kDZero, rm, fl), kDNegZero, kNone);
    CHECK_FP(add_s(kSZero, kSZero, rm, fl), kSZero, kNone);
    // x + 0 == x exactly.
    CHECK_FP(add_s(kSMinSub, kSNegZero, rm, fl), kSMinSub, kNone);
  }
}

TEST(FpuAdd, SubnormalsAreExact) {
  // Subnormal sums are exact: no underflow flag without inexactness.
  for (uint32_t rm : kAllModes) {
    CHECK_FP(add_s(kSMinSub, kSMinSub, rm, fl), 0x00000002, kNone);
    CHECK_FP(add_s(0x007fffff, kSMinSub, rm, fl), kSMinNorm, kNone);
    CHECK_FP(sub_s(kSMinNorm, kSMinSub, rm, fl), 0x007fffff, kNone);
    CHECK_FP(add_d(kDMinSub, kDMinSub, rm, fl), 0x0000000000000002, kNone);
    CHECK_FP(sub_d(kDMinNorm, kDMinSub, rm, fl), 0x000fffffffffffff, kNone);
  }
}

TEST(FpuAdd, Overflow) {
  // max + max overflows: infinity or max finite depending on the direction.
  CHECK_FP(add_s(kSMax, kSMax, kRNE, fl), kSInf, kOF | kNX);
  CHECK_FP(add_s(kSMax, kSMax, kRMM, fl), kSInf, kOF | kNX);
  CHECK_FP(add_s(kSMax, kSMax, kRUP, fl), kSInf, kOF | kNX);
  CHECK_FP(add_s(kSMax, kSMax, kRTZ, fl), kSMax, kOF | kNX);
  CHECK_FP(add_s(kSMax, kSMax, kRDN, fl), kSMax, kOF | kNX);
  // max + half an ulp (2^103): RNE ties to "even" 2^128 -> overflow; RMM too. RTZ/RDN stay
  // at max and do NOT overflow (the rounded result is finite).
  CHECK_FP(add_s(kSMax, 0x73000000, kRNE, fl), kSInf, kOF | kNX);
  CHECK_FP(add_s(kSMax, 0x73000000, kRMM, fl), kSInf, kOF | kNX);
  CHECK_FP(add_s(kSMax, 0x73000000, kRUP, fl), kSInf, kOF | kNX);
  CHECK_FP(add_s(kSMax, 0x73000000, kRTZ, fl), kSMax, kNX);
  CHECK_FP(add_s(kSMax, 0x73000000, kRDN, fl), kSMax, kNX);
  // max + quarter ulp (2^102): nearest stays at max, no overflow.
  CHECK_FP(add_s(kSMax, 0x72800000, kRNE, fl), kSMax, kNX);
  CHECK_FP(add_s(kSMax, 0x72800000, kRMM, fl), kSMax, kNX);
  CHECK_FP(add_s(kSMax, 0x72800000, kRUP, fl), kSInf, kOF | kNX);
  // Doubles, negative side.
  const uint64_t nmax = kDMax | kDNegZero;
  CHECK_FP(add_d(nmax, nmax, kRNE, fl), kDNegInf, kOF | kNX);
  CHECK_FP(add_d(nmax, nmax, kRMM, fl), kDNegInf, kOF | kNX);
  CHECK_FP(add_d(nmax, nmax, kRDN, fl), kDNegInf, kOF | kNX);
  CHECK_FP(add_d(nmax, nmax, kRUP, fl), nmax, kOF | kNX);
  CHECK_FP(add_d(nmax, nmax, kRTZ, fl), nmax, kOF | kNX);
  // Infinity arithmetic is exact.
  CHECK_FP(add_s(kSInf, kSMax, kRNE, fl), kSInf, kNone);
  CHECK_FP(add_d(kDNegInf, kDMax, kRMM, fl), kDNegInf, kNone);
}

TEST(FpuAdd, NaNs) {
  for (uint32_t rm : kAllModes) {
    CHECK_FP(add_s(kSInf, kSNegInf, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(sub_s(kSInf, kSInf, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(add_d(kDNegInf, kDInf, rm, fl), kCanonicalNaN64, kNV);
    // Quiet NaNs propagate as the canonical NaN without flags, whatever sign/payload.
    CHECK_FP(add_s(0x7fc12345, kS1, rm, fl), kCanonicalNaN32, kNone);
    CHECK_FP(add_s(kS1, kSNegQNaN, rm, fl), kCanonicalNaN32, kNone);
    CHECK_FP(add_d(0xfff8000000abcdef, kD1, rm, fl), kCanonicalNaN64, kNone);
    CHECK_FP(sub_d(kDInf, kDQNaN, rm, fl), kCanonicalNaN64, kNone);
    // Signalling NaNs raise NV.
    CHECK_FP(add_s(kSSNaN, kS1, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(sub_s(kSQNaN, 0xffa00000, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(add_d(kD1, kDSNaN, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(sub_d(0xfff4000000000000, kDQNaN, rm, fl), kCanonicalNaN64, kNV);
  }
}

// ---------------------------------------------------------------------------------------
// mul / div / sqrt.

TEST(FpuMul, Ties) {
  // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: tie between 0x3f801000 (even) and 0x3f801001.
  const uint32_t a = 0x3f800800;
  CHECK_FP(mul_s(a, a, kRNE, fl), 0x3f801000, kNX);
  CHECK_FP(mul_s(a, a, kRMM, fl), 0x3f801001, kNX);
  CHECK_FP(mul_s(a, a, kRTZ, fl), 0x3f801000, kNX);
  CHECK_FP(mul_s(a, a, kRUP, fl), 0x3f801001, kNX);
  CHECK_FP(mul_s(a | 0x80000000, a, kRMM, fl), 0xbf801001, kNX);
  CHECK_FP(mul_s(a | 0x80000000, a, kRDN, fl), 0xbf801001, kNX);
  CHECK_FP(mul_s(a | 0x80000000, a, kRUP, fl), 0xbf801000, kNX);
  // (1 + 2^-26)(1 + 2^-27) = 1 + 2^-26 + 2^-27 + 2^-53: tie, truncation is even.
  const uint64_t x = 0x3ff0000004000000, y = 0x3ff0000002000000;
  CHECK_FP(mul_d(x, y, kRNE, fl), 0x3ff0000006000000, kNX);
  CHECK_FP(mul_d(x, y, kRMM, fl), 0x3ff0000006000001, kNX);
  CHECK_FP(mul_d(x, y, kRTZ, fl), 0x3ff0000006000000, kNX);
  CHECK_FP(mul_d(x, y, kRUP, fl), 0x3ff0000006000001, kNX);
  CHECK_FP(mul_d(x | kDNegZero, y, kRMM, fl), 0xbff0000006000001, kNX);
  CHECK_FP(mul_d(x | kDNegZero, y, kRNE, fl), 0xbff0000006000000, kNX);
  for (uint32_t rm : kAllModes) CHECK_FP(mul_d(kD3, kDm1, rm, fl), 0xc008000000000000, kNone);
}

TEST(FpuMul, UnderflowAndTininessAfterRounding) {
  // min_sub * 0.5 = 2^-150: tie between 0 (even) and min_sub.
  CHECK_FP(mul_s(kSMinSub, kSHalf, kRNE, fl), kSZero, kUF | kNX);
  CHECK_FP(mul_s(kSMinSub, kSHalf, kRMM, fl), kSMinSub, kUF | kNX);
  CHECK_FP(mul_s(kSMinSub, kSHalf, kRUP, fl), kSMinSub, kUF | kNX);
  CHECK_FP(mul_s(kSMinSub, kSHalf, kRTZ, fl), kSZero, kUF | kNX);
  CHECK_FP(mul_s(kSMinSub | 0x80000000, kSHalf, kRNE, fl), kSNegZero, kUF | kNX);
  CHECK_FP(mul_s(kSMinSub | 0x80000000, kSHalf, kRDN, fl), 0x80000001, kUF | kNX);
  CHECK_FP(mul_d(kDMinSub, 0x3fe0000000000000, kRNE, fl), kDZero, kUF | kNX);
  CHECK_FP(mul_d(kDMinSub, 0x3fe0000000000000, kRMM, fl), kDMinSub, kUF | kNX);
  // Exact subnormal results raise nothing.
  for (uint32_t rm : kAllModes) {
    CHECK_FP(mul_s(kSMinNorm, kSHalf, rm, fl), 0x00400000, kNone);
    CHECK_FP(mul_d(kDMinNorm, 0x3fe0000000000000, rm, fl), 0x0008000000000000, kNone);
  }
  // (1 - 2^-24) * 2^-126 = 2^-126 - 2^-150 has 24 significant bits, so rounding to 24 bits
  // with an unbounded exponent leaves it below 2^-126: tiny, and inexact in the format.
  // It is a tie between 0x007fffff and 0x00800000 (even).
  CHECK_FP(mul_s(0x3f7fffff, kSMinNorm, kRNE, fl), kSMinNorm, kUF | kNX);
  CHECK_FP(mul_s(0x3f7fffff, kSMinNorm, kRMM, fl), kSMinNorm, kUF | kNX);
  CHECK_FP(mul_s(0x3f7fffff, kSMinNorm, kRTZ, fl), 0x007fffff, kUF | kNX);
  // (1 - 2^-27)*2^-1022 times (1 + 2^-27) = 2^-1022 * (1 - 2^-54): 54 significant bits.
  // Rounded to 53 bits with unbounded exponent: a tie whose nearest-even (and away)
  // neighbour is 2^-1022 -> not tiny -> NX only. Directed down: tiny -> UF | NX.
  const uint64_t a = 0x000ffffffe000000, b = 0x3ff0000002000000;
  CHECK_FP(mul_d(a, b, kRNE, fl), kDMinNorm, kNX);
  CHECK_FP(mul_d(a, b, kRMM, fl), kDMinNorm, kNX);
  CHECK_FP(mul_d(a, b, kRUP, fl), kDMinNorm, kNX);
  CHECK_FP(mul_d(a, b, kRTZ, fl), 0x000fffffffffffff, kUF | kNX);
  CHECK_FP(mul_d(a, b, kRDN, fl), 0x000fffffffffffff, kUF | kNX);
  CHECK_FP(mul_d(a | kDNegZero, b, kRUP, fl), 0x800fffffffffffff, kUF | kNX);
  CHECK_FP(mul_d(a | kDNegZero, b, kRMM, fl), 0x8010000000000000, kNX);
  // Products far below the smallest subnormal.
  CHECK_FP(mul_d(kDMinSub, kDMinSub, kRNE, fl), kDZero, kUF | kNX);
  CHECK_FP(mul_d(kDMinSub, kDMinSub, kRMM, fl), kDZero, kUF | kNX);
  CHECK_FP(mul_d(kDMinSub, kDMinSub, kRUP, fl), kDMinSub, kUF | kNX);
  CHECK_FP(mul_d(kDMinSub | kDNegZero, kDMinSub, kRDN, fl), kDMinSub | kDNegZero, kUF | kNX);
}

TEST(FpuMul, OverflowAndSpecials) {
  CHECK_FP(mul_s(kSMax, kS2, kRNE, fl), kSInf, kOF | kNX);
  CHECK_FP(mul_s(kSMax, kS2, kRTZ, fl), kSMax, kOF | kNX);
  CHECK_FP(mul_s(kSMax, kS2, kRMM, fl), kSInf, kOF | kNX);
  CHECK_FP(mul_s(kSMax | 0x80000000, kS2, kRUP, fl), 0xff7fffff, kOF | kNX);
  CHECK_FP(mul_s(kSMax | 0x80000000, kS2, kRDN, fl), kSNegInf, kOF | kNX);
  CHECK_FP(mul_d(kDMax, kD2, kRTZ, fl), kDMax, kOF | kNX);
  CHECK_FP(mul_d(kDMax, kD2, kRMM, fl), kDInf, kOF | kNX);
  CHECK_FP(mul_d(kDMax, kD2 | kDNegZero, kRUP, fl), kDMax | kDNegZero, kOF | kNX);
  for (uint32_t rm : kAllModes) {
    CHECK_FP(mul_s(kSZero, kSInf, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(mul_d(kDNegInf, kDZero, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(mul_s(kSNegZero, kS3, rm, fl), kSNegZero, kNone);
    CHECK_FP(mul_d(kDNegInf, kDm1, rm, fl), kDInf, kNone);
    CHECK_FP(mul_d(kDSNaN, kDZero, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(mul_s(kSQNaN, kSZero, rm, fl), kCanonicalNaN32, kNone);
  }
}

TEST(FpuDiv, RoundingModes) {
  // 1/3 = 1.0101...b * 2^-2. Single: the discarded tail 1010... is > half -> RNE rounds up.
  CHECK_FP(div_s(kS1, kS3, kRNE, fl), 0x3eaaaaab, kNX);
  CHECK_FP(div_s(kS1, kS3, kRMM, fl), 0x3eaaaaab, kNX);
  CHECK_FP(div_s(kS1, kS3, kRTZ, fl), 0x3eaaaaaa, kNX);
  CHECK_FP(div_s(kS1, kS3, kRDN, fl), 0x3eaaaaaa, kNX);
  CHECK_FP(div_s(kS1, kS3, kRUP, fl), 0x3eaaaaab, kNX);
  CHECK_FP(div_s(kSm1, kS3, kRDN, fl), 0xbeaaaaab, kNX);
  CHECK_FP(div_s(kSm1, kS3, kRUP, fl), 0xbeaaaaaa, kNX);
  // Double: the discarded tail 0101... is < half -> RNE rounds down.
  CHECK_FP(div_d(kD1, kD3, kRNE, fl), 0x3fd5555555555555, kNX);
  CHECK_FP(div_d(kD1, kD3, kRMM, fl), 0x3fd5555555555555, kNX);
  CHECK_FP(div_d(kD1, kD3, kRTZ, fl), 0x3fd5555555555555, kNX);
  CHECK_FP(div_d(kD1, kD3, kRUP, fl), 0x3fd5555555555556, kNX);
  CHECK_FP(div_d(kDm1, kD3, kRDN, fl), 0xbfd5555555555556, kNX);
  for (uint32_t rm : kAllModes) CHECK_FP(div_d(kD3, kD2, rm, fl), 0x3ff8000000000000, kNone);
}

TEST(FpuDiv, SubnormalTies) {
  // 1.25*2^-126 / 2^22 = 2.5 * 2^-149: tie between 2 (even) and 3 units of 2^-149.
  const uint32_t a = 0x00a00000, b = 0x4a800000;
  CHECK_FP(div_s(a, b, kRNE, fl), 0x00000002, kUF | kNX);
  CHECK_FP(div_s(a, b, kRMM, fl), 0x00000003, kUF | kNX);
  CHECK_FP(div_s(a, b, kRTZ, fl), 0x00000002, kUF | kNX);
  CHECK_FP(div_s(a, b, kRUP, fl), 0x00000003, kUF | kNX);
  CHECK_FP(div_s(a | 0x80000000, b, kRMM, fl), 0x80000003, kUF | kNX);
  // 1.25*2^-1022 / 2^51 = 2.5 * 2^-1074.
  const uint64_t x = 0x0014000000000000, y = 0x4320000000000000;
  CHECK_FP(div_d(x, y, kRNE, fl), 0x0000000000000002, kUF | kNX);
  CHECK_FP(div_d(x, y, kRMM, fl), 0x0000000000000003, kUF | kNX);
  CHECK_FP(div_d(x, y, kRDN, fl), 0x0000000000000002, kUF | kNX);
  CHECK_FP(div_d(x | kDNegZero, y, kRMM, fl), 0x8000000000000003, kUF | kNX);
  CHECK_FP(div_d(x | kDNegZero, y, kRNE, fl), 0x8000000000000002, kUF | kNX);
}

TEST(FpuDiv, Specials) {
  for (uint32_t rm : kAllModes) {
    CHECK_FP(div_s(kS1, kSZero, rm, fl), kSInf, kDZ);
    CHECK_FP(div_s(kSm1, kSZero, rm, fl), kSNegInf, kDZ);
    CHECK_FP(div_s(kS1, kSNegZero, rm, fl), kSNegInf, kDZ);
    CHECK_FP(div_d(kDMinSub, kDNegZero, rm, fl), kDNegInf, kDZ);
    CHECK_FP(div_s(kSZero, kSZero, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(div_d(kDNegZero, kDZero, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(div_s(kSInf, kSNegInf, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(div_d(kDInf, kDInf, rm, fl), kCanonicalNaN64, kNV);
    // Infinite dividend: exact infinity, no division-by-zero flag.
    CHECK_FP(div_s(kSInf, kSZero, rm, fl), kSInf, kNone);
    CHECK_FP(div_d(kDNegInf, kDZero, rm, fl), kDNegInf, kNone);
    CHECK_FP(div_s(kS1, kSNegInf, rm, fl), kSNegZero, kNone);
    CHECK_FP(div_d(kDZero, kDm1, rm, fl), kDNegZero, kNone);
    CHECK_FP(div_d(kDQNaN, kDZero, rm, fl), kCanonicalNaN64, kNone);
    CHECK_FP(div_s(kS1, kSSNaN, rm, fl), kCanonicalNaN32, kNV);
  }
  // Overflowing quotient.
  CHECK_FP(div_s(kSMax, kSHalf, kRNE, fl), kSInf, kOF | kNX);
  CHECK_FP(div_d(kDMax, 0x3fe0000000000000, kRTZ, fl), kDMax, kOF | kNX);
  CHECK_FP(div_d(kDMax, 0x3fe0000000000000, kRMM, fl), kDInf, kOF | kNX);
}

TEST(FpuSqrt, Values) {
  for (uint32_t rm : kAllModes) {
    CHECK_FP(sqrt_s(0x40800000, rm, fl), kS2, kNone);  // sqrt(4) = 2
    CHECK_FP(sqrt_d(0x4010000000000000, rm, fl), kD2, kNone);
    CHECK_FP(sqrt_s(kSNegZero, rm, fl), kSNegZero, kNone);
    CHECK_FP(sqrt_d(kDNegZero, rm, fl), kDNegZero, kNone);
    CHECK_FP(sqrt_s(kSInf, rm, fl), kSInf, kNone);
    CHECK_FP(sqrt_s(kSm1, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(sqrt_d(kDm1, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(sqrt_d(kDNegInf, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(sqrt_s(kSMinSub | 0x80000000, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(sqrt_s(kSSNaN, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(sqrt_d(kDNegQNaN, rm, fl), kCanonicalNaN64, kNone);
    // sqrt(2^-1074) = 2^-537 exactly.
    CHECK_FP(sqrt_d(kDMinSub, rm, fl), 0x1e60000000000000, kNone);
  }
  // sqrt(2) = 1.41421356237...; single 0x3fb504f3 = 1.4142135381... is below it.
  for (uint32_t rm : {kRNE, kRMM, kRTZ, kRDN}) CHECK_FP(sqrt_s(kS2, rm, fl), 0x3fb504f3, kNX);
  CHECK_FP(sqrt_s(kS2, kRUP, fl), 0x3fb504f4, kNX);
  // Double 0x3ff6a09e667f3bcd = 1.41421356237309514... is above it.
  for (uint32_t rm : {kRNE, kRMM, kRUP}) CHECK_FP(sqrt_d(kD2, rm, fl), 0x3ff6a09e667f3bcd, kNX);
  for (uint32_t rm : {kRTZ, kRDN}) CHECK_FP(sqrt_d(kD2, rm, fl), 0x3ff6a09e667f3bcc, kNX);
}

// ---------------------------------------------------------------------------------------
// Fused multiply-add.

TEST(FpuFma, SingleRoundingSingle) {
  // (1 + 2^-12)^2 + c: the product alone is the tie 1 + 2^-11 + 2^-24.
  const uint32_t a = 0x3f800800, tiny = 0x21800000;  // 2^-60
  CHECK_FP(fmadd_s(a, a, kSZero, kRNE, fl), 0x3f801000, kNX);
  CHECK_FP(fmadd_s(a, a, kSZero, kRMM, fl), 0x3f801001, kNX);
  // A tiny addend pushes the value just above the tie. Computing in double and rounding
  // twice would lose it (double rounding) and give 0x3f801000.
  CHECK_FP(fmadd_s(a, a, tiny, kRNE, fl), 0x3f801001, kNX);
  CHECK_FP(fmadd_s(a, a, tiny, kRMM, fl), 0x3f801001, kNX);
  CHECK_FP(fmadd_s(a, a, tiny, kRTZ, fl), 0x3f801000, kNX);
  // ...or just below it.
  CHECK_FP(fmsub_s(a, a, tiny, kRNE, fl), 0x3f801000, kNX);
  CHECK_FP(fmsub_s(a, a, tiny, kRMM, fl), 0x3f801000, kNX);
  CHECK_FP(fmsub_s(a, a, tiny, kRUP, fl), 0x3f801001, kNX);
  // Negated forms: -(a*a) - tiny is just beyond the negative tie.
  CHECK_FP(fnmadd_s(a, a, tiny, kRNE, fl), 0xbf801001, kNX);
  CHECK_FP(fnmadd_s(a, a, tiny, kRMM, fl), 0xbf801001, kNX);
  CHECK_FP(fnmsub_s(a, a, tiny, kRMM, fl), 0xbf801000, kNX);
  CHECK_FP(fnmsub_s(a, a, tiny, kRDN, fl), 0xbf801001, kNX);
  // a*b - 1 exactly: 2^-11 + 2^-24 (= 0x3a000000 + 2^-24 -> mantissa bit 10).
  for (uint32_t rm : kAllModes) CHECK_FP(fmsub_s(a, a, kS1, rm, fl), 0x3a000400, kNone);
}

TEST(FpuFma, SingleTininessAfterRounding) {
  // (1 - 2^-13)*2^-126 * (1 + 2^-12) - 2^-139 = 2^-126 * (1 - 2^-25): rounded to 24 bits
  // with unbounded exponent it is a tie whose even neighbour is 2^-126, so not tiny.
  const uint32_t a = 0x007ffc00, b = 0x3f800800, c = 0x80000400;
  CHECK_FP(fmadd_s(a, b, c, kRNE, fl), kSMinNorm, kNX);
  CHECK_FP(fmadd_s(a, b, c, kRMM, fl), kSMinNorm, kNX);
  CHECK_FP(fmadd_s(a, b, c, kRUP, fl), kSMinNorm, kNX);
  CHECK_FP(fmadd_s(a, b, c, kRTZ, fl), 0x007fffff, kUF | kNX);
  CHECK_FP(fmadd_s(a, b, c, kRDN, fl), 0x007fffff, kUF | kNX);
}

TEST(FpuFma, Double) {
  const uint64_t x = 0x3ff0000004000000, y = 0x3ff0000002000000;  // 1+2^-26, 1+2^-27
  CHECK_FP(fmadd_d(x, y, kDZero, kRNE, fl), 0x3ff0000006000000, kNX);
  CHECK_FP(fmadd_d(x, y, kDZero, kRMM, fl), 0x3ff0000006000001, kNX);
  // x*y - 1 = 2^-26 + 2^-27 + 2^-53 exactly: no intermediate rounding of the product.
  for (uint32_t rm : kAllModes) CHECK_FP(fmsub_d(x, y, kD1, rm, fl), 0x3e58000002000000, kNone);
  for (uint32_t rm : kAllModes) {
    CHECK_FP(fnmsub_d(x, y, kD1, rm, fl), 0xbe58000002000000, kNone);
  }
  // Tie broken by a far-away addend: +-2^-1074 decides the direction.
  CHECK_FP(fmadd_d(x, y, kDMinSub, kRNE, fl), 0x3ff0000006000001, kNX);
  CHECK_FP(fmadd_d(x, y, kDMinSub | kDNegZero, kRNE, fl), 0x3ff0000006000000, kNX);
  CHECK_FP(fmadd_d(x, y, kDMinSub | kDNegZero, kRMM, fl), 0x3ff0000006000000, kNX);
  CHECK_FP(fmadd_d(x, y, kDMinSub, kRMM, fl), 0x3ff0000006000001, kNX);
  // Huge addend, tiny product: the product only contributes stickiness.
  CHECK_FP(fmadd_d(kDMinSub, kDMinSub, kD1, kRMM, fl), kD1, kNX);
  CHECK_FP(fmadd_d(kDMinSub, kDMinSub, kD1, kRUP, fl), 0x3ff0000000000001, kNX);
  CHECK_FP(fnmadd_d(kDMinSub, kDMinSub, kD1, kRMM, fl), kDm1, kNX);
  CHECK_FP(fnmsub_d(kDMinSub, kDMinSub, kD1, kRTZ, fl), 0x3fefffffffffffff, kNX);
  CHECK_FP(fnmsub_d(kDMinSub, kDMinSub, kD1, kRMM, fl), kD1, kNX);
  // Overflow.
  CHECK_FP(fmadd_d(kDMax, kD2, kDm1, kRMM, fl), kDInf, kOF | kNX);
  CHECK_FP(fmadd_d(kDMax, kD2, kDm1, kRTZ, fl), kDMax, kOF | kNX);
}

TEST(FpuFma, ZeroSigns) {
  for (uint32_t rm : {kRNE, kRTZ, kRUP, kRMM}) {
    CHECK_FP(fmadd_s(kSZero, kS1, kSNegZero, rm, fl), kSZero, kNone);
    CHECK_FP(fmsub_s(kS1, kS1, kS1, rm, fl), kSZero, kNone);
    CHECK_FP(fmadd_d(kDZero, kD1, kDNegZero, rm, fl), kDZero, kNone);
    CHECK_FP(fmsub_d(kD3, kD1, kD3, rm, fl), kDZero, kNone);
  }
  CHECK_FP(fmadd_s(kSZero, kS1, kSNegZero, kRDN, fl), kSNegZero, kNone);
  CHECK_FP(fmsub_s(kS1, kS1, kS1, kRDN, fl), kSNegZero, kNone);
  CHECK_FP(fmadd_d(kDZero, kD1, kDNegZero, kRDN, fl), kDNegZero, kNone);
  CHECK_FP(fmsub_d(kD3, kD1, kD3, kRDN, fl), kDNegZero, kNone);
  for (uint32_t rm : kAllModes) {
    // -(+0 * 1) - (+0) = -0 + -0 = -0 in every mode.
    CHECK_FP(fnmadd_s(kSZero, kS1, kSZero, rm, fl), kSNegZero, kNone);
    CHECK_FP(fnmadd_d(kDZero, kD1, kDZero, rm, fl), kDNegZero, kNone);
    // 0 * x + c = c exactly.
    CHECK_FP(fmadd_d(kDZero, kD3, kDMinSub, rm, fl), kDMinSub, kNone);
  }
}

TEST(FpuFma, Invalid) {
  for (uint32_t rm : kAllModes) {
    // 0 * inf raises NV even when the addend is a quiet NaN.
    CHECK_FP(fmadd_s(kSInf, kSZero, kSQNaN, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(fmadd_s(kSNegZero, kSNegInf, kSNegQNaN, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(fmadd_d(kDZero, kDInf, kDQNaN, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(fnmsub_d(kDInf, kDNegZero, kDNegQNaN, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(fmadd_s(kSInf, kSZero, kS1, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(fmadd_d(kDZero, kDNegInf, kD1, rm, fl), kCanonicalNaN64, kNV);
    // inf - inf.
    CHECK_FP(fmadd_s(kSInf, kS1, kSNegInf, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(fmsub_d(kDInf, kD1, kDInf, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(fmsub_d(kDInf, kD1, kDNegInf, rm, fl), kDInf, kNone);
    CHECK_FP(fnmadd_s(kSInf, kS1, kSInf, rm, fl), kSNegInf, kNone);
    // NaN operands.
    CHECK_FP(fmadd_s(kS1, kS1, kSQNaN, rm, fl), kCanonicalNaN32, kNone);
    CHECK_FP(fmadd_s(kSQNaN, kSInf, kS1, rm, fl), kCanonicalNaN32, kNone);
    CHECK_FP(fmadd_s(kS1, kS1, kSSNaN, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(fmadd_d(kDSNaN, kD1, kD1, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(fmadd_d(kD1, kDNegQNaN, kD1, rm, fl), kCanonicalNaN64, kNone);
  }
}

// ---------------------------------------------------------------------------------------
// min / max / compare / classify.

TEST(FpuMinMax, Rules) {
  uint32_t fl = 0;
  EXPECT_EQ(min_s(kSNegZero, kSZero, fl), kSNegZero);
  EXPECT_EQ(min_s(kSZero, kSNegZero, fl), kSNegZero);
  EXPECT_EQ(max_s(kSNegZero, kSZero, fl), kSZero);
  EXPECT_EQ(max_s(kSZero, kSNegZero, fl), kSZero);
  EXPECT_EQ(min_d(kDZero, kDNegZero, fl), kDNegZero);
  EXPECT_EQ(max_d(kDNegZero, kDZero, fl), kDZero);
  EXPECT_EQ(min_s(kS1, kS2, fl), kS1);
  EXPECT_EQ(max_s(kS1, kS2, fl), kS2);
  EXPECT_EQ(min_s(kSm1, kSMinSub, fl), kSm1);
  EXPECT_EQ(max_s(kSNegInf, kSm1, fl), kSm1);
  EXPECT_EQ(min_d(kDm1, kD3 | kDNegZero, fl), kD3 | kDNegZero);
  EXPECT_EQ(max_d(kDInf, kDMax, fl), kDInf);
  EXPECT_EQ(fl, kNone);
  // One quiet NaN: the other operand, no flags.
  EXPECT_EQ(min_s(kSQNaN, kS1, fl), kS1);
  EXPECT_EQ(max_s(kSm1, 0x7fc12345, fl), kSm1);
  EXPECT_EQ(min_s(kSNegQNaN, kSm1, fl), kSm1);
  EXPECT_EQ(max_d(kDNegQNaN, kDNegZero, fl), kDNegZero);
  EXPECT_EQ(fl, kNone);
  // Both quiet NaNs: canonical NaN, no flags.
  EXPECT_EQ(min_s(kSNegQNaN, 0x7fc00001, fl), kCanonicalNaN32);
  EXPECT_EQ(max_d(kDNegQNaN, kDNegQNaN, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNone);
  // Signalling NaNs raise NV; with a number they still return the number.
  CHECK_FP(min_s(kSSNaN, kS3, fl), kS3, kNV);
  CHECK_FP(max_s(kS3, 0xff800001, fl), kS3, kNV);
  CHECK_FP(max_s(kSSNaN, kSQNaN, fl), kCanonicalNaN32, kNV);
  CHECK_FP(min_d(kDSNaN, kDm1, fl), kDm1, kNV);
  CHECK_FP(max_d(kDQNaN, kDSNaN, fl), kCanonicalNaN64, kNV);
}

TEST(FpuCompare, Flags) {
  // feq is quiet: NV only for signalling NaNs.
  CHECK_FP(eq_s(kSQNaN, kS1, fl), false, kNone);
  CHECK_FP(eq_s(kSQNaN, kSQNaN, fl), false, kNone);
  CHECK_FP(eq_s(kSSNaN, kS1, fl), false, kNV);
  CHECK_FP(eq_d(kD1, kDSNaN, fl), false, kNV);
  CHECK_FP(eq_d(kDNegQNaN, kDNegQNaN, fl), false, kNone);
  // flt/fle signal on any NaN.
  CHECK_FP(lt_s(kSQNaN, kS1, fl), false, kNV);
  CHECK_FP(le_s(kS1, kSQNaN, fl), false, kNV);
  CHECK_FP(lt_d(kDQNaN, kD1, fl), false, kNV);
  CHECK_FP(le_d(kDSNaN, kD1, fl), false, kNV);
  // Ordered comparisons.
  CHECK_FP(eq_s(kSZero, kSNegZero, fl), true, kNone);
  CHECK_FP(eq_d(kDNegZero, kDZero, fl), true, kNone);
  CHECK_FP(lt_s(kSNegZero, kSZero, fl), false, kNone);
  CHECK_FP(le_s(kSNegZero, kSZero, fl), true, kNone);
  CHECK_FP(le_d(kDZero, kDNegZero, fl), true, kNone);
  CHECK_FP(lt_d(kDZero, kDNegZero, fl), false, kNone);
  CHECK_FP(lt_s(kSm1, kS1, fl), true, kNone);
  CHECK_FP(lt_s(kS1, kSm1, fl), false, kNone);
  CHECK_FP(lt_s(kS2, kS3, fl), true, kNone);
  CHECK_FP(lt_s(0xc0400000, 0xc0000000, fl), true, kNone);  // -3 < -2
  CHECK_FP(le_s(kS1, kS1, fl), true, kNone);
  CHECK_FP(lt_s(kS1, kS1, fl), false, kNone);
  CHECK_FP(lt_d(kDNegInf, kDInf, fl), true, kNone);
  CHECK_FP(eq_d(kDInf, kDInf, fl), true, kNone);
  CHECK_FP(lt_d(kDMinSub | kDNegZero, kDZero, fl), true, kNone);
  CHECK_FP(le_d(kD3, kD2, fl), false, kNone);
  CHECK_FP(eq_s(kS1, kS2, fl), false, kNone);
}

TEST(FpuClass, AllTenClasses) {
  EXPECT_EQ(class_s(kSNegInf), 1u << 0);
  EXPECT_EQ(class_s(kSm1), 1u << 1);
  EXPECT_EQ(class_s(0x807fffff), 1u << 2);
  EXPECT_EQ(class_s(kSNegZero), 1u << 3);
  EXPECT_EQ(class_s(kSZero), 1u << 4);
  EXPECT_EQ(class_s(kSMinSub), 1u << 5);
  EXPECT_EQ(class_s(kSMinNorm), 1u << 6);
  EXPECT_EQ(class_s(kSInf), 1u << 7);
  EXPECT_EQ(class_s(kSSNaN), 1u << 8);
  EXPECT_EQ(class_s(0xffbfffff), 1u << 8);
  EXPECT_EQ(class_s(kSQNaN), 1u << 9);
  EXPECT_EQ(class_s(kSNegQNaN), 1u << 9);
  EXPECT_EQ(class_d(kDNegInf), 1u << 0);
  EXPECT_EQ(class_d(kDMax | kDNegZero), 1u << 1);
  EXPECT_EQ(class_d(kDMinSub | kDNegZero), 1u << 2);
  EXPECT_EQ(class_d(kDNegZero), 1u << 3);
  EXPECT_EQ(class_d(kDZero), 1u << 4);
  EXPECT_EQ(class_d(0x000fffffffffffff), 1u << 5);
  EXPECT_EQ(class_d(kD1), 1u << 6);
  EXPECT_EQ(class_d(kDInf), 1u << 7);
  EXPECT_EQ(class_d(kDSNaN), 1u << 8);
  EXPECT_EQ(class_d(0xfff7ffffffffffff), 1u << 8);
  EXPECT_EQ(class_d(kDQNaN), 1u << 9);
  EXPECT_EQ(class_d(0xffffffffffffffff), 1u << 9);
}

// ---------------------------------------------------------------------------------------
// Float -> integer.

constexpr uint64_t kWMin = 0xffffffff80000000;  // INT32_MIN sign-extended
constexpr uint64_t kAllOnes = 0xffffffffffffffff;

TEST(FpuCvtToInt, RoundingModes) {
  const uint32_t s15 = 0x3fc00000, s25 = 0x40200000, sm25 = 0xc0200000;
  CHECK_FP(cvt_w_s(s15, kRNE, fl), 2, kNX);
  CHECK_FP(cvt_w_s(s25, kRNE, fl), 2, kNX);
  CHECK_FP(cvt_w_s(s25, kRMM, fl), 3, kNX);
  CHECK_FP(cvt_w_s(s25, kRTZ, fl), 2, kNX);
  CHECK_FP(cvt_w_s(s25, kRDN, fl), 2, kNX);
  CHECK_FP(cvt_w_s(s25, kRUP, fl), 3, kNX);
  CHECK_FP(cvt_w_s(sm25, kRNE, fl), uint64_t(-2), kNX);
  CHECK_FP(cvt_w_s(sm25, kRMM, fl), uint64_t(-3), kNX);
  CHECK_FP(cvt_w_s(sm25, kRTZ, fl), uint64_t(-2), kNX);
  CHECK_FP(cvt_w_s(sm25, kRDN, fl), uint64_t(-3), kNX);
  CHECK_FP(cvt_w_s(sm25, kRUP, fl), uint64_t(-2), kNX);
  CHECK_FP(cvt_w_s(kSHalf, kRNE, fl), 0, kNX);
  CHECK_FP(cvt_w_s(kSHalf, kRMM, fl), 1, kNX);
  CHECK_FP(cvt_l_s(kSHalf | 0x80000000, kRMM, fl), uint64_t(-1), kNX);
  CHECK_FP(cvt_l_d(0xc004000000000000, kRNE, fl), uint64_t(-2), kNX);  // -2.5
  CHECK_FP(cvt_l_d(0xc004000000000000, kRMM, fl), uint64_t(-3), kNX);
  CHECK_FP(cvt_l_d(0x400c000000000000, kRNE, fl), 4, kNX);  // 3.5
  CHECK_FP(cvt_lu_d(0x400c000000000000, kRMM, fl), 4, kNX);
  CHECK_FP(cvt_lu_d(0x400c000000000000, kRTZ, fl), 3, kNX);
  // Tiny values.
  CHECK_FP(cvt_w_s(kSMinSub, kRUP, fl), 1, kNX);
  CHECK_FP(cvt_w_s(kSMinSub, kRDN, fl), 0, kNX);
  CHECK_FP(cvt_w_s(kSMinSub, kRMM, fl), 0, kNX);
  CHECK_FP(cvt_w_d(kDMinSub | kDNegZero, kRDN, fl), kAllOnes, kNX);
  CHECK_FP(cvt_l_d(kDMinSub | kDNegZero, kRUP, fl), 0, kNX);
  // Exact values, zeros.
  for (uint32_t rm : kAllModes) {
    CHECK_FP(cvt_w_s(kSm1, rm, fl), kAllOnes, kNone);
    CHECK_FP(cvt_w_s(kSNegZero, rm, fl), 0, kNone);
    CHECK_FP(cvt_l_d(kD3, rm, fl), 3, kNone);
    CHECK_FP(cvt_wu_d(kDNegZero, rm, fl), 0, kNone);
    CHECK_FP(cvt_lu_s(kSNegZero, rm, fl), 0, kNone);
  }
}

TEST(FpuCvtToInt, SaturationTable) {
  for (uint32_t rm : kAllModes) {
    // NaN (any sign) -> largest positive value, NV.
    CHECK_FP(cvt_w_s(kSQNaN, rm, fl), 0x7fffffff, kNV);
    CHECK_FP(cvt_w_s(kSNegQNaN, rm, fl), 0x7fffffff, kNV);
    CHECK_FP(cvt_wu_s(kSSNaN, rm, fl), kAllOnes, kNV);
    CHECK_FP(cvt_l_d(kDNegQNaN, rm, fl), 0x7fffffffffffffff, kNV);
    CHECK_FP(cvt_lu_d(kDQNaN, rm, fl), kAllOnes, kNV);
    CHECK_FP(cvt_wu_d(kDSNaN, rm, fl), kAllOnes, kNV);
    // Infinities.
    CHECK_FP(cvt_w_s(kSInf, rm, fl), 0x7fffffff, kNV);
    CHECK_FP(cvt_w_s(kSNegInf, rm, fl), kWMin, kNV);
    CHECK_FP(cvt_wu_d(kDInf, rm, fl), kAllOnes, kNV);
    CHECK_FP(cvt_wu_d(kDNegInf, rm, fl), 0, kNV);
    CHECK_FP(cvt_l_s(kSInf, rm, fl), 0x7fffffffffffffff, kNV);
    CHECK_FP(cvt_l_s(kSNegInf, rm, fl), 0x8000000000000000, kNV);
    CHECK_FP(cvt_lu_s(kSInf, rm, fl), kAllOnes, kNV);
    CHECK_FP(cvt_lu_s(kSNegInf, rm, fl), 0, kNV);
    // Boundaries of W: 2^31 overflows, -2^31 is exact.
    CHECK_FP(cvt_w_s(0x4f000000, rm, fl), 0x7fffffff, kNV);
    CHECK_FP(cvt_w_s(0xcf000000, rm, fl), kWMin, kNone);
    CHECK_FP(cvt_w_s(0xcf000001, rm, fl), kWMin, kNV);                 // -(2^31 + 256)
    CHECK_FP(cvt_w_d(0x41dfffffffc00000, rm, fl), 0x7fffffff, kNone);  // 2^31 - 1
    // WU: 0xffffffff is returned sign-extended.
    CHECK_FP(cvt_wu_d(0x41efffffffe00000, rm, fl), kAllOnes, kNone);    // 2^32 - 1
    CHECK_FP(cvt_wu_s(0x4f32d05e, rm, fl), 0xffffffffb2d05e00, kNone);  // 3e9
    CHECK_FP(cvt_wu_s(0x4f800000, rm, fl), kAllOnes, kNV);              // 2^32
    CHECK_FP(cvt_wu_s(kSm1, rm, fl), 0, kNV);
    CHECK_FP(cvt_wu_d(kDm1, rm, fl), 0, kNV);
    // L / LU boundaries.
    CHECK_FP(cvt_l_s(0x5f000000, rm, fl), 0x7fffffffffffffff, kNV);    // 2^63
    CHECK_FP(cvt_l_s(0xdf000000, rm, fl), 0x8000000000000000, kNone);  // -2^63
    CHECK_FP(cvt_l_d(0xc3e0000000000001, rm, fl), 0x8000000000000000, kNV);
    CHECK_FP(cvt_l_d(0x43dfffffffffffff, rm, fl), 0x7ffffffffffffc00, kNone);
    CHECK_FP(cvt_l_d(0x7e37e43c8800759c, rm, fl), 0x7fffffffffffffff, kNV);  // 1e300
    CHECK_FP(cvt_lu_s(0x5f000000, rm, fl), 0x8000000000000000, kNone);
    CHECK_FP(cvt_lu_s(0x5f800000, rm, fl), kAllOnes, kNV);  // 2^64
    CHECK_FP(cvt_lu_d(0x43efffffffffffff, rm, fl), 0xfffffffffffff800, kNone);
    CHECK_FP(cvt_lu_d(kDMax, rm, fl), kAllOnes, kNV);
    CHECK_FP(cvt_lu_s(kSm1, rm, fl), 0, kNV);
    CHECK_FP(cvt_lu_d(kDMax | kDNegZero, rm, fl), 0, kNV);
  }
  // The range check applies to the rounded value.
  const uint64_t d_int_max_half = 0x41dfffffffe00000;            // 2147483647.5
  CHECK_FP(cvt_w_d(d_int_max_half, kRNE, fl), 0x7fffffff, kNV);  // ties to 2^31
  CHECK_FP(cvt_w_d(d_int_max_half, kRMM, fl), 0x7fffffff, kNV);
  CHECK_FP(cvt_w_d(d_int_max_half, kRUP, fl), 0x7fffffff, kNV);
  CHECK_FP(cvt_w_d(d_int_max_half, kRTZ, fl), 0x7fffffff, kNX);
  CHECK_FP(cvt_w_d(d_int_max_half, kRDN, fl), 0x7fffffff, kNX);
  const uint64_t d_int_min_half = 0xc1e0000000100000;       // -2147483648.5
  CHECK_FP(cvt_w_d(d_int_min_half, kRNE, fl), kWMin, kNX);  // ties to even -2^31
  CHECK_FP(cvt_w_d(d_int_min_half, kRTZ, fl), kWMin, kNX);
  CHECK_FP(cvt_w_d(d_int_min_half, kRMM, fl), kWMin, kNV);
  CHECK_FP(cvt_w_d(d_int_min_half, kRDN, fl), kWMin, kNV);
  const uint64_t d_uint_max_half = 0x41effffffff00000;  // 4294967295.5
  CHECK_FP(cvt_wu_d(d_uint_max_half, kRNE, fl), kAllOnes, kNV);
  CHECK_FP(cvt_wu_d(d_uint_max_half, kRTZ, fl), kAllOnes, kNX);
  // Negative values that round to zero are valid for unsigned conversions.
  const uint32_t sm03 = 0xbe99999a;  // -0.3
  CHECK_FP(cvt_wu_s(sm03, kRTZ, fl), 0, kNX);
  CHECK_FP(cvt_wu_s(sm03, kRNE, fl), 0, kNX);
  CHECK_FP(cvt_wu_s(sm03, kRMM, fl), 0, kNX);
  CHECK_FP(cvt_wu_s(sm03, kRUP, fl), 0, kNX);
  CHECK_FP(cvt_wu_s(sm03, kRDN, fl), 0, kNV);  // rounds to -1
  CHECK_FP(cvt_lu_s(kSHalf | 0x80000000, kRNE, fl), 0, kNX);
  CHECK_FP(cvt_lu_s(kSHalf | 0x80000000, kRMM, fl), 0, kNV);
  CHECK_FP(cvt_lu_d(0xbfe0000000000000, kRDN, fl), 0, kNV);
}

// ---------------------------------------------------------------------------------------
// Integer -> float.

TEST(FpuCvtFromInt, Values) {
  for (uint32_t rm : kAllModes) {
    CHECK_FP(cvt_s_w(0x12345678ffffffff, rm, fl), kSm1, kNone);  // only the low 32 bits
    CHECK_FP(cvt_s_w(0, rm, fl), kSZero, kNone);
    CHECK_FP(cvt_s_w(0x80000000, rm, fl), 0xcf000000, kNone);  // INT32_MIN
    CHECK_FP(cvt_s_wu(0x80000000, rm, fl), 0x4f000000, kNone);
    CHECK_FP(cvt_s_l(0x8000000000000000, rm, fl), 0xdf000000, kNone);
    CHECK_FP(cvt_d_w(0xffffffff, rm, fl), kDm1, kNone);
    CHECK_FP(cvt_d_wu(0xffffffff, rm, fl), 0x41efffffffe00000, kNone);
    CHECK_FP(cvt_d_wu(0xdeadbeef00000003, rm, fl), kD3, kNone);
    CHECK_FP(cvt_d_l(0x8000000000000000, rm, fl), 0xc3e0000000000000, kNone);
    CHECK_FP(cvt_d_lu(0, rm, fl), kDZero, kNone);
    CHECK_FP(cvt_d_l(uint64_t(-3), rm, fl), 0xc008000000000000, kNone);
  }
  // 2^24 + 1: tie between 2^24 (even) and 2^24 + 2.
  CHECK_FP(cvt_s_w(16777217, kRNE, fl), 0x4b800000, kNX);
  CHECK_FP(cvt_s_w(16777217, kRMM, fl), 0x4b800001, kNX);
  CHECK_FP(cvt_s_w(16777217, kRTZ, fl), 0x4b800000, kNX);
  CHECK_FP(cvt_s_w(16777217, kRUP, fl), 0x4b800001, kNX);
  CHECK_FP(cvt_s_w(uint64_t(-16777217), kRMM, fl), 0xcb800001, kNX);
  CHECK_FP(cvt_s_w(uint64_t(-16777217), kRDN, fl), 0xcb800001, kNX);
  CHECK_FP(cvt_s_w(uint64_t(-16777217), kRUP, fl), 0xcb800000, kNX);
  CHECK_FP(cvt_s_w(uint64_t(-16777217), kRNE, fl), 0xcb800000, kNX);
  // 2^24 + 3: tie between 2^24 + 2 (odd significand) and 2^24 + 4 (even).
  CHECK_FP(cvt_s_wu(16777219, kRNE, fl), 0x4b800002, kNX);
  CHECK_FP(cvt_s_wu(16777219, kRMM, fl), 0x4b800002, kNX);
  CHECK_FP(cvt_s_wu(16777219, kRTZ, fl), 0x4b800001, kNX);
  // 2^32 - 1 rounds to 2^32 or to 2^32 - 256.
  CHECK_FP(cvt_s_wu(0xffffffff, kRNE, fl), 0x4f800000, kNX);
  CHECK_FP(cvt_s_wu(0xffffffff, kRTZ, fl), 0x4f7fffff, kNX);
  CHECK_FP(cvt_s_lu(kAllOnes, kRNE, fl), 0x5f800000, kNX);
  CHECK_FP(cvt_s_lu(kAllOnes, kRMM, fl), 0x5f800000, kNX);
  CHECK_FP(cvt_s_lu(kAllOnes, kRDN, fl), 0x5f7fffff, kNX);
  CHECK_FP(cvt_s_l(kAllOnes, kRNE, fl), kSm1, kNone);
  // Doubles: 2^53 + 1 is a tie.
  CHECK_FP(cvt_d_l(0x20000000000001, kRNE, fl), 0x4340000000000000, kNX);
  CHECK_FP(cvt_d_l(0x20000000000001, kRMM, fl), 0x4340000000000001, kNX);
  CHECK_FP(cvt_d_l(uint64_t(-0x20000000000001), kRMM, fl), 0xc340000000000001, kNX);
  CHECK_FP(cvt_d_l(uint64_t(-0x20000000000001), kRUP, fl), 0xc340000000000000, kNX);
  CHECK_FP(cvt_d_lu(kAllOnes, kRNE, fl), 0x43f0000000000000, kNX);
  CHECK_FP(cvt_d_lu(kAllOnes, kRTZ, fl), 0x43efffffffffffff, kNX);
  CHECK_FP(cvt_d_l(0x7fffffffffffffff, kRNE, fl), 0x43e0000000000000, kNX);
  CHECK_FP(cvt_d_l(0x7fffffffffffffff, kRDN, fl), 0x43dfffffffffffff, kNX);
}

// ---------------------------------------------------------------------------------------
// Float <-> float.

TEST(FpuCvtFloat, Narrowing) {
  CHECK_FP(cvt_s_d(0x3fd5555555555555, kRNE, fl), 0x3eaaaaab, kNX);  // 1/3
  CHECK_FP(cvt_s_d(0x3fd5555555555555, kRTZ, fl), 0x3eaaaaaa, kNX);
  CHECK_FP(cvt_s_d(0x3fd5555555555555, kRMM, fl), 0x3eaaaaab, kNX);
  // 1 + 2^-24: a tie.
  CHECK_FP(cvt_s_d(0x3ff0000010000000, kRNE, fl), kS1, kNX);
  CHECK_FP(cvt_s_d(0x3ff0000010000000, kRMM, fl), 0x3f800001, kNX);
  CHECK_FP(cvt_s_d(0xbff0000010000000, kRMM, fl), 0xbf800001, kNX);
  CHECK_FP(cvt_s_d(0xbff0000010000000, kRUP, fl), kSm1, kNX);
  // Overflow.
  const uint64_t big = 0x7e37e43c8800759c;  // 1e300
  CHECK_FP(cvt_s_d(big, kRNE, fl), kSInf, kOF | kNX);
  CHECK_FP(cvt_s_d(big, kRMM, fl), kSInf, kOF | kNX);
  CHECK_FP(cvt_s_d(big, kRTZ, fl), kSMax, kOF | kNX);
  CHECK_FP(cvt_s_d(big | kDNegZero, kRUP, fl), 0xff7fffff, kOF | kNX);
  CHECK_FP(cvt_s_d(big | kDNegZero, kRDN, fl), kSNegInf, kOF | kNX);
  // Max single + half an ulp (2^128 - 2^103) ties up to overflow in RNE/RMM.
  CHECK_FP(cvt_s_d(0x47efffffff000000, kRNE, fl), kSInf, kOF | kNX);
  CHECK_FP(cvt_s_d(0x47efffffff000000, kRMM, fl), kSInf, kOF | kNX);
  CHECK_FP(cvt_s_d(0x47efffffff000000, kRTZ, fl), kSMax, kNX);
  // Underflow: 2^-150 is a tie between 0 and 2^-149.
  CHECK_FP(cvt_s_d(0x3690000000000000, kRNE, fl), kSZero, kUF | kNX);
  CHECK_FP(cvt_s_d(0x3690000000000000, kRMM, fl), kSMinSub, kUF | kNX);
  CHECK_FP(cvt_s_d(0x3690000000000000, kRUP, fl), kSMinSub, kUF | kNX);
  CHECK_FP(cvt_s_d(kDMinSub, kRNE, fl), kSZero, kUF | kNX);
  CHECK_FP(cvt_s_d(kDMinSub, kRUP, fl), kSMinSub, kUF | kNX);
  CHECK_FP(cvt_s_d(kDMinSub | kDNegZero, kRMM, fl), kSNegZero, kUF | kNX);
  // 2^-126 - 2^-151 (25 significant bits): tininess after rounding. Rounded to 24 bits
  // with unbounded exponent it becomes 2^-126 in RNE/RMM/RUP (not tiny: NX only), and
  // stays below in RTZ/RDN (tiny: UF | NX).
  const uint64_t justbelow = 0x380ffffff0000000;
  CHECK_FP(cvt_s_d(justbelow, kRNE, fl), kSMinNorm, kNX);
  CHECK_FP(cvt_s_d(justbelow, kRMM, fl), kSMinNorm, kNX);
  CHECK_FP(cvt_s_d(justbelow, kRUP, fl), kSMinNorm, kNX);
  CHECK_FP(cvt_s_d(justbelow, kRTZ, fl), 0x007fffff, kUF | kNX);
  CHECK_FP(cvt_s_d(justbelow, kRDN, fl), 0x007fffff, kUF | kNX);
  // Exact subnormal result: no flags.
  for (uint32_t rm : kAllModes) {
    CHECK_FP(cvt_s_d(0x36a0000000000000, rm, fl), kSMinSub, kNone);  // 2^-149
    CHECK_FP(cvt_s_d(kDNegZero, rm, fl), kSNegZero, kNone);
    CHECK_FP(cvt_s_d(kDNegInf, rm, fl), kSNegInf, kNone);
    CHECK_FP(cvt_s_d(kDSNaN, rm, fl), kCanonicalNaN32, kNV);
    CHECK_FP(cvt_s_d(0xfff8000000000123, rm, fl), kCanonicalNaN32, kNone);
    CHECK_FP(cvt_s_d(kD3, rm, fl), kS3, kNone);
  }
}

TEST(FpuCvtFloat, Widening) {
  for (uint32_t rm : kAllModes) {
    CHECK_FP(cvt_d_s(kSMinSub, rm, fl), 0x36a0000000000000, kNone);
    CHECK_FP(cvt_d_s(0x807fffff, rm, fl), 0xb80fffffc0000000, kNone);
    CHECK_FP(cvt_d_s(kSMax, rm, fl), 0x47efffffe0000000, kNone);
    CHECK_FP(cvt_d_s(kSNegInf, rm, fl), kDNegInf, kNone);
    CHECK_FP(cvt_d_s(kSNegZero, rm, fl), kDNegZero, kNone);
    CHECK_FP(cvt_d_s(kSSNaN, rm, fl), kCanonicalNaN64, kNV);
    CHECK_FP(cvt_d_s(kSNegQNaN, rm, fl), kCanonicalNaN64, kNone);
    CHECK_FP(cvt_d_s(0x7fc00001, rm, fl), kCanonicalNaN64, kNone);
  }
}

// ---------------------------------------------------------------------------------------
// Environment hygiene.

TEST(FpuEnv, FlagsAccumulateAndHostModeIsRestored) {
  uint32_t fl = kDZ;
  EXPECT_EQ(add_s(kS1, kS2, kRUP, fl), kS3);
  EXPECT_EQ(fl, uint32_t(kDZ));  // ORed in, never cleared
  add_d(kD1, kD2m53, kRUP, fl);
  EXPECT_EQ(fl, uint32_t(kDZ | kNX));
  fmadd_d(kD1, kD1, kD2m53, kRDN, fl);
  sqrt_s(kS2, kRTZ, fl);
  cvt_s_d(0x3fd5555555555555, kRUP, fl);
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
  volatile double one = 1.0, half_ulp = 0x1p-53;
  EXPECT_EQ(one + half_ulp, 1.0);  // host still rounds to nearest
  volatile double three = 3.0;
  EXPECT_EQ(std::bit_cast<uint64_t>(one / three), 0x3fd5555555555555u);
}

// ---------------------------------------------------------------------------------------
// Randomized cross-checks.

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  uint64_t bits() { return rng_(); }
  // Doubles biased towards interesting exponents and short significands (ties, exactness).
  uint64_t d() {
    uint64_t r = rng_();
    uint64_t sign = (r & 1) << 63;
    uint64_t exp;
    switch ((r >> 1) % 8) {
      case 0:
        exp = 0;
        break;
      case 1:
        exp = 1 + (r >> 8) % 3;
        break;
      case 2:
        exp = 0x7fe - (r >> 8) % 3;
        break;
      case 3:
        exp = (r >> 8) % 8 == 0 ? 0x7ff : 0x3ff;
        break;
      default:
        exp = 0x3ff - 60 + (r >> 8) % 120;
        break;
    }
    uint64_t frac = rng_() & 0x000fffffffffffffull;
    if ((r >> 20) % 3 == 0) frac &= ~((uint64_t(1) << ((r >> 24) % 52)) - 1);  // short
    return sign | (exp << 52) | frac;
  }
  uint64_t d_near(uint64_t a) {  // a value with a nearby exponent, for cancellation/ties
    uint64_t r = rng_();
    int64_t exp = int64_t((a >> 52) & 0x7ff) + int64_t(r % 120) - 60;
    if (exp < 0 || exp > 0x7fe) return d();
    uint64_t frac = (r & 2) ? (a & 0x000fffffffffffffull) ^ (rng_() & 0xffff) : rng_();
    return (uint64_t(rng_() & 1) << 63) | (uint64_t(exp) << 52) | (frac & 0x000fffffffffffffull);
  }
  uint32_t s() {
    uint64_t r = rng_();
    uint32_t sign = uint32_t(r & 1) << 31;
    uint32_t exp;
    switch ((r >> 1) % 8) {
      case 0:
        exp = 0;
        break;
      case 1:
        exp = 1 + (r >> 8) % 3;
        break;
      case 2:
        exp = 0xfe - (r >> 8) % 3;
        break;
      case 3:
        exp = (r >> 8) % 8 == 0 ? 0xff : 0x7f;
        break;
      default:
        exp = 0x7f - 30 + (r >> 8) % 60;
        break;
    }
    uint32_t frac = uint32_t(rng_()) & 0x7fffff;
    if ((r >> 20) % 3 == 0) frac &= ~((1u << ((r >> 24) % 23)) - 1);
    return sign | (exp << 23) | frac;
  }

 private:
  std::mt19937_64 rng_;
};

constexpr int kIters = 200000;
constexpr uint32_t kHwModes[] = {kRNE, kRTZ, kRDN, kRUP};

TEST(FpuCrossCheck, SoftDoubleMatchesHost) {
  Gen g(1);
  for (int i = 0; i < kIters; ++i) {
    uint64_t a = g.d(), b = (i & 1) ? g.d_near(a) : g.d(), c = (i & 2) ? g.d_near(a) : g.d();
    if (i % 7 == 0) c = g.d_near(b);
    uint32_t rm = kHwModes[i % 4];
    uint32_t f1 = 0, f2 = 0;
    ASSERT_EQ(detail::soft_add_d(a, b, rm, f1), add_d(a, b, rm, f2))
        << std::hex << a << " + " << b << " rm " << rm;
    ASSERT_EQ(f1, f2) << std::hex << a << " + " << b << " rm " << rm;
    f1 = f2 = 0;
    ASSERT_EQ(detail::soft_mul_d(a, b, rm, f1), mul_d(a, b, rm, f2))
        << std::hex << a << " * " << b << " rm " << rm;
    ASSERT_EQ(f1, f2) << std::hex << a << " * " << b << " rm " << rm;
    f1 = f2 = 0;
    ASSERT_EQ(detail::soft_div_d(a, b, rm, f1), div_d(a, b, rm, f2))
        << std::hex << a << " / " << b << " rm " << rm;
    ASSERT_EQ(f1, f2) << std::hex << a << " / " << b << " rm " << rm;
    f1 = f2 = 0;
    ASSERT_EQ(detail::soft_fma_d(a, b, c, rm, f1), fmadd_d(a, b, c, rm, f2))
        << std::hex << a << " * " << b << " + " << c << " rm " << rm;
    ASSERT_EQ(f1, f2) << std::hex << a << " * " << b << " + " << c << " rm " << rm;
    f1 = f2 = 0;
    ASSERT_EQ(detail::soft_cvt_s_d(a, rm, f1), cvt_s_d(a, rm, f2)) << std::hex << a;
    ASSERT_EQ(f1, f2) << std::hex << a << " rm " << rm;
  }
}

TEST(FpuCrossCheck, RoundToOddSingleMatchesHost) {
  Gen g(2);
  for (int i = 0; i < kIters; ++i) {
    uint32_t a = g.s(), b = g.s(), c = g.s();
    if (i & 1) b = (b & 0x807fffff) | (a & 0x7f800000);  // same exponent: cancellation
    if (i & 2) c = (c & 0x807fffff) | ((a + b) & 0x7f800000);
    uint32_t rm = kHwModes[i % 4];
    uint32_t f1 = 0, f2 = 0;
    ASSERT_EQ(detail::odd_add_s(a, b, rm, f1), add_s(a, b, rm, f2)) << std::hex << a << " " << b;
    ASSERT_EQ(f1, f2) << std::hex << a << " + " << b << " rm " << rm;
    f1 = f2 = 0;
    ASSERT_EQ(detail::odd_mul_s(a, b, rm, f1), mul_s(a, b, rm, f2)) << std::hex << a << " " << b;
    ASSERT_EQ(f1, f2) << std::hex << a << " * " << b << " rm " << rm;
    f1 = f2 = 0;
    ASSERT_EQ(detail::odd_div_s(a, b, rm, f1), div_s(a, b, rm, f2)) << std::hex << a << " " << b;
    ASSERT_EQ(f1, f2) << std::hex << a << " / " << b << " rm " << rm;
    f1 = f2 = 0;
    ASSERT_EQ(detail::odd_fma_s(a, b, c, rm, f1), fmadd_s(a, b, c, rm, f2))
        << std::hex << a << " " << b << " " << c << " rm " << rm;
    ASSERT_EQ(f1, f2) << std::hex << a << " * " << b << " + " << c << " rm " << rm;
  }
}

// Independent RMM reference for a value x that is exactly representable as a double:
// truncate to single with the host (RTZ), then compare |x| with the midpoint to the next
// single away from zero.
uint32_t ref_rmm_single(double x, uint32_t& fl) {
  uint32_t t = cvt_s_d(std::bit_cast<uint64_t>(x), kRTZ, fl);
  fl &= ~uint32_t(kOF | kUF);  // recomputed below
  double tm = std::bit_cast<float>(t & 0x7fffffff);
  double ax = x < 0 ? -x : x;
  if (ax == tm) return t;
  double next =
      (t & 0x7fffffff) == 0x7f7fffff ? 0x1p128 : double(std::bit_cast<float>((t & 0x7fffffff) + 1));
  uint32_t r = ax >= (tm + next) / 2 ? t + 1 : t;
  if ((r & 0x7fffffff) == 0x7f800000) fl |= kOF;
  // Tininess after rounding: round |x| to 24 significant bits, ties away, unbounded exponent.
  uint64_t xb = std::bit_cast<uint64_t>(ax);
  double r24 = std::bit_cast<double>((xb + (uint64_t(1) << 28)) & ~((uint64_t(1) << 29) - 1));
  if (r24 < 0x1p-126) fl |= kUF;
  return r;
}

TEST(FpuCrossCheck, RmmSingleAgainstMidpointReference) {
  Gen g(3);
  for (int i = 0; i < kIters; ++i) {
    uint32_t a = g.s(), b = g.s();
    if ((a & 0x7f800000) == 0x7f800000 || (b & 0x7f800000) == 0x7f800000) continue;
    uint32_t f1 = 0, f2 = 0;
    // The product of two singles is exact in double.
    double p = double(std::bit_cast<float>(a)) * double(std::bit_cast<float>(b));
    uint32_t want = ref_rmm_single(p, f2);
    ASSERT_EQ(mul_s(a, b, kRMM, f1), want) << std::hex << a << " * " << b;
    ASSERT_EQ(f1, f2) << std::hex << a << " * " << b;
    // Narrowing a random double.
    uint64_t d = g.d();
    if ((d & kDInf) == kDInf) continue;
    f1 = f2 = 0;
    want = ref_rmm_single(std::bit_cast<double>(d), f2);
    ASSERT_EQ(cvt_s_d(d, kRMM, f1), want) << std::hex << d;
    ASSERT_EQ(f1, f2) << std::hex << d;
  }
}

// RMM for doubles: the exact product of two doubles fits in binary128 (113 bits).
uint64_t ref_rmm_double(__float128 x) {
  bool neg = x < 0;
  __float128 ax = neg ? -x : x;
  const __float128 kOverflow = __float128(0x1.fffffffffffffp1023) + __float128(0x1p970);
  if (ax >= kOverflow) return (neg ? kDNegZero : 0) | kDInf;
  // Largest double <= ax by bisection on the bit pattern (monotonic for positive values).
  uint64_t lo = 0, hi = kDInf;
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (__float128(std::bit_cast<double>(mid)) <= ax)
      lo = mid;
    else
      hi = mid;
  }
  uint64_t r = lo;
  __float128 t = std::bit_cast<double>(lo);
  if (t != ax) {
    __float128 next =
        lo + 1 == kDInf ? __float128(0x1p1023) * 2 : __float128(std::bit_cast<double>(lo + 1));
    if (ax >= (t + next) / 2) r = lo + 1;
  }
  return (neg ? kDNegZero : 0) | r;
}

TEST(FpuCrossCheck, RmmDoubleMulAgainstQuadReference) {
  Gen g(4);
  for (int i = 0; i < kIters / 4; ++i) {
    uint64_t a = g.d(), b = g.d();
    if ((a & kDInf) == kDInf || (b & kDInf) == kDInf) continue;
    __float128 p = __float128(std::bit_cast<double>(a)) * __float128(std::bit_cast<double>(b));
    uint32_t fl = 0;
    uint64_t got = mul_d(a, b, kRMM, fl);
    if (p == 0) continue;  // zero signs are covered elsewhere
    ASSERT_EQ(got, ref_rmm_double(p)) << std::hex << a << " * " << b;
    // Sum of two doubles with nearby exponents is exact in binary128 too.
    uint64_t c = g.d_near(a);
    if ((c & kDInf) == kDInf) continue;
    __float128 s = __float128(std::bit_cast<double>(a)) + __float128(std::bit_cast<double>(c));
    int ea = int((a >> 52) & 0x7ff), ec = int((c >> 52) & 0x7ff);
    if (s == 0 || ea - ec > 55 || ec - ea > 55) continue;
    fl = 0;
    ASSERT_EQ(add_d(a, c, kRMM, fl), ref_rmm_double(s)) << std::hex << a << " + " << c;
  }
}

}  // namespace
}  // namespace nimbus::cpu::fpu
