// KubernetesProvider: the expert pool is a StatefulSet (pods <name>-0 .. <name>-(N-1)); scaling
// reads and patches its scale subresource through the Kubernetes REST API:
//   GET   /apis/apps/v1/namespaces/<ns>/statefulsets/<name>/scale
//   PATCH  same path, Content-Type: application/merge-patch+json, {"spec":{"replicas":N}}
// authenticated with the pod's service-account token (Authorization: Bearer, re-read from the
// token file on every request: projected tokens rotate), over HTTPS verified with the
// service-account CA. A StatefulSet scale-down removes the highest ordinal, so NextToRemove is
// "<name>-<N-1>"; the expert pods must register under their pod name
// (`moe expert --instance-id $(POD_NAME)`). The service account needs get and patch on
// statefulsets/scale in its namespace.
//
// Errors are absl statuses naming the request and the API's message: 401 UNAUTHENTICATED,
// 403 PERMISSION_DENIED, 404 NOT_FOUND, 409 ABORTED (conflict: retry), 422 INVALID_ARGUMENT,
// 429 RESOURCE_EXHAUSTED, 5xx and connection failures UNAVAILABLE.
// Every request is bounded by `timeout`. Thread affinity: one owner thread.
#ifndef MOE_SCHEDULER_SCALING_KUBERNETES_PROVIDER_H_
#define MOE_SCHEDULER_SCALING_KUBERNETES_PROVIDER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/scaling/instance_provider.h"

namespace moe::scheduler {

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubernetesProviderOptions {
  std::string statefulset;     // the expert StatefulSet's name (required)
  std::string namespace_name;  // "" = the contents of namespace_file
  // "https://host:port"; "" = https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
  std::string api_server;
  std::string token_file = std::string(kServiceAccountDir) + "/token";
  std::string ca_file = std::string(kServiceAccountDir) + "/ca.crt";
  std::string namespace_file = std::string(kServiceAccountDir) + "/namespace";
  // Accept an http:// api_server (the tests' fake API server). Never in a cluster.
  bool allow_plain_http = false;
  absl::Duration timeout = absl::Seconds(5);
};

class KubernetesProvider final : public InstanceProvider {
 public:
  // Resolves the namespace and API server and checks the options; does not contact the API.
  // INVALID_ARGUMENT / FAILED_PRECONDITION with what is missing.
  static absl::StatusOr<std::unique_ptr<KubernetesProvider>> Create(
      KubernetesProviderOptions options);

  // GET scale: spec.replicas.
  absl::StatusOr<int> Current() override;
  // PATCH scale to `n`; the API's answer must show spec.replicas == n.
  absl::Status ScaleTo(int n) override;
  // "<statefulset>-<replicas - 1>" from a fresh GET; NOT_FOUND at 0 replicas.
  absl::StatusOr<std::string> NextToRemove() override;
  std::string Describe() const override;

  const std::string& namespace_name() const { return options_.namespace_name; }
  // "/apis/apps/v1/namespaces/<ns>/statefulsets/<name>/scale"
  std::string ScalePath() const;

 private:
  struct Endpoint {
    bool tls = true;
    std::string host;  // as given (IPv6 without brackets)
    std::string port;
  };
  KubernetesProvider(KubernetesProviderOptions options, Endpoint endpoint)
      : options_(std::move(options)), endpoint_(std::move(endpoint)) {}
  // One request; the Scale object's spec.replicas on 2xx.
  absl::StatusOr<int> Request(bool patch, int replicas);

  const KubernetesProviderOptions options_;
  const Endpoint endpoint_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_SCALING_KUBERNETES_PROVIDER_H_
