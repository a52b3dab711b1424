#include "cli/device_options.h"

#include <gtest/gtest.h>

namespace nimbus::cli {
namespace {

TEST(DiskOption, Parses) {
  auto d = parse_disk_option("disk.qcow2,format=qcow2,readonly");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->path, "disk.qcow2");
  EXPECT_EQ(d->format, backends::DiskFormat::kQcow2);
  EXPECT_TRUE(d->read_only);
  d = parse_disk_option("plain.img");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->format, backends::DiskFormat::kAuto);
  EXPECT_FALSE(d->read_only);
}

TEST(DiskOption, RejectsBadInput) {
  EXPECT_FALSE(parse_disk_option("").ok());
  EXPECT_FALSE(parse_disk_option(",format=raw").ok());
  EXPECT_NE(parse_disk_option("a.img,format=vmdk").message().find("unknown format 'vmdk'"), std::string::npos);
  EXPECT_NE(parse_disk_option("a.img,cache=none").message().find("unknown option 'cache=none'"), std::string::npos);
}

TEST(NetOption, SplitsMacFromSpec) {
  auto n = parse_net_option("user,hostfwd=tcp:127.0.0.1:8080-:80,mac=52:54:00:ab:cd:ef");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->spec, "user,hostfwd=tcp:127.0.0.1:8080-:80");
  EXPECT_TRUE(n->mac_given);
  EXPECT_EQ(n->mac[5], 0xef);
  n = parse_net_option("switch,path=/tmp/s");
  ASSERT_TRUE(n.ok());
  EXPECT_FALSE(n->mac_given);
}

TEST(NetOption, RejectsBadMacs) {
  EXPECT_FALSE(parse_net_option("user,mac=52:54:00:ab:cd").ok());
  EXPECT_FALSE(parse_net_option("user,mac=52:54:00:ab:cd:zz").ok());
  EXPECT_FALSE(parse_net_option("user,mac=01:00:5e:00:00:01").ok());  // multicast
  EXPECT_FALSE(parse_net_option("mac=52:54:00:ab:cd:ef").ok());       // no backend
}

}  // namespace
}  // namespace nimbus::cli
