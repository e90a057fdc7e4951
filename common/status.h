// Status helpers: Debian's Abseil (20220623) lacks the return-if-error macros.
#ifndef MOE_COMMON_STATUS_H_
#define MOE_COMMON_STATUS_H_

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MOE_STATUS_CONCAT_INNER_(a, b) a##b
#define MOE_STATUS_CONCAT_(a, b) MOE_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define MOE_RETURN_IF_ERROR(expr)                        \
  do {                                                   \
    ::absl::Status moe_status_ = (expr);                 \
    if (!moe_status_.ok()) return moe_status_;           \
  } while (0)

// MOE_ASSIGN_OR_RETURN(auto x, F()); assigns the value or returns the error.
#define MOE_ASSIGN_OR_RETURN(lhs, expr) \
  MOE_ASSIGN_OR_RETURN_IMPL_(MOE_STATUS_CONCAT_(moe_statusor_, __LINE__), lhs, expr)
#define MOE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

// Broken invariants crash loudly, in every build type.
#define MOE_CHECK(cond)                                                               \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: MOE_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

#define MOE_CHECK_OK(expr)                                                             \
  do {                                                                                 \
    ::absl::Status moe_check_status_ = (expr);                                         \
    if (!moe_check_status_.ok()) {                                                     \
      std::fprintf(stderr, "%s:%d: MOE_CHECK_OK failed: %s\n", __FILE__, __LINE__,     \
                   moe_check_status_.ToString().c_str());                              \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

#endif  // MOE_COMMON_STATUS_H_
