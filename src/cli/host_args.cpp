#include "cli/host_args.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include "common/size.h"

namespace nimbus::cli {

namespace {

bool all_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

Result<uint16_t> parse_port(const std::string& text, const std::string& spec, const char* which) {
  if (!all_digits(text)) {
    return Status::error(fmt::format("--forward '{}': the {} port '{}' is not a number", spec, which, text));
  }
  if (text.size() > 5 || std::stoul(text) < 1 || std::stoul(text) > 65535) {
    return Status::error(fmt::format("--forward '{}': the {} port {} is out of range (1-65535)", spec, which, text));
  }
  return static_cast<uint16_t>(std::stoul(text));
}

}  // namespace

Result<ForwardSpec> parse_forward(const std::string& text) {
  ForwardSpec f;
  std::string rest = text;
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    f.protocol = rest.substr(slash + 1);
    rest.resize(slash);
    if (f.protocol != "tcp" && f.protocol != "udp") {
      return Status::error(fmt::format("--forward '{}': the protocol is tcp or udp, not '{}'", text, f.protocol));
    }
  }
  // Split on ':' from the right: GUEST, HOST, then an optional address.
  const size_t last = rest.rfind(':');
  if (last == std::string::npos) {
    return Status::error(fmt::format("--forward '{}' is not [ADDRESS:]HOST_PORT:GUEST_PORT[/udp] (e.g. 8080:80)", text));
  }
  const std::string guest = rest.substr(last + 1);
  rest.resize(last);
  std::string host = rest;
  if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(colon + 1);
    f.host_address = rest.substr(0, colon);
    in_addr addr{};
    if (f.host_address.empty() || inet_pton(AF_INET, f.host_address.c_str(), &addr) != 1) {
      return Status::error(fmt::format("--forward '{}': '{}' is not an IPv4 address (e.g. 127.0.0.1)", text, f.host_address));
    }
  }
  auto hp = parse_port(host, text, "host");
  if (!hp.ok()) return hp.status();
  auto gp = parse_port(guest, text, "guest");
  if (!gp.ok()) return gp.status();
  f.host_port = *hp;
  f.guest_port = *gp;
  return f;
}

nlohmann::json forward_to_json(const ForwardSpec& f) {
  return {{"host_port", f.host_port}, {"guest_port", f.guest_port}, {"protocol", f.protocol}, {"host_address", f.host_address}};
}

Status check_name(const std::string& name, const std::string& what) {
  if (name.empty()) return Status::error(fmt::format("the {} is empty", what));
  if (name.size() > 63) return Status::error(fmt::format("{} '{}' is too long ({} characters; at most 63)", what, name, name.size()));
  if (name[0] < 'a' || name[0] > 'z') {
    return Status::error(fmt::format("{} '{}' must start with a lowercase letter", what, name));
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return Status::error(fmt::format("{} '{}' may only contain a-z, 0-9 and '-'", what, name));
    }
  }
  return Status();
}

Result<uint64_t> parse_mib(const std::string& text) {
  uint64_t mib;
  if (all_digits(text)) {
    if (text.size() > 12) return Status::error(fmt::format("size '{}' is too large", text));
    mib = std::stoull(text);
  } else {
    if (text.find_first_of(".,") != std::string::npos) {
      return Status::error(fmt::format("size '{}': use whole numbers (e.g. 1536M rather than 1.5G)", text));
    }
    auto bytes = parse_size(text);
    if (!bytes.ok()) return Status::error(bytes.message() + "; a plain number means MiB");
    if (*bytes % (1ull << 20) != 0) return Status::error(fmt::format("size '{}' is not a whole number of MiB", text));
    mib = *bytes >> 20;
  }
  if (mib == 0) return Status::error(fmt::format("size '{}' is zero", text));
  return mib;
}

}  // namespace nimbus::cli
