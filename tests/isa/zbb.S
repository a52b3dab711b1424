# Zbb: andn/orn/xnor, clz/ctz/cpop and W forms (incl. zero input), min/max signed and
# unsigned, sext.b/sext.h/zext.h, rol/ror/rori and W forms, orc.b, rev8.
#include "test.h"
        .macro OP3 op, exp, a, b
        li a0, \a
        li a1, \b
        \op a2, a0, a1
        CHECK a2, \exp
        .endm
        .macro OP1 op, exp, a
        li a0, \a
        \op a2, a0
        CHECK a2, \exp
        .endm
        .macro OPI op, exp, a, imm
        li a0, \a
        \op a2, a0, \imm
        CHECK a2, \exp
        .endm
        TEST_BEGIN
        OP3 andn, 0xf0f0f0f000000000, 0xffffffff00000000, 0x0f0f0f0f0f0f0f0f
        OP3 orn, 0xf0f0f0f0f0f0f0f0, 0, 0x0f0f0f0f0f0f0f0f
        OP3 orn, 0xffffffffffff00ff, 0xff, 0xff00
        OP3 xnor, 0xffffffffffffffff, 0x1234, 0x1234
        OP3 xnor, 0x0, 0x5555555555555555, 0xaaaaaaaaaaaaaaaa

        OP1 clz, 64, 0
        OP1 clz, 0, -1
        OP1 clz, 63, 1
        OP1 clz, 11, 0x0010000000000000
        OP1 clzw, 32, 0xffffffff00000000
        OP1 clzw, 0, 0x80000000
        OP1 clzw, 31, 0xffffffff00000001
        OP1 ctz, 64, 0
        OP1 ctz, 63, 0x8000000000000000
        OP1 ctz, 0, 1
        OP1 ctz, 4, 0xfff0
        OP1 ctzw, 32, 0xffffffff00000000
        OP1 ctzw, 31, 0x80000000
        OP1 ctzw, 0, 0xffffffff
        OP1 cpop, 0, 0
        OP1 cpop, 64, -1
        OP1 cpop, 32, 0x5555555555555555
        OP1 cpopw, 32, -1
        OP1 cpopw, 1, 0xffffffff00010000
        OP1 cpopw, 0, 0xffffffff00000000

        OP3 max, 1, -1, 1
        OP3 maxu, -1, -1, 1
        OP3 min, -1, -1, 1
        OP3 minu, 1, -1, 1
        OP3 max, 0x7fffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff
        OP3 minu, 0x7fffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff
        OP3 min, -5, -5, -5

        OP1 sext.b, 0xffffffffffffff80, 0x1234567890abcd80
        OP1 sext.b, 0x7f, 0xffffffffffffff7f
        OP1 sext.h, 0xffffffffffff8000, 0x8000
        OP1 sext.h, 0x7fff, 0xffffffffffff7fff
        OP1 zext.h, 0xffff, 0xffffffffffffffff
        OP1 zext.h, 0x8001, 0x12348001

        OP3 rol, 0x0000000000000003, 0x8000000000000001, 1
        OP3 rol, 0x8000000000000001, 0x8000000000000001, 64   # shamt mod 64 = 0
        OP3 rol, 0x2345678901234561, 0x1234567890123456, 4
        OP3 ror, 0xc000000000000000, 0x8000000000000001, 1
        OP3 ror, 0x6123456789012345, 0x1234567890123456, 4
        OP3 ror, 0x0000000000000002, 0x0000000000000001, 63
        OPI rori, 0xc000000000000000, 0x8000000000000001, 1
        OPI rori, 0x0000000000000003, 0x8000000000000001, 63
        OP3 rolw, 0x0000000000000003, 0xffffffff80000001, 1
        OP3 rolw, 0xffffffff80000000, 0x40000000, 1          # result sign-extended
        OP3 rolw, 0x0000000012345678, 0x12345678, 32          # shamt mod 32
        OP3 rorw, 0xffffffffc0000000, 0x1234567880000001, 1
        OP3 rorw, 0x0000000000000002, 0x00000001, 31
        OPI roriw, 0xffffffff80000000, 0x1, 1
        OPI roriw, 0x0000000012345678, 0xff12345678, 0

        OP1 orc.b, 0xff00ff0000ffffff, 0x0100800000038001
        OP1 orc.b, 0, 0
        OP1 orc.b, 0xffffffffffffffff, 0x0101010101010101
        OP1 rev8, 0x0807060504030201, 0x0102030405060708
        OP1 rev8, 0x00000000000000ff, 0xff00000000000000
        PASS
        TEST_END
