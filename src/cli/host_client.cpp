#include "cli/host_client.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/http_client.h"

namespace nimbus::cli {

namespace {

constexpr int kConnectTimeoutMs = 10'000;

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

Result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Status::invalid_argument(
        fmt::format("--token-file: cannot read '{}': {}", path, std::strerror(errno)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string token = trim(ss.str());
  if (token.empty())
    return Status::invalid_argument(fmt::format("--token-file '{}' is empty", path));
  return token;
}

http::Target target_of(const HostEndpoint& e) {
  http::Target t;
  t.unix_socket = !e.tcp;
  (e.tcp ? t.host : t.path) = e.host;
  t.port = e.port;
  return t;
}

host::HostApiClient api_client(const HostEndpoint& e) {
  host::HostApiClient c(target_of(e), e.tcp ? e.token : "");
  c.set_connect_timeout_ms(kConnectTimeoutMs);
  return c;
}

}  // namespace

Result<HostEndpoint> resolve_endpoint(const std::string& host_flag,
                                      const std::string& token_file_flag) {
  HostEndpoint e;
  const char* env = std::getenv("NIMBUS_HOST");
  const bool from_env = host_flag.empty() && env != nullptr && *env != '\0';
  e.address = !host_flag.empty() ? host_flag : from_env ? std::string(env) : kDefaultHostSocket;
  const std::string what = !host_flag.empty() ? "--host"
                           : from_env         ? "$NIMBUS_HOST"
                                              : "the default";
  // The address rules are the HTTP client's; a plain path is a unix socket.
  e.tcp = e.address.rfind("http://", 0) == 0 || e.address.rfind("https://", 0) == 0;
  auto target = http::parse_target(e.tcp ? e.address : "unix:" + e.address);
  if (!target.ok()) {
    return Status::invalid_argument(fmt::format(
        "{} {}", what,
        e.tcp ? target.message() : fmt::format("'{}': {}", e.address, target.message())));
  }
  if (!e.tcp) {
    e.host = e.address;
    return e;
  }
  e.host = target->host;
  e.port = target->port;
  if (!token_file_flag.empty()) {
    auto token = read_token_file(token_file_flag);
    if (!token.ok()) return token.status();
    e.token = *token;
  } else if (const char* t = std::getenv("NIMBUS_TOKEN"); t != nullptr) {
    e.token = trim(t);
  }
  return e;
}

HostClient::HostClient(HostEndpoint endpoint)
    : endpoint_(std::move(endpoint)), api_(api_client(endpoint_)) {}

Result<json> HostClient::request(const std::string& method, const std::string& path,
                                 const std::optional<json>& body) {
  auto r = api_.call(method, path, body);
  if (r.ok()) return r;
  Status s = r.status();
  // Connecting failed (the HTTP client's "cannot reach nimbusd at ...: REASON").
  if (api_.last_status() == 0 && s.message().rfind("cannot reach ", 0) == 0) {
    const char* hint = s.code() == Code::kPermissionDenied ? "(does your user have access to it?)"
                                                           : "(is nimbusd running?)";
    return Status(s.code(), fmt::format("{} {}", s.message(), hint));
  }
  if (api_.last_status() == 401 && endpoint_.tcp) {
    return Status(s.code(),
                  s.message() + (endpoint_.token.empty()
                                     ? " (no token: set $NIMBUS_TOKEN or give --token-file)"
                                     : " (check $NIMBUS_TOKEN or --token-file)"));
  }
  return s;
}

}  // namespace nimbus::cli
