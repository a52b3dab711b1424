// Key pairs: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair over the store.
#include "cloud/key_pairs.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cloud/cloud.h"
#include "cloud/ec2_query.h"
#include "cloud/ssh_keys.h"

namespace nimbus::cloud {

// clang-format off
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KeyPairRecord, id, name, type, fingerprint,
    public_key, create_time, imported, tags)
// clang-format on

nlohmann::json to_json(const KeyPairRecord& r) { return r; }

Result<KeyPairRecord> key_pair_from_json(const std::string& text) {
  try {
    return nlohmann::json::parse(text).get<KeyPairRecord>();
  } catch (const std::exception& e) {
    return Status::internal(
        fmt::format("the store holds a key pair that does not parse: {}", e.what()));
  }
}

Status check_key_name(const std::string& name) {
  if (name.empty() || name.size() > 255)
    return Status::invalid_argument("Key names are 1 to 255 ASCII characters");
  for (unsigned char c : name) {
    if (c < 0x20 || c > 0x7e)
      return Status::invalid_argument(
          "Key names are 1 to 255 ASCII characters (printable ones: no control characters)");
  }
  return Status();
}

namespace {

std::string key_pair_key(const std::string& name) { return kKeyPairsPrefix + name; }

Ec2Error key_not_found(const std::string& what) {
  return ec2_error("InvalidKeyPair.NotFound",
                   fmt::format("The key pair {} does not exist", quote_value_for_message(what)));
}

Ec2Error name_error(const std::string& name) {
  if (name.empty()) return missing_parameter("KeyName");
  Status s = check_key_name(name);
  return s.ok() ? Ec2Error{} : invalid_parameter_value(s.message());
}

}  // namespace

// Commits a new record; InvalidKeyPair.Duplicate when the name is taken.
Ec2Result<KeyPairRecord> Cloud::put_new_key_pair(KeyPairRecord record) {
  const std::string key = key_pair_key(record.name);
  auto r = store_.txn({{key, 0}}, {{Op::Kind::kPut, key, to_json(record).dump()}});
  if (!r.ok()) return from_status(r.status());
  if (!r->succeeded)
    return ec2_error("InvalidKeyPair.Duplicate",
                     fmt::format("The keypair '{}' already exists.", record.name));
  spdlog::info("key pair {} ({}, {}): {}", record.name, record.id, record.type,
               record.imported ? "imported" : "created");
  return record;
}

Ec2Result<CreatedKeyPair> Cloud::create_key_pair(const std::string& name, const std::string& type,
                                                 const std::string& format, const Tags& tags) {
  if (Ec2Error e = name_error(name); !e.code.empty()) return e;
  SshKeyType kind = SshKeyType::kRsa;
  if (type == "ed25519")
    kind = SshKeyType::kEd25519;
  else if (!type.empty() && type != "rsa")
    return invalid_parameter_value(fmt::format("Invalid value {} for KeyType (rsa or ed25519)",
                                               quote_value_for_message(type)));
  if (format == "ppk")
    return invalid_parameter_value(
        "KeyFormat ppk (PuTTY) is not supported by Nimbus: use pem (PuTTYgen converts it)");
  if (!format.empty() && format != "pem")
    return invalid_parameter_value(
        fmt::format("Invalid value {} for KeyFormat (pem)", quote_value_for_message(format)));
  // A taken name is refused before the (costly) generation; the put compares again.
  auto existing = store_.get(key_pair_key(name));
  if (!existing.ok()) return from_status(existing.status());
  if (*existing)
    return ec2_error("InvalidKeyPair.Duplicate",
                     fmt::format("The keypair '{}' already exists.", name));
  auto key = generate_ssh_key(kind, name);
  if (!key.ok()) return from_status(key.status());
  KeyPairRecord r;
  r.id = new_id("key");
  r.name = name;
  r.type = std::string(key_type_name(kind));
  r.fingerprint = key->fingerprint;
  r.public_key = openssh_public_line(key->public_key, name);
  r.create_time = iso_time_now();
  r.tags = tags;
  auto put = put_new_key_pair(std::move(r));
  if (!put.ok()) return put.error();
  return CreatedKeyPair{std::move(*put), std::move(key->private_key)};
}

Ec2Result<KeyPairRecord> Cloud::import_key_pair(const std::string& name,
                                                const std::string& public_key_material,
                                                const Tags& tags) {
  if (Ec2Error e = name_error(name); !e.code.empty()) return e;
  if (public_key_material.empty()) return missing_parameter("PublicKeyMaterial");
  auto key = parse_openssh_public_key(public_key_material);
  if (!key.ok()) return ec2_error("InvalidKeyPair.Format", key.message());
  auto fingerprint = imported_key_fingerprint(*key);
  if (!fingerprint.ok()) return ec2_error("InvalidKeyPair.Format", fingerprint.message());
  KeyPairRecord r;
  r.id = new_id("key");
  r.name = name;
  r.type = std::string(key_type_name(key->type));
  r.fingerprint = *fingerprint;
  // Stored as EC2 shows it: the key with the pair's name as its comment (the owner's
  // comment is not kept).
  r.public_key = openssh_public_line(*key, name);
  r.create_time = iso_time_now();
  r.imported = true;
  r.tags = tags;
  return put_new_key_pair(std::move(r));
}

Ec2Result<std::vector<KeyPairRecord>> Cloud::key_pairs() {
  auto all = store_.list(kKeyPairsPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<KeyPairRecord> out;
  out.reserve(all->size());
  for (const KeyValue& kv : *all) {
    auto k = key_pair_from_json(kv.value);
    if (!k.ok()) return from_status(k.status());
    out.push_back(std::move(*k));
  }
  return out;
}

Ec2Result<KeyPairRecord> Cloud::key_pair(const std::string& name) {
  if (!check_key_name(name).ok()) return key_not_found(name);  // it cannot exist
  auto kv = store_.get(key_pair_key(name));
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv) return key_not_found(name);
  auto k = key_pair_from_json((*kv)->value);
  if (!k.ok()) return from_status(k.status());
  return *k;
}

Ec2Result<std::string> Cloud::delete_key_pair(const std::string& name, const std::string& id) {
  if (name.empty() && id.empty()) return missing_parameter("KeyName");
  // A pair replaced between the read and the delete is looked at again; a missing one is
  // no error (EC2's DeleteKeyPair succeeds for it).
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::optional<KeyValue> found;
    KeyPairRecord record;
    if (!name.empty()) {
      if (!check_key_name(name).ok()) return std::string();
      auto kv = store_.get(key_pair_key(name));
      if (!kv.ok()) return from_status(kv.status());
      found = *kv;
      if (found) {
        auto k = key_pair_from_json(found->value);
        if (!k.ok()) return from_status(k.status());
        record = std::move(*k);
        if (!id.empty() && record.id != id) return std::string();  // not the pair meant
      }
    } else {
      auto all = store_.list(kKeyPairsPrefix);
      if (!all.ok()) return from_status(all.status());
      for (const KeyValue& kv : *all) {
        auto k = key_pair_from_json(kv.value);
        if (!k.ok()) return from_status(k.status());
        if (k->id == id) {
          found = kv;
          record = std::move(*k);
          break;
        }
      }
    }
    if (!found) return std::string();
    auto r = store_.txn({{found->key, found->mod_revision}}, {{Op::Kind::kDelete, found->key, ""}});
    if (!r.ok()) return from_status(r.status());
    if (r->succeeded) {
      spdlog::info("key pair {} ({}) deleted", record.name, record.id);
      return record.id;
    }
  }
  return ec2_error("Unavailable", "the key pair changes too often: try again", 503);
}

}  // namespace nimbus::cloud
