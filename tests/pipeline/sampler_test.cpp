#include "pipeline/sampler.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <utility>
#include <vector>

#include "pipeline/guidance.hpp"

namespace reel::pipeline {
namespace {

using models::Prediction;
using models::SolverKind;

constexpr SolverKind kAllSolvers[] = {SolverKind::euler, SolverKind::unipc, SolverKind::dpmpp};
const std::vector<int64_t> kShape = {2, 4, 3, 8, 8};  // [B, C, F, H, W]

// An analytic model whose x0 prediction for a row is `scale * (text row mean) * pattern`: the
// target depends on the text, so conditional and unconditional rows differ. It answers in its
// prediction type and records every call.
class FakeDenoiser : public Denoiser {
 public:
  FakeDenoiser(Prediction prediction, torch::Tensor pattern)
      : prediction_(prediction), pattern_(std::move(pattern)) {}

  Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                  const torch::Tensor& text) override {
    batches.push_back(x.size(0));
    sigmas.push_back(sigma.clone());
    if (fail) return make_error(Errc::cancelled, "fake failure");
    torch::Tensor x0 = target_for(text).expand_as(x);
    if (prediction_ == Prediction::sample) return x0;
    torch::Tensor s = sigma.view({x.size(0), 1, x.size(2), 1, 1});  // [B, 1, F, 1, 1]
    return (x - x0) / s;
  }

  Prediction prediction() const override { return prediction_; }

  // [B, C, F, H, W] x0 for each text row.
  torch::Tensor target_for(const torch::Tensor& text) const {
    torch::Tensor level = text.mean({1, 2}).view({-1, 1, 1, 1, 1});  // [B, 1, 1, 1, 1]
    return level * pattern_;
  }

  std::vector<int64_t> batches;
  std::vector<torch::Tensor> sigmas;
  bool fail = false;

 private:
  Prediction prediction_;
  torch::Tensor pattern_;  // [1, C, F, H, W]
};

torch::Tensor make_pattern() {
  torch::manual_seed(11);
  return torch::randn({1, kShape[1], kShape[2], kShape[3], kShape[4]});
}

// Constant text embeddings; a negative level of 0 means "no negative prompt".
Conditioning make_conditioning(float positive, float negative) {
  return Conditioning{torch::full({kShape[0], 5, 6}, positive),
                      negative == 0.0F ? torch::Tensor() : torch::full({kShape[0], 5, 6}, negative)};
}

double rel_l2(const torch::Tensor& a, const torch::Tensor& ref) {
  return (a - ref).norm().item<double>() / ref.norm().item<double>();
}

TEST(Sampler, ConvergesToTheModelsTargetForEverySolverAndPredictionType) {
  for (Prediction prediction : {Prediction::velocity, Prediction::sample}) {
    for (SolverKind solver : kAllSolvers) {
      SCOPED_TRACE(std::string(models::solver_kind_name(solver)) + " " +
                   models::prediction_name(prediction));
      FakeDenoiser model(prediction, make_pattern());
      Conditioning cond = make_conditioning(1.0F, 0.0F);
      auto result = sample(model, cond, kShape, {.steps = 10, .solver = solver, .seed = 3});
      ASSERT_TRUE(result.ok()) << result.error().message;
      EXPECT_EQ(result->latent.sizes(), torch::IntArrayRef(kShape));
      EXPECT_LE(rel_l2(result->latent, model.target_for(cond.text).expand(kShape)), 1e-5);
    }
  }
}

TEST(Sampler, SameSeedGivesIdenticalLatentsAndOtherSeedsDiffer) {
  // A model that does not wash the noise out, so the result depends on it.
  class Keeper : public Denoiser {
   public:
    Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor&,
                                    const torch::Tensor&) override {
      return 0.5 * x;
    }
    Prediction prediction() const override { return Prediction::sample; }
  } model;
  Conditioning cond = make_conditioning(1.0F, 0.0F);
  auto a = sample(model, cond, kShape, {.steps = 6, .seed = 42});
  auto b = sample(model, cond, kShape, {.steps = 6, .seed = 42});
  auto c = sample(model, cond, kShape, {.steps = 6, .seed = 43});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(torch::equal(a->latent, b->latent));
  EXPECT_FALSE(torch::allclose(a->latent, c->latent));
  EXPECT_TRUE(torch::equal(make_noise(kShape, 7), make_noise(kShape, 7)));
  EXPECT_FALSE(torch::equal(make_noise(kShape, 7), make_noise(kShape, 8)));
}

TEST(Sampler, GuidanceOneEqualsNoGuidanceAndMakesOneRowPerSample) {
  FakeDenoiser with_negative(Prediction::velocity, make_pattern());
  FakeDenoiser without(Prediction::velocity, make_pattern());
  SampleOptions options{.steps = 8, .guidance = 1.0, .seed = 5};
  auto a = sample(with_negative, make_conditioning(1.0F, -2.0F), kShape, options);
  auto b = sample(without, make_conditioning(1.0F, 0.0F), kShape, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(torch::equal(a->latent, b->latent));
  for (int64_t rows : with_negative.batches) EXPECT_EQ(rows, kShape[0]);
}

TEST(Guidance, CombinesConditionalAndUnconditionalInOneBatchedCall) {
  for (Prediction prediction : {Prediction::velocity, Prediction::sample}) {
    SCOPED_TRACE(models::prediction_name(prediction));
    FakeDenoiser model(prediction, make_pattern());
    Conditioning cond = make_conditioning(1.5F, -0.5F);
    torch::manual_seed(9);
    auto x = torch::randn(kShape);
    auto sigma = torch::rand({kShape[0], kShape[2]}) * 0.8 + 0.1;  // [B, F]
    auto guided = guided_denoise(model, x, sigma, cond, 4.0);
    ASSERT_TRUE(guided.ok()) << guided.error().message;
    ASSERT_EQ(model.batches, std::vector<int64_t>{2 * kShape[0]});

    auto cond_out = model.denoise(x, sigma, cond.text);
    auto uncond_out = model.denoise(x, sigma, cond.negative);
    ASSERT_TRUE(cond_out.ok() && uncond_out.ok());
    torch::Tensor expect = *uncond_out + 4.0 * (*cond_out - *uncond_out);
    EXPECT_TRUE(torch::allclose(*guided, expect, 1e-5, 1e-5));
  }
}

// Guiding either prediction type extrapolates the x0 targets: uncond + g * (cond - uncond).
TEST(Sampler, GuidedSamplingConvergesToTheExtrapolatedTarget) {
  for (Prediction prediction : {Prediction::velocity, Prediction::sample}) {
    SCOPED_TRACE(models::prediction_name(prediction));
    FakeDenoiser model(prediction, make_pattern());
    Conditioning cond = make_conditioning(1.0F, 0.25F);
    auto result = sample(model, cond, kShape, {.steps = 12, .guidance = 3.0, .seed = 1});
    ASSERT_TRUE(result.ok()) << result.error().message;
    torch::Tensor pos = model.target_for(cond.text);
    torch::Tensor neg = model.target_for(cond.negative);
    torch::Tensor expect = (neg + 3.0 * (pos - neg)).expand(kShape);
    EXPECT_LE(rel_l2(result->latent, expect), 1e-5);
  }
}

TEST(Sampler, CountsModelCallsRowsAndSteps) {
  FakeDenoiser model(Prediction::velocity, make_pattern());
  std::vector<std::pair<int, int>> progress;
  auto result = sample(model, make_conditioning(1.0F, -1.0F), kShape,
                       {.steps = 7, .guidance = 5.0},
                       [&](int step, int total) { progress.emplace_back(step, total); });
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->stats.model_calls, 7);
  EXPECT_EQ(result->stats.model_rows, 7 * 2 * kShape[0]);
  EXPECT_EQ(model.batches.size(), 7U);
  EXPECT_GE(result->stats.seconds, 0.0);
  ASSERT_EQ(progress.size(), 7U);
  EXPECT_EQ(progress.front(), std::make_pair(1, 7));
  EXPECT_EQ(progress.back(), std::make_pair(7, 7));

  FakeDenoiser plain(Prediction::velocity, make_pattern());
  auto unguided = sample(plain, make_conditioning(1.0F, 0.0F), kShape, {.steps = 7});
  ASSERT_TRUE(unguided.ok());
  EXPECT_EQ(unguided->stats.model_calls, 7);
  EXPECT_EQ(unguided->stats.model_rows, 7 * kShape[0]);
}

TEST(Sampler, PassesTheScheduleSigmaForEveryFrame) {
  FakeDenoiser model(Prediction::velocity, make_pattern());
  auto result = sample(model, make_conditioning(1.0F, 0.0F), kShape,
                       {.steps = 5, .shift = 3.0, .solver = SolverKind::dpmpp});
  ASSERT_TRUE(result.ok());
  models::Schedule sched = models::make_schedule(SolverKind::dpmpp, 5, 3.0);
  ASSERT_EQ(model.sigmas.size(), 5U);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(model.sigmas[i].sizes(), torch::IntArrayRef({kShape[0], kShape[2]}));
    EXPECT_TRUE(torch::all(model.sigmas[i] == static_cast<float>(sched.sigmas[i])).item<bool>());
  }
}

TEST(Sampler, ResumesFromAnIntermediateStep) {
  FakeDenoiser model(Prediction::velocity, make_pattern());
  Conditioning cond = make_conditioning(1.0F, 0.0F);
  models::Schedule sched = models::make_schedule(SolverKind::unipc, 10, 5.0);
  const double sigma = sched.sigmas[4];
  torch::Tensor target = model.target_for(cond.text).expand(kShape);
  torch::Tensor x = (1.0 - sigma) * target + sigma * make_noise(kShape, 2);
  auto result = sample_from(model, cond, x, 4, {.steps = 10});
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->stats.model_calls, 6);
  EXPECT_LE(rel_l2(result->latent, target), 1e-5);
}

TEST(Sampler, HandsEveryIntermediateLatentToTheCallbackAndResumesFromIt) {
  FakeDenoiser model(Prediction::velocity, make_pattern());
  Conditioning cond = make_conditioning(1.0F, 0.0F);
  std::vector<int> steps;
  torch::Tensor at_four;
  auto full = sample(model, cond, kShape, {.steps = 10, .seed = 3}, {}, [&](int step, const torch::Tensor& x) {
    steps.push_back(step);
    if (step == 4) at_four = x.clone();
  });
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  ASSERT_TRUE(at_four.defined());
  // A cache hit resumes from the captured latent: same target, 6 calls instead of 10.
  auto resumed = sample_from(model, cond, at_four, 4, {.steps = 10, .seed = 3});
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->stats.model_calls, 6);
  EXPECT_LE(rel_l2(resumed->latent, full->latent), 1e-4);
}

TEST(Sampler, ReportsBadInputsAsInvalidArgument) {
  FakeDenoiser model(Prediction::velocity, make_pattern());
  Conditioning cond = make_conditioning(1.0F, 0.0F);
  auto bad_shape = sample(model, cond, {2, 4, 8, 8}, {});
  ASSERT_FALSE(bad_shape.ok());
  EXPECT_EQ(bad_shape.error().code, Errc::invalid_argument);
  auto bad_steps = sample(model, cond, kShape, {.steps = 0});
  ASSERT_FALSE(bad_steps.ok());
  EXPECT_EQ(bad_steps.error().code, Errc::invalid_argument);
  auto bad_batch = sample(model, cond, {3, 4, 3, 8, 8}, {});
  ASSERT_FALSE(bad_batch.ok());
  EXPECT_EQ(bad_batch.error().code, Errc::invalid_argument);
  Conditioning mismatched{cond.text, torch::zeros({kShape[0], 7, 6})};
  auto bad_negative = sample(model, mismatched, kShape, {.guidance = 2.0});
  ASSERT_FALSE(bad_negative.ok());
  EXPECT_EQ(bad_negative.error().code, Errc::invalid_argument);
  EXPECT_TRUE(model.batches.empty());
}

TEST(Sampler, PropagatesTheDenoisersError) {
  FakeDenoiser model(Prediction::velocity, make_pattern());
  model.fail = true;
  auto result = sample(model, make_conditioning(1.0F, 0.0F), kShape, {.steps = 4});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::cancelled);
  EXPECT_EQ(model.batches.size(), 1U);
}

TEST(Sampler, TurnsALibTorchExceptionIntoAnInternalError) {
  class Thrower : public Denoiser {
   public:
    Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor&,
                                    const torch::Tensor&) override {
      return x.view({-1, 7, 13});  // not divisible: throws c10::Error
    }
    Prediction prediction() const override { return Prediction::sample; }
  } model;
  auto result = sample(model, make_conditioning(1.0F, 0.0F), kShape, {.steps = 2});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::internal);
}

}  // namespace
}  // namespace reel::pipeline
