# Zba: add.uw (zext.w), sh1add/sh2add/sh3add, their .uw forms, slli.uw.
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
        OP3 add.uw, 0x100000000 + 0xffffffff, 0xffffffffffffffff, 0x100000000
        OP3 add.uw, 0x80000001, 0x1234567880000000, 1
        OP3 add.uw, 0, 0xffffffff00000000, 0
        li a0, 0xfedcba9887654321
        zext.w a1, a0
        CHECK a1, 0x87654321
        OP3 sh1add, 0x0000000000000007, 3, 1
        OP3 sh1add, 0x0, 0x8000000000000000, 0        # shifted-out bit dropped
        OP3 sh2add, 0x10, 0x4000000000000004, 0
        OP3 sh3add, 0xfffffffffffffff8 + 0x10, -1, 0x10
        OP3 sh3add, 43, 5, 3
        OP3 sh1add.uw, 0x1fffffffe + 1, 0xabcdef00ffffffff, 1
        OP3 sh2add.uw, 0x200000000, 0xffffffff80000000, 0
        OP3 sh3add.uw, 0x7fffffff8 + 8, 0x12345678ffffffff, 8
        OP3 sh3add.uw, 0xffffffffffffffff, 0xffffffff00000000, -1
        OPI slli.uw, 0xffffffff, 0xaaaaaaaaffffffff, 0
        OPI slli.uw, 0x1fffffffe, 0xaaaaaaaaffffffff, 1
        OPI slli.uw, 0x8000000000000000, 0x80000001, 63   # zext then shift by 63
        OPI slli.uw, 0xffffffff00000000, 0xffffffff, 32
        li a0, 5
        sh2add zero, a0, a0
        CHECK zero, 0
        PASS
        TEST_END
