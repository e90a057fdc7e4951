// Tree-walking evaluator of a parsed template. Internal to model/jinja; see template.h.
#ifndef MOE_MODEL_JINJA_INTERPRETER_H_
#define MOE_MODEL_JINJA_INTERPRETER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "model/jinja/ast.h"
#include "model/jinja/value.h"

namespace moe::model::jinja {

// Bounds that keep a hostile template or input from hanging or exhausting memory. Exceeding
// one is an INVALID_ARGUMENT error naming the limit.
struct RenderLimits {
  size_t max_output_bytes = size_t{16} << 20;  // the rendered text and any string built
  int64_t max_loop_iterations = 1'000'000;     // for-loop iterations, summed over the render
  int max_depth = 200;                         // nesting of statements, expressions and macro calls
  int64_t max_steps = 50'000'000;              // evaluation steps (expressions + statements)
};

namespace internal {

// Renders `program` with the variables of `globals` (an object). `source` is the template
// text, for error positions.
absl::StatusOr<std::string> RenderProgram(const NodeList& program, std::string_view source,
                                          const Value& globals, const RenderLimits& limits);

}  // namespace internal
}  // namespace moe::model::jinja

#endif  // MOE_MODEL_JINJA_INTERPRETER_H_
