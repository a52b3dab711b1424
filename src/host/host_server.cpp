#include "host/host_server.h"

#include "common/http_listen.h"
#include "host/host_api.h"

namespace nimbus::host {

Result<std::unique_ptr<HostServer>> HostServer::bind(const std::string& socket_path,
                                                     const std::string& tcp,
                                                     const std::string& token) {
  std::unique_ptr<HostServer> s(new HostServer());
  http::ServerOptions o;
  o.max_body = kMaxHostRequestBody;
  o.error_body = http::host_error_body;
  // The TCP address first: it is the one a user mistypes, and a failure there must not
  // leave the unix socket behind.
  if (!tcp.empty()) {
    if (token.empty())
      return Status::error("--listen needs --token-file: the TCP API always requires a token");
    auto sock = http::listen_tcp("--listen", tcp);
    if (!sock.ok()) return sock.status();
    http::ServerOptions t = o;
    t.token = token;
    s->tcp_ = std::make_unique<http::Server>(std::move(*sock), t);
  }
  auto sock = http::listen_unix("--socket", socket_path, 0660, "nimbusd");
  if (!sock.ok()) return sock.status();
  s->unix_ = std::make_unique<http::Server>(std::move(*sock), o);
  return s;
}

void HostServer::serve(HostOps& ops) {
  auto handler = [&ops](const http::Request& req) { return handle_host_http(ops, req); };
  unix_->serve(handler);
  if (tcp_) tcp_->serve(handler);
}

}  // namespace nimbus::host
