// The private network: address arithmetic, the default VPC and subnets, allocation of
// instances' addresses in the launch's transaction (also under parallel launches), release
// at termination, the VM create's "network", heartbeat tunnel peers, and DescribeVpcs /
// DescribeSubnets / RunInstances through the EC2 API.
#include "cloud/networks.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/ec2_api.h"
#include "cloud/ec2_form_request.h"
#include "cloud/ec2_xml_test_util.h"

namespace nimbus::cloud {
namespace {

constexpr const char* kZoneA = "nimbus-west-1a";
constexpr const char* kZoneB = "nimbus-west-1b";

TEST(NetworkAddresses, ParsesOnlyDottedQuadsAndAlignedCidrs) {
  EXPECT_EQ(parse_ipv4("172.31.16.5"), 0xac1f1005u);
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0u);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xffffffffu);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", " 1.2.3.4", "1.2.3.4 ",
                          "1..3.4", "a.b.c.d", "1.2.3.-4", "1.2.3.4/20", "99999999999.1.1.1"})
    EXPECT_FALSE(parse_ipv4(bad).has_value()) << bad;
  EXPECT_EQ(format_ipv4(0xac1f1005u), "172.31.16.5");

  auto c = parse_cidr("172.31.16.0/20");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->text(), "172.31.16.0/20");
  EXPECT_EQ(c->size(), 4096u);
  EXPECT_EQ(c->assignable_count(), 4091u);  // what EC2 shows for a default subnet
  EXPECT_EQ(format_ipv4(c->gateway()), "172.31.16.1");
  for (const char* reserved : {"172.31.16.0", "172.31.16.1", "172.31.16.2", "172.31.16.3",
                               "172.31.31.255", "172.31.32.4", "172.31.15.255"})
    EXPECT_FALSE(c->assignable(*parse_ipv4(reserved))) << reserved;
  for (const char* ok : {"172.31.16.4", "172.31.17.0", "172.31.31.254"})
    EXPECT_TRUE(c->assignable(*parse_ipv4(ok))) << ok;
  for (const char* bad : {"172.31.16.1/20", "172.31.16.0/33", "172.31.16.0", "172.31.16.0/",
                          "172.31.16.0/020", "/20"})
    EXPECT_FALSE(parse_cidr(bad).has_value()) << bad;
  ASSERT_TRUE(parse_cidr("0.0.0.0/0").has_value());
  EXPECT_TRUE(parse_cidr("0.0.0.0/0")->contains(0x01020304u));

  EXPECT_TRUE(valid_tunnel_endpoint("127.0.0.1:4789"));
  EXPECT_TRUE(valid_tunnel_endpoint("10.0.0.2:65535"));
  for (const char* bad :
       {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "0.0.0.0:4789", "224.0.0.1:4789",
        "255.255.255.255:1", "host:4789", "[::1]:4789", ":4789", "127.0.0.1:", "127.0.0.1:47 89"})
    EXPECT_FALSE(valid_tunnel_endpoint(bad)) << bad;
}

TEST(Networks, DefaultVpcAndOneDefaultSubnetPerZone) {
  CloudTestBed bed;
  auto vpcs = bed.cloud().vpcs();
  ASSERT_TRUE(vpcs.ok());
  ASSERT_EQ(vpcs->size(), 1u);
  const VpcRecord& vpc = vpcs->at(0);
  EXPECT_EQ(vpc.id, default_vpc_id("nimbus-west-1"));
  EXPECT_TRUE(vpc.id.rfind("vpc-", 0) == 0 && vpc.id.size() == 21) << vpc.id;
  EXPECT_EQ(vpc.cidr_block, "172.31.0.0/16");
  EXPECT_TRUE(vpc.is_default);
  EXPECT_EQ(vpc.vni, kDefaultVni);
  auto subnets = bed.cloud().subnets();
  ASSERT_TRUE(subnets.ok());
  ASSERT_EQ(subnets->size(), 3u);
  std::map<std::string, std::string> cidr_of;
  for (const auto& s : *subnets) {
    EXPECT_EQ(s.vpc_id, vpc.id);
    EXPECT_TRUE(s.default_for_az);
    EXPECT_EQ(s.id, default_subnet_id("nimbus-west-1", s.zone));
    cidr_of[s.zone] = s.cidr_block;
  }
  EXPECT_EQ(cidr_of, (std::map<std::string, std::string>{{"nimbus-west-1a", "172.31.0.0/20"},
                                                         {"nimbus-west-1b", "172.31.16.0/20"},
                                                         {"nimbus-west-1c", "172.31.32.0/20"}}));
  // The default security group is in it.
  auto groups = bed.cloud().security_groups();
  ASSERT_TRUE(groups.ok());
  ASSERT_FALSE(groups->empty());
  for (const auto& g : *groups) EXPECT_EQ(g.vpc_id, vpc.id);

  // Starting again changes nothing.
  const auto before = bed.store_dump();
  ASSERT_TRUE(bed.cloud().init().ok());
  EXPECT_EQ(bed.store_dump(), before);

  // A control plane started with one more zone adds its subnet in the next free block;
  // the others stay as they are (even when the zone list is in another order).
  CloudOptions more = CloudTestBed::default_options();
  more.zones = {"nimbus-west-1d", "nimbus-west-1c", "nimbus-west-1b", "nimbus-west-1a"};
  Cloud second(bed.store(), more);
  ASSERT_TRUE(second.init().ok());
  auto after = second.subnets();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 4u);
  for (const auto& s : *after) {
    if (s.zone == "nimbus-west-1d") {
      EXPECT_EQ(s.cidr_block, "172.31.48.0/20");
    } else {
      EXPECT_EQ(s.cidr_block, cidr_of[s.zone]) << s.zone;
    }
  }
  ASSERT_EQ(second.vpcs()->size(), 1u);
}

TEST(Networks, OlderSecurityGroupsMoveIntoTheDefaultVpc) {
  CloudTestBed bed;
  auto created = bed.cloud().create_security_group("web", "old one", {});
  ASSERT_TRUE(created.ok());
  SecurityGroup g = *created;
  g.vpc_id = "vpc-default";  // as records from before VPCs have it
  ASSERT_TRUE(put(bed.store(), kSecurityGroupsPrefix + g.id, to_json(g).dump()).ok());
  ASSERT_TRUE(bed.cloud().init().ok());
  auto again = bed.cloud().resolve_group(g.id, "");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->vpc_id, default_vpc_id("nimbus-west-1"));
}

TEST(Networks, SeventeenZonesLeaveTheLastWithoutADefaultSubnet) {
  CloudOptions o = CloudTestBed::default_options();
  for (int n = 0; n < 17; ++n) o.zones.push_back(fmt::format("nimbus-west-1z{}", n));
  CloudTestBed bed(o);
  auto subnets = bed.cloud().subnets();
  ASSERT_TRUE(subnets.ok());
  EXPECT_EQ(subnets->size(), 16u);  // /20s of a /16
  std::set<std::string> cidrs;
  for (const auto& s : *subnets) cidrs.insert(s.cidr_block);
  EXPECT_EQ(cidrs.size(), 16u);
  // The zone without one: a launch there says so and changes nothing.
  bed.add_hosts(1, {}, {"nimbus-west-1z16"});
  const auto before = bed.store_dump();
  RunRequest r = bed.run_request();
  r.zone = "nimbus-west-1z16";
  auto res = bed.cloud().run_instances(r);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, "InvalidParameterValue") << res.error().message;
  EXPECT_EQ(bed.store_dump(), before);
}

class NetworkLaunch : public ::testing::Test {
 protected:
  NetworkLaunch() {
    TestHost big;
    big.cpus = 64;
    big.memory_mib = 1 << 20;
    big.disk_mib = 1 << 30;
    bed_.add_hosts(2, big);
  }
  Reservation launch(RunRequest r) {
    auto res = bed_.cloud().run_instances(r);
    EXPECT_TRUE(res.ok()) << (res.ok() ? "" : res.error().code + ": " + res.error().message);
    return res.ok() ? *res : Reservation{};
  }
  RunRequest in_zone(const std::string& zone, unsigned count = 1) {
    RunRequest r = bed_.run_request("n1.tiny", count);
    r.zone = zone;
    return r;
  }
  InstanceRecord get(const std::string& id) {
    auto i = bed_.cloud().instance(id);
    EXPECT_TRUE(i.ok()) << id;
    return i.ok() ? *i : InstanceRecord{};
  }
  // The instance an allocated address names ("" when the address is free).
  std::string holder(const std::string& subnet, const std::string& ip) {
    auto kv = bed_.store().get(address_key(subnet, ip));
    if (!kv.ok() || !*kv) return "";
    return nlohmann::json::parse((*kv)->value).value("instance", "");
  }
  std::string expect_error(const RunRequest& r) {
    const auto before = bed_.store_dump();
    auto res = bed_.cloud().run_instances(r);
    EXPECT_FALSE(res.ok());
    EXPECT_EQ(bed_.store_dump(), before) << "a refused launch changed the store";
    return res.ok() ? "" : res.error().code;
  }
  bool pass_until(const std::string& id, InstanceState state) {
    for (int n = 0; n < 8; ++n) {
      bed_.reconciler().pass_now();
      if (get(id).state == state) return true;
    }
    return false;
  }

  CloudTestBed bed_;
  const std::string subnet_a_ = default_subnet_id("nimbus-west-1", kZoneA);
  const std::string subnet_b_ = default_subnet_id("nimbus-west-1", kZoneB);
};

TEST_F(NetworkLaunch, EachInstanceGetsTheNextFreeAddressOfItsZonesSubnet) {
  Reservation res = launch(in_zone(kZoneB, 3));
  ASSERT_EQ(res.instances.size(), 3u);
  std::vector<std::string> ips;
  for (const auto& i : res.instances) {
    EXPECT_EQ(i.subnet_id, subnet_b_);
    EXPECT_EQ(i.vpc_id, default_vpc_id("nimbus-west-1"));
    EXPECT_EQ(get(i.id).private_ip, i.private_ip) << "recorded at launch";
    EXPECT_EQ(holder(subnet_b_, i.private_ip), i.id);
    ips.push_back(i.private_ip);
  }
  std::sort(ips.begin(), ips.end());
  EXPECT_EQ(ips, (std::vector<std::string>{"172.31.16.4", "172.31.16.5", "172.31.16.6"}));
  // Without a zone: each in the default subnet of the zone it was placed in.
  Reservation spread = launch(bed_.run_request("n1.tiny", 3));
  for (const auto& i : spread.instances) {
    auto s = bed_.cloud().subnet(i.subnet_id);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->zone, i.zone);
    EXPECT_TRUE(parse_cidr(s->cidr_block)->assignable(*parse_ipv4(i.private_ip))) << i.private_ip;
  }
  // By SubnetId.
  RunRequest r = bed_.run_request();
  r.subnet_id = subnet_a_;
  Reservation by_id = launch(r);
  ASSERT_EQ(by_id.instances.size(), 1u);
  EXPECT_EQ(by_id.instances[0].zone, kZoneA);
  EXPECT_EQ(by_id.instances[0].subnet_id, subnet_a_);
}

TEST_F(NetworkLaunch, ParallelLaunchesNeverShareAnAddress) {
  constexpr int kThreads = 8, kLaunches = 5, kPerLaunch = 3;
  std::mutex mu;
  std::vector<InstanceRecord> launched;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kLaunches; ++n) {
        // Half one at a time into zone a (two launches on its two hosts claim on different
        // allocations: only the address keys keep them apart), half three anywhere.
        RunRequest r = bed_.run_request("n1.tiny", t % 2 == 0 ? 1 : kPerLaunch);
        if (t % 2 == 0) r.zone = kZoneA;
        auto res = bed_.cloud().run_instances(r);
        if (!res.ok()) {
          ++failed;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& i : res->instances) launched.push_back(i);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(launched.size(), static_cast<size_t>(kThreads / 2 * kLaunches * (1 + kPerLaunch)));
  std::set<std::string> seen;
  for (const auto& i : launched) {
    EXPECT_TRUE(seen.insert(i.subnet_id + "/" + i.private_ip).second)
        << i.private_ip << " given twice";
    EXPECT_EQ(holder(i.subnet_id, i.private_ip), i.id);
  }
  // The store holds exactly these addresses, and the lowest ones of each subnet.
  auto keys = bed_.store().list(kAddressesPrefix);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), launched.size());
  std::map<std::string, unsigned> per_subnet;
  for (const auto& i : launched) ++per_subnet[i.subnet_id];
  for (const auto& [subnet, count] : per_subnet) {
    auto used = bed_.cloud().used_addresses(subnet);
    ASSERT_TRUE(used.ok());
    const auto cidr = *parse_cidr(bed_.cloud().subnet(subnet)->cidr_block);
    EXPECT_EQ(*used->rbegin() - cidr.base, count + 3) << subnet << ": no gaps";
  }
}

// A store that, just before the first launch transaction that allocates an address, lets
// something else commit first (a launch on another host that took the same address).
class RacingStore : public Store {
 public:
  RacingStore(Store& inner, std::function<void(Store&)> race) : inner_(inner), race_(race) {}
  Result<std::optional<KeyValue>> get(const std::string& key) override { return inner_.get(key); }
  Result<std::vector<KeyValue>> list(const std::string& prefix) override {
    return inner_.list(prefix);
  }
  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) override {
    const bool allocates = std::any_of(ops.begin(), ops.end(), [](const Op& op) {
      return op.key.rfind(kAddressesPrefix, 0) == 0 && op.kind == Op::Kind::kPut;
    });
    if (allocates && race_) {
      auto race = std::move(race_);
      race_ = nullptr;
      race(inner_);
    }
    return inner_.txn(compares, ops);
  }
  std::string describe() const override { return "racing:" + inner_.describe(); }

 private:
  Store& inner_;
  std::function<void(Store&)> race_;
};

TEST_F(NetworkLaunch, AnAddressTakenMeanwhileOnAnotherHostIsNotGivenAgain) {
  // The launch reads .4 as free; before it commits, another control plane's launch on
  // another host (another allocation: no conflict there) takes .4. Only the address key's
  // compare stops the first from taking it too: it looks again and gets .5.
  const std::string other = "i-0123456789abcdef0";
  RacingStore racing(bed_.store(), [&](Store& s) {
    auto r = s.txn({{address_key(subnet_a_, "172.31.0.4"), 0}},
                   {{Op::Kind::kPut, address_key(subnet_a_, "172.31.0.4"),
                     nlohmann::json{{"instance", other}}.dump()}});
    ASSERT_TRUE(r.ok() && r->succeeded);
  });
  Cloud cloud(racing, CloudTestBed::default_options());
  ASSERT_TRUE(cloud.init().ok());
  for (const auto& h : {"h-a-1", "h-a-2", "h-b-1", "h-b-2", "h-c-1", "h-c-2"}) {
    TestHost t;
    t.id = h;
    t.zone = std::string("nimbus-west-1") + h[2];
    t.cpus = 64;
    t.memory_mib = 1 << 20;
    t.disk_mib = 1 << 30;
    ASSERT_TRUE(cloud
                    .heartbeat(CloudTestBed::heartbeat_body(t, nlohmann::json::array(),
                                                            nlohmann::json::array()))
                    .ok());
  }
  auto res = cloud.run_instances(in_zone(kZoneA));
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_EQ(res->instances.at(0).private_ip, "172.31.0.5");
  EXPECT_EQ(holder(subnet_a_, "172.31.0.4"), other);
  EXPECT_EQ(holder(subnet_a_, "172.31.0.5"), res->instances.at(0).id);
}

TEST_F(NetworkLaunch, TerminationFreesTheAddressAStopDoesNot) {
  const InstanceRecord first = launch(in_zone(kZoneA)).instances.at(0);
  const InstanceRecord second = launch(in_zone(kZoneA)).instances.at(0);
  EXPECT_EQ(first.private_ip, "172.31.0.4");
  EXPECT_EQ(second.private_ip, "172.31.0.5");
  ASSERT_TRUE(pass_until(first.id, InstanceState::kRunning));
  ASSERT_TRUE(pass_until(second.id, InstanceState::kRunning));

  // Stopped: it keeps its address (and shows it).
  ASSERT_TRUE(bed_.cloud().stop_instances({second.id}, false).ok());
  ASSERT_TRUE(pass_until(second.id, InstanceState::kStopped));
  EXPECT_EQ(holder(subnet_a_, "172.31.0.5"), second.id);
  EXPECT_EQ(get(second.id).private_ip, "172.31.0.5");

  // Shutting down: still its own; terminated: free, and the next launch gets it.
  ASSERT_TRUE(bed_.cloud().terminate_instances({first.id}).ok());
  EXPECT_EQ(holder(subnet_a_, "172.31.0.4"), first.id);
  ASSERT_TRUE(pass_until(first.id, InstanceState::kTerminated));
  EXPECT_EQ(holder(subnet_a_, "172.31.0.4"), "");
  const InstanceRecord third = launch(in_zone(kZoneA)).instances.at(0);
  EXPECT_EQ(third.private_ip, "172.31.0.4");
  EXPECT_EQ(holder(subnet_a_, "172.31.0.4"), third.id);

  // The old record's release again (a reconciler that died before recording the
  // termination) leaves the new holder's address alone.
  ASSERT_TRUE(bed_.cloud().release_address(get(first.id)).ok());
  EXPECT_EQ(holder(subnet_a_, "172.31.0.4"), third.id);

  // The stopped one starts again with its address.
  ASSERT_TRUE(bed_.cloud().start_instances({second.id}).ok());
  ASSERT_TRUE(pass_until(second.id, InstanceState::kRunning));
  EXPECT_EQ(get(second.id).private_ip, "172.31.0.5");
}

TEST_F(NetworkLaunch, AHostThatRefusesTheVmFreesTheAddress) {
  const InstanceRecord i = launch(in_zone(kZoneA)).instances.at(0);
  bed_.driver().set_capacity(i.host, 0, 0);  // the cloud thinks it fits; the host says no
  ASSERT_TRUE(pass_until(i.id, InstanceState::kTerminated));
  EXPECT_EQ(holder(subnet_a_, i.private_ip), "");
}

TEST_F(NetworkLaunch, ExplicitPrivateIpAddress) {
  RunRequest r = bed_.run_request();
  r.subnet_id = subnet_b_;
  r.private_ip = "172.31.20.77";
  const InstanceRecord i = launch(r).instances.at(0);
  EXPECT_EQ(i.private_ip, "172.31.20.77");
  EXPECT_EQ(i.zone, kZoneB);
  EXPECT_EQ(holder(subnet_b_, "172.31.20.77"), i.id);

  // Taken.
  EXPECT_EQ(expect_error(r), "InvalidIPAddress.InUse");
  // Without SubnetId: the default subnet that holds it (its zone).
  RunRequest by_ip = bed_.run_request();
  by_ip.private_ip = "172.31.1.9";
  const InstanceRecord j = launch(by_ip).instances.at(0);
  EXPECT_EQ(j.subnet_id, subnet_a_);
  EXPECT_EQ(j.zone, kZoneA);
  by_ip.client_token = "";
  EXPECT_EQ(expect_error(by_ip), "InvalidIPAddress.InUse");
  // The automatic allocation skips what was taken by hand.
  RunRequest fill = in_zone(kZoneB, 1);
  EXPECT_EQ(launch(fill).instances.at(0).private_ip, "172.31.16.4");
}

TEST_F(NetworkLaunch, RefusedNetworkParametersChangeNothing) {
  auto with = [&](const std::string& subnet, const std::string& ip, const std::string& zone = "",
                  unsigned count = 1) {
    RunRequest r = bed_.run_request("n1.tiny", count);
    r.subnet_id = subnet;
    r.private_ip = ip;
    r.zone = zone;
    return r;
  };
  // The reserved addresses of the subnet, and ones outside it.
  for (const char* ip : {"172.31.16.0", "172.31.16.1", "172.31.16.2", "172.31.16.3",
                         "172.31.31.255", "172.31.0.9", "10.0.0.5"})
    EXPECT_EQ(expect_error(with(subnet_b_, ip)), "InvalidParameterValue") << ip;
  for (const char* ip : {"172.31.16.256", "not-an-ip", "172.31.16.5/20", "", " 172.31.16.5"}) {
    if (*ip) {
      EXPECT_EQ(expect_error(with(subnet_b_, ip)), "InvalidParameterValue") << ip;
    }
  }
  // In no default subnet, or not in the zone given.
  EXPECT_EQ(expect_error(with("", "172.31.200.5")), "InvalidParameterValue");
  EXPECT_EQ(expect_error(with("", "172.31.16.9", kZoneA)), "InvalidParameterValue");
  // A subnet in another zone than the Placement's.
  EXPECT_EQ(expect_error(with(subnet_b_, "", kZoneA)), "InvalidParameterValue");
  // Unknown and malformed subnets.
  EXPECT_EQ(expect_error(with("subnet-0123456789abcdef0", "")), "InvalidSubnetID.NotFound");
  EXPECT_EQ(expect_error(with("subnet-nope", "")), "InvalidSubnetID.Malformed");
  EXPECT_EQ(expect_error(with("vpc-0123456789abcdef0", "")), "InvalidSubnetID.Malformed");
  // One address for several instances.
  EXPECT_EQ(expect_error(with(subnet_b_, "172.31.16.9", "", 2)), "InvalidParameterCombination");
  // Nothing was allocated by any of them.
  auto keys = bed_.store().list(kAddressesPrefix);
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
}

TEST_F(NetworkLaunch, ClientTokenCoversTheSubnetAndAddress) {
  RunRequest r = bed_.run_request();
  r.subnet_id = subnet_b_;
  r.private_ip = "172.31.16.50";
  r.client_token = "net-token";
  const Reservation first = launch(r);
  const Reservation again = launch(r);  // the same reservation, not InUse
  EXPECT_EQ(again.id, first.id);
  RunRequest other = r;
  other.private_ip = "172.31.16.51";
  EXPECT_EQ(expect_error(other), "IdempotentParameterMismatch");
}

TEST_F(NetworkLaunch, TheVmCreateCarriesTheNetworkAndTheMetadataItsAddress) {
  const InstanceRecord i = launch(in_zone(kZoneB)).instances.at(0);
  bed_.reconciler().pass_now();
  std::optional<nlohmann::json> create;
  for (const auto& c : bed_.driver().calls()) {
    if (c.method == "POST" && c.path == "/v1/vms") create = c.body;
  }
  ASSERT_TRUE(create.has_value());
  EXPECT_EQ(
      (*create)["network"],
      (nlohmann::json{
          {"vni", 1}, {"address", "172.31.16.4/16"}, {"gateway", "172.31.16.1"}, {"mtu", 1450}}));
  const auto& md = (*create)["metadata"]["data"]["meta-data"];
  EXPECT_EQ(md["local-ipv4"], "172.31.16.4");
  EXPECT_EQ(md["local-hostname"], "ip-172-31-16-4.nimbus-west-1.compute.internal");
  const auto doc = nlohmann::json::parse(
      (*create)["metadata"]["data"]["dynamic"]["instance-identity"]["document"].get<std::string>());
  EXPECT_EQ(doc["privateIp"], "172.31.16.4");

  // Running, the host's own address for the VM (10.88.x.y) does not replace it.
  ASSERT_TRUE(pass_until(i.id, InstanceState::kRunning));
  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  EXPECT_EQ(get(i.id).private_ip, "172.31.16.4");
  auto vm = bed_.driver().vm(i.host, i.id);
  ASSERT_TRUE(vm.has_value());
  EXPECT_EQ(vm->metadata["data"]["meta-data"]["local-ipv4"], "172.31.16.4");
  // Only the MAC was new: the metadata went once more, and not again.
  const auto lines = bed_.driver().call_lines(i.host);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "PUT /v1/vms/" + i.id + "/metadata"), 1);
}

TEST_F(NetworkLaunch, InstancesFromBeforeVpcsKeepTheirHostsAddress) {
  const InstanceRecord i = launch(in_zone(kZoneA)).instances.at(0);
  // As a record written before subnets existed: no subnet, no address.
  ASSERT_TRUE(bed_.cloud()
                  .update_instance(i.id,
                                   [](InstanceRecord& r) {
                                     r.vpc_id.clear();
                                     r.subnet_id.clear();
                                     r.private_ip.clear();
                                     return true;
                                   })
                  .ok());
  ASSERT_TRUE(bed_.store()
                  .txn({}, {{Op::Kind::kDelete, address_key(subnet_a_, i.private_ip), ""}})
                  ->succeeded);
  ASSERT_TRUE(pass_until(i.id, InstanceState::kRunning));
  for (const auto& c : bed_.driver().calls()) {
    if (c.method == "POST" && c.path == "/v1/vms") {
      EXPECT_FALSE(c.body->contains("network"));
    }
  }
  EXPECT_EQ(get(i.id).private_ip, "10.88.0.2");
  // Terminating it frees nothing of anyone's.
  const InstanceRecord other = launch(in_zone(kZoneA)).instances.at(0);
  EXPECT_EQ(other.private_ip, "172.31.0.4");
  ASSERT_TRUE(bed_.cloud().terminate_instances({i.id}).ok());
  ASSERT_TRUE(pass_until(i.id, InstanceState::kTerminated));
  EXPECT_EQ(holder(subnet_a_, "172.31.0.4"), other.id);
}

// --- heartbeats: tunnel endpoints and peers

class TunnelPeers : public ::testing::Test {
 protected:
  Ec2Result<nlohmann::json> beat(const std::string& id, const std::string& zone,
                                 const nlohmann::json& endpoint) {
    TestHost h;
    h.id = id;
    h.zone = zone;
    nlohmann::json body =
        CloudTestBed::heartbeat_body(h, nlohmann::json::array(), nlohmann::json::array());
    if (!endpoint.is_null()) body["tunnel_endpoint"] = endpoint;
    return bed_.cloud().heartbeat(body);
  }
  static std::set<std::string> peers(Ec2Result<nlohmann::json> reply) {
    std::set<std::string> out;
    EXPECT_TRUE(reply.ok()) << (reply.ok() ? "" : reply.error().message);
    if (!reply.ok()) return out;
    EXPECT_TRUE(reply->contains("tunnel_peers") && (*reply)["tunnel_peers"].is_array());
    for (const auto& p : (*reply)["tunnel_peers"])
      out.insert(p["host"].get<std::string>() + "=" + p["endpoint"].get<std::string>());
    return out;
  }
  CloudTestBed bed_;
};

TEST_F(TunnelPeers, EveryReplyListsTheOtherLiveHostsWithATunnel) {
  EXPECT_EQ(peers(beat("h1", kZoneA, "127.0.0.1:4789")), std::set<std::string>{});
  EXPECT_EQ(peers(beat("h2", kZoneB, "127.0.0.2:4789")),
            (std::set<std::string>{"h1=127.0.0.1:4789"}));
  // A host without a tunnel gets the peers but is nobody's peer.
  EXPECT_EQ(peers(beat("h3", kZoneA, nullptr)),
            (std::set<std::string>{"h1=127.0.0.1:4789", "h2=127.0.0.2:4789"}));
  EXPECT_EQ(peers(beat("h1", kZoneA, "127.0.0.1:4789")),
            (std::set<std::string>{"h2=127.0.0.2:4789"}));
  auto rec = bed_.store().get(std::string(kHostsPrefix) + "h2");
  ASSERT_TRUE(rec.ok() && *rec);
  EXPECT_EQ(host_from_json((*rec)->value)->tunnel_endpoint, "127.0.0.2:4789");

  // h2 falls silent: left out once it is down; back with a new endpoint: listed with it.
  bed_.advance(std::chrono::milliseconds(6000));
  EXPECT_EQ(peers(beat("h1", kZoneA, "127.0.0.1:4789")),
            (std::set<std::string>{"h2=127.0.0.2:4789"}));
  bed_.advance(std::chrono::milliseconds(6000));
  EXPECT_EQ(peers(beat("h1", kZoneA, "127.0.0.1:4789")), std::set<std::string>{});
  EXPECT_EQ(peers(beat("h2", kZoneB, "127.0.0.2:5000")),
            (std::set<std::string>{"h1=127.0.0.1:4789"}));
  EXPECT_EQ(peers(beat("h3", kZoneA, nullptr)),
            (std::set<std::string>{"h1=127.0.0.1:4789", "h2=127.0.0.2:5000"}));
  // A heartbeat without the field: the host has no tunnel any more.
  (void)beat("h2", kZoneB, nullptr);
  EXPECT_EQ(peers(beat("h1", kZoneA, "127.0.0.1:4789")), std::set<std::string>{});
}

TEST_F(TunnelPeers, ABadEndpointIsRefusedAndChangesNothing) {
  ASSERT_TRUE(beat("h1", kZoneA, "127.0.0.1:4789").ok());
  const auto before = bed_.store_dump();
  for (const nlohmann::json& bad :
       {nlohmann::json("127.0.0.1"), nlohmann::json("127.0.0.1:0"), nlohmann::json("x:1"),
        nlohmann::json("0.0.0.0:4789"), nlohmann::json("127.0.0.1:99999"), nlohmann::json(4789),
        nlohmann::json::array({"127.0.0.1:4789"}), nlohmann::json(true),
        nlohmann::json(std::string(5000, '1'))}) {
    auto r = beat("h1", kZoneA, bad);
    ASSERT_FALSE(r.ok()) << bad.dump().substr(0, 60);
    EXPECT_EQ(r.error().code, "InvalidParameterValue");
  }
  auto r = beat("h9", kZoneA, "224.1.1.1:4789");  // nor does a new host join with one
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(bed_.store_dump(), before);
}

// --- the EC2 API

class NetworkApi : public ::testing::Test {
 protected:
  NetworkApi() : api_(bed_.cloud(), bed_.driver(), {}) { bed_.add_hosts(1); }
  XmlNode ok(const std::string& body) {
    http::Reply r = route_cloud_request(bed_.cloud(), api_, form_request(body));
    EXPECT_EQ(r.status, 200) << body << "\n" << r.body;
    return parse_xml(r.body);
  }
  std::string error(const std::string& body) {
    const auto before = bed_.store_dump();
    http::Reply r = route_cloud_request(bed_.cloud(), api_, form_request(body));
    EXPECT_EQ(r.status, 400) << body << "\n" << r.body;
    EXPECT_EQ(bed_.store_dump(), before);
    return parse_xml(r.body).at("Errors/Error/Code");
  }
  static std::vector<std::string> items(const XmlNode& doc, const char* set, const char* id) {
    std::vector<std::string> out;
    if (const XmlNode* s = doc.child(set)) {
      for (const XmlNode* i : s->all("item")) out.push_back(i->at(id));
    }
    return out;
  }
  CloudTestBed bed_;
  Ec2Api api_;
  const std::string vpc_ = default_vpc_id("nimbus-west-1");
  const std::string subnet_b_ = default_subnet_id("nimbus-west-1", kZoneB);
};

TEST_F(NetworkApi, DescribeVpcs) {
  XmlNode doc = ok("Action=DescribeVpcs&Version=2016-11-15");
  EXPECT_EQ(doc.name, "DescribeVpcsResponse");
  ASSERT_EQ(items(doc, "vpcSet", "vpcId"), std::vector<std::string>{vpc_});
  const XmlNode& v = *doc.child("vpcSet")->child("item");
  EXPECT_EQ(v.at("cidrBlock"), "172.31.0.0/16");
  EXPECT_EQ(v.at("state"), "available");
  EXPECT_EQ(v.at("isDefault"), "true");
  EXPECT_EQ(v.at("ownerId"), "000000000000");
  EXPECT_EQ(v.at("instanceTenancy"), "default");
  EXPECT_EQ(v.at("cidrBlockAssociationSet/item/cidrBlock"), "172.31.0.0/16");
  EXPECT_EQ(v.at("cidrBlockAssociationSet/item/cidrBlockState/state"), "associated");

  EXPECT_EQ(items(ok("Action=DescribeVpcs&VpcId.1=" + vpc_), "vpcSet", "vpcId").size(), 1u);
  EXPECT_EQ(items(ok("Action=DescribeVpcs&Filter.1.Name=is-default&Filter.1.Value.1=true"),
                  "vpcSet", "vpcId")
                .size(),
            1u);
  EXPECT_TRUE(items(ok("Action=DescribeVpcs&Filter.1.Name=is-default&Filter.1.Value.1=false"),
                    "vpcSet", "vpcId")
                  .empty());
  EXPECT_EQ(items(ok("Action=DescribeVpcs&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-*"), "vpcSet",
                  "vpcId")
                .size(),
            1u);
  EXPECT_EQ(error("Action=DescribeVpcs&VpcId.1=vpc-0123456789abcdef0"), "InvalidVpcID.NotFound");
  EXPECT_EQ(error("Action=DescribeVpcs&Filter.1.Name=colour&Filter.1.Value.1=x"),
            "InvalidParameterValue");

  // Tags (CreateTags on the VPC), and the tag filter.
  ok("Action=CreateTags&ResourceId.1=" + vpc_ + "&Tag.1.Key=Name&Tag.1.Value=main");
  doc = ok("Action=DescribeVpcs&Filter.1.Name=tag:Name&Filter.1.Value.1=main");
  ASSERT_EQ(items(doc, "vpcSet", "vpcId"), std::vector<std::string>{vpc_});
  EXPECT_EQ(doc.at("vpcSet/item/tagSet/item/value"), "main");
}

TEST_F(NetworkApi, DescribeSubnetsCountsFreeAddresses) {
  XmlNode doc = ok("Action=DescribeSubnets&Version=2016-11-15");
  EXPECT_EQ(doc.name, "DescribeSubnetsResponse");
  EXPECT_EQ(items(doc, "subnetSet", "subnetId").size(), 3u);
  auto one = [&](const std::string& query) {
    XmlNode d = ok("Action=DescribeSubnets" + query);
    EXPECT_EQ(items(d, "subnetSet", "subnetId").size(), 1u) << query;
    return d;
  };
  doc = one("&Filter.1.Name=availability-zone&Filter.1.Value.1=nimbus-west-1b");
  const XmlNode& s = *doc.child("subnetSet")->child("item");
  EXPECT_EQ(s.at("subnetId"), subnet_b_);
  EXPECT_EQ(s.at("vpcId"), vpc_);
  EXPECT_EQ(s.at("cidrBlock"), "172.31.16.0/20");
  EXPECT_EQ(s.at("availabilityZone"), kZoneB);
  EXPECT_EQ(s.at("availabilityZoneId"), "nimbus-west-1-az2");
  EXPECT_EQ(s.at("defaultForAz"), "true");
  EXPECT_EQ(s.at("mapPublicIpOnLaunch"), "true");
  EXPECT_EQ(s.at("state"), "available");
  EXPECT_EQ(s.at("availableIpAddressCount"), "4091");
  EXPECT_EQ(s.at("subnetArn"), "arn:aws:ec2:nimbus-west-1:000000000000:subnet/" + subnet_b_);
  one("&SubnetId.1=" + subnet_b_);
  one("&Filter.1.Name=default-for-az&Filter.1.Value.1=true&Filter.2.Name=cidr-block&Filter.2."
      "Value.1=172.31.16.0/20");
  EXPECT_EQ(items(ok("Action=DescribeSubnets&Filter.1.Name=vpc-id&Filter.1.Value.1=" + vpc_),
                  "subnetSet", "subnetId")
                .size(),
            3u);
  EXPECT_TRUE(
      items(ok("Action=DescribeSubnets&Filter.1.Name=default-for-az&Filter.1.Value.1=false"),
            "subnetSet", "subnetId")
          .empty());

  // Two instances in it: two fewer; terminated: back.
  XmlNode run = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                   "&InstanceType=n1.tiny&MinCount=2&MaxCount=2&SubnetId=" + subnet_b_);
  EXPECT_EQ(one("&SubnetId.1=" + subnet_b_).at("subnetSet/item/availableIpAddressCount"), "4089");
  const auto ids = items(run, "instancesSet", "instanceId");
  ASSERT_EQ(ids.size(), 2u);
  ok("Action=TerminateInstances&InstanceId.1=" + ids[0] + "&InstanceId.2=" + ids[1]);
  for (int n = 0; n < 4; ++n) bed_.reconciler().pass_now();
  EXPECT_EQ(one("&SubnetId.1=" + subnet_b_).at("subnetSet/item/availableIpAddressCount"), "4091");

  EXPECT_EQ(error("Action=DescribeSubnets&SubnetId.1=subnet-0123456789abcdef0"),
            "InvalidSubnetID.NotFound");
  EXPECT_EQ(error("Action=DescribeSubnets&Filter.1.Name=zone&Filter.1.Value.1=x"),
            "InvalidParameterValue");
}

TEST_F(NetworkApi, RunInstancesShowsTheVpcSubnetAndAddressFromTheStart) {
  XmlNode run = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                   "&InstanceType=n1.tiny&MinCount=1&MaxCount=1&SubnetId=" + subnet_b_ +
                   "&PrivateIpAddress=172.31.18.20");
  const XmlNode* i = run.child("instancesSet")->child("item");
  ASSERT_NE(i, nullptr);
  EXPECT_EQ(i->at("vpcId"), vpc_);
  EXPECT_EQ(i->at("subnetId"), subnet_b_);
  EXPECT_EQ(i->at("privateIpAddress"), "172.31.18.20");
  EXPECT_EQ(i->at("privateDnsName"), "ip-172-31-18-20.nimbus-west-1.compute.internal");
  EXPECT_EQ(i->at("placement/availabilityZone"), kZoneB);
  const std::string id = i->at("instanceId");

  // boto3's NetworkInterfaces form.
  XmlNode ni = ok("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                  "&InstanceType=n1.tiny&MinCount=1&MaxCount=1&NetworkInterface.1.DeviceIndex=0"
                  "&NetworkInterface.1.SubnetId=" +
                  subnet_b_ + "&NetworkInterface.1.PrivateIpAddress=172.31.18.21");
  EXPECT_EQ(ni.at("instancesSet/item/privateIpAddress"), "172.31.18.21");

  auto describe = [&](const std::string& filter, const std::string& value) {
    XmlNode d =
        ok("Action=DescribeInstances&Filter.1.Name=" + filter + "&Filter.1.Value.1=" + value);
    std::vector<std::string> out;
    for (const XmlNode* r : d.child("reservationSet")->all("item"))
      for (const XmlNode* x : r->child("instancesSet")->all("item"))
        out.push_back(x->at("instanceId"));
    return out;
  };
  EXPECT_EQ(describe("private-ip-address", "172.31.18.20"), std::vector<std::string>{id});
  EXPECT_EQ(describe("subnet-id", subnet_b_).size(), 2u);
  EXPECT_EQ(describe("vpc-id", vpc_).size(), 2u);
  EXPECT_EQ(describe("private-dns-name", "ip-172-31-18-20.*"), std::vector<std::string>{id});

  EXPECT_EQ(
      error("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
            "&MinCount=1&MaxCount=1&SubnetId=" + subnet_b_ + "&PrivateIpAddress=172.31.18.20"),
      "InvalidIPAddress.InUse");
  EXPECT_EQ(error("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                  "&MinCount=1&MaxCount=1&SubnetId=" + subnet_b_ +
                  "&Placement.AvailabilityZone=nimbus-west-1a"),
            "InvalidParameterValue");
  EXPECT_EQ(error("Action=RunInstances&Version=2016-11-15&ImageId=" + bed_.image_id() +
                  "&MinCount=1&MaxCount=1&SubnetId=subnet-0123456789abcdef0"),
            "InvalidSubnetID.NotFound");

  // Terminated: the address is no longer shown (it is free for others).
  ok("Action=TerminateInstances&InstanceId.1=" + id);
  for (int n = 0; n < 4; ++n) bed_.reconciler().pass_now();
  XmlNode d = ok("Action=DescribeInstances&InstanceId.1=" + id);
  const XmlNode* gone =
      d.child("reservationSet")->child("item")->child("instancesSet")->child("item");
  EXPECT_EQ(gone->at("instanceState/name"), "terminated");
  EXPECT_EQ(gone->child("privateIpAddress"), nullptr);
}

}  // namespace
}  // namespace nimbus::cloud
