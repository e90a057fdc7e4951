#include "scheduler/placement/plan_proto.h"

#include "absl/strings/str_cat.h"

namespace moe::scheduler {

void PlanToProto(const PlacementPlan& plan, v1::PlacementPlan* out) {
  out->Clear();
  out->set_epoch(plan.epoch);
  out->set_layers(plan.layers);
  out->set_num_experts(plan.experts);
  for (int i = 0; i < plan.instances; ++i) {
    v1::Instance* inst = out->add_instances();
    inst->set_index(i);
    if (i < static_cast<int>(plan.instance_info.size())) {
      inst->set_instance_id(plan.instance_info[i].id);
      inst->set_address(plan.instance_info[i].address);
    }
  }
  for (int l = 0; l < plan.layers; ++l) {
    for (int e = 0; e < plan.experts; ++e) {
      v1::ExpertPlacement* ep = out->add_experts();
      ep->set_layer(l);
      ep->set_expert(e);
      for (const Replica& r : plan.At(l, e)) {
        v1::Replica* rep = ep->add_replicas();
        rep->set_instance_index(r.instance);
        rep->set_share(r.share);
        if (r.instance < static_cast<int>(plan.instance_info.size())) {
          rep->set_instance_id(plan.instance_info[r.instance].id);
        }
      }
    }
  }
}

absl::StatusOr<PlacementPlan> PlanFromProto(const v1::PlacementPlan& in) {
  PlacementPlan plan;
  plan.epoch = in.epoch();
  plan.layers = in.layers();
  plan.experts = in.num_experts();
  plan.instances = in.instances_size();
  if (plan.layers < 0 || plan.experts < 0 ||
      static_cast<int64_t>(plan.layers) * plan.experts != in.experts_size()) {
    return absl::InvalidArgumentError(absl::StrCat("plan has ", in.experts_size(),
                                                   " expert entries for ", plan.layers, "x",
                                                   plan.experts));
  }
  for (int i = 0; i < plan.instances; ++i) {
    const v1::Instance& inst = in.instances(i);
    if (inst.index() != i) return absl::InvalidArgumentError("instance index out of order");
    plan.instance_info.push_back({inst.instance_id(), inst.address()});
  }
  plan.replicas.resize(static_cast<size_t>(plan.layers) * plan.experts);
  for (const v1::ExpertPlacement& ep : in.experts()) {
    if (ep.layer() < 0 || ep.layer() >= plan.layers || ep.expert() < 0 ||
        ep.expert() >= plan.experts) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert ", ep.layer(), ":", ep.expert(), " outside the plan's shape"));
    }
    auto& rs = plan.At(ep.layer(), ep.expert());
    if (!rs.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert ", ep.layer(), ":", ep.expert(), " listed twice"));
    }
    for (const v1::Replica& r : ep.replicas()) rs.push_back({r.instance_index(), r.share()});
  }
  if (absl::Status s = ValidatePlan(plan); !s.ok()) return s;
  return plan;
}

}  // namespace moe::scheduler
