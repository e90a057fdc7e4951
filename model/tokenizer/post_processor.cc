#include "model/tokenizer/post_processor.h"

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::model::tokenizer_internal {
namespace {

using nlohmann::json;

// `before` + ids + `after`: the shape of every single-sequence template we support.
class WrapPostProcessor : public PostProcessor {
 public:
  WrapPostProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void Process(std::vector<int32_t>* ids) const override {
    ids->insert(ids->begin(), before_.begin(), before_.end());
    ids->insert(ids->end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_;
  std::vector<int32_t> after_;
};

class SequencePostProcessor : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void Process(std::vector<int32_t>* ids) const override {
    for (const auto& step : steps_) step->Process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

absl::StatusOr<std::unique_ptr<PostProcessor>> ParseTemplate(const json& config) {
  std::vector<int32_t> before;
  std::vector<int32_t> after;
  bool seen_sequence = false;
  for (const json& item : config.at("single")) {
    if (item.contains("Sequence")) {
      if (item.at("Sequence").at("id").get<std::string>() != "A" || seen_sequence) {
        return absl::InvalidArgumentError("TemplateProcessing single template must hold $A once");
      }
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported TemplateProcessing item ", item.dump()));
    }
    const std::string name = item.at("SpecialToken").at("id").get<std::string>();
    const json& specials = config.at("special_tokens");
    if (!specials.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("TemplateProcessing uses '", name, "', not in its special_tokens"));
    }
    for (const json& id : specials.at(name).at("ids")) {
      (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
  }
  if (!seen_sequence) {
    return absl::InvalidArgumentError("TemplateProcessing single template has no $A");
  }
  return std::make_unique<WrapPostProcessor>(std::move(before), std::move(after));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const json& config) {
  const std::string type = config.at("type").get<std::string>();
  if (type == "TemplateProcessing") return ParseTemplate(config);
  if (type == "ByteLevel") {
    return std::make_unique<WrapPostProcessor>(std::vector<int32_t>{}, std::vector<int32_t>{});
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    // "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]
    const int32_t cls = config.at("cls").at(1).get<int32_t>();
    const int32_t sep = config.at("sep").at(1).get<int32_t>();
    return std::make_unique<WrapPostProcessor>(std::vector<int32_t>{cls},
                                               std::vector<int32_t>{sep});
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const json& step : config.at("processors")) {
      MOE_ASSIGN_OR_RETURN(auto p, ParsePostProcessor(step));
      steps.push_back(std::move(p));
    }
    return std::make_unique<SequencePostProcessor>(std::move(steps));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported post_processor type '", type, "'"));
}

}  // namespace moe::model::tokenizer_internal
