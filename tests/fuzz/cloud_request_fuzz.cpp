// Fuzzes the control plane's HTTP routing over a whole Cloud (cloud_test_fixture.h: an
// in-memory store, a registered image, three hosts, a fake nimbusd driver): arbitrary
// bytes as the form body of POST / (every EC2 action, unsigned) or as a host's heartbeat
// body (with the join token), through route_cloud_request, and now and then a reconciler
// pass over whatever the heartbeats reported. Nothing may throw or crash; every reply has
// a real HTTP status, the EC2 API answers XML and the host paths JSON.
//
// Input: byte 0 picks the target (bit 0: heartbeat rather than POST /; bit 1: a
// reconciler pass afterwards); the rest is the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/ec2_api.h"
#include "common/log.h"

namespace {

using namespace nimbus::cloud;

struct World {
  CloudTestBed bed;
  Ec2Api api{bed.cloud(), bed.driver(), ApiCredentials{}};
  World() { bed.add_hosts(1); }
};

std::unique_ptr<World> world;
unsigned runs = 0;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // A fresh cloud now and then, so that what the inputs created stays small.
  if (!world || ++runs % 500 == 0) {
    spdlog::set_level(spdlog::level::off);
    world.reset();
    world = std::make_unique<World>();
  }
  const uint8_t mode = data[0];
  nimbus::http::Request req;
  req.method = "POST";
  req.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool heartbeat = mode & 1;
  if (heartbeat) {
    req.path = "/nimbus/v1/hosts/heartbeat";
    req.headers = {{"authorization", std::string("Bearer ") + CloudTestBed::kJoinToken}};
  } else {
    req.path = "/";
    req.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
  }
  nimbus::http::Reply r = route_cloud_request(world->bed.cloud(), world->api, req);
  if (r.status < 200 || r.status > 599) std::abort();
  if (heartbeat) {
    if (nlohmann::json::parse(r.body, nullptr, false).is_discarded()) std::abort();
  } else if (r.body.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0) != 0) {
    std::abort();
  }
  if (mode & 2) world->bed.reconciler().pass_now();
  return 0;
}
