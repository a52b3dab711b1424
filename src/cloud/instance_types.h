// The instance type catalogue: EC2's t3 family with EC2's own shapes (so scripts written
// for EC2 run unchanged) and small Nimbus types that fit the VMM (at most 8 vCPUs).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nimbus::cloud {

struct InstanceType {
  std::string name;  // family.size, e.g. "t3.micro"
  unsigned vcpus = 1;
  uint64_t memory_mib = 0;
  std::string family_note;  // a line for people (DescribeInstanceTypes, docs)
};

// Limits of a type: the VMM runs at most 8 harts; memory 64 MiB .. 1 TiB.
inline constexpr unsigned kMaxTypeVcpus = 8;
inline constexpr uint64_t kMinTypeMemoryMib = 64;
inline constexpr uint64_t kMaxTypeMemoryMib = uint64_t{1} << 20;

// t3.nano .. t3.2xlarge as EC2 has them, then n1.tiny .. n1.xlarge.
std::vector<InstanceType> default_instance_types();

// Reads {"instance_types": [{"name": "...", "vcpus": N, "memory_mib": M,
// "family_note": "..." (optional)}, ...]} and checks every entry (name of [a-z0-9.-] shaped
// family.size, 1..8 vCPUs, 64 MiB..1 TiB, no duplicate names); kInvalidArgument naming the
// entry and the problem, kNotFound if the file is missing.
Result<std::vector<InstanceType>> load_instance_types(const std::string& json_path);

// The type named `name`, or nullptr.
const InstanceType* find_type(const std::vector<InstanceType>& types, std::string_view name);

}  // namespace nimbus::cloud
