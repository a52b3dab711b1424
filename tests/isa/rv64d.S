# RV64D: double-precision arithmetic, fused ops (single rounding), sqrt, min/max,
# compares/flags, fclass, sign injection, fmv.x.d/fmv.d.x, fld/fsd, conversions
# (to/from int with saturation and flags, fcvt.s.d / fcvt.d.s incl. NaN handling and
# NaN boxing of the single result), rounding modes, reserved rm -> illegal.
#include "test.h"
#include "fp_macros.h"

#define ONE   0x3ff0000000000000
#define TWO   0x4000000000000000
#define THREE 0x4008000000000000
#define HALF  0x3fe0000000000000
#define ONEP5 0x3ff8000000000000
#define MONE  0xbff0000000000000
#define PINF  0x7ff0000000000000
#define NINF  0xfff0000000000000
#define QNAN  0x7ff8000000000000
#define SNAN  0x7ff0000000000001
#define NZERO 0x8000000000000000
#define DMAX  0x7fefffffffffffff
#define MINSUB 0x0000000000000001
#define NX 1
#define UF 2
#define OF 4
#define DZ 8
#define NV 16

        TEST_BEGIN
        FOP2D fadd.d, ONE, TWO, THREE, 0
        FOP2D fsub.d, ONE, TWO, MONE, 0
        FOP2D fmul.d, ONEP5, TWO, THREE, 0
        FOP2D fdiv.d, THREE, TWO, ONEP5, 0
        FOP2D fdiv.d, ONE, THREE, 0x3fd5555555555555, NX
        FOP2D fdiv.d, ONE, THREE, 0x3fd5555555555556, NX, rup
        FOP2D fdiv.d, ONE, THREE, 0x3fd5555555555555, NX, rtz
        FOP2D fdiv.d, MONE, THREE, 0xbfd5555555555556, NX, rdn
        FOP2D fdiv.d, MONE, THREE, 0xbfd5555555555555, NX, rup
        FOP2D fdiv.d, ONE, 0, PINF, DZ
        FOP2D fdiv.d, 0, 0, QNAN, NV
        FOP2D fsub.d, NINF, NINF, QNAN, NV
        FOP2D fadd.d, SNAN, ONE, QNAN, NV
        FOP2D fadd.d, 0xfff8000000001234, ONE, QNAN, 0
        FOP2D fadd.d, ONE, MONE, 0, 0
        FOP2D fadd.d, ONE, MONE, NZERO, 0, rdn
        FOP2D fmul.d, DMAX, TWO, PINF, OF|NX
        FOP2D fmul.d, DMAX, TWO, DMAX, OF|NX, rtz
        FOP2D fmul.d, MINSUB, HALF, 0, UF|NX
        FOP2D fmul.d, MINSUB, HALF, MINSUB, UF|NX, rup
        FOP2D fmul.d, MINSUB, 0xbfe0000000000000, NZERO, UF|NX
        FOP2D fadd.d, ONE, 0x3ca0000000000000, ONE, NX, rne        # 1 + 2^-53 tie
        FOP2D fadd.d, ONE, 0x3ca0000000000000, 0x3ff0000000000001, NX, rmm
        fsrmi 1
        FOP2D fdiv.d, ONE, THREE, 0x3fd5555555555555, NX
        fsrmi 3
        FOP2D fdiv.d, ONE, THREE, 0x3fd5555555555556, NX
        fsrmi 0
        LDD fa1, 0x4010000000000000
        fsqrt.d fa0, fa1
        CHECKF fa0, TWO
        CHECK_FLAGS 0
        LDD fa1, TWO
        fsqrt.d fa0, fa1
        CHECKF fa0, 0x3ff6a09e667f3bcd
        CHECK_FLAGS NX
        LDD fa1, NINF
        fsqrt.d fa0, fa1
        CHECKF fa0, QNAN
        CHECK_FLAGS NV

        FOP3D fmadd.d, ONEP5, TWO, HALF, 0x400c000000000000, 0
        FOP3D fmsub.d, ONEP5, TWO, HALF, 0x4004000000000000, 0
        FOP3D fnmsub.d, ONEP5, TWO, HALF, 0xc004000000000000, 0
        FOP3D fnmadd.d, ONEP5, TWO, HALF, 0xc00c000000000000, 0
        FOP3D fmadd.d, 0x3ff0000002000000, 0x3ff0000002000000, MONE, 0x3e50000001000000, 0
        FOP3D fmadd.d, 0, PINF, QNAN, QNAN, NV
        FOP3D fnmadd.d, ONE, ONE, SNAN, QNAN, NV
        FOP3D fmsub.d, ONE, ONE, ONE, NZERO, 0, rdn

        FOP2D_NORM fmin.d, NZERO, 0, NZERO, 0
        FOP2D_NORM fmax.d, NZERO, 0, 0, 0
        FOP2D_NORM fmax.d, 0, NZERO, 0, 0
        FOP2D_NORM fmin.d, QNAN, ONE, ONE, 0
        FOP2D_NORM fmin.d, SNAN, ONE, ONE, NV
        FOP2D_NORM fmax.d, QNAN, QNAN, QNAN, 0
        FOP2D_NORM fmax.d, NINF, MONE, MONE, 0

        FCMPD feq.d, ONE, ONE, 1, 0
        FCMPD feq.d, NZERO, 0, 1, 0
        FCMPD feq.d, QNAN, ONE, 0, 0
        FCMPD feq.d, SNAN, SNAN, 0, NV
        FCMPD flt.d, MONE, ONE, 1, 0
        FCMPD flt.d, QNAN, ONE, 0, NV
        FCMPD fle.d, ONE, ONE, 1, 0
        FCMPD fle.d, TWO, ONE, 0, 0
        FCMPD fle.d, QNAN, QNAN, 0, NV

        FCLASS_D NINF, 1<<0
        FCLASS_D MONE, 1<<1
        FCLASS_D 0x800fffffffffffff, 1<<2
        FCLASS_D NZERO, 1<<3
        FCLASS_D 0, 1<<4
        FCLASS_D MINSUB, 1<<5
        FCLASS_D DMAX, 1<<6
        FCLASS_D PINF, 1<<7
        FCLASS_D SNAN, 1<<8
        FCLASS_D QNAN, 1<<9

        FOP2D_NORM fsgnj.d, ONE, MONE, MONE, 0
        FOP2D_NORM fsgnjn.d, ONE, MONE, ONE, 0
        FOP2D_NORM fsgnjx.d, MONE, MONE, ONE, 0
        FOP2D_NORM fsgnjx.d, SNAN, MONE, 0xfff0000000000001, 0

        # fmv and fld/fsd
        li a0, 0x123456789abcdef0
        fmv.d.x fa0, a0
        fmv.x.d a1, fa0
        CHECKR a0, a1
        la s0, dbuf
        fsd fa0, 8(s0)
        ld a1, 8(s0)
        CHECKR a0, a1
        li a0, 0xfedcba9876543210
        sd a0, 16(s0)
        fld fa1, 16(s0)
        CHECKF fa1, 0xfedcba9876543210
        fld fa1, 1(s0)                   # misaligned FP load (supported)
        fsd fa1, 3(s0)

        # double <-> single
        LDD fa1, ONEP5
        fcvt.s.d fa0, fa1
        CHECKFS fa0, 0x3fc00000
        CHECK_FLAGS 0
        LDD fa1, 0x3fd5555555555555      # 1/3 -> rounded to single, inexact, boxed
        fcvt.s.d fa0, fa1
        CHECKFS fa0, 0x3eaaaaab
        CHECK_FLAGS NX
        fcvt.s.d fa0, fa1, rtz
        CHECKFS fa0, 0x3eaaaaaa
        CHECK_FLAGS NX
        LDD fa1, DMAX
        fcvt.s.d fa0, fa1
        CHECKFS fa0, 0x7f800000
        CHECK_FLAGS OF|NX
        LDD fa1, SNAN
        fcvt.s.d fa0, fa1
        CHECKFS fa0, 0x7fc00000
        CHECK_FLAGS NV
        LDD fa1, 0xfff8000000000123
        fcvt.s.d fa0, fa1
        CHECKFS fa0, 0x7fc00000
        CHECK_FLAGS 0
        LDS fa1, 0xbfc00000
        fcvt.d.s fa0, fa1
        CHECKF fa0, 0xbff8000000000000
        CHECK_FLAGS 0
        LDS fa1, 0x7f800001              # single sNaN -> canonical double NaN, NV
        fcvt.d.s fa0, fa1
        CHECKF fa0, QNAN
        CHECK_FLAGS NV
        LDS fa1, 0x00000001              # single subnormal is exact in double
        fcvt.d.s fa0, fa1
        CHECKF fa0, 0x36a0000000000000
        CHECK_FLAGS 0
        li a0, 0x3ff0000000000000        # not NaN-boxed single -> canonical NaN
        fmv.d.x fa1, a0
        fcvt.d.s fa0, fa1
        CHECKF fa0, QNAN
        CHECK_FLAGS 0

        # double -> int
        FCVT_XD fcvt.w.d, 0x400c000000000000, 4, NX        # 3.5 RNE -> 4
        FCVT_XD fcvt.w.d, 0x4004000000000000, 2, NX        # 2.5 RNE -> 2
        FCVT_XD fcvt.w.d, 0x4004000000000000, 3, NX, rmm
        FCVT_XD fcvt.w.d, 0xc004000000000000, -3, NX, rdn
        FCVT_XD fcvt.w.d, 0xc004000000000000, -2, NX, rtz
        FCVT_XD fcvt.w.d, 0x41dfffffffc00000, 0x7fffffff, 0   # 2^31-1 exact
        FCVT_XD fcvt.w.d, 0x41e0000000000000, 0x7fffffff, NV  # 2^31
        FCVT_XD fcvt.w.d, 0xc1e0000000000000, 0xffffffff80000000, 0
        FCVT_XD fcvt.w.d, 0xc1e0000000200000, 0xffffffff80000000, NV  # -2^31-1
        FCVT_XD fcvt.w.d, 0x41dfffffffe00000, 0x7fffffff, NX, rtz   # 2^31-0.5
        FCVT_XD fcvt.w.d, QNAN, 0x7fffffff, NV
        FCVT_XD fcvt.wu.d, 0x41efffffffe00000, 0xffffffffffffffff, 0  # 2^32-1 -> sext
        FCVT_XD fcvt.wu.d, 0x41f0000000000000, 0xffffffffffffffff, NV
        FCVT_XD fcvt.wu.d, MONE, 0, NV
        FCVT_XD fcvt.wu.d, NZERO, 0, 0
        FCVT_XD fcvt.l.d, 0x43e0000000000000, 0x7fffffffffffffff, NV
        FCVT_XD fcvt.l.d, 0xc3e0000000000000, 0x8000000000000000, 0
        FCVT_XD fcvt.l.d, 0x43dfffffffffffff, 0x7ffffffffffffc00, 0
        FCVT_XD fcvt.l.d, PINF, 0x7fffffffffffffff, NV
        FCVT_XD fcvt.l.d, NINF, 0x8000000000000000, NV
        FCVT_XD fcvt.lu.d, 0x43f0000000000000, 0xffffffffffffffff, NV
        FCVT_XD fcvt.lu.d, 0x43efffffffffffff, 0xfffffffffffff800, 0
        FCVT_XD fcvt.lu.d, 0xbfe0000000000000, 0, NX, rne      # -0.5 -> -0 -> 0
        FCVT_XD fcvt.lu.d, 0xbfe0000000000000, 0, NV, rdn      # -0.5 -> -1 : invalid
        FCVT_XD fcvt.lu.d, QNAN, 0xffffffffffffffff, NV
        # int -> double
        FCVT_DX_EXACT fcvt.d.w, -1, MONE
        FCVT_DX_EXACT fcvt.d.w, 0xffffffff00000003, THREE
        FCVT_DX_EXACT fcvt.d.wu, 0xffffffff, 0x41efffffffe00000
        FCVT_DX fcvt.d.l, 0x7fffffffffffffff, 0x43e0000000000000, NX
        FCVT_DX fcvt.d.l, 0x7fffffffffffffff, 0x43dfffffffffffff, NX, rtz
        FCVT_DX fcvt.d.l, 0x8000000000000000, 0xc3e0000000000000, 0
        FCVT_DX fcvt.d.lu, 0xffffffffffffffff, 0x43f0000000000000, NX
        FCVT_DX fcvt.d.lu, 0x20000000000001, 0x4340000000000000, NX   # 2^53+1 ties to even
        FCVT_DX fcvt.d.lu, 0x20000000000001, 0x4340000000000001, NX, rup

        # reserved rounding modes
        EXPECT_TRAP 1f
2:      .insn r 0x53, 5, 1, fa0, fa1, fa2          # fadd.d rm=5
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
        EXPECT_TRAP 1f
        .insn r 0x53, 6, 0x2d, fa0, fa1, f0         # fsqrt.d rm=6
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        fsrmi 7
        EXPECT_TRAP 1f
        fcvt.s.d fa0, fa1, dyn
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        fsrmi 5
        EXPECT_TRAP 1f
        fmadd.d fa0, fa1, fa2, fa3, dyn
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        fsrmi 0
        # FS = Off: double ops illegal too
        li t0, MSTATUS_FS
        csrc mstatus, t0
        EXPECT_TRAP 1f
        fld fa0, 0(s0)
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        li t0, (2 << 13)                 # Clean
        csrs mstatus, t0
        fmv.d.x fa0, zero
        csrr a0, mstatus
        srli a0, a0, 13
        andi a0, a0, 3
        CHECK a0, 3
        PASS
        TEST_END
        .data
        .align 3
dbuf:   .zero 64
