#include "cloud/base64.h"

#include <gtest/gtest.h>

namespace nimbus::cloud {
namespace {

TEST(Base64, RoundTripsEveryLength) {
  std::string s;
  for (int n = 0; n < 40; ++n) {
    EXPECT_EQ(base64_decode(base64_encode(s)), s) << n;
    s.push_back(static_cast<char>(n * 37));
  }
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
}

TEST(Base64, RefusesWhatIsNotBase64) {
  EXPECT_FALSE(base64_decode("aGVsbG8"));
  EXPECT_FALSE(base64_decode("aGV sbG8="));
  EXPECT_FALSE(base64_decode("!!!!"));
}

}  // namespace
}  // namespace nimbus::cloud
