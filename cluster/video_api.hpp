// The video API of `reel serve`, in the shape of OpenAI's /v1/videos (what vLLM-Omni and SGLang
// Diffusion serve too), over a coordinator (actors/coordinator.hpp), which runs the jobs, keeps
// them in its RocksDB job store and, after a restart, runs again every job it had accepted.
//
//   POST   /v1/videos                 create (JSON, multipart/form-data or url-encoded fields)
//   GET    /v1/videos                 list (after, limit, order)
//   GET    /v1/videos/{id}            the video object: status, progress, frames, cache hit
//   DELETE /v1/videos/{id}            stops a running job within a step or frame, removes its
//                                     files and its record
//   GET    /v1/videos/{id}/content    the MP4 (Range); while a long job runs, the fragmented MP4
//                                     written so far; ?variant=thumbnail|spritesheet: PNGs
//   GET    /v1/videos/{id}/events     server-sent events: the object at every step or frame
//   POST   /v1/videos/extensions      a completed FIFO video continued with a new prompt: its
//                                     frames, then its queue goes on (video_id or video[id],
//                                     prompt, seconds or num_frames)
//   GET    /health, /metrics          liveness; Prometheus text (jobs by state, queue, latency)
//
// Errors are OpenAI's shape, {"error": {"message", "type", "param", "code"}}: 400 naming the bad
// field (a prompt with words the model does not know lists them), 401 without a valid token, 404
// for another tenant's job or an unknown one, 409 for content that is not ready, 429 with
// Retry-After when the queue is full.
//
// Tenants. Bearer tokens map to tenants; a tenant sees only its own jobs, and its standard jobs
// use only its own namespace of the approximate cache. With no tokens configured the API
// answers loopback clients only, as one tenant.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/coordinator.hpp"
#include "cluster/http_server.hpp"

namespace reel::cluster {

struct VideoApiOptions {
  std::string data_dir;                       // outputs go to DATA/videos
  std::string checkpoint_dir;                 // the coordinator's (a folder per job id): removed with the job
  std::string zoo = "models/zoo";             // where model names are opened (validation)
  std::string default_model = "shapes-m";     // when a request names none
  std::map<std::string, std::string> tokens;  // bearer token -> tenant; empty: loopback only, one tenant
  int queue = 16;                             // jobs queued or running at most; beyond: 429
  int64_t retention_s = 7 * 24 * 3600;        // ended jobs (records and files) are kept this long
  int upscale = 4;                            // when a request gives no size: the model's size times this
  int crf = 18;
  std::string upscale_filter = "nearest";
  uint64_t seed = 0;                          // when a request gives none
  std::function<void(const std::string&)> log;  // one line per event worth a log; default: none
};

class VideoApi {
 public:
  // Creates DATA/videos. io_error when it cannot be created.
  [[nodiscard]] static Expected<std::unique_ptr<VideoApi>> create(caf::actor_system& system,
                                                                  actors::coordinator_actor coordinator,
                                                                  VideoApiOptions options);
  ~VideoApi();
  VideoApi(const VideoApi&) = delete;
  VideoApi& operator=(const VideoApi&) = delete;

  // Answers one request; safe to call from many threads at once.
  [[nodiscard]] HttpAnswer handle(const HttpRequest& request);

  // Forgets ended jobs older than the retention, with their files; returns how many. Also run
  // by a thread of the API once a minute.
  int sweep();

 private:
  struct Impl;
  explicit VideoApi(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "video_<id>" <-> id; nullopt for anything else.
[[nodiscard]] std::string video_id(uint64_t id);
[[nodiscard]] std::optional<uint64_t> parse_video_id(const std::string& text);

// The model size and integer upscale that make an output of `width` x `height`, for a model
// whose sizes are multiples of `cell_w` x `cell_h` and whose own size is `model_w` x `model_h`:
// the factor whose model size is nearest the model's own (by area; ties: the larger factor).
// invalid_argument listing sizes it can make when none fits.
struct SizePlan {
  int width = 0, height = 0, upscale = 1;  // model pixels and the factor
};
[[nodiscard]] Expected<SizePlan> plan_size(int width, int height, int model_w, int model_h, int cell_w, int cell_h);

}  // namespace reel::cluster
