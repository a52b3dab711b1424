/*
 * nimbus-diskbench: sequential write then sequential read of N MiB to a file
 * or block device; prints MB/s for both and verifies the data read back.
 *
 * usage: nimbus-diskbench [-d] [-b BLOCK_KIB] PATH MIB
 *   -d            use O_DIRECT (bypass the guest page cache)
 *   -b BLOCK_KIB  I/O size per request in KiB (default 1024)
 * PATH is created/truncated if it is a regular file. A block device is
 * overwritten from offset 0: all data on it is lost.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s [-d] [-b BLOCK_KIB] PATH MIB\n"
          "  sequential write, then read, of MIB MiB to PATH (file or block device)\n"
          "  -d            use O_DIRECT\n"
          "  -b BLOCK_KIB  request size in KiB (default 1024)\n"
          "  WARNING: a block device given as PATH is overwritten.\n",
          prog);
  exit(2);
}

static void fill(uint64_t *buf, size_t words, uint64_t block) {
  for (size_t i = 0; i < words; i++) buf[i] = (block << 32) ^ (i * 0x9E3779B97F4A7C15ULL);
}

int main(int argc, char **argv) {
  int direct = 0;
  unsigned long long block_kib = 1024;
  int opt;
  while ((opt = getopt(argc, argv, "db:h")) != -1) {
    switch (opt) {
      case 'd': direct = 1; break;
      case 'b': block_kib = parse_count("block size", optarg); break;
      default: usage(argv[0]);
    }
  }
  if (argc - optind != 2) usage(argv[0]);
  const char *path = argv[optind];
  unsigned long long mib = parse_count("size", argv[optind + 1]);
  if (mib == 0 || block_kib == 0 || (block_kib % 4) != 0 || block_kib > 65536) {
    fprintf(stderr, "size must be > 0; block size a multiple of 4 KiB, at most 65536\n");
    return 2;
  }
  size_t bs = (size_t)block_kib << 10;
  unsigned long long total = (unsigned long long)mib << 20;
  unsigned long long nblocks = (total + bs - 1) / bs;

  struct stat st;
  int is_blk = stat(path, &st) == 0 && S_ISBLK(st.st_mode);
  int flags = O_RDWR | (direct ? O_DIRECT : 0) | (is_blk ? 0 : O_CREAT | O_TRUNC);
  int fd = open(path, flags, 0644);
  if (fd < 0) {
    fprintf(stderr, "open %s: %s\n", path, strerror(errno));
    return 1;
  }
  void *mem = NULL;
  if (posix_memalign(&mem, 4096, bs) != 0) {
    fprintf(stderr, "cannot allocate %zu bytes\n", bs);
    return 1;
  }
  uint64_t *buf = mem;
  size_t words = bs / sizeof(uint64_t);

  double t0 = now_seconds();
  for (unsigned long long b = 0; b < nblocks; b++) {
    fill(buf, words, b);
    ssize_t n = pwrite(fd, buf, bs, (off_t)(b * bs));
    if (n != (ssize_t)bs) {
      fprintf(stderr, "write at block %llu: %s\n", b, n < 0 ? strerror(errno) : "short write");
      return 1;
    }
  }
  if (fsync(fd) != 0) fprintf(stderr, "fsync: %s\n", strerror(errno));
  double t_write = now_seconds() - t0;

  /* Drop the page cache (best effort) so the read pass hits the device. */
  if (!direct) {
    sync();
    int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (dc >= 0) {
      if (write(dc, "3\n", 2) != 2) { /* not fatal */ }
      close(dc);
    }
  }

  unsigned long long bad = 0;
  t0 = now_seconds();
  for (unsigned long long b = 0; b < nblocks; b++) {
    ssize_t n = pread(fd, buf, bs, (off_t)(b * bs));
    if (n != (ssize_t)bs) {
      fprintf(stderr, "read at block %llu: %s\n", b, n < 0 ? strerror(errno) : "short read");
      return 1;
    }
    for (size_t i = 0; i < words; i++)
      if (buf[i] != ((b << 32) ^ (i * 0x9E3779B97F4A7C15ULL))) bad++;
  }
  double t_read = now_seconds() - t0;
  close(fd);

  double bytes = (double)nblocks * (double)bs;
  printf("nimbus-diskbench: path=%s size=%.0f MiB block=%llu KiB direct=%s\n", path,
         bytes / 1048576.0, block_kib, direct ? "yes" : "no");
  printf("  write: %10.1f MB/s (%.3f s, incl. fsync)\n", mb_per_s(bytes, t_write), t_write);
  printf("  read:  %10.1f MB/s (%.3f s)\n", mb_per_s(bytes, t_read), t_read);
  printf("  verify: %s (%llu bad words)\n", bad ? "FAILED" : "ok", bad);
  free(mem);
  return bad ? 1 : 0;
}
