// The instance metadata service's HTTP behaviour (EC2's IMDS, v1 and v2), as a pure function
// of a request, the service's state and the time; imds_server.h serves it to the guest.
//
//   PUT /latest/api/token   with "X-aws-ec2-metadata-token-ttl-seconds: 1..21600": a new
//                           token (text), valid that long; the TTL is echoed in that header.
//                           A missing or bad TTL is 400; a PUT carrying X-Forwarded-For is
//                           403 (it came through a proxy: EC2 refuses those).
//   GET  PATH               with "X-aws-ec2-metadata-token: TOKEN": served if the token is
//                           valid, else 401. Without the header: served when http_tokens is
//                           optional (IMDSv1), 401 when required.
//   anything                403 while http_endpoint is disabled (EC2's answer then).
//   other methods           405; PUT elsewhere, GET of the token path 405 too.
//
// Paths: "/" lists the API versions (each an alias of latest, as cloud-init probes them);
// "/latest/" lists the data's top level (EC2: "dynamic", "meta-data", "user-data", no
// trailing slash); "/latest/user-data" is the base64 "user-data" decoded (raw bytes; 404
// when absent); below, objects are directories listed one entry per line, sub-directories
// with a trailing '/', no newline at the end; strings are files. A trailing '/' on a file
// is ignored (botocore asks for placement/availability-zone/). An entry "N=NAME" is listed
// so (no trailing '/' even for a directory, as EC2's public-keys/ lists "0=my-key") and
// reached as N (public-keys/0/openssh-key). Anything else is 404.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/metadata_config.h"

namespace nimbus::vmm {

using ImdsClock = std::chrono::steady_clock;

constexpr unsigned kMaxTokenTtlSeconds = 21600;
// Live tokens kept at most; beyond, the one that expires first goes (a guest minting
// tokens in a loop costs bounded memory).
constexpr size_t kMaxImdsTokens = 1024;

struct ImdsRequest {
  std::string method;
  std::string path;                                 // decoded, without the query string
  std::multimap<std::string, std::string> headers;  // names in lower case

  bool has(const std::string& name) const { return headers.count(name) > 0; }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct ImdsReply {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;
};

struct ImdsState {
  config::MetadataConfig metadata;
  std::unordered_map<std::string, ImdsClock::time_point> tokens;  // token -> expiry
  // Makes a new token (imds_server.cpp: 32 random bytes as base64url); tests give their own.
  std::function<std::string()> new_token;
};

ImdsReply handle_imds(const ImdsRequest& request, ImdsState& state, ImdsClock::time_point now);

// The error reply EC2 sends ("404 - Not Found" as a small XHTML page).
ImdsReply imds_error(int status);

}  // namespace nimbus::vmm
