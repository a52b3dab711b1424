// The EC2 API's key pair actions: CreateKeyPair, ImportKeyPair, DescribeKeyPairs,
// DeleteKeyPair (element names: botocore's KeyPair, ImportKeyPairResult, KeyPairInfo).
#include <fmt/format.h>

#include <algorithm>

#include "cloud/base64.h"
#include "cloud/ec2_api.h"

namespace nimbus::cloud {

namespace {

bool wanted(const std::vector<std::string>& list, const std::string& v) {
  return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

void Ec2Api::add_key_pair_actions() {
  actions_["CreateKeyPair"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto tags = parse_tag_specifications(c.params, "key-pair");
    if (!tags.ok()) return tags.error();
    auto k = cloud_.create_key_pair(c.params.get_or("KeyName", ""), c.params.get_or("KeyType", ""),
                                    c.params.get_or("KeyFormat", ""), *tags);
    if (!k.ok()) return k.error();
    XmlWriter w("CreateKeyPairResponse");
    w.text("requestId", c.request_id)
        .text("keyName", k->record.name)
        .text("keyFingerprint", k->record.fingerprint)
        .text("keyMaterial", k->key_material)
        .text("keyPairId", k->record.id);
    render_tags(w, k->record.tags);
    return w.finish();
  };

  actions_["ImportKeyPair"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto tags = parse_tag_specifications(c.params, "key-pair");
    if (!tags.ok()) return tags.error();
    const std::string name = c.params.get_or("KeyName", "");
    if (name.empty()) return missing_parameter("KeyName");
    const auto material = c.params.get("PublicKeyMaterial");
    if (!material || material->empty()) return missing_parameter("PublicKeyMaterial");
    // A Blob: base64 on the wire (botocore and the aws CLI encode it).
    auto decoded = base64_decode(*material);
    if (!decoded)
      return ec2_error("InvalidKeyPair.Format", "PublicKeyMaterial is not base64-encoded");
    auto k = cloud_.import_key_pair(name, *decoded, *tags);
    if (!k.ok()) return k.error();
    XmlWriter w("ImportKeyPairResponse");
    w.text("requestId", c.request_id)
        .text("keyName", k->name)
        .text("keyFingerprint", k->fingerprint)
        .text("keyPairId", k->id);
    render_tags(w, k->tags);
    return w.finish();
  };

  actions_["DescribeKeyPairs"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto names = c.params.list("KeyName");
    const auto ids = c.params.list("KeyPairId");
    auto include_public = c.params.get_bool("IncludePublicKey");
    if (!include_public.ok()) return bad_parameter(include_public.status());
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    auto all = cloud_.key_pairs();
    if (!all.ok()) return all.error();
    for (const auto& n : names) {
      if (std::none_of(all->begin(), all->end(), [&](const auto& k) { return k.name == n; }))
        return ec2_error("InvalidKeyPair.NotFound",
                         fmt::format("The key pair {} does not exist", quote_value_for_message(n)));
    }
    for (const auto& id : ids) {
      if (std::none_of(all->begin(), all->end(), [&](const auto& k) { return k.id == id; }))
        return ec2_error("InvalidKeyPair.NotFound", fmt::format("The key pair {} does not exist",
                                                                quote_value_for_message(id)));
    }
    XmlWriter w("DescribeKeyPairsResponse");
    w.text("requestId", c.request_id).open("keySet");
    for (const auto& k : *all) {
      if (!wanted(names, k.name) || !wanted(ids, k.id)) continue;
      std::string unknown;
      auto field = [&](const std::string& f) -> std::optional<std::vector<std::string>> {
        if (f == "key-name") return std::vector<std::string>{k.name};
        if (f == "key-pair-id") return std::vector<std::string>{k.id};
        if (f == "fingerprint") return std::vector<std::string>{k.fingerprint};
        return tag_field(k.tags, f);
      };
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty())
          return invalid_parameter_value(
              fmt::format("The filter {} is invalid", quote_value_for_message(unknown)));
        continue;
      }
      w.open("item")
          .text("keyPairId", k.id)
          .text("keyFingerprint", k.fingerprint)
          .text("keyName", k.name)
          .text("keyType", k.type);
      render_tags(w, k.tags);
      w.text("createTime", k.create_time);
      if (include_public->value_or(false)) w.text("publicKey", k.public_key);
      w.close();
    }
    return w.finish();
  };

  actions_["DeleteKeyPair"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto id =
        cloud_.delete_key_pair(c.params.get_or("KeyName", ""), c.params.get_or("KeyPairId", ""));
    if (!id.ok()) return id.error();
    XmlWriter w("DeleteKeyPairResponse");
    w.text("requestId", c.request_id).boolean("return", true);
    if (!id->empty()) w.text("keyPairId", *id);
    return w.finish();
  };
}

}  // namespace nimbus::cloud
