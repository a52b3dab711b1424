/* Small helpers shared by the Nimbus guest benchmark programs. */
#ifndef NIMBUS_GUEST_COMMON_H
#define NIMBUS_GUEST_COMMON_H

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses a non-negative integer argument; exits with a message on error. */
static inline unsigned long long parse_count(const char *what, const char *s) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
    fprintf(stderr, "invalid %s: '%s'\n", what, s);
    exit(2);
  }
  return v;
}

static inline double mb_per_s(double bytes, double secs) {
  return secs > 0 ? bytes / (1024.0 * 1024.0) / secs : 0.0;
}

/*
 * Retired-instruction counter (the `instret` CSR, rdinstret). User mode may read
 * it only if the firmware and kernel allow it (mcounteren/scounteren bit IR):
 * OpenSBI and Nimbus's built-in SBI set both, Linux 6.1 leaves scounteren as it
 * finds it. instret_begin() probes once (a SIGILL means "not readable") and
 * returns the counter or 0; instret_since() returns the instructions retired
 * since, or 0 if the counter cannot be read. The counter belongs to the hart,
 * so the count is only meaningful on a 1-hart guest (no migration) and includes
 * what the kernel ran meanwhile (timer interrupts). Under QEMU TCG without
 * -icount instret is derived from the host clock, not counted: use Nimbus's.
 */
static sigjmp_buf instret_probe_jmp;
static int instret_state; /* 0 unknown, 1 readable, -1 not readable */

static void instret_probe_handler(int sig) {
  (void)sig;
  siglongjmp(instret_probe_jmp, 1);
}

static inline uint64_t read_instret_raw(void) {
#if defined(__riscv)
  uint64_t v;
  __asm__ volatile("rdinstret %0" : "=r"(v));
  return v;
#else
  return 0;
#endif
}

static inline int instret_readable(void) {
  if (instret_state == 0) {
#if defined(__riscv)
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = instret_probe_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGILL, &sa, &old);
    if (sigsetjmp(instret_probe_jmp, 1) == 0) {
      (void)read_instret_raw();
      instret_state = 1;
    } else {
      instret_state = -1;
    }
    sigaction(SIGILL, &old, NULL);
#else
    instret_state = -1;
#endif
  }
  return instret_state > 0;
}

static inline uint64_t instret_begin(void) {
  return instret_readable() ? read_instret_raw() : 0;
}

static inline uint64_t instret_since(uint64_t start) {
  return instret_readable() ? read_instret_raw() - start : 0;
}

#endif
