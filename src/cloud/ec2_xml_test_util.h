// For the EC2 API's tests: a small reader of what XmlWriter writes (elements, text, the five
// entities and numeric references), enough to walk a response by element path as botocore
// reads it. Malformed documents are test failures (ADD_FAILURE), never a crash.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nimbus::cloud {

struct XmlNode {
  std::string name, text;
  std::vector<XmlNode> children;

  const XmlNode* child(const std::string& n) const {
    for (const auto& c : children) {
      if (c.name == n) return &c;
    }
    return nullptr;
  }
  std::vector<const XmlNode*> all(const std::string& n) const {
    std::vector<const XmlNode*> out;
    for (const auto& c : children) {
      if (c.name == n) out.push_back(&c);
    }
    return out;
  }
  // "a/b/c": the text of the first element at that path ("" when absent).
  std::string at(const std::string& path) const {
    const XmlNode* n = this;
    size_t start = 0;
    while (n) {
      const size_t slash = path.find('/', start);
      n = n->child(path.substr(start, slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return n ? n->text : "";
  }
};

inline std::string xml_unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string::npos) {
      ADD_FAILURE() << "unterminated entity in " << s;
      return out;
    }
    const std::string e = s.substr(i + 1, semi - i - 1);
    if (e == "lt") {
      out += '<';
    } else if (e == "gt") {
      out += '>';
    } else if (e == "amp") {
      out += '&';
    } else if (e == "quot") {
      out += '"';
    } else if (e == "apos") {
      out += '\'';
    } else if (e.size() > 1 && e[0] == '#') {
      const bool hex = e[1] == 'x';
      out += static_cast<char>(std::stoi(e.substr(hex ? 2 : 1), nullptr, hex ? 16 : 10));
    } else {
      ADD_FAILURE() << "unknown entity &" << e << "; in " << s;
    }
    i = semi;
  }
  return out;
}

// Parses the document (its root element); ADD_FAILURE on anything malformed.
inline XmlNode parse_xml(const std::string& doc) {
  XmlNode root;
  std::vector<XmlNode*> stack = {&root};
  size_t i = doc.rfind("<?xml", 0) == 0 ? doc.find("?>") + 2 : 0;
  while (i < doc.size()) {
    if (doc[i] != '<') {
      const size_t lt = doc.find('<', i);
      stack.back()->text += xml_unescape(doc.substr(i, lt - i));
      i = lt;
      continue;
    }
    const size_t gt = doc.find('>', i);
    if (gt == std::string::npos) {
      ADD_FAILURE() << "unterminated tag in " << doc;
      return root;
    }
    std::string tag = doc.substr(i + 1, gt - i - 1);
    i = gt + 1;
    if (tag.empty()) {
      ADD_FAILURE() << "empty tag in " << doc;
      return root;
    }
    if (tag[0] == '/') {
      if (stack.size() < 2 || stack.back()->name != tag.substr(1)) {
        ADD_FAILURE() << "mismatched </" << tag << "> in " << doc;
        return root;
      }
      stack.pop_back();
      continue;
    }
    const bool empty = tag.back() == '/';
    if (empty) tag.pop_back();
    XmlNode n;
    n.name = tag.substr(0, tag.find(' '));
    stack.back()->children.push_back(n);
    if (!empty) stack.push_back(&stack.back()->children.back());
  }
  if (stack.size() != 1) ADD_FAILURE() << "unclosed elements in " << doc;
  return root.children.empty() ? XmlNode{} : root.children[0];
}

}  // namespace nimbus::cloud
