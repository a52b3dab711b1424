// The `nimbus` host verbs' side of nimbusd's API: where the user says nimbusd is (--host,
// $NIMBUS_HOST, --token-file, $NIMBUS_TOKEN) and errors worded for a user at a terminal.
// The calls themselves are host::HostApiClient's (shared with the control plane), over the
// one HTTP client (common/http_client.h).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/status.h"
#include "host/host_api_client.h"

namespace nimbus::cli {

using json = nlohmann::json;

inline constexpr const char* kDefaultHostSocket = "/run/nimbus/nimbusd.sock";

struct HostEndpoint {
  std::string address;  // as given: a socket path or http://HOST:PORT
  bool tcp = false;
  std::string host;   // tcp: host name or address; unix: the socket path
  int port = 0;       // tcp only
  std::string token;  // tcp only: the bearer token ("" = none)
};

// The endpoint from --host (if not empty), else $NIMBUS_HOST, else the default socket;
// for TCP the token from --token-file (if not empty), else $NIMBUS_TOKEN.
Result<HostEndpoint> resolve_endpoint(const std::string& host_flag,
                                      const std::string& token_file_flag);

class HostClient {
 public:
  explicit HostClient(HostEndpoint endpoint);

  // One request (host::HostApiClient::call, the error's Code kept), with hints for the
  // user: "(is nimbusd running?)" when nobody answers, where to put the token on a 401.
  Result<json> request(const std::string& method, const std::string& path,
                       const std::optional<json>& body = std::nullopt);

  // The HTTP status and the API's error.code of the last request (0 and "" when there
  // was no reply).
  int last_status() const { return api_.last_status(); }
  const std::string& last_code() const { return api_.last_code(); }

  // Seconds to wait for a reply (default 120: a graceful stop can take 30 s and more).
  void set_read_timeout(int seconds) { api_.set_read_timeout_ms(seconds * 1000); }
  void set_connect_timeout(int seconds) { api_.set_connect_timeout_ms(seconds * 1000); }
  const HostEndpoint& endpoint() const { return endpoint_; }

 private:
  HostEndpoint endpoint_;
  host::HostApiClient api_;
};

}  // namespace nimbus::cli
