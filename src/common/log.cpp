#include "common/log.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace nimbus::log {

Status init(std::string_view program, std::string_view level) {
  const spdlog::level::level_enum lvl = spdlog::level::from_str(std::string(level));
  // from_str answers "off" for any name it does not know: only "off" itself may mean off.
  if (lvl == spdlog::level::off && level != "off") {
    return Status::invalid_argument(fmt::format("log level '{}': use one of {}", level, kLevels));
  }
  auto logger = std::make_shared<spdlog::logger>(std::string(program),
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %n: %v");
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::trace);  // a log line is on disk before a crash can lose it
  spdlog::set_default_logger(std::move(logger));
  return Status();
}

}  // namespace nimbus::log
