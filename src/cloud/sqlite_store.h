// The state store in one SQLite database (a single control plane host): WAL with
// synchronous=FULL, so a txn that returned is on disk and a process killed at any moment
// leaves every txn either whole or absent. Thread-safe: calls are serialised on one
// connection (SQLite's own busy timeout covers other processes holding the database).
#pragma once

#include <memory>
#include <string>

#include "cloud/store.h"

namespace nimbus::cloud {

// Opens (creating if needed, mode 0600) the store at `path`; ":memory:" for a private
// in-memory store (tests).
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);

}  // namespace nimbus::cloud
