/* mips.c - bare-metal integer throughput benchmark for Nimbus (and QEMU).
 *
 * A fixed amount of work (MIPS_ITERS passes over a 4 KiB word array and a 1 KiB byte
 * array) mixing ALU ops, shifts, multiplies, data-dependent branches, loads and stores;
 * 1,003,381,760 retired instructions (nimbus --stats; ~31,350 per outer iteration). At the end the checksum is compared with the
 * value computed on the host (MIPS_EXPECTED); the program ends through the SiFive test
 * finisher at 0x100000: 0x5555 = pass, 0x3333 | (1 << 16) = wrong checksum.
 * Retired instructions (minstret delta) are left in `mips_instret` for debuggers.
 *
 * Host check of the expected checksum:  cc -O2 -DMIPS_HOST mips.c && ./a.out
 */
#include <stdint.h>

#ifndef MIPS_ITERS
#define MIPS_ITERS 32000u
#endif
#define N 1024u

static uint32_t a[N];
static uint8_t b[N];
volatile uint32_t mips_seed = 12345u;
volatile uint64_t mips_result;
volatile uint64_t mips_instret;

static uint64_t run(void)
{
    uint32_t x = mips_seed;
    for (uint32_t i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        a[i] = x;
        b[i] = (uint8_t)(x >> 24);
    }
    uint64_t sum = 0;
    for (uint32_t it = 0; it < MIPS_ITERS; it++) {
        for (uint32_t i = 0; i < N; i++) {
            uint32_t v = a[i];
            v ^= v << 13;
            v ^= v >> 17;
            v ^= v << 5;
            if (v & 1u)
                sum += v;
            else
                sum -= v >> 3;
            if (b[i] > 128u)
                v += b[(i + it) & (N - 1u)];
            a[i] = v + it;
            if ((i & 7u) == 0u)
                b[i] = (uint8_t)(b[i] + (v >> 28));
        }
        sum = (sum << 1) | (sum >> 63);
        sum *= 0x9e3779b97f4a7c15ull;
    }
    for (uint32_t i = 0; i < N; i++)
        sum += (uint64_t)a[i] * (i + 1u) + b[i];
    return sum;
}

#ifdef MIPS_HOST
#include <stdio.h>
int main(void)
{
    printf("MIPS_EXPECTED 0x%016llxull (MIPS_ITERS=%u)\n", (unsigned long long)run(), MIPS_ITERS);
    return 0;
}
#else
#ifndef MIPS_EXPECTED
#define MIPS_EXPECTED 0x27187ad85f44f920ull /* host-computed for MIPS_ITERS = 32000 */
#endif
static inline uint64_t read_instret(void)
{
    uint64_t v;
    __asm__ volatile("csrr %0, minstret" : "=r"(v));
    return v;
}

int main(void)
{
    uint64_t i0 = read_instret();
    uint64_t r = run();
    mips_instret = read_instret() - i0;
    mips_result = r;
#ifdef MIPS_SPIN /* development aid: stay alive so a debugger/monitor can read mips_instret */
    for (;;)
        __asm__ volatile("wfi");
#endif
    volatile uint32_t *finisher = (volatile uint32_t *)0x100000;
    *finisher = (r == MIPS_EXPECTED) ? 0x5555u : (0x3333u | (1u << 16));
    for (;;) /* spin, not wfi: the finisher ends the run asynchronously */
        __asm__ volatile("");
}
#endif
