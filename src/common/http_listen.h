// Listening sockets for the HTTP APIs (http_server.h): a unix socket or a TCP ADDRESS:PORT,
// validated and bound up front so that a bad address fails at once with a message a user
// can act on ("not an address of this host", "in use"), before any thread serves.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>

#include "common/status.h"

namespace nimbus::http {

// Pending connections the kernel queues for accept(): a burst of clients must not be
// refused (cpp-httplib's compiled-in 5 refused a burst of 20).
constexpr int kListenBacklog = 1024;

// An open listening socket (close-on-exec, so child processes do not inherit it).
class ListenSocket {
 public:
  ListenSocket() = default;
  ListenSocket(int fd, int port, std::string unix_path)
      : fd_(fd), port_(port), unix_path_(std::move(unix_path)) {}
  ListenSocket(ListenSocket&& o) noexcept { *this = std::move(o); }
  ListenSocket& operator=(ListenSocket&& o) noexcept;
  ListenSocket(const ListenSocket&) = delete;
  ListenSocket& operator=(const ListenSocket&) = delete;
  ~ListenSocket();  // closes; removes the socket file of a unix socket

  int fd() const { return fd_; }
  int port() const { return port_; }  // TCP: the bound port (useful after ":0")
  const std::string& unix_path() const { return unix_path_; }
  int release() {  // the fd, no longer owned (nor the socket file)
    unix_path_.clear();
    return std::exchange(fd_, -1);
  }

 private:
  void reset();
  int fd_ = -1;
  int port_ = 0;
  std::string unix_path_;
};

struct TcpAddress {
  std::string host;  // numeric, as given ("127.0.0.1", "::1"; "localhost" means 127.0.0.1)
  int port = 0;      // 0: any free port
};

// "ADDRESS:PORT" or "[IPV6]:PORT". `flag` names the option in messages ("--listen").
Result<TcpAddress> parse_tcp_address(const std::string& flag, const std::string& text);

// Parses and binds a TCP listening socket.
Result<ListenSocket> listen_tcp(const std::string& flag, const std::string& text);

// Binds a unix socket at `path` with permissions `mode`. A stale socket file is replaced;
// a socket someone still serves on is not ("another `owner` is serving on ..."), nor is a
// file that is not a socket.
Result<ListenSocket> listen_unix(const std::string& flag, const std::string& path, mode_t mode,
                                 const std::string& owner);

}  // namespace nimbus::http
