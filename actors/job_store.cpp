#include "actors/job_store.hpp"

#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <type_traits>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "codecs/checksum.hpp"

namespace reel::actors {

using json = nlohmann::json;

const char* to_string(JobMode mode) {
  switch (mode) {
    case JobMode::standard: return "standard";
    case JobMode::fifo: return "fifo";
    case JobMode::clips: return "clips";
    case JobMode::pipefusion: return "pipefusion";
  }
  return "unknown";
}

const char* to_string(JobState state) {
  switch (state) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::done: return "done";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "unknown";
}

Expected<JobMode> parse_job_mode(const std::string& text) {
  if (text == "standard") return JobMode::standard;
  if (text == "fifo") return JobMode::fifo;
  if (text == "clips") return JobMode::clips;
  if (text == "pipefusion") return JobMode::pipefusion;
  return make_error(Errc::invalid_argument, "unknown mode '" + text + "' (standard, fifo, clips or pipefusion)");
}

bool is_final(JobState state) {
  switch (state) {
    case JobState::queued:
    case JobState::running:
      return false;
    case JobState::done:
    case JobState::failed:
    case JobState::cancelled:
      return true;
  }
  return false;
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- JSON ------------------------------------------------------------------------------------

namespace {

json spec_to_json(const JobSpec& s) {
  return json{{"prompt", s.prompt},
              {"model", s.model},
              {"mode", to_string(s.mode)},
              {"frames", s.frames},
              {"width", s.width},
              {"height", s.height},
              {"steps", s.steps},
              {"guidance", s.guidance},
              {"shift", s.shift},
              {"solver", s.solver},
              {"seed", s.seed},
              {"fps", s.fps},
              {"crf", s.crf},
              {"upscale", s.upscale},
              {"upscale_filter", s.upscale_filter},
              {"out", s.out},
              {"sheet", s.sheet},
              {"partitions", s.partitions},
              {"lookahead", s.lookahead},
              {"clips", s.clips},
              {"context_frames", s.context_frames},
              {"global_frames", s.global_frames},
              {"cfg_parallel", s.cfg_parallel},
              {"stages", s.stages},
              {"patches", s.patches},
              {"warmup_steps", s.warmup_steps},
              {"split", s.split},
              {"tenant", s.tenant},
              {"negative_prompt", s.negative_prompt},
              {"cache", s.cache},
              {"extends", s.extends}};
}

// Reads typed fields out of a JSON object, remembering the first problem so that the caller
// checks once at the end.
class Reader {
 public:
  Reader(const json& object, std::string where) : j_(object), where_(std::move(where)) {
    if (!j_.is_object()) fail("is not an object");
  }

  template <class T>
  void read(const char* key, T& out) {
    if (error_) return;
    auto it = j_.find(key);
    if (it == j_.end()) return fail(std::string("has no '") + key + "'");
    if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) return fail(std::string("'") + key + "' is not a string");
      out = it->template get<std::string>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) return fail(std::string("'") + key + "' is not a boolean");
      out = it->template get<bool>();
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!it->is_number()) return fail(std::string("'") + key + "' is not a number");
      out = it->template get<T>();
      if (!std::isfinite(out)) return fail(std::string("'") + key + "' is not finite");
    } else if constexpr (std::is_unsigned_v<T>) {
      if (!it->is_number_unsigned()) return fail(std::string("'") + key + "' is not an unsigned integer");
      out = it->template get<T>();
    } else {
      static_assert(std::is_integral_v<T>);
      if (!it->is_number_integer()) return fail(std::string("'") + key + "' is not an integer");
      const auto v = it->template get<int64_t>();
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max())
        return fail(std::string("'") + key + "' is out of range");
      out = static_cast<T>(v);
    }
  }

  // As read, but a missing key leaves `out` as it is: fields added after records were first
  // written, so that older records stay readable.
  template <class T>
  void read_optional(const char* key, T& out) {
    if (j_.is_object() && j_.contains(key)) read(key, out);
  }

  void fail(const std::string& what) {
    if (!error_) error_ = make_error(Errc::corrupt_data, where_ + " " + what);
  }
  [[nodiscard]] const std::optional<Error>& error() const { return error_; }

 private:
  const json& j_;
  std::string where_;
  std::optional<Error> error_;
};

std::optional<Error> spec_from_json(const json& j, JobSpec& s) {
  Reader r(j, "job spec");
  std::string mode;
  r.read("prompt", s.prompt);
  r.read("model", s.model);
  r.read("mode", mode);
  r.read("frames", s.frames);
  r.read("width", s.width);
  r.read("height", s.height);
  r.read("steps", s.steps);
  r.read("guidance", s.guidance);
  r.read("shift", s.shift);
  r.read("solver", s.solver);
  r.read("seed", s.seed);
  r.read("fps", s.fps);
  r.read("crf", s.crf);
  r.read("upscale", s.upscale);
  r.read("upscale_filter", s.upscale_filter);
  r.read("out", s.out);
  r.read("sheet", s.sheet);
  r.read("partitions", s.partitions);
  r.read("lookahead", s.lookahead);
  r.read("clips", s.clips);
  r.read("context_frames", s.context_frames);
  r.read("global_frames", s.global_frames);
  r.read("cfg_parallel", s.cfg_parallel);
  r.read_optional("stages", s.stages);
  r.read_optional("patches", s.patches);
  r.read_optional("warmup_steps", s.warmup_steps);
  r.read_optional("split", s.split);
  r.read_optional("tenant", s.tenant);
  r.read_optional("negative_prompt", s.negative_prompt);
  r.read_optional("cache", s.cache);
  r.read_optional("extends", s.extends);
  if (!r.error()) {
    auto m = parse_job_mode(mode);
    if (!m) r.fail("has an unknown mode '" + mode + "'");
    else s.mode = *m;
  }
  return r.error();
}

Expected<JobState> parse_state(const std::string& text) {
  for (auto s : {JobState::queued, JobState::running, JobState::done, JobState::failed, JobState::cancelled}) {
    if (text == to_string(s)) return s;
  }
  return make_error(Errc::corrupt_data, "unknown state '" + text + "'");
}

}  // namespace

std::string job_to_json(const JobRecord& r) {
  const json stats{{"model_calls", r.stats.model_calls},   {"frames", r.stats.frames},
                   {"seconds", r.stats.seconds},           {"sample_seconds", r.stats.sample_seconds},
                   {"sent_bytes", r.stats.sent_bytes},     {"received_bytes", r.stats.received_bytes},
                   {"redispatched", r.stats.redispatched}, {"workers", r.stats.workers},
                   {"replans", r.stats.replans},           {"cache_start_step", r.stats.cache_start_step},
                   {"cache_hit", r.stats.cache_hit},       {"cache_similarity", r.stats.cache_similarity},
                   {"resumed_frames", r.stats.resumed_frames},
                   {"resumed_steps", r.stats.resumed_steps}};
  const json j{{"id", r.id},
               {"spec", spec_to_json(r.spec)},
               {"state", to_string(r.state)},
               {"done", r.done},
               {"total", r.total},
               {"result", r.result},
               {"error", r.error},
               {"stats", stats},
               {"created_ms", r.created_ms},
               {"started_ms", r.started_ms},
               {"finished_ms", r.finished_ms},
               {"attempts", r.attempts}};
  return j.dump();
}

Expected<JobRecord> job_from_json(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error(Errc::corrupt_data, "job record is not valid JSON");
  JobRecord rec;
  Reader r(j, "job record");
  std::string state;
  r.read("id", rec.id);
  r.read("state", state);
  r.read("done", rec.done);
  r.read("total", rec.total);
  r.read("result", rec.result);
  r.read("error", rec.error);
  r.read("created_ms", rec.created_ms);
  r.read("started_ms", rec.started_ms);
  r.read("finished_ms", rec.finished_ms);
  r.read("attempts", rec.attempts);
  if (r.error()) return *r.error();
  if (auto s = parse_state(state); !s) return s.error();
  else rec.state = *s;
  if (!j.contains("spec")) return make_error(Errc::corrupt_data, "job record has no 'spec'");
  if (auto e = spec_from_json(j["spec"], rec.spec)) return *e;
  if (!j.contains("stats")) return make_error(Errc::corrupt_data, "job record has no 'stats'");
  Reader st(j["stats"], "job stats");
  st.read("model_calls", rec.stats.model_calls);
  st.read("frames", rec.stats.frames);
  st.read("seconds", rec.stats.seconds);
  st.read("sample_seconds", rec.stats.sample_seconds);
  st.read("sent_bytes", rec.stats.sent_bytes);
  st.read("received_bytes", rec.stats.received_bytes);
  st.read("redispatched", rec.stats.redispatched);
  st.read("workers", rec.stats.workers);
  st.read_optional("replans", rec.stats.replans);
  st.read_optional("cache_start_step", rec.stats.cache_start_step);
  st.read_optional("cache_hit", rec.stats.cache_hit);
  st.read_optional("cache_similarity", rec.stats.cache_similarity);
  st.read_optional("resumed_frames", rec.stats.resumed_frames);
  st.read_optional("resumed_steps", rec.stats.resumed_steps);
  if (st.error()) return *st.error();
  return rec;
}

// ---- the store -------------------------------------------------------------------------------

namespace {

constexpr const char* kNextIdKey = "meta:next_id";

std::string job_key(uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "job:%020" PRIu64, id);
  return buf;
}

// "<16 hex> <json>": the checksum is seeded with the id, so a record under another id's key
// does not verify.
std::string encode_value(uint64_t id, const std::string& json_text) {
  char hex[20];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, codecs::checksum64(json_text, id));
  return std::string(hex) + " " + json_text;
}

Expected<JobRecord> decode_value(uint64_t id, std::string_view value) {
  const std::string where = "job " + std::to_string(id) + ": ";
  if (value.size() < 18 || value[16] != ' ')
    return make_error(Errc::corrupt_data, where + "record is truncated or malformed");
  uint64_t stored = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + 16, stored, 16);
  if (ec != std::errc{} || end != value.data() + 16)
    return make_error(Errc::corrupt_data, where + "record has no valid checksum");
  const std::string_view text = value.substr(17);
  if (codecs::checksum64(text, id) != stored)
    return make_error(Errc::corrupt_data, where + "record checksum mismatch (the record is damaged)");
  auto rec = job_from_json(text);
  if (!rec) return make_error(Errc::corrupt_data, where + rec.error().message);
  if (rec->id != id)
    return make_error(Errc::corrupt_data, where + "record names job " + std::to_string(rec->id));
  return rec;
}

Error io(const std::string& what, const rocksdb::Status& s) {
  return make_error(Errc::io_error, what + ": " + s.ToString());
}

}  // namespace

struct JobStore::Impl {
  std::string dir;
  std::unique_ptr<rocksdb::DB> db;
  mutable std::mutex mutex;  // id assignment, and put's read-check-write
  uint64_t next_id = 1;
};

JobStore::JobStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JobStore::~JobStore() = default;

Expected<std::unique_ptr<JobStore>> JobStore::open(const std::string& dir) {
  if (dir.empty()) return make_error(Errc::invalid_argument, "the job store needs a directory");
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    return make_error(Errc::invalid_argument, "the job store path '" + dir + "' is not a folder");
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(Errc::io_error, "cannot create job store folder '" + dir + "': " + ec.message());
  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return io("cannot open job store '" + dir + "'", s);
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->db.reset(raw);

  std::string value;
  s = impl->db->Get(rocksdb::ReadOptions(), kNextIdKey, &value);
  if (s.ok()) {
    uint64_t next = 0;
    auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), next);
    if (err != std::errc{} || end != value.data() + value.size() || next == 0)
      return make_error(Errc::corrupt_data, "job store '" + dir + "': the id counter is unreadable");
    impl->next_id = next;
  } else if (!s.IsNotFound()) {
    return io("job store '" + dir + "'", s);
  }
  // The counter and the records are written together, but a store whose counter was lost
  // (written by hand, restored from a partial copy) must still never reuse an id.
  std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev("job:~");
  if (it->Valid() && it->key().starts_with("job:")) {
    uint64_t last = 0;
    const auto key = it->key().ToStringView().substr(4);
    auto [end, err] = std::from_chars(key.data(), key.data() + key.size(), last);
    if (err == std::errc{} && last >= impl->next_id) impl->next_id = last + 1;
  }
  return std::unique_ptr<JobStore>(new JobStore(std::move(impl)));
}

Expected<JobRecord> JobStore::create(const JobSpec& spec) {
  std::lock_guard lock(impl_->mutex);
  JobRecord rec;
  rec.id = impl_->next_id;
  rec.spec = spec;
  rec.state = JobState::queued;
  rec.created_ms = unix_ms_now();
  rocksdb::WriteBatch batch;
  batch.Put(job_key(rec.id), encode_value(rec.id, job_to_json(rec)));
  batch.Put(kNextIdKey, std::to_string(rec.id + 1));
  rocksdb::WriteOptions wo;
  wo.sync = true;  // an accepted job is on disk before anyone is told its id
  auto s = impl_->db->Write(wo, &batch);
  if (!s.ok()) return io("job store '" + impl_->dir + "': cannot record a new job", s);
  ++impl_->next_id;
  return rec;
}

Status JobStore::put(const JobRecord& record) {
  std::lock_guard lock(impl_->mutex);
  std::string old;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), job_key(record.id), &old);
  if (s.IsNotFound()) return make_error(Errc::not_found, "no job " + std::to_string(record.id));
  if (!s.ok()) return io("job store '" + impl_->dir + "'", s);
  rocksdb::WriteBatch batch;
  batch.Put(job_key(record.id), encode_value(record.id, job_to_json(record)));
  rocksdb::WriteOptions wo;
  wo.sync = is_final(record.state);
  s = impl_->db->Write(wo, &batch);
  if (!s.ok()) return io("job store '" + impl_->dir + "': cannot update job " + std::to_string(record.id), s);
  return {};
}

Status JobStore::erase(uint64_t id) {
  std::lock_guard lock(impl_->mutex);
  std::string old;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), job_key(id), &old);
  if (s.IsNotFound()) return make_error(Errc::not_found, "no job " + std::to_string(id));
  if (!s.ok()) return io("job store '" + impl_->dir + "'", s);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = impl_->db->Delete(wo, job_key(id));
  if (!s.ok()) return io("job store '" + impl_->dir + "': cannot remove job " + std::to_string(id), s);
  return {};
}

Expected<JobRecord> JobStore::get(uint64_t id) const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), job_key(id), &value);
  if (s.IsNotFound()) return make_error(Errc::not_found, "no job " + std::to_string(id));
  if (!s.ok()) return io("job store '" + impl_->dir + "'", s);
  return decode_value(id, value);
}

Expected<JobScan> JobStore::scan() const {
  JobScan out;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("job:"); it->Valid() && it->key().starts_with("job:"); it->Next()) {
    const auto key = it->key().ToStringView().substr(4);
    uint64_t id = 0;
    auto [end, err] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (err != std::errc{} || end != key.data() + key.size()) {
      out.corrupt.push_back(make_error(Errc::corrupt_data, "job store key '" + it->key().ToString() + "' is malformed"));
      continue;
    }
    auto rec = decode_value(id, it->value().ToStringView());
    if (rec) out.records.push_back(std::move(*rec));
    else out.corrupt.push_back(rec.error());
  }
  if (!it->status().ok()) return io("job store '" + impl_->dir + "'", it->status());
  return out;
}

uint64_t JobStore::next_id() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->next_id;
}

const std::string& JobStore::dir() const { return impl_->dir; }

Status JobStore::write_raw(uint64_t id, std::string_view value) {
  auto s = impl_->db->Put(rocksdb::WriteOptions(), job_key(id), rocksdb::Slice(value.data(), value.size()));
  if (!s.ok()) return io("job store '" + impl_->dir + "'", s);
  return {};
}

// ---- errors across actors --------------------------------------------------------------------

namespace {
const caf::atom_value kReelCategory = caf::atom("reel");
}

// CAF reads code 0 as "no error", and Errc's first value is 0: codes travel shifted by one.
caf::error to_caf_error(const Error& error) {
  return caf::error(static_cast<uint8_t>(static_cast<int>(error.code) + 1), kReelCategory,
                    caf::make_message(error.message));
}

Error from_caf_error(const caf::error& error) {
  if (!error) return make_error(Errc::internal, "an empty error arrived");
  if (error.category() == kReelCategory) {
    std::string message;
    if (error.context().match_elements<std::string>()) message = error.context().get_as<std::string>(0);
    const auto code = static_cast<Errc>(error.code() - 1);
    switch (code) {
      case Errc::invalid_argument:
      case Errc::not_found:
      case Errc::io_error:
      case Errc::corrupt_data:
      case Errc::unsupported:
      case Errc::internal:
      case Errc::cancelled:
        return make_error(code, std::move(message));
    }
    return make_error(Errc::internal, std::move(message));
  }
  std::string text = caf::to_string(error);
  if (error.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(error.code())) {
      case caf::sec::request_receiver_down:
      case caf::sec::request_timeout:
      case caf::sec::no_route_to_receiving_node:
      case caf::sec::cannot_connect_to_node:
        return make_error(Errc::io_error, text);
      default:
        break;
    }
  }
  return make_error(Errc::internal, text);
}

// ---- the actor -------------------------------------------------------------------------------

namespace {

struct JobStoreState {
  // Not an aggregate: CAF would try to build the state from the actor pointer (C++20
  // parenthesised aggregate initialisation).
  JobStoreState() = default;
  std::shared_ptr<JobStore> store;
  static inline const char* name = "reel.job_store";
};

job_store_actor::behavior_type job_store_behavior(job_store_actor::stateful_pointer<JobStoreState> self,
                                                  std::shared_ptr<JobStore> store) {
  self->state.store = std::move(store);
  return {
      [=](job_create_atom, const JobSpec& spec) -> caf::result<JobRecord> {
        auto rec = self->state.store->create(spec);
        if (!rec) return to_caf_error(rec.error());
        return std::move(*rec);
      },
      [=](job_put_atom, const JobRecord& record) -> caf::result<uint64_t> {
        if (auto st = self->state.store->put(record); !st) return to_caf_error(st.error());
        return record.id;
      },
      [=](job_get_atom, uint64_t id) -> caf::result<JobRecord> {
        auto rec = self->state.store->get(id);
        if (!rec) return to_caf_error(rec.error());
        return std::move(*rec);
      },
      [=](job_list_atom) -> caf::result<std::vector<JobRecord>, std::vector<std::string>> {
        auto scan = self->state.store->scan();
        if (!scan) return to_caf_error(scan.error());
        std::vector<std::string> corrupt;
        for (const auto& e : scan->corrupt) corrupt.push_back(e.message);
        return caf::make_result(std::move(scan->records), std::move(corrupt));
      },
      [=](job_erase_atom, uint64_t id) -> caf::result<uint64_t> {
        if (auto st = self->state.store->erase(id); !st) return to_caf_error(st.error());
        return id;
      },
  };
}

}  // namespace

Expected<job_store_actor> spawn_job_store(caf::actor_system& system, const std::string& dir) {
  auto store = JobStore::open(dir);
  if (!store) return store.error();
  std::shared_ptr<JobStore> shared(std::move(*store));
  return system.spawn<caf::detached>(job_store_behavior, std::move(shared));
}

}  // namespace reel::actors
