#include "vmm/imds.h"

#include <gtest/gtest.h>

namespace nimbus::vmm {
namespace {

using std::chrono::seconds;

struct Imds : ::testing::Test {
  Imds() {
    state.metadata.data = config::json::parse(R"({
      "meta-data": {"ami-id": "ami-1", "instance-id": "i-0123", "hostname": "ip-10-0-2-15",
                    "placement": {"availability-zone": "nimbus-west-1a", "region": "nimbus-west-1"},
                    "public-keys": {"0=my-key": {"openssh-key": "ssh-ed25519 AAAA me"}}},
      "user-data": "IyEvYmluL3NoCmVjaG8gaGkK",
      "dynamic": {"instance-identity": {"document": "{\"instanceId\": \"i-0123\"}"}}})");
    state.new_token = [this] { return "token-" + std::to_string(++minted); };
  }
  ImdsReply get(const std::string& path, std::multimap<std::string, std::string> headers = {}) {
    return handle_imds({"GET", path, std::move(headers)}, state, now);
  }
  ImdsReply put_token(const std::string& ttl, std::multimap<std::string, std::string> extra = {}) {
    extra.emplace("x-aws-ec2-metadata-token-ttl-seconds", ttl);
    return handle_imds({"PUT", "/latest/api/token", std::move(extra)}, state, now);
  }
  static std::string header(const ImdsReply& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return "";
  }

  ImdsState state;
  int minted = 0;
  ImdsClock::time_point now = ImdsClock::time_point() + seconds(1000);
};

TEST_F(Imds, V1ServesFilesAndListings) {
  auto r = get("/latest/meta-data/instance-id");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "i-0123");
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(get("/latest/meta-data/").body,
            "ami-id\nhostname\ninstance-id\nplacement/\npublic-keys/");
  EXPECT_EQ(get("/latest/meta-data").body, get("/latest/meta-data/").body);
  EXPECT_EQ(get("/latest/meta-data/placement/").body, "availability-zone\nregion");
  // botocore's region discovery asks with a trailing slash.
  EXPECT_EQ(get("/latest/meta-data/placement/availability-zone/").body, "nimbus-west-1a");
  EXPECT_EQ(get("/latest/dynamic/instance-identity/document").body, "{\"instanceId\": \"i-0123\"}");
  EXPECT_EQ(get("/latest/dynamic/").body, "instance-identity/");
}

TEST_F(Imds, PublicKeysAsEc2ListsThem) {
  EXPECT_EQ(get("/latest/meta-data/public-keys/").body, "0=my-key");
  EXPECT_EQ(get("/latest/meta-data/public-keys/0/").body, "openssh-key");
  EXPECT_EQ(get("/latest/meta-data/public-keys/0/openssh-key").body, "ssh-ed25519 AAAA me");
  // Reached as 0 only.
  EXPECT_EQ(get("/latest/meta-data/public-keys/0=my-key/openssh-key").status, 404);
  EXPECT_EQ(get("/latest/meta-data/public-keys/1/").status, 404);
}

TEST_F(Imds, TopLevelsAndVersions) {
  EXPECT_EQ(get("/latest/").body, "dynamic\nmeta-data\nuser-data");
  EXPECT_EQ(get("/latest").body, "dynamic\nmeta-data\nuser-data");
  const std::string root = get("/").body;
  EXPECT_EQ(root.substr(0, 15), "1.0\n2007-01-19\n");
  EXPECT_EQ(root.substr(root.size() - 7), "\nlatest");
  // Versioned prefixes are aliases of latest (cloud-init probes them).
  EXPECT_EQ(get("/2009-04-04/meta-data/instance-id").body, "i-0123");
  EXPECT_EQ(get("/2021-03-23/meta-data/instance-id").body, "i-0123");
  EXPECT_EQ(get("/2009-04-05/meta-data/instance-id").status, 404);
}

TEST_F(Imds, UserDataIsRawBytesAnd404WhenAbsent) {
  auto r = get("/latest/user-data");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "#!/bin/sh\necho hi\n");
  EXPECT_EQ(r.content_type, "application/octet-stream");
  state.metadata.data.erase("user-data");
  EXPECT_EQ(get("/latest/user-data").status, 404);
  EXPECT_EQ(get("/latest/").body, "dynamic\nmeta-data");
}

TEST_F(Imds, UnknownPathsAre404) {
  for (const char* path : {"/latest/meta-data/nope", "/latest/meta-data/instance-id/x",
                           "/latest/meta-data//instance-id", "/nope", "", "latest", "//",
                           "/latest/meta-data/..", "/latest/meta-data/placement/region/x/"}) {
    auto r = get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_NE(r.body.find("404 - Not Found"), std::string::npos);
    EXPECT_EQ(r.content_type, "text/html");
  }
}

TEST_F(Imds, TokensV2) {
  auto t = put_token("60");
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(t.body, "token-1");
  EXPECT_EQ(header(t, "X-aws-ec2-metadata-token-ttl-seconds"), "60");
  auto r = get("/latest/meta-data/instance-id", {{"x-aws-ec2-metadata-token", "token-1"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "i-0123");
  EXPECT_EQ(header(r, "X-aws-ec2-metadata-token-ttl-seconds"), "60");
  now += seconds(59);
  r = get("/latest/meta-data/instance-id", {{"x-aws-ec2-metadata-token", "token-1"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(header(r, "X-aws-ec2-metadata-token-ttl-seconds"), "1");
  // Expired, unknown, empty: 401, even when v1 would be served.
  now += seconds(1);
  EXPECT_EQ(get("/latest/meta-data/instance-id", {{"x-aws-ec2-metadata-token", "token-1"}}).status,
            401);
  EXPECT_TRUE(state.tokens.empty());
  EXPECT_EQ(get("/latest/meta-data/instance-id", {{"x-aws-ec2-metadata-token", "nope"}}).status,
            401);
  EXPECT_EQ(get("/latest/meta-data/instance-id", {{"x-aws-ec2-metadata-token", ""}}).status, 401);
}

TEST_F(Imds, TokenTtlMustBe1To21600) {
  for (const char* bad : {"0", "21601", "-1", "+5", "1.5", "abc", "", "99999999999999999999"}) {
    EXPECT_EQ(put_token(bad).status, 400) << bad;
  }
  EXPECT_EQ(handle_imds({"PUT", "/latest/api/token", {}}, state, now).status, 400);
  EXPECT_EQ(put_token("1").status, 200);
  EXPECT_EQ(put_token("21600").status, 200);
  EXPECT_EQ(minted, 2);
}

TEST_F(Imds, TokenThroughAProxyIsRefused) {
  EXPECT_EQ(put_token("60", {{"x-forwarded-for", "10.0.0.1"}}).status, 403);
  EXPECT_EQ(minted, 0);
  EXPECT_TRUE(state.tokens.empty());
}

TEST_F(Imds, RequiredTokensRefuseV1) {
  state.metadata.options.tokens_required = true;
  EXPECT_EQ(get("/latest/meta-data/instance-id").status, 401);
  EXPECT_EQ(get("/").status, 401);
  auto t = put_token("21600");
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(get("/latest/meta-data/instance-id", {{"x-aws-ec2-metadata-token", t.body}}).body,
            "i-0123");
}

TEST_F(Imds, DisabledEndpointRefusesEverything) {
  state.metadata.options.endpoint_enabled = false;
  EXPECT_EQ(get("/latest/meta-data/instance-id").status, 403);
  EXPECT_EQ(put_token("60").status, 403);
  EXPECT_EQ(minted, 0);
  EXPECT_EQ(handle_imds({"POST", "/", {}}, state, now).status, 403);
}

TEST_F(Imds, OtherMethodsAre405) {
  for (const char* method : {"POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW"}) {
    auto r = handle_imds({method, "/latest/meta-data/", {}}, state, now);
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(header(r, "Allow"), "GET, PUT");
  }
  EXPECT_EQ(handle_imds({"PUT", "/latest/meta-data/instance-id", {}}, state, now).status, 405);
  auto g = get("/latest/api/token");
  EXPECT_EQ(g.status, 405);
  EXPECT_EQ(header(g, "Allow"), "PUT");
  EXPECT_EQ(minted, 0);
}

TEST_F(Imds, TokensAreBounded) {
  for (size_t i = 0; i < kMaxImdsTokens + 50; i++) {
    ASSERT_EQ(put_token(std::to_string(i % 100 + 1)).status, 200);
  }
  EXPECT_EQ(state.tokens.size(), kMaxImdsTokens);
  // The newest is kept.
  const std::string last = "token-" + std::to_string(minted);
  EXPECT_EQ(get("/latest/meta-data/ami-id", {{"x-aws-ec2-metadata-token", last}}).status, 200);
}

TEST_F(Imds, RealTokensAreRandom) {
  state.new_token = nullptr;
  auto a = put_token("60"), b = put_token("60");
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.body.size(), 40u);
  EXPECT_NE(a.body, b.body);
  EXPECT_EQ(
      a.body.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
  EXPECT_EQ(get("/latest/meta-data/ami-id", {{"x-aws-ec2-metadata-token", b.body}}).body, "ami-1");
}

}  // namespace
}  // namespace nimbus::vmm
