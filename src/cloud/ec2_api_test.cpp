// The EC2 Query API end to end, without transport: form bodies as botocore sends them
// (CLOUD-NOTES §1.2) through route_cloud_request, and the XML read back as botocore reads
// it (by element path). Also SigV4, the host heartbeat and the image file endpoint.
#include "cloud/ec2_api.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <ctime>
#include <set>

#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/ec2_form_request.h"
#include "cloud/ec2_xml_test_util.h"
#include "cloud/sigv4.h"

namespace nimbus::cloud {
namespace {

using Node = XmlNode;

class Ec2ApiTest : public ::testing::Test {
 protected:
  explicit Ec2ApiTest(ApiCredentials creds = {}) : api_(bed_.cloud(), bed_.driver(), creds) {
    bed_.add_hosts(2);
  }

  http::Reply send(const std::string& body) {
    return route_cloud_request(bed_.cloud(), api_, form_request(body));
  }
  // A successful call's document.
  Node ok(const std::string& body) {
    http::Reply r = send(body);
    EXPECT_EQ(r.status, 200) << body << "\n" << r.body;
    EXPECT_EQ(r.content_type, "text/xml;charset=UTF-8");
    return parse_xml(r.body);
  }
  // A refused call's error code, checking EC2's error shape.
  std::string error(const std::string& body, int status = 400) {
    http::Reply r = send(body);
    EXPECT_EQ(r.status, status) << body << "\n" << r.body;
    Node doc = parse_xml(r.body);
    EXPECT_EQ(doc.name, "Response") << r.body;
    EXPECT_FALSE(doc.at("RequestID").empty()) << r.body;
    EXPECT_FALSE(doc.at("Errors/Error/Message").empty()) << r.body;
    return doc.at("Errors/Error/Code");
  }
  std::string run(const std::string& extra) {
    Node doc = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() + extra);
    return doc.at("reservationId");
  }
  // Every instance id of a DescribeInstances document, in document order.
  static std::vector<std::string> instance_ids(const Node& doc) {
    std::vector<std::string> out;
    if (const Node* set = doc.child("reservationSet")) {
      for (const Node* res : set->all("item")) {
        if (const Node* insts = res->child("instancesSet")) {
          for (const Node* i : insts->all("item")) out.push_back(i->at("instanceId"));
        }
      }
    }
    return out;
  }
  std::vector<std::string> describe(const std::string& extra) {
    return instance_ids(ok("Action=DescribeInstances&Version=2016-11-15" + extra));
  }

  CloudTestBed bed_;
  Ec2Api api_;
};

TEST_F(Ec2ApiTest, RunInstancesThenDescribeInstances) {
  ASSERT_TRUE(bed_.cloud().create_key_pair("k", "ed25519", "", {}).ok());  // KeyName=k
  Node run = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                "&InstanceType=n1.tiny&KeyName=k&UserData=aGVsbG8%3D&MinCount=2&MaxCount=2"
                "&ClientToken=a535ecfd-0000-4000-8000-000000000001");
  EXPECT_EQ(run.name, "RunInstancesResponse");
  EXPECT_FALSE(run.at("requestId").empty());
  const std::string reservation = run.at("reservationId");
  EXPECT_TRUE(is_id(reservation, "r")) << reservation;
  const Node* set = run.child("instancesSet");
  ASSERT_NE(set, nullptr);
  ASSERT_EQ(set->all("item").size(), 2u);
  const Node& first = *set->all("item")[0];
  EXPECT_EQ(first.at("instanceState/code"), "0");
  EXPECT_EQ(first.at("instanceState/name"), "pending");
  EXPECT_EQ(first.at("instanceType"), "n1.tiny");
  EXPECT_EQ(first.at("keyName"), "k");
  EXPECT_EQ(first.at("imageId"), bed_.image_id());
  EXPECT_EQ(first.at("amiLaunchIndex"), "0");
  EXPECT_EQ(first.at("groupSet/item/groupName"), "default");

  Node d = ok("Action=DescribeInstances&Version=2016-11-15");
  EXPECT_EQ(d.name, "DescribeInstancesResponse");
  EXPECT_EQ(d.at("reservationSet/item/reservationId"), reservation);
  EXPECT_EQ(d.at("reservationSet/item/ownerId"), "000000000000");
  const std::string id = d.at("reservationSet/item/instancesSet/item/instanceId");
  EXPECT_TRUE(is_id(id, "i")) << id;
  EXPECT_EQ(d.at("reservationSet/item/instancesSet/item/instanceState/code"), "0");
  EXPECT_EQ(d.at("reservationSet/item/instancesSet/item/instanceState/name"), "pending");
  EXPECT_TRUE(d.child("nextToken") == nullptr);

  // The same ClientToken again: the same reservation, nothing new.
  Node again = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                  "&InstanceType=n1.tiny&KeyName=k&UserData=aGVsbG8%3D&MinCount=2&MaxCount=2"
                  "&ClientToken=a535ecfd-0000-4000-8000-000000000001");
  EXPECT_EQ(again.at("reservationId"), reservation);
  EXPECT_EQ(describe("").size(), 2u);

  // Running once the reconciler saw the guest ready; the waiter's own request.
  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  Node w = ok("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + id);
  EXPECT_EQ(w.at("reservationSet/item/instancesSet/item/instanceState/code"), "16");
  EXPECT_EQ(w.at("reservationSet/item/instancesSet/item/instanceState/name"), "running");
  EXPECT_EQ(instance_ids(w), std::vector<std::string>{id});
  // An id given twice is still one instance.
  EXPECT_EQ(describe("&InstanceId.1=" + id + "&InstanceId.2=" + id), std::vector<std::string>{id});
}

TEST_F(Ec2ApiTest, DescribeInstancesFilters) {
  run("&InstanceType=n1.tiny&MinCount=2&MaxCount=2&TagSpecification.1.ResourceType=instance"
      "&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web");
  run("&InstanceType=n1.small&MinCount=1&MaxCount=1&Placement.AvailabilityZone=nimbus-west-1b");
  EXPECT_EQ(describe("").size(), 3u);
  EXPECT_EQ(describe("&Filter.1.Name=tag%3AName&Filter.1.Value.1=web").size(), 2u);
  EXPECT_EQ(describe("&Filter.1.Name=tag%3AName&Filter.1.Value.1=w*").size(), 2u);
  EXPECT_EQ(describe("&Filter.1.Name=instance-type&Filter.1.Value.1=n1.small").size(), 1u);
  size_t in_b = 0;
  auto all = bed_.cloud().instances();
  ASSERT_TRUE(all.ok());
  for (const auto& i : *all) in_b += i.zone == "nimbus-west-1b";
  EXPECT_GE(in_b, 1u);
  EXPECT_EQ(describe("&Filter.1.Name=availability-zone&Filter.1.Value.1=nimbus-west-1b").size(),
            in_b);
  EXPECT_EQ(describe("&Filter.1.Name=instance-state-name&Filter.1.Value.1=running").size(), 0u);
  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  EXPECT_EQ(describe("&Filter.1.Name=instance-state-name&Filter.1.Value.1=running").size(), 3u);
  // Values of one filter are ORed, filters ANDed (boto3's two-filter request).
  EXPECT_EQ(describe("&Filter.1.Name=instance-state-name&Filter.1.Value.1=pending"
                     "&Filter.1.Value.2=running&Filter.2.Name=tag%3AName&Filter.2.Value.1=web")
                .size(),
            2u);
  EXPECT_EQ(error("Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=no-such-filter"
                  "&Filter.1.Value.1=x"),
            "InvalidParameterValue");
  EXPECT_EQ(error("Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-type"),
            "InvalidParameterValue");
}

TEST_F(Ec2ApiTest, PaginationCoversEveryInstanceOnce) {
  // 12 instances in reservations of 1, 2, 3, 1, 2 and 3.
  for (int count : {1, 2, 3, 1, 2, 3})
    run(fmt::format("&InstanceType=n1.tiny&MinCount={}&MaxCount={}", count, count));
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  while (true) {
    Node page = ok("Action=DescribeInstances&Version=2016-11-15&MaxResults=5" +
                   (token.empty() ? "" : "&NextToken=" + token));
    ++pages;
    ASSERT_LT(pages, 13);
    auto ids = instance_ids(page);
    EXPECT_FALSE(ids.empty());
    EXPECT_LE(ids.size(), 5u + 2u);  // whole reservations: at most one more of up to 3
    seen.insert(seen.end(), ids.begin(), ids.end());
    token = page.at("nextToken");
    if (token.empty()) break;
  }
  EXPECT_GE(pages, 2);
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 12u);
  EXPECT_EQ(error("Action=DescribeInstances&Version=2016-11-15&MaxResults=4"),
            "InvalidParameterValue");
  EXPECT_EQ(
      error("Action=DescribeInstances&Version=2016-11-15&MaxResults=5&InstanceId.1=" + seen[0]),
      "InvalidParameterCombination");
}

TEST_F(Ec2ApiTest, MetadataOptionsOfRunInstancesAndDescribeInstances) {
  // As botocore serializes RunInstances' MetadataOptions structure.
  Node run = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                "&MinCount=1&MaxCount=1&MetadataOptions.HttpTokens=required"
                "&MetadataOptions.HttpPutResponseHopLimit=2"
                "&MetadataOptions.HttpProtocolIpv6=disabled"
                "&MetadataOptions.InstanceMetadataTags=enabled");
  const std::string id = run.at("instancesSet/item/instanceId");
  const Node* mo = run.child("instancesSet")->child("item")->child("metadataOptions");
  ASSERT_NE(mo, nullptr);
  EXPECT_EQ(mo->at("state"), "pending") << "its VM does not exist yet";
  EXPECT_EQ(mo->at("httpTokens"), "required");
  EXPECT_EQ(mo->at("httpPutResponseHopLimit"), "2");
  EXPECT_EQ(mo->at("httpEndpoint"), "enabled");
  EXPECT_EQ(mo->at("httpProtocolIpv6"), "disabled");
  EXPECT_EQ(mo->at("instanceMetadataTags"), "enabled");
  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  Node d = ok("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + id);
  const std::string at = "reservationSet/item/instancesSet/item/metadataOptions/";
  EXPECT_EQ(d.at(at + "state"), "applied");
  EXPECT_EQ(d.at(at + "httpTokens"), "required");
  EXPECT_EQ(d.at(at + "httpPutResponseHopLimit"), "2");
  EXPECT_EQ(d.at(at + "instanceMetadataTags"), "enabled");

  // Without any: EC2's defaults.
  Node plain = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                  "&MinCount=1&MaxCount=1");
  const std::string first = "instancesSet/item/metadataOptions/";
  EXPECT_EQ(plain.at(first + "httpTokens"), "optional");
  EXPECT_EQ(plain.at(first + "httpPutResponseHopLimit"), "1");
  EXPECT_EQ(plain.at(first + "httpEndpoint"), "enabled");
  EXPECT_EQ(plain.at(first + "instanceMetadataTags"), "disabled");

  // Bad values: InvalidParameterValue, and nothing launched.
  const auto before = bed_.store_dump();
  const std::string base =
      "Action=RunInstances&Version=2016-11-15&MinCount=1&MaxCount=1&ImageId=" + bed_.image_id() +
      "&MetadataOptions.";
  for (const char* bad :
       {"HttpTokens=maybe", "HttpTokens=", "HttpTokens=Required", "HttpEndpoint=off",
        "HttpPutResponseHopLimit=0", "HttpPutResponseHopLimit=65", "HttpPutResponseHopLimit=x",
        "HttpPutResponseHopLimit=-1", "HttpPutResponseHopLimit=99999999999999999999",
        "HttpProtocolIpv6=enabled", "HttpProtocolIpv6=on", "InstanceMetadataTags=yes",
        "HttpTokens=%3Cx%3E%26"}) {
    EXPECT_EQ(error(base + bad), "InvalidParameterValue") << bad;
  }
  EXPECT_EQ(bed_.store_dump(), before);
}

TEST_F(Ec2ApiTest, ModifyInstanceMetadataOptions) {
  const std::string res = run("&MinCount=1&MaxCount=1");
  const std::string id = describe("&Filter.1.Name=reservation-id&Filter.1.Value.1=" + res).at(0);
  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  const std::string action = "Action=ModifyInstanceMetadataOptions&Version=2016-11-15";

  // Refused, changing nothing.
  const auto before = bed_.store_dump();
  EXPECT_EQ(error(action + "&HttpTokens=required"), "MissingParameter");
  EXPECT_EQ(error(action + "&InstanceId=i-nope&HttpTokens=required"),
            "InvalidInstanceID.Malformed");
  EXPECT_EQ(error(action + "&InstanceId=i-0123456789abcdef0&HttpTokens=required"),
            "InvalidInstanceID.NotFound");
  EXPECT_EQ(error(action + "&InstanceId=" + id), "InvalidParameterCombination");
  for (const char* bad : {"HttpTokens=no", "HttpEndpoint=", "HttpPutResponseHopLimit=65",
                          "HttpProtocolIpv6=enabled", "InstanceMetadataTags=on"}) {
    EXPECT_EQ(error(action + "&InstanceId=" + id + "&" + bad), "InvalidParameterValue") << bad;
  }
  EXPECT_EQ(error(action + "&InstanceId=" + id + "&HttpTokens=required&DryRun=true", 412),
            "DryRunOperation");
  EXPECT_EQ(bed_.store_dump(), before);

  Node m = ok(action + "&InstanceId=" + id + "&HttpTokens=required&HttpPutResponseHopLimit=5");
  EXPECT_EQ(m.name, "ModifyInstanceMetadataOptionsResponse");
  EXPECT_FALSE(m.at("requestId").empty());
  EXPECT_EQ(m.at("instanceId"), id);
  EXPECT_EQ(m.at("instanceMetadataOptions/state"), "pending");
  EXPECT_EQ(m.at("instanceMetadataOptions/httpTokens"), "required");
  EXPECT_EQ(m.at("instanceMetadataOptions/httpPutResponseHopLimit"), "5");
  EXPECT_EQ(m.at("instanceMetadataOptions/httpEndpoint"), "enabled");
  EXPECT_EQ(m.at("instanceMetadataOptions/httpProtocolIpv6"), "disabled");
  EXPECT_EQ(m.at("instanceMetadataOptions/instanceMetadataTags"), "disabled");
  const std::string at = "reservationSet/item/instancesSet/item/metadataOptions/";
  Node d = ok("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + id);
  EXPECT_EQ(d.at(at + "state"), "pending");
  EXPECT_EQ(d.at(at + "httpTokens"), "required");
  for (int n = 0; n < 2; ++n) bed_.reconciler().pass_now();
  d = ok("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + id);
  EXPECT_EQ(d.at(at + "state"), "applied");
  EXPECT_EQ(d.at(at + "httpPutResponseHopLimit"), "5");
  // Reached its VM.
  const std::string host = d.at("reservationSet/item/instancesSet/item/placement/hostId");
  auto vm = bed_.driver().vm(host, id);
  ASSERT_TRUE(vm.has_value());
  EXPECT_EQ(vm->metadata["http_tokens"], "required");
  EXPECT_EQ(vm->metadata["hop_limit"], 5);

  // Back to optional (HttpProtocolIpv6=disabled alone is accepted too: it is already).
  m = ok(action + "&InstanceId=" + id + "&HttpTokens=optional");
  EXPECT_EQ(m.at("instanceMetadataOptions/httpTokens"), "optional");
  EXPECT_EQ(m.at("instanceMetadataOptions/httpPutResponseHopLimit"), "5") << "kept";
  ok(action + "&InstanceId=" + id + "&HttpProtocolIpv6=disabled");
  for (int n = 0; n < 2; ++n) bed_.reconciler().pass_now();
  EXPECT_EQ(bed_.driver().vm(host, id)->metadata["http_tokens"], "optional");

  // Terminated: IncorrectInstanceState.
  ok("Action=TerminateInstances&Version=2016-11-15&InstanceId.1=" + id);
  EXPECT_EQ(error(action + "&InstanceId=" + id + "&HttpTokens=required"), "IncorrectInstanceState");
}

TEST_F(Ec2ApiTest, DescribeInstanceAttribute) {
  Node g = ok("Action=CreateSecurityGroup&Version=2016-11-15&GroupName=web&GroupDescription=w");
  const std::string sg = g.at("groupId");
  Node r = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
              "&MinCount=1&MaxCount=1&InstanceType=n1.small&UserData=aGVsbG8%3D"
              "&SecurityGroupId.1=" +
              sg);
  const std::string id = r.at("instancesSet/item/instanceId");
  const std::string action = "Action=DescribeInstanceAttribute&Version=2016-11-15";
  auto attr = [&](const std::string& name) {
    Node d = ok(action + "&InstanceId=" + id + "&Attribute=" + name);
    EXPECT_EQ(d.name, "DescribeInstanceAttributeResponse");
    EXPECT_FALSE(d.at("requestId").empty());
    EXPECT_EQ(d.at("instanceId"), id);
    return d;
  };
  // What Ansible's ec2_instance asks: the groups, by id and name.
  Node d = attr("groupSet");
  ASSERT_NE(d.child("groupSet"), nullptr);
  ASSERT_EQ(d.child("groupSet")->all("item").size(), 1u);
  EXPECT_EQ(d.at("groupSet/item/groupId"), sg);
  EXPECT_EQ(d.at("groupSet/item/groupName"), "web");
  EXPECT_EQ(attr("instanceType").at("instanceType/value"), "n1.small");
  EXPECT_EQ(attr("userData").at("userData/value"), "aGVsbG8=");  // base64, as it came
  EXPECT_EQ(attr("disableApiTermination").at("disableApiTermination/value"), "false");
  EXPECT_EQ(attr("ebsOptimized").at("ebsOptimized/value"), "false");
  EXPECT_EQ(attr("sourceDestCheck").at("sourceDestCheck/value"), "true");
  EXPECT_EQ(attr("rootDeviceName").at("rootDeviceName/value"), "/dev/vda");
  EXPECT_EQ(attr("instanceInitiatedShutdownBehavior").at("instanceInitiatedShutdownBehavior/value"),
            "stop");
  EXPECT_EQ(attr("blockDeviceMapping").at("blockDeviceMapping/item/ebs/volumeId"),
            "vol-" + id.substr(2));
  Node k = attr("kernel");
  ASSERT_NE(k.child("kernel"), nullptr);
  EXPECT_EQ(k.at("kernel/value"), "");
  // The type changed by ModifyInstanceAttribute is the one described (stopped first).
  ok("Action=StopInstances&Version=2016-11-15&InstanceId.1=" + id);
  for (int n = 0; n < 4; ++n) bed_.reconciler().pass_now();
  ok("Action=ModifyInstanceAttribute&Version=2016-11-15&InstanceId=" + id +
     "&InstanceType.Value=n1.tiny");
  EXPECT_EQ(attr("instanceType").at("instanceType/value"), "n1.tiny");
  // An instance without user data: an empty element.
  Node r2 = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
               "&MinCount=1&MaxCount=1&InstanceType=n1.tiny");
  const std::string id2 = r2.at("instancesSet/item/instanceId");
  Node u = ok(action + "&InstanceId=" + id2 + "&Attribute=userData");
  ASSERT_NE(u.child("userData"), nullptr);
  EXPECT_EQ(u.at("userData/value"), "");
  EXPECT_EQ(ok(action + "&InstanceId=" + id2 + "&Attribute=groupSet").at("groupSet/item/groupName"),
            "default");

  // Refused, each with EC2's code.
  EXPECT_EQ(error(action + "&Attribute=groupSet"), "MissingParameter");
  EXPECT_EQ(error(action + "&InstanceId=" + id), "MissingParameter");
  EXPECT_EQ(error(action + "&InstanceId=i-nope&Attribute=groupSet"), "InvalidInstanceID.Malformed");
  EXPECT_EQ(error(action + "&InstanceId=i-0123456789abcdef0&Attribute=groupSet"),
            "InvalidInstanceID.NotFound");
  for (const char* bad : {"GroupSet", "groupSet%00", "%3Cx%3E", "userData%20"}) {
    EXPECT_EQ(error(action + "&InstanceId=" + id + "&Attribute=" + bad), "InvalidParameterValue")
        << bad;
  }
  EXPECT_EQ(error(action + "&InstanceId=" + id + "&Attribute=groupSet&DryRun=maybe"),
            "InvalidParameterValue");
  EXPECT_EQ(error(action + "&InstanceId=" + id + "&Attribute=groupSet&DryRun=true", 412),
            "DryRunOperation");
  // A long attribute name is refused and not echoed whole.
  http::Reply big = send(action + "&InstanceId=" + id + "&Attribute=" + std::string(100000, 'a'));
  EXPECT_EQ(big.status, 400);
  EXPECT_LT(big.body.size(), 4096u);
}

TEST_F(Ec2ApiTest, ErrorsHaveEc2sShape) {
  http::Reply r =
      send("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("i-0123456789abcdef0"), std::string::npos);
  EXPECT_EQ(error("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-nope"),
            "InvalidInstanceID.Malformed");
  EXPECT_EQ(error("Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0"),
            "InvalidInstanceID.NotFound");
  EXPECT_EQ(error("Action=TerminateInstances&Version=2016-11-15"), "MissingParameter");
  EXPECT_EQ(error("Action=LaunchRockets&Version=2016-11-15"), "InvalidAction");
  EXPECT_EQ(error("Version=2016-11-15"), "MissingParameter");
  EXPECT_EQ(error(""), "MissingParameter");
  EXPECT_EQ(error("Action=DescribeInstances&Version=2012-01-01"), "InvalidParameterValue");
  EXPECT_EQ(error("Action=DescribeInstances&Action=DescribeInstances"), "InvalidParameterValue");
  EXPECT_EQ(error("Action=DescribeInstances&Version=2016-11-15&Bad%ZZ=1"), "InvalidParameterValue");

  // Bad counts change nothing.
  const auto before = bed_.store_dump();
  const std::string run = "Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id();
  EXPECT_EQ(error(run + "&MinCount=0&MaxCount=1"), "InvalidParameterValue");
  EXPECT_EQ(error(run + "&MinCount=abc&MaxCount=1"), "InvalidParameterValue");
  EXPECT_EQ(error(run + "&MinCount=3&MaxCount=2"), "InvalidParameterValue");
  EXPECT_EQ(error(run + "&MinCount=1&MaxCount=100000"), "InvalidParameterValue");
  EXPECT_EQ(error(run + "&MaxCount=1"), "MissingParameter");
  EXPECT_EQ(error("Action=RunInstances&Version=2016-11-15&MinCount=1&MaxCount=1"),
            "MissingParameter");
  EXPECT_EQ(error(run + "&MinCount=1&MaxCount=1&InstanceType=z9.big"), "InvalidParameterValue");
  EXPECT_EQ(error(run + "&MinCount=1&MaxCount=1&InstanceType=t3.2xlarge"),
            "InsufficientInstanceCapacity");
  // Text that is not UTF-8 is refused, not stored.
  EXPECT_EQ(error(run + "&MinCount=1&MaxCount=1&KeyName=%FF%FE"), "InvalidParameterValue");
  EXPECT_EQ(error("Action=CreateSecurityGroup&Version=2016-11-15&GroupName=g"
                  "&GroupDescription=%C3%28"),
            "InvalidParameterValue");
  for (const char* bad : {"%C0%AF", "%ED%A0%80", "%F4%90%80%80", "ab%E2%82", "%80"})
    EXPECT_EQ(error(run + "&MinCount=1&MaxCount=1&KeyName=" + bad), "InvalidParameterValue") << bad;
  EXPECT_EQ(bed_.store_dump(), before);
  // UTF-8 is fine.
  const std::string utf8 = "cl%C3%A9%E2%82%AC%F0%9F%98%80";
  ok(run +
     "&MinCount=1&MaxCount=1&TagSpecification.1.ResourceType=instance"
     "&TagSpecification.1.Tag.1.Key=n&TagSpecification.1.Tag.1.Value=" +
     utf8);
}

TEST_F(Ec2ApiTest, SecurityGroupsTagsAndConsoleThroughTheApi) {
  Node g =
      ok("Action=CreateSecurityGroup&Version=2016-11-15&GroupName=web"
         "&GroupDescription=web+servers");
  const std::string sg = g.at("groupId");
  ASSERT_TRUE(is_id(sg, "sg")) << sg;
  const std::string authorize =
      "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId=" + sg +
      "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22"
      "&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0";
  EXPECT_EQ(ok(authorize).at("return"), "true");
  EXPECT_EQ(error(authorize), "InvalidPermission.Duplicate");
  Node d = ok("Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1=" + sg);
  EXPECT_EQ(d.at("securityGroupInfo/item/ipPermissions/item/fromPort"), "22");
  EXPECT_EQ(d.at("securityGroupInfo/item/ipPermissions/item/ipRanges/item/cidrIp"), "0.0.0.0/0");

  Node r = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
              "&MinCount=1&MaxCount=1&InstanceType=n1.tiny&SecurityGroupId.1=" + sg);
  const std::string id = r.at("instancesSet/item/instanceId");
  EXPECT_EQ(error("Action=DeleteSecurityGroup&Version=2016-11-15&GroupId=" + sg),
            "DependencyViolation");
  ok("Action=CreateTags&Version=2016-11-15&ResourceId.1=" + id + "&Tag.1.Key=Name&Tag.1.Value=db");
  EXPECT_EQ(ok("Action=DescribeTags&Version=2016-11-15&Filter.1.Name=resource-id"
               "&Filter.1.Value.1=" +
               id)
                .at("tagSet/item/value"),
            "db");

  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  auto inst = bed_.cloud().instance(id);
  ASSERT_TRUE(inst.ok());
  bed_.driver().set_console(inst->host, id, "login: ");
  Node c = ok("Action=GetConsoleOutput&Version=2016-11-15&InstanceId=" + id);
  EXPECT_EQ(c.at("output"), "bG9naW46IA==");  // base64, as botocore decodes it
}

class Ec2ApiSigV4Test : public Ec2ApiTest {
 protected:
  Ec2ApiSigV4Test() : Ec2ApiTest(ApiCredentials{{{"AKIDTEST", "the-secret"}}}) {}

  http::Request signed_request(const std::string& body, const std::string& secret,
                               const std::string& region) {
    http::Request r = form_request(body);
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
    r.headers.emplace("x-amz-date", date);
    SigV4Request s;
    s.method = r.method;
    s.path = r.path;
    s.headers = r.headers;
    s.body = r.body;
    auto auth = sign_sigv4(s, "AKIDTEST", secret, region);
    EXPECT_TRUE(auth.ok()) << auth.message();
    if (auth.ok()) r.headers.emplace("authorization", *auth);
    return r;
  }
  std::string code_of(const http::Reply& r) { return parse_xml(r.body).at("Errors/Error/Code"); }
};

TEST_F(Ec2ApiSigV4Test, SignedRequestsPassOthersDoNot) {
  const std::string body = "Action=DescribeInstances&Version=2016-11-15";
  http::Reply good =
      route_cloud_request(bed_.cloud(), api_, signed_request(body, "the-secret", "nimbus-west-1"));
  EXPECT_EQ(good.status, 200) << good.body;

  http::Reply wrong = route_cloud_request(bed_.cloud(), api_,
                                          signed_request(body, "not-the-secret", "nimbus-west-1"));
  EXPECT_EQ(wrong.status, 403) << wrong.body;
  EXPECT_EQ(code_of(wrong), "SignatureDoesNotMatch");

  // A body changed after signing.
  http::Request changed = signed_request(body, "the-secret", "nimbus-west-1");
  changed.body += "&InstanceId.1=i-0123456789abcdef0";
  EXPECT_EQ(code_of(route_cloud_request(bed_.cloud(), api_, changed)), "SignatureDoesNotMatch");

  http::Reply none = route_cloud_request(bed_.cloud(), api_, form_request(body));
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(code_of(none), "AuthFailure");

  http::Reply elsewhere =
      route_cloud_request(bed_.cloud(), api_, signed_request(body, "the-secret", "us-east-1"));
  EXPECT_EQ(elsewhere.status, 401);
  EXPECT_EQ(code_of(elsewhere), "AuthFailure");
  const std::string message = parse_xml(elsewhere.body).at("Errors/Error/Message");
  EXPECT_NE(message.find("us-east-1"), std::string::npos) << message;
  EXPECT_NE(message.find("nimbus-west-1"), std::string::npos) << message;

  // A signed RunInstances does run; a refused one changed nothing.
  EXPECT_TRUE(bed_.cloud().instances()->empty());
  http::Reply run = route_cloud_request(
      bed_.cloud(), api_,
      signed_request("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                         "&MinCount=1&MaxCount=1&InstanceType=n1.tiny",
                     "the-secret", "nimbus-west-1"));
  EXPECT_EQ(run.status, 200) << run.body;
  EXPECT_EQ(bed_.cloud().instances()->size(), 1u);
}

TEST_F(Ec2ApiTest, HeartbeatNeedsTheJoinToken) {
  TestHost h{"h-new", "nimbus-west-1c"};
  http::Request r;
  r.method = "POST";
  r.path = "/nimbus/v1/hosts/heartbeat";
  r.body = CloudTestBed::heartbeat_body(h, nlohmann::json::array(), nlohmann::json::array()).dump();
  http::Reply no = route_cloud_request(bed_.cloud(), api_, r);
  EXPECT_EQ(no.status, 401);
  r.headers.emplace("authorization", "Bearer wrong-token");
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api_, r).status, 401);
  EXPECT_FALSE(bed_.cloud().store().get(std::string(kHostsPrefix) + "h-new")->has_value());

  r.headers = {{"authorization", std::string("Bearer ") + CloudTestBed::kJoinToken}};
  http::Reply yes = route_cloud_request(bed_.cloud(), api_, r);
  EXPECT_EQ(yes.status, 200) << yes.body;
  auto j = nlohmann::json::parse(yes.body);
  EXPECT_EQ(j["interval_s"], 2);
  EXPECT_TRUE(bed_.cloud().store().get(std::string(kHostsPrefix) + "h-new")->has_value());

  r.body = "{not json";
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api_, r).status, 400);
  r.body = R"({"host_id": "h-new"})";
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api_, r).status, 400);
  r.method = "GET";
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api_, r).status, 405);

  r.path = "/nimbus/v1/hosts";
  http::Reply hosts = route_cloud_request(bed_.cloud(), api_, r);
  EXPECT_EQ(hosts.status, 200);
  EXPECT_EQ(nlohmann::json::parse(hosts.body)["hosts"].size(), 7u);
}

TEST_F(Ec2ApiTest, ImageFilesAreServedAndNothingElse) {
  http::Request r;
  r.method = "GET";
  r.headers = {{"authorization", std::string("Bearer ") + CloudTestBed::kJoinToken}};
  const std::string base = "/nimbus/v1/images/" + bed_.image_id() + "/";
  r.path = base + "Image";
  http::Reply k = route_cloud_request(bed_.cloud(), api_, r);
  EXPECT_EQ(k.status, 200);
  EXPECT_EQ(k.body, "a kernel, for the test's purposes");
  EXPECT_EQ(k.content_type, "application/octet-stream");
  r.path = base + "rootfs.ext4";
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api_, r).body.size(), size_t{3} << 20);

  // A file of the image's directory that is not one of its files, and escapes.
  { std::ofstream(bed_.image_dir() + "/secret") << "private"; }
  for (const std::string& path :
       {base + "secret", base + "../" + bed_.image_id() + "/Image", base + "..%2FImage",
        base + "../../../../etc/passwd", base, base + "Image/", base + "/Image",
        std::string("/nimbus/v1/images/") + "../../etc/passwd",
        std::string("/nimbus/v1/images/ami-0123456789abcdef0/Image"),
        std::string("/nimbus/v1/images/") + bed_.image_id(), std::string("/nimbus/v1/images/")}) {
    r.path = path;
    http::Reply reply = route_cloud_request(bed_.cloud(), api_, r);
    EXPECT_EQ(reply.status, 404) << path;
    EXPECT_EQ(reply.body.find("private"), std::string::npos) << path;
    EXPECT_EQ(reply.body.find("kernel"), std::string::npos) << path;
  }
  r.path = base + "Image";
  r.headers.clear();
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api_, r).status, 401);
  r.path = "/nimbus/v1/health";
  http::Reply health = route_cloud_request(bed_.cloud(), api_, r);
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(nlohmann::json::parse(health.body)["leader"], false);
  bed_.cloud().set_leader(true);
  EXPECT_EQ(nlohmann::json::parse(route_cloud_request(bed_.cloud(), api_, r).body)["leader"], true);
  r.path = "/elsewhere";
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api_, r).status, 404);
}

}  // namespace
}  // namespace nimbus::cloud
