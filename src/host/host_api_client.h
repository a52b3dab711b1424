// A client of nimbusd's JSON API (docs/nimbusd.md) over the one HTTP client
// (common/http_client.h): the `nimbus` host verbs use it, and so will the control plane.
// It knows the API's conventions (JSON bodies, the {"error": {"code", "message"}} shape)
// but nothing of how a user named the endpoint or how errors are shown (src/cli).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/http_client.h"
#include "common/status.h"
#include "common/websocket.h"

namespace nimbus::host {

class HostApiClient {
 public:
  // `target`: "unix:/PATH" or "http://HOST:PORT"; `token`: the bearer token for TCP ("" none).
  static Result<HostApiClient> create(const std::string& target, const std::string& token = "");
  explicit HostApiClient(http::Target target, std::string token = "");

  // One call. The parsed reply body for 2xx (an empty object when there is none). Errors
  // keep their Code: the transport's (kUnavailable: nimbusd is not there, kDeadlineExceeded:
  // no reply in time, ...) or the API's (kNotFound, kConflict, kInsufficientCapacity, ...
  // with the API's message); kInternal for a 2xx body that is not JSON.
  Result<nlohmann::json> call(const std::string& method, const std::string& path,
                              const std::optional<nlohmann::json>& body = std::nullopt);

  // The VM's serial console over WebSocket (GET /v1/vms/NAME/console): binary frames carry
  // its output (the last 64 KiB first), frames sent go to its input. Errors as `call`'s
  // where the refusal can be told (kNotFound: no such VM, kConflict: not running, ...).
  Result<http::ws::Socket> open_console(const std::string& vm) const;

  // The HTTP status and the API's error.code of the last call (0 and "" without a reply).
  int last_status() const { return last_status_; }
  const std::string& last_code() const { return last_code_; }

  void set_read_timeout_ms(int ms) { http_.options().read_timeout_ms = ms; }
  void set_connect_timeout_ms(int ms) { http_.options().connect_timeout_ms = ms; }
  const http::Client& http() const { return http_; }

 private:
  http::Client http_;
  int last_status_ = 0;
  std::string last_code_;
};

}  // namespace nimbus::host
