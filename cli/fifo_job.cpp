#include "cli/fifo_job.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/safetensors.hpp"

namespace reel::cli {

namespace {

namespace fs = std::filesystem;

std::string job_file(const std::string& dir) { return (fs::path(dir) / "job.json").string(); }
std::string state_file(const std::string& dir) { return (fs::path(dir) / "state.safetensors").string(); }
std::string frames_file(const std::string& dir) { return (fs::path(dir) / "frames.rgb").string(); }

}  // namespace

Expected<std::string> model_checksum(const std::string& source) {
  if (source.rfind("builtin:", 0) == 0) return std::string("builtin");
  std::ifstream in(source, std::ios::binary);
  if (!in) return make_error(Errc::not_found, "cannot read model file '" + source + "'");
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      h *= 0x100000001b3ull;
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string(hex);
}

Status create_job(const std::string& dir, const FifoJob& j) {
  std::error_code ec;
  if (fs::exists(job_file(dir), ec))
    return make_error(Errc::invalid_argument, "job directory '" + dir + "' already holds a job; resume it with --resume " + dir);
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    return make_error(Errc::invalid_argument, "cannot create job directory '" + dir + "'");
  nlohmann::json out{{"kind", "reel-fifo-job"},     {"version", 1},
                     {"prompt", j.prompt},          {"model", j.model},
                     {"model_source", j.model_source}, {"model_checksum", j.model_checksum},
                     {"frames", j.frames},          {"width", j.width},
                     {"height", j.height},          {"steps", j.steps},
                     {"fps", j.fps},                {"partitions", j.partitions},
                     {"lookahead", j.lookahead},    {"guidance", j.guidance},
                     {"shift", j.shift},            {"solver", j.solver},
                     {"seed", j.seed},              {"crf", j.crf},
                     {"upscale", j.upscale},        {"upscale_filter", j.upscale_filter},
                     {"out", j.out},                {"checkpoint_every", j.checkpoint_every}};
  const std::string tmp = job_file(dir) + ".tmp";
  {
    std::ofstream f(tmp);
    f << out.dump(1) << '\n';
    if (!f) return make_error(Errc::io_error, "cannot write '" + job_file(dir) + "'");
  }
  fs::rename(tmp, job_file(dir), ec);
  if (ec) return make_error(Errc::io_error, "cannot write '" + job_file(dir) + "': " + ec.message());
  std::ofstream(frames_file(dir), std::ios::binary | std::ios::trunc);
  return {};
}

Expected<FifoJob> read_job(const std::string& dir) {
  std::ifstream in(job_file(dir));
  if (!in) return make_error(Errc::not_found, "'" + dir + "' is not a reel job directory (no job.json)");
  try {
    auto j = nlohmann::json::parse(in);
    if (j.value("kind", "") != "reel-fifo-job")
      return make_error(Errc::corrupt_data, job_file(dir) + " is not a reel FIFO job");
    FifoJob job;
    job.prompt = j.at("prompt").get<std::string>();
    job.model = j.at("model").get<std::string>();
    job.model_source = j.at("model_source").get<std::string>();
    job.model_checksum = j.at("model_checksum").get<std::string>();
    job.frames = j.at("frames").get<int>();
    job.width = j.at("width").get<int>();
    job.height = j.at("height").get<int>();
    job.steps = j.at("steps").get<int>();
    job.fps = j.at("fps").get<int>();
    job.partitions = j.at("partitions").get<int>();
    job.lookahead = j.at("lookahead").get<bool>();
    job.guidance = j.at("guidance").get<double>();
    job.shift = j.at("shift").get<double>();
    job.solver = j.at("solver").get<std::string>();
    job.seed = j.at("seed").get<uint64_t>();
    job.crf = j.at("crf").get<int>();
    job.upscale = j.at("upscale").get<int>();
    job.upscale_filter = j.at("upscale_filter").get<std::string>();
    job.out = j.at("out").get<std::string>();
    job.checkpoint_every = j.at("checkpoint_every").get<int>();
    return job;
  } catch (const std::exception& e) {
    return make_error(Errc::corrupt_data, job_file(dir) + " is unreadable: " + e.what());
  }
}

Status save_fifo_state(const std::string& dir, const pipeline::FifoState& state) {
  std::vector<std::pair<std::string, at::Tensor>> tensors{{"queue", state.queue}};
  std::map<std::string, std::string> md{{"head_frame", std::to_string(state.head_frame)},
                                        {"slots", std::to_string(state.solver_states.size())}};
  for (size_t p = 0; p < state.solver_states.size(); ++p) {
    const auto& s = state.solver_states[p];
    const std::string key = "slot." + std::to_string(p);
    md[key + ".step"] = std::to_string(s.step);
    md[key + ".history"] = std::to_string(s.x0_history.size());
    md[key + ".last_order"] = std::to_string(s.last_order);
    for (size_t i = 0; i < s.x0_history.size(); ++i) tensors.emplace_back(key + ".x0." + std::to_string(i), s.x0_history[i]);
    if (s.last_sample.defined()) tensors.emplace_back(key + ".last_sample", s.last_sample);
  }
  return models::save_safetensors(state_file(dir), tensors, md);
}

Expected<pipeline::FifoState> load_fifo_state(const std::string& dir, const pipeline::FifoOptions& options) {
  if (!fs::exists(state_file(dir))) return make_error(Errc::not_found, "job '" + dir + "' has no checkpoint yet");
  auto file = models::SafeTensors::open(state_file(dir));
  if (!file) return file.error();
  const auto& md = file->metadata();
  auto number = [&](const std::string& key) -> Expected<int64_t> {
    auto it = md.find(key);
    if (it == md.end()) return make_error(Errc::corrupt_data, state_file(dir) + ": no '" + key + "'");
    try {
      return std::stoll(it->second);
    } catch (const std::exception&) {
      return make_error(Errc::corrupt_data, state_file(dir) + ": bad '" + key + "'");
    }
  };
  pipeline::FifoState state;
  state.options = options;
  auto queue = file->get("queue");
  if (!queue) return queue.error();
  state.queue = queue->clone();
  auto head = number("head_frame");
  if (!head) return head.error();
  state.head_frame = *head;
  auto slots = number("slots");
  if (!slots) return slots.error();
  for (int64_t p = 0; p < *slots; ++p) {
    const std::string key = "slot." + std::to_string(p);
    models::SolverState s;
    auto step = number(key + ".step");
    auto history = number(key + ".history");
    auto order = number(key + ".last_order");
    if (!step) return step.error();
    if (!history) return history.error();
    if (!order) return order.error();
    s.step = static_cast<int>(*step);
    s.last_order = static_cast<int>(*order);
    for (int64_t i = 0; i < *history; ++i) {
      auto t = file->get(key + ".x0." + std::to_string(i));
      if (!t) return t.error();
      s.x0_history.push_back(t->clone());
    }
    if (auto t = file->get(key + ".last_sample"); t) s.last_sample = t->clone();
    state.solver_states.push_back(std::move(s));
  }
  return state;
}

Status append_job_frame(const std::string& dir, const video::Frame& frame) {
  std::ofstream f(frames_file(dir), std::ios::binary | std::ios::app);
  f.write(reinterpret_cast<const char*>(frame.rgb.data()), static_cast<std::streamsize>(frame.rgb.size()));
  if (!f) return make_error(Errc::io_error, "cannot write '" + frames_file(dir) + "'");
  return {};
}

Expected<std::vector<video::Frame>> read_job_frames(const std::string& dir, int64_t count, int width, int height) {
  const auto bytes = static_cast<size_t>(width) * height * 3;
  std::error_code ec;
  const auto size = fs::file_size(frames_file(dir), ec);
  if (ec || size < bytes * static_cast<size_t>(count))
    return make_error(Errc::corrupt_data, frames_file(dir) + " holds fewer than the " + std::to_string(count) +
                                              " frames its checkpoint needs");
  std::vector<video::Frame> frames;
  std::ifstream in(frames_file(dir), std::ios::binary);
  for (int64_t i = 0; i < count; ++i) {
    video::Frame f{width, height, std::vector<uint8_t>(bytes)};
    in.read(reinterpret_cast<char*>(f.rgb.data()), static_cast<std::streamsize>(bytes));
    if (!in) return make_error(Errc::corrupt_data, "cannot read " + frames_file(dir));
    frames.push_back(std::move(f));
  }
  in.close();
  fs::resize_file(frames_file(dir), bytes * static_cast<size_t>(count), ec);
  if (ec) return make_error(Errc::io_error, "cannot cut " + frames_file(dir) + ": " + ec.message());
  return frames;
}

}  // namespace reel::cli
