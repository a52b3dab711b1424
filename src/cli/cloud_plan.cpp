#include "cli/cloud_plan.h"

#include <fmt/format.h>
#include <sys/un.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "cli/host_args.h"
#include "common/http_listen.h"
#include "host/cloud_join.h"

namespace nimbus::cli {

using json = nlohmann::json;

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

bool valid_region(const std::string& r) {
  if (r.empty() || r.size() > 48 || r.front() < 'a' || r.front() > 'z' || r.back() == '-')
    return false;
  return std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// http://ADDRESS:PORT for an address this machine can connect to: a wildcard listen
// address is reached on loopback.
std::string url_of(const http::TcpAddress& a) {
  std::string host = a.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return fmt::format("http://{}:{}", host, a.port);
}

// FNV-1a: a short, stable name for a directory (not a secret, only distinct).
uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

bool sane_path(const json& j, const char* key, const std::string& under) {
  if (!j.contains(key) || !j[key].is_string()) return false;
  const std::string p = j[key].get<std::string>();
  return p.rfind(under + "/", 0) == 0 && p.find("/../") == std::string::npos;
}

int pid_of(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_integer()) return -1;
  const auto v = j[key].get<int64_t>();
  return v >= 0 && v <= 4194304 ? static_cast<int>(v) : -1;  // pid_max's ceiling
}

}  // namespace

std::string cgroup_parent_for(const std::string& state_dir, const std::string& host_id) {
  if (state_dir == kDefaultCloudStateDir) return "nimbus-cloud-" + host_id;
  return fmt::format("nimbus-cloud-{:08x}-{}", fnv1a(state_dir), host_id);
}

Result<CloudPlan> plan_cloud(const CloudUpSettings& s) {
  CloudPlan p;
  if (trim(s.state_dir).empty()) return Status::invalid_argument("--state-dir is empty");
  std::error_code ec;
  p.state_dir = std::filesystem::absolute(s.state_dir, ec).lexically_normal().string();
  while (p.state_dir.size() > 1 && p.state_dir.back() == '/') p.state_dir.pop_back();
  if (ec || p.state_dir == "/")
    return Status::invalid_argument(
        fmt::format("--state-dir '{}': not a usable directory", s.state_dir));
  auto addr = http::parse_tcp_address("--listen", s.listen);
  if (!addr.ok()) return Status::invalid_argument(addr.message());
  if (addr->port == 0)
    return Status::invalid_argument(
        fmt::format("--listen '{}': give the port, e.g. 127.0.0.1:8773", s.listen));
  p.listen = s.listen;
  p.url = url_of(*addr);
  if (!valid_region(s.region))
    return Status::invalid_argument(fmt::format(
        "--region '{}': use a-z 0-9 -, starting with a letter (e.g. nimbus-west-1)", s.region));
  p.region = s.region;
  std::stringstream zs(s.zones);
  for (std::string z; std::getline(zs, z, ',');) {
    z = trim(z);
    if (z.size() == 1 && z[0] >= 'a' && z[0] <= 'z') z = p.region + z;
    if (!host::valid_zone(z))
      return Status::invalid_argument(fmt::format(
          "--zones: '{}' is not a zone: give letters (a,b) or names of a-z 0-9 - ending with a "
          "letter (nimbus-west-1a)",
          z));
    if (std::find(p.zones.begin(), p.zones.end(), z) != p.zones.end())
      return Status::invalid_argument(fmt::format("--zones: {} is given twice", z));
    p.zones.push_back(z);
  }
  if (p.zones.empty()) return Status::invalid_argument("--zones: give at least one zone");
  if (s.strategy != "spread" && s.strategy != "pack")
    return Status::invalid_argument(fmt::format("--strategy '{}': use spread or pack", s.strategy));
  p.strategy = s.strategy;
  if (s.hosts < 1 || s.hosts > kMaxCloudHosts)
    return Status::invalid_argument(
        fmt::format("--hosts {} is out of range (1 to {})", s.hosts, kMaxCloudHosts));
  if (!s.host_memory.empty()) {
    auto mib = parse_mib(s.host_memory);
    if (!mib.ok()) return Status::invalid_argument("--host-memory: " + mib.message());
    p.host_memory_mib = *mib;
  }
  if (s.host_cpus < 0 || s.host_cpus > 1024)
    return Status::invalid_argument(
        fmt::format("--host-cpus {} is out of range (1 to 1024)", s.host_cpus));
  p.host_cpus = s.host_cpus;
  if (!s.credentials.empty()) {
    std::error_code ec;
    const std::filesystem::path abs = std::filesystem::absolute(s.credentials, ec);
    if (ec || !std::filesystem::is_regular_file(abs, ec))
      return Status::invalid_argument(fmt::format(
          "--credentials '{}' is not a file (lines: ACCESS_KEY_ID SECRET)", s.credentials));
    p.credentials = abs.lexically_normal().string();
  }
  for (int i = 1; i <= s.hosts; i++) {
    CloudHost h;
    h.id = fmt::format("host-{}", i);
    h.zone = p.zones[(i - 1) % p.zones.size()];
    h.dir = fmt::format("{}/hosts/{}", p.state_dir, h.id);
    h.socket = h.dir + "/nimbusd.sock";
    h.token_file = h.dir + "/api-token";
    h.log = h.dir + "/nimbusd.log";
    h.pid_file = h.dir + "/nimbusd.pid";
    h.cgroup_parent = cgroup_parent_for(p.state_dir, h.id);
    p.hosts.push_back(h);
  }
  // A unix socket's path has a fixed room (sun_path): say so now rather than through
  // nimbusd's log.
  const size_t longest = p.hosts.back().socket.size();
  if (longest >= sizeof(sockaddr_un::sun_path))
    return Status::invalid_argument(fmt::format(
        "--state-dir '{}' is too long: the hosts' sockets ({}) would be {} characters, over "
        "the {} a unix socket allows",
        p.state_dir, p.hosts.back().socket, longest, sizeof(sockaddr_un::sun_path) - 1));
  return p;
}

std::vector<std::string> cloud_argv(const CloudPlan& p) {
  std::string zones;
  for (const std::string& z : p.zones) zones += (zones.empty() ? "" : ",") + z;
  std::vector<std::string> a = {"--listen",   p.listen,   "--state-dir",    p.state_dir,
                                "--region",   p.region,   "--zones",        zones,
                                "--strategy", p.strategy, "--endpoint-url", p.url};
  if (!p.credentials.empty()) {
    a.push_back("--credentials");
    a.push_back(p.credentials);
  }
  return a;
}

std::vector<std::string> host_argv(const CloudPlan& p, const CloudHost& h) {
  std::vector<std::string> a = {"--state-dir",
                                h.dir,
                                "--socket",
                                h.socket,
                                "--listen",
                                fmt::format("127.0.0.1:{}", h.port),
                                "--token-file",
                                h.token_file,
                                "--cgroup-parent",
                                h.cgroup_parent,
                                "--cloud",
                                p.url,
                                "--zone",
                                h.zone,
                                "--join-token-file",
                                p.join_token_file(),
                                "--host-id",
                                h.id};
  if (p.host_memory_mib != 0) {
    // What the host offers to instances: several hosts share one machine, whose own
    // reserve is the operator's to leave out of their sum.
    for (const std::string& arg : {std::string("--memory"), fmt::format("{}M", p.host_memory_mib),
                                   std::string("--reserved-memory"), std::string("0")})
      a.push_back(arg);
  }
  if (p.host_cpus != 0) {
    a.push_back("--cpus");
    a.push_back(std::to_string(p.host_cpus));
  }
  return a;
}

json to_json(const CloudPlan& p) {
  json hosts = json::array();
  for (const CloudHost& h : p.hosts) {
    hosts.push_back({{"id", h.id},
                     {"zone", h.zone},
                     {"dir", h.dir},
                     {"socket", h.socket},
                     {"token_file", h.token_file},
                     {"log", h.log},
                     {"pid_file", h.pid_file},
                     {"cgroup_parent", h.cgroup_parent},
                     {"port", h.port},
                     {"pid", h.pid}});
  }
  return {{"state_dir", p.state_dir},
          {"listen", p.listen},
          {"url", p.url},
          {"region", p.region},
          {"strategy", p.strategy},
          {"zones", p.zones},
          {"host_memory_mib", p.host_memory_mib},
          {"host_cpus", p.host_cpus},
          {"credentials", p.credentials},
          {"cloud_pid", p.cloud_pid},
          {"hosts", hosts}};
}

Result<CloudPlan> cloud_plan_from_json(const json& j) {
  const auto bad = [](const std::string& what) {
    return Status::invalid_argument("the record is damaged: " + what);
  };
  if (!j.is_object()) return bad("not a JSON object");
  CloudPlan p;
  for (auto [key, out] : {std::pair{"state_dir", &p.state_dir}, std::pair{"listen", &p.listen},
                          std::pair{"url", &p.url}, std::pair{"region", &p.region}}) {
    if (!j.contains(key) || !j[key].is_string()) return bad(fmt::format("no {}", key));
    *out = j[key].get<std::string>();
  }
  if (p.state_dir.empty() || p.state_dir.front() != '/' || p.state_dir == "/")
    return bad("state_dir is not an absolute directory");
  if (p.url.rfind("http://", 0) != 0) return bad("url is not http://");
  if (j.contains("zones") && j["zones"].is_array()) {
    for (const json& z : j["zones"])
      if (z.is_string()) p.zones.push_back(z.get<std::string>());
  }
  if (j.contains("credentials") && j["credentials"].is_string()) {
    p.credentials = j["credentials"].get<std::string>();
    if (!p.credentials.empty() && p.credentials.front() != '/')
      return bad("credentials is not an absolute path");
  }
  p.cloud_pid = pid_of(j, "cloud_pid");
  if (p.cloud_pid < 0) return bad("cloud_pid");
  if (!j.contains("hosts") || !j["hosts"].is_array()) return bad("no hosts");
  if (j["hosts"].size() > static_cast<size_t>(kMaxCloudHosts)) return bad("too many hosts");
  for (const json& h : j["hosts"]) {
    if (!h.is_object()) return bad("a host is not an object");
    CloudHost c;
    if (!h.contains("id") || !h["id"].is_string() || !host::valid_host_id(h["id"]))
      return bad("a host's id");
    c.id = h["id"].get<std::string>();
    if (h.contains("zone") && h["zone"].is_string()) c.zone = h["zone"].get<std::string>();
    for (auto [key, out] : {std::pair{"dir", &c.dir}, std::pair{"socket", &c.socket},
                            std::pair{"token_file", &c.token_file}, std::pair{"log", &c.log},
                            std::pair{"pid_file", &c.pid_file}}) {
      if (!sane_path(h, key, p.state_dir))
        return bad(fmt::format("{}'s {} is not under {}", c.id, key, p.state_dir));
      *out = h[key].get<std::string>();
    }
    if (h.contains("cgroup_parent") && h["cgroup_parent"].is_string())
      c.cgroup_parent = h["cgroup_parent"].get<std::string>();
    c.pid = pid_of(h, "pid");
    if (c.pid < 0) return bad(c.id + "'s pid");
    c.port = h.contains("port") && h["port"].is_number_integer() ? h["port"].get<int>() : 0;
    if (c.port < 0 || c.port > 65535) return bad(c.id + "'s port");
    p.hosts.push_back(c);
  }
  return p;
}

std::string first_image_id(const std::string& xml) {
  static const std::string open = "<imageId>", close = "</imageId>";
  const size_t b = xml.find(open);
  if (b == std::string::npos) return "";
  const size_t start = b + open.size();
  const size_t e = xml.find(close, start);
  if (e == std::string::npos || e - start > 64) return "";
  const std::string id = xml.substr(start, e - start);
  // An id goes into a command line shown to the user: only what an AMI id is made of.
  const bool ok = id.rfind("ami-", 0) == 0 && id.size() > 4 &&
                  std::all_of(id.begin() + 4, id.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
                  });
  return ok ? id : "";
}

}  // namespace nimbus::cli
