// The one HTTP/1.1 client of Nimbus's APIs (the CLI to nimbusd, nimbusd to each VMM, later
// the control plane to nimbusd): the counterpart of http_server.h.
//
// Written over plain sockets rather than httplib::Client (cpp-httplib 0.11.4), because that
// client (a) reports every failed connect as "Connection" without the errno, so "nobody
// listens" (a stale socket), "no such socket" and "permission denied" could only be told
// apart by connecting a second time; (b) has per-read timeouts only, so a server that
// trickles a byte now and then holds its caller forever; (c) has no cap on a reply's body.
// Here every request has one deadline for the whole exchange, a body cap, and errors with
// a Code a caller can act on:
//  - kInvalidArgument: a bad target, method, path or token (nothing was sent);
//  - kUnavailable: nothing to connect to (ECONNREFUSED: a stale socket file, ENOENT, a
//    host that does not answer in time), or the peer closed the connection before its reply
//    was complete; when connecting failed, nothing was sent and a retry is safe;
//  - kPermissionDenied: not allowed to connect (the socket file's mode);
//  - kDeadlineExceeded: connected, but the reply was not whole within the read timeout (the
//    request may have been acted on);
//  - kInternal: a reply that is not HTTP, or whose body is over the limit.
// One request per connection ("Connection: close"): the APIs' calls are few and local.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http_message.h"
#include "common/status.h"

namespace nimbus::http {

// Where a server listens: "unix:/path/to.sock" or "http://HOST[:PORT]" (HOST a name, an
// IPv4 address or [IPv6]; PORT 80 when left out; a trailing "/" is allowed).
struct Target {
  bool unix_socket = false;
  std::string path;  // unix: the socket path
  std::string host;  // tcp: the name or address, without brackets
  int port = 80;     // tcp

  // How messages name it: the socket path, or http://HOST:PORT.
  std::string shown() const;
};

// kInvalidArgument with what is wrong for anything else.
Result<Target> parse_target(std::string_view text);

// Connects to `target` within `timeout_ms`: a connected non-blocking socket (TCP_NODELAY on
// TCP) the caller owns, or the error Client::request would give (kUnavailable,
// kPermissionDenied, kInternal), naming `where` ("nimbusd at http://...").
Result<int> dial(const Target& target, int timeout_ms, std::string_view where);

struct ClientOptions {
  std::string token;  // non-empty: every request carries "Authorization: Bearer TOKEN"
  int connect_timeout_ms = 5000;
  // The whole exchange once connected: sending the request and reading the whole reply
  // (not per read, so a trickling server cannot stretch it).
  int read_timeout_ms = 30000;
  size_t max_reply_body = 16 * 1024 * 1024;
  // More header fields every request carries (e.g. etcd's Grpc-Metadata-Hasleader).
  std::vector<std::pair<std::string, std::string>> headers;
  // Names the server in messages ("nimbusd": "cannot reach nimbusd at /run/..."); empty:
  // the target alone.
  std::string peer;
};

class Client {
 public:
  Client(Target target, ClientOptions options)
      : target_(std::move(target)), options_(std::move(options)) {}
  // Parses `target` (parse_target).
  static Result<Client> create(std::string_view target, ClientOptions options = {});

  // One request; any HTTP status is a Reply (see reply_error for the non-2xx ones). A
  // non-empty `body` is sent with `content_type`.
  Result<Reply> request(std::string_view method, std::string_view path, std::string_view body = {},
                        std::string_view content_type = "application/json") const;

  const Target& target() const { return target_; }
  ClientOptions& options() { return options_; }
  const ClientOptions& options() const { return options_; }

 private:
  Target target_;
  ClientOptions options_;
};

bool is_success(const Reply& reply);  // 2xx

// The error a non-2xx reply stands for, from the body in either API shape: nimbusd's
// {"error": {"code": CODE, "message": MESSAGE}} (CODE becomes the Status's Code: NotFound,
// Conflict, InsufficientCapacity, ...; BadRequest is kInvalidArgument, Unauthorized
// kPermissionDenied) or the VMM's {"fault_message": MESSAGE}; otherwise from the HTTP
// status ("HTTP 502 Bad Gateway", with a short plain-text body after a colon). The API's
// code name goes to `api_code` when asked for ("" when the body had none).
Status reply_error(const Reply& reply, std::string* api_code = nullptr);

// The Code an HTTP error status stands for when the body does not say (404: kNotFound, ...).
Code code_of_http_status(int status);

}  // namespace nimbus::http
