#include "cloud/ec2_error.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace nimbus::cloud {
namespace {

TEST(Ec2Error, BodyHasTheShapeBotocoreReads) {
  Ec2Error e{400, "InvalidAction", "The action Nope is not valid for this web service."};
  EXPECT_EQ(ec2_error_body(e, "4f3c1e2a-5b7d-4c1e-9a0b-1c2d3e4f5a6b"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>"
            "<Code>InvalidAction</Code><Message>The action Nope is not valid for this web "
            "service.</Message></Error></Errors><RequestID>4f3c1e2a-5b7d-4c1e-9a0b-1c2d3e4f5a6b"
            "</RequestID></Response>");
}

TEST(Ec2Error, BodyEscapesWhatAClientSent) {
  Ec2Error e = invalid_action("</Message><Code>Fake</Code>\xff");
  std::string body = ec2_error_body(e, "r<1>");
  EXPECT_EQ(body.find("<Code>Fake"), std::string::npos) << body;
  EXPECT_NE(body.find("&lt;/Message&gt;&lt;Code&gt;Fake&lt;/Code&gt;\xEF\xBF\xBD"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("<RequestID>r&lt;1&gt;</RequestID>"), std::string::npos) << body;
}

TEST(Ec2Error, HelpersUseEc2Codes) {
  EXPECT_EQ(invalid_parameter_value("x").code, "InvalidParameterValue");
  EXPECT_EQ(invalid_parameter_value("x").http_status, 400);
  Ec2Error m = missing_parameter("ImageId");
  EXPECT_EQ(m.code, "MissingParameter");
  EXPECT_EQ(m.message, "The request must contain the parameter ImageId");
  Ec2Error a = invalid_action("DescribeNothing");
  EXPECT_EQ(a.code, "InvalidAction");
  EXPECT_EQ(a.message, "The action 'DescribeNothing' is not valid for this web service.");
  Ec2Error u = unknown_parameter(std::string(1000, 'P'));
  EXPECT_EQ(u.code, "UnknownParameter");
  EXPECT_LT(u.message.size(), 120u);  // a hostile name is quoted shortened
  EXPECT_EQ(invalid_parameter_combination("y").code, "InvalidParameterCombination");
}

TEST(Ec2Error, RequestIdsAreFreshUuidV4) {
  const std::regex uuid4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_request_id();
    ASSERT_TRUE(std::regex_match(id, uuid4)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace nimbus::cloud
