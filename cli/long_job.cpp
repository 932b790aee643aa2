#include "cli/long_job.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "base/durable.hpp"
#include "models/safetensors.hpp"
#include "models/weights_checksum.hpp"

namespace reel::cli {

namespace {

namespace fs = std::filesystem;

std::string job_file(const std::string& dir) { return (fs::path(dir) / "job.json").string(); }

}  // namespace

Expected<std::string> model_checksum(const std::string& source) { return models::weights_file_checksum(source); }

Status create_job(const std::string& dir, const LongJob& j) {
  std::error_code ec;
  if (fs::exists(job_file(dir), ec))
    return make_error(Errc::invalid_argument, "job directory '" + dir + "' already holds a job; resume it with --resume " + dir);
  if (j.mode != "fifo" && j.mode != "clips")
    return make_error(Errc::invalid_argument, "jobs are FIFO or clips jobs, not '" + j.mode + "'");
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    return make_error(Errc::invalid_argument, "cannot create job directory '" + dir + "'");
  nlohmann::json out{{"kind", "reel-job"},          {"version", 2},
                     {"mode", j.mode},
                     {"prompt", j.prompt},          {"model", j.model},
                     {"model_source", j.model_source}, {"model_checksum", j.model_checksum},
                     {"frames", j.frames},          {"width", j.width},
                     {"height", j.height},          {"steps", j.steps},
                     {"fps", j.fps},                {"guidance", j.guidance},
                     {"shift", j.shift},            {"solver", j.solver},
                     {"seed", j.seed},              {"crf", j.crf},
                     {"upscale", j.upscale},        {"upscale_filter", j.upscale_filter},
                     {"out", j.out},                {"checkpoint_every", j.checkpoint_every}};
  if (j.mode == "fifo") {
    out["partitions"] = j.partitions;
    out["lookahead"] = j.lookahead;
  } else {
    out["clips"] = j.clips;
    out["context_frames"] = j.context_frames;
    out["global_frames"] = j.global_frames;
  }
  const std::string tmp = job_file(dir) + ".tmp";
  {
    std::ofstream f(tmp);
    f << out.dump(1) << '\n';
    f.flush();
    if (!f) return make_error(Errc::io_error, "cannot write '" + job_file(dir) + "'");
  }
  REEL_RETURN_IF_ERROR(sync_file(tmp));
  fs::rename(tmp, job_file(dir), ec);
  if (ec) return make_error(Errc::io_error, "cannot write '" + job_file(dir) + "': " + ec.message());
  sync_parent(job_file(dir));
  if (j.mode == "fifo") std::ofstream(jobs::frames_file(dir), std::ios::binary | std::ios::trunc);
  return {};
}

Expected<LongJob> read_job(const std::string& dir) {
  std::ifstream in(job_file(dir));
  if (!in) return make_error(Errc::not_found, "'" + dir + "' is not a reel job directory (no job.json)");
  try {
    auto j = nlohmann::json::parse(in);
    const std::string kind = j.value("kind", "");
    // "reel-fifo-job": written before clips jobs, always FIFO and without "mode".
    if (kind != "reel-job" && kind != "reel-fifo-job")
      return make_error(Errc::corrupt_data, job_file(dir) + " is not a reel job");
    LongJob job;
    job.mode = j.value("mode", std::string("fifo"));
    if (job.mode != "fifo" && job.mode != "clips")
      return make_error(Errc::corrupt_data, job_file(dir) + " has an unknown mode '" + job.mode + "'");
    job.prompt = j.at("prompt").get<std::string>();
    job.model = j.at("model").get<std::string>();
    job.model_source = j.at("model_source").get<std::string>();
    job.model_checksum = j.at("model_checksum").get<std::string>();
    job.frames = j.at("frames").get<int>();
    job.width = j.at("width").get<int>();
    job.height = j.at("height").get<int>();
    job.steps = j.at("steps").get<int>();
    job.fps = j.at("fps").get<int>();
    job.guidance = j.at("guidance").get<double>();
    job.shift = j.at("shift").get<double>();
    job.solver = j.at("solver").get<std::string>();
    job.seed = j.at("seed").get<uint64_t>();
    job.crf = j.at("crf").get<int>();
    job.upscale = j.at("upscale").get<int>();
    job.upscale_filter = j.at("upscale_filter").get<std::string>();
    job.out = j.at("out").get<std::string>();
    job.checkpoint_every = j.at("checkpoint_every").get<int>();
    if (job.mode == "fifo") {
      job.partitions = j.at("partitions").get<int>();
      job.lookahead = j.at("lookahead").get<bool>();
    } else {
      job.clips = j.at("clips").get<int>();
      job.context_frames = j.at("context_frames").get<int>();
      job.global_frames = j.at("global_frames").get<int>();
    }
    return job;
  } catch (const std::exception& e) {
    return make_error(Errc::corrupt_data, job_file(dir) + " is unreadable: " + e.what());
  }
}

}  // namespace reel::cli
