#include "cloud/cloud_server.h"

#include <fmt/format.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

#include "cloud/console_api.h"
#include "common/http_listen.h"

namespace nimbus::cloud {

namespace {

constexpr const char* kImagesPath = "/nimbus/v1/images/";

http::Reply json_reply(int status, const nlohmann::json& body) {
  return http::Reply{status, body.dump() + "\n", "application/json"};
}

http::Reply json_error(int status, const std::string& code, const std::string& message) {
  return json_reply(status, {{"error", {{"code", code}, {"message", message}}}});
}

nlohmann::json host_view_json(const HostView& v, const std::string& public_prefix) {
  nlohmann::json instances = nlohmann::json::object();
  for (const auto& [id, c] : v.allocation.instances) {
    instances[id] = {{"vcpus", c.vcpus},
                     {"memory_mib", c.memory_mib},
                     {"disk_mib", c.disk_mib},
                     {"compute", c.compute},
                     {"public_ip", c.public_ip}};
  }
  return {{"id", v.record.id},
          {"zone", v.record.zone},
          {"api_url", v.record.api_url},
          {"alive", v.alive},
          {"draining", v.record.draining},
          {"seconds_since_heartbeat", v.seconds_since_heartbeat},
          {"joined_at", v.record.joined_at},
          {"public_pool", fmt::format("{}.{}.0/24", public_prefix, v.record.index)},
          {"host", v.record.host},
          {"instances", instances}};
}

http::Reply ec2_json_error(const Ec2Error& e) {
  int status = e.http_status;
  if (e.code.size() > 9 && e.code.compare(e.code.size() - 9, 9, ".NotFound") == 0) status = 404;
  if (e.code == "IncorrectInstanceState" || e.code == "InsufficientInstanceCapacity") status = 409;
  return json_error(status, e.code, e.message);
}

// The operator's move paths (docs/cloud.md, "Moves and drains"):
//   POST /nimbus/v1/instances/ID/move {"host": "H"}   (H optional)
//   POST /nimbus/v1/hosts/H/drain, POST /nimbus/v1/hosts/H/undrain
std::optional<http::Reply> route_moves(Cloud& cloud, const http::Request& req) {
  constexpr std::string_view kInstances = "/nimbus/v1/instances/";
  constexpr std::string_view kHosts = "/nimbus/v1/hosts/";
  auto tail = [&](std::string_view prefix, std::string_view suffix) -> std::optional<std::string> {
    const std::string& p = req.path;
    if (p.size() <= prefix.size() + suffix.size() || p.rfind(prefix, 0) != 0 ||
        p.compare(p.size() - suffix.size(), suffix.size(), suffix) != 0)
      return std::nullopt;
    std::string name = p.substr(prefix.size(), p.size() - prefix.size() - suffix.size());
    if (name.empty() || name.size() > 64 || name.find('/') != std::string::npos)
      return std::nullopt;
    return name;
  };
  if (auto id = tail(kInstances, "/move")) {
    if (req.method != "POST") return json_error(405, "MethodNotAllowed", "use POST");
    std::string host;
    if (!req.body.empty()) {
      nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      if (!body.is_object()) return json_error(400, "BadRequest", "the body is not a JSON object");
      if (auto h = body.find("host"); h != body.end() && !h->is_null()) {
        if (!h->is_string())
          return json_error(400, "InvalidParameterValue", "host must be a host id");
        host = h->get<std::string>();
      }
    }
    auto r = cloud.request_move(*id, host);
    if (!r.ok()) return ec2_json_error(r.error());
    return json_reply(
        202, {{"instance", r->id}, {"from", r->host}, {"to", r->move_to}, {"move_id", r->move_id}});
  }
  for (const bool drain : {true, false}) {
    auto host = tail(kHosts, drain ? "/drain" : "/undrain");
    if (!host) continue;
    if (req.method != "POST") return json_error(405, "MethodNotAllowed", "use POST");
    if (drain) {
      auto r = cloud.drain_host(*host);
      if (!r.ok()) return ec2_json_error(r.error());
      nlohmann::json moving = nlohmann::json::array(), staying = nlohmann::json::array();
      for (const auto& i : r->moving)
        moving.push_back({{"instance", i.id}, {"to", i.move_to}, {"move_id", i.move_id}});
      for (const auto& [id, why] : r->staying)
        staying.push_back({{"instance", id}, {"reason", why}});
      return json_reply(
          202, {{"host", *host}, {"draining", true}, {"moving", moving}, {"staying", staying}});
    }
    auto r = cloud.undrain_host(*host);
    if (!r.ok()) return ec2_json_error(r.error());
    return json_reply(200, {{"host", *host}, {"draining", false}, {"cancelled", *r}});
  }
  return std::nullopt;
}

http::Reply serve_image_file(Cloud& cloud, const std::string& rest) {
  // rest: AMI/FILE
  const auto slash = rest.find('/');
  if (slash == std::string::npos) return json_error(404, "NotFound", "no such image file");
  auto img = cloud.image(rest.substr(0, slash));
  if (!img.ok()) return json_error(404, "NotFound", img.error().message);
  const std::string name = rest.substr(slash + 1);
  for (const auto& f : img->files) {
    if (f.name != name) continue;
    std::ifstream in(f.path, std::ios::binary);
    if (!in) return json_error(500, "Internal", "cannot read " + f.name + " of " + img->id);
    std::ostringstream body;
    body << in.rdbuf();
    http::Reply r;
    r.body = body.str();
    r.content_type = "application/octet-stream";
    return r;
  }
  return json_error(404, "NotFound", fmt::format("image {} has no file '{}'", img->id, name));
}

}  // namespace

http::Reply route_cloud_request(Cloud& cloud, Ec2Api& api, const http::Request& req,
                                Console* console) {
  if (req.path == "/") return api.handle(req);
  if (console) {
    if (auto r = console->handle(req)) return std::move(*r);
  }
  if (req.path == "/nimbus/v1/health" && req.method == "GET")
    return json_reply(200, {{"region", cloud.options().region},
                            {"zones", cloud.zones()},
                            {"store", cloud.store().describe()},
                            {"replica", cloud.options().replica_id},
                            {"leader", cloud.is_leader()}});
  if (req.path == "/nimbus/v1/regions" && req.method == "GET") {  // public, as DescribeRegions
    const CloudOptions& o = cloud.options();
    nlohmann::json list = nlohmann::json::array();
    if (o.regions.empty()) list.push_back({{"name", o.region}, {"endpoint", o.endpoint_url}});
    for (const RegionEndpoint& r : o.regions)
      list.push_back({{"name", r.name}, {"endpoint", r.endpoint}});
    return json_reply(200, {{"region", o.region}, {"regions", list}});
  }
  if (req.path.rfind("/nimbus/v1/", 0) != 0)
    return json_error(404, "NotFound", "no such path (the EC2 API is POST /)");
  if (cloud.options().join_token.empty() ||
      !http::bearer_matches(req.header("authorization"), cloud.options().join_token))
    return json_error(401, "Unauthorized", "this path needs the cloud's join token");
  if (req.path == "/nimbus/v1/hosts/heartbeat") {
    if (req.method != "POST") return json_error(405, "MethodNotAllowed", "use POST");
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return json_error(400, "BadRequest", "the body is not JSON");
    auto r = cloud.heartbeat(body);
    if (!r.ok()) return json_error(r.error().http_status, r.error().code, r.error().message);
    return json_reply(200, *r);
  }
  if (req.path == "/nimbus/v1/hosts") {
    if (req.method != "GET") return json_error(405, "MethodNotAllowed", "use GET");
    auto hosts = cloud.hosts();
    if (!hosts.ok()) return json_error(503, "Unavailable", hosts.error().message);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& h : *hosts) out.push_back(host_view_json(h, cloud.options().public_prefix));
    return json_reply(200, {{"hosts", out}});
  }
  if (req.path == "/nimbus/v1/instances") {
    if (req.method != "GET") return json_error(405, "MethodNotAllowed", "use GET");
    auto instances = cloud.instances();
    if (!instances.ok()) return json_error(503, "Unavailable", instances.error().message);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& i : *instances) out.push_back(to_json(i));
    return json_reply(200, {{"instances", out}});
  }
  if (auto moved = route_moves(cloud, req)) return *moved;
  if (req.path.rfind(kImagesPath, 0) == 0) {
    if (req.method != "GET") return json_error(405, "MethodNotAllowed", "use GET");
    return serve_image_file(cloud, req.path.substr(std::string(kImagesPath).size()));
  }
  return json_error(404, "NotFound", "no such path");
}

Result<std::unique_ptr<CloudServer>> CloudServer::bind(const std::string& listen) {
  auto sock = http::listen_tcp("--listen", listen);
  if (!sock.ok()) return sock.status();
  http::ServerOptions o;
  o.max_body = 1 << 20;  // UserData is 16 KiB (base64); a heartbeat lists a host's VMs
  o.error_body = [](int status, std::string_view code, std::string_view message) {
    Ec2Error e;
    e.http_status = status;
    e.code = std::string(code);
    e.message = std::string(message);
    return ec2_error_body(e, new_request_id());
  };
  std::unique_ptr<CloudServer> s(new CloudServer());
  s->server_ = std::make_unique<http::Server>(std::move(*sock), o);
  return s;
}

void CloudServer::serve(Cloud& cloud, Ec2Api& api, Console* console) {
  server_->serve([&cloud, &api, console](const http::Request& req) {
    return route_cloud_request(cloud, api, req, console);
  });
}

}  // namespace nimbus::cloud
