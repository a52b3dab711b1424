#include "common/status.h"

#include <gtest/gtest.h>

namespace nimbus {
namespace {

TEST(Status, DefaultIsOkAndErrorsCarryTheirCode) {
  EXPECT_TRUE(Status().ok());
  EXPECT_EQ(Status().code(), Code::kOk);
  Status nf = Status::not_found("vm 'x' not found");
  EXPECT_FALSE(nf.ok());
  EXPECT_EQ(nf.code(), Code::kNotFound);
  EXPECT_EQ(nf.message(), "vm 'x' not found");
  EXPECT_EQ(Status::error("x").code(), Code::kUnknown);
  EXPECT_EQ(Status(Code::kOk, "no").code(), Code::kUnknown);  // an error is never OK
}

TEST(Status, ContextKeepsTheCodeAndWithCodeKeepsTheMessage) {
  Status s = Status::conflict("in use").with_context("disk 'a'");
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_EQ(s.message(), "disk 'a': in use");
  EXPECT_TRUE(Status().with_context("x").ok());
  Status c = Status::error("full").with_code(Code::kInsufficientCapacity);
  EXPECT_EQ(c.code(), Code::kInsufficientCapacity);
  EXPECT_EQ(c.message(), "full");
}

TEST(Status, ResultCarriesValueOrCode) {
  Result<int> v = 3;
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.code(), Code::kOk);
  EXPECT_EQ(*v, 3);
  Result<int> e = Status::unavailable("etcd down");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.code(), Code::kUnavailable);
  EXPECT_EQ(e.status().message(), "etcd down");
}

TEST(Status, CodeNamesAreTheApiSpelling) {
  EXPECT_EQ(code_name(Code::kInvalidArgument), "InvalidArgument");
  EXPECT_EQ(code_name(Code::kInsufficientCapacity), "InsufficientCapacity");
  EXPECT_EQ(code_name(Code::kInternal), "Internal");
}

}  // namespace
}  // namespace nimbus
