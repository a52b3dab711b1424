#include "cli/host_client.h"

#include <fmt/format.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nimbus::cli {

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

Result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(fmt::format("--token-file: cannot read '{}': {}", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string token = trim(ss.str());
  if (token.empty()) return Status::error(fmt::format("--token-file '{}' is empty", path));
  return token;
}

// Why connecting to a unix socket fails, as errno text: httplib only says "Connection".
std::string unix_connect_reason(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return "the socket path is too long";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  std::string reason;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) reason = std::strerror(errno);
  ::close(fd);
  return reason;
}

// The same for TCP: the resolver's or connect's error.
std::string tcp_connect_reason(const std::string& host, int port, int timeout_s) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    return gai_strerror(rc);
  }
  std::string reason = "connection failed";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd pfd{fd, POLLOUT, 0};
        if (::poll(&pfd, 1, timeout_s * 1000) <= 0) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof(err);
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    ::close(fd);
    if (err == 0) {
      reason.clear();  // it works now
      break;
    }
    reason = std::strerror(err);
  }
  ::freeaddrinfo(res);
  return reason;
}

}  // namespace

Result<HostEndpoint> resolve_endpoint(const std::string& host_flag, const std::string& token_file_flag) {
  HostEndpoint e;
  const char* env = std::getenv("NIMBUS_HOST");
  e.address = !host_flag.empty() ? host_flag : (env != nullptr && *env != '\0') ? std::string(env) : kDefaultHostSocket;
  const std::string what = !host_flag.empty() ? "--host" : (env != nullptr && *env != '\0') ? "$NIMBUS_HOST" : "the default";
  if (e.address.rfind("https://", 0) == 0) {
    return Status::error(fmt::format("{} '{}': nimbusd speaks plain http:// (use a unix socket or an ssh tunnel)", what, e.address));
  }
  if (e.address.rfind("http://", 0) != 0) {
    e.host = e.address;
    if (e.host.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Status::error(fmt::format("{} '{}': a socket path is at most {} bytes", what, e.address,
                                       sizeof(sockaddr_un{}.sun_path) - 1));
    }
    return e;
  }
  e.tcp = true;
  std::string rest = e.address.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:PORT
    const size_t close = rest.find(']');
    if (close == std::string::npos) return Status::error(fmt::format("{} '{}': unbalanced '['", what, e.address));
    e.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Status::error(fmt::format("{} '{}' is not http://HOST:PORT", what, e.address));
      port = rest.substr(close + 2);
    }
  } else {
    const size_t colon = rest.rfind(':');
    e.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (e.host.empty() || e.host.find('/') != std::string::npos) {
    return Status::error(fmt::format("{} '{}' is not http://HOST:PORT", what, e.address));
  }
  e.port = 80;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
      return Status::error(fmt::format("{} '{}': bad port '{}'", what, e.address, port));
    }
    e.port = std::stoi(port);
  }
  if (!token_file_flag.empty()) {
    auto token = read_token_file(token_file_flag);
    if (!token.ok()) return token.status();
    e.token = *token;
  } else if (const char* t = std::getenv("NIMBUS_TOKEN"); t != nullptr) {
    e.token = trim(t);
  }
  return e;
}

Result<json> HostClient::request(const std::string& method, const std::string& path, const std::optional<json>& body) {
  last_status_ = 0;
  last_code_.clear();
  std::unique_ptr<httplib::Client> cli;
  if (endpoint_.tcp) {
    cli = std::make_unique<httplib::Client>(endpoint_.host, endpoint_.port);
  } else {
    cli = std::make_unique<httplib::Client>(endpoint_.host, 80);
    cli->set_address_family(AF_UNIX);
  }
  cli->set_connection_timeout(connect_timeout_s_, 0);
  cli->set_read_timeout(read_timeout_s_, 0);
  cli->set_write_timeout(30, 0);
  httplib::Headers headers{{"Accept", "application/json"}};
  if (endpoint_.tcp && !endpoint_.token.empty()) headers.emplace("Authorization", "Bearer " + endpoint_.token);
  const std::string payload = body ? body->dump() : std::string();
  const char* type = "application/json";
  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "GET") {
    res = cli->Get(path, headers);
  } else if (method == "POST") {
    res = body ? cli->Post(path, headers, payload, type) : cli->Post(path, headers);
  } else if (method == "DELETE") {
    res = body ? cli->Delete(path, headers, payload, type) : cli->Delete(path, headers);
  } else if (method == "PUT") {
    res = cli->Put(path, headers, payload, type);
  } else if (method == "PATCH") {
    res = cli->Patch(path, headers, payload, type);
  } else {
    return Status::error(fmt::format("unsupported method {}", method));
  }
  if (!res) {
    const httplib::Error err = res.error();
    if (err == httplib::Error::Connection || err == httplib::Error::ConnectionTimeout) {
      std::string reason = endpoint_.tcp ? tcp_connect_reason(endpoint_.host, endpoint_.port, connect_timeout_s_)
                                         : unix_connect_reason(endpoint_.host);
      if (reason.empty()) reason = httplib::to_string(err);
      const char* hint = reason == std::strerror(EACCES) ? "(does your user have access to it?)" : "(is nimbusd running?)";
      return Status::error(fmt::format("cannot reach nimbusd at {}: {} {}", endpoint_.address, reason, hint));
    }
    if (err == httplib::Error::Read) {
      return Status::error(fmt::format("no reply from nimbusd at {} to {} {} (within {} s, or the connection closed)",
                                       endpoint_.address, method, path, read_timeout_s_));
    }
    return Status::error(fmt::format("request to nimbusd at {} failed: {}", endpoint_.address, httplib::to_string(err)));
  }
  last_status_ = res->status;
  json reply;
  if (!res->body.empty()) reply = json::parse(res->body, nullptr, false);
  if (res->status >= 200 && res->status < 300) {
    if (res->body.empty()) return json::object();
    if (reply.is_discarded()) return Status::error(fmt::format("nimbusd sent a reply that is not JSON to {} {}", method, path));
    return reply;
  }
  std::string message;
  if (!reply.is_discarded() && reply.is_object() && reply.contains("error") && reply["error"].is_object()) {
    const json& e = reply["error"];
    if (e.contains("code") && e["code"].is_string()) last_code_ = e["code"].get<std::string>();
    if (e.contains("message") && e["message"].is_string()) message = e["message"].get<std::string>();
  }
  if (message.empty()) {
    message = res->reason.empty() ? fmt::format("HTTP {}", res->status) : fmt::format("HTTP {} {}", res->status, res->reason);
    const std::string text = trim(res->body);
    if (!text.empty() && text.size() < 200 && reply.is_discarded()) message += ": " + text;
  }
  if (res->status == 401 && endpoint_.tcp) {
    message += endpoint_.token.empty() ? " (no token: set $NIMBUS_TOKEN or give --token-file)"
                                       : " (check $NIMBUS_TOKEN or --token-file)";
  }
  return Status::error(message);
}

}  // namespace nimbus::cli
