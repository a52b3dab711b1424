/*
 * nimbus-growfs: grow a mounted ext4 file system online to the size of its block
 * device (a VM's root disk that is larger than the image it was made from).
 *
 *   nimbus-growfs [DEVICE [MOUNTPOINT]]      (default: /dev/vda /)
 *
 * The device's size comes from BLKGETSIZE64 (or /sys/class/block/NAME/size), the file
 * system's from its superblock (read through the device); the kernel grows it with
 * EXT4_IOC_RESIZE_FS on the mount point. MOUNTPOINT must be ext4 and mounted from
 * DEVICE. Prints the old and new sizes, or that it is already full size.
 * Exit status: 0 grown or nothing to do, 1 failed, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif
#define EXT4_SUPER_MAGIC 0xEF53
#define EXT4_FEATURE_INCOMPAT_64BIT 0x80

static const char *prog = "nimbus-growfs";

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads the ext4 superblock of FD: block count and block size. 0 or -1 (message). */
static int read_super(int fd, const char *dev, uint64_t *blocks, uint32_t *block_size) {
  unsigned char sb[1024];
  if (pread(fd, sb, sizeof sb, 1024) != (ssize_t)sizeof sb) {
    fprintf(stderr, "%s: %s: cannot read the superblock: %s\n", prog, dev, strerror(errno));
    return -1;
  }
  if ((sb[0x38] | sb[0x39] << 8) != EXT4_SUPER_MAGIC) {
    fprintf(stderr, "%s: %s: not an ext2/3/4 file system\n", prog, dev);
    return -1;
  }
  uint32_t log_bs = le32(sb + 0x18);
  if (log_bs > 6) {
    fprintf(stderr, "%s: %s: bad block size in the superblock\n", prog, dev);
    return -1;
  }
  *block_size = 1024u << log_bs;
  *blocks = le32(sb + 0x04);
  if (le32(sb + 0x60) & EXT4_FEATURE_INCOMPAT_64BIT) *blocks |= (uint64_t)le32(sb + 0x150) << 32;
  return 0;
}

/* The device's size in bytes: BLKGETSIZE64, else /sys/class/block/NAME/size (sectors). */
static int device_bytes(int fd, const char *dev, uint64_t *bytes) {
  if (ioctl(fd, BLKGETSIZE64, bytes) == 0) return 0;
  const char *name = strrchr(dev, '/');
  name = name ? name + 1 : dev;
  char path[300];
  snprintf(path, sizeof path, "/sys/class/block/%s/size", name);
  FILE *f = fopen(path, "r");
  unsigned long long sectors;
  if (f && fscanf(f, "%llu", &sectors) == 1) {
    fclose(f);
    *bytes = sectors * 512ull;
    return 0;
  }
  if (f) fclose(f);
  fprintf(stderr, "%s: %s: cannot get the device size\n", prog, dev);
  return -1;
}

static double mib(uint64_t blocks, uint32_t bs) { return (double)blocks * bs / (1024.0 * 1024.0); }

int main(int argc, char **argv) {
  if (argc > 3 || (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))) {
    fprintf(stderr,
            "usage: %s [DEVICE [MOUNTPOINT]]  (default /dev/vda /)\n"
            "  grows the mounted ext4 on DEVICE to the device's size, online\n",
            prog);
    return 2;
  }
  const char *dev = argc > 1 ? argv[1] : "/dev/vda";
  const char *mnt = argc > 2 ? argv[2] : "/";

  struct statfs sf;
  if (statfs(mnt, &sf) != 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, mnt, strerror(errno));
    return 1;
  }
  if (sf.f_type != EXT4_SUPER_MAGIC) {
    fprintf(stderr, "%s: %s is not an ext4 file system\n", prog, mnt);
    return 1;
  }
  struct stat ms, ds;
  if (stat(mnt, &ms) != 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, mnt, strerror(errno));
    return 1;
  }
  if (stat(dev, &ds) != 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, dev, strerror(errno));
    return 1;
  }
  if (!S_ISBLK(ds.st_mode)) {
    fprintf(stderr, "%s: %s is not a block device\n", prog, dev);
    return 1;
  }
  if (ms.st_dev != ds.st_rdev) {
    fprintf(stderr, "%s: %s is not mounted at %s\n", prog, dev, mnt);
    return 1;
  }
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, dev, strerror(errno));
    return 1;
  }
  uint64_t bytes, blocks;
  uint32_t bs;
  if (device_bytes(fd, dev, &bytes) != 0 || read_super(fd, dev, &blocks, &bs) != 0) {
    close(fd);
    return 1;
  }
  uint64_t want = bytes / bs;
  if (want <= blocks) {
    printf("%s: %s is already full size: %llu blocks of %u bytes (%.1f MiB)\n", prog, mnt,
           (unsigned long long)blocks, bs, mib(blocks, bs));
    close(fd);
    return 0;
  }
  int mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mfd < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, mnt, strerror(errno));
    close(fd);
    return 1;
  }
  uint64_t arg = want;
  if (ioctl(mfd, EXT4_IOC_RESIZE_FS, &arg) != 0) {
    fprintf(stderr, "%s: growing %s from %llu to %llu blocks failed: %s\n", prog, mnt,
            (unsigned long long)blocks, (unsigned long long)want, strerror(errno));
    close(mfd);
    close(fd);
    return 1;
  }
  close(mfd);
  uint64_t now = want;
  uint32_t bs2;
  if (read_super(fd, dev, &now, &bs2) != 0) now = want;
  close(fd);
  printf("%s: grew %s on %s from %llu to %llu blocks of %u bytes (%.1f MiB -> %.1f MiB)\n", prog,
         mnt, dev, (unsigned long long)blocks, (unsigned long long)now, bs, mib(blocks, bs),
         mib(now, bs));
  return 0;
}
