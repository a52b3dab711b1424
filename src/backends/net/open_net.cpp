// --net parsing. Strict on purpose: a typo in a port forward should stop the VM from
// starting, not silently leave a service unreachable.
#include <arpa/inet.h>

#include <charconv>
#include <string_view>

#include "backends/net/net_backend.h"
#include "backends/net/slirp_backend.h"
#include "backends/net/switch_backend.h"

namespace nimbus::backends {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// Dotted quad only (inet_pton refuses "10.2" and other inet_aton shorthands).
std::optional<uint32_t> parse_ipv4(std::string_view text) {
  in_addr addr{};
  if (inet_pton(AF_INET, std::string(text).c_str(), &addr) != 1) return std::nullopt;
  return ntohl(addr.s_addr);
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

uint32_t prefix_mask(int prefix_len) {
  return prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len);
}

// "[ADDR]:PORT"; an empty ADDR leaves `addr` unset.
Status parse_endpoint(std::string_view text, std::string_view what, std::string_view whole,
                      std::optional<uint32_t>& addr, uint16_t& port) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::error("--net: hostfwd=" + std::string(whole) + ": " + std::string(what) +
                         " part '" + std::string(text) + "' is not [ADDR]:PORT");
  }
  std::string_view addr_text = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (!addr_text.empty()) {
    addr = parse_ipv4(addr_text);
    if (!addr) {
      return Status::error("--net: hostfwd=" + std::string(whole) + ": bad " + std::string(what) +
                           " address '" + std::string(addr_text) +
                           "' (expected an IPv4 address like 127.0.0.1)");
    }
  }
  auto parsed_port = parse_port(port_text);
  if (!parsed_port) {
    return Status::error("--net: hostfwd=" + std::string(whole) + ": bad " + std::string(what) +
                         " port '" + std::string(port_text) + "' (expected 1-65535)");
  }
  port = *parsed_port;
  return Status();
}

struct PendingForward {
  HostForward forward;
  std::optional<uint32_t> guest_addr;
  std::string text;
};

// PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT
Result<PendingForward> parse_hostfwd(std::string_view value) {
  PendingForward pending;
  pending.text = std::string(value);
  size_t colon = value.find(':');
  std::string_view proto = value.substr(0, colon);
  if (proto == "tcp") {
    pending.forward.udp = false;
  } else if (proto == "udp") {
    pending.forward.udp = true;
  } else {
    return Status::error("--net: hostfwd=" + pending.text + ": unknown protocol '" +
                         std::string(proto) + "' (expected tcp or udp)");
  }
  if (colon == std::string_view::npos) {
    return Status::error("--net: hostfwd=" + pending.text +
                         ": expected PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT");
  }
  std::string_view rest = value.substr(colon + 1);
  auto halves = split(rest, '-');
  if (halves.size() != 2) {
    return Status::error("--net: hostfwd=" + pending.text +
                         ": expected PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT");
  }
  std::optional<uint32_t> host_addr;
  if (Status s = parse_endpoint(halves[0], "host", value, host_addr, pending.forward.host_port);
      !s.ok()) {
    return s;
  }
  pending.forward.host_addr = host_addr.value_or(0x7f000001);  // 127.0.0.1
  if (Status s =
          parse_endpoint(halves[1], "guest", value, pending.guest_addr, pending.forward.guest_port);
      !s.ok()) {
    return s;
  }
  return pending;
}

Status parse_network(std::string_view value, UserNetOptions& options) {
  std::string bad = "--net: net=" + std::string(value) + ": ";
  size_t slash = value.find('/');
  if (slash == std::string_view::npos) {
    return Status::error(bad + "expected ADDR/PREFIX like 10.0.2.0/24");
  }
  auto addr = parse_ipv4(value.substr(0, slash));
  if (!addr)
    return Status::error(bad + "bad address '" + std::string(value.substr(0, slash)) + "'");
  std::string_view len_text = value.substr(slash + 1);
  int len = -1;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  // The network must hold .2, .3 and the DHCP range starting at .15.
  if (len_text.empty() || ec != std::errc() || end != len_text.data() + len_text.size() ||
      len < 8 || len > 27) {
    return Status::error(bad + "bad prefix length '" + std::string(len_text) + "' (expected 8-27)");
  }
  if ((*addr & ~prefix_mask(len)) != 0) {
    return Status::error(bad + "host bits set (did you mean " +
                         format_ipv4(*addr & prefix_mask(len)) + "/" + std::to_string(len) + "?)");
  }
  options.network = *addr;
  options.prefix_len = len;
  return Status();
}

Result<NetSpec> parse_user(const std::vector<std::string_view>& opts) {
  UserNetOptions options;
  std::vector<PendingForward> pending;
  bool have_net = false;
  for (std::string_view opt : opts) {
    size_t eq = opt.find('=');
    std::string_view key = opt.substr(0, eq);
    if (key != "hostfwd" && key != "net") {
      return Status::error("--net: unknown option '" + std::string(key) +
                           "' for user networking (expected hostfwd or net)");
    }
    if (eq == std::string_view::npos) {
      return Status::error("--net: option '" + std::string(opt) + "' needs a value (" +
                           std::string(key) + "=...)");
    }
    std::string_view value = opt.substr(eq + 1);
    if (key == "net") {
      if (have_net) return Status::error("--net: net= given twice");
      have_net = true;
      if (Status s = parse_network(value, options); !s.ok()) return s;
    } else {
      auto fwd = parse_hostfwd(value);
      if (!fwd.ok()) return fwd.status();
      pending.push_back(std::move(*fwd));
    }
  }
  uint32_t mask = prefix_mask(options.prefix_len);
  for (PendingForward& p : pending) {
    p.forward.guest_addr = p.guest_addr.value_or(options.network | 15);
    if ((p.forward.guest_addr & mask) != options.network) {
      return Status::error("--net: hostfwd=" + p.text + ": guest address " +
                           format_ipv4(p.forward.guest_addr) + " is outside the user network " +
                           format_ipv4(options.network) + "/" + std::to_string(options.prefix_len));
    }
    for (const HostForward& other : options.forwards) {
      if (other.udp == p.forward.udp && other.host_port == p.forward.host_port &&
          other.host_addr == p.forward.host_addr) {
        return Status::error("--net: hostfwd=" + p.text + ": host port " +
                             std::to_string(p.forward.host_port) + " is forwarded twice");
      }
    }
    options.forwards.push_back(p.forward);
  }
  return NetSpec(std::move(options));
}

Result<NetSpec> parse_switch(const std::vector<std::string_view>& opts) {
  SwitchNetOptions options;
  bool have_path = false;
  for (std::string_view opt : opts) {
    size_t eq = opt.find('=');
    std::string_view key = opt.substr(0, eq);
    if (key != "path") {
      return Status::error("--net: unknown option '" + std::string(key) +
                           "' for a switch (expected path)");
    }
    if (have_path) return Status::error("--net: path= given twice");
    if (eq == std::string_view::npos || eq + 1 == opt.size()) {
      return Status::error("--net: switch path is empty (switch,path=SOCKET)");
    }
    have_path = true;
    options.path = std::string(opt.substr(eq + 1));
  }
  if (!have_path) return Status::error("--net: switch needs path=SOCKET");
  return NetSpec(std::move(options));
}

}  // namespace

std::string format_ipv4(uint32_t addr) {
  return std::to_string(addr >> 24) + "." + std::to_string((addr >> 16) & 0xff) + "." +
         std::to_string((addr >> 8) & 0xff) + "." + std::to_string(addr & 0xff);
}

Result<NetSpec> parse_net_spec(const std::string& spec) {
  auto parts = split(spec, ',');
  std::string_view type = parts[0];
  std::vector<std::string_view> opts(parts.begin() + 1, parts.end());
  for (std::string_view opt : opts) {
    if (opt.empty()) return Status::error("--net '" + spec + "': empty option (stray comma?)");
  }
  if (type == "user") return parse_user(opts);
  if (type == "switch") return parse_switch(opts);
  if (type.empty()) {
    return Status::error("--net: missing network type (expected user or switch,path=SOCKET)");
  }
  return Status::error("--net: unknown network type '" + std::string(type) +
                       "' (expected user or switch)");
}

Result<std::unique_ptr<NetBackend>> open_net(const std::string& spec) {
  auto parsed = parse_net_spec(spec);
  if (!parsed.ok()) return parsed.status();
  if (auto* user = std::get_if<UserNetOptions>(&*parsed)) {
    auto backend = SlirpBackend::create(*user);
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<NetBackend>(std::move(*backend));
  }
  auto backend = SwitchBackend::create(std::get<SwitchNetOptions>(*parsed).path);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<NetBackend>(std::move(*backend));
}

}  // namespace nimbus::backends
