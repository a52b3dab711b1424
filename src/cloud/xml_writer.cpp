#include "cloud/xml_writer.h"

#include <fmt/format.h>

namespace nimbus::cloud {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

bool continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// The length of the valid UTF-8 sequence at s[i], or 0 and in `bad` how many bytes to
// replace with one U+FFFD (the maximal ill-formed subpart, Unicode §3.9, so one bad byte
// never swallows a good character after it).
size_t utf8_sequence(std::string_view s, size_t i, size_t& bad) {
  auto at = [&](size_t k) -> int {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : -1;
  };
  const int b0 = at(0);
  size_t len;
  int lo = 0x80, hi = 0xBF;  // range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    bad = 1;  // a stray continuation byte, C0, C1, F5..FF
    return 0;
  }
  const int b1 = at(1);
  if (b1 < lo || b1 > hi) {
    bad = 1;
    return 0;
  }
  for (size_t k = 2; k < len; ++k) {
    int b = at(k);
    if (b < 0 || !continuation(static_cast<unsigned char>(b))) {
      bad = k;
      return 0;
    }
  }
  return len;
}

// XML 1.0 NameChar, restricted to ASCII (EC2's tags are ASCII).
bool name_char(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (first) return false;
  return (c >= '0' && c <= '9') || c == '-' || c == '.';
}

void append_name(std::string& out, std::string_view tag) {
  if (tag.empty()) {
    out.push_back('_');
    return;
  }
  for (size_t i = 0; i < tag.size(); ++i) out.push_back(name_char(tag[i], i == 0) ? tag[i] : '_');
}

}  // namespace

void append_xml_escaped(std::string& out, std::string_view value) {
  out.reserve(out.size() + value.size());
  size_t i = 0;
  while (i < value.size()) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        case '\r':
          out += "&#13;";  // a literal CR would be normalised to LF by the parser
          break;
        case '\t':
        case '\n':
          out.push_back(static_cast<char>(c));
          break;
        default:
          if (c < 0x20)
            out += kReplacement;  // not an XML 1.0 Char, not even as &#N;
          else
            out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    size_t bad = 0;
    const size_t len = utf8_sequence(value, i, bad);
    if (len == 0) {
      out += kReplacement;
      i += bad;
      continue;
    }
    // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML 1.0 Chars.
    if (len == 3 && c == 0xEF && static_cast<unsigned char>(value[i + 1]) == 0xBF &&
        static_cast<unsigned char>(value[i + 2]) >= 0xBE) {
      out += kReplacement;
    } else {
      out.append(value.substr(i, len));
    }
    i += len;
  }
}

std::string xml_escape(std::string_view value) {
  std::string out;
  append_xml_escaped(out, value);
  return out;
}

XmlWriter::XmlWriter(std::string_view root, std::string_view xmlns) {
  out_ = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
  out_.push_back('<');
  append_name(out_, root);
  if (!xmlns.empty()) {
    out_ += " xmlns=\"";
    append_xml_escaped(out_, xmlns);
    out_.push_back('"');
  }
  out_.push_back('>');
  open_.emplace_back(root);
}

void XmlWriter::start_tag(std::string_view tag) {
  out_.push_back('<');
  append_name(out_, tag);
  out_.push_back('>');
}

void XmlWriter::end_tag(std::string_view tag) {
  out_ += "</";
  append_name(out_, tag);
  out_.push_back('>');
}

XmlWriter& XmlWriter::open(std::string_view tag) {
  if (finished_) return *this;
  start_tag(tag);
  open_.emplace_back(tag);
  return *this;
}

XmlWriter& XmlWriter::close() {
  if (finished_ || open_.size() <= 1) return *this;
  end_tag(open_.back());
  open_.pop_back();
  return *this;
}

XmlWriter& XmlWriter::text(std::string_view tag, std::string_view value) {
  if (finished_) return *this;
  start_tag(tag);
  append_xml_escaped(out_, value);
  end_tag(tag);
  return *this;
}

XmlWriter& XmlWriter::number(std::string_view tag, int64_t value) {
  return text(tag, fmt::format("{}", value));
}

XmlWriter& XmlWriter::boolean(std::string_view tag, bool value) {
  return text(tag, value ? "true" : "false");
}

std::string XmlWriter::finish() {
  if (finished_) return std::string();
  while (!open_.empty()) {
    end_tag(open_.back());
    open_.pop_back();
  }
  finished_ = true;
  return std::move(out_);
}

}  // namespace nimbus::cloud
