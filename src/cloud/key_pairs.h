// EC2 key pairs: the record kept at /key-pairs/NAME (one JSON document each). Only the
// public key is kept; CreateKeyPair's private key is returned once and never stored. The
// operations are Cloud's (cloud.h, "key pairs"; key_pairs.cpp); the key formats and
// fingerprints are ssh_keys.h's.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cloud/records.h"
#include "common/status.h"

namespace nimbus::cloud {

inline constexpr const char* kKeyPairsPrefix = "/key-pairs/";

struct KeyPairRecord {
  std::string id;           // key-17hex
  std::string name;         // 1-255 printable ASCII characters
  std::string type;         // rsa | ed25519
  std::string fingerprint;  // EC2's (ssh_keys.h)
  std::string public_key;   // OpenSSH one-line form, "ssh-ed25519 AAAA... NAME"
  std::string create_time;  // ISO 8601 with milliseconds
  bool imported = false;
  Tags tags;
};

// What CreateKeyPair returns: the record and the private key (keyMaterial).
struct CreatedKeyPair {
  KeyPairRecord record;
  std::string key_material;
};

nlohmann::json to_json(const KeyPairRecord& r);
// kInternal for a document these functions did not write.
Result<KeyPairRecord> key_pair_from_json(const std::string& text);

// EC2's constraint on KeyName: 1 to 255 ASCII characters (printable ones here: the name is
// the comment of the public key line an instance installs). kInvalidArgument otherwise.
Status check_key_name(const std::string& name);

}  // namespace nimbus::cloud
