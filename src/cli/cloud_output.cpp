#include "cli/cloud_output.h"

#include <fmt/format.h>

#include <algorithm>

#include "cli/host_output.h"

namespace nimbus::cli {

using json = nlohmann::json;

namespace {

constexpr const char* kNone = "--";

const json& member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// Text from the network goes to a terminal: no control characters, bounded length.
std::string clean(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 80))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out.empty() ? kNone : out;
}

std::string str(const json& j, const char* key) { return clean(json_str(j, key)); }

std::string whole(double v) { return fmt::format("{}", static_cast<long long>(v)); }

// "ALLOCATED/CAPACITY" of one resource of nimbusd's host object.
std::string alloc_of(const json& host, const char* resource, bool mib) {
  const json& r = member(host, resource);
  double allocated, capacity;
  if (!json_num(r, "allocated", allocated) || !json_num(r, "capacity", capacity)) return kNone;
  return mib ? format_mib(allocated) + "/" + format_mib(capacity)
             : whole(allocated) + "/" + whole(capacity);
}

bool terminated(const json& instance) { return json_str(instance, "state") == "terminated"; }

}  // namespace

std::string cloud_host_state(const json& host) {
  const json& draining = member(host, "draining");
  if (draining.is_boolean() && draining.get<bool>()) return "draining";
  const json& alive = member(host, "alive");
  return alive.is_boolean() && alive.get<bool>() ? "up" : "down";
}

std::string format_cloud_hosts(const json& hosts) {
  Table t({"ID", "Zone", "State", "CPUs", "Memory", "Disk", "Instances"});
  if (hosts.is_array()) {
    for (const json& h : hosts) {
      const json& report = member(h, "host");
      const json& instances = member(h, "instances");
      t.add_row({str(h, "id"), str(h, "zone"), cloud_host_state(h), alloc_of(report, "cpus", false),
                 alloc_of(report, "memory_mib", true), alloc_of(report, "disk_mib", true),
                 instances.is_object() ? std::to_string(instances.size()) : kNone});
    }
  }
  return t.render();
}

json cloud_zones(const json& zones, const json& hosts, const json& instances) {
  json rows = json::array();
  const auto row = [&rows](const std::string& name) -> json& {
    for (json& r : rows)
      if (r["zone"] == name) return r;
    rows.push_back({{"zone", name}, {"hosts", 0}, {"up", 0}, {"instances", 0}});
    return rows.back();
  };
  if (zones.is_array()) {
    for (const json& z : zones)
      if (z.is_string()) row(clean(z.get<std::string>()));
  }
  if (hosts.is_array()) {
    for (const json& h : hosts) {
      json& r = row(str(h, "zone"));
      r["hosts"] = r["hosts"].get<int>() + 1;
      if (cloud_host_state(h) == "up") r["up"] = r["up"].get<int>() + 1;
    }
  }
  if (instances.is_array()) {
    for (const json& i : instances) {
      if (terminated(i)) continue;
      json& r = row(str(i, "zone"));
      r["instances"] = r["instances"].get<int>() + 1;
    }
  }
  return rows;
}

std::string format_cloud_zones(const json& rows) {
  Table t({"Zone", "Hosts", "Up", "Instances"});
  if (rows.is_array()) {
    for (const json& r : rows) {
      double hosts = 0, up = 0, instances = 0;
      json_num(r, "hosts", hosts);
      json_num(r, "up", up);
      json_num(r, "instances", instances);
      t.add_row({str(r, "zone"), whole(hosts), whole(up), whole(instances)});
    }
  }
  return t.render();
}

std::string cloud_move_state(const json& instance) {
  const std::string to = json_str(instance, "move_to");
  if (!to.empty()) {
    const std::string where = to == "*" ? "another host" : clean(to);
    return json_str(instance, "move_from").empty() ? "queued to " + where : "moving to " + where;
  }
  const json& last = member(instance, "last_move");
  double id = 0;
  if (!json_num(last, "id", id) || id <= 0 || json_str(last, "at").empty()) return kNone;
  const json& ok = member(last, "ok");
  if (ok.is_boolean() && ok.get<bool>()) return "moved from " + str(last, "from");
  return "move failed: " + str(last, "error");
}

std::string format_move_result(const json& instance) {
  const json& last = member(instance, "last_move");
  const json& ok = member(last, "ok");
  std::string out =
      fmt::format("{}  {} -> {}  ", str(instance, "id"), str(last, "from"), str(last, "to"));
  if (!ok.is_boolean() || !ok.get<bool>())
    return out + "failed: " + clean(json_str(last, "error")) + "\n";
  double downtime = -1, total = -1;
  json_num(last, "downtime_ms", downtime);
  json_num(last, "total_ms", total);
  out += downtime >= 0 ? fmt::format("downtime {:.1f} ms", downtime) : "downtime unknown";
  if (total >= 0) out += fmt::format(", {:.1f} s in all", total / 1000);
  const std::string old_ip = json_str(last, "old_public_ip"),
                    new_ip = json_str(last, "new_public_ip");
  if (!new_ip.empty() && new_ip != old_ip)
    out += ", public IP " + clean(old_ip) + " -> " + clean(new_ip);
  return out + "\n";
}

std::string format_cloud_instances(const json& instances) {
  Table t({"ID", "State", "Type", "Zone", "Host", "Private IP", "Public IP", "Move"});
  if (instances.is_array()) {
    for (const json& i : instances) {
      t.add_row({str(i, "id"), str(i, "state"), str(i, "instance_type"), str(i, "zone"),
                 str(i, "host"), str(i, "private_ip"), str(i, "public_ip"), cloud_move_state(i)});
    }
  }
  return t.render();
}

std::string format_cloud_up(const CloudPlan& p, const std::string& image_id) {
  std::string zones;
  for (const std::string& z : p.zones) zones += (zones.empty() ? "" : ", ") + z;
  std::string out = fmt::format("Nimbus Cloud is up: region {}, zone{} {}, {} host{}\n", p.region,
                                p.zones.size() == 1 ? "" : "s", zones, p.hosts.size(),
                                p.hosts.size() == 1 ? "" : "s");
  out += fmt::format("  endpoint  {}\n", p.url);
  if (p.credentials.empty()) {
    out += fmt::format(
        "  export AWS_ACCESS_KEY_ID=nimbus AWS_SECRET_ACCESS_KEY=nimbus AWS_DEFAULT_REGION={}\n",
        p.region);
    out += fmt::format(
        "  web console {}/console (signing in needs keys: `nimbus cloud up --credentials FILE`)\n",
        p.url);
  } else {
    out += fmt::format(
        "  export AWS_ACCESS_KEY_ID=KEY AWS_SECRET_ACCESS_KEY=SECRET AWS_DEFAULT_REGION={} (a key "
        "of {})\n",
        p.region, p.credentials);
    out +=
        fmt::format("  web console {}/console (sign in with a key of {})\n", p.url, p.credentials);
  }
  out += fmt::format(
      "  aws --endpoint-url {} ec2 run-instances --image-id {} --instance-type t3.micro\n", p.url,
      image_id.empty() ? "AMI_ID" : image_id);
  if (image_id.empty())
    out += fmt::format("  (AMI_ID: see aws --endpoint-url {} ec2 describe-images)\n", p.url);
  out += fmt::format(
      "State and logs in {}; see the hosts with `nimbus cloud hosts{}`, stop it "
      "with `nimbus cloud down{}`.\n",
      p.state_dir, p.state_dir == kDefaultCloudStateDir ? "" : " --state-dir " + p.state_dir,
      p.state_dir == kDefaultCloudStateDir ? "" : " --state-dir " + p.state_dir);
  return out;
}

}  // namespace nimbus::cli
