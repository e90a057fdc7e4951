// The attention worker's gRPC front: AttentionService (Generate server-streaming, GetLoad) over
// an EngineLoop. Reactions only convert, validate and enqueue; the engine-loop thread computes.
// Cancelling the call (or the client going away) cancels the sequence.
#ifndef MOE_ATTENTION_SERVICE_GRPC_ATTENTION_SERVER_H_
#define MOE_ATTENTION_SERVICE_GRPC_ATTENTION_SERVER_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "attention_service/engine/engine_loop.h"
#include "moe/attention/v1/attention.grpc.pb.h"

namespace moe::attention {

struct AttentionServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: pick a free port (see AttentionServer::port())
  int max_message_bytes = 64 << 20;
  int max_prompt_tokens = 1 << 20;
};

// Converts a wire request into an engine request; INVALID_ARGUMENT on bad fields.
absl::StatusOr<SequenceRequest> FromProto(const moe::attention::v1::GenerateRequest& req);

class AttentionServer {
 public:
  // `loop` must outlive the server.
  static absl::StatusOr<std::unique_ptr<AttentionServer>> Start(
      const AttentionServerOptions& options, EngineLoop* loop);
  ~AttentionServer();
  int port() const { return port_; }
  // gRPC health (grpc.health.v1.Health) of the whole server ("") and of
  // "moe.attention.v1.AttentionService": SERVING from Start; NOT_SERVING once draining.
  void SetServing(bool serving);
  // Stops accepting calls; calls in flight may finish until `deadline`, then are cancelled.
  void Shutdown(absl::Duration deadline = absl::Seconds(5));

 private:
  class Service;
  AttentionServer() = default;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_GRPC_ATTENTION_SERVER_H_
