// reel eval adherence: how well a model's videos follow their prompts in the shapes world.
//
// Draws N scenes from the grammar (scene i from seed + i), generates each prompt's video with the
// model's sampling defaults, and scores the pixels (models/shapes/score.hpp) against the scene:
// background, and per object colour, shape and motion. Videos are generated `--batch` prompts
// per sampler call (group g's noise from seed + g), so results depend on the batch size.
// For a latent model, the ground truth is also scored after a trip through its autoencoder
// (encoded and decoded), which shows what the decoder alone costs.
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/durable.hpp"
#include "cli/commands.hpp"
#include "cli/frames.hpp"
#include "cli/progress.hpp"
#include "models/autoencoder.hpp"
#include "models/shapes/grammar.hpp"
#include "models/shapes/render.hpp"
#include "models/shapes/score.hpp"
#include "models/zoo.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pipeline/sampler.hpp"
#include "video/image.hpp"
#include "video/metrics.hpp"

namespace reel::cli {

namespace {

namespace shapes = models::shapes;

struct EvalArgs {
  std::string model;
  int prompts = 200;
  uint64_t seed = 1000;
  std::optional<int> frames, steps;
  std::optional<double> guidance;
  int objects = 1;
  int batch = 8;
  std::string json;
  std::string sheet;
  int sheet_videos = 8;
  int threads = 0;
  bool quiet = false;
};

Error usage(const std::string& m) { return make_error(Errc::invalid_argument, m); }

double pct(double rate) { return 100.0 * rate; }

int run_adherence(const EvalArgs& a, const Config& cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  if (a.prompts < 1) return report(usage("--prompts must be at least 1"));
  if (a.objects < 1 || a.objects > 2) return report(usage("--objects must be 1 or 2"));
  if (a.batch < 1) return report(usage("--batch must be at least 1"));
  if (a.frames && *a.frames < 2) return report(usage("--frames must be at least 2 (motion needs two frames)"));
  if (a.steps && *a.steps < 1) return report(usage("--steps must be positive"));
  if (a.guidance && !(*a.guidance >= 0)) return report(usage("--guidance must be >= 0"));
  if (!a.json.empty())
    if (auto st = check_output(a.json, ".json", "--json"); !st) return report(st.error());
  if (!a.sheet.empty()) {
    if (auto st = check_output(a.sheet, ".png", "--sheet"); !st) return report(st.error());
    if (a.sheet_videos < 1) return report(usage("--sheet-videos must be at least 1"));
  }
  if (auto st = set_threads(a.threads); !st) return report(st.error());

  auto model = models::open_model(a.model, cfg.zoo);
  if (!model) return report(model.error());
  const auto& c = model->dit->config();
  const int frames = a.frames.value_or(model->defaults.frames);
  const int height = model->defaults.height, width = model->defaults.width;
  if (frames % c.patch[0] != 0) return report(usage("--frames must be a multiple of " + std::to_string(c.patch[0])));
  pipeline::SampleOptions opts;
  opts.steps = a.steps.value_or(model->defaults.steps);
  opts.shift = model->defaults.shift;
  opts.solver = model->defaults.solver;
  opts.guidance = a.guidance.value_or(model->defaults.guidance);
  pipeline::DiTDenoiser denoiser(model->dit, model->prediction);

  shapes::SampleOptions scene_opts;
  scene_opts.max_objects = a.objects;
  shapes::AdherenceTotals totals, truth_totals, recon_totals;
  double consistency_sum = 0, truth_consistency_sum = 0, recon_se = 0, recon_count = 0;
  auto* autoencoder = dynamic_cast<models::LatentDecoder*>(model->decoder.get());
  nlohmann::json per_prompt = nlohmann::json::array();
  std::vector<std::vector<video::Frame>> sheet_rows;
  Progress progress("evaluating", "videos", !a.quiet && Progress::stderr_is_terminal());

  for (int first = 0; first < a.prompts; first += a.batch) {
    const int n = std::min(a.batch, a.prompts - first);
    std::vector<shapes::SceneSpec> scenes;
    std::vector<std::string> prompts;
    for (int i = 0; i < n; ++i) {
      scenes.push_back(shapes::sample_scene(a.seed + static_cast<uint64_t>(first + i), scene_opts));
      prompts.push_back(shapes::prompt(scenes.back()));
    }
    auto text = model->text_encoder->encode(prompts);
    if (!text) return report(text.error());
    pipeline::Conditioning cond{*text, {}};
    if (opts.guidance != 1.0) cond.negative = torch::zeros_like(*text);
    opts.seed = a.seed + static_cast<uint64_t>(first / a.batch);
    auto result = pipeline::sample(denoiser, cond, {n, c.in_channels, frames, height / model->spatial_compression,
                                                    width / model->spatial_compression},
                                   opts);
    if (!result) return report(result.error());
    auto pixels = model->decoder->decode(result->latent);  // [n, F, H, W, 3]
    if (!pixels) return report(pixels.error());

    for (int i = 0; i < n; ++i) {
      auto clip = (*pixels)[i].contiguous();
      std::span<const uint8_t> rgb(clip.data_ptr<uint8_t>(), static_cast<size_t>(clip.numel()));
      auto score = shapes::score_clip(scenes[i], rgb, frames, height, width);
      if (!score) return report(score.error());
      totals.add(*score);
      auto video = to_frames(clip);
      auto tc = video::temporal_consistency(video);
      if (!tc) return report(tc.error());
      consistency_sum += *tc;

      // The same scene rendered by the world: the scorer's and consistency's reference.
      auto truth = shapes::render(scenes[i], frames, height, width, a.seed + static_cast<uint64_t>(first + i));
      auto truth_score = shapes::score_clip(scenes[i], truth.rgb, frames, height, width);
      if (truth_score) truth_totals.add(*truth_score);
      std::vector<video::Frame> truth_video;
      for (int f = 0; f < frames; ++f) {
        video::Frame fr{width, height, {}};
        const auto* src = truth.rgb.data() + static_cast<size_t>(f) * height * width * 3;
        fr.rgb.assign(src, src + static_cast<size_t>(height) * width * 3);
        truth_video.push_back(std::move(fr));
      }
      if (auto ttc = video::temporal_consistency(truth_video)) truth_consistency_sum += *ttc;
      if (autoencoder != nullptr) {
        auto truth_pixels = torch::from_blob(truth.rgb.data(), {frames, height, width, 3}, torch::kUInt8);
        auto latent = autoencoder->encode(truth_pixels);
        if (!latent) return report(latent.error());
        auto back = autoencoder->decode(*latent);
        if (!back) return report(back.error());
        auto recon = (*back)[0].contiguous();
        auto recon_score = shapes::score_clip(
            scenes[i], {recon.data_ptr<uint8_t>(), static_cast<size_t>(recon.numel())}, frames, height, width);
        if (recon_score) recon_totals.add(*recon_score);
        recon_se += (recon.to(torch::kFloat) - truth_pixels.to(torch::kFloat)).pow(2).sum().item<double>();
        recon_count += static_cast<double>(recon.numel());
      }

      if (static_cast<int>(sheet_rows.size()) < a.sheet_videos && !a.sheet.empty()) {
        for (auto& fr : video) fr = video::upscale(fr, 4, video::Interp::nearest);
        sheet_rows.push_back(std::move(video));
      }
      nlohmann::json objects = nlohmann::json::array();
      for (size_t o = 0; o < score->objects.size(); ++o) {
        const auto& s = score->objects[o];
        objects.push_back({{"asked_colour", shapes::name(scenes[i].objects[o].colour)},
                           {"asked_shape", shapes::name(scenes[i].objects[o].shape)},
                           {"asked_motion", shapes::name(scenes[i].objects[o].motion)},
                           {"found", s.found},
                           {"seen_colour", shapes::name(s.seen_colour)},
                           {"seen_shape", shapes::name(s.seen_shape)},
                           {"seen_motion", shapes::name(s.seen_motion)},
                           {"colour", s.colour},
                           {"shape", s.shape},
                           {"motion", s.motion},
                           {"dx", s.dx},
                           {"dy", s.dy}});
      }
      per_prompt.push_back({{"index", first + i},
                            {"prompt", prompts[i]},
                            {"background", score->background},
                            {"seen_background", shapes::name(score->seen_background)},
                            {"temporal_consistency", *tc},
                            {"objects", objects}});
    }
    progress.update(first + n, a.prompts);
  }
  progress.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double tc = consistency_sum / a.prompts, truth_tc = truth_consistency_sum / a.prompts;

  std::printf("adherence of %s: %d prompts (%d object%s max), %d frames %dx%d, %d steps, guidance %g, seed %llu\n",
              model->name.c_str(), a.prompts, a.objects, a.objects > 1 ? "s" : "", frames, width, height, opts.steps,
              opts.guidance, static_cast<unsigned long long>(a.seed));
  const bool recon = autoencoder != nullptr;
  const double recon_psnr = recon_se > 0 ? 10.0 * std::log10(255.0 * 255.0 * recon_count / recon_se) : 99.0;
  std::printf("%-22s %10s %14s%s\n", "", "model", "ground truth", recon ? "  through the autoencoder" : "");
  auto row = [&](const char* what, double m, double t, double r) {
    std::printf("%-22s %9.1f%% %13.1f%%", what, m, t);
    if (recon) std::printf(" %23.1f%%", r);
    std::printf("\n");
  };
  row("background", pct(totals.background_rate()), pct(truth_totals.background_rate()), pct(recon_totals.background_rate()));
  row("object colour", pct(totals.colour_rate()), pct(truth_totals.colour_rate()), pct(recon_totals.colour_rate()));
  row("object shape", pct(totals.shape_rate()), pct(truth_totals.shape_rate()), pct(recon_totals.shape_rate()));
  row("motion direction", pct(totals.motion_rate()), pct(truth_totals.motion_rate()), pct(recon_totals.motion_rate()));
  row("object found", pct(totals.found_rate()), pct(truth_totals.found_rate()), pct(recon_totals.found_rate()));
  row("whole scene right", pct(totals.scene_rate()), pct(truth_totals.scene_rate()), pct(recon_totals.scene_rate()));
  std::printf("%-22s %10.3f %14.3f\n", "temporal consistency", tc, truth_tc);
  if (recon) std::printf("autoencoder reconstruction of the ground truth: %.2f dB PSNR\n", recon_psnr);
  std::printf("%.1f s (%.2f s per video)\n", seconds, seconds / a.prompts);

  if (!a.sheet.empty()) {
    if (auto st = video::write_contact_sheet(a.sheet, sheet_rows); !st) return report(st.error());
  }
  if (!a.json.empty()) {
    auto summary = [](const shapes::AdherenceTotals& t) {
      return nlohmann::json{{"videos", t.videos},        {"objects", t.objects},
                            {"background", t.background_rate()}, {"colour", t.colour_rate()},
                            {"shape", t.shape_rate()},   {"motion", t.motion_rate()},
                            {"found", t.found_rate()},   {"scene", t.scene_rate()}};
    };
    nlohmann::json out{{"model", model->name},
                       {"model_source", model->source},
                       {"prompts", a.prompts},
                       {"objects", a.objects},
                       {"seed", a.seed},
                       {"frames", frames},
                       {"width", width},
                       {"height", height},
                       {"steps", opts.steps},
                       {"guidance", opts.guidance},
                       {"batch", a.batch},
                       {"seconds", seconds},
                       {"overall", summary(totals)},
                       {"ground_truth", summary(truth_totals)},
                       {"temporal_consistency", tc},
                       {"ground_truth_temporal_consistency", truth_tc},
                       {"through_autoencoder", recon ? summary(recon_totals) : nlohmann::json()},
                       {"autoencoder_psnr", recon ? nlohmann::json(recon_psnr) : nlohmann::json()},
                       {"per_prompt", per_prompt}};
    if (auto st = write_file_atomic(a.json, out.dump(1) + "\n"); !st) return report(st.error());
  }
  return kExitOk;
}

}  // namespace

Command add_eval(CLI::App& app, const Config& cfg) {
  auto a = std::make_shared<EvalArgs>();
  a->model = cfg.model;
  a->threads = cfg.threads;
  auto* sub = app.add_subcommand("eval", "evaluate a model");
  sub->require_subcommand(1);
  auto* adh = sub->add_subcommand("adherence", "prompt adherence in the shapes world, scored from the pixels");
  adh->add_option("--model,-m", a->model, "zoo name or .safetensors path")->envname("REEL_MODEL")->capture_default_str();
  adh->add_option("--prompts,-n", a->prompts, "prompts drawn from the grammar")->capture_default_str();
  adh->add_option("--seed", a->seed, "scene i is drawn from seed + i")->check(CLI::NonNegativeNumber)->capture_default_str();
  adh->add_option("--frames,-f", a->frames, "frames per video; default: the model's");
  adh->add_option("--steps,-s", a->steps, "solver steps; default: the model's");
  adh->add_option("--guidance,-g", a->guidance, "guidance scale; default: the model's");
  adh->add_option("--objects", a->objects, "at most this many objects per prompt (1 or 2)")->capture_default_str();
  adh->add_option("--batch", a->batch, "videos per sampler call")->capture_default_str();
  adh->add_option("--json", a->json, "write per-prompt and overall scores here");
  adh->add_option("--sheet", a->sheet, "write a contact sheet PNG of the first videos (one row each)");
  adh->add_option("--sheet-videos", a->sheet_videos, "videos on the contact sheet")->capture_default_str();
  adh->add_option("--threads,-t", a->threads, "compute threads (0 = all cores)")->envname("REEL_THREADS");
  adh->add_flag("--quiet,-q", a->quiet, "no progress bar");
  return [a, &cfg] { return run_adherence(*a, cfg); };
}

}  // namespace reel::cli
