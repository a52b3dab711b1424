// A request and a reply of Nimbus's HTTP APIs, as the server (http_server.h) hands them to
// a handler and the client (http_client.h) returns them: what the APIs use, nothing more.
#pragma once

#include <functional>
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
  // Set: the connection changes protocol (a WebSocket, websocket.h's accept). http::Server
  // then writes "HTTP/1.1 101 Switching Protocols" + `headers` (no body; `status`, `body`
  // and `content_type` are ignored) and calls upgrade(fd, already_read) on the connection's
  // thread: `already_read` holds the bytes the server read past the request (the client
  // may send its first frames with the request; they are the stream's first bytes). The
  // fd stays the server's: the callback must not close it (dup it to keep a handle), and
  // the server closes it when the callback returns. The server's timeouts no longer apply
  // to it; Server::stop shuts it down (reads fail) and waits for the callback to return.
  // The connection counts against max_connections while the callback runs.
  // With `status` 200 instead (a streamed body: Server-Sent Events) the head is "HTTP/1.1
  // 200 OK" + Content-Type: `content_type` + "Connection: close" + `headers`, without a
  // length, and the callback writes the body until it is done; the rest is as above.
  std::function<void(int fd, std::string already_read)> upgrade = {};
};

}  // namespace nimbus::http
