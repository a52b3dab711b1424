// The control plane's HTTP endpoint (default 127.0.0.1:8773), on the one hardened server
// (common/http_server.h):
//
//   POST /                               the EC2 Query API (ec2_api.h), SigV4
//   POST /nimbus/v1/hosts/heartbeat      hosts join and report (bearer: the join token)
//   GET  /nimbus/v1/images/AMI/FILE      an image's file, for hosts (bearer: the join token)
//   GET  /nimbus/v1/hosts                the operator's view of the hosts (bearer: join token)
//   GET  /nimbus/v1/instances            the operator's view of the instances, every record
//                                        (terminated too) as the store holds it (bearer: join
//                                        token)
//   POST /nimbus/v1/instances/ID/move    {"host": H} (optional): a live migration (bearer: join
//                                        token); 202 {"instance", "from", "to", "move_id"}
//   POST /nimbus/v1/hosts/H/drain        no new instances on H, and a move of each of its
//                                        instances; 202 {"moving": [...], "staying": [...]}
//   POST /nimbus/v1/hosts/H/undrain      takes instances again; cancels queued drain moves
//   GET  /nimbus/v1/health               {"region": ..., "zones": [...], "store": ...,
//                                        "replica": ID, "leader": BOOL} (no credentials)
//   /console, /console/...               the web console (console_api.h), when serve() is
//                                        given one
#pragma once

#include <memory>
#include <string>

#include "cloud/cloud.h"
#include "cloud/ec2_api.h"
#include "common/http_server.h"

namespace nimbus::cloud {

class Console;

class CloudServer {
 public:
  // Validates and binds ADDRESS:PORT; serves nothing yet.
  static Result<std::unique_ptr<CloudServer>> bind(const std::string& listen);
  void serve(Cloud& cloud, Ec2Api& api, Console* console = nullptr);
  void stop() { server_->stop(); }  // no new requests; running handlers finish
  int port() const { return server_->port(); }

 private:
  std::unique_ptr<http::Server> server_;
};

// The routing, without transport (tests and the fuzz target call it directly).
http::Reply route_cloud_request(Cloud& cloud, Ec2Api& api, const http::Request& req,
                                Console* console = nullptr);

}  // namespace nimbus::cloud
