#include "jobs/checkpoint.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "base/durable.hpp"
#include "models/safetensors.hpp"

namespace reel::jobs {

namespace fs = std::filesystem;

std::string state_file(const std::string& dir) { return (fs::path(dir) / "state.safetensors").string(); }
std::string frames_file(const std::string& dir) { return (fs::path(dir) / "frames.rgb").string(); }

namespace {

using Tensors = std::vector<std::pair<std::string, at::Tensor>>;
using Metadata = std::map<std::string, std::string>;

// FNV-1a 64 over the metadata (but "checksum"), key and value, in key order, then over every
// tensor's name, shape and float32 bytes, in name order, as 16 hex digits.
std::string state_checksum(const Metadata& md, const std::map<std::string, at::Tensor>& tensors) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ull;
    }
  };
  auto mix_str = [&mix](const std::string& s) { mix(s.data(), s.size() + 1); };  // with its NUL
  for (const auto& [key, value] : md) {
    if (key == "checksum") continue;
    mix_str(key);
    mix_str(value);
  }
  for (const auto& [name, tensor] : tensors) {
    mix_str(name);
    const at::Tensor t = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
    for (int64_t d : t.sizes()) mix(&d, sizeof d);
    mix(t.data_ptr(), t.nbytes());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

// Writes tensors and metadata to DIR/state.safetensors with their checksum, atomically.
// The frames a FIFO checkpoint counts as written are on disk before it (save_safetensors syncs
// the checkpoint itself), so a power loss never leaves a checkpoint ahead of its frames.
Status save_state(const std::string& dir, const Tensors& tensors, Metadata md) {
  if (fs::exists(frames_file(dir))) REEL_RETURN_IF_ERROR(sync_file(frames_file(dir)));
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  md["checksum"] = state_checksum(md, by_name);
  return models::save_safetensors(state_file(dir), tensors, md);
}

// DIR/state.safetensors opened and read whole, its checksum checked (files written before there
// was one have none and are taken as they are).
struct StateFile {
  Metadata md;
  std::map<std::string, at::Tensor> tensors;
  std::string path;

  Expected<int64_t> number(const std::string& key) const {
    auto it = md.find(key);
    if (it == md.end()) return make_error(Errc::corrupt_data, path + ": no '" + key + "'");
    try {
      size_t used = 0;
      const int64_t v = std::stoll(it->second, &used);
      if (used != it->second.size()) throw std::invalid_argument(it->second);
      return v;
    } catch (const std::exception&) {
      return make_error(Errc::corrupt_data, path + ": bad '" + key + "'");
    }
  }
  Expected<at::Tensor> tensor(const std::string& name) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) return make_error(Errc::corrupt_data, path + ": no tensor '" + name + "'");
    return it->second;
  }
};

Expected<StateFile> open_state(const std::string& dir) {
  if (!fs::exists(state_file(dir))) return make_error(Errc::not_found, "job '" + dir + "' has no checkpoint yet");
  auto file = models::SafeTensors::open(state_file(dir));
  if (!file) return make_error(Errc::corrupt_data, "the checkpoint of job '" + dir + "' is damaged: " + file.error().message);
  StateFile out;
  out.path = state_file(dir);
  out.md = file->metadata();
  try {
    for (const auto& name : file->names()) {
      auto t = file->get(name);
      if (!t) return make_error(Errc::corrupt_data, "the checkpoint of job '" + dir + "' is damaged: " + t.error().message);
      if (t->scalar_type() != at::kFloat)
        return make_error(Errc::corrupt_data, out.path + ": tensor '" + name + "' is not float32");
      out.tensors.emplace(name, std::move(*t));  // get() copies out of the mapping
    }
  } catch (const std::exception& e) {
    return make_error(Errc::corrupt_data, out.path + " is unreadable: " + e.what());
  }
  if (auto it = out.md.find("checksum"); it != out.md.end() && it->second != state_checksum(out.md, out.tensors))
    return make_error(Errc::corrupt_data, "the checkpoint of job '" + dir + "' is damaged (" + out.path +
                                              ": checksum mismatch); start the job again");
  return out;
}

// A solver state under `key` ("slot.3", "clip.0"): its step, history length and last order in the
// metadata, its x0 history and last sample as tensors.
void put_solver_state(const std::string& key, const models::SolverState& s, Tensors& tensors, Metadata& md) {
  md[key + ".step"] = std::to_string(s.step);
  md[key + ".history"] = std::to_string(s.x0_history.size());
  md[key + ".last_order"] = std::to_string(s.last_order);
  for (size_t i = 0; i < s.x0_history.size(); ++i) tensors.emplace_back(key + ".x0." + std::to_string(i), s.x0_history[i]);
  if (s.last_sample.defined()) tensors.emplace_back(key + ".last_sample", s.last_sample);
}

Expected<models::SolverState> get_solver_state(const StateFile& file, const std::string& key) {
  models::SolverState s;
  auto step = file.number(key + ".step");
  auto history = file.number(key + ".history");
  auto order = file.number(key + ".last_order");
  if (!step) return step.error();
  if (!history) return history.error();
  if (!order) return order.error();
  if (*history < 0 || *history > 2) return make_error(Errc::corrupt_data, file.path + ": bad '" + key + ".history'");
  s.step = static_cast<int>(*step);
  s.last_order = static_cast<int>(*order);
  for (int64_t i = 0; i < *history; ++i) {
    auto t = file.tensor(key + ".x0." + std::to_string(i));
    if (!t) return t.error();
    s.x0_history.push_back(*t);
  }
  if (auto it = file.tensors.find(key + ".last_sample"); it != file.tensors.end()) s.last_sample = it->second;
  return s;
}

}  // namespace

Status save_fifo_state(const std::string& dir, const pipeline::FifoState& state) {
  Tensors tensors{{"queue", state.queue}};
  Metadata md{{"head_frame", std::to_string(state.head_frame)},
              {"slots", std::to_string(state.solver_states.size())}};
  for (size_t p = 0; p < state.solver_states.size(); ++p)
    put_solver_state("slot." + std::to_string(p), state.solver_states[p], tensors, md);
  if (state.first_clip.defined()) tensors.emplace_back("first_clip", state.first_clip);
  return save_state(dir, tensors, std::move(md));
}

Expected<pipeline::FifoState> load_fifo_state(const std::string& dir, const pipeline::FifoOptions& options) {
  auto file = open_state(dir);
  if (!file) return file.error();
  if (file->md.count("mode") != 0 && file->md.at("mode") != "fifo")
    return make_error(Errc::corrupt_data, file->path + " is a " + file->md.at("mode") + " checkpoint, not a FIFO one");
  pipeline::FifoState state;
  state.options = options;
  auto queue = file->tensor("queue");
  if (!queue) return queue.error();
  state.queue = *queue;
  auto head = file->number("head_frame");
  if (!head) return head.error();
  state.head_frame = *head;
  auto slots = file->number("slots");
  if (!slots) return slots.error();
  if (*slots < 0 || *slots > 1 << 20) return make_error(Errc::corrupt_data, file->path + ": bad 'slots'");
  for (int64_t p = 0; p < *slots; ++p) {
    auto s = get_solver_state(*file, "slot." + std::to_string(p));
    if (!s) return s.error();
    state.solver_states.push_back(std::move(*s));
  }
  if (auto it = file->tensors.find("first_clip"); it != file->tensors.end()) state.first_clip = it->second;
  return state;
}

Status save_clips_state(const std::string& dir, const pipeline::ClipsState& state) {
  Tensors tensors;
  Metadata md{{"mode", "clips"},
              {"step", std::to_string(state.step)},
              {"clips", std::to_string(state.latents.size())},
              {"emitted_clips", std::to_string(state.emitted_clips)}};
  for (size_t c = 0; c < state.latents.size(); ++c) {
    const std::string key = "clip." + std::to_string(c);
    tensors.emplace_back(key + ".latent", state.latents[c]);
    if (c < state.solver_states.size()) put_solver_state(key, state.solver_states[c], tensors, md);
  }
  return save_state(dir, tensors, std::move(md));
}

Expected<pipeline::ClipsState> load_clips_state(const std::string& dir, const pipeline::ClipsOptions& options,
                                                const std::vector<int64_t>& clip_shape) {
  auto file = open_state(dir);
  if (!file) return file.error();
  if (file->md.count("mode") == 0 || file->md.at("mode") != "clips")
    return make_error(Errc::corrupt_data, file->path + " is not a clips checkpoint");
  auto clips = file->number("clips");
  auto step = file->number("step");
  auto emitted = file->number("emitted_clips");
  if (!clips) return clips.error();
  if (!step) return step.error();
  if (!emitted) return emitted.error();
  if (*clips != options.clips)
    return make_error(Errc::corrupt_data, file->path + " holds " + std::to_string(*clips) + " clips, the job " +
                                              std::to_string(options.clips));
  pipeline::ClipsState state;
  state.options = options;
  state.step = static_cast<int>(*step);
  state.emitted_clips = 0;  // frames are written again from the start on resume
  for (int64_t c = 0; c < *clips; ++c) {
    const std::string key = "clip." + std::to_string(c);
    auto latent = file->tensor(key + ".latent");
    if (!latent) return latent.error();
    if (latent->sizes().vec() != clip_shape)
      return make_error(Errc::corrupt_data, file->path + ": clip " + std::to_string(c) + " is not shaped like this job's clips");
    state.latents.push_back(*latent);
    auto s = get_solver_state(*file, key);
    if (!s) return s.error();
    state.solver_states.push_back(std::move(*s));
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

}  // namespace reel::jobs
