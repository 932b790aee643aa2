// The cache-store actor over a real RocksDB in a temporary directory, in an actor system set up
// by actors::configure: hits and misses, persistence, errors as replies, several jobs (threads,
// a remote node) through one actor, and a job through the actor against `reel generate --cache`'s
// way (a LocalCache): the same hits, the same latents, the same entries.
#include "actors/cache_actor.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <torch/torch.h>

#include "actors/cache_job.hpp"
#include "actors/job_store.hpp"
#include "actors/messages.hpp"
#include "cachestore/embedder.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pool_support.hpp"
#include "tests/cachestore/store_test_support.hpp"

namespace reel::actors {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kRedOnSand = "a large red circle moving right on a sand background";
constexpr const char* kBlueOnNavy = "a small blue square standing still on a navy background";

CacheKey shapes_key() {
  CacheKey k;
  k.model = "shapes-s";
  k.weights_hash = "w1";
  k.scheduler = "unipc";
  k.steps = 20;
  k.shift = 3;
  k.height = 16;
  k.width = 16;
  k.frames = 4;
  k.guidance = 4;
  k.prediction = "sample";
  return k;
}

// A smooth latent [1, 3, 4, 16, 16] whose pattern depends on `seed` and `step`.
cachestore::Latent make_latent(int seed, int step) {
  cachestore::Latent l{{1, 3, 4, 16, 16}, {}};
  for (int c = 0; c < 3; ++c)
    for (int f = 0; f < 4; ++f)
      for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x)
          l.values.push_back(float(std::sin(0.3 * x + seed + c) * std::cos(0.2 * y + 0.1 * f) + 0.01 * step));
  return l;
}

// The object in the left half of every frame.
std::string left_half_mask() {
  std::string mask(4 * 16 * 16, '\0');
  for (int f = 0; f < 4; ++f)
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 8; ++x) mask[size_t(f * 256 + y * 16 + x)] = 1;
  return mask;
}

CacheInsert make_insert(const CacheKey& key, const std::string& prompt, int seed, std::vector<int32_t> steps = {4, 8, 12},
                        std::string mask = {}) {
  CacheInsert in;
  in.key = key;
  in.prompt = prompt;
  for (int32_t s : steps) {
    in.steps.push_back(s);
    in.latents.push_back(*latent_to_wire(make_latent(seed, s)));
  }
  in.object_mask = std::move(mask);
  return in;
}

float max_abs_diff(const cachestore::Latent& a, const cachestore::Latent& b) {
  if (a.shape != b.shape) return INFINITY;
  float m = 0;
  for (size_t i = 0; i < a.values.size(); ++i) m = std::max(m, std::abs(a.values[i] - b.values[i]));
  return m;
}

float cosine(const std::string& a, const std::string& b) {
  cachestore::NgramEmbedder e;
  auto va = e.embed(a), vb = e.embed(b);
  float dot = 0;
  for (size_t i = 0; i < va.size(); ++i) dot += va[i] * vb[i];
  return dot;
}

// One request and its reply, or the reel Error it failed with.
template <class T, class... Ts>
Expected<T> ask(caf::scoped_actor& self, const cache_store_actor& actor, Ts&&... xs) {
  Expected<T> result = make_error(Errc::internal, "no reply");
  self->request(actor, caf::duration(60s), std::forward<Ts>(xs)...)
      .receive([&](T& value) { result = std::move(value); }, [&](caf::error& e) { result = from_caf_error(e); });
  return result;
}

Expected<CacheStart> lookup(caf::scoped_actor& self, const cache_store_actor& actor, const CacheKey& key,
                            const std::string& prompt) {
  return ask<CacheStart>(self, actor, cache_lookup_atom::value, key, prompt);
}

Expected<uint64_t> insert(caf::scoped_actor& self, const cache_store_actor& actor, CacheInsert in) {
  return ask<uint64_t>(self, actor, cache_insert_atom::value, std::move(in));
}

Expected<CacheStoreStats> stats(caf::scoped_actor& self, const cache_store_actor& actor) {
  return ask<CacheStoreStats>(self, actor, cache_stats_atom::value);
}

Expected<CacheStoreStats> close(caf::scoped_actor& self, const cache_store_actor& actor) {
  return ask<CacheStoreStats>(self, actor, cache_close_atom::value);
}

class CacheActorTest : public ::testing::Test {
 protected:
  CacheActorTest() {
    configure(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }
  ~CacheActorTest() override { sys_.reset(); }  // every actor (and its RocksDB) gone before the folder

  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_cache_actor_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    for (auto& a : actors_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    actors_.clear();
    sys_->await_all_actors_done();
    fs::remove_all(dir_);
  }

  cachestore::CacheOptions options(const std::string& sub = "cache") const {
    cachestore::CacheOptions o;
    o.path = (dir_ / sub).string();
    return o;
  }
  cache_store_actor spawn(cachestore::CacheOptions o) {
    actors_.push_back(spawn_cache_store(*sys_, std::move(o)));
    return actors_.back();
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  fs::path dir_;
  std::vector<cache_store_actor> actors_;
};

TEST(CacheActorWire, KeysAndLatentsRoundTrip) {
  cachestore::CompatKey k;
  k.model = "m";
  k.weights_hash = "w";
  k.scheduler = "unipc";
  k.steps = 20;
  k.shift = 3.5;
  k.height = 32;
  k.width = 48;
  k.frames = 8;
  k.guidance = 4;
  k.prediction = "flow";
  k.tenant = "acme";
  EXPECT_EQ(to_compat_key(to_cache_key(k)), k);
  auto latent = make_latent(3, 7);
  auto back = latent_from_wire(*latent_to_wire(latent));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, latent);
  WireTensor damaged = *latent_to_wire(latent);
  damaged.bytes[damaged.bytes.size() / 2] ^= 0x40;
  EXPECT_EQ(latent_from_wire(damaged).error().code, Errc::corrupt_data);
  EXPECT_EQ(latent_from_wire(WireTensor{}).error().code, Errc::invalid_argument);
}

TEST_F(CacheActorTest, InsertThenLookupHitsAtTheExpectedStepWithTheStoredLatent) {
  auto o = options();
  o.compress = false;  // exact float32 entries: the hit is the inserted latent bit for bit
  auto actor = spawn(o);
  caf::scoped_actor self{*sys_};
  auto miss = lookup(self, actor, shapes_key(), kRedOnSand);
  ASSERT_TRUE(miss.ok()) << miss.error().message;
  EXPECT_FALSE(miss->hit);
  EXPECT_EQ(miss->start_step, 0);
  EXPECT_TRUE(miss->latent.bytes.empty());
  EXPECT_EQ(miss->capture_steps, (std::vector<int32_t>{4, 8, 12}));  // 0.2, 0.4, 0.6 of 20

  auto n = insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1));
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 1u);  // no mask: the whole entry only
  auto hit = lookup(self, actor, shapes_key(), kRedOnSand);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  ASSERT_TRUE(hit->hit);
  EXPECT_EQ(hit->start_step, 12);  // similarity 1 -> 0.6 of 20 steps
  EXPECT_EQ(hit->kind, static_cast<int32_t>(cachestore::HitKind::whole));
  EXPECT_NEAR(hit->similarity, 1.0F, 1e-5);
  EXPECT_EQ(hit->sources, (std::vector<std::string>{kRedOnSand}));
  EXPECT_EQ(hit->entries.size(), 1u);
  auto latent = latent_from_wire(hit->latent);
  ASSERT_TRUE(latent.ok()) << latent.error().message;
  EXPECT_EQ(*latent, make_latent(1, 12));  // bit for bit

  auto st = stats(self, actor);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->path, o.path);
  EXPECT_EQ(st->entries, 1u);
  EXPECT_GT(st->bytes, 3u * 3 * 4 * 16 * 16 * 4);
  EXPECT_EQ(st->lookups, 2u);
  EXPECT_EQ(st->hits, 1u);
  EXPECT_EQ(st->whole_hits, 1u);
  EXPECT_EQ(st->misses, 1u);
  EXPECT_EQ(st->steps_saved, 12u);
  EXPECT_EQ(st->inserted, 1u);
}

TEST_F(CacheActorTest, CompressedEntriesComeBackWithinTheCodecsError) {
  auto actor = spawn(options());  // int8 + zstd, the default
  caf::scoped_actor self{*sys_};
  ASSERT_TRUE(insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1)).ok());
  auto hit = lookup(self, actor, shapes_key(), kRedOnSand);
  ASSERT_TRUE(hit.ok() && hit->hit);
  EXPECT_EQ(hit->start_step, 12);
  // 5 bits a side at step 12 of 20: within half a level of a range of about 1.1 (as the
  // cachestore tests bound it).
  EXPECT_LT(max_abs_diff(*latent_from_wire(hit->latent), make_latent(1, 12)), 0.04F);
}

TEST_F(CacheActorTest, IncompatibleKeysMiss) {
  auto actor = spawn(options());
  caf::scoped_actor self{*sys_};
  ASSERT_TRUE(insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1, {4, 8, 12}, left_half_mask())).ok());
  std::vector<CacheKey> others(7, shapes_key());
  others[0].model = "other";
  others[1].weights_hash = "w2";
  others[2].steps = 30;
  others[3].shift = 5;
  others[4].guidance = 5;
  others[5].tenant = "acme";
  others[6].scheduler = "euler";
  for (const auto& key : others) {
    auto r = lookup(self, actor, key, kRedOnSand);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->hit) << to_compat_key(key).canonical();
  }
  auto same = lookup(self, actor, shapes_key(), kRedOnSand);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->hit);
}

TEST_F(CacheActorTest, ASimilarPromptStartsEarlierPerTheTable) {
  auto actor = spawn(options());
  caf::scoped_actor self{*sys_};
  ASSERT_TRUE(insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1)).ok());
  const std::string similar = "a large red circle moving left on a sand background";
  const float expected_similarity = cosine(kRedOnSand, similar);
  const int expected_step =
      cachestore::StartStepTable::defaults().start_step(expected_similarity, 20, std::vector<int>{4, 8, 12});
  ASSERT_GT(expected_step, 0) << "similarity " << expected_similarity << ": pick a closer prompt";
  ASSERT_LT(expected_step, 12) << "similarity " << expected_similarity << ": pick a farther prompt";
  auto hit = lookup(self, actor, shapes_key(), similar);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  ASSERT_TRUE(hit->hit);
  EXPECT_NEAR(hit->similarity, expected_similarity, 1e-5);
  EXPECT_EQ(hit->start_step, expected_step);
  EXPECT_EQ(hit->sources, (std::vector<std::string>{kRedOnSand}));
  EXPECT_LT(max_abs_diff(*latent_from_wire(hit->latent), make_latent(1, expected_step)), 0.05F);
}

TEST_F(CacheActorTest, ComposedHitsNameTheirPartsBackgroundFirst) {
  auto actor = spawn(options());
  caf::scoped_actor self{*sys_};
  auto a = insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1, {4, 8, 12}, left_half_mask()));
  auto b = insert(self, actor, make_insert(shapes_key(), kBlueOnNavy, 2, {4, 8, 12}, left_half_mask()));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, 3u);  // whole, background, object
  EXPECT_EQ(*b, 3u);
  // Red circle (the first entry's object) on navy (the second's background): never seen whole.
  auto hit = lookup(self, actor, shapes_key(), "a large red circle moving right on a navy background");
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  ASSERT_TRUE(hit->hit);
  EXPECT_EQ(hit->kind, static_cast<int32_t>(cachestore::HitKind::composed));
  EXPECT_EQ(hit->sources, (std::vector<std::string>{kBlueOnNavy, kRedOnSand}));
  EXPECT_EQ(hit->entries.size(), 2u);
  EXPECT_GT(hit->start_step, 0);
  auto st = stats(self, actor);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->composed_hits, 1u);
  EXPECT_EQ(st->entries, 6u);
}

TEST_F(CacheActorTest, JobsThroughOneActorSeeEachOthersEntries) {
  auto actor = spawn(options());
  {
    caf::scoped_actor job1{*sys_}, job2{*sys_};
    ASSERT_TRUE(insert(job1, actor, make_insert(shapes_key(), kRedOnSand, 1)).ok());
    auto seen = lookup(job2, actor, shapes_key(), kRedOnSand);
    ASSERT_TRUE(seen.ok() && seen->hit);
    ASSERT_TRUE(insert(job2, actor, make_insert(shapes_key(), kBlueOnNavy, 2)).ok());
    auto back = lookup(job1, actor, shapes_key(), kBlueOnNavy);
    ASSERT_TRUE(back.ok() && back->hit);
    EXPECT_EQ(back->sources, (std::vector<std::string>{kBlueOnNavy}));
  }
  // Jobs on threads of their own, at once: every insert lands, every job finds its own prompt.
  constexpr int kJobs = 4, kEach = 3;
  std::vector<std::thread> jobs;
  std::atomic<int> found{0};
  for (int j = 0; j < kJobs; ++j) {
    jobs.emplace_back([&, j] {
      caf::scoped_actor self{*sys_};
      for (int i = 0; i < kEach; ++i) {
        const std::string prompt = "prompt " + std::to_string(j) + " of job number " + std::to_string(i);
        if (!insert(self, actor, make_insert(shapes_key(), prompt, 10 * j + i)).ok()) continue;
        auto r = lookup(self, actor, shapes_key(), prompt);
        if (r.ok() && r->hit && r->sources == std::vector<std::string>{prompt}) ++found;
      }
    });
  }
  for (auto& t : jobs) t.join();
  EXPECT_EQ(found.load(), kJobs * kEach);
  caf::scoped_actor self{*sys_};
  auto st = stats(self, actor);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->entries, 2u + kJobs * kEach);
}

TEST_F(CacheActorTest, AReopenedActorFindsTheEntries) {
  caf::scoped_actor self{*sys_};
  auto first = spawn(options());
  ASSERT_TRUE(insert(self, first, make_insert(shapes_key(), kRedOnSand, 1)).ok());
  auto final_stats = close(self, first);
  ASSERT_TRUE(final_stats.ok()) << final_stats.error().message;
  EXPECT_EQ(final_stats->entries, 1u);
  // Closed: the actor is gone, and says so as an error, not a hang.
  auto gone = lookup(self, first, shapes_key(), kRedOnSand);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, Errc::io_error) << gone.error().message;

  auto second = open_cache_store(*sys_, options());  // the directory is free again at once
  ASSERT_TRUE(second.ok()) << second.error().message;
  actors_.push_back(*second);
  auto hit = lookup(self, *second, shapes_key(), kRedOnSand);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  ASSERT_TRUE(hit->hit);
  EXPECT_EQ(hit->start_step, 12);
  auto st = stats(self, *second);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->entries, 1u);
  EXPECT_EQ(st->inserted, 0u);  // counters are since this open
}

TEST_F(CacheActorTest, ABadDirectoryIsAnErrorReplyToEveryMessage) {
  fs::create_directories(dir_);
  { std::ofstream(dir_ / "not-a-dir") << "a file where the cache should be"; }
  auto o = options("not-a-dir");
  auto actor = spawn(o);
  caf::scoped_actor self{*sys_};
  auto r = lookup(self, actor, shapes_key(), kRedOnSand);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(o.path), std::string::npos) << r.error().message;
  const Errc code = r.error().code;
  EXPECT_TRUE(code == Errc::io_error || code == Errc::invalid_argument) << r.error().message;
  auto i = insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1));
  ASSERT_FALSE(i.ok());
  EXPECT_EQ(i.error().code, code);
  auto s = stats(self, actor);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, code);
  // Still alive; close answers (nothing was open) and ends it.
  auto c = close(self, actor);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->entries, 0u);

  auto opened = open_cache_store(*sys_, o);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, code);
  auto no_path = open_cache_store(*sys_, cachestore::CacheOptions{});
  ASSERT_FALSE(no_path.ok());
  EXPECT_EQ(no_path.error().code, Errc::invalid_argument);
}

// Every prompt is the same vector: whatever the prompt, a stored entry is a hit of similarity 1.
class ConstantEmbedder final : public cachestore::Embedder {
 public:
  [[nodiscard]] int dim() const override { return 4; }
  [[nodiscard]] std::string name() const override { return "constant-test"; }
  [[nodiscard]] std::vector<float> embed(std::string_view) const override { return {1.0F, 0.0F, 0.0F, 0.0F}; }
};

TEST_F(CacheActorTest, TheEmbedderFactoryDecidesHowPromptsCompare) {
  constexpr const char* kOther = "a small green square moving up on a checkered background";
  caf::scoped_actor self{*sys_};
  {  // the default n-gram embedder: an unrelated prompt misses
    auto actor = spawn(options("ngram"));
    ASSERT_TRUE(insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1)).ok());
    auto other = lookup(self, actor, shapes_key(), kOther);
    ASSERT_TRUE(other.ok()) << other.error().message;
    EXPECT_FALSE(other->hit);
    auto st = stats(self, actor);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->embedder.rfind("ngram-v1(", 0), 0u) << st->embedder;
  }
  int made = 0;
  auto opened = open_cache_store(*sys_, options("constant"), [&made]() -> Expected<std::unique_ptr<cachestore::Embedder>> {
    ++made;
    return std::unique_ptr<cachestore::Embedder>(std::make_unique<ConstantEmbedder>());
  });
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  actors_.push_back(*opened);
  ASSERT_TRUE(insert(self, *opened, make_insert(shapes_key(), kRedOnSand, 1)).ok());
  auto other = lookup(self, *opened, shapes_key(), kOther);
  ASSERT_TRUE(other.ok()) << other.error().message;
  EXPECT_TRUE(other->hit);
  EXPECT_NEAR(other->similarity, 1.0F, 1e-6);
  auto st = stats(self, *opened);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->embedder, "constant-test");
  EXPECT_EQ(made, 1);  // once, at open

  // A factory that fails is the open's error, with what it said.
  auto failed = open_cache_store(*sys_, options("failing"), []() -> Expected<std::unique_ptr<cachestore::Embedder>> {
    return make_error(Errc::not_found, "no model named 'gone'");
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::not_found);
  EXPECT_NE(failed.error().message.find("prompt embedder: no model named 'gone'"), std::string::npos)
      << failed.error().message;
}

TEST_F(CacheActorTest, ASecondActorOnAHeldDirectoryErrsAndTheFirstKeepsServing) {
  auto first = open_cache_store(*sys_, options());
  ASSERT_TRUE(first.ok()) << first.error().message;
  actors_.push_back(*first);
  auto second = open_cache_store(*sys_, options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::io_error) << second.error().message;
  caf::scoped_actor self{*sys_};
  ASSERT_TRUE(insert(self, *first, make_insert(shapes_key(), kRedOnSand, 1)).ok());
  EXPECT_TRUE(lookup(self, *first, shapes_key(), kRedOnSand)->hit);
}

TEST_F(CacheActorTest, ACorruptEntryIsDroppedAndMissesAsInReelGenerate) {
  auto o = options();
  o.compress = false;
  caf::scoped_actor self{*sys_};
  {
    auto actor = spawn(o);
    ASSERT_TRUE(insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1)).ok());
    ASSERT_TRUE(close(self, actor).ok());
  }
  // Flip a byte in the middle of every stored latent.
  int damaged = 0;
  cachestore::testing::with_raw_db(o.path, [&](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), cf[1]));  // "entries"
    std::vector<std::pair<std::string, std::string>> values;
    for (it->SeekToFirst(); it->Valid(); it->Next()) values.emplace_back(it->key().ToString(), it->value().ToString());
    for (auto& [key, value] : values) {
      value[value.size() / 2] ^= 0x10;
      ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), cf[1], key, value).ok());
      ++damaged;
    }
  });
  ASSERT_EQ(damaged, 3);
  auto actor = spawn(o);
  auto r = lookup(self, actor, shapes_key(), kRedOnSand);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->hit);  // never the damaged latent
  auto st = stats(self, actor);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->corrupted, 1u);
  EXPECT_EQ(st->entries, 0u);
  EXPECT_EQ(st->misses, 1u);
  // The cache refills.
  ASSERT_TRUE(insert(self, actor, make_insert(shapes_key(), kRedOnSand, 1)).ok());
  auto again = lookup(self, actor, shapes_key(), kRedOnSand);
  ASSERT_TRUE(again.ok() && again->hit);
  EXPECT_EQ(*latent_from_wire(again->latent), make_latent(1, 12));
}

TEST_F(CacheActorTest, BadInsertsAndLookupsAreErrorReplies) {
  auto actor = spawn(options());
  caf::scoped_actor self{*sys_};
  // The error an insert fails with (internal "no error" when it succeeds).
  auto code_of = [&](CacheInsert in) {
    auto r = insert(self, actor, std::move(in));
    return std::optional<Error>(r.ok() ? make_error(Errc::internal, "no error") : r.error());
  };
  // Key mismatch: latents of 4 frames for a key of 8, or of 16x16 cells for 16x32 pixels.
  CacheKey eight = shapes_key();
  eight.frames = 8;
  auto e = code_of(make_insert(eight, kRedOnSand, 1));
  EXPECT_EQ(e->code, Errc::invalid_argument);
  EXPECT_NE(e->message.find("key mismatch"), std::string::npos) << e->message;
  CacheKey wide = shapes_key();
  wide.width = 32;
  e = code_of(make_insert(wide, kRedOnSand, 1));
  EXPECT_EQ(e->code, Errc::invalid_argument);
  EXPECT_NE(e->message.find("key mismatch"), std::string::npos) << e->message;
  // Steps and latents that do not pair up, a step that repeats, a step out of the schedule.
  CacheInsert unpaired = make_insert(shapes_key(), kRedOnSand, 1);
  unpaired.steps.pop_back();
  EXPECT_EQ(code_of(unpaired)->code, Errc::invalid_argument);
  EXPECT_EQ(code_of(make_insert(shapes_key(), kRedOnSand, 1, {4, 4}))->code, Errc::invalid_argument);
  EXPECT_EQ(code_of(make_insert(shapes_key(), kRedOnSand, 1, {25}))->code, Errc::invalid_argument);
  EXPECT_EQ(code_of(make_insert(shapes_key(), kRedOnSand, 1, {}))->code, Errc::invalid_argument);
  // A mask of the wrong size.
  EXPECT_EQ(code_of(make_insert(shapes_key(), kRedOnSand, 1, {4}, std::string(10, '\1')))->code,
            Errc::invalid_argument);
  // Damaged latent bytes.
  CacheInsert damaged = make_insert(shapes_key(), kRedOnSand, 1);
  damaged.latents[1].bytes[damaged.latents[1].bytes.size() / 2] ^= 0x01;
  EXPECT_EQ(code_of(damaged)->code, Errc::corrupt_data);
  // A schedule without steps.
  CacheKey none = shapes_key();
  none.steps = 0;
  auto l = lookup(self, actor, none, kRedOnSand);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::invalid_argument);
  auto steps = ask<CacheSteps>(self, actor, cache_steps_atom::value, int32_t{0});
  ASSERT_FALSE(steps.ok());
  EXPECT_EQ(steps.error().code, Errc::invalid_argument);
  // None of it stored anything, and the actor still serves.
  auto st = stats(self, actor);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->entries, 0u);
  auto good = ask<CacheSteps>(self, actor, cache_steps_atom::value, int32_t{10});
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->steps, (std::vector<int32_t>{2, 4, 6}));
}

TEST_F(CacheActorTest, ActorCacheAnswersAMissWhenTheActorFails) {
  fs::create_directories(dir_);
  { std::ofstream(dir_ / "file") << "x"; }
  auto actor = spawn(options("file"));
  caf::scoped_actor self{*sys_};
  const auto key = to_compat_key(shapes_key());
  ActorCache lenient(self.ptr(), actor);
  auto r = lenient.lookup(key, kRedOnSand);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  ASSERT_TRUE(lenient.lookup_error().has_value());
  EXPECT_FALSE(lenient.insert(key, kRedOnSand, {{4, make_latent(1, 4)}}, {}).ok());
  ActorCache strict(self.ptr(), actor, ActorCache::Options{.timeout = 60s, .lookup_errors_miss = false});
  EXPECT_FALSE(strict.lookup(key, kRedOnSand).ok());
  EXPECT_FALSE(strict.capture_steps(20).ok());
}

// The protocol's payloads as another node reads them (testing::across_nodes: the test below
// reaches the actor through the middleman, but within one process CAF hands back the actor
// itself and serialises nothing).
TEST_F(CacheActorTest, ItsMessagesCrossToAnotherNode) {
  CacheInsert in = make_insert(shapes_key(), kRedOnSand, 1, {4, 8}, left_half_mask());
  CacheStart start;
  start.hit = true;
  start.start_step = 8;
  start.similarity = 0.9F;
  start.latent = *latent_to_wire(make_latent(2, 8));
  start.sources = {kRedOnSand};
  start.capture_steps = {4, 8, 12};
  CacheStoreStats stats;
  stats.path = "/cache";
  stats.hits = 3;
  stats.embedder = "ngram-v1(dim=1024)";
  const caf::message got = testing::across_nodes(caf::make_message(in, start, stats, shapes_key()));
  ASSERT_TRUE((got.match_elements<CacheInsert, CacheStart, CacheStoreStats, CacheKey>()));
  const auto& in2 = got.get_as<CacheInsert>(0);
  EXPECT_EQ(in2.prompt, in.prompt);
  EXPECT_EQ(in2.steps, in.steps);
  EXPECT_EQ(in2.object_mask, in.object_mask);
  ASSERT_EQ(in2.latents.size(), 2u);
  EXPECT_EQ(*latent_from_wire(in2.latents[1]), make_latent(1, 8));
  const auto& start2 = got.get_as<CacheStart>(1);
  EXPECT_TRUE(start2.hit);
  EXPECT_EQ(start2.start_step, 8);
  EXPECT_EQ(*latent_from_wire(start2.latent), make_latent(2, 8));
  EXPECT_EQ(start2.sources, start.sources);
  EXPECT_EQ(start2.capture_steps, start.capture_steps);
  EXPECT_EQ(got.get_as<CacheStoreStats>(2).embedder, stats.embedder);
  EXPECT_EQ(got.get_as<CacheStoreStats>(2).hits, 3u);
  EXPECT_EQ(got.get_as<CacheKey>(3).model, shapes_key().model);
}

TEST_F(CacheActorTest, ServesARemoteNode) {
  auto o = options();
  o.compress = false;
  auto actor = spawn(o);
  auto port = sys_->middleman().publish(actor, 0, "127.0.0.1", true);
  ASSERT_TRUE(port) << sys_->render(port.error());
  testing::ActorSystem other;
  auto remote = other.system.middleman().remote_actor<cache_store_actor>("127.0.0.1", *port);
  ASSERT_TRUE(remote) << other.system.render(remote.error());
  {
    caf::scoped_actor self{other.system};
    ActorCache client(self.ptr(), *remote, ActorCache::Options{.timeout = 60s, .lookup_errors_miss = false});
    const auto key = to_compat_key(shapes_key());
    ASSERT_TRUE(client.insert(key, kRedOnSand, {{4, make_latent(1, 4)}, {8, make_latent(1, 8)}, {12, make_latent(1, 12)}},
                              {})
                    .ok());
    auto hit = client.lookup(key, kRedOnSand);
    ASSERT_TRUE(hit.ok()) << hit.error().message;
    ASSERT_TRUE(hit->has_value());
    EXPECT_EQ((*hit)->start_step, 12);
    EXPECT_EQ((*hit)->latent, make_latent(1, 12));
    EXPECT_EQ((*hit)->sources, (std::vector<std::string>{kRedOnSand}));
    auto steps = client.capture_steps(20);
    ASSERT_TRUE(steps.ok());
    EXPECT_EQ(*steps, (std::vector<int>{4, 8, 12}));
    // A reel error crosses the network as it was sent.
    auto mismatch = client.insert(to_compat_key([] {
                                    auto k = shapes_key();
                                    k.frames = 8;
                                    return k;
                                  }()),
                                  kRedOnSand, {{4, make_latent(1, 4)}}, {});
    ASSERT_FALSE(mismatch.ok());
    EXPECT_EQ(mismatch.error().code, Errc::invalid_argument);
    EXPECT_NE(mismatch.error().message.find("key mismatch"), std::string::npos) << mismatch.error().message;
    auto st = ask<CacheStoreStats>(self, *remote, cache_stats_atom::value);
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_EQ(st->entries, 1u);
    EXPECT_EQ(st->whole_hits, 1u);
  }
}

// The coordinator's way (sample_cached over the actor) against `reel generate --cache`'s (over
// a LocalCache), prompt by prompt with the tiny model: the same hits from the same steps, the
// same videos, and caches that end with the same entries.
TEST_F(CacheActorTest, AJobThroughTheActorMatchesReelGenerateCache) {
  torch::NoGradGuard no_grad;
  at::set_num_threads(1);
  auto model = testing::tiny_model();
  pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
  const std::vector<int64_t> shape{1, 3, 8, 32, 32};
  auto weights = weights_file_checksum(model.source);
  ASSERT_TRUE(weights.ok());
  EXPECT_EQ(*weights, "builtin");

  auto local_cache = cachestore::ApproxCache::open(options("local"), std::make_unique<cachestore::NgramEmbedder>());
  ASSERT_TRUE(local_cache.ok()) << local_cache.error().message;
  LocalCache local(**local_cache);
  auto actor = spawn(options("actor"));
  caf::scoped_actor self{*sys_};
  ActorCache remote(self.ptr(), actor, ActorCache::Options{.timeout = 60s, .lookup_errors_miss = false});

  const std::vector<std::string> prompts = {
      kRedOnSand,
      kRedOnSand,                                              // the same: a whole hit
      kBlueOnNavy,
      "a large red circle moving right on a navy background",  // parts of both
      "a large red circle moving left on a sand background",   // similar: an earlier start
  };
  int hits = 0;
  std::vector<std::string> kinds;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& prompt = prompts[i];
    pipeline::SampleOptions opts;
    opts.steps = 10;
    opts.shift = 3;
    opts.solver = models::SolverKind::unipc;
    opts.guidance = 4;
    opts.seed = 100 + i;
    const auto key = compat_key(model, *weights, opts, shape, "");
    const auto cond = testing::conditioning(model, prompt);
    auto a = sample_cached(denoiser, model, cond, shape, opts, &local, key, prompt);
    auto b = sample_cached(denoiser, model, cond, shape, opts, &remote, key, prompt);
    ASSERT_TRUE(a.ok()) << a.error().message;
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_FALSE(a->insert_error) << a->insert_error->message;
    EXPECT_FALSE(b->insert_error) << b->insert_error->message;
    EXPECT_EQ(a->hit, b->hit) << prompt;
    EXPECT_EQ(a->start_step, b->start_step) << prompt;
    EXPECT_EQ(a->similarity, b->similarity) << prompt;
    EXPECT_EQ(a->sources, b->sources) << prompt;
    EXPECT_TRUE(torch::equal(a->result.latent, b->result.latent)) << prompt;
    hits += a->hit ? 1 : 0;
    kinds.push_back(a->hit ? (*a->hit == cachestore::HitKind::whole ? "whole" : "composed") : "miss");
  }
  EXPECT_GE(hits, 2);
  // Every path was taken: misses, a whole hit, a composed hit (the decoupled entries of an
  // insert with an object mask), a similar prompt's earlier start.
  EXPECT_EQ(kinds, (std::vector<std::string>{"miss", "whole", "miss", "composed", "whole"}));
  const auto want = (*local_cache)->stats();
  auto got = stats(self, actor);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->entries, want.store.entries);
  EXPECT_EQ(got->bytes, want.store.bytes);
  EXPECT_EQ(got->inserted, want.entries_inserted);
  EXPECT_EQ(got->whole_hits, want.whole_hits);
  EXPECT_EQ(got->composed_hits, want.composed_hits);
  EXPECT_EQ(got->misses, want.misses);
  EXPECT_EQ(got->steps_saved, want.steps_saved);
}

}  // namespace
}  // namespace reel::actors
