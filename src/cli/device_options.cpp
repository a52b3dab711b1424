#include "cli/device_options.h"

#include <cstdio>
#include <vector>

namespace nimbus::cli {

namespace {
std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t i = s.find(sep, start);
    out.push_back(s.substr(start, i - start));
    if (i == std::string::npos) return out;
    start = i + 1;
  }
}
}  // namespace

Result<backends::DiskOptions> parse_disk_option(const std::string& text) {
  std::vector<std::string> parts = split(text, ',');
  backends::DiskOptions o;
  o.path = parts[0];
  if (o.path.empty()) return Status::error("--disk '" + text + "': no file given (--disk PATH[,format=raw|qcow2][,readonly])");
  for (size_t i = 1; i < parts.size(); i++) {
    const std::string& p = parts[i];
    if (p == "readonly" || p == "readonly=on") {
      o.read_only = true;
    } else if (p == "format=raw") {
      o.format = backends::DiskFormat::kRaw;
    } else if (p == "format=qcow2") {
      o.format = backends::DiskFormat::kQcow2;
    } else if (p.rfind("format=", 0) == 0) {
      return Status::error("--disk '" + text + "': unknown format '" + p.substr(7) + "' (raw or qcow2)");
    } else {
      return Status::error("--disk '" + text + "': unknown option '" + p + "' (format=raw|qcow2, readonly)");
    }
  }
  return o;
}

Result<NetOption> parse_net_option(const std::string& text) {
  NetOption o;
  std::string spec;
  for (const std::string& p : split(text, ',')) {
    if (p.rfind("mac=", 0) == 0) {
      auto mac = parse_mac(p.substr(4));
      if (!mac.ok()) return Status::error("--net: " + mac.message());
      o.mac = *mac;
      o.mac_given = true;
    } else {
      spec += spec.empty() ? p : "," + p;
    }
  }
  if (spec.empty()) return Status::error("--net '" + text + "': no backend given (user or switch)");
  o.spec = spec;
  return o;
}

}  // namespace nimbus::cli
