// A request and a reply of Nimbus's HTTP APIs, as the server (http_server.h) hands them to
// a handler and the client (http_client.h) returns them: what the APIs use, nothing more.
#pragma once

#include <map>
#include <string>

namespace nimbus::http {

struct Request {
  std::string method;
  std::string path;  // without the query string
  std::multimap<std::string, std::string> query;
  std::string body;
  // The request's header fields, names in lower case (as HTTP compares them).
  std::multimap<std::string, std::string> headers = {};

  // The first value of header `name` (lower case), "" when absent.
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct Reply {
  int status = 200;
  std::string body;  // empty: no body
  std::string content_type = "application/json";
  std::multimap<std::string, std::string> headers = {};  // more header fields to send
};

}  // namespace nimbus::http
