// The coordinator: the job API (submit -> id, status, cancel, subscribe to progress) over a pool
// of workers, local or on remote nodes. It follows "the path of one job" (DESIGN.md):
//  1. submit writes the job to the job store before anything runs, then replies with its id;
//  2. standard jobs, when the coordinator has a cache-store actor (CoordinatorOptions::cache),
//     ask it for a start point: a hit starts at its step from the cached latent; after
//     sampling, the latents at the cache's capture steps are inserted (actors/cache_job.hpp);
//  3. the job's mode picks the plan: standard (optionally CFG on two workers), fifo, clips, or
//     pipefusion (the DiT's blocks split over N stage actors placed on the stage hosts);
//  4. workers run the model calls (actors::WorkerPool); the coordinator side encodes the
//     prompt and decodes latents to frames with the model's text encoder and decoder;
//  5. frames go to an encoder actor as they are produced (FIFO: one per iteration);
//  6. the record gets its result path and statistics.
//
// Threads. The coordinator actor only routes messages and is the one writer of job records.
// Jobs run one at a time, in submission order, on a runner of their own (a blocking actor, so
// model calls, decoding and encoding never hold up the cooperative scheduler); the runner owns
// the WorkerPool, which is used from that one thread.
//
// Restart. On start the coordinator reads the store and runs again, before anything new, every
// job recorded as queued or running (a running one was interrupted by a crash or a shutdown:
// it starts over, as attempt n + 1). Shutting the coordinator down (an exit message, or its last
// handle gone) stops the runner between two steps and leaves the job recorded as running, so
// the next coordinator over the same store picks it up.
//
// The job store gets every change of a job's state at once and its progress at most once a
// second; subscribers get every step.
//
// Cancellation stops a job between two steps (standard, clips, pipefusion) or two frames
// (fifo): the record ends cancelled and no output file is left.
//
// Losing a machine. Workers: the pool re-runs a lost worker's calls on the workers left, so a
// job goes on where it was. PipeFusion: each job asks the stage hosts (nodes) for N fresh stage
// actors, round-robin, and stops them when it ends. When a stage fails mid-job, the runner asks
// every host whether it still answers; if some host was lost and one is left, the job is planned
// again over the hosts left (the same N stages, more on each) and sampled again from its first
// step (JobStats::replans counts this). The same N, M, W and thread count give the same latent,
// so the video is the one an undisturbed run makes. A failure with every host still answering
// ends the job failed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <torch/types.h>

#include "actors/cache_actor.hpp"
#include "actors/encoder.hpp"
#include "actors/handles.hpp"
#include "actors/job_store.hpp"
#include "actors/worker_pool.hpp"

namespace reel::models {
struct T2VModel;
}

namespace reel::actors {

// What a subscriber hears about a job: every change of state and every step or frame done.
struct JobEvent {
  uint64_t id = 0;
  JobState state = JobState::queued;
  int64_t done = 0;     // steps (standard, clips) or frames (fifo) done
  int64_t total = 0;    // of that many; 0 until the job starts
  std::string message;  // done: the output path; failed: the error; otherwise empty
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, JobEvent& x) {
  return f(caf::meta::type_name("reel.JobEvent"), x.id, x.state, x.done, x.total, x.message);
}

using submit_atom = caf::atom_constant<caf::atom("submit")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using job_event_atom = caf::atom_constant<caf::atom("jobevent")>;
using job_update_atom = caf::atom_constant<caf::atom("jobupdate")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using erase_atom = caf::atom_constant<caf::atom("erase")>;

// The coordinator's protocol. Errors are to_caf_error of a reel Error (from_caf_error gets it
// back).
//  - submit: records the job (queued) and replies with its id once it is on disk; the job runs
//    when the jobs before it are done. invalid_argument for an empty prompt or output path;
//    the store's errors;
//  - status: the job's record. not_found for an unknown id;
//  - cancel: true when the job was queued or running (it ends cancelled), false when it had
//    already ended. not_found for an unknown id;
//  - subscribe: replies with the job's record now; then the SENDER receives
//    (job_event_atom, JobEvent) for every change until, and including, the event with a final
//    state (done, failed, cancelled). Subscribing to a job that has ended sends that final
//    event at once. not_found for an unknown id;
//  - list: every job it knows (the store's, and those submitted since), in id order;
//  - erase: forgets a job that has ended (done, failed or cancelled): its record leaves the store
//    and the coordinator (its files are the caller's to remove). invalid_argument for a job that
//    has not ended, not_found for an unknown id;
//  - jobupdate: what the coordinator's own runner reports; nobody else sends it.
using coordinator_actor = caf::typed_actor<
    caf::replies_to<submit_atom, JobSpec>::with<uint64_t>,
    caf::replies_to<status_atom, uint64_t>::with<JobRecord>,
    caf::replies_to<cancel_atom, uint64_t>::with<bool>,
    caf::replies_to<subscribe_atom, uint64_t>::with<JobRecord>,
    caf::replies_to<list_atom>::with<std::vector<JobRecord>>,
    caf::replies_to<erase_atom, uint64_t>::with<uint64_t>,
    caf::reacts_to<job_update_atom, JobRecord>>;

// Fills the spec's unset fields with the model's defaults and checks it against the model, the
// check the runner makes before a job runs: invalid_argument saying what is wrong (an empty
// prompt or output path, sizes the model cannot make, FIFO steps that do not fit the queue, a
// PipeFusion plan the model cannot be split into, ...).
[[nodiscard]] Expected<JobSpec> resolve_job(JobSpec spec, const models::T2VModel& model);

// Called on the runner's thread with each latent the job decodes, in order: standard and
// pipefusion, the whole video [1, C, F, H, W] (first_frame 0); fifo, each frame as it pops
// [1, C, 1, H, W]; clips, each clip [1, C, n, H, W]. For tests and benchmarks in this process: the latent is the
// job's own tensor, read-only.
using LatentObserver = std::function<void(uint64_t job, int64_t first_frame, const torch::Tensor& latent)>;

// A node the coordinator may place PipeFusion stages on: spawn_node (this process) or
// connect_node (a `reel node` process).
struct StageHost {
  node_actor node;
  std::string name;  // how stage names and errors call it, e.g. "HOST:PORT" or "local"
};

struct CoordinatorOptions {
  // Where the coordinator opens a job's model (its text encoder and decoder). Workers resolve
  // the same name in their own node's zoo, and a job fails when the weights differ. Default
  // "models/zoo".
  std::string zoo = "models/zoo";
  // LibTorch threads each worker computes with (ModelSpec::threads), >= 1. Default 1.
  int worker_threads = 1;
  // LibTorch threads of the runner (text encoding, decoding); 0 leaves LibTorch's default.
  // Default 0.
  int runner_threads = 0;
  // Longest wait for any one model call's output; zero: no bound. Default none.
  std::chrono::milliseconds worker_timeout{0};
  // Where PipeFusion jobs place their stages, stage i on host i mod hosts; empty: a node in
  // this process. Default empty.
  std::vector<StageHost> stage_hosts;
  // LibTorch threads of each PipeFusion stage; 0: worker_threads. Default 0.
  int stage_threads = 0;
  // The approximate cache every standard job looks up and adds to (open_cache_store; shared
  // with other coordinators and `reel generate --cache` through its directory); none: no
  // cache. A lookup that fails is a miss (the job runs from noise, with a warning); a failed
  // insert is a warning. Default none.
  cache_store_actor cache;
  // How long a stage host may take to answer "are you there" after a stage failed. Default 5 s.
  std::chrono::milliseconds host_timeout{5000};
  // Where FIFO and clips jobs keep their checkpoints, a folder per job id (jobs/checkpoint.hpp),
  // so that a job run again after a crash or a shutdown continues from its last checkpoint
  // instead of its first frame or step; the folder is removed when the job ends. "": none (such
  // a job starts over). Default "".
  std::string checkpoint_dir;
  // Frames (FIFO) or steps (clips) between two checkpoints, >= 1. Default 8.
  int checkpoint_every = 8;
  // With a checkpoint_dir: a FIFO job that completes keeps its folder, with the queue's last
  // state, so that a later job can continue its video (JobSpec::extends); the folder goes when
  // the job is erased. Default false.
  bool keep_fifo_ends = false;
  // Called on the runner's thread; see LatentObserver. Default none.
  LatentObserver on_latent;
  // Problems found at start (unreadable records) and job store writes that failed; default:
  // printed to stderr as "reel: warning: ...".
  std::function<void(const std::string&)> warn;
};

// Spawns a coordinator over `store` (spawn_job_store) and `workers` (spawn_node +
// request_workers, or connect_node + request_workers). The coordinator owns the workers: they
// are stopped when it stops. It first re-runs the store's queued and running jobs (see the top
// of this file). Errors: invalid_argument for no workers or worker_threads < 1.
[[nodiscard]] Expected<coordinator_actor> spawn_coordinator(caf::actor_system& system, job_store_actor store,
                                                            std::vector<PoolMember> workers,
                                                            CoordinatorOptions options);

// Registers the payload types and handles of job_store.hpp, encoder.hpp and this file (JobSpec,
// JobStats, JobRecord, JobEvent, WireFrame, EncodeSpec, job_store_actor, encoder_actor,
// coordinator_actor) and the "reel" error category, so that they can cross to remote nodes.
// actors::configure calls it; calling it again is harmless.
void add_job_types(caf::actor_system_config& cfg);

}  // namespace reel::actors
