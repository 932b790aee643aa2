#include "models/scheduler.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "models/safetensors.hpp"
#include "tests/models/golden.hpp"

namespace reel::models {
namespace {

using ::reel::testing::deviation;
using ::reel::testing::golden_tensor;
using ::reel::testing::open_golden;

double rel_l2(const torch::Tensor& a, const torch::Tensor& ref) { return deviation(a, ref).rel; }

// Distance in units in the last place between two floats of the same sign.
int64_t ulp_distance(float a, float b) {
  int32_t ia = 0;
  int32_t ib = 0;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  return ia > ib ? int64_t{ia} - ib : int64_t{ib} - ia;
}

// The golden trajectories' model: mo = 0.5 x + float(0.01 * t / 1000), a "velocity".
torch::Tensor golden_model(const torch::Tensor& x, int64_t t) {
  return x * 0.5 + static_cast<float>(0.01 * (static_cast<double>(t) / 1000.0));
}

// A velocity model whose x0 prediction is always `target`, given x at noise level sigma.
torch::Tensor velocity_towards(const torch::Tensor& x, double sigma, const torch::Tensor& target) {
  return velocity_from_x0(x, sigma, target);
}

constexpr SolverKind kAllSolvers[] = {SolverKind::euler, SolverKind::unipc, SolverKind::dpmpp};

TEST(SolverKind, ParsesAndNamesEachSolver) {
  for (SolverKind kind : kAllSolvers) {
    auto parsed = parse_solver_kind(solver_kind_name(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  auto bad = parse_solver_kind("ddim");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_EQ(*parse_prediction("velocity"), Prediction::velocity);
  EXPECT_EQ(*parse_prediction("sample"), Prediction::sample);
  EXPECT_FALSE(parse_prediction("eps").ok());
}

TEST(Schedule, FiftyStepsAtShiftFiveRunFrom999To92) {
  Schedule s = make_schedule(SolverKind::unipc, 50, 5.0);
  ASSERT_EQ(s.timesteps.size(), 50U);
  ASSERT_EQ(s.sigmas.size(), 51U);
  EXPECT_EQ(s.timesteps[0], 999);
  EXPECT_EQ(s.timesteps[1], 995);
  EXPECT_EQ(s.timesteps[2], 991);
  EXPECT_EQ(s.timesteps[48], 172);
  EXPECT_EQ(s.timesteps[49], 92);
  EXPECT_EQ(s.sigmas.back(), 0.0);
  for (size_t i = 0; i + 1 < s.sigmas.size(); ++i) EXPECT_GT(s.sigmas[i], s.sigmas[i + 1]);
  EXPECT_EQ(make_schedule(SolverKind::euler, 50, 5.0).timesteps, s.timesteps);
}

TEST(Schedule, DpmppStartsAtSigmaOneAndTimestep1000) {
  Schedule s = make_schedule(SolverKind::dpmpp, 10, 5.0);
  EXPECT_EQ(s.sigmas.front(), 1.0);
  EXPECT_EQ(s.timesteps.front(), 1000);
  EXPECT_EQ(s.sigmas.back(), 0.0);
}

TEST(Schedule, RejectsNonPositiveStepsAndShift) {
  EXPECT_TRUE(validate_schedule_args(1, 1.0).ok());
  EXPECT_FALSE(validate_schedule_args(0, 5.0).ok());
  EXPECT_FALSE(validate_schedule_args(10, 0.0).ok());
  EXPECT_FALSE(validate_schedule_args(10, -1.0).ok());
}

TEST(Schedule, MatchesWanGoldenTablesForBothSolvers) {
  REEL_SKIP_WITHOUT_GOLDEN();
  SafeTensors file = open_golden("scheduler/schedules.safetensors");
  const std::pair<int, int> cases[] = {{50, 5}, {10, 5}, {40, 12}, {50, 3}};
  for (SolverKind kind : {SolverKind::unipc, SolverKind::dpmpp}) {
    for (auto [steps, shift] : cases) {
      const std::string prefix = std::string(solver_kind_name(kind)) + ".steps" +
                                 std::to_string(steps) + ".shift" + std::to_string(shift);
      SCOPED_TRACE(prefix);
      Schedule s = make_schedule(kind, steps, shift);
      auto ts = golden_tensor(file, prefix + ".timesteps").contiguous();
      auto sg = golden_tensor(file, prefix + ".sigmas").contiguous();
      ASSERT_EQ(ts.numel(), steps);
      ASSERT_EQ(sg.numel(), steps + 1);
      ASSERT_EQ(s.timesteps.size(), static_cast<size_t>(steps));
      for (int i = 0; i < steps; ++i) EXPECT_EQ(s.timesteps[i], ts[i].item<int64_t>()) << "i=" << i;
      for (int i = 0; i <= steps; ++i) {
        EXPECT_LE(ulp_distance(static_cast<float>(s.sigmas[i]), sg[i].item<float>()), 1)
            << "i=" << i;
      }
    }
  }
}

// Replays a golden trajectory from its own samples[0]; the solver runs freely (never reset to
// the reference), and every step must stay within rel 1e-6 of the reference.
void check_trajectory(SolverKind kind, const std::string& file_name) {
  REEL_SKIP_WITHOUT_GOLDEN();
  SafeTensors file = open_golden("scheduler/" + file_name);
  auto samples = golden_tensor(file, "samples");              // [11, 1, 4, 3, 8, 8]
  auto model_outputs = golden_tensor(file, "model_outputs");  // [10, 1, 4, 3, 8, 8]
  auto timesteps = golden_tensor(file, "timesteps");
  const bool unipc = kind == SolverKind::unipc;
  torch::Tensor corrected = unipc ? golden_tensor(file, "corrected_samples") : torch::Tensor();

  FlowSolver solver(kind, make_schedule(kind, 10, 5.0));
  ASSERT_EQ(solver.steps(), 10);
  SolverState st;
  torch::Tensor x = samples[0];
  for (int i = 0; i < 10; ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    const int64_t t = solver.timestep(st);
    ASSERT_EQ(t, timesteps[i].item<int64_t>());
    torch::Tensor mo = golden_model(x, t);
    EXPECT_LE(rel_l2(mo, model_outputs[i]), 1e-6);
    x = solver.step_output(st, mo, Prediction::velocity, x);
    EXPECT_EQ(st.step, i + 1);
    EXPECT_LE(rel_l2(x, samples[i + 1]), 1e-6);
    if (unipc) {
      EXPECT_LE(rel_l2(st.last_sample, corrected[i]), 1e-6);
    }
  }
  EXPECT_TRUE(solver.done(st));
}

TEST(FlowSolver, UniPcFollowsWanGoldenTrajectoryAndCorrectedSamples) {
  check_trajectory(SolverKind::unipc, "trajectory_unipc_10steps.safetensors");
}

TEST(FlowSolver, DpmppFollowsWanGoldenTrajectory) {
  check_trajectory(SolverKind::dpmpp, "trajectory_dpmpp_10steps.safetensors");
}

TEST(FlowSolver, ConvertsBetweenVelocityAndX0) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 3, 4});
  auto v = torch::randn({2, 3, 4});
  auto x0 = x0_from_velocity(x, 0.25, v);
  EXPECT_TRUE(torch::allclose(x0, x - 0.25 * v));
  EXPECT_TRUE(torch::allclose(velocity_from_x0(x, 0.25, x0), v, 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(to_x0(x, 0.25, x0, Prediction::sample), x0));
  auto sigma = torch::tensor({0.5F, 0.25F}).view({2, 1, 1});
  EXPECT_TRUE(torch::allclose(x0_from_velocity(x, sigma, v), x - sigma * v));
  EXPECT_TRUE(torch::allclose(velocity_from_x0(x, sigma, x0_from_velocity(x, sigma, v)), v,
                              1e-5, 1e-5));
}

TEST(FlowSolver, EulerStepsAFakeVelocityModelByTheFormula) {
  torch::manual_seed(2);
  Schedule sched = make_schedule(SolverKind::euler, 8, 3.0);
  FlowSolver solver(SolverKind::euler, sched);
  SolverState st;
  torch::Tensor x = torch::randn({1, 2, 3, 4, 4});
  for (int i = 0; i < 8; ++i) {
    torch::Tensor v = torch::sin(x) + 0.1 * i;
    torch::Tensor expect = x + (sched.sigmas[i + 1] - sched.sigmas[i]) * v;
    SolverState via_x0 = st;
    torch::Tensor from_x0 = solver.step(via_x0, x0_from_velocity(x, sched.sigmas[i], v), x);
    x = solver.step_output(st, v, Prediction::velocity, x);
    EXPECT_TRUE(torch::allclose(x, expect, 1e-6, 1e-6));
    EXPECT_TRUE(torch::allclose(from_x0, expect, 1e-5, 1e-5));
  }
  EXPECT_TRUE(solver.done(st));
}

TEST(FlowSolver, EverySolverLandsOnAConstantX0Prediction) {
  torch::manual_seed(3);
  auto target = torch::randn({1, 4, 2, 4, 4});
  for (SolverKind kind : kAllSolvers) {
    SCOPED_TRACE(solver_kind_name(kind));
    FlowSolver solver(kind, make_schedule(kind, 12, 5.0));
    SolverState st;
    torch::Tensor x = torch::randn({1, 4, 2, 4, 4});
    while (!solver.done(st)) {
      x = solver.step_output(st, velocity_towards(x, solver.sigma(st), target),
                             Prediction::velocity, x);
    }
    EXPECT_LE(rel_l2(x, target), 1e-5);
  }
}

// Runs the golden toy model on a whole latent with one state, and on each frame slice with a
// state of its own: the model is elementwise, so the two must agree.
TEST(FlowSolver, OneStatePerFrameEqualsOneStateForTheWholeLatent) {
  torch::manual_seed(4);
  const auto x_init = torch::randn({1, 4, 3, 8, 8});  // [B, C, F, H, W]
  for (SolverKind kind : kAllSolvers) {
    SCOPED_TRACE(solver_kind_name(kind));
    FlowSolver solver(kind, make_schedule(kind, 10, 5.0));
    SolverState whole;
    std::vector<SolverState> frames(3);
    torch::Tensor x = x_init.clone();
    torch::Tensor xf = x_init.clone();
    while (!solver.done(whole)) {
      const int64_t t = solver.timestep(whole);
      x = solver.step_output(whole, golden_model(x, t), Prediction::velocity, x);
      std::vector<torch::Tensor> next;
      for (int64_t f = 0; f < 3; ++f) {
        torch::Tensor slice = xf.narrow(2, f, 1);  // [B, C, 1, H, W]
        next.push_back(solver.step_output(frames[f], golden_model(slice, t),
                                          Prediction::velocity, slice));
      }
      xf = torch::cat(next, 2);
    }
    EXPECT_LE((x - xf).abs().max().item<float>(), 1e-6F);
  }
}

// A FIFO-like queue: frame f enters at iteration f, every queued frame advances one step per
// iteration with its own state, and results are written back into the queue in place. Each
// frame must end where it would have ended alone.
TEST(FlowSolver, FramesAtDifferentStepsEachFollowTheirOwnTrajectory) {
  torch::manual_seed(5);
  constexpr int kSteps = 6;
  constexpr int64_t kFrames = 4;
  const auto noise = torch::randn({1, 2, kFrames, 4, 4});
  for (SolverKind kind : kAllSolvers) {
    SCOPED_TRACE(solver_kind_name(kind));
    FlowSolver solver(kind, make_schedule(kind, kSteps, 5.0));

    std::vector<torch::Tensor> alone;
    for (int64_t f = 0; f < kFrames; ++f) {
      SolverState st;
      torch::Tensor x = noise.narrow(2, f, 1).clone();
      while (!solver.done(st)) {
        x = solver.step_output(st, golden_model(x, solver.timestep(st)), Prediction::velocity, x);
      }
      alone.push_back(x);
    }

    torch::Tensor queue = noise.clone();
    std::vector<SolverState> states(kFrames);
    for (int iter = 0; iter < kSteps + kFrames - 1; ++iter) {
      for (int64_t f = 0; f < kFrames; ++f) {
        if (f > iter || solver.done(states[f])) continue;
        torch::Tensor slice = queue.narrow(2, f, 1);  // a view into the queue
        torch::Tensor mo = golden_model(slice, solver.timestep(states[f]));
        torch::Tensor next = solver.step_output(states[f], mo, Prediction::velocity, slice);
        slice.copy_(next);  // overwrites storage the state may have seen
      }
    }
    for (int64_t f = 0; f < kFrames; ++f) {
      EXPECT_TRUE(solver.done(states[f]));
      EXPECT_LE((queue.narrow(2, f, 1) - alone[f]).abs().max().item<float>(), 1e-6F) << "f=" << f;
    }
  }
}

TEST(FlowSolver, StateStartingMidwayWarmsUpAndFinishes) {
  torch::manual_seed(6);
  auto target = torch::randn({1, 2, 1, 4, 4});
  for (SolverKind kind : kAllSolvers) {
    SCOPED_TRACE(solver_kind_name(kind));
    FlowSolver solver(kind, make_schedule(kind, 10, 5.0));
    SolverState st{.step = 4};
    const double sigma = solver.sigma(st);
    torch::Tensor x = (1.0 - sigma) * target + sigma * torch::randn({1, 2, 1, 4, 4});
    int calls = 0;
    while (!solver.done(st)) {
      x = solver.step(st, target, x);
      ++calls;
    }
    EXPECT_EQ(calls, 6);
    EXPECT_LE(rel_l2(x, target), 1e-5);
  }
}

TEST(FlowSolver, RejectsSteppingPastTheEnd) {
  FlowSolver solver(SolverKind::unipc, make_schedule(SolverKind::unipc, 2, 5.0));
  SolverState st{.step = 2};
  auto x = torch::zeros({1, 1, 1, 2, 2});
  EXPECT_THROW((void)solver.step(st, x, x), c10::Error);
}

}  // namespace
}  // namespace reel::models
