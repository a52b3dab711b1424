#include "common/size.h"

#include <gtest/gtest.h>

namespace nimbus {
namespace {

TEST(ParseSize, Suffixes) {
  EXPECT_EQ(parse_size("4096").value(), 4096u);
  EXPECT_EQ(parse_size("512K").value(), 512u << 10);
  EXPECT_EQ(parse_size("256M").value(), 256u << 20);
  EXPECT_EQ(parse_size("256MiB").value(), 256u << 20);
  EXPECT_EQ(parse_size("2g").value(), 2ull << 30);
  EXPECT_EQ(parse_size("1T").value(), 1ull << 40);
}

TEST(ParseSize, RejectsGarbage) {
  EXPECT_FALSE(parse_size("").ok());
  EXPECT_FALSE(parse_size("M").ok());
  EXPECT_FALSE(parse_size("12X").ok());
  EXPECT_FALSE(parse_size("-5M").ok());
  EXPECT_FALSE(parse_size("1.5G").ok());
  EXPECT_FALSE(parse_size("99999999999999999999").ok());
  EXPECT_FALSE(parse_size("20000000000T").ok());
}

}  // namespace
}  // namespace nimbus
