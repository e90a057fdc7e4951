// The one place that maps config.json's architecture to its implementation.
#include "absl/strings/str_cat.h"
#include "model/arch/architecture.h"

namespace moe::model {

std::string LayerPrefix(int layer) { return absl::StrCat("model.layers.", layer, "."); }

absl::StatusOr<std::unique_ptr<ModelArchitecture>> CreateArchitecture(const ModelConfig& config) {
  switch (config.architecture) {
    case Architecture::kMixtral: return NewMixtral(config);
    case Architecture::kQwen3Moe: return NewQwen3Moe(config);
    case Architecture::kQwen2Moe: return NewQwen2Moe(config);
    default: break;
  }
  return absl::UnimplementedError(
      absl::StrCat("architecture ", std::string(ArchitectureName(config.architecture)),
                   " is parsed but its forward pass is not implemented yet"));
}

}  // namespace moe::model
