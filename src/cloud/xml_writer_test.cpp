#include "cloud/xml_writer.h"

#include <gtest/gtest.h>

#include <string>

namespace nimbus::cloud {
namespace {

constexpr std::string_view kDecl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
const std::string kFffd = "\xEF\xBF\xBD";

TEST(XmlWriter, WritesAnEc2Response) {
  XmlWriter w("TerminateInstancesResponse");
  w.text("requestId", "r-1").open("instancesSet").open("item").text("instanceId", "i-1");
  w.open("currentState").number("code", 48).text("name", "terminated").close();
  w.close().close().boolean("return", true).boolean("dryRun", false);
  EXPECT_EQ(w.finish(),
            std::string(kDecl) +
                "<TerminateInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
                "<requestId>r-1</requestId><instancesSet><item><instanceId>i-1</instanceId>"
                "<currentState><code>48</code><name>terminated</name></currentState></item>"
                "</instancesSet><return>true</return><dryRun>false</dryRun>"
                "</TerminateInstancesResponse>");
}

TEST(XmlWriter, FinishClosesEverythingOnceAndNoNamespaceWhenEmpty) {
  XmlWriter w("Response", "");
  w.open("Errors").open("Error").number("Big", INT64_MIN);
  EXPECT_EQ(w.finish(), std::string(kDecl) +
                            "<Response><Errors><Error><Big>-9223372036854775808</Big></Error>"
                            "</Errors></Response>");
  // Spent: nothing more is written.
  w.text("late", "x");
  EXPECT_EQ(w.finish(), "");
}

TEST(XmlWriter, ExtraCloseNeverClosesTheRoot) {
  XmlWriter w("R", "");
  w.open("a").close().close().close().text("b", "1");
  EXPECT_EQ(w.finish(), std::string(kDecl) + "<R><a></a><b>1</b></R>");
}

TEST(XmlWriter, EscapesMarkup) {
  EXPECT_EQ(xml_escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(xml_escape("</tagValue><x>"), "&lt;/tagValue&gt;&lt;x&gt;");
  XmlWriter w("R", "");
  w.text("value", "]]>&amp;");
  EXPECT_EQ(w.finish(), std::string(kDecl) + "<R><value>]]&gt;&amp;amp;</value></R>");
}

TEST(XmlWriter, ReplacesCharactersXmlForbids) {
  // Tab and newline stay, CR is a character reference (a parser would turn it into LF),
  // other C0 controls and U+FFFE/U+FFFF become U+FFFD. DEL and C1 controls are XML Chars.
  EXPECT_EQ(xml_escape("a\tb\nc"), "a\tb\nc");
  EXPECT_EQ(xml_escape("a\r\nb"), "a&#13;\nb");
  EXPECT_EQ(xml_escape(std::string("x\0y", 3)), "x" + kFffd + "y");
  EXPECT_EQ(xml_escape("\x01\x08\x0b\x0c\x1f"), kFffd + kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(xml_escape("\x7f"), "\x7f");
  EXPECT_EQ(xml_escape("\xC2\x85"), "\xC2\x85");                     // U+0085
  EXPECT_EQ(xml_escape("\xEF\xBF\xBE\xEF\xBF\xBF"), kFffd + kFffd);  // U+FFFE, U+FFFF
  EXPECT_EQ(xml_escape("\xEF\xBF\xBD"), kFffd);                      // U+FFFD itself is fine
}

TEST(XmlWriter, KeepsValidUtf8) {
  const std::string ok = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xED\x9F\xBF";
  EXPECT_EQ(xml_escape(ok), ok);
}

TEST(XmlWriter, ReplacesInvalidUtf8) {
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"a\xFF"
       "b",
       "a" + kFffd + "b"},                                  // never a UTF-8 byte
      {"\x80", kFffd},                                      // stray continuation
      {"\xC0\xAF", kFffd + kFffd},                          // overlong '/'
      {"\xC1\xBF", kFffd + kFffd},                          // overlong
      {"\xE0\x80\xAF", kFffd + kFffd + kFffd},              // overlong 3-byte
      {"\xED\xA0\x80", kFffd + kFffd + kFffd},              // a surrogate (U+D800)
      {"\xF0\x80\x80\xAF", kFffd + kFffd + kFffd + kFffd},  // overlong 4-byte
      {"\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},  // above U+10FFFF
      {"\xF5\x80", kFffd + kFffd},
      // A truncated sequence is one U+FFFD and does not swallow the next character.
      {"\xE2\x82"
       "a",
       kFffd + "a"},
      {"\xF0\x9F\x98"
       "<",
       kFffd + "&lt;"},
      {"\xE2\x82", kFffd},  // truncated at the end
      {"\xC3", kFffd},
      {"\xC3\xC3\xA9", kFffd + "\xC3\xA9"},
  };
  for (const Case& c : cases) EXPECT_EQ(xml_escape(c.in), c.out);
}

TEST(XmlWriter, BadTagCharactersBecomeUnderscores) {
  XmlWriter w("9root", "");
  w.text("a b<c", "v").text("", "e").text("item-1.x", "ok");
  EXPECT_EQ(w.finish(),
            std::string(kDecl) + "<_root><a_b_c>v</a_b_c><_>e</_><item-1.x>ok</item-1.x></_root>");
}

TEST(XmlWriter, EveryByteValueGivesWellFormedText) {
  // All 256 single bytes and all two-byte pairs: the output is valid UTF-8 with no
  // forbidden character and no raw markup, checked by a strict decode here.
  auto well_formed = [](const std::string& s) {
    for (size_t i = 0; i < s.size();) {
      auto c = static_cast<unsigned char>(s[i]);
      if (c == '<' || c == '>' || c == '"' || c == '\'' || c == '\r') return false;
      if (c < 0x20 && c != '\t' && c != '\n') return false;
      size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
      if (len == 0 || i + len > s.size()) return false;
      for (size_t k = 1; k < len; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      i += len;
    }
    return true;
  };
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) {
      std::string in{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_TRUE(well_formed(xml_escape(in))) << a << " " << b;
    }
}

}  // namespace
}  // namespace nimbus::cloud
