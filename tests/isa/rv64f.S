# RV64F: single-precision arithmetic, fused multiply-add (single rounding), sqrt,
# min/max (signed zero, NaN rules), compares and their flags, fclass, sign injection,
# moves, conversions (saturation, NV/NX flags, W results sign-extended), NaN boxing,
# fflags/frm/fcsr CSRs, static and dynamic rounding modes, reserved rounding modes
# (rm = 5, 6 and dyn with frm = 5..7 are illegal), mstatus.FS = Off makes FP
# instructions illegal, FS becomes Dirty after an FP register write.
#include "test.h"
#include "fp_macros.h"

#define ONE  0x3f800000
#define TWO  0x40000000
#define THREE 0x40400000
#define HALF 0x3f000000
#define ONEP5 0x3fc00000
#define MONE 0xbf800000
#define PINF 0x7f800000
#define NINF 0xff800000
#define QNAN 0x7fc00000
#define SNAN 0x7f800001
#define NZERO 0x80000000
#define FMAX 0x7f7fffff
#define MINSUB 0x00000001
#define NX 1
#define UF 2
#define OF 4
#define DZ 8
#define NV 16

        TEST_BEGIN
        # ---- basic arithmetic
        FOP2S fadd.s, ONE, TWO, THREE, 0
        FOP2S fsub.s, ONE, TWO, MONE, 0
        FOP2S fmul.s, ONEP5, TWO, THREE, 0
        FOP2S fdiv.s, THREE, TWO, ONEP5, 0
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaab, NX
        FOP2S fdiv.s, ONE, 0, PINF, DZ
        FOP2S fdiv.s, MONE, 0, NINF, DZ
        FOP2S fdiv.s, 0, 0, QNAN, NV
        FOP2S fsub.s, PINF, PINF, QNAN, NV
        FOP2S fmul.s, PINF, 0, QNAN, NV
        FOP2S fadd.s, QNAN, ONE, QNAN, 0
        FOP2S fadd.s, SNAN, ONE, QNAN, NV           # result is the canonical NaN
        FOP2S fadd.s, 0xffc12345, ONE, QNAN, 0      # NaN payload not propagated
        FOP2S fadd.s, ONE, MONE, 0, 0               # x + -x = +0 in RNE
        FOP2S fadd.s, ONE, MONE, NZERO, 0, rdn      # ... and -0 in RDN
        FOP2S fadd.s, NZERO, NZERO, NZERO, 0
        FOP2S fmul.s, FMAX, TWO, PINF, OF|NX        # overflow
        FOP2S fmul.s, FMAX, TWO, FMAX, OF|NX, rtz
        FOP2S fmul.s, 0xff7fffff, TWO, 0xff7fffff, OF|NX, rup
        FOP2S fmul.s, 0xff7fffff, TWO, NINF, OF|NX, rdn
        FOP2S fmul.s, MINSUB, HALF, 0, UF|NX        # underflow, tie to even -> 0
        FOP2S fmul.s, MINSUB, HALF, MINSUB, UF|NX, rup
        FOP2S fmul.s, 0x00800000, HALF, 0x00400000, 0   # exact subnormal: no UF
        # sqrt
        LDS fa1, 0x40800000
        fsqrt.s fa0, fa1
        CHECKFS fa0, TWO
        CHECK_FLAGS 0
        LDS fa1, TWO
        fsqrt.s fa0, fa1
        CHECKFS fa0, 0x3fb504f3
        CHECK_FLAGS NX
        LDS fa1, MONE
        fsqrt.s fa0, fa1
        CHECKFS fa0, QNAN
        CHECK_FLAGS NV
        LDS fa1, NZERO
        fsqrt.s fa0, fa1
        CHECKFS fa0, NZERO
        CHECK_FLAGS 0

        # ---- rounding modes (static) on 1/3 and -1/3
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaab, NX, rne
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaaa, NX, rtz
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaaa, NX, rdn
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaab, NX, rup
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaab, NX, rmm
        FOP2S fdiv.s, MONE, THREE, 0xbeaaaaaa, NX, rtz
        FOP2S fdiv.s, MONE, THREE, 0xbeaaaaab, NX, rdn
        FOP2S fdiv.s, MONE, THREE, 0xbeaaaaaa, NX, rup
        # RMM vs RNE on an exact tie: 1 + 2^-24 (exactly half an ulp above 1)
        FOP2S fadd.s, ONE, 0x33800000, ONE, NX, rne
        FOP2S fadd.s, ONE, 0x33800000, 0x3f800001, NX, rmm
        # dynamic rounding mode from frm
        fsrmi 1                               # RTZ
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaaa, NX
        fsrmi 3                               # RUP
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaab, NX
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaaa, NX, rtz   # static overrides frm
        fsrmi 2                               # RDN
        FOP2S fadd.s, ONE, MONE, NZERO, 0
        fsrmi 0

        # ---- fused multiply-add
        FOP3S fmadd.s, ONEP5, TWO, HALF, 0x40600000, 0
        FOP3S fmsub.s, ONEP5, TWO, HALF, 0x40200000, 0
        FOP3S fnmsub.s, ONEP5, TWO, HALF, 0xc0200000, 0
        FOP3S fnmadd.s, ONEP5, TWO, HALF, 0xc0600000, 0
        FOP3S fmadd.s, 0x3f800800, 0x3f800800, MONE, 0x3a000400, 0   # single rounding
        FOP3S fmadd.s, PINF, 0, ONE, QNAN, NV
        FOP3S fmadd.s, PINF, 0, QNAN, QNAN, NV        # inf*0 + qNaN: NV required
        FOP3S fmadd.s, ONE, ONE, SNAN, QNAN, NV
        FOP3S fmadd.s, ONE, THREE, NZERO, THREE, 0
        FOP3S fmsub.s, ONE, ONE, ONE, 0, 0
        FOP3S fmsub.s, ONE, ONE, ONE, NZERO, 0, rdn

        # ---- min / max
        FOP2S_NORM fmin.s, NZERO, 0, NZERO, 0
        FOP2S_NORM fmin.s, 0, NZERO, NZERO, 0
        FOP2S_NORM fmax.s, NZERO, 0, 0, 0
        FOP2S_NORM fmax.s, 0, NZERO, 0, 0
        FOP2S_NORM fmin.s, QNAN, ONE, ONE, 0
        FOP2S_NORM fmax.s, MONE, QNAN, MONE, 0
        FOP2S_NORM fmin.s, SNAN, ONE, ONE, NV
        FOP2S_NORM fmax.s, ONE, SNAN, ONE, NV
        FOP2S_NORM fmin.s, QNAN, QNAN, QNAN, 0
        FOP2S_NORM fmax.s, SNAN, 0x7fc01234, QNAN, NV
        FOP2S_NORM fmin.s, MONE, TWO, MONE, 0
        FOP2S_NORM fmax.s, MONE, TWO, TWO, 0
        FOP2S_NORM fmin.s, NINF, FMAX, NINF, 0

        # ---- compares: feq quiet, flt/fle signalling
        FCMPS feq.s, ONE, ONE, 1, 0
        FCMPS feq.s, 0, NZERO, 1, 0
        FCMPS feq.s, QNAN, QNAN, 0, 0
        FCMPS feq.s, SNAN, ONE, 0, NV
        FCMPS flt.s, ONE, TWO, 1, 0
        FCMPS flt.s, TWO, ONE, 0, 0
        FCMPS flt.s, NZERO, 0, 0, 0
        FCMPS flt.s, QNAN, ONE, 0, NV
        FCMPS fle.s, ONE, ONE, 1, 0
        FCMPS fle.s, NZERO, 0, 1, 0
        FCMPS fle.s, ONE, QNAN, 0, NV
        FCMPS fle.s, NINF, PINF, 1, 0

        # ---- fclass
        FCLASS_S NINF, 1<<0
        FCLASS_S MONE, 1<<1
        FCLASS_S 0x80000001, 1<<2
        FCLASS_S NZERO, 1<<3
        FCLASS_S 0, 1<<4
        FCLASS_S MINSUB, 1<<5
        FCLASS_S ONE, 1<<6
        FCLASS_S PINF, 1<<7
        FCLASS_S SNAN, 1<<8
        FCLASS_S QNAN, 1<<9
        FCLASS_S 0xffffffff, 1<<9

        # ---- sign injection
        FOP2S_NORM fsgnj.s, ONE, MONE, MONE, 0
        FOP2S_NORM fsgnj.s, MONE, ONE, ONE, 0
        FOP2S_NORM fsgnjn.s, ONE, MONE, ONE, 0
        FOP2S_NORM fsgnjn.s, ONE, ONE, MONE, 0
        FOP2S_NORM fsgnjx.s, MONE, MONE, ONE, 0
        FOP2S_NORM fsgnjx.s, MONE, ONE, MONE, 0
        FOP2S_NORM fsgnj.s, SNAN, NZERO, 0xff800001, 0  # no NaN canonicalisation, no flags

        # ---- moves: fmv.x.w sign-extends, fmv.w.x NaN-boxes
        li a0, 0x123456780f0000ff
        fmv.w.x fa0, a0
        CHECKF fa0, 0xffffffff0f0000ff
        li a0, 0x80000000
        fmv.w.x fa0, a0
        fmv.x.w a1, fa0
        CHECK a1, 0xffffffff80000000
        # ---- NaN boxing: a single-precision operand that is not NaN-boxed reads as qNaN
        li a0, 0x000000003f800000
        fmv.d.x fa1, a0
        LDS fa2, ONE
        csrw fflags, zero
        fadd.s fa0, fa1, fa2
        CHECKFS fa0, QNAN
        CHECK_FLAGS 0
        fsgnj.s fa0, fa1, fa2          # not a transfer op: input is canonical NaN
        CHECKFS fa0, QNAN
        fclass.s a1, fa1
        CHECK a1, 1<<9
        fmv.x.w a1, fa1                # transfer op: raw low bits
        CHECK a1, 0x3f800000
        la s0, fbuf
        fsw fa1, 0(s0)                 # transfer op: raw low bits
        lwu a1, 0(s0)
        CHECK a1, 0x3f800000
        li a1, 0x40400000
        sw a1, 4(s0)
        flw fa0, 4(s0)                 # flw NaN-boxes
        CHECKF fa0, 0xffffffff40400000
        fcvt.w.s a1, fa1, rtz          # unboxed -> NaN -> max int, NV
        CHECK a1, 0x7fffffff
        CHECK_FLAGS NV

        # ---- conversions float -> int
        FCVT_XS fcvt.w.s, 0x406ccccd, 4, NX, rne      # 3.7
        FCVT_XS fcvt.w.s, 0x406ccccd, 3, NX, rtz
        FCVT_XS fcvt.w.s, 0xc06ccccd, -4, NX, rdn     # -3.7
        FCVT_XS fcvt.w.s, 0xc06ccccd, -3, NX, rup
        FCVT_XS fcvt.w.s, 0x40200000, 2, NX, rne      # 2.5 -> 2
        FCVT_XS fcvt.w.s, 0x40200000, 3, NX, rmm      # 2.5 -> 3
        FCVT_XS fcvt.w.s, QNAN, 0x7fffffff, NV
        FCVT_XS fcvt.w.s, PINF, 0x7fffffff, NV
        FCVT_XS fcvt.w.s, NINF, 0xffffffff80000000, NV
        FCVT_XS fcvt.w.s, 0xcf32d05e, 0xffffffff80000000, NV   # -3e9
        FCVT_XS fcvt.w.s, 0xcf000000, 0xffffffff80000000, 0    # -2^31 exact
        FCVT_XS fcvt.w.s, 0x4f000000, 0x7fffffff, NV           # 2^31
        FCVT_XS fcvt.wu.s, MONE, 0, NV
        FCVT_XS fcvt.wu.s, 0xbf000000, 0, NX, rtz              # -0.5 -> -0 -> 0: inexact only
        FCVT_XS fcvt.wu.s, 0x4f800000, 0xffffffffffffffff, NV  # 2^32 saturates, sext
        FCVT_XS fcvt.wu.s, 0x4f7fffff, 0xffffffffffffff00, 0   # 4294967040, sext
        FCVT_XS fcvt.wu.s, QNAN, 0xffffffffffffffff, NV
        FCVT_XS fcvt.wu.s, NINF, 0, NV
        FCVT_XS fcvt.l.s, 0x5f000000, 0x7fffffffffffffff, NV   # 2^63
        FCVT_XS fcvt.l.s, 0xdf000000, 0x8000000000000000, 0    # -2^63
        FCVT_XS fcvt.l.s, QNAN, 0x7fffffffffffffff, NV
        FCVT_XS fcvt.l.s, NINF, 0x8000000000000000, NV
        FCVT_XS fcvt.l.s, 0x4f800000, 0x100000000, 0
        FCVT_XS fcvt.lu.s, 0x5f800000, 0xffffffffffffffff, NV  # 2^64
        FCVT_XS fcvt.lu.s, 0x5f000000, 0x8000000000000000, 0
        FCVT_XS fcvt.lu.s, MONE, 0, NV
        FCVT_XS fcvt.lu.s, QNAN, 0xffffffffffffffff, NV
        FCVT_XS fcvt.l.s, 0xbfc00000, -2, NX, rdn               # -1.5
        # ---- int -> float
        FCVT_SX fcvt.s.w, -1, MONE, 0
        FCVT_SX fcvt.s.w, 0x100000001, ONE, 0                   # upper bits ignored
        FCVT_SX fcvt.s.wu, 0xffffffff, 0x4f800000, NX           # 4294967295 -> 2^32
        FCVT_SX fcvt.s.wu, 0xffffffff, 0x4f7fffff, NX, rtz
        FCVT_SX fcvt.s.l, 0x7fffffffffffffff, 0x5f000000, NX
        FCVT_SX fcvt.s.l, 0x8000000000000000, 0xdf000000, 0
        FCVT_SX fcvt.s.lu, 0xffffffffffffffff, 0x5f800000, NX
        FCVT_SX fcvt.s.lu, 0, 0, 0
        FCVT_SX fcvt.s.w, 16777217, 0x4b800000, NX             # 2^24+1 rounds to even
        FCVT_SX fcvt.s.w, 16777217, 0x4b800001, NX, rup

        # ---- fflags / frm / fcsr
        csrw fcsr, zero
        li a0, 0xff
        csrw fcsr, a0
        csrr a1, fcsr
        CHECK a1, 0xff
        csrr a1, fflags
        CHECK a1, 0x1f
        csrr a1, frm
        CHECK a1, 7
        li a0, 0xffffffff
        csrw fcsr, a0                  # upper bits are not writable
        csrr a1, fcsr
        CHECK a1, 0xff
        csrwi frm, 2
        csrr a1, fcsr
        CHECK a1, 0x5f
        csrwi fflags, 0x3
        csrr a1, fcsr
        CHECK a1, 0x43
        csrrci a1, fflags, 1
        CHECK a1, 3
        csrr a1, fflags
        CHECK a1, 2
        csrw fcsr, zero
        # flags accumulate
        FOP2S fdiv.s, ONE, THREE, 0x3eaaaaab, NX
        LDS fa1, ONE
        LDS fa2, THREE
        fdiv.s fa0, fa1, fa2
        fdiv.s fa0, fa1, fa0           # no clear in between
        LDS fa2, 0
        fdiv.s fa0, fa1, fa2
        CHECK_FLAGS NX|DZ

        # ---- reserved rounding modes: illegal instruction, mtval = instruction bits
        EXPECT_TRAP 1f
2:      .insn r 0x53, 5, 0, fa0, fa1, fa2          # fadd.s rm=5
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
        EXPECT_TRAP 1f
        .insn r 0x53, 6, 0, fa0, fa1, fa2          # rm=6
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        fsrmi 5
        EXPECT_TRAP 1f
        fadd.s fa0, fa1, fa2, dyn
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        fsrmi 6
        EXPECT_TRAP 1f
        fmul.s fa0, fa1, fa2, dyn
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        fsrmi 7
        EXPECT_TRAP 1f
        fcvt.w.s a0, fa1, dyn
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        # ops without rounding (fsgnj, fmin, feq, fmv) are fine with an invalid frm
        fsgnj.s fa0, fa1, fa2
        fmin.s fa0, fa1, fa2
        feq.s a0, fa1, fa2
        fsrmi 0

        # ---- mstatus.FS
        li t0, MSTATUS_FS
        csrc mstatus, t0
        li t0, (1 << 13)               # Initial
        csrs mstatus, t0
        LDS fa0, ONE                   # FP register write -> Dirty
        csrr a0, mstatus
        srli a1, a0, 13
        andi a1, a1, 3
        CHECK a1, 3
        srli a1, a0, 63                # SD summarises FS = Dirty
        CHECK a1, 1
        li t0, MSTATUS_FS
        csrc mstatus, t0               # Off
        csrr a0, mstatus
        srli a1, a0, 63
        CHECK a1, 0
        EXPECT_TRAP 1f
3:      fadd.s fa0, fa1, fa2
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 3b
        EXPECT_TRAP 1f
        fmv.w.x fa0, zero
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        EXPECT_TRAP 1f
        flw fa0, 0(s0)
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        EXPECT_TRAP 1f
        fmv.x.w a0, fa0
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        EXPECT_TRAP 1f
        csrr a0, fflags
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        EXPECT_TRAP 1f
        csrw fcsr, zero
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        li t0, (1 << 13)
        csrs mstatus, t0
        csrwi fflags, 1                # CSR write to FP state -> Dirty
        csrr a0, mstatus
        srli a1, a0, 13
        andi a1, a1, 3
        CHECK a1, 3
        PASS
        TEST_END
        .data
        .align 3
fbuf:   .zero 16
