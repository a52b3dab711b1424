/*
 * nimbus-membench: memory bandwidth and latency. Measures memcpy, sequential
 * read (sum of 64-bit words) and sequential write (memset-like stores) over a
 * buffer, then a random pointer chase through a third buffer (dependent loads,
 * one node per 64-byte line linked in a random cyclic order, 1/8 of the nodes
 * per pass: stresses the TLB / an emulator's address translation).
 *
 * usage: nimbus-membench [BUFFER_MIB] [PASSES]   (default 32 MiB, 8 passes)
 * Last line: "nimbus-membench: elapsed=S s instret=I checksum=C" over the four
 * measured phases (rdinstret; 0 if user mode cannot read it).
 */
#include "common.h"

int main(int argc, char **argv) {
  if (argc > 3 || (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
    fprintf(stderr, "usage: %s [BUFFER_MIB] [PASSES]\n"
                    "  memcpy/read/write bandwidth over a buffer (default 32 MiB, 8 passes);\n"
                    "  prints MB/s (1 MB = 2^20 bytes)\n", argv[0]);
    return 2;
  }
  unsigned long long mib = argc >= 2 ? parse_count("buffer size", argv[1]) : 32;
  unsigned long long passes = argc >= 3 ? parse_count("pass count", argv[2]) : 8;
  if (mib == 0 || passes == 0) {
    fprintf(stderr, "buffer size and pass count must be > 0\n");
    return 2;
  }
  size_t bytes = (size_t)mib << 20;
  size_t words = bytes / sizeof(uint64_t);
  uint64_t *a = malloc(bytes), *b = malloc(bytes);
  if (!a || !b) {
    fprintf(stderr, "cannot allocate 2 x %llu MiB\n", mib);
    return 1;
  }
  /* Touch everything once so page faults are not measured. */
  for (size_t i = 0; i < words; i++) { a[i] = i; b[i] = ~i; }

  /* Pointer-chase ring in a third buffer: node k is the word at k * 8 (one per
   * 64-byte line), linked in a random cyclic order (Sattolo's algorithm); built
   * before the timed phases. */
  size_t nodes = words / 8;
  uint64_t *ring = malloc(nodes * sizeof(uint64_t));
  if (!ring) {
    fprintf(stderr, "cannot allocate the chase ring\n");
    return 1;
  }
  for (size_t k = 0; k < nodes; k++) ring[k] = k;
  uint64_t rs = 0x2545F4914F6CDD1DULL;
  for (size_t k = nodes - 1; k > 0; k--) {
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    size_t j = (size_t)(rs % k);
    uint64_t t = ring[k]; ring[k] = ring[j]; ring[j] = t;
  }
  uint64_t *chase = malloc(bytes);
  if (!chase) {
    fprintf(stderr, "cannot allocate a third buffer of %llu MiB\n", mib);
    return 1;
  }
  for (size_t i = 0; i < words; i++) chase[i] = 0;
  for (size_t k = 0; k < nodes; k++) chase[k * 8] = ring[k] * 8;
  free(ring);

  (void)instret_readable();
  uint64_t i0 = instret_begin();
  double t_all = now_seconds();
  double t0 = now_seconds();
  for (unsigned long long p = 0; p < passes; p++) {
    memcpy((p & 1) ? a : b, (p & 1) ? b : a, bytes);
  }
  double t_copy = now_seconds() - t0;

  volatile uint64_t sink = 0;
  t0 = now_seconds();
  for (unsigned long long p = 0; p < passes; p++) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 3 < words; i += 4) {
      s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3];
    }
    sink += s0 + s1 + s2 + s3;
  }
  double t_read = now_seconds() - t0;

  t0 = now_seconds();
  for (unsigned long long p = 0; p < passes; p++) {
    uint64_t v = p * 0x0101010101010101ULL;
    for (size_t i = 0; i < words; i++) b[i] = v;
  }
  double t_write = now_seconds() - t0;
  sink += b[words / 2];

  t0 = now_seconds();
  uint64_t pos = 0;
  unsigned long long loads = (unsigned long long)nodes * passes / 8;
  for (unsigned long long n = 0; n < loads; n++) pos = chase[pos];
  double t_chase = now_seconds() - t0;
  sink += pos;
  double t_total = now_seconds() - t_all;
  uint64_t insns = instret_since(i0);

  double total = (double)bytes * (double)passes;
  printf("nimbus-membench: buffer=%llu MiB passes=%llu\n", mib, passes);
  printf("  memcpy: %10.1f MB/s\n", mb_per_s(total, t_copy));
  printf("  read:   %10.1f MB/s\n", mb_per_s(total, t_read));
  printf("  write:  %10.1f MB/s\n", mb_per_s(total, t_write));
  printf("  chase:  %10.1f ns/load (%llu dependent random loads)\n",
         loads ? t_chase * 1e9 / (double)loads : 0.0, loads);
  printf("nimbus-membench: elapsed=%.3f s instret=%llu checksum=%016llx\n", t_total,
         (unsigned long long)insns, (unsigned long long)sink);
  free(a);
  free(b);
  free(chase);
  return 0;
}
