#include "scheduler/placement/mip.h"

#include <coin/Cbc_C_Interface.h>
#include <glpk.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {
namespace {

double Finite(double v) { return std::isinf(v) ? (v > 0 ? DBL_MAX : -DBL_MAX) : v; }

absl::StatusOr<MipResult> SolveCbc(const MipModel& m, const std::vector<double>& start,
                                   double seconds, double gap) {
  const int n = m.cols(), r = m.rows();
  // Rows -> compressed columns.
  std::vector<CoinBigIndex> col_start(n + 1, 0);
  for (int c : m.row_col) ++col_start[c + 1];
  for (int j = 0; j < n; ++j) col_start[j + 1] += col_start[j];
  std::vector<int> index(m.row_col.size());
  std::vector<double> value(m.row_col.size());
  std::vector<CoinBigIndex> fill(col_start.begin(), col_start.end() - 1);
  for (int row = 0; row < r; ++row) {
    for (int k = m.row_start[row]; k < m.row_start[row + 1]; ++k) {
      const CoinBigIndex at = fill[m.row_col[k]]++;
      index[at] = row;
      value[at] = m.row_val[k];
    }
  }
  std::vector<double> clb(n), cub(n), rlb(r), rub(r);
  for (int j = 0; j < n; ++j) clb[j] = Finite(m.col_lb[j]), cub[j] = Finite(m.col_ub[j]);
  for (int i = 0; i < r; ++i) rlb[i] = Finite(m.row_lb[i]), rub[i] = Finite(m.row_ub[i]);
  std::unique_ptr<Cbc_Model, void (*)(Cbc_Model*)> model(Cbc_newModel(), Cbc_deleteModel);
  Cbc_loadProblem(model.get(), n, r, col_start.data(), index.data(), value.data(), clb.data(),
                  cub.data(), m.obj.data(), rlb.data(), rub.data());
  std::vector<int> ints;
  std::vector<double> int_start;
  for (int j = 0; j < n; ++j) {
    if (!m.is_int[j]) continue;
    Cbc_setInteger(model.get(), j);
    ints.push_back(j);
    if (!start.empty()) int_start.push_back(std::round(start[j]));
  }
  Cbc_setObjSense(model.get(), 1);
  Cbc_setLogLevel(model.get(), 0);
  Cbc_setParameter(model.get(), "log", "0");
  Cbc_setParameter(model.get(), "slog", "0");
  // CglPreProcess::postProcess crashes (CBC 2.10.8) when the time limit ends the search early;
  // the placement models are small and already tight, so preprocessing buys little anyway.
  Cbc_setParameter(model.get(), "preprocess", "off");
  Cbc_setMaximumSeconds(model.get(), std::max(0.01, seconds));
  if (gap > 0) Cbc_setAllowableFractionGap(model.get(), gap);
  if (!start.empty()) {
    Cbc_setMIPStartI(model.get(), static_cast<int>(ints.size()), ints.data(), int_start.data());
  }
  Cbc_solve(model.get());
  MipResult out;
  const double* best = Cbc_bestSolution(model.get());
  if (best != nullptr) {
    out.x.assign(best, best + n);
    if (m.MaxViolation(out.x) <= 1e-5) {
      out.has_solution = true;
      out.objective = m.Objective(out.x);
      out.optimal = Cbc_isProvenOptimal(model.get()) != 0;
    }
  }
  return out;
}

struct GlpkStart {
  const std::vector<double>* start;
  std::chrono::steady_clock::time_point deadline;
  bool given = false;
};

void GlpkCallback(glp_tree* tree, void* info) {
  auto* s = static_cast<GlpkStart*>(info);
  // tm_lim is checked between nodes only; end the search on every callback past the deadline.
  if (std::chrono::steady_clock::now() > s->deadline) {
    glp_ios_terminate(tree);
    return;
  }
  if (glp_ios_reason(tree) != GLP_IHEUR || s->given || s->start->empty()) return;
  s->given = true;
  std::vector<double> x(s->start->size() + 1);
  std::copy(s->start->begin(), s->start->end(), x.begin() + 1);  // GLPK is 1-based
  glp_ios_heur_sol(tree, x.data());
}

std::mutex glpk_mu;  // glp_term_out is process-wide

absl::StatusOr<MipResult> SolveGlpk(const MipModel& m, const std::vector<double>& start,
                                    double seconds, double gap) {
  std::lock_guard<std::mutex> lock(glpk_mu);
  glp_term_out(GLP_OFF);
  const int n = m.cols(), r = m.rows();
  std::unique_ptr<glp_prob, void (*)(glp_prob*)> prob(glp_create_prob(), glp_delete_prob);
  glp_prob* p = prob.get();
  glp_set_obj_dir(p, GLP_MIN);
  if (r > 0) glp_add_rows(p, r);
  if (n > 0) glp_add_cols(p, n);
  auto bounds = [](double lb, double ub) {
    const bool has_lb = !std::isinf(lb), has_ub = !std::isinf(ub);
    if (has_lb && has_ub) return lb == ub ? GLP_FX : GLP_DB;
    return has_lb ? GLP_LO : has_ub ? GLP_UP : GLP_FR;
  };
  for (int i = 0; i < r; ++i) {
    const double lb = m.row_lb[i], ub = m.row_ub[i];
    glp_set_row_bnds(p, i + 1, bounds(lb, ub), std::isinf(lb) ? 0 : lb, std::isinf(ub) ? 0 : ub);
  }
  for (int j = 0; j < n; ++j) {
    const double lb = m.col_lb[j], ub = m.col_ub[j];
    glp_set_col_bnds(p, j + 1, bounds(lb, ub), std::isinf(lb) ? 0 : lb, std::isinf(ub) ? 0 : ub);
    glp_set_obj_coef(p, j + 1, m.obj[j]);
    if (m.is_int[j]) glp_set_col_kind(p, j + 1, GLP_IV);
  }
  std::vector<int> ia(1), ja(1);
  std::vector<double> ar(1);
  for (int i = 0; i < r; ++i) {
    for (int k = m.row_start[i]; k < m.row_start[i + 1]; ++k) {
      ia.push_back(i + 1);
      ja.push_back(m.row_col[k] + 1);
      ar.push_back(m.row_val[k]);
    }
  }
  glp_load_matrix(p, static_cast<int>(ia.size()) - 1, ia.data(), ja.data(), ar.data());
  glp_scale_prob(p, GLP_SF_AUTO);
  const int ms = static_cast<int>(std::max(10.0, seconds * 1000));
  glp_smcp sm;
  glp_init_smcp(&sm);
  sm.msg_lev = GLP_MSG_OFF;
  sm.tm_lim = ms;
  sm.presolve = GLP_ON;
  MipResult out;
  const int lp = glp_simplex(p, &sm);
  if (lp != 0 || glp_get_status(p) != GLP_OPT) {
    // No LP optimum in time (or infeasible): the start, if any, is all we have.
    return out;
  }
  GlpkStart seed{&start, std::chrono::steady_clock::now() +
                             std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6))};
  glp_iocp io;
  glp_init_iocp(&io);
  io.msg_lev = GLP_MSG_OFF;
  io.tm_lim = ms;
  io.presolve = GLP_OFF;  // the callback's solution must be in the original columns
  io.cb_func = GlpkCallback;
  io.cb_info = &seed;
  if (gap > 0) io.mip_gap = gap;
  io.fp_heur = GLP_OFF;  // its inner simplex ignores the time limit (seen hanging for minutes)
  const int rc = glp_intopt(p, &io);
  const int st = glp_mip_status(p);
  if ((rc == 0 || rc == GLP_ETMLIM || rc == GLP_EMIPGAP || rc == GLP_ESTOP) &&
      (st == GLP_OPT || st == GLP_FEAS)) {
    out.x.resize(n);
    for (int j = 0; j < n; ++j) out.x[j] = glp_mip_col_val(p, j + 1);
    if (m.MaxViolation(out.x) <= 1e-5) {
      out.has_solution = true;
      out.optimal = st == GLP_OPT;
      out.objective = m.Objective(out.x);
    }
  }
  return out;
}

}  // namespace

double MipModel::MaxViolation(const std::vector<double>& x) const {
  if (static_cast<int>(x.size()) != cols()) return kMipInf;
  double worst = 0;
  for (int j = 0; j < cols(); ++j) {
    worst = std::max({worst, col_lb[j] - x[j], x[j] - col_ub[j]});
    if (is_int[j]) worst = std::max(worst, std::fabs(x[j] - std::round(x[j])));
  }
  for (int i = 0; i < rows(); ++i) {
    double a = 0;
    for (int k = row_start[i]; k < row_start[i + 1]; ++k) a += row_val[k] * x[row_col[k]];
    const double scale = std::max(1.0, std::fabs(a));
    worst = std::max({worst, (row_lb[i] - a) / scale, (a - row_ub[i]) / scale});
  }
  return worst;
}

absl::StatusOr<MipResult> SolveMip(const MipModel& model, MipEngine engine,
                                   const std::vector<double>& start, double time_limit_seconds,
                                   double relative_gap) {
  if (!(time_limit_seconds > 0)) return absl::InvalidArgumentError("MIP needs a time limit > 0");
  if (!start.empty() && static_cast<int>(start.size()) != model.cols()) {
    return absl::InvalidArgumentError(
        absl::StrCat("MIP start has ", start.size(), " values for ", model.cols(), " columns"));
  }
  if (model.rows() + 1 != static_cast<int>(model.row_start.size())) {
    return absl::InvalidArgumentError("MIP rows are malformed");
  }
  switch (engine) {
    case MipEngine::kCbc:
      return SolveCbc(model, start, time_limit_seconds, relative_gap);
    case MipEngine::kGlpk:
      return SolveGlpk(model, start, time_limit_seconds, relative_gap);
  }
  return absl::InvalidArgumentError("unknown MIP engine");
}

}  // namespace moe::scheduler
