/* Helpers shared by rv64f.S / rv64d.S. Registers: t0-t2 scratch, fa0-fa3 operands. */
        .macro LDS freg, bits          /* load a NaN-boxed single */
        li t0, \bits
        fmv.w.x \freg, t0
        .endm
        .macro LDD freg, bits
        li t0, \bits
        fmv.d.x \freg, t0
        .endm
/* Two-operand single op: result bits and exact fflags (fflags cleared before). */
        .macro FOP2S op, a, b, exp, flags, rm=dyn
        LDS fa1, \a
        LDS fa2, \b
        csrw fflags, zero
        \op fa0, fa1, fa2, \rm
        CHECKFS fa0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FOP2S_NORM op, a, b, exp, flags      /* ops without a rounding mode */
        LDS fa1, \a
        LDS fa2, \b
        csrw fflags, zero
        \op fa0, fa1, fa2
        CHECKFS fa0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FOP3S op, a, b, c, exp, flags, rm=dyn
        LDS fa1, \a
        LDS fa2, \b
        LDS fa3, \c
        csrw fflags, zero
        \op fa0, fa1, fa2, fa3, \rm
        CHECKFS fa0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FOP2D op, a, b, exp, flags, rm=dyn
        LDD fa1, \a
        LDD fa2, \b
        csrw fflags, zero
        \op fa0, fa1, fa2, \rm
        CHECKF fa0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FOP2D_NORM op, a, b, exp, flags
        LDD fa1, \a
        LDD fa2, \b
        csrw fflags, zero
        \op fa0, fa1, fa2
        CHECKF fa0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FOP3D op, a, b, c, exp, flags, rm=dyn
        LDD fa1, \a
        LDD fa2, \b
        LDD fa3, \c
        csrw fflags, zero
        \op fa0, fa1, fa2, fa3, \rm
        CHECKF fa0, \exp
        CHECK_FLAGS \flags
        .endm
/* FP -> integer register result (compare, class, fcvt to int, fmv.x) */
        .macro FCMPS op, a, b, exp, flags
        LDS fa1, \a
        LDS fa2, \b
        csrw fflags, zero
        \op a0, fa1, fa2
        CHECK a0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FCMPD op, a, b, exp, flags
        LDD fa1, \a
        LDD fa2, \b
        csrw fflags, zero
        \op a0, fa1, fa2
        CHECK a0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FCVT_XS op, a, exp, flags, rm=dyn
        LDS fa1, \a
        csrw fflags, zero
        \op a0, fa1, \rm
        CHECK a0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FCVT_XD op, a, exp, flags, rm=dyn
        LDD fa1, \a
        csrw fflags, zero
        \op a0, fa1, \rm
        CHECK a0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FCVT_SX op, a, exp, flags, rm=dyn
        li a1, \a
        csrw fflags, zero
        \op fa0, a1, \rm
        CHECKFS fa0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FCVT_DX op, a, exp, flags, rm=dyn
        li a1, \a
        csrw fflags, zero
        \op fa0, a1, \rm
        CHECKF fa0, \exp
        CHECK_FLAGS \flags
        .endm
        .macro FCLASS_S a, exp
        LDS fa1, \a
        fclass.s a0, fa1
        CHECK a0, \exp
        .endm
        .macro FCLASS_D a, exp
        LDD fa1, \a
        fclass.d a0, fa1
        CHECK a0, \exp
        .endm
        .macro FCVT_DX_EXACT op, a, exp
        li a1, \a
        csrw fflags, zero
        \op fa0, a1
        CHECKF fa0, \exp
        CHECK_FLAGS 0
        .endm
