// Reading a whole file: the one helper for config files, service-account tokens, test data.
#ifndef MOE_COMMON_FILE_H_
#define MOE_COMMON_FILE_H_

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace moe {

// The file's bytes, or nullopt when it cannot be opened.
inline std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace moe

#endif  // MOE_COMMON_FILE_H_
