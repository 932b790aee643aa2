#include "actors/job_store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/coordinator.hpp"
#include "actors/messages.hpp"
#include "pool_support.hpp"

namespace reel::actors {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("reel_job_store_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

JobSpec sample_spec() {
  JobSpec s;
  s.prompt = "a small blue square moving left on a plain white background";
  s.model = "shapes-s";
  s.mode = JobMode::fifo;
  s.frames = 48;
  s.width = 32;
  s.height = 32;
  s.steps = 16;
  s.guidance = 4.5;
  s.shift = 3.0;
  s.solver = "unipc";
  s.seed = 0xFFFFFFFFFFFFULL;  // wider than 32 bits: ids and seeds keep every bit
  s.fps = 8;
  s.crf = 20;
  s.upscale = 4;
  s.upscale_filter = "bicubic";
  s.out = "out/x.mp4";
  s.sheet = "out/x.png";
  s.partitions = 2;
  s.lookahead = false;
  s.clips = 3;
  s.context_frames = 1;
  s.global_frames = 2;
  s.cfg_parallel = true;
  return s;
}

void expect_same(const JobSpec& a, const JobSpec& b) {
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.frames, b.frames);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.guidance, b.guidance);
  EXPECT_EQ(a.shift, b.shift);
  EXPECT_EQ(a.solver, b.solver);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.fps, b.fps);
  EXPECT_EQ(a.crf, b.crf);
  EXPECT_EQ(a.upscale, b.upscale);
  EXPECT_EQ(a.upscale_filter, b.upscale_filter);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.sheet, b.sheet);
  EXPECT_EQ(a.partitions, b.partitions);
  EXPECT_EQ(a.lookahead, b.lookahead);
  EXPECT_EQ(a.clips, b.clips);
  EXPECT_EQ(a.context_frames, b.context_frames);
  EXPECT_EQ(a.global_frames, b.global_frames);
  EXPECT_EQ(a.cfg_parallel, b.cfg_parallel);
}

TEST_F(JobStoreTest, RoundTripsASpecAndItsProgress) {
  auto store = JobStore::open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto created = (*store)->create(sample_spec());
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_EQ(created->id, 1u);
  EXPECT_EQ(created->state, JobState::queued);
  EXPECT_GT(created->created_ms, 0);

  auto read = (*store)->get(created->id);
  ASSERT_TRUE(read.ok()) << read.error().message;
  expect_same(read->spec, sample_spec());

  JobRecord r = *read;
  r.state = JobState::done;
  r.done = r.total = 48;
  r.result = "out/x.mp4";
  r.stats.model_calls = 123;
  r.stats.sample_seconds = 1.25;
  r.stats.workers = 2;
  r.attempts = 1;
  r.finished_ms = 42;
  ASSERT_TRUE((*store)->put(r).ok());
  auto again = (*store)->get(r.id);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->state, JobState::done);
  EXPECT_EQ(again->done, 48);
  EXPECT_EQ(again->result, "out/x.mp4");
  EXPECT_EQ(again->stats.model_calls, 123);
  EXPECT_EQ(again->stats.sample_seconds, 1.25);
  EXPECT_EQ(again->stats.workers, 2);
  EXPECT_EQ(again->attempts, 1);
  EXPECT_EQ(again->finished_ms, 42);
}

TEST_F(JobStoreTest, KeepsJobsAndIdsAcrossAReopen) {
  {
    auto store = JobStore::open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    ASSERT_TRUE((*store)->create(sample_spec()).ok());
    ASSERT_TRUE((*store)->create(sample_spec()).ok());
  }
  auto store = JobStore::open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto scan = (*store)->scan();
  ASSERT_TRUE(scan.ok()) << scan.error().message;
  ASSERT_EQ(scan->records.size(), 2u);
  EXPECT_TRUE(scan->corrupt.empty());
  EXPECT_EQ(scan->records[0].id, 1u);
  EXPECT_EQ(scan->records[1].id, 2u);
  auto third = (*store)->create(sample_spec());
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->id, 3u);  // never reused
}

TEST_F(JobStoreTest, AnErasedJobIsGoneAfterAReopenAndItsIdIsNotReused) {
  {
    auto store = JobStore::open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    auto spec = sample_spec();
    spec.negative_prompt = "a blue square";
    spec.cache = false;
    ASSERT_TRUE((*store)->create(spec).ok());
    ASSERT_TRUE((*store)->create(sample_spec()).ok());
    ASSERT_TRUE((*store)->erase(2).ok());
    EXPECT_EQ((*store)->erase(2).error().code, reel::Errc::not_found);
    EXPECT_EQ((*store)->get(2).error().code, reel::Errc::not_found);
  }
  auto store = JobStore::open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto scan = (*store)->scan();
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->records.size(), 1u);
  EXPECT_EQ(scan->records[0].spec.negative_prompt, "a blue square");
  EXPECT_FALSE(scan->records[0].spec.cache);
  EXPECT_EQ((*store)->create(sample_spec())->id, 3u);
}

TEST_F(JobStoreTest, ReportsACorruptRecordByItsIdAndReadsTheOthers) {
  auto store = JobStore::open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto good = (*store)->create(sample_spec());
  auto bad = (*store)->create(sample_spec());
  ASSERT_TRUE(good.ok() && bad.ok());

  // A valid JSON record under a checksum that does not match it: a flipped bit on disk.
  ASSERT_TRUE((*store)->write_raw(bad->id, "0123456789abcdef " + job_to_json(*bad)).ok());
  auto read = (*store)->get(bad->id);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, Errc::corrupt_data);
  EXPECT_NE(read.error().message.find("job " + std::to_string(bad->id)), std::string::npos) << read.error().message;

  // Plain garbage and a truncated value.
  ASSERT_TRUE((*store)->write_raw(bad->id, "not a record").ok());
  EXPECT_EQ((*store)->get(bad->id).error().code, Errc::corrupt_data);
  ASSERT_TRUE((*store)->write_raw(bad->id, "").ok());
  EXPECT_EQ((*store)->get(bad->id).error().code, Errc::corrupt_data);

  auto scan = (*store)->scan();
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->records.size(), 1u);
  EXPECT_EQ(scan->records[0].id, good->id);
  ASSERT_EQ(scan->corrupt.size(), 1u);
  EXPECT_NE(scan->corrupt[0].message.find("job " + std::to_string(bad->id)), std::string::npos);
}

TEST(JobStoreJson, RejectsMissingAndMistypedFields) {
  JobRecord r;
  r.id = 7;
  r.spec = sample_spec();
  auto back = job_from_json(job_to_json(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_same(back->spec, r.spec);

  std::string text = job_to_json(r);
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  auto e1 = job_from_json(replace("\"state\":\"queued\"", "\"state\":\"sleeping\""));
  ASSERT_FALSE(e1.ok());
  EXPECT_EQ(e1.error().code, Errc::corrupt_data);
  auto e2 = job_from_json(replace("\"frames\":48", "\"frames\":\"48\""));
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.error().message.find("frames"), std::string::npos) << e2.error().message;
  auto e3 = job_from_json(replace("\"mode\":\"fifo\"", "\"mode\":\"sideways\""));
  ASSERT_FALSE(e3.ok());
  EXPECT_FALSE(job_from_json("[1, 2, 3]").ok());
  EXPECT_FALSE(job_from_json("{\"id\": 1").ok());
}

TEST_F(JobStoreTest, PutOfAnUnknownJobIsNotFound) {
  auto store = JobStore::open(dir_.string());
  ASSERT_TRUE(store.ok());
  JobRecord r;
  r.id = 99;
  auto st = (*store)->put(r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::not_found);
  EXPECT_EQ((*store)->get(99).error().code, Errc::not_found);
}

TEST_F(JobStoreTest, ActorCreatesGetsAndListsThroughMessages) {
  caf::actor_system_config cfg;
  configure(cfg);
  caf::actor_system sys{cfg};
  auto store = spawn_job_store(sys, dir_.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  caf::scoped_actor self{sys};
  JobRecord created;
  self->request(*store, caf::infinite, job_create_atom::value, sample_spec())
      .receive([&](JobRecord& r) { created = std::move(r); }, [&](caf::error& e) { FAIL() << sys.render(e); });
  EXPECT_EQ(created.id, 1u);
  self->request(*store, caf::infinite, job_get_atom::value, uint64_t{5})
      .receive([&](JobRecord&) { FAIL() << "job 5 does not exist"; },
               [&](caf::error& e) { EXPECT_EQ(from_caf_error(e).code, Errc::not_found); });
  created.state = JobState::running;
  self->request(*store, caf::infinite, job_put_atom::value, created)
      .receive([&](uint64_t id) { EXPECT_EQ(id, 1u); }, [&](caf::error& e) { FAIL() << sys.render(e); });
  self->request(*store, caf::infinite, job_list_atom::value)
      .receive(
          [&](std::vector<JobRecord>& records, std::vector<std::string>& corrupt) {
            ASSERT_EQ(records.size(), 1u);
            EXPECT_EQ(records[0].state, JobState::running);
            EXPECT_TRUE(corrupt.empty());
          },
          [&](caf::error& e) { FAIL() << sys.render(e); });
  self->send_exit(*store, caf::exit_reason::user_shutdown);
}

// The list reply as a client on another node reads it.
TEST_F(JobStoreTest, ItsListReplyCrossesToAnotherNode) {
  JobRecord record;
  record.id = 7;
  record.spec = sample_spec();
  record.state = JobState::running;
  const caf::message got =
      testing::across_nodes(caf::make_message(std::vector<JobRecord>{record}, std::vector<std::string>{"3: bad json"}));
  ASSERT_TRUE((got.match_elements<std::vector<JobRecord>, std::vector<std::string>>()));
  const auto& records = got.get_as<std::vector<JobRecord>>(0);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].id, 7u);
  EXPECT_EQ(records[0].spec.prompt, sample_spec().prompt);
  EXPECT_EQ(records[0].state, JobState::running);
  EXPECT_EQ(got.get_as<std::vector<std::string>>(1), std::vector<std::string>{"3: bad json"});
}

TEST_F(JobStoreTest, CannotBeOpenedTwice) {
  auto first = JobStore::open(dir_.string());
  ASSERT_TRUE(first.ok());
  auto second = JobStore::open(dir_.string());  // RocksDB's lock: one process, one owner
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::io_error);
}

}  // namespace
}  // namespace reel::actors
