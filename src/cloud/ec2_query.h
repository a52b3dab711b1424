// The parameters of one EC2 Query request (CLOUD-NOTES §0.1): the form-encoded body
// `Action=X&Version=2016-11-15&...` (and the URL's query string), with lists and
// structures flattened by botocore's EC2Serializer as `Name.N` and `Name.N.Member`,
// N counting from 1:
//
//   InstanceId.1=i-1&InstanceId.2=i-2          list("InstanceId") == {"i-1", "i-2"}
//   Filter.1.Name=tag%3AName&Filter.1.Value.1=web
//       members("Filter")[0].get("Name") == "tag:Name", .list("Value") == {"web"}
//
// Everything here comes from a client and may be hostile, so parse() bounds the request
// (kMaxParams parameters, kMaxKeyBytes per key, kMaxValueBytes per value) and checks the
// shape of every key once, up front, so the accessors never fail and never guess:
//   - a key is printable ASCII without spaces, its dot-separated segments are non-empty;
//   - a segment of digits only is an index: a positive integer without leading zeros,
//     at most kMaxIndex ("Filter.0.Name", "InstanceId.01", "InstanceId.10001" are errors);
//   - no key appears twice.
// Values are bytes as the client sent them (not checked as UTF-8; XmlWriter makes any
// value safe to echo).
//
// Lookups are O(log n) and list()/members() scan only the keys under their prefix once
// (a map range), so walking a 4000-parameter request costs O(n log n), whatever its shape.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nimbus::cloud {

class QueryParams {
 public:
  static constexpr size_t kMaxParams = 4000;
  static constexpr size_t kMaxKeyBytes = 256;      // after percent-decoding
  static constexpr size_t kMaxValueBytes = 65536;  // after percent-decoding
  static constexpr int64_t kMaxIndex = 10000;

  QueryParams() = default;

  // Parses application/x-www-form-urlencoded text: pairs split on '&', key and value on
  // the first '=' (a pair without '=' has the value ""), '+' is a space, %XX a byte.
  // Empty pairs ("a=1&&b=2", a trailing '&') are skipped. Errors (kInvalidArgument, the
  // message names the key): a bad %-escape, an empty key, a key repeated, a key of the
  // wrong shape (see above), or a limit exceeded.
  static Result<QueryParams> parse(std::string_view form);

  // The same checks as parse() over pairs that are already decoded (e.g. the URL query
  // parameters an HTTP server hands out); a key given twice is an error too.
  static Result<QueryParams> from_pairs(const std::multimap<std::string, std::string>& pairs);

  // Adds `other`'s parameters (e.g. the body's to the URL's). A key present in both is
  // an error (kInvalidArgument naming it), not a silent choice: the two would say
  // different things about one request. So is going over kMaxParams in total. On error
  // nothing is added.
  Status merge(const QueryParams& other);

  // Sets a parameter, replacing any value (for code and tests building parameters; not
  // checked against the limits or the key shape).
  void set(std::string key, std::string value);

  std::optional<std::string> get(std::string_view name) const;
  bool has(std::string_view name) const;
  std::string get_or(std::string_view name, std::string_view fallback) const;

  // The values of NAME.1, NAME.2, ... in index order (gaps allowed). Only keys that are
  // exactly NAME.<index> count: NAME.1.Sub belongs to members(), and NAME itself is
  // not a list element.
  std::vector<std::string> list(std::string_view name) const;

  // The structures NAME.1.*, NAME.2.*, ... in index order, each holding its keys with
  // "NAME.N." stripped. A member with only a bare NAME.N=value key (no sub-key) is not
  // a structure and is left out.
  std::vector<QueryParams> members(std::string_view name) const;

  // NAME as an integer in [min, max]; nullopt when absent. A value that is not a
  // decimal integer (optional '-', digits only) or is out of range is kInvalidArgument:
  // "Invalid value 'x' for MaxCount: expected an integer from 1 to 1000".
  Result<std::optional<int64_t>> get_int(std::string_view name, int64_t min, int64_t max) const;

  // NAME as a boolean: exactly "true" or "false" (as botocore sends them); nullopt when
  // absent; anything else is kInvalidArgument.
  Result<std::optional<bool>> get_bool(std::string_view name) const;

  const std::map<std::string, std::string>& all() const { return params_; }
  size_t size() const { return params_.size(); }
  bool empty() const { return params_.empty(); }

 private:
  // Checks a decoded pair (key shape, sizes, count, duplicates) and adds it.
  Status add_checked(const std::string& key, std::string_view value);

  std::map<std::string, std::string> params_;
};

// A client value quoted for an error message: at most 64 bytes (then "..."), so a
// 64 KiB value does not become a 64 KiB message.
std::string quote_value_for_message(std::string_view value);

}  // namespace nimbus::cloud
