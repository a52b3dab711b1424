// A VM's serial console over WebSocket: nimbusd's `GET /v1/vms/NAME/console` (an upgrade)
// relays the VMM's console socket (vmm/console_hub.h: it replays its last 64 KiB on
// connect, serves any number of clients, and drops output for a client that does not keep
// up rather than stall the guest) to one WebSocket client:
//  - every byte from the console goes to the client as binary frames;
//  - text and binary frames from the client go to the console's input;
//  - either side closing ends both: the console closing (the VM stopped) sends a close
//    frame (1000, "the console closed"); the client closing leaves the console and every
//    other viewer as they were;
//  - nimbusd never hangs on a client: a client that stops reading fails the send after
//    kConsoleSendTimeoutMs and its session ends (the hub meanwhile drops that viewer's
//    output: the VM never waits), a quiet session is pinged every kConsolePingIntervalMs
//    (a peer that vanished fails the ping's send), Server::stop ends every session.
#pragma once

#include <string>

#include "common/http_message.h"
#include "common/websocket.h"
#include "host/host_types.h"

namespace nimbus::host {

constexpr size_t kMaxConsoleInputMessage = 64 * 1024;  // one message from a client
constexpr size_t kMaxConsoleSessions = 64;             // at once, on this nimbusd
constexpr int kConsoleSendTimeoutMs = 30'000;
constexpr int kConsolePingIntervalMs = 30'000;

struct ConsoleRelayOptions {
  int send_timeout_ms = kConsoleSendTimeoutMs;
  int ping_interval_ms = kConsolePingIntervalMs;
  int close_wait_ms = 5000;  // for the client's close reply once the console closed
};

// Relays between `console_fd` (a connected stream socket: the console) and `ws` until
// either ends. Blocks; uses one more thread. Closes neither: the caller owns both. `vm`
// names the VM in log lines.
void relay_console(int console_fd, http::ws::Socket& ws, const std::string& vm,
                   const ConsoleRelayOptions& options = {});

// Connects to a console socket (a unix socket path). kUnavailable when nothing listens.
Result<int> connect_console(const std::string& socket_path);

// `GET /v1/vms/NAME/console`: 404 for an unknown VM, 409 when it has no live console,
// 400 for a request that is not a WebSocket upgrade, else the 101 reply that runs the relay.
http::Reply console_route(HostOps& ops, const http::Request& req, const std::string& name);

// The VM name when `path` is /v1/vms/NAME/console (NAME not validated), else "".
std::string console_path_vm(const std::string& path);

}  // namespace nimbus::host
