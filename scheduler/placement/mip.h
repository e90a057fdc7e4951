// A small solver-neutral mixed-integer program and two engines that solve it: COIN-OR CBC
// (C API) and GLPK. The placement ILP (ilp.h) builds a MipModel once and hands it to either.
//
// Thread-safety: MipModel is a plain value; SolveMip may run concurrently on different models
// with CBC (GLPK's message switch is process-global, so GLPK solves are serialised internally).
#ifndef MOE_SCHEDULER_PLACEMENT_MIP_H_
#define MOE_SCHEDULER_PLACEMENT_MIP_H_

#include <limits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::scheduler {

inline constexpr double kMipInf = std::numeric_limits<double>::infinity();

// minimise obj . x  subject to  row_lb <= A x <= row_ub,  col_lb <= x <= col_ub,
// x[j] integer where is_int[j]. A is stored by rows.
struct MipModel {
  std::vector<double> col_lb, col_ub, obj;
  std::vector<bool> is_int;
  std::vector<double> row_lb, row_ub;
  std::vector<int> row_start = {0};  // row r's entries: [row_start[r], row_start[r + 1])
  std::vector<int> row_col;
  std::vector<double> row_val;

  int cols() const { return static_cast<int>(obj.size()); }
  int rows() const { return static_cast<int>(row_lb.size()); }
  int AddCol(double lb, double ub, double cost, bool integer) {
    col_lb.push_back(lb);
    col_ub.push_back(ub);
    obj.push_back(cost);
    is_int.push_back(integer);
    return cols() - 1;
  }
  // lb <= sum coef * x[col] <= ub (either side may be +-kMipInf).
  void AddRow(const std::vector<std::pair<int, double>>& terms, double lb, double ub) {
    for (const auto& [c, v] : terms) {
      row_col.push_back(c);
      row_val.push_back(v);
    }
    row_start.push_back(static_cast<int>(row_col.size()));
    row_lb.push_back(lb);
    row_ub.push_back(ub);
  }
  double Objective(const std::vector<double>& x) const {
    double v = 0;
    for (int j = 0; j < cols(); ++j) v += obj[j] * x[j];
    return v;
  }
  // Largest violation of a bound, row or integrality by x (0 = feasible).
  double MaxViolation(const std::vector<double>& x) const;
};

enum class MipEngine { kCbc, kGlpk };

struct MipResult {
  bool has_solution = false;  // x holds a feasible solution
  bool optimal = false;       // proven optimal within the engine's default gap
  std::vector<double> x;
  double objective = 0;
};

// Solves `model` within `time_limit_seconds` (> 0). `start` (empty, or one value per column;
// a feasible solution) seeds the search: CBC's MIP start, GLPK's first heuristic solution.
// No solution found in time is not an error (has_solution = false). The search stops once the
// incumbent is within `relative_gap` of the best bound (0 = the engine's default, ~optimal).
absl::StatusOr<MipResult> SolveMip(const MipModel& model, MipEngine engine,
                                   const std::vector<double>& start, double time_limit_seconds,
                                   double relative_gap = 0);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_MIP_H_
