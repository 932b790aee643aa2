#include "models/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace reel::models {

Expected<SolverKind> parse_solver_kind(std::string_view name) {
  if (name == "euler") return SolverKind::euler;
  if (name == "unipc") return SolverKind::unipc;
  if (name == "dpmpp") return SolverKind::dpmpp;
  return make_error(Errc::invalid_argument,
                    "unknown solver '" + std::string(name) + "' (expected euler, unipc or dpmpp)");
}

const char* solver_kind_name(SolverKind kind) {
  switch (kind) {
    case SolverKind::euler: return "euler";
    case SolverKind::unipc: return "unipc";
    case SolverKind::dpmpp: return "dpmpp";
  }
  return "unknown";
}

Expected<Prediction> parse_prediction(std::string_view name) {
  if (name == "velocity") return Prediction::velocity;
  if (name == "sample") return Prediction::sample;
  return make_error(Errc::invalid_argument,
                    "unknown prediction type '" + std::string(name) + "' (expected velocity or sample)");
}

const char* prediction_name(Prediction prediction) {
  switch (prediction) {
    case Prediction::velocity: return "velocity";
    case Prediction::sample: return "sample";
  }
  return "unknown";
}

torch::Tensor x0_from_velocity(const torch::Tensor& x, double sigma, const torch::Tensor& v) {
  return x - v * sigma;
}

torch::Tensor x0_from_velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                               const torch::Tensor& v) {
  return x - v * sigma.to(v.scalar_type());
}

torch::Tensor velocity_from_x0(const torch::Tensor& x, double sigma, const torch::Tensor& x0) {
  return (x - x0) / sigma;
}

torch::Tensor velocity_from_x0(const torch::Tensor& x, const torch::Tensor& sigma,
                               const torch::Tensor& x0) {
  return (x - x0) / sigma.to(x0.scalar_type());
}

torch::Tensor to_x0(const torch::Tensor& x, double sigma, const torch::Tensor& model_output,
                    Prediction prediction) {
  switch (prediction) {
    case Prediction::velocity: return x0_from_velocity(x, sigma, model_output);
    case Prediction::sample: return model_output;
  }
  return model_output;
}

Status validate_schedule_args(int steps, double shift) {
  if (steps < 1) {
    return make_error(Errc::invalid_argument,
                      "steps must be at least 1, got " + std::to_string(steps));
  }
  if (!(shift > 0.0) || !std::isfinite(shift)) {
    return make_error(Errc::invalid_argument,
                      "shift must be a positive number, got " + std::to_string(shift));
  }
  return {};
}

Schedule make_schedule(SolverKind kind, int steps, double shift) {
  // UniPC starts a hair below 1 (its sigma_max is 0.999 stored as float32); Wan's DPM++ path
  // (get_sampling_sigmas) starts at exactly 1.
  double s_max = 1.0;
  switch (kind) {
    case SolverKind::euler:
    case SolverKind::unipc: s_max = static_cast<double>(0.999F); break;
    case SolverKind::dpmpp: s_max = 1.0; break;
  }
  Schedule out;
  out.sigmas.reserve(static_cast<size_t>(steps) + 1);
  out.timesteps.reserve(static_cast<size_t>(steps));
  // numpy's linspace(s_max, 0, N + 1): start + i * ((stop - start) / N).
  const double delta = (0.0 - s_max) / steps;
  for (int i = 0; i < steps; ++i) {
    const double s = i * delta + s_max;
    const double shifted = shift * s / (1.0 + (shift - 1.0) * s);
    out.timesteps.push_back(static_cast<int64_t>(shifted * 1000.0));
    out.sigmas.push_back(static_cast<double>(static_cast<float>(shifted)));
  }
  out.sigmas.push_back(0.0);
  return out;
}

namespace {

// Half log-SNR: lambda = log(alpha) - log(sigma) with alpha = 1 - sigma. +inf at sigma = 0,
// -inf at sigma = 1; the solvers below are written so that both limits come out finite.
double lambda_of(double sigma) { return std::log(1.0 - sigma) - std::log(sigma); }

// The state keeps a copy of views, so a caller may overwrite what they view.
torch::Tensor keep(const torch::Tensor& t) { return t.is_view() ? t.clone() : t; }

void push_history(SolverState& st, const torch::Tensor& x0, size_t depth) {
  st.x0_history.push_back(keep(x0));
  while (st.x0_history.size() > depth) st.x0_history.erase(st.x0_history.begin());
}

}  // namespace

FlowSolver::FlowSolver(SolverKind kind, Schedule schedule)
    : kind_(kind), schedule_(std::move(schedule)) {}

double FlowSolver::sigma(const SolverState& st) const {
  TORCH_CHECK(st.step >= 0 && st.step <= steps(), "solver step ", st.step, " out of range");
  return schedule_.sigmas[static_cast<size_t>(st.step)];
}

int64_t FlowSolver::timestep(const SolverState& st) const {
  TORCH_CHECK(st.step >= 0 && st.step < steps(), "solver step ", st.step, " out of range");
  return schedule_.timesteps[static_cast<size_t>(st.step)];
}

torch::Tensor FlowSolver::step(SolverState& st, const torch::Tensor& x0_pred,
                               const torch::Tensor& x) const {
  TORCH_CHECK(st.step >= 0 && st.step < steps(), "solver step ", st.step,
              " out of range for a schedule of ", steps(), " steps");
  TORCH_CHECK(x0_pred.sizes() == x.sizes(), "x0 prediction ", x0_pred.sizes(),
              " and sample ", x.sizes(), " differ in shape");
  for (const auto& h : st.x0_history) {
    TORCH_CHECK(h.sizes() == x.sizes(), "solver state holds history of shape ", h.sizes(),
                " but is stepped with ", x.sizes());
  }
  torch::Tensor next;
  switch (kind_) {
    case SolverKind::euler: next = step_euler(st, x0_pred, x); break;
    case SolverKind::unipc: next = step_unipc(st, x0_pred, x); break;
    case SolverKind::dpmpp: next = step_dpmpp(st, x0_pred, x); break;
  }
  ++st.step;
  return next;
}

torch::Tensor FlowSolver::step_output(SolverState& st, const torch::Tensor& model_output,
                                      Prediction prediction, const torch::Tensor& x) const {
  // Euler on a velocity needs no round trip through x0 (which would lose a few ulps).
  if (kind_ == SolverKind::euler && prediction == Prediction::velocity) {
    TORCH_CHECK(st.step >= 0 && st.step < steps(), "solver step ", st.step, " out of range");
    TORCH_CHECK(model_output.sizes() == x.sizes(), "model output ", model_output.sizes(),
                " and sample ", x.sizes(), " differ in shape");
    const auto n = static_cast<size_t>(st.step);
    const double dt = schedule_.sigmas[n + 1] - schedule_.sigmas[n];
    ++st.step;
    return x + model_output * dt;
  }
  return step(st, to_x0(x, sigma(st), model_output, prediction), x);
}

torch::Tensor FlowSolver::step_euler(SolverState& st, const torch::Tensor& x0,
                                     const torch::Tensor& x) const {
  const auto n = static_cast<size_t>(st.step);
  const double ratio = schedule_.sigmas[n + 1] / schedule_.sigmas[n];
  // x + (sigma_next - sigma) * (x - x0) / sigma, written so that sigma_next = 0 gives x0.
  return x * ratio + x0 * (1.0 - ratio);
}

// UniPC with B(h) = expm1(-h) ("bh2"), in data (x0) prediction. Predictor of order p at step n
// (from sigma_n to sigma_{n+1}); corrector UniC at the start of step n, redoing the previous
// step's update with the new x0 prediction, with the order the previous predictor used.
torch::Tensor FlowSolver::step_unipc(SolverState& st, const torch::Tensor& x0,
                                     const torch::Tensor& x_in) const {
  const auto& sg = schedule_.sigmas;
  const auto n = static_cast<size_t>(st.step);
  torch::Tensor x = x_in;

  if (st.last_sample.defined() && n >= 1 && !st.x0_history.empty()) {
    const int order = std::min<int>(st.last_order, static_cast<int>(st.x0_history.size()));
    const double sigma_t = sg[n];
    const double sigma_s0 = sg[n - 1];
    const double lambda_s0 = lambda_of(sigma_s0);
    const double h = lambda_of(sigma_t) - lambda_s0;
    const double alpha_t = 1.0 - sigma_t;
    const double h_phi_1 = std::expm1(-h);
    const double b_h = h_phi_1;
    const torch::Tensor& m0 = st.x0_history.back();
    double rho_d1 = 0.0;  // weight of D1 = (m_{n-2} - m0) / r
    double rho_t = 0.5;   // weight of x0_n - m0
    torch::Tensor d1;
    if (order >= 2) {
      TORCH_CHECK(n >= 2, "UniPC corrector of order 2 needs two earlier steps");
      const double r = (lambda_of(sg[n - 2]) - lambda_s0) / h;
      d1 = (st.x0_history[st.x0_history.size() - 2] - m0) / r;
      // Solve [[1, 1], [r, 1]] rho = [b1, b2] with b_k from the phi functions of -h.
      const double hh = -h;
      const double phi_1 = h_phi_1 / hh - 1.0;
      const double b1 = phi_1 / b_h;
      const double phi_2 = phi_1 / hh - 0.5;
      const double b2 = phi_2 * 2.0 / b_h;
      rho_d1 = (b1 - b2) / (1.0 - r);
      rho_t = b1 - rho_d1;
    }
    torch::Tensor corrected = st.last_sample * (sigma_t / sigma_s0) - m0 * (alpha_t * h_phi_1);
    torch::Tensor res = (x0 - m0) * rho_t;
    if (d1.defined()) res = res + d1 * rho_d1;
    x = corrected - res * (alpha_t * b_h);
  }

  push_history(st, x0, 2);
  const int remaining = steps() - static_cast<int>(n);
  const int order = std::min({2, remaining, static_cast<int>(st.x0_history.size())});
  st.last_order = order;
  st.last_sample = keep(x);

  const double sigma_t = sg[n + 1];
  const double sigma_s0 = sg[n];
  const double alpha_t = 1.0 - sigma_t;
  const double lambda_s0 = lambda_of(sigma_s0);
  const double h = lambda_of(sigma_t) - lambda_s0;
  const double h_phi_1 = std::expm1(-h);
  const torch::Tensor& m0 = st.x0_history.back();
  torch::Tensor out = x * (sigma_t / sigma_s0) - m0 * (alpha_t * h_phi_1);
  if (order >= 2) {
    const double r = (lambda_of(sg[n - 1]) - lambda_s0) / h;
    torch::Tensor d1 = (st.x0_history[st.x0_history.size() - 2] - m0) / r;
    out = out - d1 * (alpha_t * h_phi_1 * 0.5);
  }
  return out;
}

// DPM-Solver++ 2M, midpoint form: x_{n+1} = (s_{n+1}/s_n) x - alpha_{n+1} (e^{-h} - 1)
// (D0 + D1 / 2), D0 = m0, D1 = (m0 - m1) / r, r = h_prev / h. First order at the first step of a
// state and at the last step (final sigma 0).
torch::Tensor FlowSolver::step_dpmpp(SolverState& st, const torch::Tensor& x0,
                                     const torch::Tensor& x) const {
  const auto& sg = schedule_.sigmas;
  const auto n = static_cast<size_t>(st.step);
  const bool second_order = !st.x0_history.empty() && static_cast<int>(n) + 1 < steps() && n >= 1;
  push_history(st, x0, 2);

  const double sigma_t = sg[n + 1];
  const double sigma_s0 = sg[n];
  const double alpha_t = 1.0 - sigma_t;
  const double lambda_s0 = lambda_of(sigma_s0);
  const double h = lambda_of(sigma_t) - lambda_s0;
  const double coef = alpha_t * (std::exp(-h) - 1.0);
  torch::Tensor out = x * (sigma_t / sigma_s0) - x0 * coef;
  if (second_order) {
    // At n = 1 after a start at sigma = 1, lambda_{s1} = -inf, so r = inf and D1 vanishes.
    const double r = (lambda_s0 - lambda_of(sg[n - 1])) / h;
    const double k = 0.5 * coef / r;
    if (k != 0.0) out = out - (x0 - st.x0_history.front()) * k;
  }
  return out;
}

}  // namespace reel::models
