// The device flags of `nimbus run` and `nimbus vmm` (one parser each, so both commands
// accept exactly the same strings):
//   --disk PATH[,format=raw|qcow2][,readonly]
//   --net
//   user[,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,net=ADDR/PREFIX][,mac=MAC]
//   --net switch,path=SOCKET[,mac=MAC]
// and the port-forward flag of nimbusd's commands (`nimbus launch -p`):
//   -p/--forward [ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp]
// Strict on purpose: a typo in a port forward should stop the VM from starting, not
// silently leave a service unreachable. Every error names the flag and the bad part.
#pragma once

#include <string>

#include "common/status.h"
#include "config/devices.h"

namespace nimbus::config {

// The disk's id and root are the caller's (they depend on the flag's position).
Result<DiskSpec> parse_disk_flag(const std::string& text);
// The NIC's id is the caller's; without mac= it gets a random 52:54:00 address.
Result<NicSpec> parse_net_flag(const std::string& text);

// nimbusd's -p/--forward. Without ADDR the host address is 0.0.0.0 (nimbusd publishes
// on every address of the host; --net's hostfwd defaults to 127.0.0.1), always set
// explicitly; no guest address (the guest's DHCP one).
Result<PortForward> parse_forward_flag(const std::string& text);

}  // namespace nimbus::config
