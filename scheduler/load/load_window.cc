#include "scheduler/load/load_window.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {

LoadWindow::LoadWindow(int layers, int experts, absl::Duration window, absl::Duration bucket)
    : layers_(layers), experts_(experts), bucket_(bucket) {
  buckets_ = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(window / bucket)));
}

int64_t LoadWindow::IndexOf(absl::Time t) const {
  absl::Duration rem;
  return absl::IDivDuration(t - absl::UnixEpoch(), bucket_, &rem);
}

void LoadWindow::Expire(absl::Time now) {
  const int64_t oldest = IndexOf(now) - buckets_ + 1;
  while (!ring_.empty() && ring_.front().index < oldest) ring_.pop_front();
}

absl::Status LoadWindow::Add(const LoadReport& report, absl::Time now) {
  const size_t n = static_cast<size_t>(layers_) * experts_;
  if (report.tokens.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("load report has ", report.tokens.size(), " counts, want ", n));
  }
  for (int64_t t : report.tokens) {
    if (t < 0) return absl::InvalidArgumentError("negative token count");
  }
  for (const CoActivation& c : report.coact) {
    if (c.layer < 0 || c.layer + 1 >= layers_ || c.a < 0 || c.a >= experts_ || c.b < 0 ||
        c.b >= experts_ || c.count < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad co-activation (", c.layer, ", ", c.a,
                                                     ", ", c.b, ", ", c.count, ")"));
    }
  }
  Expire(now);
  const int64_t index = IndexOf(now);
  if (ring_.empty() || ring_.back().index < index) {
    Bucket b;
    b.index = index;
    b.tokens.assign(n, 0);
    ring_.push_back(std::move(b));
  }
  // A report stamped earlier than the newest bucket (clock went back) joins the newest bucket.
  Bucket& b = ring_.back();
  for (size_t i = 0; i < n; ++i) b.tokens[i] += report.tokens[i];
  for (const CoActivation& c : report.coact) b.coact[{c.layer, c.a, c.b}] += c.count;
  return absl::OkStatus();
}

LoadSnapshot LoadWindow::Totals(absl::Time now) {
  Expire(now);
  LoadSnapshot s;
  s.tokens.assign(static_cast<size_t>(layers_) * experts_, 0);
  std::map<std::tuple<int, int, int>, int64_t> coact;
  for (const Bucket& b : ring_) {
    for (size_t i = 0; i < s.tokens.size(); ++i) s.tokens[i] += b.tokens[i];
    for (const auto& [key, count] : b.coact) coact[key] += count;
  }
  for (int64_t t : s.tokens) s.total_tokens += t;
  for (const auto& [key, count] : coact) {
    s.coact.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), count});
  }
  return s;
}

}  // namespace moe::scheduler
