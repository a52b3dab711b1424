/*
 * nimbus-cpubench: CPU work for a fixed number of iterations, in one of three
 * modes. Prints the elapsed time, the instructions retired meanwhile (rdinstret,
 * 0 if user mode cannot read it) and a checksum that only depends on the mode
 * and the iteration count (so it doubles as a correctness check of the emulator).
 *
 * usage: nimbus-cpubench [MODE] [ITERATIONS]
 *   mixed   (default, 20000000 iterations) integer and branchy work: a switch on
 *           random bits over mul, div, rem, rotates, popcount, table updates, Collatz
 *   int     (default 20000000) straight-line integer arithmetic, no data-dependent
 *           branches: multiply (low and high), add, xor, shifts, rotates, a
 *           branch-free CRC-32 step
 *   branch  (default 2000000) data-dependent, hard-to-predict branches: binary
 *           searches of random keys, a small bytecode interpreter (jump table),
 *           insertion sort of short random arrays
 * A lone numeric argument is the iteration count of the mixed mode (as before).
 * Last line: "nimbus-cpubench: mode=M iterations=N elapsed=S s rate=R Miter/s
 *             instret=I checksum=C".
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

static uint64_t run_mixed(uint64_t iters) {
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
  return sum;
}

static inline uint64_t rotl64(uint64_t x, unsigned k) { return (x << k) | (x >> (64 - k)); }

/* One bit-serial CRC-32 (reflected, poly 0xEDB88320) byte step without branches. */
static inline uint32_t crc32_byte(uint32_t crc, uint8_t b) {
  crc ^= b;
  for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320U & (0U - (crc & 1U)));
  return crc;
}

static uint64_t run_int(uint64_t iters) {
  uint64_t a = 0x0123456789ABCDEFULL, b = 0xFEDCBA9876543210ULL, c = 1, d = 0x9E3779B97F4A7C15ULL;
  uint32_t crc = 0xFFFFFFFFU;
  for (uint64_t i = 0; i < iters; i++) {
    /* splitmix64 step */
    d += 0x9E3779B97F4A7C15ULL;
    uint64_t z = d;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    /* 64x64 -> 128 multiply (mul + mulhu) */
    unsigned __int128 p = (unsigned __int128)(a | 1) * z;
    a = (uint64_t)p ^ rotl64(b, 23);
    b = (uint64_t)(p >> 64) + rotl64(a, 41) + (c << 3);
    c = c * 6364136223846793005ULL + 1442695040888963407ULL;
    crc = crc32_byte(crc, (uint8_t)(a ^ c));
    /* 32-bit arithmetic (the *w instructions) */
    uint32_t w = (uint32_t)b * 0x01000193U + (uint32_t)(z >> 32);
    c ^= (uint64_t)(w >> 5) + (uint64_t)(int32_t)(w << 3);
  }
  return a ^ b ^ c ^ d ^ crc;
}

enum { OP_ADD, OP_SUB, OP_XOR, OP_SHL, OP_JNZ, OP_SWAP, OP_INC, OP_MIX };

static uint64_t run_branch(uint64_t iters) {
  enum { N = 4096, PROG = 64, SORTN = 12 };
  static uint32_t sorted[N];
  uint8_t prog[PROG];
  uint64_t state = 0xD1B54A32D192ED03ULL;
  uint64_t sum = 0;
  uint32_t v = 0;
  for (int i = 0; i < N; i++) {
    v += 1 + (uint32_t)(xorshift64(&state) & 0xff);
    sorted[i] = v;
  }
  for (int i = 0; i < PROG; i++) prog[i] = (uint8_t)(xorshift64(&state) & 7);

  for (uint64_t i = 0; i < iters; i++) {
    uint64_t r = xorshift64(&state);
    /* 1. binary search for a random key: each step is an unpredictable branch */
    uint32_t key = (uint32_t)(r % v);
    int lo = 0, hi = N;
    while (lo < hi) {
      int mid = (lo + hi) >> 1;
      if (sorted[mid] < key) lo = mid + 1; else hi = mid;
    }
    sum += (uint64_t)lo;
    /* 2. a bytecode interpreter: random opcodes through a jump table */
    uint64_t acc = r, x = i;
    int pc = (int)(r >> 58);          /* 0..63 */
    for (int steps = 0; steps < 16; steps++) {
      switch (prog[pc]) {
        case OP_ADD: acc += x; break;
        case OP_SUB: acc -= x >> 1; break;
        case OP_XOR: acc ^= x * 3; break;
        case OP_SHL: acc <<= 1; break;
        case OP_JNZ: if (acc & 4) pc = (pc + 7) & (PROG - 1); break;
        case OP_SWAP: { uint64_t t = acc; acc = x; x = t; } break;
        case OP_INC: x++; break;
        default: acc = rotl64(acc, 13) ^ x; break;
      }
      pc = (pc + 1 + (int)(acc & 1)) & (PROG - 1);
    }
    sum += acc;
    /* 3. insertion sort of a few random bytes */
    if ((i & 7) == 0) {
      uint8_t a[SORTN];
      uint64_t s2 = r | 1;
      for (int k = 0; k < SORTN; k++) a[k] = (uint8_t)xorshift64(&s2);
      for (int k = 1; k < SORTN; k++) {
        uint8_t t = a[k];
        int j = k - 1;
        while (j >= 0 && a[j] > t) { a[j + 1] = a[j]; j--; }
        a[j + 1] = t;
      }
      sum += (uint64_t)a[0] + ((uint64_t)a[SORTN / 2] << 8) + ((uint64_t)a[SORTN - 1] << 16);
    }
  }
  return sum;
}

int main(int argc, char **argv) {
  const char *mode = "mixed";
  int argi = 1;
  if (argc >= 2 && (!strcmp(argv[1], "mixed") || !strcmp(argv[1], "int") || !strcmp(argv[1], "branch"))) {
    mode = argv[1];
    argi = 2;
  }
  if (argc > argi + 1 || (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
    fprintf(stderr, "usage: %s [mixed|int|branch] [ITERATIONS]\n"
                    "  mixed: integer/branchy loop (default 20000000 iterations)\n"
                    "  int: straight-line integer arithmetic (default 20000000)\n"
                    "  branch: binary search, bytecode interpreter, insertion sort (default 2000000)\n"
                    "  prints elapsed time, retired instructions (rdinstret) and a checksum\n", argv[0]);
    return 2;
  }
  uint64_t def = !strcmp(mode, "branch") ? 2000000ULL : 20000000ULL;
  uint64_t iters = argc > argi ? parse_count("iteration count", argv[argi]) : def;

  (void)instret_readable(); /* probe outside the timed region */
  double t0 = now_seconds();
  uint64_t i0 = instret_begin();
  uint64_t sum = !strcmp(mode, "int") ? run_int(iters) : !strcmp(mode, "branch") ? run_branch(iters)
                                                                                   : run_mixed(iters);
  uint64_t insns = instret_since(i0);
  double secs = now_seconds() - t0;
  printf("nimbus-cpubench: mode=%s iterations=%llu elapsed=%.3f s rate=%.2f Miter/s instret=%llu "
         "checksum=%016llx\n",
         mode, (unsigned long long)iters, secs, secs > 0 ? (double)iters / secs / 1e6 : 0.0,
         (unsigned long long)insns, (unsigned long long)sum);
  return 0;
}
