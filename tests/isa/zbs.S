# Zbs: bclr/bclri, bext/bexti, binv/binvi, bset/bseti (index taken mod 64).
#include "test.h"
        .macro OP3 op, exp, a, b
        li a0, \a
        li a1, \b
        \op a2, a0, a1
        CHECK a2, \exp
        .endm
        .macro OPI op, exp, a, imm
        li a0, \a
        \op a2, a0, \imm
        CHECK a2, \exp
        .endm
        TEST_BEGIN
        OP3 bclr, 0x7fffffffffffffff, -1, 63
        OP3 bclr, 0xfffffffffffffffe, -1, 64          # index mod 64 = 0
        OP3 bclr, 0x10, 0x10, 3
        OPI bclri, 0xfffffffeffffffff, -1, 32
        OPI bclri, 0, 1, 0
        OP3 bext, 1, 0x8000000000000000, 63
        OP3 bext, 0, 0x8000000000000000, 62
        OP3 bext, 1, 0x1, 128
        OPI bexti, 1, 0x100000000, 32
        OPI bexti, 0, 0xfffffffeffffffff, 32
        OP3 binv, 0x8000000000000000, 0, 63
        OP3 binv, 0, 0x20, 5
        OP3 binv, 0x21, 0x20, 0xffffffffffffffc0       # index 0
        OPI binvi, 0xffffffff7fffffff, -1, 31
        OP3 bset, 0x8000000000000000, 0, -1            # index 63
        OP3 bset, 0x1, 0x1, 0
        OPI bseti, 0x0000000100000000, 0, 32
        OPI bseti, 0x80000000, 0, 31                   # no sign extension
        li a0, 3
        bset zero, a0, a0
        CHECK zero, 0
        PASS
        TEST_END
