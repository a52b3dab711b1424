#include "host/host_api_client.h"

#include <fmt/format.h>

#include "host/host_checks.h"

namespace nimbus::host {

namespace {

constexpr int kDefaultReadTimeoutMs = 120'000;      // a graceful stop can take 30 s and more
constexpr size_t kMaxReplyBody = 64 * 1024 * 1024;  // a list of many VMs with their details

http::ClientOptions api_options(std::string token) {
  http::ClientOptions o;
  o.token = std::move(token);
  o.peer = "nimbusd";
  o.read_timeout_ms = kDefaultReadTimeoutMs;
  o.max_reply_body = kMaxReplyBody;
  return o;
}

}  // namespace

Result<HostApiClient> HostApiClient::create(const std::string& target, const std::string& token) {
  auto t = http::parse_target(target);
  if (!t.ok()) return t.status();
  return HostApiClient(std::move(*t), token);
}

HostApiClient::HostApiClient(http::Target target, std::string token)
    : http_(std::move(target), api_options(std::move(token))) {}

Result<nlohmann::json> HostApiClient::call(const std::string& method, const std::string& path,
                                           const std::optional<nlohmann::json>& body) {
  last_status_ = 0;
  last_code_.clear();
  auto reply = http_.request(method, path, body ? body->dump() : std::string());
  if (!reply.ok()) return reply.status();
  last_status_ = reply->status;
  if (!http::is_success(*reply)) return http::reply_error(*reply, &last_code_);
  if (reply->body.empty()) return nlohmann::json::object();
  auto j = nlohmann::json::parse(reply->body, nullptr, false);
  if (j.is_discarded()) {
    return Status::internal(
        fmt::format("nimbusd sent a reply that is not JSON to {} {}", method, path));
  }
  return j;
}

Result<http::ws::Socket> HostApiClient::open_console(const std::string& vm) const {
  if (!valid_name(vm))
    return Status::invalid_argument(fmt::format("'{}' is not a VM name", vm.substr(0, 64)));
  const http::Target& t = http_.target();
  const std::string path = "/v1/vms/" + vm + "/console";
  std::string url;
  if (t.unix_socket) {
    url = "unix:" + t.path + ":" + path;
  } else {
    const bool v6 = t.host.find(':') != std::string::npos;
    url = fmt::format("ws://{}{}{}:{}{}", v6 ? "[" : "", t.host, v6 ? "]" : "", t.port, path);
  }
  std::multimap<std::string, std::string> headers;
  if (!http_.options().token.empty())
    headers.emplace("Authorization", "Bearer " + http_.options().token);
  return http::ws::connect(url, headers, http_.options().connect_timeout_ms);
}

}  // namespace nimbus::host
