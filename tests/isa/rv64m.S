# RV64M: MUL/MULH/MULHSU/MULHU/DIV/DIVU/REM/REMU and MULW/DIVW/DIVUW/REMW/REMUW,
# including division by zero (quotient all ones, remainder = dividend), signed overflow
# (most-negative / -1: quotient = dividend, remainder 0), W-form sign extension and
# ignoring of the upper 32 input bits.
#include "test.h"
        .macro OP3 op, exp, a, b
        li a0, \a
        li a1, \b
        \op a2, a0, a1
        CHECK a2, \exp
        .endm

        TEST_BEGIN
        OP3 mul, 42, 6, 7
        OP3 mul, -42, -6, 7
        OP3 mul, 0, 0x100000000, 0
        OP3 mul, 0xfffffffe00000001, 0xffffffff, 0xffffffff
        OP3 mul, 1, -1, -1
        OP3 mul, 0x8000000000000000, 0x8000000000000000, -1   # low bits of overflow
        OP3 mul, 0x379aaab7f0bfb7a2, 0x123456789, 0xabcdef012
        OP3 mulhu, 0xc, 0x123456789, 0xabcdef012

        # high parts: (2^64-1)*(2^64-1)
        OP3 mulhu, 0xfffffffffffffffe, -1, -1
        OP3 mulh, 0, -1, -1                      # (-1)*(-1) = 1 -> high 0
        OP3 mulhsu, -1, -1, -1                   # -1 * (2^64-1) = -(2^64-1) -> high -1
        OP3 mulhsu, 0, -1, 0
        OP3 mulh, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000
        OP3 mulhu, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000
        OP3 mulhsu, 0xc000000000000000, 0x8000000000000000, 0x8000000000000000
        OP3 mulh, 0xffffffffffffffff, 0x7fffffffffffffff, -2   # -(2^64-2) -> high -1
        OP3 mulhu, 0x7ffffffffffffffe, 0x7fffffffffffffff, -2
        OP3 mulhsu, 0x7ffffffffffffffe, 0x7fffffffffffffff, -2
        OP3 mulhsu, 0, 5, 7
        OP3 mulhu, 0x0000000000000001, 0x100000000, 0x100000000
        OP3 mulh, 0, 0x123, 0x456

        # mulw: low 32 bits sign extended, upper inputs ignored
        OP3 mulw, 0xffffffff80000000, 0x40000000, 2
        OP3 mulw, 1, 0xffffffffffffffff, 0x00000000ffffffff
        OP3 mulw, 0x2a, 0xabcdef0000000006, 0x1234567800000007
        OP3 mulw, 0, 0x10000, 0x10000

        # division rounds toward zero
        OP3 div, 3, 20, 6
        OP3 div, -3, -20, 6
        OP3 div, -3, 20, -6
        OP3 div, 3, -20, -6
        OP3 rem, 2, 20, 6
        OP3 rem, -2, -20, 6            # sign follows dividend
        OP3 rem, 2, 20, -6
        OP3 rem, -2, -20, -6
        OP3 divu, 0x2aaaaaaaaaaaaaa7, -20, 6
        OP3 remu, 2, -20, 6
        OP3 divu, 0, 20, -6
        OP3 remu, 20, 20, -6
        # division by zero
        OP3 div, -1, 12345, 0
        OP3 divu, -1, 12345, 0
        OP3 rem, 12345, 12345, 0
        OP3 remu, 12345, 12345, 0
        OP3 div, -1, -7, 0
        OP3 rem, -7, -7, 0
        # overflow
        OP3 div, 0x8000000000000000, 0x8000000000000000, -1
        OP3 rem, 0, 0x8000000000000000, -1
        OP3 divu, 0, 0x8000000000000000, -1
        OP3 remu, 0x8000000000000000, 0x8000000000000000, -1

        # W forms
        OP3 divw, -3, 0xffffffff00000014, 0x00000001fffffffa    # 20 / -6
        OP3 divw, 0xffffffff80000000, 0x80000000, -1              # overflow
        OP3 remw, 0, 0x80000000, -1
        OP3 divw, -1, 5, 0x100000000                              # divisor low 32 = 0
        OP3 remw, 5, 5, 0x100000000
        OP3 remw, 0xffffffff80000001, 0x80000001, 0               # rem by 0: dividend sign-extended
        OP3 divuw, 0xffffffffffffffff, 0x1234, 0                  # all ones (sext of 32 ones)
        OP3 divuw, 0x7fffffff, 0xfffffffe, 2
        OP3 divuw, -1, 0xffffffff, 1
        OP3 remuw, 0xfffffffffffffff0, 0xfffffff0, 0                     # remainder = dividend sext
        OP3 remuw, 1, 0xffffffff, 2
        OP3 remuw, 0xffffffff80000000, 0xf80000000, 0x0180000001         # 0x80000000 % 0x80000001
        OP3 remw, -2, -20, 6

        # x0 destination
        li a0, 7
        li a1, 6
        mul zero, a0, a1
        div zero, a0, a1
        CHECK zero, 0
        PASS
        TEST_END
