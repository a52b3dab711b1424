// EC2's Filter.N.Name / Filter.N.Value.M: the values of one filter are ORed, separate
// filters ANDed, and values may hold the wildcards * (any run) and ? (any one character).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nimbus::cloud {

struct Filter {
  std::string name;
  std::vector<std::string> values;
};

// EC2's wildcard match: * and ?, with \ escaping the next character.
bool wildcard_match(std::string_view pattern, std::string_view text);

// The values a resource has for a filter name (several for e.g. tag-key), or nullopt for a
// filter name the resource type does not know.
using FieldLookup = std::function<std::optional<std::vector<std::string>>(const std::string&)>;

// Whether the resource passes every filter. An unknown filter name is reported in
// `unknown` (the caller answers InvalidParameterValue) and fails the match.
bool matches_all(const std::vector<Filter>& filters, const FieldLookup& lookup,
                 std::string* unknown = nullptr);

}  // namespace nimbus::cloud
