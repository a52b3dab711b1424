// Tags on instances, security groups, images, placement groups, VPCs and subnets.
#include <fmt/format.h>

#include "cloud/cloud.h"

namespace nimbus::cloud {

namespace {

// EC2's limits: 50 tags per resource, keys up to 128 and values up to 256 characters, and
// the aws: prefix is reserved.
constexpr size_t kMaxTags = 50;

Ec2Error check_tag(const std::string& key, const std::string* value) {
  if (key.empty() || key.size() > 128)
    return ec2_error("InvalidParameterValue", "Tag keys are 1 to 128 characters");
  if (key.rfind("aws:", 0) == 0)
    return ec2_error("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved");
  if (value && value->size() > 256)
    return ec2_error("InvalidParameterValue", "Tag values are at most 256 characters");
  return {};
}

// The store key of a resource id, or "" for an id of a kind that has no tags here.
std::string resource_key(const std::string& id) {
  if (is_id(id, "i")) return kInstancesPrefix + id;
  if (is_id(id, "sg")) return kSecurityGroupsPrefix + id;
  if (is_id(id, "ami")) return kImagesPrefix + id;
  if (is_id(id, "vpc")) return kVpcsPrefix + id;
  if (is_id(id, "subnet")) return kSubnetsPrefix + id;
  return "";
}

// Applies `change` to the "tags" object of the JSON document at `key`.
Ec2Result<bool> change_tags(Store& store, const std::string& id,
                            const std::function<Ec2Error(Tags&)>& change) {
  const std::string key = resource_key(id);
  if (key.empty()) return ec2_error("InvalidID", fmt::format("The ID '{}' is not valid", id));
  Ec2Error failure;
  auto r = update(store, key,
                  [&](const std::optional<KeyValue>& kv) -> Result<std::optional<std::string>> {
                    failure = {};
                    if (!kv) return Status::not_found(id);
                    nlohmann::json j = nlohmann::json::parse(kv->value, nullptr, false);
                    if (!j.is_object()) return Status::internal("a record does not parse");
                    Tags tags = j.value("tags", Tags{});
                    failure = change(tags);
                    if (!failure.code.empty())
                      return Status::conflict(failure.message);  // no write
                    j["tags"] = tags;
                    // An instance that shows its tags in its metadata: sent again.
                    if (auto mo = j.find("metadata_options"); mo != j.end() && mo->is_object()) {
                      auto t = mo->find("instance_metadata_tags");
                      if (t != mo->end() && *t == "enabled") j["metadata_hash"] = "";
                    }
                    return std::optional<std::string>(j.dump());
                  });
  if (!failure.code.empty()) return failure;
  if (!r.ok()) {
    if (r.code() == Code::kNotFound) {
      const std::string kind = id.substr(0, id.find('-'));
      if (kind == "i")
        return ec2_error("InvalidInstanceID.NotFound",
                         fmt::format("The instance ID '{}' does not exist", id));
      if (kind == "sg")
        return ec2_error("InvalidGroup.NotFound",
                         fmt::format("The security group '{}' does not exist", id));
      if (kind == "vpc")
        return ec2_error("InvalidVpcID.NotFound",
                         fmt::format("The vpc ID '{}' does not exist", id));
      if (kind == "subnet")
        return ec2_error("InvalidSubnetID.NotFound",
                         fmt::format("The subnet ID '{}' does not exist", id));
      return ec2_error("InvalidAMIID.NotFound",
                       fmt::format("The image id '[{}]' does not exist", id));
    }
    return from_status(r.status());
  }
  return true;
}

}  // namespace

Ec2Result<bool> Cloud::create_tags(const std::vector<std::string>& resources, const Tags& tags) {
  if (resources.empty()) return ec2_error("MissingParameter", "ResourceId is required");
  if (tags.empty()) return ec2_error("MissingParameter", "Tag is required");
  for (const auto& [k, v] : tags) {
    Ec2Error e = check_tag(k, &v);
    if (!e.code.empty()) return e;
  }
  // Checked first, so that a bad id in the list, or one resource over the limit, changes
  // no resource.
  for (const auto& id : resources) {
    if (resource_key(id).empty())
      return ec2_error("InvalidID", fmt::format("The ID '{}' is not valid", id));
    auto kv = store_.get(resource_key(id));
    if (!kv.ok()) return from_status(kv.status());
    if (!*kv) {
      return ec2_error(is_id(id, "i") ? "InvalidInstanceID.NotFound" : "InvalidID",
                       fmt::format("The ID '{}' does not exist", id));
    }
    nlohmann::json j = nlohmann::json::parse((*kv)->value, nullptr, false);
    Tags now = j.is_object() ? j.value("tags", Tags{}) : Tags{};
    for (const auto& [k, v] : tags) now[k] = v;
    if (now.size() > kMaxTags)
      return ec2_error("TagLimitExceeded",
                       fmt::format("{} would have more than {} tags", id, kMaxTags));
  }
  for (const auto& id : resources) {
    auto r = change_tags(store_, id, [&](Tags& t) -> Ec2Error {
      for (const auto& [k, v] : tags) t[k] = v;
      if (t.size() > kMaxTags)
        return ec2_error("TagLimitExceeded",
                         fmt::format("{} would have more than {} tags", id, kMaxTags));
      return {};
    });
    if (!r.ok()) return r;
  }
  return true;
}

Ec2Result<bool> Cloud::delete_tags(
    const std::vector<std::string>& resources,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& tags) {
  if (resources.empty()) return ec2_error("MissingParameter", "ResourceId is required");
  for (const auto& id : resources) {
    auto r = change_tags(store_, id, [&](Tags& t) -> Ec2Error {
      if (tags.empty()) {
        t.clear();
        return {};
      }
      for (const auto& [k, v] : tags) {
        auto it = t.find(k);
        if (it != t.end() && (!v || it->second == *v)) t.erase(it);
      }
      return {};
    });
    if (!r.ok()) return r;
  }
  return true;
}

}  // namespace nimbus::cloud
