#include "common/http_listen.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nimbus::http {

namespace {

// Whether the server behind a connected (non-blocking) socket answers an HTTP request
// within a second. Any byte back, or the peer closing, counts as an answer.
bool answers_http(int fd) {
  static constexpr char kRequest[] = "GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n";
  if (::send(fd, kRequest, sizeof(kRequest) - 1, MSG_NOSIGNAL) < 0) {
    // Closed by the peer already: a live process accepted the connection (and answered,
    // or not, before the request arrived). Only a socket nobody accepts on is stale.
    return errno == EPIPE || errno == ECONNRESET;
  }
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 1000);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

}  // namespace

ListenSocket& ListenSocket::operator=(ListenSocket&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.fd_;
    port_ = o.port_;
    unix_path_ = std::move(o.unix_path_);
    o.fd_ = -1;
    o.unix_path_.clear();
  }
  return *this;
}

ListenSocket::~ListenSocket() { reset(); }

void ListenSocket::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }
  fd_ = -1;
}

Result<TcpAddress> parse_tcp_address(const std::string& flag, const std::string& text) {
  const std::string usage =
      fmt::format("{} '{}': use ADDRESS:PORT, e.g. 127.0.0.1:8080", flag, text);
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return Status::error(usage);
  TcpAddress a;
  a.host = text.substr(0, colon);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') {
    a.host = a.host.substr(1, a.host.size() - 2);
  } else if (a.host.find(':') != std::string::npos) {
    return Status::error(
        fmt::format("{} '{}': write an IPv6 address in brackets, e.g. [::1]:8080", flag, text));
  }
  if (a.host == "localhost") a.host = "127.0.0.1";
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return Status::error(
        fmt::format("{} '{}': the port must be a number from 0 to 65535", flag, text));
  }
  a.port = std::stoi(port);
  // Numeric only: a host name would mean a DNS lookup (slow, and a name may have many
  // addresses); the address must be one of this host's anyway.
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, a.host.c_str(), &v4) != 1 &&
      inet_pton(AF_INET6, a.host.c_str(), &v6) != 1) {
    return Status::error(
        fmt::format("{} '{}': '{}' is not an IP address (use ADDRESS:PORT, e.g. 127.0.0.1:8080)",
                    flag, text, a.host));
  }
  return a;
}

Result<ListenSocket> listen_tcp(const std::string& flag, const std::string& text) {
  auto addr = parse_tcp_address(flag, text);
  if (!addr.ok()) return addr.status();
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, addr->host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(addr->port));
    len = sizeof(*v4);
  } else {
    family = AF_INET6;
    inet_pton(AF_INET6, addr->host.c_str(), &v6->sin6_addr);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(addr->port));
    len = sizeof(*v6);
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return Status::error(
        fmt::format("{} '{}': cannot create a socket: {}", flag, text, std::strerror(errno)));
  ListenSocket sock(fd, addr->port, "");
  // A restart must not wait for the previous process's connections in TIME_WAIT (on Linux
  // this never lets two listeners share a port).
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      return Status::error(
          fmt::format("{} '{}': port {} is in use on {}", flag, text, addr->port, addr->host));
    }
    if (err == EADDRNOTAVAIL) {
      return Status::error(
          fmt::format("{} '{}': {} is not an address of this host", flag, text, addr->host));
    }
    if (err == EACCES) {
      return Status::error(fmt::format("{} '{}': port {} needs privileges (ports below 1024)", flag,
                                       text, addr->port));
    }
    return Status::error(fmt::format("{} '{}': cannot bind: {}", flag, text, std::strerror(err)));
  }
  if (::listen(fd, kListenBacklog) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {  // port 0 with every ephemeral port taken
      return Status::error(fmt::format("{} '{}': no free port", flag, text));
    }
    return Status::error(fmt::format("{} '{}': cannot listen: {}", flag, text, std::strerror(err)));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  const int port = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                     : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return ListenSocket(sock.release(), port, "");
}

Result<ListenSocket> listen_unix(const std::string& flag, const std::string& path, mode_t mode,
                                 const std::string& owner) {
  sockaddr_un sa{};
  if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
    return Status::error(fmt::format("{} '{}': a socket path must be 1 to {} bytes", flag, path,
                                     sizeof(sa.sun_path) - 1));
  }
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  const auto* addr = reinterpret_cast<const sockaddr*>(&sa);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::error(
          fmt::format("{} '{}' exists and is not a socket; not replacing it", flag, path));
    }
    // Someone still accepting there (or with a full queue: EAGAIN)? Then refuse rather
    // than steal the socket; a stale file (ECONNREFUSED) is replaced.
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe >= 0) {
      const int r = ::connect(probe, addr, sizeof(sa));
      const int err = errno;
      // A connect only shows that some process holds a listening socket there. After a
      // kill -9, that can be a child forked by the dead server and not yet exec'd (the
      // socket is close-on-exec): it never answers. So a server must also answer.
      const bool serving = r == 0 ? answers_http(probe) : (err == EAGAIN || err == EINPROGRESS);
      ::close(probe);
      if (serving) {
        return Status::error(fmt::format("another {} is serving on '{}'", owner, path));
      }
    }
    ::unlink(path.c_str());
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return Status::error(
        fmt::format("{} '{}': cannot create a socket: {}", flag, path, std::strerror(errno)));
  // The socket file gets its mode at bind(); chmod afterwards would leave a window in
  // which anyone could connect.
  const mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  const int r = ::bind(fd, addr, sizeof(sa));
  const int err = errno;
  ::umask(old);
  if (r != 0) {
    ::close(fd);
    return Status::error(
        fmt::format("{} '{}': cannot listen there: {}", flag, path, std::strerror(err)));
  }
  ListenSocket sock(fd, 0, path);  // from here on, failure removes the file again
  if (::listen(fd, kListenBacklog) != 0) {
    return Status::error(
        fmt::format("{} '{}': cannot listen there: {}", flag, path, std::strerror(errno)));
  }
  return sock;
}

}  // namespace nimbus::http
