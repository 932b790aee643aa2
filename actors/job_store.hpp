// Jobs as the system remembers them: what was asked (JobSpec), how far it got (JobRecord), kept
// in RocksDB in a directory so that an accepted job survives a crash or a restart of the process
// (step 1 of "the path of one job": a job is written here before anything runs).
//
// On disk. Keys "job:<20-digit id>" hold one record each as "<16 hex digits> <json>", the hex
// being codecs::checksum64 of the JSON seeded with the id: a flipped byte, a truncated value or
// a record copied under another key reads as corrupt_data naming the id, never as a wrong job.
// "meta:next_id" holds the next id; a record and the counter change in one WriteBatch, so ids
// are monotonic across reopen and never reused.
//
// JobStore is a plain class (thread-safe); job_store_actor wraps one in a detached actor,
// because RocksDB blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "base/expected.hpp"

namespace reel::actors {

// How a job denoises (DESIGN.md, step 3).
enum class JobMode : int32_t {
  standard = 0,  // every frame at one noise level, one model call per step (CFG on two workers optional)
  fifo = 1,      // diagonal queue, any length, frames streamed as they pop
  clips = 2,     // clip-parallel with context exchange
  pipefusion = 3,  // one window, the DiT's blocks split over N stage actors, patch pipelined
};

enum class JobState : int32_t {
  queued = 0,     // accepted and recorded; not started (or to be started again after a restart)
  running = 1,
  done = 2,       // the output file is complete (JobRecord::result)
  failed = 3,     // JobRecord::error says why; no output file
  cancelled = 4,  // stopped on request; no output file
};

[[nodiscard]] const char* to_string(JobMode mode);
[[nodiscard]] const char* to_string(JobState state);
// "standard", "fifo", "clips" -> JobMode; invalid_argument otherwise.
[[nodiscard]] Expected<JobMode> parse_job_mode(const std::string& text);
// done, failed and cancelled: a job in one of these never changes again.
[[nodiscard]] bool is_final(JobState state);

// What a job asks for. Zero (or empty) fields take the model's default where noted; the
// coordinator resolves them and records the resolved spec when the job starts.
struct JobSpec {
  std::string prompt;
  std::string model;  // zoo name or .safetensors path, opened by the coordinator and every worker
  JobMode mode = JobMode::standard;
  int32_t frames = 0;     // video length in frames; 0: the model's
  int32_t width = 0;      // model pixels; 0: the model's (width and height together)
  int32_t height = 0;
  int32_t steps = 0;      // solver steps; 0: the model's (fifo: rounded up to the queue length)
  double guidance = -1;   // classifier-free guidance scale; < 0: the model's
  double shift = 0;       // sigma shift; <= 0: the model's
  std::string solver;     // euler, unipc or dpmpp; "": the model's
  uint64_t seed = 0;
  int32_t fps = 0;        // 0: the model's
  int32_t crf = 18;       // x264 constant rate factor, 0..51
  int32_t upscale = 1;    // integer upscaling of the written frames, 1..16
  std::string upscale_filter = "nearest";  // nearest or bicubic
  std::string out;        // the MP4 to write (via <out>.part, renamed when complete)
  std::string sheet;      // a contact sheet PNG to write as well; "": none
  int32_t partitions = 1;     // fifo: windows in the queue
  bool lookahead = true;      // fifo: half-overlapping windows
  int32_t clips = 2;          // clips: clips the video is split into
  int32_t context_frames = 2; // clips: neighbour frames per side
  int32_t global_frames = 1;  // clips: frames from every clip
  bool cfg_parallel = false;  // standard: conditional and unconditional halves on two workers
  int32_t stages = 2;         // pipefusion: stage actors (N), each a contiguous range of blocks
  int32_t patches = 4;        // pipefusion: patches of the token sequence (M)
  int32_t warmup_steps = 1;   // pipefusion: synchronous full-sequence steps first (W)
  std::string split = "frames";  // pipefusion: patches cut by "frames" or "rows"
  std::string tenant;         // who submitted it (reel serve) and, standard with a cache, the namespace of the
                              // entries it uses and adds; "" shared
  std::string negative_prompt;  // what guidance steers away from; "": the empty prompt
  bool cache = true;          // standard: use the coordinator's approximate cache when it has one
  uint64_t extends = 0;       // fifo: the completed FIFO job whose video this one continues (its frames first,
                              // then its queue goes on with this prompt); 0: none
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, JobSpec& x) {
  return f(caf::meta::type_name("reel.JobSpec"), x.prompt, x.model, x.mode, x.frames, x.width, x.height,
           x.steps, x.guidance, x.shift, x.solver, x.seed, x.fps, x.crf, x.upscale, x.upscale_filter, x.out,
           x.sheet, x.partitions, x.lookahead, x.clips, x.context_frames, x.global_frames, x.cfg_parallel,
           x.stages, x.patches, x.warmup_steps, x.split, x.tenant, x.negative_prompt, x.cache, x.extends);
}

struct JobStats {
  int64_t model_calls = 0;     // model calls the workers completed for this job
  int64_t frames = 0;          // frames written
  double seconds = 0.0;        // wall time of the run: conditioning, denoising, decoding, encoding
  double sample_seconds = 0.0; // of which in the denoising algorithm
  int64_t sent_bytes = 0;      // tensor bytes sent to workers
  int64_t received_bytes = 0;  // tensor bytes received from them
  int64_t redispatched = 0;    // calls re-run because a worker was lost
  int32_t workers = 0;         // live workers when the job ended
  int32_t replans = 0;         // pipefusion: restarts on the stages left after a node was lost
  int32_t cache_start_step = 0;  // standard with a cache: the step a hit started at; 0 = none
  std::string cache_hit;       // "" (no cache or a miss), "whole" or "composed"
  double cache_similarity = 0; // of the hit
  int64_t resumed_frames = 0;  // fifo: frames taken from the checkpoint of an earlier attempt, not made again
  int32_t resumed_steps = 0;   // clips: the step the checkpoint of an earlier attempt had reached
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, JobStats& x) {
  return f(caf::meta::type_name("reel.JobStats"), x.model_calls, x.frames, x.seconds, x.sample_seconds,
           x.sent_bytes, x.received_bytes, x.redispatched, x.workers, x.replans,
           x.cache_start_step, x.cache_hit, x.cache_similarity, x.resumed_frames, x.resumed_steps);
}

struct JobRecord {
  uint64_t id = 0;
  JobSpec spec;
  JobState state = JobState::queued;
  int64_t done = 0;     // steps (standard, clips) or frames (fifo) done
  int64_t total = 0;    // of that many; 0 until the job starts
  std::string result;   // the output path once done
  std::string error;    // why it failed
  JobStats stats;
  int64_t created_ms = 0;   // Unix time in milliseconds
  int64_t started_ms = 0;   // of the latest attempt; 0: never started
  int64_t finished_ms = 0;  // 0: not finished
  int32_t attempts = 0;     // runs started; a job resumed after a restart counts again
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, JobRecord& x) {
  return f(caf::meta::type_name("reel.JobRecord"), x.id, x.spec, x.state, x.done, x.total, x.result, x.error,
           x.stats, x.created_ms, x.started_ms, x.finished_ms, x.attempts);
}

// A record as the JSON stored on disk, and back. job_from_json checks every field's type and
// range; errors are corrupt_data naming the field.
[[nodiscard]] std::string job_to_json(const JobRecord& record);
[[nodiscard]] Expected<JobRecord> job_from_json(std::string_view json);

// Milliseconds since the Unix epoch, now.
[[nodiscard]] int64_t unix_ms_now();

// Every record in the store, in id order, and an error (corrupt_data, naming the id) for each
// one that could not be read.
struct JobScan {
  std::vector<JobRecord> records;
  std::vector<Error> corrupt;
};

class JobStore {
 public:
  // Opens the store in `dir`, creating it (and the folder) when missing. Errors: io_error when
  // RocksDB cannot open it (not writable, or held by another process), corrupt_data when its
  // id counter is unreadable.
  [[nodiscard]] static Expected<std::unique_ptr<JobStore>> open(const std::string& dir);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Records a new job: the next id, state queued, created now. Synced to disk before it
  // returns. Errors: io_error.
  [[nodiscard]] Expected<JobRecord> create(const JobSpec& spec);
  // Overwrites record.id's record. Final states are synced; progress is not (a crash loses at
  // most the latest progress, never a job). Errors: not_found when no job has that id, io_error.
  [[nodiscard]] Status put(const JobRecord& record);
  // Errors: not_found, corrupt_data naming the id, io_error.
  [[nodiscard]] Expected<JobRecord> get(uint64_t id) const;
  // Errors: io_error when the store cannot be iterated; unreadable records are listed in corrupt.
  [[nodiscard]] Expected<JobScan> scan() const;
  // Removes id's record (synced). Errors: not_found when no job has that id, io_error.
  [[nodiscard]] Status erase(uint64_t id);
  // The id the next create() assigns.
  [[nodiscard]] uint64_t next_id() const;
  [[nodiscard]] const std::string& dir() const;

  // Fault injection (tests): stores `value` verbatim as job `id`'s record.
  [[nodiscard]] Status write_raw(uint64_t id, std::string_view value);

 private:
  struct Impl;
  explicit JobStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Errors cross actors as caf::error of category "reel": the code is the Errc, the context the
// message, so a caller on the other side of a message (or a network) gets the same Error back.
[[nodiscard]] caf::error to_caf_error(const Error& error);
// A "reel" error as it was sent; any other CAF error (a dead or unreachable receiver, a timeout)
// as io_error, other CAF errors as internal, with CAF's rendering as the message.
[[nodiscard]] Error from_caf_error(const caf::error& error);

using job_create_atom = caf::atom_constant<caf::atom("jobcreate")>;
using job_put_atom = caf::atom_constant<caf::atom("jobput")>;
using job_get_atom = caf::atom_constant<caf::atom("jobget")>;
using job_list_atom = caf::atom_constant<caf::atom("joblist")>;
using job_erase_atom = caf::atom_constant<caf::atom("joberase")>;

// The job store in a detached actor of its own. Replies are JobStore's results; errors are
// to_caf_error of JobStore's.
//  - create: JobStore::create, replies with the new record;
//  - put: JobStore::put, replies with the id;
//  - get: JobStore::get;
//  - list: JobStore::scan: the records, and one message per corrupt record;
//  - erase: JobStore::erase, replies with the id.
using job_store_actor = caf::typed_actor<
    caf::replies_to<job_create_atom, JobSpec>::with<JobRecord>,
    caf::replies_to<job_put_atom, JobRecord>::with<uint64_t>,
    caf::replies_to<job_get_atom, uint64_t>::with<JobRecord>,
    caf::replies_to<job_list_atom>::with<std::vector<JobRecord>, std::vector<std::string>>,
    caf::replies_to<job_erase_atom, uint64_t>::with<uint64_t>>;

// Opens the store in `dir` (errors as JobStore::open) and spawns its actor, which owns it.
[[nodiscard]] Expected<job_store_actor> spawn_job_store(caf::actor_system& system, const std::string& dir);

}  // namespace reel::actors
