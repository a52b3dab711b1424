#include "cloud/ec2_query.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <utility>

namespace nimbus::cloud {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Form decoding: '+' is a space, %XX a byte. False on a bad escape.
bool form_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

// A segment of digits only, as an index: 1..kMaxIndex without leading zeros.
std::optional<int64_t> parse_index(std::string_view s) {
  if (s.empty() || s.size() > 5 || s[0] == '0') return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > QueryParams::kMaxIndex) return std::nullopt;
  return v;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The shape every key must have (see the header); the error names the key.
Status check_key(const std::string& key) {
  if (key.empty()) return Status::invalid_argument("A parameter has an empty name");
  for (char c : key) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f)
      return Status::invalid_argument(
          fmt::format("Invalid parameter name {}: names are printable ASCII without spaces",
                      quote_value_for_message(key)));
  }
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string_view seg = std::string_view(key).substr(
        start, dot == std::string::npos ? std::string::npos : dot - start);
    if (seg.empty())
      return Status::invalid_argument(
          fmt::format("Invalid parameter name '{}': empty segment between dots", key));
    if (all_digits(seg) && !parse_index(seg))
      return Status::invalid_argument(
          fmt::format("Invalid parameter name '{}': the index '{}' must be an integer from 1 to {} "
                      "without leading zeros",
                      key, seg, QueryParams::kMaxIndex));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return Status();
}

}  // namespace

std::string quote_value_for_message(std::string_view value) {
  constexpr size_t kMax = 64;
  if (value.size() <= kMax) return fmt::format("'{}'", value);
  size_t cut = kMax;
  // Do not cut a UTF-8 sequence in two.
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  return fmt::format("'{}...'", value.substr(0, cut));
}

Result<QueryParams> QueryParams::parse(std::string_view form) {
  QueryParams out;
  std::string key, value;
  size_t pos = 0;
  while (pos <= form.size()) {
    size_t amp = form.find('&', pos);
    if (amp == std::string_view::npos) amp = form.size();
    std::string_view pair = form.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_key = pair.substr(0, eq);
    std::string_view raw_value = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    // A decoded byte takes 1 to 3 raw bytes: bound the work before decoding.
    if (raw_key.size() > 3 * kMaxKeyBytes)
      return Status::invalid_argument(fmt::format("Parameter name {} is longer than {} bytes",
                                                  quote_value_for_message(raw_key), kMaxKeyBytes));
    if (!form_decode(raw_key, key))
      return Status::invalid_argument(
          fmt::format("Parameter name {} has a bad %-escape", quote_value_for_message(raw_key)));
    if (key.size() > kMaxKeyBytes)
      return Status::invalid_argument(fmt::format("Parameter name {} is longer than {} bytes",
                                                  quote_value_for_message(key), kMaxKeyBytes));
    // The key is checked before the value's errors quote it.
    if (Status s = check_key(key); !s.ok()) return s;
    if (raw_value.size() > 3 * kMaxValueBytes)
      return Status::invalid_argument(
          fmt::format("The value of parameter '{}' is longer than {} bytes", key, kMaxValueBytes));
    if (!form_decode(raw_value, value))
      return Status::invalid_argument(
          fmt::format("The value of parameter '{}' has a bad %-escape", key));
    if (Status s = out.add_checked(key, value); !s.ok()) return s;
  }
  return out;
}

Status QueryParams::add_checked(const std::string& key, std::string_view value) {
  if (key.size() > kMaxKeyBytes)
    return Status::invalid_argument(fmt::format("Parameter name {} is longer than {} bytes",
                                                quote_value_for_message(key), kMaxKeyBytes));
  if (Status s = check_key(key); !s.ok()) return s;
  if (value.size() > kMaxValueBytes)
    return Status::invalid_argument(
        fmt::format("The value of parameter '{}' is longer than {} bytes", key, kMaxValueBytes));
  if (params_.size() >= kMaxParams)
    return Status::invalid_argument(
        fmt::format("The request has more than {} parameters", kMaxParams));
  auto [it, inserted] = params_.try_emplace(key, value);
  if (!inserted)
    return Status::invalid_argument(fmt::format("Parameter '{}' appears more than once", key));
  return Status();
}

Result<QueryParams> QueryParams::from_pairs(const std::multimap<std::string, std::string>& pairs) {
  QueryParams out;
  for (const auto& [k, v] : pairs)
    if (Status s = out.add_checked(k, v); !s.ok()) return s;
  return out;
}

Status QueryParams::merge(const QueryParams& other) {
  if (params_.size() + other.params_.size() > kMaxParams)
    return Status::invalid_argument(
        fmt::format("The request has more than {} parameters", kMaxParams));
  for (const auto& [k, v] : other.params_)
    if (params_.count(k))
      return Status::invalid_argument(fmt::format(
          "Parameter '{}' is given twice (in the URL's query string and in the body)", k));
  for (const auto& [k, v] : other.params_) params_.emplace(k, v);
  return Status();
}

void QueryParams::set(std::string key, std::string value) {
  params_.insert_or_assign(std::move(key), std::move(value));
}

std::optional<std::string> QueryParams::get(std::string_view name) const {
  auto it = params_.find(std::string(name));
  if (it == params_.end()) return std::nullopt;
  return it->second;
}

bool QueryParams::has(std::string_view name) const { return params_.count(std::string(name)) != 0; }

std::string QueryParams::get_or(std::string_view name, std::string_view fallback) const {
  auto it = params_.find(std::string(name));
  return it == params_.end() ? std::string(fallback) : it->second;
}

std::vector<std::string> QueryParams::list(std::string_view name) const {
  const std::string prefix = std::string(name) + ".";
  std::vector<std::pair<int64_t, const std::string*>> found;
  for (auto it = params_.lower_bound(prefix);
       it != params_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (auto index = parse_index(std::string_view(it->first).substr(prefix.size())))
      found.emplace_back(*index, &it->second);
  }
  // Keys sort as text ("X.10" before "X.2"); the list is in numeric order.
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  out.reserve(found.size());
  for (const auto& [index, value] : found) out.push_back(*value);
  return out;
}

std::vector<QueryParams> QueryParams::members(std::string_view name) const {
  const std::string prefix = std::string(name) + ".";
  std::map<int64_t, QueryParams> by_index;
  for (auto it = params_.lower_bound(prefix);
       it != params_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    std::string_view rest = std::string_view(it->first).substr(prefix.size());
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos) continue;  // NAME.N=value: a list element
    auto index = parse_index(rest.substr(0, dot));
    if (!index) continue;
    // The keys of one member are contiguous and already sorted: appending is O(1).
    auto& member = by_index[*index].params_;
    member.emplace_hint(member.end(), std::string(rest.substr(dot + 1)), it->second);
  }
  std::vector<QueryParams> out;
  out.reserve(by_index.size());
  for (auto& [index, member] : by_index) out.push_back(std::move(member));
  return out;
}

Result<std::optional<int64_t>> QueryParams::get_int(std::string_view name, int64_t min,
                                                    int64_t max) const {
  auto it = params_.find(std::string(name));
  if (it == params_.end()) return std::optional<int64_t>();
  const std::string& v = it->second;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < min || n > max)
    return Status::invalid_argument(
        fmt::format("Invalid value {} for {}: expected an integer from {} to {}",
                    quote_value_for_message(v), name, min, max));
  return std::optional<int64_t>(n);
}

Result<std::optional<bool>> QueryParams::get_bool(std::string_view name) const {
  auto it = params_.find(std::string(name));
  if (it == params_.end()) return std::optional<bool>();
  if (it->second == "true") return std::optional<bool>(true);
  if (it->second == "false") return std::optional<bool>(false);
  return Status::invalid_argument(fmt::format("Invalid value {} for {}: expected true or false",
                                              quote_value_for_message(it->second), name));
}

}  // namespace nimbus::cloud
