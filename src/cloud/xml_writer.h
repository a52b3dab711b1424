// Builds the XML bodies of EC2 Query responses (CLOUD-NOTES §0.3, §1.4): botocore drops
// the namespace and the root's name, matches children by their lowerCamel locationName,
// reads list members (<item>) whatever their tag, and takes only lowercase "true" as true.
//
//   XmlWriter w("DescribeInstancesResponse");
//   w.text("requestId", id).open("reservationSet").open("item") ... ;
//   std::string body = w.finish();
//
// Values often echo what a client sent (tag values, names, error messages quoting a
// parameter), so every value is made safe: & < > " ' are escaped, bytes that are not
// valid UTF-8 and characters XML 1.0 forbids (controls other than tab, newline and CR;
// U+FFFE, U+FFFF) become U+FFFD, and CR is written as &#13; so a parser keeps it. The
// document is always well-formed UTF-8 that botocore's parser accepts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nimbus::cloud {

inline constexpr std::string_view kEc2Xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/";

class XmlWriter {
 public:
  // Opens the root element, with xmlns="..." unless `xmlns` is empty.
  explicit XmlWriter(std::string_view root, std::string_view xmlns = kEc2Xmlns);

  // Tags come from the server's code, not from clients; still, a character not allowed
  // in an XML name is written as '_' so a mistake cannot break the document.
  XmlWriter& open(std::string_view tag);
  // Closes the innermost element opened with open(); never the root (finish() does),
  // so an extra close() is ignored.
  XmlWriter& close();
  XmlWriter& text(std::string_view tag, std::string_view value);  // <tag>value</tag>
  XmlWriter& number(std::string_view tag, int64_t value);
  XmlWriter& boolean(std::string_view tag, bool value);  // "true" / "false"

  // Closes every open element and returns `<?xml version="1.0" encoding="UTF-8"?>` and
  // the document. The writer is spent: later calls do nothing and finish() returns "".
  std::string finish();

 private:
  void start_tag(std::string_view tag);
  void end_tag(std::string_view tag);

  std::string out_;
  std::vector<std::string> open_;  // open_[0] is the root
  bool finished_ = false;
};

// Appends `value` to `out` as XML character data, made safe as described above.
void append_xml_escaped(std::string& out, std::string_view value);
std::string xml_escape(std::string_view value);

}  // namespace nimbus::cloud
