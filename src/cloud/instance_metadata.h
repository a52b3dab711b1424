// What an instance's metadata service serves (the VMM's IMDS, config/metadata_config.h):
// the data tree the control plane hands nimbusd for the instance, in EC2's layout.
//
//   meta-data/  ami-id ami-launch-index hostname instance-id instance-type local-hostname
//               local-ipv4 mac public-hostname public-ipv4 reservation-id security-groups
//               placement/{availability-zone,region} public-keys/0=KEY/openssh-key
//   user-data   the instance's UserData (base64 as it came; the VMM serves it decoded)
//   dynamic/instance-identity/document   the identity document (JSON)
//   meta-data/tags/instance/KEY   the instance's tags, with InstanceMetadataTags enabled
//               (keys of letters, digits and + - . , _ : @ only, as EC2 allows there; '='
//               is left out too: the tree reads "N=NAME" as an index entry)
//
// The private address and its host name come from the launch (the subnet's address); for
// instances without a subnet, and for the MAC, once the host made the VM: until then they
// are left out (the reconciler sends the data again when they are known).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cloud/records.h"
#include "config/metadata_config.h"

namespace nimbus::cloud {

class Cloud;

struct MetadataContext {
  std::string region, account_id;
  std::vector<std::string> security_group_names;  // the instance's, in its order
  std::string mac;                                // "" when not known
};

// The data tree (config::check_metadata_data accepts it).
nlohmann::json instance_metadata_data(const InstanceRecord& inst, const MetadataContext& ctx);
// nimbusd's "metadata" object, for a create and for PUT /v1/vms/ID/metadata: the data and
// the instance's options (http_tokens, http_endpoint, hop_limit).
nlohmann::json instance_metadata(const InstanceRecord& inst, const MetadataContext& ctx);
// The VMM's options for the instance's (a hop limit out of 1..64 is clamped).
config::MetadataOptions vmm_metadata_options(const InstanceMetadataOptions& o);
// A short stable digest of a metadata object (InstanceRecord::metadata_hash: what was sent
// last).
std::string metadata_hash(const nlohmann::json& metadata);
// The context from the cloud's options and security groups (names of deleted groups are
// left out); `mac` as given.
MetadataContext metadata_context(Cloud& cloud, const InstanceRecord& inst,
                                 const std::string& mac = "");

// "ip-10-88-0-2.REGION.compute.internal", DescribeInstances' privateDnsName.
std::string private_dns_name(const std::string& ip, const std::string& region);

}  // namespace nimbus::cloud
