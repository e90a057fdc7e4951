#include "common/logging.h"

#include <memory>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace moe {

void InitLogging(std::string_view role, std::string_view level) {
  auto logger = spdlog::stderr_color_mt(std::string(role.empty() ? "moe" : role));
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e [%n] %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

}  // namespace moe
