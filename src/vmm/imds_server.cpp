#include "vmm/imds_server.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/http_listen.h"

namespace nimbus::vmm {

namespace {

// Sized for a guest's few tools, not for a crowd: a guest that opens more only waits.
http::ServerOptions server_options() {
  http::ServerOptions o;
  o.max_body = 1024;  // IMDS requests have no body
  o.max_connections = 32;
  o.max_pending = 16;
  o.head_timeout_ms = 5000;
  o.idle_timeout_ms = 5000;
  o.body_timeout_ms = 5000;
  o.write_timeout_ms = 5000;
  o.error_body = [](int status, std::string_view, std::string_view) {
    return imds_error(status).body;
  };
  return o;
}

// A guest's text for one log line: bounded, control characters shown as '?'.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 200));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<ImdsServer>> ImdsServer::start(const std::string& socket_path,
                                                      const std::string& vm_id,
                                                      const std::string& temp_dir) {
  auto sock = http::listen_unix("metadata socket", socket_path, 0600, "VMM");
  if (!sock.ok()) return sock.status();
  std::unique_ptr<ImdsServer> s(new ImdsServer());
  s->vm_id_ = vm_id;
  s->temp_dir_ = temp_dir;
  s->link_->socket_path = socket_path;
  s->server_ = std::make_unique<http::Server>(std::move(*sock), server_options());
  ImdsServer* self = s.get();
  s->server_->serve([self](const http::Request& req) {
    ImdsReply r = self->handle({req.method, req.path, req.headers});
    http::Reply out{r.status, std::move(r.body), r.content_type, {}};
    out.headers.emplace("Server", "EC2ws");
    for (auto& [name, value] : r.headers) out.headers.emplace(name, value);
    return out;
  });
  return s;
}

Result<std::unique_ptr<ImdsServer>> ImdsServer::start_private(const std::string& vm_id) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir =
      std::string(tmp != nullptr && *tmp == '/' ? tmp : "/tmp") + "/nimbus-imds-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    return Status::error("metadata socket: cannot make a directory in " +
                         dir.substr(0, dir.rfind('/')) + ": " + std::strerror(errno));
  }
  auto server = start(dir + "/imds.sock", vm_id, dir);
  if (!server.ok()) ::rmdir(dir.c_str());
  return server;
}

ImdsServer::~ImdsServer() {
  server_.reset();  // closes and removes the socket
  if (!temp_dir_.empty() && ::rmdir(temp_dir_.c_str()) != 0) {
    // Under the sandbox rmdir is not allowed: an empty directory stays behind.
    spdlog::debug("vm {}: metadata socket directory '{}' not removed: {}", vm_id_, temp_dir_,
                  std::strerror(errno));
  }
}

void ImdsServer::set(const std::optional<config::MetadataConfig>& metadata) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.metadata = metadata.value_or(config::MetadataConfig{});
  }
  if (metadata) link_->hop_limit.store(static_cast<uint8_t>(metadata->options.hop_limit));
  link_->serving.store(metadata.has_value());
}

ImdsReply ImdsServer::handle(const ImdsRequest& request) {
  ImdsReply r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    r = handle_imds(request, state_, ImdsClock::now());
  }
  // Debug only: the guest decides how many requests there are.
  if (r.status >= 400) {
    spdlog::debug("vm {}: metadata {} {} refused ({})", vm_id_, printable(request.method),
                  printable(request.path), r.status);
  }
  return r;
}

}  // namespace nimbus::vmm
