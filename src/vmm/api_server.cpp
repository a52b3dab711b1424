#include "vmm/api_server.h"

#include "common/http_listen.h"

namespace nimbus::vmm {

std::string vmm_error_body(int /*status*/, std::string_view /*code*/, std::string_view message) {
  return dump_json(nlohmann::json{{"fault_message", std::string(message)}}) + "\n";
}

Result<std::unique_ptr<ApiServer>> ApiServer::start(const std::string& socket_path,
                                                    VmmControl& vmm) {
  auto sock = http::listen_unix("--api-sock", socket_path, 0600, "VMM");
  if (!sock.ok()) return sock.status();
  http::ServerOptions o;
  o.max_body = kMaxRequestBody;
  o.error_body = vmm_error_body;
  std::unique_ptr<ApiServer> s(new ApiServer());
  s->server_ = std::make_unique<http::Server>(std::move(*sock), o);
  s->server_->serve([&vmm](const http::Request& req) {
    ApiResponse r = handle_request(vmm, req.method, req.path, req.body);
    http::Reply reply{r.status, "", "application/json"};
    if (!r.body.is_null()) reply.body = dump_json(r.body) + "\n";
    return reply;
  });
  return s;
}

}  // namespace nimbus::vmm
