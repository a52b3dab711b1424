// What `nimbus cloud up` starts on this machine (docs/cloud-cli.md): one control plane
// (nimbus-cloud) and N hosts (nimbusd), each with its own state directory, socket, TCP
// port, token and cgroup parent. The plan is made from the flags before anything starts
// (so a bad flag changes nothing), filled in as processes start, and kept as
// STATE_DIR/cloud.json for `down` and the operator's views.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::cli {

inline constexpr const char* kDefaultCloudStateDir = "/var/lib/nimbus-cloud";
inline constexpr const char* kDefaultCloudListen = "127.0.0.1:8773";
inline constexpr int kMaxCloudHosts = 32;

// The flags of `cloud up`, as given.
struct CloudUpSettings {
  std::string state_dir = kDefaultCloudStateDir;
  std::string listen = kDefaultCloudListen;
  std::string region = "nimbus-west-1";
  std::string zones = "a";  // letters (a,b) or full zone names
  std::string strategy = "spread";
  int hosts = 1;
  std::string host_memory;  // "" = nimbusd detects it
  int host_cpus = 0;        // 0 = nimbusd detects them
  std::string credentials;  // nimbus-cloud --credentials FILE ("" = any key works)
};

struct CloudHost {
  std::string id, zone;
  std::string dir, socket, token_file, log, pid_file, cgroup_parent;
  int port = 0;  // nimbusd's TCP API on 127.0.0.1 (chosen when it starts)
  int pid = 0;
};

struct CloudPlan {
  std::string state_dir;  // absolute
  std::string listen;     // the control plane's --listen
  std::string url;        // where this machine reaches it: http://127.0.0.1:8773
  std::string region, strategy;
  std::vector<std::string> zones;  // full names
  uint64_t host_memory_mib = 0;    // 0: detected
  int host_cpus = 0;               // 0: detected
  std::string credentials;         // absolute path, "" none (the web console needs one)
  int cloud_pid = 0;
  std::vector<CloudHost> hosts;

  std::string record_file() const { return state_dir + "/cloud.json"; }
  std::string cloud_pid_file() const { return state_dir + "/cloud.pid"; }
  std::string cloud_log() const { return state_dir + "/cloud.log"; }
  std::string join_token_file() const { return state_dir + "/join-token"; }
};

// Checks the flags (kInvalidArgument naming the flag) and lays out the hosts: host-1..N,
// spread over the zones round-robin.
Result<CloudPlan> plan_cloud(const CloudUpSettings& settings);

// The cgroup parent of a host's VMs: nimbus-cloud-host-N for the default state directory;
// otherwise with a hash of the directory in it, because nimbusd empties every group under
// its parent that is not one of its VMs, and two clouds on one machine must not share one.
std::string cgroup_parent_for(const std::string& state_dir, const std::string& host_id);

// The arguments (after the program) of nimbus-cloud and of one host's nimbusd.
std::vector<std::string> cloud_argv(const CloudPlan& plan);
std::vector<std::string> host_argv(const CloudPlan& plan, const CloudHost& host);

// STATE_DIR/cloud.json. Reading checks what `down` will act on: pids and paths must be
// sane (a damaged record is kInvalidArgument, never a reason to signal pid 0 or -1).
nlohmann::json to_json(const CloudPlan& plan);
Result<CloudPlan> cloud_plan_from_json(const nlohmann::json& j);

// The first <imageId> of an EC2 DescribeImages reply ("" when there is none).
std::string first_image_id(const std::string& xml);

}  // namespace nimbus::cli
