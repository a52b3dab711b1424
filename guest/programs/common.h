/* Small helpers shared by the Nimbus guest benchmark programs. */
#ifndef NIMBUS_GUEST_COMMON_H
#define NIMBUS_GUEST_COMMON_H

#include <errno.h>
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

#endif
