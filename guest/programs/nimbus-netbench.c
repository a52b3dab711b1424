/*
 * nimbus-netbench: TCP throughput between two nimbus-netbench processes.
 *
 *   nimbus-netbench server [PORT]            serve forever (default port 5201)
 *   nimbus-netbench send IPV4 MIB [PORT]     client sends MIB MiB to the server
 *   nimbus-netbench recv IPV4 MIB [PORT]     client receives MIB MiB from it
 *
 * Protocol: the client sends a 13-byte header "NBN1" + mode ('s' or 'r') +
 * 8-byte big-endian byte count; then the data flows; the receiving side
 * acknowledges with the 8-byte count it got, so both ends measure the same
 * transfer. Both ends print MB/s (1 MB = 2^20 bytes).
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (128 * 1024)
static char buf[CHUNK];

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s server [PORT]\n"
          "       %s send IPV4 MIB [PORT]\n"
          "       %s recv IPV4 MIB [PORT]\n"
          "  TCP throughput test (default port 5201); prints MB/s\n",
          prog, prog, prog);
  exit(2);
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    c += w; n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0) { if (errno == EINTR) continue; return -1; }
    if (r == 0) return -1;
    c += r; n -= (size_t)r;
  }
  return 0;
}

static void put64(unsigned char *p, uint64_t v) { for (int i = 7; i >= 0; i--) { p[i] = v & 0xff; v >>= 8; } }
static uint64_t get64(const unsigned char *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v = v << 8 | p[i]; return v; }

/* Sends `bytes` bytes, then waits for the peer's 8-byte acknowledgement. */
static int do_send(int fd, uint64_t bytes) {
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7);
  uint64_t left = bytes;
  while (left > 0) {
    size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
    if (write_all(fd, buf, n) != 0) return -1;
    left -= n;
  }
  unsigned char ack[8];
  if (read_all(fd, ack, 8) != 0 || get64(ack) != bytes) return -1;
  return 0;
}

/* Receives exactly `bytes` bytes, then acknowledges. */
static int do_recv(int fd, uint64_t bytes) {
  uint64_t got = 0;
  while (got < bytes) {
    size_t want = bytes - got < sizeof buf ? (size_t)(bytes - got) : sizeof buf;
    ssize_t r = read(fd, buf, want);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (uint64_t)r;
  }
  unsigned char ack[8];
  put64(ack, got);
  return write_all(fd, ack, 8);
}

static int run_server(const char *port) {
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)parse_count("port", port));
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4) != 0) {
    fprintf(stderr, "cannot listen on port %s: %s\n", port, strerror(errno));
    return 1;
  }
  printf("nimbus-netbench: listening on port %s\n", port);
  fflush(stdout);
  for (;;) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int fd = accept(ls, (struct sockaddr *)&peer, &plen);
    if (fd < 0) { if (errno == EINTR) continue; perror("accept"); return 1; }
    unsigned char hdr[13];
    if (read_all(fd, hdr, sizeof hdr) != 0 || memcmp(hdr, "NBN1", 4) != 0 ||
        (hdr[4] != 's' && hdr[4] != 'r')) {
      fprintf(stderr, "bad request from %s\n", inet_ntoa(peer.sin_addr));
      close(fd);
      continue;
    }
    uint64_t bytes = get64(hdr + 5);
    double t0 = now_seconds();
    /* Client mode 's' means the client sends, so the server receives. */
    int rc = hdr[4] == 's' ? do_recv(fd, bytes) : do_send(fd, bytes);
    double secs = now_seconds() - t0;
    if (rc != 0)
      fprintf(stderr, "transfer with %s failed\n", inet_ntoa(peer.sin_addr));
    else
      printf("nimbus-netbench: %s %.1f MiB %s %s in %.3f s: %.1f MB/s\n",
             hdr[4] == 's' ? "received" : "sent", bytes / 1048576.0,
             hdr[4] == 's' ? "from" : "to", inet_ntoa(peer.sin_addr), secs,
             mb_per_s((double)bytes, secs));
    fflush(stdout);
    close(fd);
  }
}

static int run_client(char mode, const char *host, const char *mib_s, const char *port) {
  uint64_t bytes = parse_count("size", mib_s) << 20;
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)parse_count("port", port));
  /* Numeric addresses only: a static glibc cannot use NSS for name lookups. */
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "HOST must be an IPv4 address: '%s'\n", host);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    fprintf(stderr, "cannot connect to %s:%s: %s\n", host, port, strerror(errno));
    return 1;
  }
  unsigned char hdr[13];
  memcpy(hdr, "NBN1", 4);
  hdr[4] = (unsigned char)mode;
  put64(hdr + 5, bytes);
  double t0 = now_seconds();
  int rc = write_all(fd, hdr, sizeof hdr) != 0 ? -1 : mode == 's' ? do_send(fd, bytes) : do_recv(fd, bytes);
  double secs = now_seconds() - t0;
  close(fd);
  if (rc != 0) {
    fprintf(stderr, "transfer failed\n");
    return 1;
  }
  printf("nimbus-netbench: %s %.1f MiB %s %s in %.3f s: %.1f MB/s\n", mode == 's' ? "sent" : "received",
         bytes / 1048576.0, mode == 's' ? "to" : "from", host, secs, mb_per_s((double)bytes, secs));
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && !strcmp(argv[1], "server") && argc <= 3)
    return run_server(argc == 3 ? argv[2] : "5201");
  if (argc >= 4 && argc <= 5 && (!strcmp(argv[1], "send") || !strcmp(argv[1], "recv")))
    return run_client(argv[1][0] == 's' ? 's' : 'r', argv[2], argv[3], argc == 5 ? argv[4] : "5201");
  usage(argv[0]);
  return 2;
}
