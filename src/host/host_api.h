// nimbusd's REST API without transport: routes (method, path, body) to one HostOps call,
// after validating the request strictly (unknown fields, wrong types, out-of-range values
// and bad names are 400s that name the field). See docs/nimbusd.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/http_message.h"
#include "host/host_types.h"

namespace nimbus::host {

using nlohmann::json;

constexpr size_t kMaxHostRequestBody = 64 * 1024;

struct HostResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

HostResponse handle_host_request(HostOps& ops, const std::string& method, const std::string& path,
                                 const std::string& body);

// The API over HTTP, as the server hands it a request: the console's WebSocket upgrade
// (console_relay.h) and every other route (handle_host_request).
http::Reply handle_host_http(HostOps& ops, const http::Request& req);

// Parses a create request body (exposed for tests).
Result<CreateRequest> parse_create_request(const nlohmann::json& j);
// Parses an image export body (POST /v1/vms/NAME/image).
Result<ExportImageRequest> parse_export_request(const nlohmann::json& j);

}  // namespace nimbus::host
