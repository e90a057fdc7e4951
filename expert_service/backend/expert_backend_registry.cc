// The one place that knows which expert backends were compiled in. MOE_HAVE_CUDA is defined
// (for this file only) by expert_service/CMakeLists.txt when the CUDA backend is built.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "expert_service/backend/cpu/cpu_backend.h"
#include "expert_service/backend/expert_backend.h"
#if MOE_HAVE_CUDA
#include "expert_service/backend/cuda/cuda_backend.h"
#endif

namespace moe::expert {

std::vector<std::string> AvailableBackends() {
  std::vector<std::string> names = {"cpu"};
#if MOE_HAVE_CUDA
  names.push_back("cuda");
#endif
  return names;
}

absl::StatusOr<std::unique_ptr<ExpertBackend>> CreateExpertBackend(std::string_view name,
                                                                   const BackendOptions& options) {
  if (name == "cpu") return CreateCpuBackend(options);
#if MOE_HAVE_CUDA
  if (name == "cuda") return CreateCudaBackend(options);
#else
  if (name == "cuda") {
    return absl::UnavailableError("the cuda expert backend was not built into this binary "
                                  "(configure with -DMOE_ENABLE_CUDA=ON and a CUDA toolkit)");
  }
#endif
  return absl::NotFoundError(absl::StrCat("unknown expert backend '", std::string(name),
                                          "'; built: ", absl::StrJoin(AvailableBackends(), ", ")));
}

}  // namespace moe::expert
