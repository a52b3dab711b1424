// Human output of `nimbus cloud`: the operator's tables made from the control plane's JSON
// (GET /nimbus/v1/hosts, /nimbus/v1/instances, /nimbus/v1/health) and what `up` prints.
// Missing or mistyped fields show as "--", never throw.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cli/cloud_plan.h"

namespace nimbus::cli {

// up, down or draining.
std::string cloud_host_state(const nlohmann::json& host);

// ID Zone State CPUs Memory Disk Instances (allocated/capacity, from the host's report).
std::string format_cloud_hosts(const nlohmann::json& hosts);
// Every zone of the region (`zones`, from health) and any other a host or an instance
// names, in that order: [{"zone", "hosts", "up", "instances"}] (instances that are not
// terminated).
nlohmann::json cloud_zones(const nlohmann::json& zones, const nlohmann::json& hosts,
                           const nlohmann::json& instances);
// Zone Hosts Up Instances, from cloud_zones.
std::string format_cloud_zones(const nlohmann::json& rows);
// ID State Type Zone Host Private-IP Public-IP Move.
std::string format_cloud_instances(const nlohmann::json& instances);
// An instance's move as the record says: "queued to H", "moving to H", "moved from H",
// "move failed: REASON", or "--" (never moved).
std::string cloud_move_state(const nlohmann::json& instance);
// One line for `move --wait` / `drain --wait`: "ID FROM -> TO  downtime X ms, ..." or
// "ID FROM -> TO  failed: REASON" (from the record's last_move).
std::string format_move_result(const nlohmann::json& instance);

// What `up` prints: the endpoint, the environment and an `aws` command to start with.
// `image_id` "" when it could not be learnt (the command then says how to find one).
std::string format_cloud_up(const CloudPlan& plan, const std::string& image_id);

}  // namespace nimbus::cli
