#include "host/vmm_link.h"

#include <httplib.h>
#include <sys/socket.h>

#include <fmt/format.h>

namespace nimbus::host {
using nlohmann::json;

Result<json> VmmLink::call(const char* method, const std::string& path, const json& body, int timeout_ms) const {
  httplib::Client cli(sock_);
  cli.set_address_family(AF_UNIX);
  const time_t sec = timeout_ms / 1000;
  const time_t usec = (timeout_ms % 1000) * 1000;
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(sec, usec);
  cli.set_write_timeout(5, 0);
  const std::string payload = body.is_null() ? std::string() : body.dump();
  const std::string m = method;
  if (m != "GET" && m != "PUT" && m != "PATCH") return Status::error(fmt::format("unsupported method {}", m));
  httplib::Result r = m == "GET"   ? cli.Get(path)
                      : m == "PUT" ? cli.Put(path, payload, "application/json")
                                   : cli.Patch(path, payload, "application/json");
  if (!r) return Status::error(fmt::format("the VMM does not answer on {}: {}", sock_, httplib::to_string(r.error())));
  json reply = r->body.empty() ? json::object() : json::parse(r->body, nullptr, false);
  if (r->status >= 300) {
    std::string msg = reply.is_object() ? reply.value("fault_message", std::string()) : std::string();
    if (msg.empty()) msg = fmt::format("HTTP {}", r->status);
    return Status::error(msg);
  }
  if (reply.is_discarded()) return Status::error("the VMM sent a reply that is not JSON");
  return reply;
}

Result<json> VmmLink::info(int timeout_ms) const { return call("GET", "/", nullptr, timeout_ms); }

Status VmmLink::pause() const { return call("PATCH", "/vm", {{"state", "Paused"}}, 30000).status(); }

Status VmmLink::resume() const { return call("PATCH", "/vm", {{"state", "Resumed"}}, 30000).status(); }

Result<bool> VmmLink::shutdown(unsigned timeout_s) const {
  auto r = call("PUT", "/actions", {{"action_type", "Shutdown"}, {"timeout_s", timeout_s}},
                static_cast<int>(timeout_s + 15) * 1000);
  if (!r.ok()) return r.status();
  return r->is_object() ? r->value("graceful", false) : false;
}

Status VmmLink::stop() const { return call("PUT", "/actions", {{"action_type", "Stop"}}, 15000).status(); }

Status VmmLink::snapshot_create(const std::string& path) const {
  return call("PUT", "/snapshot/create", {{"snapshot_path", path}}, 120000).status();
}

}  // namespace nimbus::host
