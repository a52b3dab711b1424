// The VM API over HTTP/1.1 on a unix socket (common/http_server.h). Only transport:
// requests go to handle_request() on the server's own threads (never a vCPU thread).
#pragma once

#include <memory>
#include <string>

#include "common/http_server.h"
#include "common/status.h"
#include "vmm/api.h"

namespace nimbus::vmm {

class ApiServer {
 public:
  // Listens on `socket_path` (a stale socket file there is replaced, one a live process
  // serves on is not; the socket is made accessible to its owner only) and serves until
  // destroyed.
  static Result<std::unique_ptr<ApiServer>> start(const std::string& socket_path, VmmControl& vmm);

 private:
  ApiServer() = default;
  std::unique_ptr<http::Server> server_;
};

// The VM API's error shape: {"fault_message": MESSAGE}.
std::string vmm_error_body(int status, std::string_view code, std::string_view message);

}  // namespace nimbus::vmm
