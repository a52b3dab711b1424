#include "config/device_flags.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>
#include <optional>
#include <string_view>
#include <vector>

#include "common/mac.h"

namespace nimbus::config {

namespace {

bool forward_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

Result<uint16_t> parse_forward_port(const std::string& text, const std::string& spec,
                                    const char* which) {
  if (!forward_digits(text)) {
    return Status::error(
        fmt::format("--forward '{}': the {} port '{}' is not a number", spec, which, text));
  }
  if (text.size() > 5 || std::stoul(text) < 1 || std::stoul(text) > 65535) {
    return Status::error(
        fmt::format("--forward '{}': the {} port {} is out of range (1-65535)", spec, which, text));
  }
  return static_cast<uint16_t>(std::stoul(text));
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t i = s.find(sep, start);
    out.push_back(s.substr(start, i - start));
    if (i == std::string::npos) return out;
    start = i + 1;
  }
}

std::optional<uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// "[ADDR]:PORT" of hostfwd=WHOLE; an empty ADDR stays empty (the default).
Status parse_endpoint(std::string_view text, const char* what, const std::string& whole,
                      std::string& addr, uint16_t& port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::error(
        fmt::format("hostfwd={}: {} part '{}' is not [ADDR]:PORT", whole, what, text));
  }
  const std::string_view addr_text = text.substr(0, colon), port_text = text.substr(colon + 1);
  if (!addr_text.empty() && !parse_ipv4(addr_text)) {
    return Status::error(
        fmt::format("hostfwd={}: bad {} address '{}' (expected an IPv4 address like 127.0.0.1)",
                    whole, what, addr_text));
  }
  auto p = parse_port(port_text);
  if (!p)
    return Status::error(
        fmt::format("hostfwd={}: bad {} port '{}' (expected 1-65535)", whole, what, port_text));
  addr = std::string(addr_text);
  port = *p;
  return {};
}

// PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT
Result<PortForward> parse_hostfwd(const std::string& value) {
  PortForward f;
  const size_t colon = value.find(':');
  f.protocol = value.substr(0, colon);
  if (f.protocol != "tcp" && f.protocol != "udp") {
    return Status::error(
        fmt::format("hostfwd={}: unknown protocol '{}' (expected tcp or udp)", value, f.protocol));
  }
  const std::string shape =
      fmt::format("hostfwd={}: expected PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", value);
  if (colon == std::string::npos) return Status::error(shape);
  const std::vector<std::string> halves = split(value.substr(colon + 1), '-');
  if (halves.size() != 2) return Status::error(shape);
  if (Status s = parse_endpoint(halves[0], "host", value, f.host_address, f.host_port); !s.ok())
    return s;
  if (Status s = parse_endpoint(halves[1], "guest", value, f.guest_address, f.guest_port); !s.ok())
    return s;
  return f;
}

Status parse_user(const std::vector<std::string>& opts, NicSpec& nic) {
  bool have_net = false;
  for (const std::string& opt : opts) {
    const size_t eq = opt.find('=');
    const std::string key = opt.substr(0, eq);
    if (key != "hostfwd" && key != "net") {
      return Status::error(
          fmt::format("unknown option '{}' for user networking (expected hostfwd or net)", key));
    }
    if (eq == std::string::npos)
      return Status::error(fmt::format("option '{}' needs a value ({}=...)", opt, key));
    const std::string value = opt.substr(eq + 1);
    if (key == "net") {
      if (have_net) return Status::error("net= given twice");
      have_net = true;
      if (auto net = parse_user_network(value); !net.ok()) return net.status();
      nic.network = value;
    } else {
      auto f = parse_hostfwd(value);
      if (!f.ok()) return f.status();
      nic.forwards.push_back(*f);
    }
  }
  // net= may come after the forwards it applies to: check them against it at the end.
  return check_user_forwards(nic);
}

Status parse_switch(const std::vector<std::string>& opts, NicSpec& nic) {
  bool have_path = false;
  for (const std::string& opt : opts) {
    const size_t eq = opt.find('=');
    const std::string key = opt.substr(0, eq);
    if (key != "path")
      return Status::error(fmt::format("unknown option '{}' for a switch (expected path)", key));
    if (have_path) return Status::error("path= given twice");
    if (eq == std::string::npos || eq + 1 == opt.size()) {
      return Status::error("switch path is empty (switch,path=SOCKET)");
    }
    have_path = true;
    nic.switch_path = opt.substr(eq + 1);
  }
  if (!have_path) return Status::error("switch needs path=SOCKET");
  return {};
}

}  // namespace

Result<DiskSpec> parse_disk_flag(const std::string& text) {
  const std::vector<std::string> parts = split(text, ',');
  DiskSpec d;
  d.path = parts[0];
  if (d.path.empty()) {
    return Status::error("--disk '" + text +
                         "': no file given (--disk PATH[,format=raw|qcow2][,readonly])");
  }
  for (size_t i = 1; i < parts.size(); i++) {
    const std::string& p = parts[i];
    if (p == "readonly" || p == "readonly=on") {
      d.read_only = true;
    } else if (p == "format=raw" || p == "format=qcow2") {
      d.format = p.substr(7);
    } else if (p.rfind("format=", 0) == 0) {
      return Status::error("--disk '" + text + "': unknown format '" + p.substr(7) +
                           "' (raw or qcow2)");
    } else {
      return Status::error("--disk '" + text + "': unknown option '" + p +
                           "' (format=raw|qcow2, readonly)");
    }
  }
  return d;
}

Result<NicSpec> parse_net_flag(const std::string& text) {
  NicSpec nic;
  std::vector<std::string> parts;
  for (const std::string& p : split(text, ',')) {
    if (p.rfind("mac=", 0) == 0) {
      auto mac = parse_mac(p.substr(4));
      if (!mac.ok()) return Status::error("--net: " + mac.message());
      nic.mac = format_mac(*mac);
    } else {
      parts.push_back(p);
    }
  }
  if (parts.empty() || (parts.size() == 1 && parts[0].empty())) {
    return Status::error("--net '" + text + "': no backend given (user or switch)");
  }
  const std::vector<std::string> opts(parts.begin() + 1, parts.end());
  for (const std::string& opt : opts) {
    if (opt.empty()) return Status::error("--net '" + text + "': empty option (stray comma?)");
  }
  nic.mode = parts[0];
  Status s;
  if (nic.mode == "user") {
    s = parse_user(opts, nic);
  } else if (nic.mode == "switch") {
    s = parse_switch(opts, nic);
  } else if (nic.mode.empty()) {
    s = Status::error("missing network type (expected user or switch,path=SOCKET)");
  } else {
    s = Status::error("unknown network type '" + nic.mode + "' (expected user or switch)");
  }
  if (!s.ok()) return Status::error("--net: " + s.message());
  if (nic.mac.empty()) nic.mac = format_mac(random_mac());
  return nic;
}

Result<PortForward> parse_forward_flag(const std::string& text) {
  PortForward f;
  f.host_address = "0.0.0.0";
  std::string rest = text;
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    f.protocol = rest.substr(slash + 1);
    rest.resize(slash);
    if (f.protocol != "tcp" && f.protocol != "udp") {
      return Status::error(
          fmt::format("--forward '{}': the protocol is tcp or udp, not '{}'", text, f.protocol));
    }
  }
  // Split on ':' from the right: GUEST, HOST, then an optional address.
  const size_t last = rest.rfind(':');
  if (last == std::string::npos) {
    return Status::error(fmt::format(
        "--forward '{}' is not [ADDRESS:]HOST_PORT:GUEST_PORT[/udp] (e.g. 8080:80)", text));
  }
  const std::string guest = rest.substr(last + 1);
  rest.resize(last);
  std::string host = rest;
  if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(colon + 1);
    f.host_address = rest.substr(0, colon);
    in_addr addr{};
    if (f.host_address.empty() || inet_pton(AF_INET, f.host_address.c_str(), &addr) != 1) {
      return Status::error(fmt::format(
          "--forward '{}': '{}' is not an IPv4 address (e.g. 127.0.0.1)", text, f.host_address));
    }
  }
  auto hp = parse_forward_port(host, text, "host");
  if (!hp.ok()) return hp.status();
  auto gp = parse_forward_port(guest, text, "guest");
  if (!gp.ok()) return gp.status();
  f.host_port = *hp;
  f.guest_port = *gp;
  return f;
}

}  // namespace nimbus::config
