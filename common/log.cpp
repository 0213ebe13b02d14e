#include "common/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/config.hpp"

namespace revtrace::common {

void setup_logging(std::string_view level) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    throw ConfigError("config: log_level '" + std::string(level) +
                      "' is not one of trace, debug, info, warn, error, critical, off");
  }
  auto logger = spdlog::stderr_color_mt("revtrace");
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
}

}  // namespace revtrace::common
