#include "host/vmm_link.h"

#include <fmt/format.h>

#include "common/http_client.h"
#include "config/device_json.h"

namespace nimbus::host {
using nlohmann::json;

namespace {
constexpr int kConnectTimeoutMs = 2000;  // a live VMM accepts at once
constexpr size_t kMaxReplyBody = 4 * 1024 * 1024;
}  // namespace

Result<json> VmmLink::call(const char* method, const std::string& path, const json& body,
                           int timeout_ms) const {
  http::ClientOptions o;
  o.peer = "the VMM";
  o.connect_timeout_ms = kConnectTimeoutMs;
  o.read_timeout_ms = timeout_ms;
  o.max_reply_body = kMaxReplyBody;
  auto client = http::Client::create("unix:" + sock_, std::move(o));
  if (!client.ok()) return client.status();
  auto r = client->request(method, path, body.is_null() ? std::string() : body.dump());
  if (!r.ok()) return r.status();
  if (!http::is_success(*r)) return http::reply_error(*r);  // the VMM's fault_message
  if (r->body.empty()) return json::object();
  json reply = json::parse(r->body, nullptr, false);
  if (reply.is_discarded()) {
    return Status::internal(fmt::format("the VMM at {} sent a reply that is not JSON", sock_));
  }
  return reply;
}

Result<json> VmmLink::info(int timeout_ms) const { return call("GET", "/", nullptr, timeout_ms); }

Status VmmLink::pause() const {
  return call("PATCH", "/vm", {{"state", "Paused"}}, 30000).status();
}

Status VmmLink::resume() const {
  return call("PATCH", "/vm", {{"state", "Resumed"}}, 30000).status();
}

Result<bool> VmmLink::shutdown(unsigned timeout_s) const {
  auto r = call("PUT", "/actions", {{"action_type", "Shutdown"}, {"timeout_s", timeout_s}},
                static_cast<int>(timeout_s + 15) * 1000);
  if (!r.ok()) return r.status();
  return r->is_object() ? r->value("graceful", false) : false;
}

Status VmmLink::stop() const {
  return call("PUT", "/actions", {{"action_type", "Stop"}}, 15000).status();
}

Status VmmLink::snapshot_create(const std::string& path) const {
  return call("PUT", "/snapshot/create", {{"snapshot_path", path}}, 120000).status();
}

Status VmmLink::set_forwards(const std::string& iface,
                             const std::vector<config::PortForward>& forwards) const {
  json list = json::array();
  for (const config::PortForward& f : forwards) list.push_back(config::to_json(f));
  return call("PUT", "/network-interfaces/" + iface + "/forwards", {{"forwards", list}}, 15000)
      .status();
}

Status VmmLink::set_metadata(const config::MetadataConfig& metadata) const {
  if (Status s = call("PUT", "/mmds", metadata.data, 15000).status(); !s.ok()) return s;
  return call("PUT", "/mmds/config", config::to_json(metadata.options), 15000).status();
}

Result<json> VmmLink::migration(const std::string& method, const json& body) const {
  return call(method.c_str(), "/migration", method == "PUT" ? body : json(nullptr), 15000);
}

}  // namespace nimbus::host
