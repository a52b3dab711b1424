// `nimbus cloud regions` and `--region NAME|auto` of the verbs that talk to a region
// (docs/cloud-cli.md): the cloud's regions as any region's control plane lists them (GET
// /nimbus/v1/regions, the JSON twin of DescribeRegions), each endpoint's round-trip time,
// and the choice of the closest. The pure parts (median, summary, order, choice, tables,
// the export lines) are separate from the measuring, for the tests.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::cli {

struct CloudRegion {
  std::string name, endpoint;
};

// The list in a GET /nimbus/v1/regions reply ({"region": ..., "regions": [{"name",
// "endpoint"}]}): names checked as the control plane checks them, endpoints http(s) URLs;
// kInternal naming what is wrong with a reply that is not that.
Result<std::vector<CloudRegion>> regions_from_json(const nlohmann::json& reply);

// The samples of one region: the time of a TCP connect to its endpoint, and of a small
// request (GET /nimbus/v1/health) on that connection, from sending it to its whole reply.
struct RegionLatency {
  CloudRegion region;
  std::vector<double> connect_ms, request_ms;  // one of each per sample that succeeded
  int failures = 0;
  std::string error;  // why the last failed sample failed
};

// The median of `v` (the mean of the middle two for an even count); nullopt when empty.
std::optional<double> median(std::vector<double> v);

struct LatencySummary {
  bool reachable = false;                        // at least one sample succeeded
  double median_ms = 0, min_ms = 0, max_ms = 0;  // of request_ms
  double connect_median_ms = 0;                  // of connect_ms
  int samples = 0, failures = 0;
};
LatencySummary summarize(const RegionLatency& r);

// Closest first: reachable regions by their request median (then connect median, then
// name), the unreachable ones last by name.
void sort_by_latency(std::vector<RegionLatency>& regions);

// The reachable region with the smallest request median (ties: connect median, then
// name); nullopt when none answered.
std::optional<size_t> closest_region(const std::vector<RegionLatency>& regions);

// The region called `name` in `list`; kInvalidArgument naming the regions there are.
Result<CloudRegion> find_region(const std::vector<CloudRegion>& list, const std::string& name);

// "5.3 ms", "120 ms" (three significant digits at most, never below 0.01 ms).
std::string format_ms(double ms);

// Region Endpoint (`asked`: the region whose endpoint answered, marked with *).
std::string format_cloud_regions(const std::vector<CloudRegion>& list, const std::string& asked);
// Region Endpoint Median Min Max Connect Samples, in the given order.
std::string format_region_latencies(const std::vector<RegionLatency>& regions);
// The lines that point the aws CLI at `r`, as `nimbus cloud up` prints them.
std::string format_region_export(const CloudRegion& r);
// `regions --json`: {"region": asked, "regions": [{"name", "endpoint", "latency"?}],
// "closest"?: name}.
nlohmann::json regions_json(const std::string& asked, const std::vector<CloudRegion>& list,
                            const std::vector<RegionLatency>* latencies);

// --- measuring (talks to the network)

// Asks `url`'s control plane for the regions (no credential: the list is public);
// `asked` gets the region that answered.
Result<std::vector<CloudRegion>> fetch_regions(const std::string& url, std::string* asked);

// `samples` rounds; each round times one connect and one GET /nimbus/v1/health to every
// region in turn (interleaved, so a busy moment of this machine spreads over all of them).
// A sample fails when it takes over `timeout_ms`, the reply is not 200, or the reply is
// another region's; a region is not tried again after two failures. https:// endpoints are
// not measured (their error says so).
std::vector<RegionLatency> measure_regions(const std::vector<CloudRegion>& list, int samples,
                                           int timeout_ms = 2000);

// --region of a verb: NAME, or "auto" for the closest (measured with `samples` each).
// What was measured goes to `latency` when given.
Result<CloudRegion> choose_region(const std::string& url, const std::string& region, int samples,
                                  std::optional<LatencySummary>* latency = nullptr);

// `nimbus cloud regions`: lists the regions `url` names; with `latency` measures them and
// names the closest; with `region` (NAME or auto) prints that region's export lines. The
// exit status: 0, 1 failed, 2 bad arguments.
int cloud_regions_verb(const std::string& url, const std::string& region, bool latency, int samples,
                       bool json);

}  // namespace nimbus::cli
