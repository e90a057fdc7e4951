// EngineLoop: the attention worker's one scheduling thread ("engine-loop"). It owns an Engine;
// other threads (gRPC reactions) only Submit and Cancel, which enqueue and wake the loop.
// Updates are delivered by calling each sequence's callback on the loop thread: callbacks must
// be quick and must not call back into the loop synchronously except Cancel.
#ifndef MOE_ATTENTION_SERVICE_ENGINE_ENGINE_LOOP_H_
#define MOE_ATTENTION_SERVICE_ENGINE_ENGINE_LOOP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "attention_service/engine/engine.h"

namespace moe::attention {

class EngineLoop {
 public:
  // Receives every update of one sequence; the last one has finish != kNone (or an error).
  using Callback = std::function<void(const SequenceUpdate&)>;

  explicit EngineLoop(std::unique_ptr<Engine> engine);
  ~EngineLoop();  // Stop()s

  // Queues a sequence. Validation happens on the loop thread: a rejected request gets one
  // update with finish kAbort and the error. Returns UNAVAILABLE after Stop.
  absl::Status Submit(SeqId id, SequenceRequest request, Callback callback);
  // Drops the sequence; its callback is not called again. Safe from any thread.
  void Cancel(SeqId id);
  // Finishes every live sequence with kAbort (UNAVAILABLE) and joins the thread.
  void Stop();

  int running() const { return running_.load(); }
  int waiting() const { return waiting_.load(); }
  double kv_cache_usage() const { return kv_usage_.load(); }

 private:
  struct Pending {
    SeqId id;
    SequenceRequest request;
    Callback callback;
  };
  void Run();

  std::unique_ptr<Engine> engine_;  // loop thread only
  absl::flat_hash_map<SeqId, Callback> callbacks_;  // loop thread only

  absl::Mutex mu_;
  std::vector<Pending> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<SeqId> cancels_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<int> running_{0}, waiting_{0};
  std::atomic<double> kv_usage_{0.0};
  std::thread thread_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_ENGINE_LOOP_H_
