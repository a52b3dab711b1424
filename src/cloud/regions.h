// The regions of a Nimbus Cloud (docs/cloud.md "Regions"): each region is its own control
// plane and store; every control plane is given the same list (nimbus-cloud --regions-file)
// so DescribeRegions anywhere names every region and the endpoint clients reach it at.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nimbus::cloud {

struct RegionEndpoint {
  std::string name;      // nimbus-west-1
  std::string endpoint;  // http://HOST:PORT (no trailing slash)
};

// Whether `name` can be a region's name: 1 to 64 of a-z, 0-9 and '-', starting with a letter.
bool valid_region_name(std::string_view name);

// A region's endpoint as the file gives it: an http:// or https:// URL naming a host, at most
// 256 characters, no spaces or control characters; returned without a trailing '/'.
Result<std::string> check_region_endpoint(std::string_view endpoint);

// The regions file's text, in either form (by its first non-blank character):
//  - JSON: {"regions": [{"name": "nimbus-east-1", "endpoint": "http://10.0.0.1:8773"}, ...]}
//    (or the list alone);
//  - lines: "NAME ENDPOINT" per region; blank lines and lines starting with '#' are skipped.
// Names are checked (valid_region_name, no duplicates), endpoints are http:// or https://
// URLs of at most 256 characters without spaces or control characters (a trailing '/' is
// dropped). At least one region, at most 200. kInvalidArgument saying where and why.
Result<std::vector<RegionEndpoint>> parse_regions(std::string_view text);

// Reads and parses a regions file (at most 1 MiB); errors name the file.
Result<std::vector<RegionEndpoint>> load_regions_file(const std::string& path);

}  // namespace nimbus::cloud
