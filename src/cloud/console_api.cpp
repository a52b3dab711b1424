#include "cloud/console_api.h"

#include <fmt/format.h>

#include <ctime>

#include "cloud/base64.h"
#include "cloud/console_assets.h"

namespace nimbus::cloud {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxApiBody = 64 * 1024;  // a launch with 16 KiB of user data fits
constexpr size_t kMaxUserData = 16 * 1024;
constexpr size_t kConsoleOutputTail = 64 * 1024;

void add_security_headers(http::Reply& r) {
  r.headers.emplace("Content-Security-Policy",
                    "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' "
                    "'unsafe-inline'; img-src 'self' data:");
  r.headers.emplace("X-Content-Type-Options", "nosniff");
  r.headers.emplace("X-Frame-Options", "DENY");
  r.headers.emplace("Referrer-Policy", "no-referrer");
}

http::Reply json_reply(int status, const json& body) {
  // Text from hosts and tags may not be UTF-8: replaced, never an exception.
  http::Reply r{status, body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                "application/json"};
  r.headers.emplace("Cache-Control", "no-store");
  return r;
}

http::Reply error_reply(int status, const std::string& code, const std::string& message) {
  return json_reply(status, {{"error", {{"code", code}, {"message", message}}}});
}

http::Reply bad(const std::string& message) {
  return error_reply(400, "InvalidParameterValue", message);
}

http::Reply ec2_reply(const Ec2Error& e, bool launch = false) {
  int status = 400;
  if (!launch && e.code.size() > 9 && e.code.compare(e.code.size() - 9, 9, ".NotFound") == 0)
    status = 404;
  if (!launch && e.code == "IncorrectInstanceState") status = 409;
  if (e.http_status >= 500) status = e.http_status;
  return error_reply(status, e.code, e.message);
}

// Valid UTF-8 without control characters (but \t, and \n \r when `lines`).
bool valid_text(std::string_view s, bool lines = false) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && !(c == '\t' || (lines && (c == '\n' || c == '\r')))) || c == 0x7f)
        return false;
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if (cp >= 0x80 && cp < 0xa0) return false;  // C1 controls
    i += n + 1;
  }
  return true;
}

bool charset(std::string_view s, std::string_view extra) {
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          extra.find(c) != std::string_view::npos))
      return false;
  }
  return true;
}

// Seconds since the ISO 8601 time (2026-12-06T10:00:00.000Z), 0 when it does not parse.
int64_t seconds_since(const std::string& iso) {
  std::tm tm{};
  int y, mo, d, h, mi, s;
  if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) return 0;
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
  tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = s;
  const int64_t t = static_cast<int64_t>(timegm(&tm));
  const int64_t now = wall_ms_now() / 1000;
  return now > t ? now - t : 0;
}

uint64_t line_value(const json& host, const char* line, const char* field) {
  auto l = host.find(line);
  if (l == host.end() || !l->is_object()) return 0;
  auto f = l->find(field);
  if (f == l->end() || !f->is_number_unsigned()) return 0;
  return f->get<uint64_t>();
}

// The body as a JSON object, or the reply refusing it.
std::optional<http::Reply> parse_object(const http::Request& req, json& out) {
  if (req.body.size() > kMaxApiBody) return error_reply(413, "TooLarge", "the body is too large");
  out = json::parse(req.body, nullptr, false);
  if (!out.is_object()) return error_reply(400, "BadRequest", "the body is not a JSON object");
  return std::nullopt;
}

// Fields not in `known` are refused (a typo must not be silently ignored).
std::optional<http::Reply> only_fields(const json& body,
                                       std::initializer_list<std::string_view> known) {
  for (const auto& [k, v] : body.items()) {
    bool ok = false;
    for (auto n : known) ok |= (k == n);
    if (!ok)
      return bad(fmt::format("unknown field '{}'", valid_text(k) && k.size() <= 64 ? k : "?"));
  }
  return std::nullopt;
}

std::optional<std::string> string_field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return std::string("\x01");  // a wrong type: never valid below
  return it->get<std::string>();
}

bool valid_tag_key(const std::string& k) {
  return !k.empty() && k.size() <= 128 && valid_text(k) && k.rfind("aws:", 0) != 0;
}
bool valid_tag_value(const std::string& v) { return v.size() <= 256 && valid_text(v); }

}  // namespace

Console::Console(Cloud& cloud, HostDriver& driver, ApiCredentials credentials,
                 ConsoleOptions options, Clock clock)
    : cloud_(cloud),
      driver_(driver),
      options_(options),
      sessions_(std::move(credentials), options.session_ttl, options.max_sessions, clock),
      metrics_(cloud, driver, options.metrics_interval),
      events_(
          [this] {
            ConsoleEvents::Snapshot s;
            auto j = instances_json();
            if (!j.ok()) return s;
            s.data = j->dump(-1, ' ', false, json::error_handler_t::replace);
            for (auto& i : (*j)["instances"]) i.erase("uptime_s");  // changes every second
            s.fingerprint = j->dump(-1, ' ', false, json::error_handler_t::replace);
            s.ok = true;
            return s;
          },
          options.max_streams, options.events_poll, options.events_keepalive) {}

Console::~Console() { stop(); }

void Console::start() { metrics_.start(); }

void Console::stop() {
  events_.stop();
  metrics_.stop();
}

std::optional<http::Reply> Console::handle(const http::Request& req) {
  const std::string& p = req.path;
  if (p != "/console" && p.rfind("/console/", 0) != 0) return std::nullopt;
  http::Reply r;
  constexpr std::string_view kAssets = "/console/assets/", kApi = "/console/api/";
  if (p == "/console" || p == "/console/" || p.rfind(kAssets, 0) == 0) {
    const std::string name = p.rfind(kAssets, 0) == 0 ? p.substr(kAssets.size()) : "index.html";
    if (req.method != "GET" && req.method != "HEAD") {
      r = error_reply(405, "MethodNotAllowed", "use GET");
    } else if (name.empty() || name.size() > 200 || !charset(name, "._-/") ||
               name.find("..") != std::string::npos || name[0] == '/') {
      r = error_reply(404, "NotFound", "no such file");
    } else if (auto data = console_asset(name)) {
      r.status = 200;
      r.body = std::string(*data);
      r.content_type = console_content_type(name);
      r.headers.emplace("Cache-Control", "no-cache");
    } else {
      r = error_reply(404, "NotFound", "no such file");
    }
  } else if (p.rfind(kApi, 0) == 0) {
    r = route_api(req, p.substr(kApi.size()));
  } else {
    r = error_reply(404, "NotFound", "no such console path");
  }
  add_security_headers(r);
  return r;
}

http::Reply Console::route_api(const http::Request& req, const std::string& rest) {
  const bool writes = req.method != "GET" && req.method != "HEAD";
  if (writes && req.header("x-nimbus-console") != "1")
    return error_reply(403, "Forbidden", "a console request needs the header X-Nimbus-Console: 1");
  if (rest == "session") return session_route(req);
  const std::string token = ConsoleSessions::cookie_token(req.header("cookie"));
  if (!sessions_.find(token))
    return error_reply(401, "Unauthorized", "sign in first (the session is missing or expired)");
  auto method = [&](const char* m) { return req.method == m; };
  if (rest == "overview") {
    if (!method("GET")) return error_reply(405, "MethodNotAllowed", "use GET");
    auto o = overview_json();
    if (!o.ok()) return ec2_reply(o.error());
    return json_reply(200, *o);
  }
  if (rest == "choices") {
    if (!method("GET")) return error_reply(405, "MethodNotAllowed", "use GET");
    return choices();
  }
  if (rest == "events") {
    if (!method("GET")) return error_reply(405, "MethodNotAllowed", "use GET");
    return events(token);
  }
  if (rest == "instances") {
    if (method("POST")) return launch(req);
    if (!method("GET")) return error_reply(405, "MethodNotAllowed", "use GET or POST");
    auto j = instances_json();
    if (!j.ok()) return ec2_reply(j.error());
    return json_reply(200, *j);
  }
  constexpr std::string_view kInstances = "instances/";
  if (rest.rfind(kInstances, 0) == 0) {
    std::string tail = rest.substr(kInstances.size()), verb;
    if (auto slash = tail.find('/'); slash != std::string::npos) {
      verb = tail.substr(slash + 1);
      tail.resize(slash);
    }
    if (!is_id(tail, "i"))
      return error_reply(404, "InvalidInstanceID.Malformed", "no such instance id");
    return instance_route(req, tail, verb, token);
  }
  return error_reply(404, "NotFound", "no such console API path");
}

http::Reply Console::session_route(const http::Request& req) {
  const std::string token = ConsoleSessions::cookie_token(req.header("cookie"));
  if (req.method == "GET") {
    auto s = sessions_.find(token);
    if (!s) return error_reply(401, "Unauthorized", "not signed in");
    const auto left =
        std::chrono::duration_cast<std::chrono::seconds>(s->expires - sessions_.now());
    return json_reply(200, {{"access_key", s->access_key}, {"expires_in", left.count()}});
  }
  if (req.method == "DELETE") {
    sessions_.sign_out(token);
    http::Reply r = json_reply(200, {{"signed_out", true}});
    r.headers.emplace("Set-Cookie",
                      "nimbus_console=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0");
    return r;
  }
  if (req.method != "POST") return error_reply(405, "MethodNotAllowed", "use GET, POST or DELETE");
  json body;
  if (auto r = parse_object(req, body)) return *r;
  if (auto r = only_fields(body, {"access_key", "secret"})) return *r;
  auto key = string_field(body, "access_key"), secret = string_field(body, "secret");
  if (!key || !secret || key->empty() || key->size() > 128 || secret->size() > 256 ||
      !charset(*key, "+/=._-") || !valid_text(*secret))
    return bad("access_key and secret are required strings (at most 128 and 256 characters)");
  auto t = sessions_.sign_in(*key, *secret);
  if (!t.ok()) {
    switch (t.status().code()) {
      case Code::kUnimplemented:
        return error_reply(403, "NoCredentials", t.message());
      case Code::kPermissionDenied:
        return error_reply(401, "Unauthorized", t.message());
      case Code::kInsufficientCapacity:
        return error_reply(503, "TooManySessions", t.message());
      case Code::kUnavailable:
        return error_reply(429, "TooManyFailedSignIns", t.message());
      default:
        return error_reply(500, "Internal", t.message());
    }
  }
  const auto ttl = sessions_.ttl().count();
  http::Reply r = json_reply(200, {{"access_key", *key}, {"expires_in", ttl}});
  r.headers.emplace("Set-Cookie",
                    fmt::format("nimbus_console={}; HttpOnly; SameSite=Strict; Path=/console; "
                                "Max-Age={}",
                                *t, ttl));
  return r;
}

nlohmann::json Console::instance_json(const InstanceRecord& i,
                                      const std::map<std::string, std::string>& group_names) {
  json tags = json::object();
  for (const auto& [k, v] : i.tags) tags[k] = v;
  json groups = json::array();
  for (const auto& g : i.security_groups) {
    auto n = group_names.find(g);
    groups.push_back({{"id", g}, {"name", n == group_names.end() ? "" : n->second}});
  }
  auto name = i.tags.find("Name");
  return {{"id", i.id},
          {"state", std::string(state_name(i.state))},
          {"type", i.instance_type},
          {"zone", i.zone},
          {"host", i.host},
          {"private_ip", i.private_ip},
          {"public_ip", i.state == InstanceState::kTerminated ? "" : i.public_ip},
          {"launch_time", i.launch_time},
          {"uptime_s", i.state == InstanceState::kRunning ? seconds_since(i.launch_time) : 0},
          {"image_id", i.image_id},
          {"key_name", i.key_name},
          {"name", name == i.tags.end() ? "" : name->second},
          {"tags", tags},
          {"security_groups", groups},
          {"vcpus", i.vcpus},
          {"memory_mib", i.memory_mib},
          {"state_reason", i.state_reason_message}};
}

Ec2Result<nlohmann::json> Console::instances_json() {
  auto all = cloud_.instances();
  if (!all.ok()) return all.error();
  std::map<std::string, std::string> names;
  if (auto groups = cloud_.security_groups(); groups.ok()) {
    for (const auto& g : *groups) names[g.id] = g.name;
  }
  const int64_t hour_ago = wall_ms_now() - 3600 * 1000;
  json list = json::array();
  for (const auto& i : *all) {
    if (i.state == InstanceState::kTerminated && i.terminated_at_ms < hour_ago) continue;
    list.push_back(instance_json(i, names));
  }
  return json{{"instances", list}};
}

Ec2Result<nlohmann::json> Console::overview_json() {
  auto hosts = cloud_.hosts();
  if (!hosts.ok()) return hosts.error();
  auto all = cloud_.instances();
  if (!all.ok()) return all.error();
  std::map<std::string, std::pair<unsigned, unsigned>> per_zone;  // hosts, instances
  for (const auto& z : cloud_.zones()) per_zone[z] = {0, 0};
  for (const auto& i : *all) {
    if (i.state != InstanceState::kTerminated) ++per_zone[i.zone].second;
  }
  json hosts_out = json::array();
  for (const HostView& h : *hosts) {
    ++per_zone[h.record.zone].first;
    uint64_t cpus = 0, mem = 0, disk = 0;
    json ids = json::array();
    for (const auto& [id, c] : h.allocation.instances) {
      ids.push_back(id);
      if (c.compute) cpus += c.vcpus, mem += c.memory_mib;
      disk += c.disk_mib;
    }
    const json& rep = h.record.host;
    auto line = [&](const char* name, uint64_t allocated) {
      return json{{"capacity", line_value(rep, name, "capacity")},
                  {"allocated", allocated},
                  {"used", line_value(rep, name, "allocated")}};
    };
    hosts_out.push_back({{"id", h.record.id},
                         {"zone", h.record.zone},
                         {"state", !h.alive            ? "down"
                                   : h.record.draining ? "draining"
                                                       : "up"},
                         {"cpus", line("cpus", cpus)},
                         {"memory_mib", line("memory_mib", mem)},
                         {"disk_mib", line("disk_mib", disk)},
                         {"instances", ids}});
  }
  json zones = json::array();
  for (const auto& [z, n] : per_zone)
    zones.push_back({{"name", z}, {"hosts", n.first}, {"instances", n.second}});
  // The cloud's regions (--regions-file), this one marked: each has a console of its own.
  const CloudOptions& o = cloud_.options();
  json regions = json::array();
  for (const RegionEndpoint& r : o.regions)
    regions.push_back(
        {{"name", r.name}, {"endpoint", r.endpoint}, {"current", r.name == o.region}});
  if (regions.empty())
    regions.push_back({{"name", o.region}, {"endpoint", o.endpoint_url}, {"current", true}});
  return json{{"region", o.region}, {"regions", regions}, {"zones", zones}, {"hosts", hosts_out}};
}

http::Reply Console::choices() {
  json images = json::array(), types = json::array(), keys = json::array(), groups = json::array();
  auto imgs = cloud_.images();
  if (!imgs.ok()) return ec2_reply(imgs.error());
  for (const auto& i : *imgs) {
    if (i.state == "available") images.push_back({{"id", i.id}, {"name", i.name}});
  }
  for (const auto& t : cloud_.instance_types())
    types.push_back({{"name", t.name}, {"vcpus", t.vcpus}, {"memory_mib", t.memory_mib}});
  auto kp = cloud_.key_pairs();
  if (!kp.ok()) return ec2_reply(kp.error());
  for (const auto& k : *kp) keys.push_back(k.name);
  auto sg = cloud_.security_groups();
  if (!sg.ok()) return ec2_reply(sg.error());
  for (const auto& g : *sg) groups.push_back({{"id", g.id}, {"name", g.name}});
  return json_reply(200, {{"images", images},
                          {"instance_types", types},
                          {"key_pairs", keys},
                          {"security_groups", groups},
                          {"zones", cloud_.zones()}});
}

http::Reply Console::launch(const http::Request& req) {
  json body;
  if (auto r = parse_object(req, body)) return *r;
  if (auto r = only_fields(body, {"image_id", "instance_type", "key_name", "security_group_ids",
                                  "user_data", "zone", "name", "count"}))
    return *r;
  RunRequest r;
  auto image = string_field(body, "image_id");
  if (!image || !is_id(*image, "ami")) return bad("image_id must be an image id (ami-...)");
  r.image_id = *image;
  auto type = string_field(body, "instance_type");
  if (!type || type->empty() || type->size() > 64 || !charset(*type, ".-_"))
    return bad("instance_type must be an instance type name");
  r.instance_type = *type;
  if (auto k = string_field(body, "key_name")) {
    if (k->size() > 255 || !charset(*k, " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"))
      return bad("key_name must be a key pair's name (printable ASCII, at most 255)");
    r.key_name = *k;
  }
  if (auto it = body.find("security_group_ids"); it != body.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 16)
      return bad("security_group_ids must be a list of at most 16 ids");
    for (const auto& g : *it) {
      if (!g.is_string() || !is_id(g.get<std::string>(), "sg"))
        return bad("security_group_ids must hold security group ids (sg-...)");
      r.security_group_ids.push_back(g.get<std::string>());
    }
  }
  if (auto u = string_field(body, "user_data")) {
    if (u->size() > kMaxUserData || !valid_text(*u, true))
      return bad(fmt::format("user_data must be text of at most {} bytes", kMaxUserData));
    if (!u->empty()) r.user_data = base64_encode(*u);
  }
  if (auto z = string_field(body, "zone")) {
    const auto zones = cloud_.zones();
    if (!z->empty() && std::find(zones.begin(), zones.end(), *z) == zones.end())
      return bad("zone must be one of the region's zones");
    r.zone = *z;
  }
  if (auto n = string_field(body, "name")) {
    if (n->size() > 256 || !valid_text(*n)) return bad("name must be text of at most 256 bytes");
    if (!n->empty()) r.instance_tags["Name"] = *n;
  }
  unsigned count = 1;
  if (auto it = body.find("count"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 20)
      return bad("count must be a whole number from 1 to 20");
    count = static_cast<unsigned>(it->get<int64_t>());
  }
  r.min_count = r.max_count = count;
  auto res = cloud_.run_instances(r);
  if (!res.ok()) return ec2_reply(res.error(), true);
  json ids = json::array();
  for (const auto& i : res->instances) ids.push_back(i.id);
  return json_reply(200, {{"instances", ids}, {"reservation_id", res->id}});
}

http::Reply Console::instance_route(const http::Request& req, const std::string& id,
                                    const std::string& verb, const std::string& token) {
  (void)token;
  auto state_of = [&]() -> http::Reply {
    auto i = cloud_.instance(id);
    if (!i.ok()) return ec2_reply(i.error());
    return json_reply(200, {{"id", id}, {"state", std::string(state_name(i->state))}});
  };
  if (verb.empty()) {
    if (req.method != "GET") return error_reply(405, "MethodNotAllowed", "use GET");
    auto i = cloud_.instance(id);
    if (!i.ok()) return ec2_reply(i.error());
    std::map<std::string, std::string> names;
    if (auto groups = cloud_.security_groups(); groups.ok()) {
      for (const auto& g : *groups) names[g.id] = g.name;
    }
    json out = instance_json(*i, names);
    std::string output;
    if (i->state != InstanceState::kTerminated && !i->host.empty()) {
      auto host = cloud_.store().get(kHostsPrefix + i->host);
      if (host.ok() && *host) {
        if (auto rec = host_from_json((*host)->value); rec.ok()) {
          auto r =
              driver_.call(*rec, "GET", "/v1/vms/" + id + "/console-output", std::nullopt, 5000);
          if (r.ok() && r->contains("output") && (*r)["output"].is_string())
            output = (*r)["output"].get<std::string>();
        }
      }
    }
    if (output.size() > kConsoleOutputTail) output.erase(0, output.size() - kConsoleOutputTail);
    out["console_output"] = output;
    return json_reply(200, out);
  }
  if (verb == "metrics") {
    if (req.method != "GET") return error_reply(405, "MethodNotAllowed", "use GET");
    auto i = cloud_.instance(id);
    if (!i.ok()) return ec2_reply(i.error());
    json samples = json::array();
    for (const auto& s : metrics_.samples(id))
      samples.push_back({{"t", s.t}, {"cpu_pct", s.cpu_pct}, {"memory_mib", s.memory_mib}});
    return json_reply(200, {{"interval_s", metrics_.interval_s()}, {"samples", samples}});
  }
  if (verb == "terminal") {
    if (req.method != "GET") return error_reply(405, "MethodNotAllowed", "use GET");
    return terminal(req, id);
  }
  if (verb == "stop" || verb == "start" || verb == "reboot" || verb == "terminate") {
    if (req.method != "POST") return error_reply(405, "MethodNotAllowed", "use POST");
    if (!req.body.empty()) {  // nothing is expected; anything but {} is refused
      json body;
      if (auto r = parse_object(req, body)) return *r;
      if (auto r = only_fields(body, {})) return *r;
    }
    const std::vector<std::string> ids{id};
    Ec2Result<std::vector<StateChange>> changes = std::vector<StateChange>{};
    if (verb == "stop") changes = cloud_.stop_instances(ids, false);
    if (verb == "start") changes = cloud_.start_instances(ids);
    if (verb == "terminate") changes = cloud_.terminate_instances(ids);
    if (verb == "reboot") {
      auto r = cloud_.reboot_instances(ids);
      if (!r.ok()) return ec2_reply(r.error());
    }
    if (!changes.ok()) return ec2_reply(changes.error());
    if (!changes->empty())
      return json_reply(200,
                        {{"id", id}, {"state", std::string(state_name(changes->front().current))}});
    return state_of();
  }
  if (verb == "type") {
    if (req.method != "POST") return error_reply(405, "MethodNotAllowed", "use POST");
    json body;
    if (auto r = parse_object(req, body)) return *r;
    if (auto r = only_fields(body, {"instance_type"})) return *r;
    auto type = string_field(body, "instance_type");
    if (!type || type->empty() || type->size() > 64 || !charset(*type, ".-_"))
      return bad("instance_type must be an instance type name");
    auto r = cloud_.modify_instance_type(id, *type);
    if (!r.ok()) return ec2_reply(r.error());
    return state_of();
  }
  if (verb == "tags") {
    json body;
    if (req.method == "POST") {
      if (auto r = parse_object(req, body)) return *r;
      if (auto r = only_fields(body, {"tags"})) return *r;
      auto it = body.find("tags");
      if (it == body.end() || !it->is_object() || it->empty() || it->size() > 50)
        return bad("tags must be an object of 1 to 50 tags");
      Tags tags;
      for (const auto& [k, v] : it->items()) {
        if (!valid_tag_key(k) || !v.is_string() || !valid_tag_value(v.get<std::string>()))
          return bad(
              "a tag key is 1-128 characters (not aws:...), a value a string of at most 256");
        tags[k] = v.get<std::string>();
      }
      auto r = cloud_.create_tags({id}, tags);
      if (!r.ok()) return ec2_reply(r.error());
    } else if (req.method == "DELETE") {
      if (auto r = parse_object(req, body)) return *r;
      if (auto r = only_fields(body, {"keys"})) return *r;
      auto it = body.find("keys");
      if (it == body.end() || !it->is_array() || it->empty() || it->size() > 50)
        return bad("keys must be a list of 1 to 50 tag keys");
      std::vector<std::pair<std::string, std::optional<std::string>>> keys;
      for (const auto& k : *it) {
        if (!k.is_string() || !valid_tag_key(k.get<std::string>()))
          return bad("keys must hold tag keys (1-128 characters, not aws:...)");
        keys.emplace_back(k.get<std::string>(), std::nullopt);
      }
      auto r = cloud_.delete_tags({id}, keys);
      if (!r.ok()) return ec2_reply(r.error());
    } else {
      return error_reply(405, "MethodNotAllowed", "use POST or DELETE");
    }
    auto i = cloud_.instance(id);
    if (!i.ok()) return ec2_reply(i.error());
    json tags = json::object();
    for (const auto& [k, v] : i->tags) tags[k] = v;
    return json_reply(200, {{"id", id}, {"tags", tags}});
  }
  return error_reply(404, "NotFound", "no such instance action");
}

http::Reply Console::events(const std::string& token) {
  if (!events_.reserve())
    return error_reply(503, "TooManyStreams", "too many event streams are open; try again later");
  // The slot is released when the stream ends, or when the reply is dropped unserved.
  struct Slot {
    ConsoleEvents* events;
    ~Slot() { events->release(); }
  };
  std::shared_ptr<Slot> slot(new Slot{&events_});
  http::Reply r;
  r.status = 200;
  r.content_type = "text/event-stream";
  r.headers.emplace("Cache-Control", "no-store");
  r.headers.emplace("X-Accel-Buffering", "no");
  r.upgrade = [this, token, slot](int fd, std::string) {
    events_.run(fd, [this, &token] { return sessions_.find(token).has_value(); });
  };
  return r;
}

}  // namespace nimbus::cloud
