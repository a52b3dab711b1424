// nimbusd's API transport (common/http_server.h): HTTP/1.1 on a unix socket (mode 0660),
// and optionally on a TCP address where every request must carry "Authorization: Bearer
// TOKEN".
#pragma once

#include <memory>
#include <string>

#include "common/http_server.h"
#include "common/status.h"
#include "host/daemon.h"

namespace nimbus::host {

class HostServer {
 public:
  // Validates and binds both sockets, serving nothing yet: a bad address fails here, with
  // no thread started. `tcp` ("ADDRESS:PORT", may be empty) needs `token`.
  static Result<std::unique_ptr<HostServer>> bind(const std::string& socket_path,
                                                  const std::string& tcp, const std::string& token);
  // Serves `ops` from now on, until destroyed.
  void serve(HostOps& ops);
  int tcp_port() const { return tcp_ ? tcp_->port() : 0; }

 private:
  HostServer() = default;
  std::unique_ptr<http::Server> unix_, tcp_;
};

// Constant-time comparison of a request's Authorization header with "Bearer TOKEN".
inline bool token_matches(const std::string& header, const std::string& token) {
  return http::bearer_matches(header, token);
}

}  // namespace nimbus::host
