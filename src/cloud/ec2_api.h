// The EC2 Query API (Version 2016-11-15) as the aws CLI and boto3 speak it: POST / with a
// form body, Action=..., SigV4 (docs/cloud.md; facts in design/CLOUD-NOTES.md §1). Parses
// each request into a Cloud call and renders the result as EC2's XML, or an EC2 error.
// Also STS GetCallerIdentity on the same endpoint (Ansible's amazon.aws modules ask it).
#pragma once

#include <functional>
#include <map>
#include <string>

#include "cloud/cloud.h"
#include "cloud/ec2_query.h"
#include "cloud/reconciler.h"
#include "cloud/xml_writer.h"
#include "common/http_message.h"

namespace nimbus::cloud {

struct ApiCredentials {
  // access key id -> secret key. Empty: any access key is accepted and signatures are not
  // checked (a personal cloud on loopback; docs/cloud.md).
  std::map<std::string, std::string> keys;
};

// What a handler has: the parsed parameters, the caller, and the response to fill.
struct Call {
  const QueryParams& params;
  std::string action, request_id, access_key, region;
};

class Ec2Api {
 public:
  Ec2Api(Cloud& cloud, HostDriver& driver, ApiCredentials credentials);

  http::Reply handle(const http::Request& req);

 private:
  using Handler = std::function<Ec2Result<std::string>(const Call&)>;
  void add_instance_actions();            // ec2_instances_api.cpp
  void add_resource_actions();            // ec2_resources_api.cpp
  void add_key_pair_actions();            // ec2_keypairs_api.cpp
  void add_network_actions();             // ec2_network_api.cpp
  void add_instance_attribute_actions();  // ec2_instance_attribute_api.cpp
  std::optional<Ec2Error> authenticate(const http::Request& req, std::string* access_key,
                                       std::string* region);

  Cloud& cloud_;
  HostDriver& driver_;
  ApiCredentials credentials_;
  std::map<std::string, Handler> actions_;
};

// Helpers shared by the action files.
Ec2Error bad_parameter(const Status& s);  // a QueryParams error as InvalidParameterValue
Ec2Result<std::vector<Filter>> parse_filters(const QueryParams& p);
Tags parse_tag_list(const QueryParams& p, const std::string& prefix);  // Tag.N.Key/Value
// TagSpecification.N.{ResourceType, Tag.M.*} for `resource_type`.
Ec2Result<Tags> parse_tag_specifications(const QueryParams& p, const std::string& resource_type);
void render_tags(XmlWriter& w, const Tags& tags);
// Tag filters shared by every resource: tag:KEY, tag-key, tag-value.
std::optional<std::vector<std::string>> tag_field(const Tags& tags, const std::string& name);

}  // namespace nimbus::cloud
