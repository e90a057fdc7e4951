// Logging through spdlog. One process-wide logger; level from --log-level / MOE_LOG_LEVEL.
#ifndef MOE_COMMON_LOGGING_H_
#define MOE_COMMON_LOGGING_H_

#include <string_view>

#include <spdlog/spdlog.h>

namespace moe {

// Sets the global level ("trace", "debug", "info", "warn", "error", "off") and a compact
// pattern that names the process role, e.g. "[expert]". Logs go to stderr.
void InitLogging(std::string_view role, std::string_view level);

}  // namespace moe

#define MOE_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define MOE_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define MOE_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define MOE_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)

#endif  // MOE_COMMON_LOGGING_H_
