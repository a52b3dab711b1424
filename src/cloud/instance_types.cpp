#include "cloud/instance_types.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace nimbus::cloud {
namespace {

using nlohmann::json;

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxTypes = 1000;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxNoteLength = 200;

// EC2's shape of a type name: FAMILY.SIZE of [a-z0-9.-], the family starting with a letter,
// neither part empty ("t3.micro", "g4dn.xlarge", "u-6tb1.56xlarge").
Status check_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength)
    return Status::invalid_argument(fmt::format("a name has 1 to {} characters", kMaxNameLength));
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
      return Status::invalid_argument(
          "a name is made of lower-case letters, digits, '.' and '-' (as EC2's, e.g. t3.micro)");
  }
  const size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == name.size() || name.back() == '.' ||
      name.find("..") != std::string::npos || !(name[0] >= 'a' && name[0] <= 'z'))
    return Status::invalid_argument(
        "a name is FAMILY.SIZE as EC2's (e.g. t3.micro): a family starting with a letter, a "
        "dot, a size");
  return {};
}

Result<uint64_t> unsigned_field(const json& entry, const char* field) {
  auto it = entry.find(field);
  if (it == entry.end()) return Status::invalid_argument(fmt::format("'{}' is missing", field));
  // JSON parses non-negative integers as unsigned: anything else is negative or not whole.
  if (!it->is_number_unsigned())
    return Status::invalid_argument(
        fmt::format("'{}' must be a whole number, not negative", field));
  return it->get<uint64_t>();
}

Result<InstanceType> parse_entry(const json& entry) {
  if (!entry.is_object()) return Status::invalid_argument("each type is an object");
  for (const auto& [key, value] : entry.items()) {
    if (key != "name" && key != "vcpus" && key != "memory_mib" && key != "family_note")
      return Status::invalid_argument(
          fmt::format("unknown field '{}' (a type has name, vcpus, memory_mib, family_note)", key));
  }
  InstanceType t;
  auto name = entry.find("name");
  if (name == entry.end() || !name->is_string())
    return Status::invalid_argument("'name' must be a string");
  t.name = name->get<std::string>();
  if (Status s = check_name(t.name); !s.ok()) return s;
  Result<uint64_t> vcpus = unsigned_field(entry, "vcpus");
  if (!vcpus.ok()) return vcpus.status();
  if (*vcpus < 1 || *vcpus > kMaxTypeVcpus)
    return Status::invalid_argument(
        fmt::format("'vcpus' is {}: it must be 1 to {} (the VMM's limit)", *vcpus, kMaxTypeVcpus));
  t.vcpus = static_cast<unsigned>(*vcpus);
  Result<uint64_t> memory = unsigned_field(entry, "memory_mib");
  if (!memory.ok()) return memory.status();
  if (*memory < kMinTypeMemoryMib || *memory > kMaxTypeMemoryMib)
    return Status::invalid_argument(fmt::format("'memory_mib' is {}: it must be {} to {} (1 TiB)",
                                                *memory, kMinTypeMemoryMib, kMaxTypeMemoryMib));
  t.memory_mib = *memory;
  if (auto note = entry.find("family_note"); note != entry.end()) {
    if (!note->is_string() || note->get<std::string>().size() > kMaxNoteLength)
      return Status::invalid_argument(
          fmt::format("'family_note' must be a string of at most {} bytes", kMaxNoteLength));
    t.family_note = note->get<std::string>();
  }
  return t;
}

}  // namespace

std::vector<InstanceType> default_instance_types() {
  const std::string t3 = "Burstable general purpose, as EC2's t3";
  const std::string n1 = "Nimbus small: sized for RISC-V guests on a personal cloud";
  return {
      {"t3.nano", 2, 512, t3},      {"t3.micro", 2, 1024, t3}, {"t3.small", 2, 2048, t3},
      {"t3.medium", 2, 4096, t3},   {"t3.large", 2, 8192, t3}, {"t3.xlarge", 4, 16384, t3},
      {"t3.2xlarge", 8, 32768, t3}, {"n1.tiny", 1, 128, n1},   {"n1.small", 1, 256, n1},
      {"n1.medium", 2, 512, n1},    {"n1.large", 4, 1024, n1}, {"n1.xlarge", 8, 2048, n1},
  };
}

Result<std::vector<InstanceType>> load_instance_types(const std::string& json_path) {
  std::ifstream in(json_path, std::ios::binary);
  if (!in)
    return Status::not_found(fmt::format("cannot read the instance types file '{}'", json_path));
  std::string text;
  text.resize(kMaxFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  const auto fail = [&](const std::string& why) {
    return Status::invalid_argument(fmt::format("instance types file '{}': {}", json_path, why));
  };
  if (text.size() > kMaxFileBytes) return fail(fmt::format("larger than {} bytes", kMaxFileBytes));
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return fail("not valid JSON");
  if (!doc.is_object() || !doc.contains("instance_types") || !doc["instance_types"].is_array())
    return fail("expected {\"instance_types\": [...]}");
  const json& list = doc["instance_types"];
  if (list.empty()) return fail("no instance types");
  if (list.size() > kMaxTypes) return fail(fmt::format("more than {} types", kMaxTypes));
  std::vector<InstanceType> out;
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    Result<InstanceType> t = parse_entry(list[i]);
    if (!t.ok()) {
      std::string which = fmt::format("type #{}", i + 1);
      if (list[i].is_object() && list[i].contains("name") && list[i]["name"].is_string())
        which += fmt::format(" ('{}')", list[i]["name"].get<std::string>().substr(0, 80));
      return fail(fmt::format("{}: {}", which, t.message()));
    }
    if (!names.insert(t->name).second)
      return fail(fmt::format("type #{}: '{}' is defined twice", i + 1, t->name));
    out.push_back(std::move(*t));
  }
  return out;
}

const InstanceType* find_type(const std::vector<InstanceType>& types, std::string_view name) {
  for (const InstanceType& t : types) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace nimbus::cloud
