// reel generate "<prompt>": one video from a text prompt on this machine.
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cache_run.hpp"
#include "cli/cluster_run.hpp"
#include "cli/commands.hpp"
#include "cli/long_job.hpp"
#include "cli/frames.hpp"
#include "cli/progress.hpp"
#include "models/zoo.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pipeline/clips.hpp"
#include "pipeline/fifo.hpp"
#include "pipeline/sampler.hpp"
#include "video/image.hpp"
#include "video/mp4_writer.hpp"

namespace reel::cli {

namespace {

namespace fs = std::filesystem;

struct JobOption;

struct GenerateArgs {
  std::string prompt;
  std::string model;
  std::optional<int> frames, steps, fps;
  std::optional<std::string> size, solver;
  std::optional<double> guidance, shift;
  uint64_t seed = 0;
  std::string out;
  std::string sheet;
  int sheet_every = 0;            // contact sheet: every N-th frame, in rows of 16; 0 = 16 evenly spaced
  int upscale = 4;
  std::string upscale_filter = "nearest";
  int crf = 18;
  int threads = 0;
  bool quiet = false;
  std::string mode = "standard";  // standard, fifo or clips
  int clips = 2;                  // clips: clips the video is split into
  int context_frames = 2;         // clips: neighbour frames per side
  int global_frames = 1;          // clips: frames from every clip
  int partitions = 1;             // FIFO: windows in the queue
  bool lookahead = true;          // FIFO: half-overlapping windows
  std::string job_dir;            // FIFO, clips: where checkpoints go (resumable with --resume)
  int checkpoint_every = 0;       // FIFO: frames, clips: steps between checkpoints, 0 = none
  std::string resume;             // a job directory to continue
  bool model_given = false;       // --model was on the command line
  std::vector<const JobOption*> given;  // the job settings (kJobOptions) that were on the command line
  CacheArgs cache;                // standard: the approximate cache (cache.path "" = none)
  bool no_cache = false;          // ignore the cache even when one is configured
  bool cache_given = false;       // --cache was on the command line
  ClusterArgs cluster;            // --workers, --nodes ...: the job goes through the coordinator
};

Error usage(const std::string& message) { return make_error(Errc::invalid_argument, message); }

Expected<std::pair<int, int>> parse_size(const std::string& text) {
  int w = 0, h = 0;
  char x = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0)
    return usage("--size must be WxH with positive integers, got '" + text + "'");
  return std::make_pair(w, h);
}

// Settings after the model's defaults are applied, validated against the model.
struct Plan {
  int frames, width, height, steps, fps;
  double guidance, shift;
  models::SolverKind solver;
};

// The clip-parallel options of a run (--mode clips).
pipeline::ClipsOptions clips_options(const GenerateArgs& a, const Plan& plan) {
  pipeline::ClipsOptions co;
  co.clips = a.clips;
  co.context_frames = a.context_frames;
  co.global_frames = a.global_frames;
  co.steps = plan.steps;
  co.shift = plan.shift;
  co.solver = plan.solver;
  co.guidance = plan.guidance;
  co.seed = a.seed;
  return co;
}

// Contact sheets hold at most this many frames (--sheet-every).
constexpr int kMaxSheetFrames = 256;

Expected<Plan> make_plan(const GenerateArgs& a, const models::T2VModel& m) {
  Plan p{a.frames.value_or(m.defaults.frames), m.defaults.width, m.defaults.height, a.steps.value_or(m.defaults.steps),
         a.fps.value_or(m.defaults.fps), a.guidance.value_or(m.defaults.guidance), a.shift.value_or(m.defaults.shift),
         m.defaults.solver};
  if (a.size) {
    auto s = parse_size(*a.size);
    if (!s) return s.error();
    std::tie(p.width, p.height) = *s;
  }
  if (a.solver) {
    auto s = models::parse_solver_kind(*a.solver);
    if (!s) return usage("--solver: " + s.error().message);
    p.solver = *s;
  }
  // A bad value the user gave is a usage error naming the flag; a bad default is the model file's.
  auto refuse = [&m](bool given, const std::string& flag, const std::string& what) -> Error {
    if (given) return usage(flag + " " + what);
    return make_error(Errc::corrupt_data, "model '" + m.name + "' (" + m.source + "): its default for " + flag +
                                              " " + what);
  };
  if (p.frames <= 0) return refuse(a.frames.has_value(), "--frames", "must be positive, got " + std::to_string(p.frames));
  if (p.steps <= 0) return refuse(a.steps.has_value(), "--steps", "must be positive, got " + std::to_string(p.steps));
  if (p.fps <= 0) return refuse(a.fps.has_value(), "--fps", "must be positive, got " + std::to_string(p.fps));
  if (!std::isfinite(p.guidance) || p.guidance < 0)
    return refuse(a.guidance.has_value(), "--guidance", "must be a number >= 0");
  if (!std::isfinite(p.shift) || p.shift <= 0) return refuse(a.shift.has_value(), "--shift", "must be a number > 0");
  const auto& c = m.dit->config();
  const int cell_w = static_cast<int>(c.patch[2]) * m.spatial_compression;
  const int cell_h = static_cast<int>(c.patch[1]) * m.spatial_compression;
  if (p.width % cell_w != 0 || p.height % cell_h != 0)
    return refuse(a.size.has_value(), "--size",
                  std::to_string(p.width) + "x" + std::to_string(p.height) + " must be a multiple of " +
                      std::to_string(cell_w) + "x" + std::to_string(cell_h) + " for model '" + m.name + "'");
  if (p.frames % c.patch[0] != 0)
    return refuse(a.frames.has_value(), "--frames",
                  std::to_string(p.frames) + " must be a multiple of " + std::to_string(c.patch[0]));
  if (a.mode == "fifo") {
    const int window = m.defaults.frames;
    const int queue = window * a.partitions;
    if (a.partitions < 1) return usage("--partitions must be at least 1");
    if (p.frames < window)
      return usage("--frames " + std::to_string(p.frames) + " is smaller than the model's window of " +
                   std::to_string(window) + " frames; use --mode standard");
    if (a.lookahead && window % 2 != 0) return usage("--lookahead needs an even window; use --no-lookahead");
    if (p.steps % queue != 0) {
      if (a.steps)  // asked for explicitly: say what fits
        return usage("--steps " + std::to_string(p.steps) + " must be a multiple of the FIFO queue length " +
                     std::to_string(queue) + " (window " + std::to_string(window) + " x partitions " +
                     std::to_string(a.partitions) + ")");
      p.steps = (p.steps + queue - 1) / queue * queue;  // the model's default, rounded up to fit
    }
  }
  if (a.mode != "fifo") {
    // Every mode but FIFO holds the whole video's latent (and its frames) at once. A length whose
    // latent alone is more than the machine's memory can only fail later, inside an allocation.
    const double frame_bytes = 4.0 * static_cast<double>(c.in_channels) * (p.height / m.spatial_compression) *
                                   (p.width / m.spatial_compression) + 3.0 * p.width * p.height;
    const double need = frame_bytes * p.frames;
    const double have = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    if (have > 0 && need > have) {
      char text[160];
      std::snprintf(text, sizeof text, "--frames %d needs at least %.1f GB in --mode %s, more than this machine's %.1f GB; "
                    "--mode fifo makes any length in constant memory", p.frames, need / 1e9, a.mode.c_str(), have / 1e9);
      return usage(text);
    }
  }
  if (a.mode == "clips") {  // before a job directory is made for it
    if (auto layout = pipeline::clips_layout(p.frames, clips_options(a, p)); !layout) return layout.error();
  }
  if (a.sheet_every > 0 && (p.frames + a.sheet_every - 1) / a.sheet_every > kMaxSheetFrames)
    return usage("--sheet-every " + std::to_string(a.sheet_every) + " puts " +
                 std::to_string((p.frames + a.sheet_every - 1) / a.sheet_every) + " frames on the sheet; at most " +
                 std::to_string(kMaxSheetFrames) + " fit");
  return p;
}

// The contact sheet: one row of the frames given, or with --sheet-every rows of 16.
Status write_sheet(const GenerateArgs& a, std::vector<video::Frame> frames) {
  if (a.sheet_every <= 0) return video::write_contact_sheet(a.sheet, {std::move(frames)});
  std::vector<std::vector<video::Frame>> rows;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (i % 16 == 0) rows.emplace_back();
    rows.back().push_back(std::move(frames[i]));
  }
  return video::write_contact_sheet(a.sheet, rows);
}

// Ctrl-C or SIGTERM during a long (fifo, clips) job: the handler only records the signal; the
// job stops at the next frame or step, saves a checkpoint when it has a job directory, and
// returns `cancelled`, so the writer removes its `<out>.part` and the process exits 128 + signal.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) { g_stop_signal = signal; }

class StopOnSignal {
 public:
  StopOnSignal() {
    g_stop_signal = 0;
    previous_int_ = std::signal(SIGINT, on_stop_signal);
    previous_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopOnSignal() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

 private:
  void (*previous_int_)(int) = SIG_DFL;
  void (*previous_term_)(int) = SIG_DFL;
};

Error interrupted(const GenerateArgs& a, bool saved) {
  return make_error(Errc::cancelled, std::string("interrupted (signal ") + std::to_string(g_stop_signal) + ")" +
                                         (saved ? "; continue with: reel generate --resume " + a.job_dir
                                                : a.job_dir.empty() ? "" : "; nothing was saved"));
}

// The output of the streaming modes (fifo, clips): frames arrive one at a time at model
// resolution, are upscaled and appended to a fragmented MP4 opened at the first frame (so
// `<out>.part` plays while it grows), and up to 16 evenly spaced ones (with --sheet-every N,
// frames 0, N, 2N, ...) go to the contact sheet.
class StreamingVideo {
 public:
  StreamingVideo(const GenerateArgs& a, const Plan& plan, std::vector<video::Frame>& sheet)
      : a_(a),
        every_(a.sheet_every > 0 ? a.sheet_every : std::max<int64_t>(1, plan.frames / 16)),
        most_(a.sheet_every > 0 ? kMaxSheetFrames : 16),
        sheet_(sheet) {
    mp4_.fps = plan.fps;
    mp4_.crf = a.crf;
    mp4_.fragmented = true;
    interp_ = a.upscale_filter == "bicubic" ? video::Interp::bicubic : video::Interp::nearest;
  }

  // Frame `index` of the video, at model resolution.
  Status add(int64_t index, const video::Frame& small) {
    video::Frame big = a_.upscale > 1 ? video::upscale(small, a_.upscale, interp_) : small;
    if (!writer_) {
      auto w = video::Mp4Writer::open(a_.out, big.width, big.height, mp4_);
      if (!w) return w.error();
      writer_.emplace(std::move(*w));
    }
    REEL_RETURN_IF_ERROR(writer_->append(big));
    if (!a_.sheet.empty() && index % every_ == 0 && sheet_.size() < most_) sheet_.push_back(std::move(big));
    return {};
  }

  [[nodiscard]] bool started() const { return writer_.has_value(); }
  Status finish() { return writer_->finish(); }

 private:
  const GenerateArgs& a_;
  video::Mp4Options mp4_;
  video::Interp interp_;
  int64_t every_;
  size_t most_;
  std::vector<video::Frame>& sheet_;
  std::optional<video::Mp4Writer> writer_;
};

// FIFO mode: frames stream to a fragmented MP4 as they leave the queue, so the growing
// <out>.part plays while it grows; memory stays constant whatever the length.
Expected<pipeline::FifoStats> generate_fifo(const GenerateArgs& a, const models::T2VModel& model, const Plan& plan,
                                            const pipeline::Conditioning& cond, std::vector<video::Frame>& sheet,
                                            bool resuming) {
  const auto& c = model.dit->config();
  pipeline::FifoOptions fo;
  fo.window_frames = model.defaults.frames;
  fo.partitions = a.partitions;
  fo.lookahead = a.lookahead;
  fo.steps = plan.steps;
  fo.shift = plan.shift;
  fo.solver = plan.solver;
  fo.guidance = plan.guidance;
  fo.seed = a.seed;
  const std::vector<int64_t> clip{1, c.in_channels, fo.window_frames, plan.height / model.spatial_compression,
                                  plan.width / model.spatial_compression};
  pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
  const bool job = !a.job_dir.empty();
  std::optional<pipeline::FifoQueue> queue;
  if (resuming) {
    auto state = load_fifo_state(a.job_dir, fo);
    if (!state) return state.error();
    auto q = pipeline::FifoQueue::from_state(std::move(*state));
    if (!q) return make_error(q.error().code, a.job_dir + ": " + q.error().message);
    queue.emplace(std::move(*q));
  } else {
    auto q = pipeline::FifoQueue::start(denoiser, cond, clip, fo);
    if (!q) return q.error();
    queue.emplace(std::move(*q));
  }

  StreamingVideo output(a, plan, sheet);
  // Keeps each frame in the job (for a resume) before it goes to the MP4.
  auto write = [&](int64_t index, const video::Frame& small) -> Status {
    if (job) REEL_RETURN_IF_ERROR(append_job_frame(a.job_dir, small));
    return output.add(index, small);
  };
  if (resuming) {  // the frames written before the checkpoint, re-encoded
    auto done = read_job_frames(a.job_dir, std::max<int64_t>(0, queue->head_frame()), plan.width, plan.height);
    if (!done) return done.error();
    for (size_t i = 0; i < done->size(); ++i) {
      // frames.rgb was cut to these frames; write() appends them again.
      if (auto st = write(static_cast<int64_t>(i), (*done)[i]); !st) return st.error();
    }
  }
  Progress progress("generating", "frames", !a.quiet && Progress::stderr_is_terminal());
  auto stats = queue->run(denoiser, cond, plan.frames, [&](int64_t index, const torch::Tensor& latent) -> Status {
    if (g_stop_signal != 0) {
      const bool save = job && a.checkpoint_every > 0 && index > 0;
      if (save) REEL_RETURN_IF_ERROR(save_fifo_state(a.job_dir, queue->state()));  // about to produce `index`
      return interrupted(a, save);
    }
    if (job && a.checkpoint_every > 0 && index > 0 && index % a.checkpoint_every == 0)
      REEL_RETURN_IF_ERROR(save_fifo_state(a.job_dir, queue->state()));  // about to produce `index`
    auto pixels = model.decoder->decode(latent);  // [1, 1, H, W, 3]
    if (!pixels) return pixels.error();
    REEL_RETURN_IF_ERROR(write(index, to_frames((*pixels)[0])[0]));
    progress.update(static_cast<int>(index + 1), plan.frames);
    return {};
  });
  progress.finish();
  if (!stats) return stats.error();
  if (!output.started()) return make_error(Errc::invalid_argument, "the job had already produced every frame");
  if (auto st = output.finish(); !st) return st.error();
  return stats;
}

// Clip-parallel mode: C clips denoised together with their neighbours' edge frames and a few
// frames of every clip as context; the clips are written in order once the last step is done.
// With a job directory the clips' state is saved every --checkpoint-every steps (and after the
// last), and a resumed job continues from that step (from the noise when none was saved yet).
Expected<pipeline::ClipsStats> generate_clips(const GenerateArgs& a, const models::T2VModel& model, const Plan& plan,
                                              const pipeline::Conditioning& cond, std::vector<video::Frame>& sheet,
                                              bool resuming) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& c = model.dit->config();
  const pipeline::ClipsOptions co = clips_options(a, plan);
  const std::vector<int64_t> shape{1, c.in_channels, plan.frames, plan.height / model.spatial_compression,
                                   plan.width / model.spatial_compression};
  const bool job = !a.job_dir.empty();
  std::optional<pipeline::VideoClips> clips;
  if (resuming) {
    std::vector<int64_t> clip_shape = shape;
    clip_shape[2] = plan.frames / std::max(1, co.clips);
    auto state = load_clips_state(a.job_dir, co, clip_shape);
    if (!state && state.error().code != Errc::not_found) return state.error();
    if (state) {
      auto v = pipeline::VideoClips::from_state(std::move(*state));
      if (!v) return make_error(Errc::corrupt_data, a.job_dir + ": " + v.error().message);
      clips.emplace(std::move(*v));
    }
  }
  if (!clips) {  // a new job, or one killed before its first checkpoint
    auto v = pipeline::VideoClips::start(shape, co);
    if (!v) return make_error(v.error().code, v.error().message);
    clips.emplace(std::move(*v));
  }
  const int first_step = clips->step_index();
  StreamingVideo output(a, plan, sheet);
  pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
  pipeline::DenoiserClipRunner runner(denoiser, cond, co.guidance, co.batch_clips);
  Progress progress("generating", "steps", !a.quiet && Progress::stderr_is_terminal());
  // Step by step (what VideoClips::run does), with a checkpoint between steps.
  while (!clips->done()) {
    REEL_RETURN_IF_ERROR(clips->step(runner));
    const int step = clips->step_index();
    const bool stop = g_stop_signal != 0;
    const bool save = job && a.checkpoint_every > 0;
    if (save && (step % a.checkpoint_every == 0 || clips->done() || stop))
      REEL_RETURN_IF_ERROR(save_clips_state(a.job_dir, clips->state()));
    if (stop) return interrupted(a, save);
    progress.update(step, plan.steps);
  }
  progress.finish();
  auto result = clips->run(runner, [&](int, int64_t first_frame, const torch::Tensor& latent) -> Status {
    auto pixels = model.decoder->decode(latent);  // [1, n, H, W, 3]
    if (!pixels) return pixels.error();
    auto frames = to_frames((*pixels)[0]);
    for (size_t i = 0; i < frames.size(); ++i)
      REEL_RETURN_IF_ERROR(output.add(first_frame + static_cast<int64_t>(i), frames[i]));
    return {};
  });  // no step is left: offers the clips, in order
  if (!result) return result.error();
  if (auto st = output.finish(); !st) return st.error();
  pipeline::ClipsStats stats = result->stats;
  stats.steps = clips->step_index() - first_step;
  stats.windows = stats.steps * co.clips;
  stats.model_calls = runner.model_calls();
  stats.model_rows = runner.model_rows();
  if (auto exchange = pipeline::clips_exchange(shape, co); exchange) stats.exchanged_bytes = stats.steps * exchange->bytes_per_step;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

// A job setting as text, for comparing what was given with what the job has.
std::string setting(const std::optional<int>& v) { return v ? std::to_string(*v) : "(the model's)"; }
std::string setting(const std::optional<std::string>& v) { return v ? *v : "(the model's)"; }
std::string setting(const std::optional<double>& v) {
  if (!v) return "(the model's)";
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", *v);
  return text;
}

// The options whose values a FIFO or clips job fixes (with --resume they may be given only with the
// job's values), each with its value as text.
struct JobOption {
  const char* name;
  std::string (*value)(const GenerateArgs&);
};
const JobOption kJobOptions[] = {
    {"--frames", [](const GenerateArgs& a) { return setting(a.frames); }},
    {"--steps", [](const GenerateArgs& a) { return setting(a.steps); }},
    {"--seed", [](const GenerateArgs& a) { return std::to_string(a.seed); }},
    {"--guidance", [](const GenerateArgs& a) { return setting(a.guidance); }},
    {"--shift", [](const GenerateArgs& a) { return setting(a.shift); }},
    {"--solver", [](const GenerateArgs& a) { return setting(a.solver); }},
    {"--size",
     [](const GenerateArgs& a) {
       if (!a.size) return setting(a.size);
       auto wh = parse_size(*a.size);
       return wh ? std::to_string(wh->first) + "x" + std::to_string(wh->second) : *a.size;
     }},
    {"--fps", [](const GenerateArgs& a) { return setting(a.fps); }},
    {"--out", [](const GenerateArgs& a) { return a.out; }},
    {"--upscale", [](const GenerateArgs& a) { return std::to_string(a.upscale); }},
    {"--upscale-filter", [](const GenerateArgs& a) { return a.upscale_filter; }},
    {"--crf", [](const GenerateArgs& a) { return std::to_string(a.crf); }},
    {"--mode", [](const GenerateArgs& a) { return a.mode; }},
    {"--clips", [](const GenerateArgs& a) { return std::to_string(a.clips); }},
    {"--context-frames", [](const GenerateArgs& a) { return std::to_string(a.context_frames); }},
    {"--global-frames", [](const GenerateArgs& a) { return std::to_string(a.global_frames); }},
    {"--partitions", [](const GenerateArgs& a) { return std::to_string(a.partitions); }},
    {"--lookahead", [](const GenerateArgs& a) { return std::string(a.lookahead ? "on" : "off"); }},
};

// reel generate --resume DIR: the settings come from the job; a prompt, --model or any other job
// setting given on the command line must be the job's (never silently replaced).
Expected<GenerateArgs> resume_args(const GenerateArgs& a, const Config& cfg) {
  auto job = read_job(a.resume);
  if (!job) return job.error();
  if (!a.prompt.empty() && a.prompt != job->prompt)
    return usage("job '" + a.resume + "' was started for the prompt '" + job->prompt + "', not '" + a.prompt + "'");
  GenerateArgs b = a;
  b.prompt = job->prompt;
  b.model = job->model;
  b.frames = job->frames;
  b.steps = job->steps;
  b.fps = job->fps;
  b.size = std::to_string(job->width) + "x" + std::to_string(job->height);
  b.guidance = job->guidance;
  b.shift = job->shift;
  b.solver = job->solver;
  b.seed = job->seed;
  b.crf = job->crf;
  b.upscale = job->upscale;
  b.upscale_filter = job->upscale_filter;
  b.out = job->out;
  b.mode = job->mode;  // "fifo" or "clips"
  b.partitions = job->partitions;
  b.lookahead = job->lookahead;
  b.clips = job->clips;
  b.context_frames = job->context_frames;
  b.global_frames = job->global_frames;
  b.job_dir = a.resume;
  b.checkpoint_every = job->checkpoint_every;
  for (const JobOption* option : a.given) {
    const std::string asked = option->value(a), has = option->value(b);
    if (asked != has)
      return usage("job '" + a.resume + "' was started with " + option->name + " " + has + ", not " + asked +
                   "; a resumed job keeps its settings");
  }
  if (a.model_given) {
    auto asked = models::open_model(a.model, cfg.zoo);
    if (!asked) return asked.error();
    if (asked->source != job->model_source)
      return usage("job '" + a.resume + "' was started with the model '" + job->model_source + "', not '" +
                   asked->source + "'");
  }
  return b;
}

// The job the coordinator runs for these arguments (settings resolved by make_plan).
actors::JobSpec job_spec(const GenerateArgs& a, const Plan& p) {
  actors::JobSpec s;
  s.prompt = a.prompt;
  s.model = a.model;
  s.mode = *actors::parse_job_mode(a.mode);  // CLI11 admits only the four modes
  s.frames = p.frames;
  s.width = p.width;
  s.height = p.height;
  s.steps = p.steps;
  s.guidance = p.guidance;
  s.shift = p.shift;
  s.solver = models::solver_kind_name(p.solver);
  s.seed = a.seed;
  s.fps = p.fps;
  s.crf = a.crf;
  s.upscale = a.upscale;
  s.upscale_filter = a.upscale_filter;
  s.out = a.out;
  s.sheet = a.sheet;
  s.partitions = a.partitions;
  s.lookahead = a.lookahead;
  s.clips = a.clips;
  s.context_frames = a.context_frames;
  s.global_frames = a.global_frames;
  s.cfg_parallel = a.cluster.cfg_parallel;
  s.stages = a.cluster.stages;
  s.patches = a.cluster.patches;
  s.warmup_steps = a.cluster.warmup_steps;
  s.split = a.cluster.split;
  s.tenant = a.cache.tenant;
  return s;
}

int run_generate(const GenerateArgs& given, const Config& cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  GenerateArgs a = given;
  const bool resuming = !given.resume.empty();
  if (resuming) {
    auto b = resume_args(given, cfg);
    if (!b) return report(b.error());
    a = std::move(*b);
  }
  if (!a.job_dir.empty() && a.mode != "fifo" && a.mode != "clips")
    return report(usage("--job-dir needs --mode fifo or --mode clips"));
  if (a.cache_given && a.mode != "standard") return report(usage("--cache works with --mode standard only"));
  if (a.checkpoint_every < 0) return report(usage("--checkpoint-every must be >= 0"));
  if (a.checkpoint_every > 0 && a.job_dir.empty()) return report(usage("--checkpoint-every needs --job-dir"));
  const bool on_cluster = cluster_requested(a.cluster) || a.mode == "pipefusion";  // stages are actors
  if (on_cluster) {
    if (auto st = check_cluster_args(a.cluster, a.mode); !st) return report(st.error());
    if (resuming || !a.job_dir.empty())
      return report(usage("--job-dir and --resume do not work with --workers, --nodes or --cfg-parallel; use --jobs"));
  }
  std::string prompt = a.prompt;
  if (prompt.find_first_not_of(" \t\n\r") == std::string::npos) return report(usage("the prompt is empty"));
  if (a.upscale < 1 || a.upscale > 16) return report(usage("--upscale must be 1 to 16"));
  if (a.upscale_filter != "nearest" && a.upscale_filter != "bicubic")
    return report(usage("--upscale-filter must be nearest or bicubic"));
  if (a.crf < 0 || a.crf > 51) return report(usage("--crf must be 0 to 51"));
  if (a.threads < 0) return report(usage("--threads must be >= 0"));
  if (a.sheet_every < 0) return report(usage("--sheet-every must be >= 0"));
  if (a.sheet_every > 0 && a.sheet.empty()) return report(usage("--sheet-every needs --sheet"));
  if (a.frames && *a.frames <= 0) return report(usage("--frames must be positive, got " + std::to_string(*a.frames)));
  if (a.steps && *a.steps <= 0) return report(usage("--steps must be positive, got " + std::to_string(*a.steps)));
  if (a.size) {
    if (auto s = parse_size(*a.size); !s) return report(s.error());
  }
  if (auto st = check_output(a.out, ".mp4", "output"); !st) return report(st.error());
  if (!a.sheet.empty()) {
    if (auto st = check_output(a.sheet, ".png", "contact sheet"); !st) return report(st.error());
  }
  if (auto st = set_threads(a.threads); !st) return report(st.error());

  auto model = models::open_model(a.model, cfg.zoo);
  if (!model) return report(model.error());
  auto plan = make_plan(a, *model);
  if (!plan) return report(plan.error());

  auto text = model->text_encoder->encode({prompt});  // [1, L, D]
  if (!text) return report(text.error());
  // Through the coordinator too, the prompt is encoded here first: unknown words are bad input
  // (exit 2) found before a job is submitted, not a failed job.
  if (on_cluster) {
    const auto spec = job_spec(a, *plan);
    if (auto st = check_pipefusion_plan(spec, *model); !st) return report(st.error());
    const bool cached = !a.cache.path.empty() && !a.no_cache && a.mode == "standard";
    return run_on_cluster(a.cluster, spec, a.threads, a.quiet, model->name, cfg, cached ? &a.cache : nullptr);
  }
  pipeline::Conditioning cond{*text, {}};
  if (plan->guidance != 1.0) cond.negative = torch::zeros_like(*text);  // unconditional: empty text

  if (!a.job_dir.empty() && !resuming) {  // fifo or clips
    auto checksum = model_checksum(model->source);
    if (!checksum) return report(checksum.error());
    LongJob job{prompt, a.model, model->source, *checksum, plan->frames, plan->width, plan->height, plan->steps,
                plan->fps, a.partitions, a.lookahead, plan->guidance, plan->shift,
                models::solver_kind_name(plan->solver), a.seed, a.crf, a.upscale, a.upscale_filter, a.out,
                a.checkpoint_every, a.mode, a.clips, a.context_frames, a.global_frames};
    if (auto st = create_job(a.job_dir, job); !st) return report(st.error());
  }
  if (resuming) {
    auto job = read_job(a.job_dir);
    auto checksum = model_checksum(model->source);
    if (!checksum) return report(checksum.error());
    if (job && *checksum != job->model_checksum)
      return report(usage("the weights of '" + model->source + "' changed since job '" + a.job_dir + "' started"));
  }

  std::optional<StopOnSignal> stop_on_signal;
  if (a.mode == "fifo" || a.mode == "clips") stop_on_signal.emplace();
  auto report_long = [&](const Error& e) {
    const int code = report(e);
    return g_stop_signal != 0 ? 128 + g_stop_signal : code;
  };
  if (a.mode == "fifo") {
    std::vector<video::Frame> sheet;
    auto stats = generate_fifo(a, *model, *plan, cond, sheet, resuming);
    if (!stats) return report_long(stats.error());
    if (!a.sheet.empty()) {
      if (auto st = write_sheet(a, std::move(sheet)); !st) return report(st.error());
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("reel: wrote %s (%d frames, fifo, %d steps, %lld model calls) with %s in %s; %.3f s/frame\n",
                a.out.c_str(), plan->frames, plan->steps, static_cast<long long>(stats->model_calls),
                model->name.c_str(), format_seconds(wall).c_str(), stats->seconds / plan->frames);
    return kExitOk;
  }

  if (a.mode == "clips") {
    std::vector<video::Frame> sheet;
    auto stats = generate_clips(a, *model, *plan, cond, sheet, resuming);
    if (!stats) return report_long(stats.error());
    if (!a.sheet.empty()) {
      if (auto st = write_sheet(a, std::move(sheet)); !st) return report(st.error());
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("reel: wrote %s (%d frames, %d clips, %d steps, %lld model calls, %.1f MB context exchanged) with %s "
                "in %s; %.3f s/frame\n",
                a.out.c_str(), plan->frames, a.clips, plan->steps, static_cast<long long>(stats->model_calls),
                static_cast<double>(stats->exchanged_bytes) / 1e6, model->name.c_str(), format_seconds(wall).c_str(),
                stats->seconds / plan->frames);
    return kExitOk;
  }

  pipeline::SampleOptions opts;
  opts.steps = plan->steps;
  opts.shift = plan->shift;
  opts.solver = plan->solver;
  opts.guidance = plan->guidance;
  opts.seed = a.seed;
  const auto& c = model->dit->config();
  std::vector<int64_t> shape{1, c.in_channels, plan->frames, plan->height / model->spatial_compression,
                             plan->width / model->spatial_compression};
  pipeline::DiTDenoiser denoiser(model->dit, model->prediction);
  std::unique_ptr<cachestore::ApproxCache> cache;
  cachestore::CompatKey key;
  if (!a.cache.path.empty() && !a.no_cache) {
    auto opened = open_cache(a.cache, &*model);
    if (!opened) return report(opened.error());
    cache = std::move(*opened);
    auto weights = model_checksum(model->source);
    if (!weights) return report(weights.error());
    key = compat_key(*model, *weights, opts, shape, a.cache.tenant);
  }
  Progress progress("generating", "steps", !a.quiet && Progress::stderr_is_terminal());
  auto cached = sample_cached(denoiser, *model, cond, shape, opts, cache.get(), key, prompt, true,
                              [&](int done, int total) { progress.update(done, total); });
  progress.finish();
  if (!cached) return report(cached.error());
  if (cached->insert_error) {
    std::fprintf(stderr, "reel: warning: cache insert failed: %s\n", cached->insert_error->message.c_str());
  }
  auto* result = &cached->result;

  auto pixels = model->decoder->decode(result->latent);  // [1, F, H, W, 3]
  if (!pixels) return report(pixels.error());
  auto interp = a.upscale_filter == "bicubic" ? video::Interp::bicubic : video::Interp::nearest;
  auto frames = to_frames((*pixels)[0], a.upscale, interp);

  video::Mp4Options mp4;
  mp4.fps = plan->fps;
  mp4.crf = a.crf;
  auto writer = video::Mp4Writer::open(a.out, frames[0].width, frames[0].height, mp4);
  if (!writer) return report(writer.error());
  for (const auto& f : frames)
    if (auto st = writer->append(f); !st) return report(st.error());
  if (auto st = writer->finish(); !st) return report(st.error());
  if (!a.sheet.empty()) {
    std::vector<video::Frame> picked;
    for (size_t i = 0; i < frames.size(); ++i)
      if (a.sheet_every <= 0 || i % static_cast<size_t>(a.sheet_every) == 0) picked.push_back(frames[i]);
    if (auto st = write_sheet(a, std::move(picked)); !st) return report(st.error());
  }

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("reel: wrote %s (%d frames, %dx%d, %d fps) with %s in %s; %lld model calls, %.3f s/step\n",
              a.out.c_str(), plan->frames, frames[0].width, frames[0].height, plan->fps, model->name.c_str(),
              format_seconds(wall).c_str(), static_cast<long long>(result->stats.model_calls),
              result->stats.seconds / std::max<int64_t>(1, result->stats.model_calls));
  if (cache) {
    if (cached->hit) {
      std::string from;
      for (const auto& s : cached->sources) from += (from.empty() ? "'" : ", '") + s + "'";
      std::printf("reel: cache hit (%s, similarity %.3f): started at step %d of %d from %s\n",
                  cachestore::hit_kind_name(*cached->hit), cached->similarity, cached->start_step, plan->steps,
                  from.c_str());
    } else {
      std::printf("reel: cache miss; stored latents at steps");
      for (int s : cache->capture_steps(plan->steps)) std::printf(" %d", s);
      std::printf(" in %s\n", a.cache.path.c_str());
    }
  }
  return kExitOk;
}

}  // namespace

Command add_generate(CLI::App& app, const Config& cfg) {
  auto a = std::make_shared<GenerateArgs>();
  a->model = cfg.model;
  a->frames = cfg.frames;
  a->steps = cfg.steps;
  a->fps = cfg.fps;
  a->size = cfg.size;
  a->solver = cfg.solver;
  a->guidance = cfg.guidance;
  a->shift = cfg.shift;
  a->seed = cfg.seed;
  a->out = cfg.out;
  a->upscale = cfg.upscale;
  a->upscale_filter = cfg.upscale_filter;
  a->crf = cfg.crf;
  a->threads = cfg.threads;
  a->cache = cache_args(cfg);

  auto* sub = app.add_subcommand("generate", "generate a video from a text prompt");
  sub->add_option("prompt", a->prompt, "what the video shows (optional with --resume)");
  auto* model_opt = sub->add_option("--model,-m", a->model, "zoo name or .safetensors path (see 'reel models')")
      ->envname("REEL_MODEL")->capture_default_str();
  sub->add_option("--frames,-f", a->frames, "video length in frames; default: the model's")->envname("REEL_FRAMES");
  sub->add_option("--steps,-s", a->steps, "solver steps; default: the model's")->envname("REEL_STEPS");
  sub->add_option("--seed", a->seed, "seed of the initial noise")->check(CLI::NonNegativeNumber)->envname("REEL_SEED")->capture_default_str();
  sub->add_option("--guidance,-g", a->guidance, "classifier-free guidance scale (1 = off); default: the model's")
      ->envname("REEL_GUIDANCE");
  sub->add_option("--shift", a->shift, "sigma shift of the schedule; default: the model's")->envname("REEL_SHIFT");
  sub->add_option("--solver", a->solver, "euler, unipc or dpmpp; default: the model's")->envname("REEL_SOLVER");
  sub->add_option("--size", a->size, "WxH in model pixels; default: the model's")->envname("REEL_SIZE");
  sub->add_option("--fps", a->fps, "frames per second of the video; default: the model's")->envname("REEL_FPS");
  sub->add_option("--out,-o", a->out, "output MP4 (written via a temporary, renamed at the end)")
      ->envname("REEL_OUT")->capture_default_str();
  sub->add_option("--sheet", a->sheet, "also write a contact sheet PNG of the frames");
  sub->add_option("--sheet-every", a->sheet_every,
                  "contact sheet of frames 0, N, 2N, ... in rows of 16 (at most 256 frames); "
                  "0 = all frames (standard) or 16 evenly spaced (fifo, clips)")
      ->capture_default_str();
  sub->add_option("--upscale", a->upscale, "integer upscaling of the written frames")
      ->envname("REEL_UPSCALE")->capture_default_str();
  sub->add_option("--upscale-filter", a->upscale_filter, "nearest or bicubic")->capture_default_str();
  sub->add_option("--crf", a->crf, "x264 constant rate factor (0-51)")->envname("REEL_CRF")->capture_default_str();
  sub->add_option("--threads,-t", a->threads, "compute threads (0 = all cores)")
      ->envname("REEL_THREADS")->capture_default_str();
  sub->add_flag("--quiet,-q", a->quiet, "no progress bar");
  sub->add_option("--mode", a->mode,
                  "standard (one window), fifo (any length, constant memory, streamed), clips (clip-parallel) or "
                  "pipefusion (one window, the model's blocks over --stages stage actors)")
      ->check(CLI::IsMember({"standard", "fifo", "clips", "pipefusion"}))->capture_default_str();
  sub->add_option("--clips", a->clips, "clips: clips the video is split into (a divisor of --frames)")
      ->capture_default_str();
  sub->add_option("--context-frames", a->context_frames, "clips: neighbour frames per side")->capture_default_str();
  sub->add_option("--global-frames", a->global_frames, "clips: frames taken from every clip")->capture_default_str();
  sub->add_option("--partitions", a->partitions, "FIFO: windows in the queue (queue = window x partitions frames)")
      ->capture_default_str();
  sub->add_flag("--lookahead,!--no-lookahead", a->lookahead, "FIFO: half-overlapping windows (default on)");
  sub->add_option("--job-dir", a->job_dir, "FIFO, clips: job directory for checkpoints (see --resume)");
  sub->add_option("--checkpoint-every", a->checkpoint_every,
                  "checkpoint into --job-dir every K frames (FIFO) or every K steps (clips); 0 = never")
      ->capture_default_str();
  sub->add_option("--resume", a->resume,
                  "continue the FIFO or clips job in this directory (its settings are used): the same video as "
                  "an uninterrupted run");
  auto* cache_opt = sub->add_option("--cache", a->cache.path,
                                    "standard: approximate cache directory (RocksDB); default: cache.path of the config")
                         ->envname("REEL_CACHE");
  sub->add_flag("--no-cache", a->no_cache, "standard: do not use the cache, even when one is configured");
  add_cache_options(sub, a->cache);
  add_cluster_options(sub, a->cluster);
  return [a, sub, model_opt, cache_opt, &cfg] {
    a->model_given = model_opt->count() > 0;
    a->given.clear();
    for (const JobOption& option : kJobOptions)
      if (sub->get_option(option.name)->count() > 0) a->given.push_back(&option);
    a->cache_given = cache_opt->count() > 0;
    return run_generate(*a, cfg);
  };
}

}  // namespace reel::cli
