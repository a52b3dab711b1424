// nimbusd's API transport: HTTP/1.1 (cpp-httplib) on a unix socket, and optionally on a TCP
// address where every request must carry "Authorization: Bearer TOKEN".
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "host/daemon.h"

namespace httplib {
class Server;
}

namespace nimbus::host {

class HostServer {
 public:
  // `socket_path`: the unix socket (mode 0660). `tcp` ("ADDR:PORT", may be empty) with
  // `token` (required for TCP).
  static Result<std::unique_ptr<HostServer>> start(HostOps& ops, const std::string& socket_path,
                                                   const std::string& tcp, const std::string& token);
  ~HostServer();
  int tcp_port() const { return tcp_port_; }

 private:
  HostServer() = default;
  std::unique_ptr<httplib::Server> unix_, tcp_;
  std::string path_;
  int tcp_port_ = 0;
  std::vector<std::thread> threads_;
};

// Constant-time comparison of a request's Authorization header with "Bearer TOKEN".
bool token_matches(const std::string& header, const std::string& token);

}  // namespace nimbus::host
