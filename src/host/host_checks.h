// Small checks of nimbusd's inputs and of the host, without any VM: names, host ports of
// forwards, and whether other users can reach a path (the sandboxed VMMs must).
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"
#include "host/registry.h"

namespace nimbus::host {

// Names of VMs, images and snapshots: 1-63 of [a-z0-9-], starting with a letter.
bool valid_name(const std::string& name);

// Whether two forwards want the same host socket: the same protocol and port on the same
// address, or on any address when either is 0.0.0.0 (every address of the host). Forwards
// of one port on two addresses (127.100.1.5:80 and 127.100.1.6:80) do not collide.
bool forwards_collide(const config::PortForward& a, const config::PortForward& b);

// Whether a forward's host address and port can be bound now (a socket of its protocol is
// bound and closed); the error tells a port in use (Conflict) from an address that is not
// this host's (InvalidArgument).
Status check_host_port(const config::PortForward& f);

// Why a process of another uid (not in the owner's group) cannot reach `path`: every
// directory on the way needs search permission for others, and the file itself `need`
// (S_IXOTH...). "" when it can.
std::string unreachable_by_others(const std::string& path, mode_t need);

}  // namespace nimbus::host
