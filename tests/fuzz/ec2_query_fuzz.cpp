// Fuzzes the EC2 Query front of the control plane: arbitrary bytes as a form body
// (QueryParams::parse, then members() walked a few levels deep and list() at every
// level), as an Authorization header (parse_authorization, then verify_sigv4 against a
// request built from the same bytes), and every value written through XmlWriter. Each
// response must be well-formed: valid UTF-8, no raw markup from a value, no character
// XML 1.0 forbids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <set>
#include <string>
#include <string_view>

#include "cloud/ec2_error.h"
#include "cloud/ec2_query.h"
#include "cloud/sigv4.h"
#include "cloud/xml_writer.h"

namespace {

using nimbus::cloud::QueryParams;
using nimbus::cloud::XmlWriter;

// A strict check of a document or of text: UTF-8, no C0 control but tab and LF.
void check_text(std::string_view doc) {
  for (size_t i = 0; i < doc.size();) {
    auto c = static_cast<unsigned char>(doc[i]);
    if (c < 0x20 && c != '\t' && c != '\n') std::abort();
    size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || i + len > doc.size()) std::abort();
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(doc[i + k]) & 0xC0) != 0x80) std::abort();
    i += len;
  }
}

void walk(const QueryParams& p, XmlWriter& w, int depth) {
  if (p.size() > QueryParams::kMaxParams) std::abort();
  std::set<std::string> names;
  for (const auto& [key, value] : p.all()) {
    std::string escaped = nimbus::cloud::xml_escape(value);
    if (escaped.find('<') != std::string::npos) std::abort();
    check_text(escaped);
    w.text("value", value);
    // Names with a dot are walked (once per level) as lists and structures of their
    // first segment.
    const size_t dot = key.find('.');
    if (dot != std::string::npos) names.insert(key.substr(0, dot));
  }
  if (depth >= 4) return;
  for (const std::string& name : names) {
    w.open("item");
    for (const std::string& v : p.list(name)) w.text("member", v);
    for (const QueryParams& m : p.members(name)) walk(m, w, depth + 1);
    w.close();
    (void)p.get_int(name, -100, 100);
    (void)p.get_bool(name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto params = QueryParams::parse(input);
  XmlWriter w("FuzzResponse");
  if (params.ok()) {
    walk(*params, w, 0);
    (void)params->list("InstanceId");
    (void)params->members("Filter");
  } else {
    if (params.message().empty()) std::abort();
    w.text("error", params.message());
  }
  check_text(w.finish());

  auto credential = nimbus::cloud::parse_authorization(input);
  if (credential.ok()) {
    if (credential->signature.size() != 64 || credential->signed_headers.empty()) std::abort();
    nimbus::cloud::SigV4Request request;
    request.method = "POST";
    request.path = std::string(input.substr(0, 64));
    request.raw_query = std::string(input.substr(0, 128));
    request.body = std::string(input);
    for (const std::string& h : credential->signed_headers)
      request.headers.emplace(h, std::string(input.substr(0, 32)));
    request.headers.emplace("x-amz-date", credential->date + "T000000Z");
    // "now" is the credential's day, so the check reaches the signature comparison.
    const std::string& d = credential->date;
    std::tm tm{};
    tm.tm_year = std::stoi(d.substr(0, 4)) - 1900;
    tm.tm_mon = std::stoi(d.substr(4, 2)) - 1;
    tm.tm_mday = std::stoi(d.substr(6, 2));
    auto err = nimbus::cloud::verify_sigv4(*credential, request, "secret", timegm(&tm));
    if (!err) std::abort();  // a signature the fuzzer made up never matches
  }

  nimbus::cloud::Ec2Error e{400, std::string(input.substr(0, 16)), std::string(input)};
  const std::string body = nimbus::cloud::ec2_error_body(e, input.substr(0, 36));
  const size_t open = body.find("<Message>") + 9, close = body.find("</Message>");
  if (close == std::string::npos || close < open) std::abort();
  check_text(std::string_view(body).substr(open, close - open));
  return 0;
}
