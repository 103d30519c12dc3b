// WorkService's share of the gossip: changes to a known scan leave as small
// deltas (pool_state.h ScanDelta) through WorkEnv::broadcast, a node merges
// the deltas it receives and passes on only what was news to it, and bad or
// unknown payloads change nothing. Three services with their own stores; the
// "network" is the test: it delivers requests and payloads by hand, so
// nothing here depends on timing. No scan is started (no lease is asked
// for: there is no coordinator in the views given).
#include "mesh/agent/work_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mesh/agent/pool_store.h"
#include "store/result_bundle.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // ms

struct Peer {
  std::string dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<WorkService> service;
  NodeId id;
  std::string address;
  std::vector<std::pair<std::string, std::string>> broadcasts;  // (key, payload)
};

class WorkServiceGossip : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint64_t n = 1; n <= 3; ++n) {
      auto p = std::make_unique<Peer>();
      p->dir = ::testing::TempDir() + "/ndo-work-service-" + std::to_string(getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" + std::to_string(n);
      std::filesystem::remove_all(p->dir);
      std::filesystem::create_directories(p->dir);
      auto s = Store::Open(p->dir);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      p->store = std::move(*s);
      p->id = NodeId{0xb0 + n, n};
      p->address = "127.0.0." + std::to_string(n) + ":9";
      Peer* self = p.get();
      WorkEnv env;
      env.request = [this](const std::string& address, const WorkMessage& m, WorkEnv::ReplyHandler on_reply) {
        requests_.push_back({address, m, std::move(on_reply)});
      };
      env.post = [this](std::function<void()> fn) { posted_.push_back(std::move(fn)); };
      env.wall_ms = [this] { return now_ms_; };
      env.broadcast = [self](std::string key, std::string payload) {
        self->broadcasts.emplace_back(std::move(key), std::move(payload));
      };
      WorkConfig cfg;
      p->service = std::make_unique<WorkService>(*p->store, p->id, "dmz", cfg, std::move(env), n);
      ASSERT_TRUE(p->service->Load().ok());
      peers_.push_back(std::move(p));
    }
    for (auto& p : peers_) p->service->Tick(Clock::now(), ViewOf(*p));
  }

  void TearDown() override {
    for (auto& p : peers_) {
      p->service.reset();
      p->store.reset();
      std::filesystem::remove_all(p->dir);
    }
  }

  // Everyone alive and unsuspected; no coordinator, so nobody asks for work.
  MeshView ViewOf(const Peer& self) const {
    MeshView v;
    for (const auto& p : peers_)
      if (p.get() != &self) v.alive.push_back({p->id, p->address, "dmz"});
    v.known = v.unsuspected = v.alive.size();
    return v;
  }

  Peer* At(const std::string& address) {
    for (auto& p : peers_)
      if (p->address == address) return p.get();
    return nullptr;
  }

  // Delivers every queued request and post (and what they cause) in order.
  void Deliver() {
    while (!requests_.empty() || !posted_.empty()) {
      if (!posted_.empty()) {
        auto fn = std::move(posted_.front());
        posted_.pop_front();
        fn();
        continue;
      }
      Request r = std::move(requests_.front());
      requests_.pop_front();
      Peer* to = At(r.address);
      if (!to) {
        r.on_reply(Status::Unavailable("nobody at " + r.address));
        continue;
      }
      to->service->OnMessage(r.message, "dmz", [&](WorkMessage reply) { r.on_reply(std::move(reply)); });
    }
  }

  ScanId SubmitAt(Peer& p) {
    ScanDefinition def;
    def.spec.arguments = {"ndo", "127.0.0.1", "-p", "22,80"};
    def.spec.targets.addresses.Add({IpAddress::FromV4(0x7f000001).value(), IpAddress::FromV4(0x7f000001).value()});
    def.spec.ports = {22, 80};
    def.spec.seed = 5;
    def.spec.shard_count = 4;
    def.vantages = {"dmz"};
    auto id = p.service->Submit(std::move(def));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    Deliver();  // the whole new state is pushed to the others
    return id.ok() ? *id : ScanId{};
  }

  const ScanState* StateAt(Peer& p, const ScanId& id) {
    auto it = p.service->scans().find(id);
    return it == p.service->scans().end() ? nullptr : &it->second;
  }

  struct Request {
    std::string address;
    WorkMessage message;
    WorkEnv::ReplyHandler on_reply;
  };
  std::vector<std::unique_ptr<Peer>> peers_;
  std::deque<Request> requests_;
  std::deque<std::function<void()>> posted_;
  int64_t now_ms_ = kT0;
};

TEST_F(WorkServiceGossip, ANewScanIsPushedWholeAndItsControlRidesTheGossip) {
  Peer &a = *peers_[0], &b = *peers_[1], &c = *peers_[2];
  ScanId id = SubmitAt(a);
  ASSERT_NE(StateAt(b, id), nullptr);
  ASSERT_NE(StateAt(c, id), nullptr);
  EXPECT_TRUE(a.broadcasts.empty()) << "a new scan goes whole by stream, not as a delta";

  now_ms_ += 10;
  ASSERT_TRUE(b.service->SetControl(ScanIdToHex(id), ScanControl::kPaused).ok());
  ASSERT_EQ(b.broadcasts.size(), 1u);
  auto [key, payload] = b.broadcasts.front();
  ASSERT_FALSE(payload.empty());
  EXPECT_EQ(payload.front(), kScanDeltaPayload);
  EXPECT_LT(payload.size(), 200u) << "a control delta is small";
  auto delta = DecodeScanDelta(std::string_view(payload).substr(1));
  ASSERT_TRUE(delta.ok()) << delta.status().ToString();
  EXPECT_TRUE(delta->control.has_value());
  EXPECT_TRUE(delta->shards.empty());

  // a learns it from the payload, and passes it on once: news to it.
  EXPECT_EQ(StateAt(a, id)->control.value, ScanControl::kRunning);
  a.service->OnPayload(payload);
  EXPECT_EQ(StateAt(a, id)->control.value, ScanControl::kPaused);
  ASSERT_EQ(a.broadcasts.size(), 1u);
  EXPECT_EQ(a.broadcasts.front().first, key) << "the same field, the same key: a newer one replaces it";
  // Heard again (gossip repeats itself): nothing new, nothing passed on.
  a.service->OnPayload(payload);
  a.service->OnPayload(a.broadcasts.front().second);
  EXPECT_EQ(a.broadcasts.size(), 1u);
  // c, the same; and the change reaches c's store once the save's
  // debounce has passed (kSaveEveryMs): a restart keeps it.
  c.service->OnPayload(a.broadcasts.front().second);
  EXPECT_EQ(StateAt(c, id)->control.value, ScanControl::kPaused);
  auto early = LoadScanStates(*c.store);
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->at(id).control.value, ScanControl::kRunning) << "saved at most every kSaveEveryMs";
  now_ms_ += kSaveEveryMs;
  c.service->Tick(Clock::now(), ViewOf(c));
  auto saved = LoadScanStates(*c.store);
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->at(id).control.value, ScanControl::kPaused);
}

TEST_F(WorkServiceGossip, BadAndUnknownPayloadsChangeNothing) {
  Peer &a = *peers_[0], &b = *peers_[1];
  ScanId id = SubmitAt(a);
  ASSERT_TRUE(a.service->SetControl(ScanIdToHex(id), ScanControl::kStopped).ok());
  std::string good = a.broadcasts.back().second;
  auto before = EncodeScanState(*StateAt(b, id));
  ASSERT_TRUE(before.ok());

  b.service->OnPayload("");
  b.service->OnPayload("X something else's payload");
  b.service->OnPayload(std::string(1, kScanDeltaPayload) + "garbage");
  b.service->OnPayload(good.substr(0, good.size() / 2));  // truncated
  // A delta of a scan b does not know: ignored (anti-entropy brings scans).
  ScanState other = *StateAt(a, id);
  other.id[0] ^= 1;
  auto unknown = EncodeScanDelta(DeltaOf(other, true, {}));
  ASSERT_TRUE(unknown.ok());
  b.service->OnPayload(kScanDeltaPayload + *unknown);
  // A shard outside the scan: refused whole.
  ScanDelta outside = DeltaOf(*StateAt(a, id), true, {});
  outside.shards.push_back({0, 4, ShardState{}});
  auto outside_bytes = EncodeScanDelta(outside);
  ASSERT_TRUE(outside_bytes.ok());
  b.service->OnPayload(kScanDeltaPayload + *outside_bytes);

  EXPECT_TRUE(b.broadcasts.empty());
  EXPECT_EQ(*EncodeScanState(*StateAt(b, id)), *before);
  EXPECT_EQ(b.service->scans().size(), 1u);
  // The good one still works after all that.
  b.service->OnPayload(good);
  EXPECT_EQ(StateAt(b, id)->control.value, ScanControl::kStopped);
}

std::string Bundle(uint16_t port, int64_t time_us) {
  ProbeResult r;
  r.address = *IpAddress::Parse("127.0.0.1");
  r.port = port;
  r.state = PortState::kOpen;
  r.attempts = 1;
  r.time_us = time_us;
  auto bytes = EncodeResultBundle(std::vector<ProbeResult>{r});
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::string();
}

// A shard scanned twice (its first holder looked dead) has two bundles of
// different digests; the done record names one. A node that holds the
// other fetches the record's, from a holder of it, so that it can serve
// it in turn (CI once saw a node ask, forever, a holder that had been sent
// the other bundle).
TEST_F(WorkServiceGossip, ANodeHoldingTheOtherBundleOfAShardFetchesTheOneItsDoneRecordNames) {
  Peer &a = *peers_[0], &b = *peers_[1], &c = *peers_[2];
  ScanId id = SubmitAt(a);
  std::string first = Bundle(22, 1'000'000), second = Bundle(22, 2'000'000);  // same result, scanned twice
  ASSERT_NE(BundleDigest(first), BundleDigest(second));
  auto put = [&](Peer& to, const std::string& bundle, bool want_ack = true) {
    WorkMessage m;
    m.kind = WorkKind::kBundlePut;
    m.sender = a.id;
    m.scan = id;
    m.vantage = "dmz";
    m.shard = 0;
    m.bundle = bundle;
    bool acked = false;
    to.service->OnMessage(m, "dmz", [&](WorkMessage reply) { acked = reply.kind == WorkKind::kAck; });
    EXPECT_EQ(acked, want_ack);
  };
  put(b, second);  // b was sent the bundle of the scan that lost
  put(c, first);
  // The record that wins names `first`, held by c.
  ScanState done = *StateAt(a, id);
  done.pools[0][0].done = ShardDone{true, 1, BundleDigest(first), {c.id}};
  auto payload = ScanDeltaPayload(DeltaOf(done, false, {{0, 0}}));
  ASSERT_TRUE(payload.ok());
  b.service->OnPayload(*payload);
  ASSERT_TRUE(StateAt(b, id)->pools[0][0].done.done);

  now_ms_ += 2000;
  b.service->Tick(Clock::now() + std::chrono::seconds(2), ViewOf(b));
  Deliver();
  auto held = LoadBundle(*b.store, PoolId(id, "dmz"), 0);
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(BundleDigest(*held), BundleDigest(first)) << "b still holds the other bundle";
  // And it stops asking once it holds it.
  b.service->Tick(Clock::now() + std::chrono::seconds(4), ViewOf(b));
  bool fetched_again = false;
  for (const auto& r : requests_) fetched_again |= r.message.kind == WorkKind::kBundleFetch;
  EXPECT_FALSE(fetched_again);
  // The other bundle, sent again as a replica, does not replace the
  // record's: it is refused, and the record's stays.
  put(b, second, /*want_ack=*/false);
  put(c, second, /*want_ack=*/false);
  EXPECT_EQ(BundleDigest(*LoadBundle(*b.store, PoolId(id, "dmz"), 0)), BundleDigest(first));
  EXPECT_EQ(BundleDigest(*LoadBundle(*c.store, PoolId(id, "dmz"), 0)), BundleDigest(first));
  put(b, first);  // the same again: fine
}

// The other side of the rule above: before a shard is done, a replica from
// the scanner that holds its lease replaces another bundle held here. In
// make demo, b replicated its bundle of a shard to c and was killed before
// it declared the shard done; a rescanned it, and c, the only other member,
// refused a's replica for ever, so the shard never got its second holder.
TEST_F(WorkServiceGossip, AReplicaFromTheLeaseHolderReplacesAnotherBundleBeforeTheShardIsDone) {
  Peer &a = *peers_[0], &c = *peers_[2];
  NodeId dead_scanner = peers_[1]->id;
  ScanId id = SubmitAt(a);
  std::string first = Bundle(22, 1'000'000), second = Bundle(22, 2'000'000);
  auto put = [&](const NodeId& from, const std::string& bundle) {
    WorkMessage m;
    m.kind = WorkKind::kBundlePut;
    m.sender = from;
    m.scan = id;
    m.vantage = "dmz";
    m.shard = 0;
    m.bundle = bundle;
    bool acked = false;
    c.service->OnMessage(m, "dmz", [&](WorkMessage reply) { acked = reply.kind == WorkKind::kAck; });
    return acked;
  };
  ASSERT_TRUE(put(dead_scanner, first));  // the first scanner's replica
  // Anyone but the lease holder is still refused.
  EXPECT_FALSE(put(a.id, second));
  // c learns that a holds the shard's lease now.
  ScanState leased = *StateAt(a, id);
  leased.pools[0][0].lease = ShardLease{a.id, 2, 1, now_ms_ + 30'000};
  auto payload = ScanDeltaPayload(DeltaOf(leased, false, {{0, 0}}));
  ASSERT_TRUE(payload.ok());
  c.service->OnPayload(*payload);
  ASSERT_EQ(StateAt(c, id)->pools[0][0].lease.holder, a.id);
  EXPECT_TRUE(put(a.id, second));
  EXPECT_EQ(BundleDigest(*LoadBundle(*c.store, PoolId(id, "dmz"), 0)), BundleDigest(second));
}

}  // namespace
}  // namespace ndo::mesh
