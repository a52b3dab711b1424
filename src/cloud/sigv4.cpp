#include "cloud/sigv4.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "cloud/ec2_query.h"

namespace nimbus::cloud {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr size_t kMaxHeaderBytes = 4096;
constexpr size_t kMaxSignedHeaders = 64;
constexpr size_t kMaxHeaderNameBytes = 128;
constexpr std::time_t kMaxSkewSeconds = 15 * 60;

std::string to_hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xF];
  }
  return out;
}

// Raw HMAC-SHA256 (32 bytes).
std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len);
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
bool is_unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

bool all_of(std::string_view s, bool (*ok)(char)) { return std::all_of(s.begin(), s.end(), ok); }

// RFC 7230 tchar, lower case only (signed header names are lower case).
bool header_name_char(char c) {
  if ((c >= 'a' && c <= 'z') || is_digit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim(std::string_view s, std::string_view chars = " \t") {
  size_t b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(chars);
  return s.substr(b, e - b + 1);
}

void percent_encode(std::string& out, std::string_view s, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  for (char c : s) {
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kDigits[u >> 4]);
      out.push_back(kDigits[u & 0xF]);
    }
  }
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded; anything else (including '+' and a '%' not followed by two hex digits)
// kept as it is, so it is encoded again below.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// Trimall of the SigV4 spec, as botocore does it: ' '.join(value.split()).
std::string collapse_spaces(std::string_view v) {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  std::string out;
  size_t i = 0;
  while (true) {
    size_t b = v.find_first_not_of(kSpace, i);
    if (b == std::string_view::npos) break;
    size_t e = v.find_first_of(kSpace, b);
    if (e == std::string_view::npos) e = v.size();
    if (!out.empty()) out.push_back(' ');
    out.append(v.substr(b, e - b));
    i = e;
  }
  return out;
}

// yyyymmdd, a real calendar day.
bool valid_date(std::string_view d) {
  if (d.size() != 8 || !all_of(d, is_digit)) return false;
  int month = (d[4] - '0') * 10 + (d[5] - '0');
  int day = (d[6] - '0') * 10 + (d[7] - '0');
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

// yyyymmddThhmmssZ as seconds since the epoch; checks it is a real date and time.
std::optional<std::time_t> parse_amz_date(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  if (!valid_date(s.substr(0, 8)) || !all_of(s.substr(9, 6), is_digit)) return std::nullopt;
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = 0; i < len; ++i) v = v * 10 + (s[pos + i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  tm.tm_hour = num(9, 2);
  tm.tm_min = num(11, 2);
  tm.tm_sec = num(13, 2);
  if (tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) return std::nullopt;
  const std::tm want = tm;
  std::time_t t = timegm(&tm);
  // timegm normalises 20240231 to March 2nd: such a date is not real.
  if (tm.tm_mday != want.tm_mday || tm.tm_mon != want.tm_mon) return std::nullopt;
  return t;
}

std::string format_amz_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Status parse_credential(std::string_view v, SigV4Credential& out) {
  std::array<std::string_view, 5> f;
  size_t start = 0;
  for (size_t i = 0; i < 5; ++i) {
    size_t slash = v.find('/', start);
    if ((slash == std::string_view::npos) != (i == 4))
      return Status::invalid_argument(
          "Credential must be ACCESS_KEY/yyyymmdd/REGION/SERVICE/aws4_request");
    f[i] =
        v.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    start = slash + 1;
  }
  auto key_char = [](char c) { return is_unreserved(c) && c != '.' && c != '~'; };
  if (f[0].empty() || f[0].size() > 128 || !std::all_of(f[0].begin(), f[0].end(), key_char))
    return Status::invalid_argument(
        "the access key id in Credential must be 1 to 128 letters, digits, '-' or '_'");
  if (!valid_date(f[1])) return Status::invalid_argument("the date in Credential must be yyyymmdd");
  auto scope_char = [](char c) { return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-'; };
  if (f[2].empty() || f[2].size() > 64 || !std::all_of(f[2].begin(), f[2].end(), scope_char))
    return Status::invalid_argument(
        "the region in Credential must be 1 to 64 lower-case letters, digits or '-'");
  if (f[3].empty() || f[3].size() > 64 || !std::all_of(f[3].begin(), f[3].end(), scope_char))
    return Status::invalid_argument(
        "the service in Credential must be 1 to 64 lower-case letters, digits or '-'");
  if (f[4] != "aws4_request")
    return Status::invalid_argument("Credential must end with /aws4_request");
  out.access_key = f[0];
  out.date = f[1];
  out.region = f[2];
  out.service = f[3];
  return Status();
}

Status parse_signed_headers(std::string_view v, SigV4Credential& out) {
  out.signed_headers.clear();
  size_t start = 0;
  while (true) {
    size_t semi = v.find(';', start);
    std::string_view name =
        v.substr(start, semi == std::string_view::npos ? std::string_view::npos : semi - start);
    if (name.empty() || name.size() > kMaxHeaderNameBytes || !all_of(name, header_name_char))
      return Status::invalid_argument(
          "SignedHeaders must be lower-case header names separated by ';'");
    if (!out.signed_headers.empty() && name <= out.signed_headers.back())
      return Status::invalid_argument("SignedHeaders must be sorted and name each header once");
    if (out.signed_headers.size() == kMaxSignedHeaders)
      return Status::invalid_argument(
          fmt::format("SignedHeaders names more than {} headers", kMaxSignedHeaders));
    out.signed_headers.emplace_back(name);
    if (semi == std::string_view::npos) break;
    start = semi + 1;
  }
  return Status();
}

Ec2Error auth_failure(std::string message) {
  return Ec2Error{401, "AuthFailure", std::move(message)};
}

Ec2Error signature_mismatch(std::string message) {
  return Ec2Error{403, "SignatureDoesNotMatch", std::move(message)};
}

std::string string_to_sign(std::string_view amz_date, std::string_view date,
                           std::string_view region, std::string_view service,
                           std::string_view canonical_request) {
  return fmt::format("{}\n{}\n{}/{}/{}/aws4_request\n{}", kAlgorithm, amz_date, date, region,
                     service, sha256_hex(canonical_request));
}

}  // namespace

Ec2Error incomplete_signature(std::string message) {
  return Ec2Error{400, "IncompleteSignature", std::move(message)};
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return to_hex(md, sizeof md);
}

Result<std::string> sha256_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string m = fmt::format("cannot open '{}': {}", path, std::strerror(err));
    return err == ENOENT ? Status::not_found(m) : Status::internal(m);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    ::close(fd);
    return Status::internal("cannot set up SHA-256");
  }
  std::vector<char> buf(1 << 16);
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::internal(fmt::format("cannot read '{}': {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) return Status::internal("SHA-256 failed");
  return to_hex(md, len);
}

Result<SigV4Credential> parse_authorization(std::string_view header) {
  auto bad = [](std::string_view why) {
    return Status::invalid_argument(fmt::format("Invalid Authorization header: {}", why));
  };
  if (header.size() > kMaxHeaderBytes)
    return bad(fmt::format("longer than {} bytes", kMaxHeaderBytes));
  if (header.substr(0, kAlgorithm.size()) != kAlgorithm ||
      (header.size() > kAlgorithm.size() && header[kAlgorithm.size()] != ' '))
    return bad("only AWS4-HMAC-SHA256 (Signature Version 4) is supported");
  std::string_view rest = header.substr(kAlgorithm.size());
  SigV4Credential out;
  bool have_credential = false, have_signed = false, have_signature = false;
  size_t start = 0;
  while (start <= rest.size()) {
    size_t comma = rest.find(',', start);
    if (comma == std::string_view::npos) comma = rest.size();
    std::string_view part = trim(rest.substr(start, comma - start));
    start = comma + 1;
    if (part.empty())
      return bad("an empty component (expected Credential=, SignedHeaders=, Signature=)");
    size_t eq = part.find('=');
    std::string_view name = part.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : part.substr(eq + 1);
    if (eq == std::string_view::npos || value.empty())
      return bad(fmt::format("component {} has no value", quote_value_for_message(name)));
    if (name == "Credential") {
      if (have_credential) return bad("Credential appears twice");
      have_credential = true;
      if (Status s = parse_credential(value, out); !s.ok()) return bad(s.message());
    } else if (name == "SignedHeaders") {
      if (have_signed) return bad("SignedHeaders appears twice");
      have_signed = true;
      if (Status s = parse_signed_headers(value, out); !s.ok()) return bad(s.message());
    } else if (name == "Signature") {
      if (have_signature) return bad("Signature appears twice");
      have_signature = true;
      if (value.size() != 64 || !all_of(value, is_lower_hex))
        return bad("Signature must be 64 lower-case hex digits");
      out.signature = value;
    } else {
      return bad(fmt::format("unknown component {}", quote_value_for_message(name)));
    }
  }
  if (!have_credential) return bad("Credential is missing");
  if (!have_signed) return bad("SignedHeaders is missing");
  if (!have_signature) return bad("Signature is missing");
  return out;
}

std::string sigv4_canonical_uri(std::string_view path) {
  if (path.empty()) return "/";
  // botocore's remove_dot_segments (RFC 3986 §5.2.4, and empty segments dropped).
  std::vector<std::string_view> segs;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view s = path.substr(start, slash - start);
    start = slash + 1;
    if (s.empty() || s == ".") continue;
    if (s == "..") {
      if (!segs.empty()) segs.pop_back();
      continue;
    }
    segs.push_back(s);
  }
  std::string normal = path[0] == '/' ? "/" : "";
  for (size_t i = 0; i < segs.size(); ++i) {
    if (i) normal.push_back('/');
    normal.append(segs[i]);
  }
  if (path.back() == '/' && !segs.empty()) normal.push_back('/');
  std::string out;
  percent_encode(out, normal, /*keep_slash=*/true);
  return out;
}

std::string sigv4_canonical_query(std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t start = 0;
  while (start <= raw_query.size()) {
    size_t amp = raw_query.find('&', start);
    if (amp == std::string_view::npos) amp = raw_query.size();
    std::string_view pair = raw_query.substr(start, amp - start);
    start = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string k, v;
    percent_encode(k, percent_decode(pair.substr(0, eq)), false);
    if (eq != std::string_view::npos) percent_encode(v, percent_decode(pair.substr(eq + 1)), false);
    pairs.emplace_back(std::move(k), std::move(v));
  }
  std::sort(pairs.begin(), pairs.end());  // by name, then value (as botocore)
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

std::string encode_query(const std::multimap<std::string, std::string>& pairs) {
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out.push_back('&');
    percent_encode(out, k, false);
    out.push_back('=');
    percent_encode(out, v, false);
  }
  return out;
}

Result<std::string> sigv4_canonical_request(const SigV4Request& request,
                                            const std::vector<std::string>& signed_headers,
                                            std::string_view payload_hash) {
  std::string out = request.method;
  out.push_back('\n');
  out += sigv4_canonical_uri(request.path);
  out.push_back('\n');
  out += sigv4_canonical_query(request.raw_query);
  out.push_back('\n');
  std::string names;
  for (const std::string& name : signed_headers) {
    auto [b, e] = request.headers.equal_range(name);
    if (b == e)
      return Status::invalid_argument(
          fmt::format("the signed header '{}' is not in the request", name));
    out += name;
    out.push_back(':');
    for (auto it = b; it != e; ++it) {
      if (it != b) out.push_back(',');
      out += collapse_spaces(it->second);
    }
    out.push_back('\n');
    if (!names.empty()) names.push_back(';');
    names += name;
  }
  out.push_back('\n');
  out += names;
  out.push_back('\n');
  out += payload_hash;
  return out;
}

std::string sigv4_signature(std::string_view secret_key, std::string_view date,
                            std::string_view region, std::string_view service,
                            std::string_view string_to_sign) {
  std::string key = hmac_sha256("AWS4" + std::string(secret_key), date);
  key = hmac_sha256(key, region);
  key = hmac_sha256(key, service);
  key = hmac_sha256(key, "aws4_request");
  std::string sig = hmac_sha256(key, string_to_sign);
  OPENSSL_cleanse(key.data(), key.size());
  return to_hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

std::optional<Ec2Error> verify_sigv4(const SigV4Credential& credential, const SigV4Request& request,
                                     std::string_view secret_key, std::time_t now) {
  auto [db, de] = request.headers.equal_range("x-amz-date");
  if (db == de)
    return incomplete_signature(
        "The request has no X-Amz-Date header, which Signature Version 4 needs");
  if (std::next(db) != de)
    return incomplete_signature("The request has more than one X-Amz-Date header");
  const std::string& amz_date = db->second;
  auto when = parse_amz_date(amz_date);
  if (!when)
    return incomplete_signature(fmt::format("X-Amz-Date {} is not of the form yyyymmddThhmmssZ",
                                            quote_value_for_message(amz_date)));
  if (amz_date.compare(0, 8, credential.date) != 0)
    return auth_failure(fmt::format("The credential's date {} is not the day of X-Amz-Date {}",
                                    credential.date, amz_date));
  if (*when > now + kMaxSkewSeconds || *when < now - kMaxSkewSeconds)
    return auth_failure(fmt::format(
        "The request's X-Amz-Date {} is more than 15 minutes from the server's time {}: "
        "check the client's clock",
        amz_date, format_amz_date(now)));
  const auto& signed_headers = credential.signed_headers;
  if (std::find(signed_headers.begin(), signed_headers.end(), "host") == signed_headers.end())
    return incomplete_signature("The Host header must be one of the SignedHeaders");

  const std::string body_hash = sha256_hex(request.body);
  std::string payload_hash = body_hash;
  auto [cb, ce] = request.headers.equal_range("x-amz-content-sha256");
  if (cb != ce) {
    // A client may send the body's hash; it must be that (the body carries the
    // parameters, so an unsigned payload is not accepted).
    if (std::next(cb) != ce || cb->second != body_hash)
      return signature_mismatch(
          "The X-Amz-Content-SHA256 header is not the SHA-256 of the request body (an "
          "unsigned payload is not accepted)");
  }
  auto canonical = sigv4_canonical_request(request, signed_headers, payload_hash);
  if (!canonical.ok())
    return incomplete_signature(fmt::format("The request is incomplete: {}", canonical.message()));
  const std::string sts =
      string_to_sign(amz_date, credential.date, credential.region, credential.service, *canonical);
  const std::string expected =
      sigv4_signature(secret_key, credential.date, credential.region, credential.service, sts);
  if (credential.signature.size() != expected.size() ||
      CRYPTO_memcmp(credential.signature.data(), expected.data(), expected.size()) != 0)
    return signature_mismatch(
        "The request signature we calculated does not match the signature you provided. "
        "Check your secret access key and signing method.");
  return std::nullopt;
}

Result<std::string> sign_sigv4(const SigV4Request& request, std::string_view access_key,
                               std::string_view secret_key, std::string_view region,
                               std::string_view service) {
  auto date_it = request.headers.find("x-amz-date");
  if (date_it == request.headers.end() || !parse_amz_date(date_it->second))
    return Status::invalid_argument("sign_sigv4: the request needs an X-Amz-Date header");
  if (request.headers.find("host") == request.headers.end())
    return Status::invalid_argument("sign_sigv4: the request needs a Host header");
  std::vector<std::string> names;
  for (const auto& [name, value] : request.headers)
    if (names.empty() || names.back() != name) names.push_back(name);
  const std::string& amz_date = date_it->second;
  const std::string date = amz_date.substr(0, 8);
  std::string payload_hash = sha256_hex(request.body);
  if (auto it = request.headers.find("x-amz-content-sha256"); it != request.headers.end())
    payload_hash = it->second;
  auto canonical = sigv4_canonical_request(request, names, payload_hash);
  if (!canonical.ok()) return canonical.status();
  const std::string sts = string_to_sign(amz_date, date, region, service, *canonical);
  std::string joined;
  for (const auto& n : names) joined += (joined.empty() ? "" : ";") + n;
  return fmt::format("{} Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={}",
                     kAlgorithm, access_key, date, region, service, joined,
                     sigv4_signature(secret_key, date, region, service, sts));
}

}  // namespace nimbus::cloud
