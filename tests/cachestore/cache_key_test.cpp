#include "cachestore/cache_key.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace reel::cachestore {
namespace {

CompatKey base_key() {
  CompatKey key;
  key.model = "wan2.1-t2v-1.3b";
  key.weights_hash = "9f2c";
  key.scheduler = "flow_euler";
  key.steps = 30;
  key.shift = 5.0;
  key.height = 480;
  key.width = 832;
  key.frames = 81;
  key.guidance = 5.5;
  key.prediction = "flow";
  key.embedder = "tfidf-v1";
  key.tenant = "";
  return key;
}

TEST(CompatKey, CanonicalFormIsStableAcrossBuilds) {
  // Stored with every entry: a change here orphans every cache on disk, so it must be on
  // purpose (bump the version in cache_key.cpp).
  EXPECT_EQ(base_key().canonical(),
            "reel.compat.v1;model=15:wan2.1-t2v-1.3b;weights=4:9f2c;scheduler=10:flow_euler;"
            "steps=30;shift=5;height=480;width=832;frames=81;guidance=5.5;prediction=4:flow;"
            "embedder=8:tfidf-v1;tenant=0:");
  EXPECT_EQ(base_key().hash(), base_key().hash());
  EXPECT_EQ(base_key().hash(), compat_hash(base_key().canonical()));
}

TEST(CompatKey, KeysDifferingInAnyOneFieldNeverShareAHashOrCanonicalForm) {
  std::vector<std::pair<std::string, std::function<void(CompatKey&)>>> changes = {
      {"model", [](CompatKey& k) { k.model = "wan2.1-t2v-14b"; }},
      {"weights_hash", [](CompatKey& k) { k.weights_hash = "9f2d"; }},
      {"scheduler", [](CompatKey& k) { k.scheduler = "flow_unipc"; }},
      {"steps", [](CompatKey& k) { k.steps = 31; }},
      {"shift", [](CompatKey& k) { k.shift = 5.000001; }},
      {"height", [](CompatKey& k) { k.height = 481; }},
      {"width", [](CompatKey& k) { k.width = 833; }},
      {"frames", [](CompatKey& k) { k.frames = 80; }},
      {"guidance", [](CompatKey& k) { k.guidance = 6.0; }},
      {"prediction", [](CompatKey& k) { k.prediction = "eps"; }},
      {"embedder", [](CompatKey& k) { k.embedder = "tfidf-v2"; }},
      {"tenant", [](CompatKey& k) { k.tenant = "acme"; }},
  };
  std::set<std::string> canonicals{base_key().canonical()};
  std::set<uint64_t> hashes{base_key().hash()};
  for (const auto& [field, change] : changes) {
    CompatKey key = base_key();
    change(key);
    EXPECT_NE(key, base_key()) << field;
    EXPECT_NE(key.canonical(), base_key().canonical()) << field;
    EXPECT_NE(key.hash(), base_key().hash()) << field;
    canonicals.insert(key.canonical());
    hashes.insert(key.hash());
  }
  EXPECT_EQ(canonicals.size(), changes.size() + 1);
  EXPECT_EQ(hashes.size(), changes.size() + 1);
}

TEST(CompatKey, TextInOneFieldCannotImitateAnother) {
  // Written without length prefixes, both would read "model=a;weights=b;weights=c".
  CompatKey left = base_key();
  left.model = std::string("a;weights=b");
  left.weights_hash = std::string("c");
  CompatKey right = base_key();
  right.model = std::string("a");
  right.weights_hash = std::string("b;weights=c");
  EXPECT_NE(left.canonical(), right.canonical());
  EXPECT_NE(left.hash(), right.hash());

  CompatKey tenant_a = base_key();
  tenant_a.embedder = std::string("e;tenant=t");
  tenant_a.tenant = std::string("");
  CompatKey tenant_b = base_key();
  tenant_b.embedder = std::string("e");
  tenant_b.tenant = std::string("t");
  EXPECT_NE(tenant_a.canonical(), tenant_b.canonical());
  EXPECT_NE(tenant_a.hash(), tenant_b.hash());
}

TEST(CompatKey, TenantsAreSeparateNamespacesAndEmptyIsTheSharedOne) {
  CompatKey shared = base_key();
  CompatKey acme = base_key();
  acme.tenant = "acme";
  CompatKey globex = base_key();
  globex.tenant = "globex";
  EXPECT_NE(shared.hash(), acme.hash());
  EXPECT_NE(acme.hash(), globex.hash());
  EXPECT_NE(shared.canonical(), acme.canonical());
}

TEST(CompatKey, DoublesAreWrittenExactlyAndNegativeZeroIsZero) {
  CompatKey a = base_key();
  CompatKey b = base_key();
  a.guidance = 0.1 + 0.2;  // 0.30000000000000004
  b.guidance = 0.3;
  EXPECT_NE(a.canonical(), b.canonical());

  CompatKey zero = base_key();
  CompatKey negative_zero = base_key();
  zero.shift = 0.0;
  negative_zero.shift = -0.0;
  EXPECT_EQ(zero.canonical(), negative_zero.canonical());
  EXPECT_EQ(zero.hash(), negative_zero.hash());
}

}  // namespace
}  // namespace reel::cachestore
