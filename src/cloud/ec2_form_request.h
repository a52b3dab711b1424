// For the EC2 API's tests: a form POST (CLOUD-NOTES §1.2) as the HTTP layer (httplib) hands
// one to route_cloud_request, its fields also as parameters.
#pragma once

#include <string>

#include "cloud/ec2_query.h"
#include "common/http_message.h"

namespace nimbus::cloud {

inline http::Request form_request(const std::string& body) {
  http::Request r;
  r.method = "POST";
  r.path = "/";
  r.body = body;
  r.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
               {"host", "127.0.0.1:8773"}};
  if (auto p = QueryParams::parse(body); p.ok()) {
    for (const auto& [k, v] : p->all()) r.query.emplace(k, v);
  }
  return r;
}

}  // namespace nimbus::cloud
