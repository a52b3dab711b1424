#include "host/host_server.h"

#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "host/host_api.h"

namespace nimbus::host {

bool token_matches(const std::string& header, const std::string& token) {
  const std::string want = "Bearer " + token;
  if (token.empty() || header.size() != want.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < want.size(); i++) diff |= static_cast<unsigned char>(header[i] ^ want[i]);
  return diff == 0;
}

namespace {

void install_routes(httplib::Server& srv, HostOps& ops, const std::string& token) {
  auto handler = [&ops, token](const httplib::Request& req, httplib::Response& res) {
    if (!token.empty() && !token_matches(req.get_header_value("Authorization"), token)) {
      res.status = 401;
      res.set_content(R"({"error": {"code": "Unauthorized", "message": "a valid \"Authorization: Bearer TOKEN\" header is required"}})"
                      "\n",
                      "application/json");
      return;
    }
    HostResponse r = handle_host_request(ops, req.method, req.path, req.body);
    res.status = r.status;
    res.set_content(r.body, r.content_type);
  };
  srv.Get(".*", handler);
  srv.Post(".*", handler);
  srv.Put(".*", handler);
  srv.Patch(".*", handler);
  srv.Delete(".*", handler);
  srv.set_payload_max_length(kMaxHostRequestBody);
  // Stop and snapshot requests can take a while; the other threads keep serving.
  srv.new_task_queue = [] { return new httplib::ThreadPool(8); };
  srv.set_read_timeout(30, 0);
  srv.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* code = res.status == 413 ? "PayloadTooLarge" : res.status == 404 ? "NotFound" : "BadRequest";
    const char* what = res.status == 413 ? "the request body is too large" : "the request is malformed";
    res.set_content(fmt::format(R"({{"error": {{"code": "{}", "message": "{}"}}}})", code, what) + "\n",
                    "application/json");
  });
}

}  // namespace

Result<std::unique_ptr<HostServer>> HostServer::start(HostOps& ops, const std::string& socket_path,
                                                      const std::string& tcp, const std::string& token) {
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::error(fmt::format("--socket '{}': a socket path must be 1 to {} bytes", socket_path,
                                     sizeof(sockaddr_un{}.sun_path) - 1));
  }
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::error(fmt::format("--socket '{}' exists and is not a socket", socket_path));
    // Another nimbusd listening there? Then refuse rather than steal its socket.
    httplib::Client probe(socket_path);
    probe.set_address_family(AF_UNIX);
    probe.set_connection_timeout(1, 0);
    if (probe.Get("/v1/host")) return Status::error(fmt::format("another nimbusd is serving on '{}'", socket_path));
    ::unlink(socket_path.c_str());
  }
  std::unique_ptr<HostServer> s(new HostServer());
  s->path_ = socket_path;
  s->unix_ = std::make_unique<httplib::Server>();
  s->unix_->set_address_family(AF_UNIX);
  install_routes(*s->unix_, ops, "");
  const mode_t old = ::umask(0117);
  const bool bound = s->unix_->bind_to_port(socket_path, 80);
  ::umask(old);
  if (!bound) return Status::error(fmt::format("--socket '{}': cannot listen: {}", socket_path, std::strerror(errno)));
  httplib::Server* u = s->unix_.get();
  s->threads_.emplace_back([u] { u->listen_after_bind(); });
  if (!tcp.empty()) {
    if (token.empty()) return Status::error("--listen needs --token-file: the TCP API always requires a token");
    const size_t colon = tcp.rfind(':');
    if (colon == std::string::npos) return Status::error(fmt::format("--listen '{}': use ADDRESS:PORT", tcp));
    const std::string host = tcp.substr(0, colon);
    int port = 0;
    try {
      port = std::stoi(tcp.substr(colon + 1));
    } catch (...) {
      port = -1;
    }
    if (port < 0 || port > 65535) return Status::error(fmt::format("--listen '{}': bad port", tcp));
    s->tcp_ = std::make_unique<httplib::Server>();
    install_routes(*s->tcp_, ops, token);
    if (port == 0) {
      port = s->tcp_->bind_to_any_port(host);
      if (port < 0) return Status::error(fmt::format("--listen '{}': cannot listen", tcp));
    } else if (!s->tcp_->bind_to_port(host, port)) {
      return Status::error(fmt::format("--listen '{}': cannot listen: {}", tcp, std::strerror(errno)));
    }
    s->tcp_port_ = port;
    httplib::Server* t = s->tcp_.get();
    s->threads_.emplace_back([t] { t->listen_after_bind(); });
  }
  return s;
}

HostServer::~HostServer() {
  if (unix_) unix_->stop();
  if (tcp_) tcp_->stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace nimbus::host
