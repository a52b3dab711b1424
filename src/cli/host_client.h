// A client of nimbusd's JSON API (docs/nimbusd.md): the `nimbus` host verbs (launch, list,
// stop, ...) talk to the daemon through it. The endpoint is a unix socket path, or
// http://HOST:PORT for the daemon's TCP listener (then every request carries
// `Authorization: Bearer TOKEN`).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "common/status.h"

namespace nimbus::cli {

using json = nlohmann::json;

inline constexpr const char* kDefaultHostSocket = "/run/nimbus/nimbusd.sock";

struct HostEndpoint {
  std::string address;  // as given: a socket path or http://HOST:PORT
  bool tcp = false;
  std::string host;     // tcp: host name or address; unix: the socket path
  int port = 0;         // tcp only
  std::string token;    // tcp only: the bearer token ("" = none)
};

// The endpoint from --host (if not empty), else $NIMBUS_HOST, else the default socket;
// for TCP the token from --token-file (if not empty), else $NIMBUS_TOKEN.
Result<HostEndpoint> resolve_endpoint(const std::string& host_flag, const std::string& token_file_flag);

class HostClient {
 public:
  explicit HostClient(HostEndpoint endpoint) : endpoint_(std::move(endpoint)) {}

  // One request. The parsed reply body for 2xx (an empty object when there is none); for
  // 4xx/5xx an error with the API's error.message; for a transport failure an error that
  // says nimbusd could not be reached.
  Result<json> request(const std::string& method, const std::string& path,
                       const std::optional<json>& body = std::nullopt);

  // The HTTP status and the API's error.code of the last request (0 and "" when there
  // was no reply).
  int last_status() const { return last_status_; }
  const std::string& last_code() const { return last_code_; }

  // Seconds to wait for a reply (default 120: a graceful stop can take 30 s and more).
  void set_read_timeout(int seconds) { read_timeout_s_ = seconds; }
  void set_connect_timeout(int seconds) { connect_timeout_s_ = seconds; }
  const HostEndpoint& endpoint() const { return endpoint_; }

 private:
  HostEndpoint endpoint_;
  int read_timeout_s_ = 120;
  int connect_timeout_s_ = 10;
  int last_status_ = 0;
  std::string last_code_;
};

}  // namespace nimbus::cli
