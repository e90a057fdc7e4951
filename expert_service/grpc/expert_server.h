// ExpertServer: the expert service's gRPC transport (callback API). Reactions only decode,
// validate (ShardExecutor::Validate) and enqueue; one named thread ("expert-compute") owns
// all Forward computation and drains a bounded queue (RESOURCE_EXHAUSTED when full); another
// ("expert-loader") runs LoadExperts so loading never stalls compute. Describe answers inline.
// Also serves the gRPC health-checking service (grpc.health.v1.Health), NOT_SERVING until
// SetServing(true).
// Shared-memory data plane: OpenShm maps a segment a same-host client created
// (common/shm_ring.h) and starts one thread ("expert-shm") per segment that claims the posted
// requests and submits them through the same validation and compute queue as Forward; the
// thread ends when the client closes the segment or its process exits (at most
// max_shm_clients segments at once).
#ifndef MOE_EXPERT_SERVICE_GRPC_EXPERT_SERVER_H_
#define MOE_EXPERT_SERVICE_GRPC_EXPERT_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "expert_service/executor/model_experts.h"
#include "expert_service/executor/shard_executor.h"

namespace moe::expert {

struct ExpertServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                               // 0: pick a free port; see ExpertServer::port()
  int max_queue = 64;                         // Forward requests waiting for the compute thread
  // A shm serving thread computes a call itself when the compute queue is idle, instead of
  // handing it to the compute thread (one wake-up less per call). Env MOE_EXPERT_INLINE_SHM=0
  // turns it off (A/B runs).
  bool inline_shm_compute = EnvSwitchOn("MOE_EXPERT_INLINE_SHM");
  int max_message_bytes = 256 * 1024 * 1024;  // receive and send limits
  std::string instance_id;                    // reported by Describe; default host:port
  int max_shm_clients = 16;                   // shared-memory segments served at once (0: off)
};

class ExpertServer {
 public:
  // `executor` must outlive the server. `source` (may be null: LoadExperts answers
  // UNIMPLEMENTED) is where LoadExperts reads weights from.
  static absl::StatusOr<std::unique_ptr<ExpertServer>> Start(const ExpertServerOptions& options,
                                                             ShardExecutor* executor,
                                                             const ModelExpertSource* source);
  ~ExpertServer();

  int port() const;
  // Expert-token rows computed so far (the sum of every Forward's shard rows, all transports).
  // Thread-safe; elastic scaling reports its rate as HeartbeatRequest.tokens_per_second.
  int64_t tokens_computed() const;
  // Health status of the whole server ("" service) and of "moe.expert.v1.ExpertService".
  void SetServing(bool serving);
  // Stops accepting calls, lets queued calls finish (bounded), joins the threads. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  explicit ExpertServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_GRPC_EXPERT_SERVER_H_
