#include "vmm/api_server.h"

#include <spdlog/spdlog.h>

#include "common/http_listen.h"

namespace nimbus::vmm {

std::string vmm_error_body(int /*status*/, std::string_view /*code*/, std::string_view message) {
  return dump_json(nlohmann::json{{"fault_message", std::string(message)}}) + "\n";
}

namespace {

// A client's text for one log line: at most `max` bytes, control characters shown as '?'
// (a decoded path may hold a newline; a log line must stay one line).
std::string printable(std::string_view text, size_t max) {
  std::string out(text.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

// Every refused request, with the VM it was for: 4xx are the client's (warn), 5xx the
// VMM's own failures (error).
void log_refusal(const std::string& vm_id, const std::string& method, const std::string& path,
                 const ApiResponse& r) {
  const std::string message =
      r.body.is_object() ? r.body.value("fault_message", std::string()) : std::string();
  const auto level = r.status >= 500 ? spdlog::level::err : spdlog::level::warn;
  spdlog::log(level, "vm {}: {} {} refused ({}): {}", vm_id, printable(method, 16),
              printable(path, 200), r.status, printable(message, 1000));
}

}  // namespace

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
    if (r.status >= 400) log_refusal(vmm.id(), req.method, req.path, r);
    http::Reply reply{r.status, "", "application/json"};
    if (!r.body.is_null()) reply.body = dump_json(r.body) + "\n";
    return reply;
  });
  return s;
}

}  // namespace nimbus::vmm
