#include "cloud/filters.h"

namespace nimbus::cloud {

bool wildcard_match(std::string_view p, std::string_view t) {
  // Iterative matcher with one backtrack point for the last *: linear-ish, never
  // exponential, whatever a client puts in the pattern.
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '\\' && pi + 1 < p.size() && p[pi + 1] == t[ti]) {
      pi += 2;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (pi < p.size() && p[pi] != '\\' && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool matches_all(const std::vector<Filter>& filters, const FieldLookup& lookup,
                 std::string* unknown) {
  for (const Filter& f : filters) {
    auto have = lookup(f.name);
    if (!have) {
      if (unknown) *unknown = f.name;
      return false;
    }
    bool any = false;
    for (const std::string& want : f.values) {
      for (const std::string& v : *have) {
        if (wildcard_match(want, v)) {
          any = true;
          break;
        }
      }
      if (any) break;
    }
    if (!any) return false;
  }
  return true;
}

}  // namespace nimbus::cloud
