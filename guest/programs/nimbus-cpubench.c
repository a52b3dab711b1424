/*
 * nimbus-cpubench: integer and branch-heavy CPU work for a fixed number of
 * iterations. Prints the elapsed time and a checksum that only depends on the
 * iteration count (so it doubles as a correctness check of the emulator).
 *
 * usage: nimbus-cpubench [ITERATIONS]   (default 20000000)
 */
#include "common.h"

/* xorshift64: cheap pseudo-random numbers for data-dependent branches. */
static inline uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static uint64_t collatz_steps(uint64_t n) {
  uint64_t steps = 0;
  while (n != 1 && steps < 1000) {
    n = (n & 1) ? 3 * n + 1 : n >> 1;
    steps++;
  }
  return steps;
}

int main(int argc, char **argv) {
  if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
    fprintf(stderr, "usage: %s [ITERATIONS]\n"
                    "  integer/branchy CPU benchmark (default 20000000 iterations);\n"
                    "  prints elapsed time and a checksum\n", argv[0]);
    return 2;
  }
  uint64_t iters = argc == 2 ? parse_count("iteration count", argv[1]) : 20000000ULL;

  double t0 = now_seconds();
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  uint64_t sum = 0;
  uint32_t table[256];
  for (int i = 0; i < 256; i++) table[i] = (uint32_t)(i * 2654435761U);

  for (uint64_t i = 0; i < iters; i++) {
    uint64_t r = xorshift64(&state);
    switch (r & 7) {
      case 0: sum += r / ((i & 0xff) + 1); break;     /* division */
      case 1: sum ^= r * 0x100000001B3ULL; break;     /* multiply */
      case 2: sum += table[r & 0xff]; table[(r >> 8) & 0xff] ^= (uint32_t)sum; break;
      case 3: sum = (sum << 7) | (sum >> 57); break;  /* rotate */
      case 4: if ((int64_t)r < 0) sum -= r >> 3; else sum += r >> 5; break;
      case 5: sum += __builtin_popcountll(r); break;
      case 6: if ((i & 1023) == 0) sum += collatz_steps((r & 0xffff) + 1); else sum += i; break;
      default: sum += r % 1000003ULL; break;          /* remainder */
    }
  }
  double t1 = now_seconds();
  double secs = t1 - t0;
  printf("nimbus-cpubench: iterations=%llu elapsed=%.3f s rate=%.2f Miter/s checksum=%016llx\n",
         (unsigned long long)iters, secs, secs > 0 ? (double)iters / secs / 1e6 : 0.0,
         (unsigned long long)sum);
  return 0;
}
