#include "scheduler/placement/trace.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {
namespace {

absl::StatusOr<PlacementProblem> ParseTrace(const nlohmann::json& j) {
  auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("trace: ", what));
  };
  if (!j.is_object()) return bad("not a JSON object");
  for (const char* key : {"layers", "experts"}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
        j[key].get<int64_t>() > 100000) {
      return bad(absl::StrCat("\"", key, "\" must be a positive integer"));
    }
  }
  PlacementProblem p;
  p.layers = j["layers"].get<int>();
  p.experts = j["experts"].get<int>();
  if (j.contains("top_k")) {
    if (!j["top_k"].is_number_integer() || j["top_k"].get<int64_t>() <= 0 ||
        j["top_k"].get<int64_t>() > p.experts) {
      return bad("\"top_k\" must be an integer in [1, experts]");
    }
    p.top_k = j["top_k"].get<int>();
  }
  if (j.contains("bytes_per_expert")) {
    if (!j["bytes_per_expert"].is_number_integer() || j["bytes_per_expert"].get<int64_t>() < 0) {
      return bad("\"bytes_per_expert\" must be an integer >= 0");
    }
    p.bytes_per_expert = j["bytes_per_expert"].get<int64_t>();
  }
  if (!j.contains("load") || !j["load"].is_array() ||
      j["load"].size() != static_cast<size_t>(p.layers)) {
    return bad(absl::StrCat("\"load\" must be an array of ", p.layers, " rows"));
  }
  for (int l = 0; l < p.layers; ++l) {
    const auto& row = j["load"][l];
    if (!row.is_array() || row.size() != static_cast<size_t>(p.experts)) {
      return bad(absl::StrCat("load row ", l, " must have ", p.experts, " numbers"));
    }
    for (const auto& v : row) {
      if (!v.is_number() || !(v.get<double>() >= 0) || !std::isfinite(v.get<double>())) {
        return bad(absl::StrCat("load row ", l, " has a value that is not a number >= 0"));
      }
      p.load.push_back(v.get<double>());
    }
  }
  if (j.contains("coact")) {
    if (!j["coact"].is_array()) return bad("\"coact\" must be an array of [l, a, b, count]");
    for (const auto& c : j["coact"]) {
      if (!c.is_array() || c.size() != 4 ||
          !std::all_of(c.begin(), c.end(), [](const auto& v) { return v.is_number_integer(); })) {
        return bad(absl::StrCat("coact entry ", c.dump(), " is not [l, a, b, count]"));
      }
      CoActivation co{c[0].get<int>(), c[1].get<int>(), c[2].get<int>(), c[3].get<int64_t>()};
      if (co.layer < 0 || co.layer + 1 >= p.layers || co.a < 0 || co.a >= p.experts || co.b < 0 ||
          co.b >= p.experts || co.count < 0) {
        return bad(absl::StrCat("coact entry ", c.dump(), " is out of range"));
      }
      p.coact.push_back(co);
    }
  }
  if (j.contains("speed")) {
    if (!j["speed"].is_array()) return bad("\"speed\" must be an array of numbers > 0");
    for (const auto& v : j["speed"]) {
      if (!v.is_number() || !(v.get<double>() > 0)) return bad("\"speed\" values must be > 0");
      p.speed.push_back(v.get<double>());
    }
  }
  return p;
}

}  // namespace

absl::StatusOr<PlacementProblem> ProblemFromTraceJson(const std::string& json) {
  try {
    return ParseTrace(nlohmann::json::parse(json));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("trace JSON: ", e.what()));
  }
}

std::string TraceToJson(const PlacementProblem& p) {
  nlohmann::ordered_json j;
  j["layers"] = p.layers;
  j["experts"] = p.experts;
  j["top_k"] = p.top_k;
  j["bytes_per_expert"] = p.bytes_per_expert;
  nlohmann::ordered_json load = nlohmann::ordered_json::array();
  for (int l = 0; l < p.layers; ++l) {
    nlohmann::ordered_json row = nlohmann::ordered_json::array();
    for (int e = 0; e < p.experts; ++e) row.push_back(p.Load(l, e));
    load.push_back(std::move(row));
  }
  j["load"] = std::move(load);
  nlohmann::ordered_json coact = nlohmann::ordered_json::array();
  for (const CoActivation& c : p.coact) coact.push_back({c.layer, c.a, c.b, c.count});
  j["coact"] = std::move(coact);
  if (!p.speed.empty()) j["speed"] = p.speed;
  return j.dump();
}

PlacementProblem SyntheticTrace(const SyntheticTraceParams& s) {
  PlacementProblem p;
  p.layers = s.layers;
  p.experts = s.experts;
  p.top_k = s.top_k;
  const int E = s.experts;
  std::mt19937_64 rng(s.seed);
  std::mt19937_64 pop_rng(s.popularity_seed != 0 ? s.popularity_seed : s.seed * 7919 + 1);
  auto zipf = [&](std::mt19937_64& r) {
    std::vector<int> rank(E);
    std::iota(rank.begin(), rank.end(), 0);
    std::shuffle(rank.begin(), rank.end(), r);
    std::vector<double> w(E);
    double sum = 0;
    for (int e = 0; e < E; ++e) sum += w[e] = 1.0 / std::pow(rank[e] + 1.0, s.zipf);
    for (double& v : w) v /= sum;
    return w;
  };
  const double choices = static_cast<double>(s.tokens) * s.top_k;
  std::vector<double> cur = zipf(pop_rng);
  for (double& v : cur) v *= choices;
  p.load.resize(static_cast<size_t>(s.layers) * E);
  for (int l = 0; l < s.layers; ++l) {
    for (int e = 0; e < E; ++e) p.load[static_cast<size_t>(l) * E + e] = std::round(cur[e]);
    if (l + 1 == s.layers) break;
    std::vector<int> partner(E);
    std::iota(partner.begin(), partner.end(), 0);
    std::shuffle(partner.begin(), partner.end(), rng);
    const std::vector<double> next_pop = zipf(pop_rng);
    std::vector<int> top(E);
    std::iota(top.begin(), top.end(), 0);
    std::stable_sort(top.begin(), top.end(),
                     [&](int a, int b) { return next_pop[a] > next_pop[b]; });
    std::vector<double> next(E, 0.0);
    for (int a = 0; a < E; ++a) {
      std::vector<double> flow(E);
      for (int b = 0; b < E; ++b) flow[b] = (1 - s.affinity) * cur[a] * next_pop[b];
      flow[partner[a]] += s.affinity * cur[a];
      for (int b = 0; b < E; ++b) next[b] += flow[b];
      // Record the partner and the most popular successors.
      std::vector<int> recorded = {partner[a]};
      for (int k = 0; k < E && static_cast<int>(recorded.size()) < s.successors; ++k) {
        if (top[k] != partner[a]) recorded.push_back(top[k]);
      }
      for (int b : recorded) {
        const int64_t count = std::llround(flow[b]);
        if (count > 0) p.coact.push_back({l, a, b, count});
      }
    }
    cur = std::move(next);
  }
  return p;
}

}  // namespace moe::scheduler
