// The help texts of the device flags `nimbus run` and `nimbus vmm` share; the flags
// themselves are parsed by config/device_flags.h, for both commands.
#pragma once

namespace nimbus::cli {

inline constexpr const char* kDiskFlagHelp =
    "A virtio disk: PATH[,format=raw|qcow2][,readonly] (repeatable: vda, vdb, ...). "
    "With the bundled kernel and no --initrd, the first disk is the root file system";
inline constexpr const char* kNetFlagHelp =
    "A virtio network card (repeatable): "
    "user[,hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT]...[,net=ADDR/PREFIX] "
    "or switch,path=SOCKET; add mac=52:54:00:xx:xx:xx to choose its MAC";
inline constexpr const char* kMetadataFlagHelp =
    "Serve instance metadata to the guest at http://169.254.169.254/ from this JSON file: "
    "{\"data\": {\"meta-data\": {...}, \"user-data\": BASE64, \"dynamic\": {...}}, "
    "\"http_tokens\": \"optional\"|\"required\", \"http_endpoint\": \"enabled\"|\"disabled\", "
    "\"hop_limit\": 1} (docs/vmm.md)";

}  // namespace nimbus::cli
