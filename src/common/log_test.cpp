#include "common/log.h"

#include <gtest/gtest.h>

namespace nimbus::log {
namespace {

TEST(Log, InitTakesEveryLevelNameAndRefusesOthers) {
  for (const char* name : {"trace", "debug", "info", "warn", "error", "off"}) {
    EXPECT_TRUE(init("test", name).ok()) << name;
    EXPECT_EQ(spdlog::default_logger()->name(), "test");
  }
  ASSERT_TRUE(init("test", "warn").ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);
  Status bad = init("test", "loud");
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  EXPECT_NE(bad.message().find("loud"), std::string::npos);
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);  // unchanged
}

}  // namespace
}  // namespace nimbus::log
