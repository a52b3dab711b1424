// IEEE 754-2008 arithmetic for the F and D extensions, bit-exact with the RISC-V spec
// (unpriv spec ch. 11 and 12): rounding modes RNE/RTZ/RDN/RUP/RMM, accrued flags,
// canonical NaN results, tininess detected after rounding, saturating conversions.
//
// Values are raw bit patterns: singles as uint32_t, doubles as uint64_t. NaN-boxing is
// the caller's business (the interpreter unboxes before calling and boxes results).
// `rm` is an already-resolved static rounding mode (0..4); every function ORs the
// exception flags it raises into `flags` (fflags bit layout: NV DZ OF UF NX = 4..0).
#pragma once

#include <cstdint>

namespace nimbus::cpu::fpu {

enum Flag : uint32_t { kNX = 1, kUF = 2, kOF = 4, kDZ = 8, kNV = 16 };
enum RoundingMode : uint32_t { kRNE = 0, kRTZ = 1, kRDN = 2, kRUP = 3, kRMM = 4, kDYN = 7 };

// The RISC-V flags for the x86 MXCSR exception flags in `mxcsr` (bits 0-5).
constexpr uint32_t mxcsr_flags(uint32_t mxcsr) {
  return ((mxcsr & 0x01) << 4)     // IE -> NV
         | ((mxcsr & 0x04) << 1)   // ZE -> DZ
         | ((mxcsr & 0x08) >> 1)   // OE -> OF
         | ((mxcsr & 0x10) >> 3)   // UE -> UF
         | ((mxcsr & 0x20) >> 5);  // PE -> NX
}

constexpr uint32_t kCanonicalNaN32 = 0x7fc00000u;
constexpr uint64_t kCanonicalNaN64 = 0x7ff8000000000000ull;

// ---- single precision ----
uint32_t add_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags);
uint32_t sub_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags);
uint32_t mul_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags);
uint32_t div_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags);
uint32_t sqrt_s(uint32_t a, uint32_t rm, uint32_t& flags);
// Fused: fmadd = a*b+c, fmsub = a*b-c, fnmsub = -(a*b)+c, fnmadd = -(a*b)-c; one rounding.
uint32_t fmadd_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags);
uint32_t fmsub_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags);
uint32_t fnmsub_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags);
uint32_t fnmadd_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags);
// IEEE 754-2019 minimumNumber/maximumNumber: -0 < +0, a single NaN operand yields the
// other, two NaNs yield the canonical NaN; a signalling NaN operand raises NV.
uint32_t min_s(uint32_t a, uint32_t b, uint32_t& flags);
uint32_t max_s(uint32_t a, uint32_t b, uint32_t& flags);
// Comparisons: feq raises NV only for signalling NaNs; flt/fle for any NaN.
bool eq_s(uint32_t a, uint32_t b, uint32_t& flags);
bool lt_s(uint32_t a, uint32_t b, uint32_t& flags);
bool le_s(uint32_t a, uint32_t b, uint32_t& flags);
// FCLASS.S: the 10-bit one-hot class mask.
uint64_t class_s(uint32_t a);

// ---- double precision ----
uint64_t add_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags);
uint64_t sub_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags);
uint64_t mul_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags);
uint64_t div_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags);
uint64_t sqrt_d(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t fmadd_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags);
uint64_t fmsub_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags);
uint64_t fnmsub_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags);
uint64_t fnmadd_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags);
uint64_t min_d(uint64_t a, uint64_t b, uint32_t& flags);
uint64_t max_d(uint64_t a, uint64_t b, uint32_t& flags);
bool eq_d(uint64_t a, uint64_t b, uint32_t& flags);
bool lt_d(uint64_t a, uint64_t b, uint32_t& flags);
bool le_d(uint64_t a, uint64_t b, uint32_t& flags);
uint64_t class_d(uint64_t a);

// ---- conversions ----
// Float to integer: round per rm; out of range or NaN saturates per unpriv spec table
// 11.4 (NaN and +overflow give the maximum, -overflow the minimum) and raises NV;
// inexact raises NX. 32-bit results are returned sign-extended to 64 bits, as FCVT.W[U]
// writes them to rd.
uint64_t cvt_w_s(uint32_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_wu_s(uint32_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_l_s(uint32_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_lu_s(uint32_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_w_d(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_wu_d(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_l_d(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_lu_d(uint64_t a, uint32_t rm, uint32_t& flags);
// Integer to float. The `w` forms take the low 32 bits of the register.
uint32_t cvt_s_w(uint64_t a, uint32_t rm, uint32_t& flags);
uint32_t cvt_s_wu(uint64_t a, uint32_t rm, uint32_t& flags);
uint32_t cvt_s_l(uint64_t a, uint32_t rm, uint32_t& flags);
uint32_t cvt_s_lu(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_d_w(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_d_wu(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_d_l(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_d_lu(uint64_t a, uint32_t rm, uint32_t& flags);
// Between formats; NaN results are canonical.
uint32_t cvt_s_d(uint64_t a, uint32_t rm, uint32_t& flags);
uint64_t cvt_d_s(uint32_t a, uint32_t rm, uint32_t& flags);

}  // namespace nimbus::cpu::fpu
