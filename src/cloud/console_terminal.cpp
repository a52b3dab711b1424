// The terminal relay (GET /console/api/instances/ID/terminal): written against
// common/websocket.h and host/host_api_client.h's open_console once they exist.
#include "cloud/console_api.h"

namespace nimbus::cloud {

http::Reply Console::terminal(const http::Request& req, const std::string& id) {
  (void)req;
  (void)id;
  http::Reply r{501,
                "{\"error\": {\"code\": \"NotImplemented\", \"message\": \"the terminal is not "
                "there yet\"}}\n",
                "application/json"};
  return r;
}

}  // namespace nimbus::cloud
