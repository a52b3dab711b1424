#include "backends/net/forward_diff.h"

#include <gtest/gtest.h>

namespace nimbus::backends {
namespace {

using config::PortForward;

TEST(ForwardDiff, KeepsWhatStaysAndListsWhatChanges) {
  const config::UserNetwork net;
  const std::vector<PortForward> from = {{"tcp", "", 8080, "", 80},
                                         {"udp", "127.0.0.1", 5353, "", 53},
                                         {"tcp", "127.100.1.5", 22, "", 22}};
  const std::vector<PortForward> to = {{"tcp", "127.100.1.5", 22, "", 22},
                                       {"tcp", "127.100.1.5", 80, "", 80},
                                       {"tcp", "", 8080, "", 8080}};
  const ForwardChanges c = diff_forwards(from, to, net);
  // 8080's guest port changed: removed and added again; 22 stays untouched.
  EXPECT_EQ(c.removed, (std::vector<PortForward>{from[0], from[1]}));
  EXPECT_EQ(c.added, (std::vector<PortForward>{to[1], to[2]}));
  EXPECT_FALSE(c.empty());
}

TEST(ForwardDiff, DefaultsCompareEqualToWhatTheyStandFor) {
  const config::UserNetwork net;  // 10.0.2.0/24: the guest is 10.0.2.15
  const std::vector<PortForward> from = {{"tcp", "", 8080, "", 80}};
  const std::vector<PortForward> to = {{"tcp", "127.0.0.1", 8080, "10.0.2.15", 80}};
  EXPECT_TRUE(diff_forwards(from, to, net).empty());
  // In another network the same guest address is not the DHCP one.
  const config::UserNetwork other{0x0a000300, 24};
  const ForwardChanges c = diff_forwards(from, to, other);
  EXPECT_EQ(c.removed.size(), 1u);
  EXPECT_EQ(c.added.size(), 1u);
}

TEST(ForwardDiff, ProtocolAndAddressMakeADifferentForward) {
  const config::UserNetwork net;
  const std::vector<PortForward> from = {{"tcp", "127.0.0.1", 80, "", 80}};
  for (const PortForward& f :
       {PortForward{"udp", "127.0.0.1", 80, "", 80}, PortForward{"tcp", "127.0.0.2", 80, "", 80},
        PortForward{"tcp", "127.0.0.1", 81, "", 80}}) {
    const ForwardChanges c = diff_forwards(from, {f}, net);
    EXPECT_EQ(c.removed, from) << config::format_forward(f);
    EXPECT_EQ(c.added, std::vector<PortForward>{f}) << config::format_forward(f);
  }
}

TEST(ForwardDiff, EmptySetsAddAllOrRemoveAll) {
  const config::UserNetwork net;
  const std::vector<PortForward> some = {{"tcp", "", 1, "", 2}, {"udp", "", 3, "", 4}};
  EXPECT_TRUE(diff_forwards({}, {}, net).empty());
  EXPECT_EQ(diff_forwards({}, some, net).added, some);
  EXPECT_TRUE(diff_forwards({}, some, net).removed.empty());
  EXPECT_EQ(diff_forwards(some, {}, net).removed, some);
  EXPECT_TRUE(diff_forwards(some, some, net).empty());
}

}  // namespace
}  // namespace nimbus::backends
