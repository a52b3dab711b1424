#include "cloud/sigv4.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "cloud/ec2_query.h"

namespace nimbus::cloud {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::time_t utc(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return timegm(&tm);
}

SigV4Credential parse_ok(std::string_view header) {
  auto c = parse_authorization(header);
  EXPECT_TRUE(c.ok()) << c.message();
  return c.ok() ? *c : SigV4Credential();
}

// Known answers. Vectors 1-3 come from botocore's own signer (Debian python3-botocore
// 1.29.27, /usr/bin/python3): credentials AKIDEXAMPLE /
// wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region nimbus-west-1, service ec2, the clock
// fixed at 2024-01-02 03:04:05 UTC:
//
//   req = botocore.awsrequest.AWSRequest(method=M, url=URL, data=BODY, headers=HEADERS)
//   with mock.patch('botocore.auth.datetime') as dt:
//       dt.datetime.utcnow.return_value = datetime.datetime(2024, 1, 2, 3, 4, 5)
//       dt.datetime.strptime = datetime.datetime.strptime
//       botocore.auth.SigV4Auth(creds, 'ec2', 'nimbus-west-1').add_auth(req)
//   print(req.headers['Authorization'])
//
// Vector 4 is a request the real CLI sent (Debian awscli 2.9.19, `aws ec2
// describe-instances --endpoint-url http://127.0.0.1:18773 --instance-ids i-0123
// --filters 'Name=tag:Name,Values=web server'` with AWS_ACCESS_KEY_ID=AKIDNIMBUSTEST,
// AWS_SECRET_ACCESS_KEY='nimbus/secret+key', region nimbus-west-1), captured by a
// loopback HTTP server.
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const std::time_t kSigned = utc(2024, 1, 2, 3, 4, 5);

// Vector 1: the EC2 shape (POST /, form body, the three headers botocore signs).
SigV4Request describe_request() {
  SigV4Request r;
  r.method = "POST";
  r.path = "/";
  r.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
               {"host", "127.0.0.1:8773"},
               {"x-amz-date", "20240102T030405Z"},
               {"user-agent", "aws-cli/2.9.19"},  // not signed: botocore leaves it out
               {"content-length", "107"}};
  r.body =
      "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-state-name"
      "&Filter.1.Value.1=running";
  return r;
}
constexpr std::string_view kDescribeAuth =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/nimbus-west-1/ec2/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, "
    "Signature=766dab9f5d7959830483cbb8e1d8c056d13df01de9b0e73e7eae4e4df7e84252";

TEST(SigV4, VerifiesBotocoreEc2Request) {
  SigV4Credential c = parse_ok(kDescribeAuth);
  EXPECT_EQ(c.access_key, "AKIDEXAMPLE");
  EXPECT_EQ(c.date, "20240102");
  EXPECT_EQ(c.region, "nimbus-west-1");
  EXPECT_EQ(c.service, "ec2");
  EXPECT_EQ(c.signed_headers, (std::vector<std::string>{"content-type", "host", "x-amz-date"}));
  EXPECT_EQ(c.signature, "766dab9f5d7959830483cbb8e1d8c056d13df01de9b0e73e7eae4e4df7e84252");
  auto err = verify_sigv4(c, describe_request(), kSecret, kSigned);
  EXPECT_FALSE(err) << err->code << ": " << err->message;
  // And our signer writes botocore's header byte for byte.
  SigV4Request signed_only = describe_request();
  signed_only.headers.erase("user-agent");
  signed_only.headers.erase("content-length");
  auto header = sign_sigv4(signed_only, "AKIDEXAMPLE", kSecret, "nimbus-west-1");
  ASSERT_TRUE(header.ok()) << header.message();
  EXPECT_EQ(*header, kDescribeAuth);
}

TEST(SigV4, VerifiesBotocorePathQueryAndHeaderCanonicalisation) {
  // Vector 2: GET http://Cloud.Example:8773/a/./b//c/../d%20e?b=2&a=~%20x&a-b=3&a=1
  //   &Action=DescribeRegions&flag&empty= with X-Custom: '  spaced    out  value '.
  SigV4Request r;
  r.method = "GET";
  r.path = "/a/./b//c/../d%20e";
  r.raw_query = "b=2&a=~%20x&a-b=3&a=1&Action=DescribeRegions&flag&empty=";
  r.headers = {{"host", "cloud.example:8773"},
               {"x-amz-date", "20240102T030405Z"},
               {"x-custom", "  spaced    out  value "},
               {"user-agent", "aws-cli/2.9.19"}};
  SigV4Credential c = parse_ok(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/nimbus-west-1/ec2/aws4_request, "
      "SignedHeaders=host;x-amz-date;x-custom, "
      "Signature=f629fd8ed4f4e2c1b63a91d23070f0826e8fea3a8ade95f1dff9bfce7788fa7e");
  auto err = verify_sigv4(c, r, kSecret, kSigned);
  EXPECT_FALSE(err) << err->code << ": " << err->message;

  EXPECT_EQ(sigv4_canonical_uri(r.path), "/a/b/d%2520e");
  EXPECT_EQ(sigv4_canonical_query(r.raw_query),
            "Action=DescribeRegions&a=1&a=~%20x&a-b=3&b=2&empty=&flag=");
  auto canonical = sigv4_canonical_request(r, c.signed_headers, sha256_hex(""));
  ASSERT_TRUE(canonical.ok());
  EXPECT_TRUE(contains(*canonical, "\nx-custom:spaced out value\n")) << *canonical;
}

TEST(SigV4, VerifiesBotocoreContentSha256Header) {
  // Vector 3: https://ec2.nimbus.test/ with X-Amz-Content-SHA256 (signed, as botocore
  // signs every header it sends).
  SigV4Request r;
  r.method = "POST";
  r.path = "/";
  r.body = "Action=RunInstances&ImageId=ami-00000001&UserData=aGVsbG8%3D";
  r.headers = {
      {"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
      {"host", "ec2.nimbus.test"},
      {"x-amz-content-sha256", "0c783fa6f88ce1f34f8f39abcdb50cd243cdc4b271c9d822fbf7224ee0956053"},
      {"x-amz-date", "20240102T030405Z"}};
  EXPECT_EQ(sha256_hex(r.body), r.headers.find("x-amz-content-sha256")->second);
  SigV4Credential c = parse_ok(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/nimbus-west-1/ec2/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, "
      "Signature=253f63f901add493d0b6d163eb3c9ecd4b16e8493884633106c79caf62c8149f");
  auto err = verify_sigv4(c, r, kSecret, kSigned);
  EXPECT_FALSE(err) << err->code << ": " << err->message;

  // A header hash that is not the body's is refused even if the signature covers it.
  r.headers.find("x-amz-content-sha256")->second = "UNSIGNED-PAYLOAD";
  err = verify_sigv4(c, r, kSecret, kSigned);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "SignatureDoesNotMatch");
  EXPECT_TRUE(contains(err->message, "X-Amz-Content-SHA256")) << err->message;
}

// Vector 4: the real awscli's request.
SigV4Request awscli_request() {
  SigV4Request r;
  r.method = "POST";
  r.path = "/";
  r.headers = {{"host", "127.0.0.1:18773"},
               {"accept-encoding", "identity"},
               {"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
               {"user-agent",
                "aws-cli/2.9.19 Python/3.11.2 Linux/6.18.44-fc-v1272 source/x86_64.debian.12 "
                "prompt/off command/ec2.describe-instances"},
               {"x-amz-date", "20261206T234535Z"},
               {"content-length", "116"}};
  r.body =
      "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName"
      "&Filter.1.Value.1=web+server&InstanceId.1=i-0123";
  return r;
}
constexpr std::string_view kAwscliAuth =
    "AWS4-HMAC-SHA256 Credential=AKIDNIMBUSTEST/20261206/nimbus-west-1/ec2/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, "
    "Signature=14d373b2c03de5cbed8ed5ede23db4a3287353a2b7c3a78482114edf7a488639";

TEST(SigV4, VerifiesARealAwscliRequest) {
  SigV4Credential c = parse_ok(kAwscliAuth);
  SigV4Request r = awscli_request();
  const std::time_t sent = utc(2026, 12, 6, 23, 45, 35);
  auto err = verify_sigv4(c, r, "nimbus/secret+key", sent + 60);
  EXPECT_FALSE(err) << err->code << ": " << err->message;
  // The body it signed parses to what the user typed.
  auto p = QueryParams::parse(r.body);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->members("Filter").at(0).list("Value"), std::vector<std::string>{"web server"});
}

TEST(SigV4, RefusesATamperedRequest) {
  SigV4Credential c = parse_ok(kDescribeAuth);
  auto expect_mismatch = [&](const SigV4Request& r, const char* what) {
    auto err = verify_sigv4(c, r, kSecret, kSigned);
    ASSERT_TRUE(err) << what;
    EXPECT_EQ(err->code, "SignatureDoesNotMatch") << what;
    EXPECT_EQ(err->http_status, 403) << what;
  };
  SigV4Request r = describe_request();
  r.body += "&InstanceId.1=i-other";
  expect_mismatch(r, "body");
  r = describe_request();
  r.body[r.body.size() - 1] = 'x';
  expect_mismatch(r, "one byte of the body");
  r = describe_request();
  r.headers.find("host")->second = "127.0.0.1:8774";
  expect_mismatch(r, "host");
  r = describe_request();
  r.path = "/other";
  expect_mismatch(r, "path");
  r = describe_request();
  r.raw_query = "Action=RunInstances";
  expect_mismatch(r, "query");
  r = describe_request();
  r.method = "PUT";
  expect_mismatch(r, "method");
  r = describe_request();
  r.headers.emplace("content-type", "text/plain");  // a second value of a signed header
  expect_mismatch(r, "second content-type");

  // Unsigned headers may change.
  r = describe_request();
  r.headers.find("user-agent")->second = "something else";
  EXPECT_FALSE(verify_sigv4(c, r, kSecret, kSigned));

  // Wrong secret, or another region/service/key in the scope.
  auto err = verify_sigv4(c, describe_request(), "wrong-secret", kSigned);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "SignatureDoesNotMatch");
  EXPECT_TRUE(contains(err->message, "does not match")) << err->message;
  for (auto edit : {+[](SigV4Credential& x) { x.region = "nimbus-east-1"; },
                    +[](SigV4Credential& x) { x.service = "s3"; },
                    +[](SigV4Credential& x) { x.signature[0] = x.signature[0] == '7' ? '8' : '7'; },
                    +[](SigV4Credential& x) { x.signature.pop_back(); }}) {
    SigV4Credential other = c;
    edit(other);
    err = verify_sigv4(other, describe_request(), kSecret, kSigned);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, "SignatureDoesNotMatch");
  }
}

TEST(SigV4, RefusesASkewedOrMismatchedDate) {
  SigV4Credential c = parse_ok(kDescribeAuth);
  SigV4Request r = describe_request();
  EXPECT_FALSE(verify_sigv4(c, r, kSecret, kSigned + 15 * 60));
  EXPECT_FALSE(verify_sigv4(c, r, kSecret, kSigned - 15 * 60));
  for (std::time_t now : {kSigned + 15 * 60 + 1, kSigned - 15 * 60 - 1, kSigned + 86400 * 365}) {
    auto err = verify_sigv4(c, r, kSecret, now);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, "AuthFailure");
    EXPECT_EQ(err->http_status, 401);
    EXPECT_TRUE(contains(err->message, "more than 15 minutes")) << err->message;
  }
  // X-Amz-Date of another day than the credential's scope.
  r.headers.find("x-amz-date")->second = "20240103T030405Z";
  auto err = verify_sigv4(c, r, kSecret, utc(2024, 1, 3, 3, 4, 5));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "AuthFailure");
  EXPECT_TRUE(contains(err->message, "20240102")) << err->message;
}

TEST(SigV4, RefusesAnIncompleteRequest) {
  SigV4Credential c = parse_ok(kDescribeAuth);
  auto expect_incomplete = [&](const SigV4Request& r, const SigV4Credential& cred,
                               const char* text) {
    auto err = verify_sigv4(cred, r, kSecret, kSigned);
    ASSERT_TRUE(err) << text;
    EXPECT_EQ(err->code, "IncompleteSignature") << text;
    EXPECT_EQ(err->http_status, 400);
    EXPECT_TRUE(contains(err->message, text)) << err->message;
  };
  SigV4Request r = describe_request();
  r.headers.erase("content-type");
  expect_incomplete(r, c, "signed header 'content-type' is not in the request");
  r = describe_request();
  r.headers.erase("x-amz-date");
  expect_incomplete(r, c, "no X-Amz-Date");
  r = describe_request();
  r.headers.emplace("x-amz-date", "20240102T030405Z");
  expect_incomplete(r, c, "more than one X-Amz-Date");
  for (const char* bad : {"2024-01-02T03:04:05Z", "20240102T030405", "20240231T030405Z",
                          "20240102T250405Z", "", "20240102T030405Z "}) {
    r = describe_request();
    r.headers.find("x-amz-date")->second = bad;
    expect_incomplete(r, c, "not of the form yyyymmddThhmmssZ");
  }
  SigV4Credential no_host = c;
  no_host.signed_headers = {"content-type", "x-amz-date"};
  expect_incomplete(describe_request(), no_host, "Host header must be one of the SignedHeaders");
}

TEST(SigV4, ParsesHeaderVariants) {
  // No spaces after the commas, and extra spaces: both fine.
  SigV4Credential c = parse_ok(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/nimbus-west-1/ec2/aws4_request,"
      "SignedHeaders=content-type;host;x-amz-date,"
      "Signature=766dab9f5d7959830483cbb8e1d8c056d13df01de9b0e73e7eae4e4df7e84252");
  EXPECT_FALSE(verify_sigv4(c, describe_request(), kSecret, kSigned));
  c = parse_ok(
      "AWS4-HMAC-SHA256   "
      "Signature=766dab9f5d7959830483cbb8e1d8c056d13df01de9b0e73e7eae4e4df7e84252 "
      ",  SignedHeaders=content-type;host;x-amz-date ,Credential=AKIDEXAMPLE/20240102/"
      "nimbus-west-1/ec2/aws4_request");
  EXPECT_FALSE(verify_sigv4(c, describe_request(), kSecret, kSigned));
}

TEST(SigV4, RefusesMalformedHeaders) {
  const std::string sig = "Signature=" + std::string(64, 'a');
  const std::string cred = "Credential=AKID/20240102/r/ec2/aws4_request";
  const std::string sh = "SignedHeaders=host;x-amz-date";
  struct Case {
    std::string header, expect;
  };
  const Case cases[] = {
      {"", "only AWS4-HMAC-SHA256"},
      {"AWS4-HMAC-SHA1 " + cred + ", " + sh + ", " + sig, "only AWS4-HMAC-SHA256"},
      {"AWS4-HMAC-SHA256X " + cred, "only AWS4-HMAC-SHA256"},
      {"Bearer abc", "only AWS4-HMAC-SHA256"},
      {"AWS4-HMAC-SHA256", "empty component"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh, "Signature is missing"},
      {"AWS4-HMAC-SHA256 " + sh + ", " + sig, "Credential is missing"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sig, "SignedHeaders is missing"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + ", " + sig, "Signature appears twice"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + ",", "empty component"},
      {"AWS4-HMAC-SHA256 " + cred + ",, " + sh + ", " + sig, "empty component"},
      {"AWS4-HMAC-SHA256 " + cred + " " + sh + ", " + sig, "aws4_request"},  // no comma
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + ", Extra=1", "unknown component"},
      {"AWS4-HMAC-SHA256 Credential=, " + sh + ", " + sig, "has no value"},
      {"AWS4-HMAC-SHA256 Credential=AKID/20240102/r/ec2, " + sh + ", " + sig, "Credential must be"},
      {"AWS4-HMAC-SHA256 Credential=AKID/20240102/r/ec2/aws4_request/x, " + sh + ", " + sig,
       "Credential must be"},
      {"AWS4-HMAC-SHA256 Credential=AKID/20240102/r/ec2/aws5_request, " + sh + ", " + sig,
       "aws4_request"},
      {"AWS4-HMAC-SHA256 Credential=/20240102/r/ec2/aws4_request, " + sh + ", " + sig,
       "access key"},
      {"AWS4-HMAC-SHA256 Credential=AK%ID/20240102/r/ec2/aws4_request, " + sh + ", " + sig,
       "access key"},
      {"AWS4-HMAC-SHA256 Credential=" + std::string(129, 'A') + "/20240102/r/ec2/aws4_request, " +
           sh + ", " + sig,
       "access key"},
      {"AWS4-HMAC-SHA256 Credential=AKID/2024012/r/ec2/aws4_request, " + sh + ", " + sig, "date"},
      {"AWS4-HMAC-SHA256 Credential=AKID/20241302/r/ec2/aws4_request, " + sh + ", " + sig, "date"},
      {"AWS4-HMAC-SHA256 Credential=AKID/20240102/R/ec2/aws4_request, " + sh + ", " + sig,
       "region"},
      {"AWS4-HMAC-SHA256 Credential=AKID/20240102/r//aws4_request, " + sh + ", " + sig, "service"},
      {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date;host, " + sig, "sorted"},
      {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;host, " + sig, "sorted"},
      {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=Host, " + sig, "lower-case header names"},
      {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, " + sig, "lower-case"},
      {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host:x, " + sig, "lower-case"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + std::string(64, 'A'),
       "64 lower-case"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + std::string(63, 'a'),
       "64 lower-case"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + std::string(65, 'a'),
       "64 lower-case"},
      {"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + std::string(5000, ' '), "4096 bytes"},
  };
  for (const Case& c : cases) {
    auto r = parse_authorization(c.header);
    ASSERT_FALSE(r.ok()) << c.header;
    EXPECT_EQ(r.code(), Code::kInvalidArgument);
    EXPECT_TRUE(contains(r.message(), c.expect)) << c.header << "\n -> " << r.message();
    EXPECT_TRUE(contains(r.message(), "Invalid Authorization header")) << r.message();
  }
  // 64 signed headers are accepted, 65 are not.
  std::string many = "SignedHeaders=";
  for (int i = 0; i < 64; ++i) many += fmt::format("{}h{:02}", i ? ";" : "", i);
  EXPECT_TRUE(parse_authorization("AWS4-HMAC-SHA256 " + cred + ", " + many + ", " + sig).ok());
  auto r = parse_authorization("AWS4-HMAC-SHA256 " + cred + ", " + many + ";h99, " + sig);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.message(), "more than 64")) << r.message();
  EXPECT_EQ(incomplete_signature(r.message()).code, "IncompleteSignature");
}

TEST(SigV4, SignerRoundTripsWithVerifier) {
  SigV4Request r;
  r.method = "POST";
  r.path = "/";
  r.raw_query = "z=%2F&a=b+c";
  r.body = "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1";
  r.headers = {{"host", "localhost:8773"},
               {"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
               {"x-amz-date", "20240102T030405Z"}};
  auto header = sign_sigv4(r, "AKIDNIMBUS", "s3cr3t", "nimbus-east-2");
  ASSERT_TRUE(header.ok()) << header.message();
  SigV4Credential c = parse_ok(*header);
  EXPECT_EQ(c.region, "nimbus-east-2");
  EXPECT_FALSE(verify_sigv4(c, r, "s3cr3t", kSigned));
  EXPECT_TRUE(verify_sigv4(c, r, "s3cr3T", kSigned));
  r.headers.erase("x-amz-date");
  EXPECT_FALSE(sign_sigv4(r, "AKIDNIMBUS", "s3cr3t", "nimbus-east-2").ok());
}

TEST(SigV4, CanonicalPieces) {
  EXPECT_EQ(sigv4_canonical_uri(""), "/");
  EXPECT_EQ(sigv4_canonical_uri("/"), "/");
  EXPECT_EQ(sigv4_canonical_uri("/a/b/"), "/a/b/");
  EXPECT_EQ(sigv4_canonical_uri("/../../a/./"), "/a/");
  EXPECT_EQ(sigv4_canonical_uri("/a b/~x*"), "/a%20b/~x%2A");
  // Re-encoding: %XX upper case, '+' is a literal plus, a stray '%' is encoded.
  EXPECT_EQ(sigv4_canonical_query("b=%2f&a=x+y&c=%&d=%7e"), "a=x%2By&b=%2F&c=%25&d=~");
  EXPECT_EQ(sigv4_canonical_query(""), "");
  EXPECT_EQ(sigv4_canonical_query("&&"), "");
  // Decoded pairs encode to a query with the same canonical form.
  std::multimap<std::string, std::string> pairs = {{"a", "~ x"}, {"b", "2"}, {"a-b", "3"}};
  EXPECT_EQ(encode_query(pairs), "a=~%20x&a-b=3&b=2");
  EXPECT_EQ(sigv4_canonical_query(encode_query(pairs)), "a=~%20x&a-b=3&b=2");
}

TEST(SigV4, Sha256) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  char path[] = "/tmp/nimbus-sigv4-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 1000000; ++i) f.put('a');  // larger than one read chunk
  }
  auto h = sha256_file(path);
  ASSERT_TRUE(h.ok()) << h.message();
  EXPECT_EQ(*h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  std::remove(path);
  h = sha256_file(path);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.code(), Code::kNotFound);
  EXPECT_TRUE(contains(h.message(), path)) << h.message();
  h = sha256_file("/");  // a directory: open works, read fails
  EXPECT_FALSE(h.ok());
}

}  // namespace
}  // namespace nimbus::cloud
