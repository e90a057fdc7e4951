// The one mapping between absl::Status and grpc::Status (both directions).
#ifndef MOE_COMMON_GRPC_STATUS_H_
#define MOE_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace moe {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace moe

#endif  // MOE_COMMON_GRPC_STATUS_H_
