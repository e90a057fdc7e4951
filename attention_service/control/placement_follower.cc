#include "attention_service/control/placement_follower.h"

#include <utility>

#include "common/logging.h"
#include "common/status.h"

namespace moe::attention {

namespace sv1 = ::moe::scheduler::v1;

absl::Status PlacementFollower::Install(const sv1::PlacementPlan& plan,
                                        const model::ModelConfig& config,
                                        PlacementHolder* holder) {
  if (plan.state() == sv1::PLAN_STATE_PENDING || plan.pending()) return absl::OkStatus();
  absl::StatusOr<std::shared_ptr<const PlacementSnapshot>> snapshot =
      PlacementSnapshot::FromPlan(plan, config);
  if (!snapshot.ok()) return snapshot.status();
  holder->Replace(*std::move(snapshot));
  return absl::OkStatus();
}

std::optional<sv1::ReportLoadRequest> PlacementFollower::TakeLoadReport(
    RoutingLoadRecorder* load) {
  RoutingLoad l = load->Take();
  if (l.total_tokens == 0) return std::nullopt;
  sv1::ReportLoadRequest req;
  req.set_layers(load->layers());
  req.set_experts(load->experts());
  req.mutable_tokens()->Assign(l.tokens.begin(), l.tokens.end());
  for (const CoActivationCount& c : l.coact) {
    sv1::CoActivation* ca = req.add_coact();
    ca->set_layer(c.layer);
    ca->set_a(c.a);
    ca->set_b(c.b);
    ca->set_count(c.count);
  }
  return req;
}

absl::StatusOr<std::unique_ptr<PlacementFollower>> PlacementFollower::Start(
    const PlacementFollowerOptions& options, const model::ModelConfig& config,
    PlacementHolder* holder, RoutingLoadRecorder* load) {
  scheduler::SchedulerClientOptions co;
  co.scheduler = options.scheduler;
  co.role = sv1::ROLE_ATTENTION;
  co.address = options.address;
  co.name = options.name.empty() ? options.address : options.name;
  co.startup_timeout = options.startup_timeout;
  co.register_in_background = options.register_in_background;
  if (load != nullptr) co.load_interval = options.report_interval;
  std::unique_ptr<PlacementFollower> f(new PlacementFollower());
  const model::ModelConfig cfg = config;
  auto on_plan = [cfg, holder](const sv1::PlacementPlan& plan, const std::string&) {
    if (absl::Status s = Install(plan, cfg, holder); !s.ok()) {
      MOE_LOG_ERROR("placement plan epoch {} ignored: {}", plan.epoch(), s.ToString());
    } else if (plan.state() != sv1::PLAN_STATE_PENDING && !plan.pending()) {
      MOE_LOG_INFO("routing with placement epoch {} ({} expert instances)", plan.epoch(),
                   plan.instances_size());
    }
  };
  auto status = [holder] {
    scheduler::InstanceStatus s;
    std::shared_ptr<const PlacementSnapshot> snap = holder->Get();
    s.applied_epoch = snap != nullptr ? snap->epoch() : 0;
    s.ready = snap != nullptr;
    return s;
  };
  scheduler::SchedulerClient::LoadProvider provider;
  if (load != nullptr) provider = [load] { return TakeLoadReport(load); };
  MOE_ASSIGN_OR_RETURN(f->client_, scheduler::SchedulerClient::Start(co, on_plan, status,
                                                                     std::move(provider)));
  return f;
}

PlacementFollower::~PlacementFollower() { Stop(); }

void PlacementFollower::Stop() {
  if (client_ != nullptr) client_->Stop();
}

}  // namespace moe::attention
