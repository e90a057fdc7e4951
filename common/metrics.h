// Process-wide Prometheus registry (prometheus-cpp) and the HTTP admin endpoint that serves
// /metrics, /health and /ready. Every process starts one AdminServer.
#ifndef MOE_COMMON_METRICS_H_
#define MOE_COMMON_METRICS_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"

namespace moe {

// The registry every component of this process adds its families to.
prometheus::Registry& MetricsRegistry();
// The registry serialised in the Prometheus text format (version 0.0.4).
std::string RenderMetrics(const prometheus::Registry& registry);

// Exponential bucket boundaries: start, start*factor, ... (count values).
prometheus::Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, int count);

struct AdminServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: pick a free port; see AdminServer::port().
  // Readiness probe; /ready answers 200 when it returns true, 503 otherwise.
  std::function<bool()> ready = [] { return true; };
  const prometheus::Registry* registry = nullptr;  // nullptr: MetricsRegistry().
};

// A small HTTP/1.1 server on its own thread ("admin-http"). Serves:
//   GET /metrics  Prometheus text format
//   GET /health   200 "ok" while the process runs
//   GET /ready    200 or 503 per options.ready
// Everything else is 404. Thread-safe to construct and destroy from any one thread.
class AdminServer {
 public:
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(AdminServerOptions options);
  ~AdminServer();
  int port() const { return port_; }
  void Stop();

 private:
  struct Impl;
  explicit AdminServer(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace moe

#endif  // MOE_COMMON_METRICS_H_
