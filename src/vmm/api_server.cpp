#include "vmm/api_server.h"

#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace nimbus::vmm {

Result<std::unique_ptr<ApiServer>> ApiServer::start(const std::string& socket_path, VmmControl& vmm) {
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::error(fmt::format("--api-sock '{}': a socket path must be 1 to {} bytes", socket_path,
                                     sizeof(sockaddr_un{}.sun_path) - 1));
  }
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::error(fmt::format("--api-sock '{}' exists and is not a socket; not replacing it", socket_path));
    }
    ::unlink(socket_path.c_str());
  }
  std::unique_ptr<ApiServer> s(new ApiServer());
  s->server_ = std::make_unique<httplib::Server>();
  s->path_ = socket_path;
  httplib::Server& srv = *s->server_;
  srv.set_address_family(AF_UNIX);
  srv.set_payload_max_length(kMaxRequestBody);
  // A Shutdown request may wait for the guest; the other threads keep serving.
  srv.new_task_queue = [] { return new httplib::ThreadPool(4); };
  auto handler = [&vmm](const httplib::Request& req, httplib::Response& res) {
    ApiResponse r = handle_request(vmm, req.method, req.path, req.body);
    res.status = r.status;
    if (!r.body.is_null()) res.set_content(dump_json(r.body) + "\n", "application/json");
  };
  srv.Get(".*", handler);
  srv.Put(".*", handler);
  srv.Patch(".*", handler);
  srv.Delete(".*", handler);
  srv.Post(".*", handler);
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* what = res.status == 413 ? "the request body is too large" : "the request is malformed";
    res.set_content(dump_json(nlohmann::json{{"fault_message", what}}) + "\n", "application/json");
  });
  const mode_t old = ::umask(0077);
  const bool bound = srv.bind_to_port(socket_path, 80);
  ::umask(old);
  if (!bound) {
    return Status::error(fmt::format("--api-sock '{}': cannot listen there: {}", socket_path, std::strerror(errno)));
  }
  s->thread_ = std::thread([&srv] { srv.listen_after_bind(); });
  return s;
}

ApiServer::~ApiServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
  ::unlink(path_.c_str());
}

}  // namespace nimbus::vmm
