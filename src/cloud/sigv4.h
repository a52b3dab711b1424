// AWS Signature Version 4, server side (CLOUD-NOTES §1.3), the recipe of botocore's
// SigV4Auth (botocore/auth.py) that awscli and boto3 sign every EC2 request with:
//
//   Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240102/nimbus-west-1/ec2/aws4_request,
//                  SignedHeaders=content-type;host;x-amz-date, Signature=<64 hex>
//
//   canonical request = METHOD \n canonical URI \n canonical query \n
//                       (name:trimmed value \n, for each signed header) \n
//                       signed headers joined by ';' \n hex(sha256(body))
//   string to sign    = AWS4-HMAC-SHA256 \n X-Amz-Date \n date/region/service/aws4_request \n
//                       hex(sha256(canonical request))
//   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
//                            "aws4_request")
//   signature         = hex(HMAC(signing key, string to sign))
//
// Everything in the header and the request is client input: the parser is strict and
// bounded, and verification never trusts a value it has not checked.
#pragma once

#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/ec2_error.h"
#include "common/status.h"

namespace nimbus::cloud {

// What the Authorization header says.
struct SigV4Credential {
  std::string access_key;                   // 1-128 of [A-Za-z0-9_-]
  std::string date;                         // yyyymmdd of the credential scope
  std::string region;                       // 1-64 of [a-z0-9-]; any region string works (§0.2)
  std::string service;                      // 1-64 of [a-z0-9-]; "ec2" from the EC2 clients
  std::vector<std::string> signed_headers;  // lower case, strictly ascending, 1-64 names
  std::string signature;                    // 64 lower-case hex digits
};

// Parses an Authorization header value. Components are separated by ',' with optional
// spaces (botocore writes ", "); each of Credential, SignedHeaders and Signature exactly
// once, nothing else; the header is at most 4096 bytes. Errors are kInvalidArgument with
// a message saying what is wrong (the caller answers IncompleteSignature, 400, e.g. with
// incomplete_signature(status.message())).
Result<SigV4Credential> parse_authorization(std::string_view header);

// The parts of an HTTP request that are signed.
struct SigV4Request {
  std::string method;     // "POST"
  std::string path;       // as sent on the request line, without the query: "/"
  std::string raw_query;  // as sent, without '?': "" for EC2 (the parameters are in the body)
  std::multimap<std::string, std::string> headers;  // names in lower case
  std::string body;
};

// Checks the request against the credential and the access key's secret, at time `now`.
// nullopt when the signature is good, else the error to answer:
//   IncompleteSignature (400): no or malformed X-Amz-Date, "host" not signed, a signed
//     header missing from the request;
//   AuthFailure (401): X-Amz-Date more than 15 minutes from `now`, or its day differs
//     from the credential's date;
//   SignatureDoesNotMatch (403): the signature differs (wrong secret, changed body,
//     header, path or query, wrong region or service in the scope), or an
//     X-Amz-Content-SHA256 header that is not the body's SHA-256 (UNSIGNED-PAYLOAD is
//     refused: the body holds the request's parameters).
// Finding the secret (and refusing an unknown access key) is the caller's job. Real EC2
// answers RequestExpired for a stale date; botocore treats both codes alike.
std::optional<Ec2Error> verify_sigv4(const SigV4Credential& credential, const SigV4Request& request,
                                     std::string_view secret_key, std::time_t now);

// Signs `request` as botocore does and returns the Authorization header value. Every
// header in request.headers is signed (botocore leaves out user-agent, expect and
// x-amzn-trace-id: do not put them in); they must include "host" and "x-amz-date"
// (yyyymmddThhmmssZ). For tests and clients of the API; kInvalidArgument otherwise.
Result<std::string> sign_sigv4(const SigV4Request& request, std::string_view access_key,
                               std::string_view secret_key, std::string_view region,
                               std::string_view service = "ec2");

// The pieces, exported for tests and debugging.
//
// The path with dot segments and repeated slashes removed, then percent-encoded once
// more (everything but A-Z a-z 0-9 - _ . ~ /): non-S3 services double-encode. "" is "/".
std::string sigv4_canonical_uri(std::string_view path);
// The query's pairs percent-decoded, re-encoded (A-Z a-z 0-9 - _ . ~ kept, %XX upper
// case, so '+' is %2B and a space %20), sorted by name then value, joined by '&'; a
// name without '=' has the value "". Matches botocore for the canonically encoded
// queries it sends.
std::string sigv4_canonical_query(std::string_view raw_query);
// A query string from decoded pairs (for a server that hands out decoded parameters):
// its canonical form is the same as the original's when the client encoded canonically.
std::string encode_query(const std::multimap<std::string, std::string>& pairs);
// The canonical request for these signed headers and payload hash (hex). Headers named
// in `signed_headers` must be present (kInvalidArgument naming the first missing one).
Result<std::string> sigv4_canonical_request(const SigV4Request& request,
                                            const std::vector<std::string>& signed_headers,
                                            std::string_view payload_hash);
// hex(HMAC(signing key, string_to_sign)).
std::string sigv4_signature(std::string_view secret_key, std::string_view date,
                            std::string_view region, std::string_view service,
                            std::string_view string_to_sign);

// Hex (lower case) SHA-256 of bytes, and of a file read in chunks (kNotFound if it does
// not exist, kInternal on another I/O error; the message names the path).
std::string sha256_hex(std::string_view data);
Result<std::string> sha256_file(const std::string& path);

// IncompleteSignature (400) with `message`: for a header parse_authorization refused.
Ec2Error incomplete_signature(std::string message);

}  // namespace nimbus::cloud
