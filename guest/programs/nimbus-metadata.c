/*
 * nimbus-metadata: a client of the instance metadata service (IMDS) at
 * http://169.254.169.254/, as EC2's.
 *
 *   nimbus-metadata [-1] [-t TTL] [-a ADDR[:PORT]] PATH
 *
 * PATH is under /latest/ (meta-data/instance-id, user-data, dynamic/...) unless it
 * starts with '/' (then it is the whole request path, e.g. / for the versions).
 * By default IMDSv2: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
 * (TTL, default 21600), then GET PATH with X-aws-ec2-metadata-token. If the token
 * request is answered 404 or 405 (a service without v2) the GET goes without a token.
 * -1: plain IMDSv1 (no token). -a: another address (tests).
 *
 * The body of a 200 reply is written to stdout as it came (no newline added).
 * Exit status: 0 200 OK; 1 404 Not Found; 2 another HTTP status (printed on stderr,
 * e.g. 401 when tokens are required, 403 when the endpoint is disabled) or a reply
 * that is not HTTP; 3 no connection or no complete reply in time (connect: 2 s,
 * each request: 5 s in all); 4 bad usage.
 *
 * Requests are HTTP/1.0 with "Connection: close"; the reply's body ends at its
 * Content-Length, or at EOF without one; "Transfer-Encoding: chunked" is decoded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 2000
#define REPLY_TIMEOUT_MS 5000
#define MAX_REPLY (8 * 1024 * 1024) /* far more than the service ever sends */
#define MAX_HEADERS (64 * 1024)

enum { EXIT_OK = 0, EXIT_NOT_FOUND = 1, EXIT_HTTP = 2, EXIT_CONN = 3, EXIT_USAGE = 4 };

static const char *prog = "nimbus-metadata";

static void usage(void) {
  fprintf(stderr,
          "usage: %s [-1] [-t TTL] [-a ADDR[:PORT]] PATH\n"
          "  GET http://169.254.169.254/latest/PATH (IMDSv2 token unless -1); body on stdout\n"
          "  exit: 0 200, 1 404, 2 other HTTP status, 3 no connection/timeout, 4 usage\n",
          prog);
  exit(EXIT_USAGE);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct reply {
  int status;
  char *body;
  size_t body_len;
};

/* Waits for EVENTS on FD until DEADLINE (ms, monotonic): 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

static int connect_to(const struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0) return fd;
  if (errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  if (wait_fd(fd, POLLOUT, now_ms() + CONNECT_TIMEOUT_MS) != 1) {
    close(fd);
    errno = ETIMEDOUT;
    return -1;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    close(fd);
    errno = err ? err : EIO;
    return -1;
  }
  return fd;
}

/* Case-insensitive "does the header line start with NAME:"; returns the value or NULL. */
static const char *header_value(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return NULL;
  const char *v = line + n + 1;
  while (v < line + len && (*v == ' ' || *v == '\t')) v++;
  return v;
}

/* Decodes a chunked body in place; returns its length or -1 if malformed or incomplete. */
static long long dechunk(char *b, size_t len) {
  size_t in = 0, out = 0;
  for (;;) {
    char *end = memchr(b + in, '\n', len - in);
    if (!end) return -1;
    char *p = b + in;
    if (!isxdigit((unsigned char)*p)) return -1;
    unsigned long long size = 0;
    while (isxdigit((unsigned char)*p)) {
      int d = isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10);
      if (size > MAX_REPLY) return -1;
      size = size * 16 + (unsigned)d;
      p++;
    }
    in = (size_t)(end - b) + 1;
    if (size == 0) return (long long)out; /* trailers are ignored */
    if (size > len - in) return -1;
    memmove(b + out, b + in, size);
    out += size;
    in += size;
    if (in < len && b[in] == '\r') in++;
    if (in < len && b[in] == '\n') in++;
    else return -1;
  }
}

/*
 * One request; fills R. Returns 0 on a parsed reply, EXIT_CONN on no connection or
 * timeout, EXIT_HTTP on a reply that is not HTTP (with a message).
 */
static int request(const struct sockaddr_in *addr, const char *method, const char *path,
                   const char *extra_header, struct reply *r) {
  char req[4096];
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.0\r\nHost: 169.254.169.254\r\nUser-Agent: nimbus-metadata\r\n"
                   "Accept: */*\r\nConnection: close\r\n%s%s\r\n",
                   method, path, extra_header ? extra_header : "", extra_header ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof req) {
    fprintf(stderr, "%s: request too long\n", prog);
    return EXIT_USAGE;
  }
  int fd = connect_to(addr);
  if (fd < 0) {
    fprintf(stderr, "%s: cannot connect to %s:%u: %s\n", prog, inet_ntoa(addr->sin_addr),
            ntohs(addr->sin_port), strerror(errno));
    return EXIT_CONN;
  }
  long long deadline = now_ms() + REPLY_TIMEOUT_MS;
  size_t sent = 0;
  while (sent < (size_t)n) {
    ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
    if (w > 0) {
      sent += (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EINTR)) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline) == 1)
      continue;
    fprintf(stderr, "%s: sending the request failed: %s\n", prog,
            w < 0 && errno != EAGAIN ? strerror(errno) : "timed out");
    close(fd);
    return EXIT_CONN;
  }

  size_t cap = 4096, len = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    close(fd);
    return EXIT_CONN;
  }
  size_t head_end = 0;        /* offset of the body once the headers are complete */
  long long content_length = -1;
  int chunked = 0, eof = 0;
  for (;;) {
    if (head_end && content_length >= 0 && len - head_end >= (size_t)content_length) break;
    if (len == cap) {
      if (cap >= MAX_REPLY) {
        fprintf(stderr, "%s: reply larger than %d bytes\n", prog, MAX_REPLY);
        free(buf);
        close(fd);
        return EXIT_HTTP;
      }
      cap *= 2;
      char *nb = realloc(buf, cap + 1);
      if (!nb) {
        free(buf);
        close(fd);
        return EXIT_CONN;
      }
      buf = nb;
    }
    ssize_t got = recv(fd, buf + len, cap - len, 0);
    if (got > 0) {
      len += (size_t)got;
    } else if (got == 0) {
      eof = 1;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int w = wait_fd(fd, POLLIN, deadline);
      if (w == 1) continue;
      fprintf(stderr, "%s: %s\n", prog, w == 0 ? "no complete reply in time" : strerror(errno));
      free(buf);
      close(fd);
      return EXIT_CONN;
    } else {
      fprintf(stderr, "%s: receiving the reply failed: %s\n", prog, strerror(errno));
      free(buf);
      close(fd);
      return EXIT_CONN;
    }
    buf[len] = '\0';
    if (!head_end) {
      /* The headers end at the first empty line (CRLF CRLF, or a bare LF LF). */
      char *e = strstr(buf, "\r\n\r\n");
      char *e2 = strstr(buf, "\n\n");
      if (e && (!e2 || e < e2)) head_end = (size_t)(e - buf) + 4;
      else if (e2) head_end = (size_t)(e2 - buf) + 2;
      if (!head_end && len > MAX_HEADERS) {
        fprintf(stderr, "%s: reply headers too long\n", prog);
        free(buf);
        close(fd);
        return EXIT_HTTP;
      }
      if (head_end) {
        /* Status line: HTTP/1.x NNN ... */
        if (strncmp(buf, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)buf[7]) || buf[8] != ' ' ||
            !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
            !isdigit((unsigned char)buf[11]) ||
            (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')) {
          fprintf(stderr, "%s: not an HTTP reply\n", prog);
          free(buf);
          close(fd);
          return EXIT_HTTP;
        }
        r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
        for (char *line = strchr(buf, '\n') + 1; line < buf + head_end;) {
          char *nl = memchr(line, '\n', (size_t)(buf + head_end - line));
          if (!nl) break;
          size_t ll = (size_t)(nl - line);
          if (ll && line[ll - 1] == '\r') ll--;
          const char *v;
          if ((v = header_value(line, ll, "Content-Length"))) {
            char *endp;
            errno = 0;
            long long cl = strtoll(v, &endp, 10);
            while (endp < line + ll && (*endp == ' ' || *endp == '\t')) endp++;
            if (errno || cl < 0 || cl > MAX_REPLY || endp != line + ll || !isdigit((unsigned char)*v)) {
              fprintf(stderr, "%s: bad Content-Length in the reply\n", prog);
              free(buf);
              close(fd);
              return EXIT_HTTP;
            }
            content_length = cl;
          } else if ((v = header_value(line, ll, "Transfer-Encoding"))) {
            if (strncasecmp(v, "chunked", 7) == 0) chunked = 1;
          }
          line = nl + 1;
        }
        if (chunked) content_length = -1; /* the chunks say where it ends */
      }
    }
    if (eof) break;
  }
  close(fd);
  if (!head_end) {
    fprintf(stderr, "%s: %s\n", prog, len ? "incomplete reply headers" : "empty reply");
    free(buf);
    return len ? EXIT_HTTP : EXIT_CONN;
  }
  size_t body_len = len - head_end;
  if (content_length >= 0) {
    if (body_len < (size_t)content_length) {
      fprintf(stderr, "%s: reply body shorter than its Content-Length\n", prog);
      free(buf);
      return EXIT_CONN;
    }
    body_len = (size_t)content_length;
  } else if (chunked) {
    long long d = dechunk(buf + head_end, body_len);
    if (d < 0) {
      fprintf(stderr, "%s: bad chunked reply body\n", prog);
      free(buf);
      return EXIT_HTTP;
    }
    body_len = (size_t)d;
  }
  memmove(buf, buf + head_end, body_len);
  buf[body_len] = '\0';
  r->body = buf;
  r->body_len = body_len;
  return 0;
}

static int parse_addr(const char *s, struct sockaddr_in *a) {
  char host[64];
  unsigned long port = 80;
  const char *colon = strchr(s, ':');
  size_t hl = colon ? (size_t)(colon - s) : strlen(s);
  if (hl == 0 || hl >= sizeof host) return -1;
  memcpy(host, s, hl);
  host[hl] = '\0';
  if (colon) {
    char *end;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port == 0 || port > 65535) return -1;
  }
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((unsigned short)port);
  return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int status_exit(const struct reply *r, const char *what) {
  if (r->status == 200) return EXIT_OK;
  if (r->status == 404) return EXIT_NOT_FOUND;
  fprintf(stderr, "%s: %s: HTTP %d\n", prog, what, r->status);
  return EXIT_HTTP;
}

int main(int argc, char **argv) {
  int v1 = 0;
  unsigned long ttl = 21600;
  const char *addr_s = "169.254.169.254:80";
  int opt;
  while ((opt = getopt(argc, argv, "1t:a:h")) != -1) {
    switch (opt) {
      case '1': v1 = 1; break;
      case 't': {
        char *end;
        errno = 0;
        ttl = strtoul(optarg, &end, 10);
        if (errno || *end || end == optarg || optarg[0] == '-' || ttl < 1 || ttl > 21600) {
          fprintf(stderr, "%s: -t: a TTL of 1-21600 seconds\n", prog);
          return EXIT_USAGE;
        }
        break;
      }
      case 'a': addr_s = optarg; break;
      default: usage();
    }
  }
  if (optind != argc - 1) usage();
  const char *p = argv[optind];
  /* The path goes on the request line: no spaces or control characters. */
  for (const char *c = p; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f) {
      fprintf(stderr, "%s: PATH must not contain spaces or control characters\n", prog);
      return EXIT_USAGE;
    }
  char path[2048];
  int pn = p[0] == '/' ? snprintf(path, sizeof path, "%s", p)
                       : snprintf(path, sizeof path, "/latest/%s", p);
  if (pn < 0 || (size_t)pn >= sizeof path) {
    fprintf(stderr, "%s: PATH too long\n", prog);
    return EXIT_USAGE;
  }
  struct sockaddr_in addr;
  if (parse_addr(addr_s, &addr) != 0) {
    fprintf(stderr, "%s: -a: not an IPv4 ADDR[:PORT]: '%s'\n", prog, addr_s);
    return EXIT_USAGE;
  }

  char token_header[512] = "";
  if (!v1) {
    char ttl_header[80];
    snprintf(ttl_header, sizeof ttl_header, "X-aws-ec2-metadata-token-ttl-seconds: %lu", ttl);
    struct reply t = {0};
    int rc = request(&addr, "PUT", "/latest/api/token", ttl_header, &t);
    if (rc) return rc;
    if (t.status == 200) {
      /* A token is printable ASCII; anything else would break the header. */
      for (size_t i = 0; i < t.body_len; i++)
        if ((unsigned char)t.body[i] < 0x21 || (unsigned char)t.body[i] > 0x7e ||
            t.body_len > 400) {
          fprintf(stderr, "%s: the token reply is not a token\n", prog);
          free(t.body);
          return EXIT_HTTP;
        }
      snprintf(token_header, sizeof token_header, "X-aws-ec2-metadata-token: %s", t.body);
    } else if (t.status != 404 && t.status != 405) {
      free(t.body);
      return status_exit(&t, "token request (PUT /latest/api/token)");
    }
    free(t.body);
  }
  struct reply r = {0};
  int rc = request(&addr, "GET", path, token_header[0] ? token_header : NULL, &r);
  if (rc) return rc;
  int ex = status_exit(&r, path);
  if (ex == EXIT_OK && r.body_len && fwrite(r.body, 1, r.body_len, stdout) != r.body_len) {
    fprintf(stderr, "%s: writing stdout: %s\n", prog, strerror(errno));
    ex = EXIT_HTTP;
  }
  free(r.body);
  if (fflush(stdout) != 0) return EXIT_HTTP;
  return ex;
}
