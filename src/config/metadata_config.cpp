#include "config/metadata_config.h"

#include <fmt/format.h>

#include <set>

namespace nimbus::config {

namespace {

constexpr const char* kWhat = "metadata";

// A name as the IMDS paths use it: one path segment.
bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '/') return false;
  }
  return true;
}

// What a name is reached by: "0=my-key" by "0".
std::string_view reached_as(const std::string& name) {
  return std::string_view(name).substr(0, name.find('='));
}

Status check_tree(const json& dir, const std::string& path, unsigned depth, size_t& entries) {
  if (depth > kMaxMetadataDepth) {
    return Status::error(fmt::format("metadata: data is deeper than {} directories at '{}'",
                                     kMaxMetadataDepth, path));
  }
  std::set<std::string_view> reached;
  for (const auto& [name, value] : dir.items()) {
    const std::string where = path + name;
    if (!valid_name(name)) {
      return Status::error(
          fmt::format("metadata: data: '{}' is not a valid name (1-255 bytes, no '/', no control "
                      "characters, not . or ..)",
                      where.substr(0, 300)));
    }
    if (reached_as(name).empty()) {
      return Status::error(
          fmt::format("metadata: data: '{}' must not start with '='", where.substr(0, 300)));
    }
    if (!reached.insert(reached_as(name)).second) {
      return Status::error(
          fmt::format("metadata: data: '{}' is reached by the same name as "
                      "another entry of its directory",
                      where.substr(0, 300)));
    }
    if (++entries > kMaxMetadataEntries) {
      return Status::error(
          fmt::format("metadata: data has more than {} entries", kMaxMetadataEntries));
    }
    if (value.is_object()) {
      if (Status s = check_tree(value, where + "/", depth + 1, entries); !s.ok()) return s;
    } else if (!value.is_string()) {
      return Status::error(
          fmt::format("metadata: data: '{}' must be a string (a file) or an object (a directory)",
                      where.substr(0, 300)));
    }
  }
  return {};
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t symbols = 0, padding = 0;
  for (char c : text) {
    if (c == '\n' || c == '\r') continue;
    if (c == '=') {
      padding++;
      continue;
    }
    const int v = base64_value(c);
    if (v < 0 || padding > 0) return std::nullopt;  // a bad character, or data after '='
    symbols++;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // A lone symbol in the last group holds no whole byte; padding completes a group of 4.
  if (symbols % 4 == 1) return std::nullopt;
  if (padding > 0 && (symbols + padding) % 4 != 0) return std::nullopt;
  if (padding > 2) return std::nullopt;
  // The bits left over must be zero (one text per byte string).
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

Status check_metadata_data(const json& data) {
  if (!data.is_object()) return Status::error("metadata: data must be a JSON object");
  size_t entries = 0;
  if (Status s = check_tree(data, "", 0, entries); !s.ok()) return s;
  if (data.contains("user-data")) {
    const json& u = data.at("user-data");
    if (!u.is_string() || !decode_base64(u.get_ref<const std::string&>())) {
      return Status::error("metadata: data: 'user-data' must be base64 text");
    }
  }
  // Within the limit as the API and the config file carry it.
  if (data.dump(-1, ' ', false, json::error_handler_t::replace).size() > kMaxMetadataBytes) {
    return Status::error(
        fmt::format("metadata: data is larger than {} bytes as JSON", kMaxMetadataBytes));
  }
  return {};
}

Status parse_metadata_options(const json& j, MetadataOptions& into, bool only_options) {
  std::vector<std::string> fields = {"http_tokens", "http_endpoint", "hop_limit"};
  if (!only_options) fields.insert(fields.begin(), "data");
  if (Status s = check_object(j, kWhat, fields); !s.ok()) return s;
  MetadataOptions o = into;
  std::string tokens = o.tokens_required ? "required" : "optional";
  std::string endpoint = o.endpoint_enabled ? "enabled" : "disabled";
  uint64_t hops = o.hop_limit;
  if (Status s = get_string(j, "http_tokens", kWhat, tokens, false, 64); !s.ok()) return s;
  if (tokens != "optional" && tokens != "required") {
    return Status::error(fmt::format(
        "metadata: 'http_tokens' must be optional or required, not '{}'", tokens.substr(0, 64)));
  }
  if (Status s = get_string(j, "http_endpoint", kWhat, endpoint, false, 64); !s.ok()) return s;
  if (endpoint != "enabled" && endpoint != "disabled") {
    return Status::error(fmt::format(
        "metadata: 'http_endpoint' must be enabled or disabled, not '{}'", endpoint.substr(0, 64)));
  }
  if (Status s = get_uint(j, "hop_limit", kWhat, 1, kMaxMetadataHopLimit, hops, false); !s.ok())
    return s;
  o.tokens_required = tokens == "required";
  o.endpoint_enabled = endpoint == "enabled";
  o.hop_limit = static_cast<unsigned>(hops);
  into = o;
  return {};
}

Result<MetadataConfig> parse_metadata(const json& j) {
  MetadataConfig m;
  if (Status s = parse_metadata_options(j, m.options, false); !s.ok()) return s;
  if (j.contains("data")) {
    if (Status s = check_metadata_data(j.at("data")); !s.ok()) return s;
    m.data = j.at("data");
  }
  return m;
}

json to_json(const MetadataOptions& o) {
  return {{"http_tokens", o.tokens_required ? "required" : "optional"},
          {"http_endpoint", o.endpoint_enabled ? "enabled" : "disabled"},
          {"hop_limit", o.hop_limit}};
}

json to_json(const MetadataConfig& m) {
  json j = to_json(m.options);
  j["data"] = m.data;
  return j;
}

}  // namespace nimbus::config
