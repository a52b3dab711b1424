// The VMM's instance metadata server: handle_imds (imds.h) served over HTTP/1.1 on a unix
// socket of this VMM's own, to which the user-mode network (backends/net/metadata_route.h)
// connects once per guest connection to 169.254.169.254:80. Its own threads (common/
// http_server.h: a thread per connection, bounded, with deadlines and size limits), never
// a vCPU's or the network's: a hostile guest can slow only its own metadata requests.
//
// The socket is 0600 (only this VMM's uid may connect) and in a directory of the VMM's:
// beside its API socket, or a private temporary directory (socket_for).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "backends/net/metadata_route.h"
#include "common/http_server.h"
#include "common/status.h"
#include "config/metadata_config.h"
#include "vmm/imds.h"

namespace nimbus::vmm {

class ImdsServer {
 public:
  // Listens on `socket_path` (a stale socket there is replaced; one served by another process
  // is an error). `temp_dir`, if not empty, is removed with the server.
  static Result<std::unique_ptr<ImdsServer>> start(const std::string& socket_path,
                                                   const std::string& vm_id,
                                                   const std::string& temp_dir = "");
  // A socket in a new private directory (mode 0700) under $TMPDIR or /tmp, removed with
  // the server: for a VMM without an API socket to sit beside.
  static Result<std::unique_ptr<ImdsServer>> start_private(const std::string& vm_id);
  ~ImdsServer();

  const std::string& socket_path() const { return link_->socket_path; }
  // For the network backends.
  std::shared_ptr<backends::MetadataLink> link() const { return link_; }

  // What is served: none (the network drops the guest's packets) or this data with these
  // options, from the next request on. Tokens given out stay valid.
  void set(const std::optional<config::MetadataConfig>& metadata);

  // The reply to one request, as the socket's clients get it (for tests).
  ImdsReply handle(const ImdsRequest& request);

 private:
  ImdsServer() = default;

  std::mutex mu_;
  ImdsState state_;
  std::string vm_id_;
  std::string temp_dir_;
  std::shared_ptr<backends::MetadataLink> link_ = std::make_shared<backends::MetadataLink>();
  std::unique_ptr<http::Server> server_;
};

}  // namespace nimbus::vmm
