#include "cloud/filters.h"

#include <gtest/gtest.h>

namespace nimbus::cloud {
namespace {

TEST(WildcardMatch, StarsQuestionMarksAndEscapes) {
  EXPECT_TRUE(wildcard_match("web*", "web-1"));
  EXPECT_TRUE(wildcard_match("*", ""));
  EXPECT_TRUE(wildcard_match("w?b", "web"));
  EXPECT_FALSE(wildcard_match("w?b", "wb"));
  EXPECT_TRUE(wildcard_match("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(wildcard_match("a*b*c", "aXXbYY"));
  EXPECT_TRUE(wildcard_match("\\*", "*"));
  EXPECT_FALSE(wildcard_match("\\*", "x"));
  EXPECT_TRUE(wildcard_match("running", "running"));
  EXPECT_FALSE(wildcard_match("running", "runnin"));
}

TEST(WildcardMatch, HostilePatternStaysFast) {
  const std::string pattern = std::string(2000, '*') + "b";
  const std::string text(20000, 'a');
  EXPECT_FALSE(wildcard_match(pattern, text));  // would take forever with naive recursion
}

TEST(MatchesAll, ValuesOrFiltersAnd) {
  auto lookup = [](const std::string& name) -> std::optional<std::vector<std::string>> {
    if (name == "instance-state-name") return std::vector<std::string>{"running"};
    if (name == "tag-key") return std::vector<std::string>{"Name", "env"};
    return std::nullopt;
  };
  EXPECT_TRUE(matches_all({{"instance-state-name", {"pending", "running"}}}, lookup));
  EXPECT_FALSE(matches_all({{"instance-state-name", {"stopped"}}}, lookup));
  EXPECT_TRUE(matches_all({{"instance-state-name", {"running"}}, {"tag-key", {"env"}}}, lookup));
  EXPECT_FALSE(matches_all({{"instance-state-name", {"running"}}, {"tag-key", {"x"}}}, lookup));
  std::string unknown;
  EXPECT_FALSE(matches_all({{"bogus", {"1"}}}, lookup, &unknown));
  EXPECT_EQ(unknown, "bogus");
}

}  // namespace
}  // namespace nimbus::cloud
