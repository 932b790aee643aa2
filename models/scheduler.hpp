// Flow-matching sigma schedules with shift, and the solvers that step a latent along them, as
// Wan 2.1 / 2.2 run them (FlowUniPCMultistepScheduler and FlowDPMSolverMultistepScheduler in
// wan/utils), plus a plain Euler solver.
//
// Conventions (rectified flow, as Wan): x_t = (1 - sigma) * x0 + sigma * noise, sigma in [0, 1];
// sigma = 1 is pure noise. A velocity model predicts v = noise - x0, so x0 = x_t - sigma * v.
//
// Solver state lives outside the solver, one SolverState per tensor that is stepped, because
// FIFO-Diffusion keeps frames at different steps: a whole [B, C, F, H, W] latent uses one state
// when all its frames share a step; a FIFO queue keeps one state per [B, C, 1, H, W] frame slice.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <torch/types.h>

#include "base/expected.hpp"

namespace reel::models {

enum class SolverKind {
  euler,  // first order: x_next = x + (sigma_next - sigma) * v
  unipc,  // UniPC, order 2, bh2, predict-x0, UniC corrector, lower order at the last step
  dpmpp,  // DPM-Solver++ 2M (midpoint), first order at the first and last steps
};

// "euler", "unipc", "dpmpp"; anything else is Errc::invalid_argument.
[[nodiscard]] Expected<SolverKind> parse_solver_kind(std::string_view name);
[[nodiscard]] const char* solver_kind_name(SolverKind kind);

// What a model's output means.
enum class Prediction {
  velocity,  // flow velocity v = noise - x0 (Wan's "flow_prediction")
  sample,    // the clean sample x0
};

// "velocity", "sample"; anything else is Errc::invalid_argument.
[[nodiscard]] Expected<Prediction> parse_prediction(std::string_view name);
[[nodiscard]] const char* prediction_name(Prediction prediction);

// x0 = x - sigma * v. sigma is a double, or a tensor that broadcasts against x
// (e.g. [B, 1, F, 1, 1] for one sigma per frame).
[[nodiscard]] torch::Tensor x0_from_velocity(const torch::Tensor& x, double sigma,
                                             const torch::Tensor& v);
[[nodiscard]] torch::Tensor x0_from_velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                                             const torch::Tensor& v);
// v = (x - x0) / sigma. Undefined at sigma = 0 (the caller must not ask there).
[[nodiscard]] torch::Tensor velocity_from_x0(const torch::Tensor& x, double sigma,
                                             const torch::Tensor& x0);
[[nodiscard]] torch::Tensor velocity_from_x0(const torch::Tensor& x, const torch::Tensor& sigma,
                                             const torch::Tensor& x0);

// Converts a model output of the given type to an x0 prediction.
[[nodiscard]] torch::Tensor to_x0(const torch::Tensor& x, double sigma,
                                  const torch::Tensor& model_output, Prediction prediction);

struct Schedule {
  // N + 1 noise levels, decreasing, the last one 0. They are float32 values (as Wan keeps its
  // sigmas) widened to double, so solvers reproduce Wan's arithmetic.
  std::vector<double> sigmas;
  // N model timesteps: int64(sigma' * 1000) truncated, with sigma' the unrounded shifted sigma.
  std::vector<int64_t> timesteps;

  [[nodiscard]] int steps() const { return static_cast<int>(timesteps.size()); }
};

// The shifted schedule of N = steps steps: sigma' = shift * s / (1 + (shift - 1) * s) in float64
// over s = linspace(s_max, 0, N + 1)[:N]. unipc and euler use s_max = double(float32(0.999))
// (FlowUniPCMultistepScheduler.set_timesteps); dpmpp uses s_max = 1 (get_sampling_sigmas).
// Requires steps >= 1 and shift > 0 (checked by the caller; see validate_schedule_args).
[[nodiscard]] Schedule make_schedule(SolverKind kind, int steps, double shift);
[[nodiscard]] Status validate_schedule_args(int steps, double shift);

// What a solver remembers about one tensor between steps.
struct SolverState {
  int step = 0;  // index into Schedule::sigmas of the noise level the tensor is at now
  // The x0 predictions of the last steps, oldest first (at most 2; multistep solvers only).
  std::vector<torch::Tensor> x0_history;
  // UniPC: the sample the last predictor started from, for the next step's corrector.
  torch::Tensor last_sample;
  int last_order = 0;  // UniPC: order of the last predictor; the corrector uses the same
};

// Steps tensors along one schedule. Holds no per-tensor state, so one solver serves any number
// of SolverStates (and threads). A state that starts at step K > 0 with no history (a cache hit)
// warms up with first-order steps, as a fresh one does at step 0.
//
// Preconditions (checked with TORCH_CHECK, i.e. they throw c10::Error; callers catch LibTorch
// exceptions at the model boundary): st.step < steps(); x and the prediction have equal shapes;
// the state was last used with a tensor of the same shape.
class FlowSolver {
 public:
  FlowSolver(SolverKind kind, Schedule schedule);

  [[nodiscard]] SolverKind kind() const { return kind_; }
  [[nodiscard]] const Schedule& schedule() const { return schedule_; }
  [[nodiscard]] int steps() const { return schedule_.steps(); }
  [[nodiscard]] bool done(const SolverState& st) const { return st.step >= steps(); }
  [[nodiscard]] double sigma(const SolverState& st) const;
  [[nodiscard]] int64_t timestep(const SolverState& st) const;

  // Given the x0 prediction for x at sigma[st.step], returns x at sigma[st.step + 1] and
  // advances st. The state keeps the tensors it needs; views among them are copied, so the
  // caller may later overwrite the storage they view (a FIFO queue does).
  [[nodiscard]] torch::Tensor step(SolverState& st, const torch::Tensor& x0_pred,
                                   const torch::Tensor& x) const;

  // The same from a raw model output of either prediction type.
  [[nodiscard]] torch::Tensor step_output(SolverState& st, const torch::Tensor& model_output,
                                          Prediction prediction, const torch::Tensor& x) const;

 private:
  torch::Tensor step_euler(SolverState& st, const torch::Tensor& x0, const torch::Tensor& x) const;
  torch::Tensor step_unipc(SolverState& st, const torch::Tensor& x0, const torch::Tensor& x) const;
  torch::Tensor step_dpmpp(SolverState& st, const torch::Tensor& x0, const torch::Tensor& x) const;

  SolverKind kind_;
  Schedule schedule_;
};

}  // namespace reel::models
