#include "pipeline/detail/checks.hpp"

#include <sstream>

namespace reel::pipeline::detail {

namespace {

Error bad(std::string message) { return make_error(Errc::invalid_argument, std::move(message)); }

}  // namespace

std::string shape_str(const torch::Tensor& t) {
  if (!t.defined()) return "none";
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

Status check_outputs(const std::vector<torch::Tensor>& outs, const std::vector<torch::Tensor>& inputs,
                     const std::string& runner, const std::string& item) {
  if (outs.size() != inputs.size()) {
    return bad(runner + " returned " + std::to_string(outs.size()) + " outputs for " + std::to_string(inputs.size()) +
               " windows");
  }
  for (size_t w = 0; w < outs.size(); ++w) {
    if (!outs[w].defined() || outs[w].sizes() != inputs[w].sizes()) {
      return bad(runner + " returned " + shape_str(outs[w]) + " for " + item + std::to_string(w) + " of " +
                 shape_str(inputs[w]));
    }
  }
  return {};
}

Status check_solver_state(const models::SolverState& st, int expected_step, at::IntArrayRef sizes,
                          const std::string& where, const std::string& step_context, const std::string& not_what) {
  if (st.step != expected_step) {
    return bad(where + " is at step " + std::to_string(st.step) + " but " + step_context + " " +
               std::to_string(expected_step));
  }
  if (st.x0_history.size() > 2 || st.last_order < 0 || st.last_order > 2) {
    return bad(where + " holds " + std::to_string(st.x0_history.size()) + " x0 predictions and order " +
               std::to_string(st.last_order) + " (at most 2 each)");
  }
  for (const auto& h : st.x0_history) {
    if (!h.defined() || h.sizes() != sizes) return bad(where + " holds an x0 prediction of " + shape_str(h) + ", " + not_what);
  }
  if (st.last_sample.defined() && st.last_sample.sizes() != sizes) {
    return bad(where + " holds a last sample of " + shape_str(st.last_sample) + ", " + not_what);
  }
  return {};
}

models::SolverState clone_state(const models::SolverState& st) {
  models::SolverState out{.step = st.step, .last_order = st.last_order};
  for (const auto& h : st.x0_history) out.x0_history.push_back(h.clone());
  if (st.last_sample.defined()) out.last_sample = st.last_sample.clone();
  return out;
}

}  // namespace reel::pipeline::detail
