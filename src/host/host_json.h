// The API edge's half of nimbusd's values: operations' results as JSON objects
// (docs/nimbusd.md: the vm, host and snapshot objects) and error codes as HTTP statuses
// with {"error": {"code", "message"}} bodies.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "host/host_types.h"

namespace nimbus::host {

// A forward as nimbusd's API and its state database carry it:
// {"protocol", "host_address", "host_port", "guest_port"}.
nlohmann::json forward_json(const config::PortForward& forward);
nlohmann::json to_json(const VmInfo& vm);
nlohmann::json to_json(const HostInfo& host);
nlohmann::json to_json(const SnapshotInfo& snapshot);
// {"tunnel": {"listen", "endpoint", "peers", "networks", "counters"}} ({"tunnel": null}
// without one).
nlohmann::json to_json(const NetworkInfo& network);

// The HTTP status and the wire name of an error's code: InvalidArgument is 400
// "BadRequest", NotFound 404, Conflict and InsufficientCapacity 409; any other code
// (a failed step of the host, the VMM not answering) is 500 "Internal".
struct HttpError {
  int status;
  std::string_view name;
};
HttpError http_error(Code code);

// {"error": {"code": NAME, "message": MESSAGE}}
nlohmann::json error_json(std::string_view name, const std::string& message);

}  // namespace nimbus::host
