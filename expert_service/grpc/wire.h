// The one conversion between ExpertService wire messages and the executor's domain types.
// Used by the gRPC server and by the attention worker's in-process transport.
#ifndef MOE_EXPERT_SERVICE_GRPC_WIRE_H_
#define MOE_EXPERT_SERVICE_GRPC_WIRE_H_

#include <cstdint>

#include "expert_service/executor/shard_executor.h"
#include "moe/expert/v1/expert.pb.h"

namespace moe::expert {

// Views into `req` (tensor bytes are not copied): `req` must outlive the result. Unknown wire
// dtypes decode to nullopt for ShardExecutor::Validate to reject.
ForwardRequest DecodeForwardRequest(const moe::expert::v1::ComputeRequest& req);

// Writes `result` as F32 tensors: [combined_rows, hidden] when `combine`, otherwise one
// [tokens, hidden] tensor per shard.
void EncodeForwardResult(const ForwardResult& result, bool combine, int64_t combined_rows,
                         int64_t hidden, moe::expert::v1::ComputeResponse* out);

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_GRPC_WIRE_H_
