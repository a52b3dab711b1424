// The `metadata` section of a VM's configuration: what the VMM's instance metadata service
// (IMDS, vmm/imds.h) serves to the guest at http://169.254.169.254/, and how:
//
//   "metadata": { "data": { "meta-data": { "instance-id": "i-0123",
//                                          "placement": { "availability-zone": "nimbus-west-1a" },
//                                          "public-keys": { "0=my-key": { "openssh-key":
//                                          "ssh-ed25519 ..." } } },
//                           "user-data": "IyEvYmluL3NoCmVjaG8gaGkK",
//                           "dynamic": { "instance-identity": { "document": "{\"instanceId\": ...}"
//                           } } },
//                 "http_tokens": "optional", "http_endpoint": "enabled", "hop_limit": 1 }
//
// `data` is the tree under /latest/: objects are directories, strings are leaves served as
// text. A directory entry "N=NAME" is listed as such and reached as N (EC2's public-keys:
// "0=my-key" lists as 0=my-key, its files are under public-keys/0/). The top-level
// "user-data" is base64 and served decoded, as raw bytes. The section absent: the VM has no
// metadata service (packets to 169.254.169.254 are dropped).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/json_fields.h"

namespace nimbus::config {

// The data tree, as compact JSON text, is at most this large; deeper than kMaxMetadataDepth
// directories or more than kMaxMetadataEntries entries is refused too.
constexpr size_t kMaxMetadataBytes = 256 * 1024;
constexpr unsigned kMaxMetadataDepth = 16;
constexpr size_t kMaxMetadataEntries = 10000;
// EC2's HttpPutResponseHopLimit range.
constexpr unsigned kMaxMetadataHopLimit = 64;

// EC2's MetadataOptions, with the JSON names of the section.
struct MetadataOptions {
  bool tokens_required = false;  // "http_tokens": "optional" | "required" (IMDSv2 only)
  bool endpoint_enabled = true;  // "http_endpoint": "enabled" | "disabled" (every request 403)
  unsigned hop_limit = 1;        // "hop_limit": 1..64, the IP TTL of the service's packets
  bool operator==(const MetadataOptions&) const = default;
};

struct MetadataConfig {
  MetadataOptions options;
  json data = json::object();
  bool operator==(const MetadataConfig&) const = default;
};

// The tree's rules (above): an object; names 1-255 bytes without '/', control characters,
// "." or ".."; no two "N=..." names with the same N in one directory (nor N and N=...);
// values strings or objects; "user-data" valid base64; within the size limits. Errors
// name the offending path.
Status check_metadata_data(const json& data);

// {"http_tokens", "http_endpoint", "hop_limit"}, each optional; applied over `into` (all or
// nothing). With `only_options` false, "data" is accepted (and ignored) too.
Status parse_metadata_options(const json& j, MetadataOptions& into, bool only_options = true);
// The whole section.
Result<MetadataConfig> parse_metadata(const json& j);
json to_json(const MetadataOptions& options);
json to_json(const MetadataConfig& metadata);

// Standard base64 (RFC 4648 section 4), padding optional, line breaks ignored; nullopt for
// anything else.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace nimbus::config
