// The VM API over HTTP/1.1 on a unix socket (cpp-httplib). Only transport: requests go to
// handle_request() on the server's own threads (never a vCPU thread).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "vmm/api.h"

namespace httplib {
class Server;
}

namespace nimbus::vmm {

class ApiServer {
 public:
  // Listens on `socket_path` (a stale socket file there is replaced; the socket is made
  // accessible to its owner only) and serves until destroyed.
  static Result<std::unique_ptr<ApiServer>> start(const std::string& socket_path, VmmControl& vmm);
  ~ApiServer();

 private:
  ApiServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::string path_;
  std::thread thread_;
};

}  // namespace nimbus::vmm
