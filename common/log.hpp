#pragma once
// Logging setup: spdlog to stderr with the level from the configuration ("trace".."off").
#include <string_view>

namespace revtrace::common {

void setup_logging(std::string_view level);

}  // namespace revtrace::common
