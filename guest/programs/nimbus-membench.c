/*
 * nimbus-membench: memory bandwidth. Measures memcpy, sequential read (sum of
 * 64-bit words) and sequential write (memset-like stores) over a buffer.
 *
 * usage: nimbus-membench [BUFFER_MIB] [PASSES]   (default 32 MiB, 8 passes)
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

  double total = (double)bytes * (double)passes;
  printf("nimbus-membench: buffer=%llu MiB passes=%llu\n", mib, passes);
  printf("  memcpy: %10.1f MB/s\n", mb_per_s(total, t_copy));
  printf("  read:   %10.1f MB/s\n", mb_per_s(total, t_read));
  printf("  write:  %10.1f MB/s\n", mb_per_s(total, t_write));
  printf("  (checksum %016llx)\n", (unsigned long long)sink);
  free(a);
  free(b);
  return 0;
}
