// Checks and copies shared by the long-video algorithms (fifo, clips): model-output shapes
// against the windows they were run on, and saved solver states.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "base/expected.hpp"
#include "models/scheduler.hpp"

namespace reel::pipeline::detail {

// "[1, 3, 8, 32, 32]", or "none" for an undefined tensor.
[[nodiscard]] std::string shape_str(const torch::Tensor& t);

// invalid_argument unless there is one output per input, each defined and shaped like its input.
// Messages read "<runner> returned <n> outputs for <m> windows" and "<runner> returned <shape>
// for <item><w> of <input shape>".
[[nodiscard]] Status check_outputs(const std::vector<torch::Tensor>& outs,
                                   const std::vector<torch::Tensor>& inputs, const std::string& runner,
                                   const std::string& item);

// invalid_argument unless `st` is at `expected_step`, holds at most 2 x0 predictions and order
// at most 2, and its tensors are shaped `sizes`. `where` names the state ("solver state of ..."),
// `step_context` what fixes the step ("the layout puts it at"), `not_what` the shape it should
// have had ("not one frame").
[[nodiscard]] Status check_solver_state(const models::SolverState& st, int expected_step, at::IntArrayRef sizes,
                                        const std::string& where, const std::string& step_context,
                                        const std::string& not_what);

// A deep copy: the state's tensors are cloned.
[[nodiscard]] models::SolverState clone_state(const models::SolverState& st);

}  // namespace reel::pipeline::detail
