// Strict reading of JSON objects for the configuration parsers: unknown fields, wrong
// types and out-of-range values are errors whose message names the field ("WHAT: 'KEY'
// must be ...") and says what is accepted.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::config {

using nlohmann::json;

// `j` is an object whose keys are all in `allowed`.
Status check_object(const json& j, const std::string& what,
                    const std::vector<std::string>& allowed);
// Absent keys leave `out` alone (or are an error when required).
Status get_string(const json& j, const char* key, const std::string& what, std::string& out,
                  bool required, size_t max_len = 4096);
Status get_bool(const json& j, const char* key, const std::string& what, bool& out);
Status get_uint(const json& j, const char* key, const std::string& what, uint64_t lo, uint64_t hi,
                uint64_t& out, bool required);

// Ids of drives and NICs: 1-64 characters of [A-Za-z0-9_.-].
bool valid_id(const std::string& id);

}  // namespace nimbus::config
