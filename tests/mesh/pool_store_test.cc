// Where a node keeps distributed scans: a shard's bundle applied to a fresh
// store makes the pool's results and service evidence (certificates
// included) readable under its pool id, and applying it again changes
// nothing; and ScanHost, on loopback, follows up on open ports with banners
// and TLS handshakes and seals their evidence into the shard's bundle.
// Network traffic: 127.121.0.0/16 only, with the scope 127.0.0.0/8.
#include "mesh/agent/pool_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mesh/agent/scan_host.h"
#include "scan/service/tls_session.h"
#include "store/evidence_codec.h"
#include "store/result_codec.h"
#include "store/result_bundle.h"
#include "support/loopback_listeners.h"
#include "support/service_servers.h"
#include "support/test_certs.h"

namespace ndo::mesh {
namespace {

using namespace ndo::testing;

constexpr int64_t kT0 = 1'700'000'000'000;  // ms

class PoolStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ndo-pool-store-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = Store::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

ScanState NewState(ScanSpec spec, std::vector<std::string> vantages = {"lab", "wifi"}) {
  ScanDefinition def;
  def.spec = std::move(spec);
  def.vantages = std::move(vantages);
  def.created_ms = kT0;
  def.submitter = NodeId{1, 2};
  auto s = NewScanState(std::move(def), HlcStamp{kT0, 0, NodeId{1, 2}});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : ScanState{};
}

ProbeResult MakeResult(const char* address, uint16_t port, PortState state) {
  ProbeResult r;
  r.address = *IpAddress::Parse(address);
  r.port = port;
  r.state = state;
  r.attempts = 1;
  r.rtt_us = 500;
  r.time_us = 1'700'000'000'000'000;
  return r;
}

// A self-signed certificate, parsed as the prober would hand it on.
CertificateInfo SelfSigned(const std::string& cn) {
  auto key = MakeKey(KeyType::kEcP256);
  CertSpec spec;
  spec.cn = cn;
  spec.key = key.get();
  spec.not_before = UnixTime(2024, 1, 1);
  spec.not_after = UnixTime(2030, 1, 1);
  auto cert = ParseCertificate(ToDer(MakeCert(spec).get()));
  EXPECT_TRUE(cert.ok()) << cert.status().ToString();
  return cert.ok() ? *cert : CertificateInfo{};
}

// Everything the store holds for a pool: results and evidence, encoded.
std::map<std::string, std::string> Snapshot(Store& store, const ScanId& pool) {
  std::map<std::string, std::string> out;
  EXPECT_TRUE(store
                  .ForEachResult(pool,
                                 [&](const ProbeResult& r) {
                                   out["r " + r.address.ToString() + ":" + std::to_string(r.port)] =
                                       EncodeResultValue(r);
                                   return true;
                                 })
                  .ok());
  EXPECT_TRUE(store
                  .ForEachEvidence(pool,
                                   [&](const ServiceEvidence& ev) {
                                     std::string chain;
                                     if (ev.tls)
                                       for (const auto& c : ev.tls->chain) chain += c.der;
                                     out["e " + ev.address.ToString() + ":" + std::to_string(ev.port)] =
                                         EncodeEvidence(ev) + chain;
                                     return true;
                                   })
                  .ok());
  return out;
}

ScanSpec LabSpec() {
  ScanSpec spec;
  spec.targets.addresses.Add({IpAddress::FromV4(0x0a000000).value(), IpAddress::FromV4(0x0a0000ff).value()});
  spec.ports = {22, 443};
  spec.seed = 3;
  spec.shard_count = 2;
  spec.service.banners = true;
  spec.service.tls = true;
  return spec;
}

TEST_F(PoolStore, StoreBundleMakesResultsAndEvidenceReadableAndIsIdempotent) {
  ScanState state = NewState(LabSpec());
  CertificateInfo cert = SelfSigned("tls.example.test");
  ResultBundle contents;
  contents.results = {MakeResult("10.0.0.1", 22, PortState::kOpen), MakeResult("10.0.0.1", 443, PortState::kOpen),
                      MakeResult("10.0.0.2", 22, PortState::kClosed)};
  ServiceEvidence ssh;
  ssh.address = *IpAddress::Parse("10.0.0.1");
  ssh.port = 22;
  ssh.service = "ssh";
  ssh.banner = BannerEvidence{"SSH-2.0-OpenSSH_9.2p1\r\n", false, "", ""};
  ServiceEvidence https;
  https.address = ssh.address;
  https.port = 443;
  TlsEvidence tls;
  tls.version = "TLSv1.3";
  tls.verdict = TlsVerdict::kSelfSigned;
  tls.chain = {cert};
  https.tls = tls;
  contents.evidence = {https, ssh};
  auto bundle = EncodeResultBundle(contents);
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();

  ScanId pool = PoolId(state.id, "wifi");
  EXPECT_FALSE(HasBundle(*store_, pool, 1));
  ASSERT_TRUE(StoreBundle(*store_, state, "wifi", 1, *bundle).ok());

  // The pool's record, results and evidence, read as every view reads them.
  EXPECT_TRUE(store_->FindScan(ScanIdToHex(pool)).ok());
  std::vector<ProbeResult> results;
  ASSERT_TRUE(store_->ForEachResult(pool, [&](const ProbeResult& r) {
                results.push_back(r);
                return true;
              }).ok());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[1].port, 443);
  EXPECT_EQ(results[1].state, PortState::kOpen);
  auto got_ssh = store_->GetEvidence(pool, ssh.address, 22);
  ASSERT_TRUE(got_ssh.ok()) << got_ssh.status().ToString();
  EXPECT_EQ(got_ssh->service, "ssh");
  ASSERT_TRUE(got_ssh->banner.has_value());
  EXPECT_EQ(got_ssh->banner->bytes, "SSH-2.0-OpenSSH_9.2p1\r\n");
  auto got_tls = store_->GetEvidence(pool, ssh.address, 443);
  ASSERT_TRUE(got_tls.ok()) << got_tls.status().ToString();  // its certificate is there too
  ASSERT_TRUE(got_tls->tls.has_value());
  ASSERT_EQ(got_tls->tls->chain.size(), 1u);
  EXPECT_EQ(got_tls->tls->chain[0].der, cert.der);
  EXPECT_EQ(got_tls->tls->chain[0].subject_cn, "tls.example.test");
  EXPECT_EQ(got_tls->tls->verdict, TlsVerdict::kSelfSigned);
  EXPECT_EQ(store_->GetEvidence(pool, *IpAddress::Parse("10.0.0.2"), 22).status().code(), Status::Code::kNotFound);
  // Nothing under the other pool or the scan itself.
  EXPECT_EQ(store_->GetEvidence(PoolId(state.id, "lab"), ssh.address, 22).status().code(), Status::Code::kNotFound);

  // Kept as it came, to hand on.
  auto loaded = LoadBundle(*store_, pool, 1);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(*loaded, *bundle);
  EXPECT_TRUE(HasBundle(*store_, pool, 1));
  EXPECT_FALSE(HasBundle(*store_, pool, 0));

  // Applying it again, or a results-only (version 1) bundle of the same
  // shard, changes nothing.
  auto before = Snapshot(*store_, pool);
  EXPECT_EQ(before.size(), 5u);
  ASSERT_TRUE(StoreBundle(*store_, state, "wifi", 1, *bundle).ok());
  EXPECT_EQ(Snapshot(*store_, pool), before);
  auto v1 = EncodeResultBundle(contents.results);
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE(StoreBundle(*store_, state, "wifi", 0, *v1).ok());
  EXPECT_EQ(Snapshot(*store_, pool), before);
}

TEST_F(PoolStore, StoreBundleRefusesABundleThatDoesNotDecode) {
  ScanState state = NewState(LabSpec());
  ResultBundle contents;
  contents.results = {MakeResult("10.0.0.1", 22, PortState::kOpen)};
  ServiceEvidence ssh;
  ssh.address = contents.results[0].address;
  ssh.port = 22;
  ssh.banner = BannerEvidence{"SSH-2.0-x\r\n", false, "", ""};
  contents.evidence = {ssh};
  auto bundle = EncodeResultBundle(contents);
  ASSERT_TRUE(bundle.ok());
  std::string bad = *bundle;
  bad.back() ^= 1;
  EXPECT_EQ(StoreBundle(*store_, state, "lab", 0, bad).code(), Status::Code::kCorruption);
  EXPECT_EQ(StoreBundle(*store_, state, "lab", 0, bundle->substr(0, bundle->size() - 1)).code(),
            Status::Code::kCorruption);
  ScanId pool = PoolId(state.id, "lab");
  EXPECT_TRUE(Snapshot(*store_, pool).empty());
  EXPECT_FALSE(HasBundle(*store_, pool, 0));
}

// ---------------------------------------------------------------------------
// ScanHost on loopback

// Runs posted functions on the test thread, as the agent's event loop would.
class PostQueue {
 public:
  ScanHost::Post Poster() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(fn));
      cv_.notify_all();
    };
  }
  // Runs what is posted until `done` holds or `timeout` passes.
  bool RunUntil(const std::function<bool()>& done, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return !queue_.empty(); })) return false;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

ScanSpec LoopbackSpec(uint16_t banner_port, uint16_t tls_port, std::chrono::milliseconds service_timeout) {
  ScanSpec spec;
  spec.targets.addresses.Add({IpAddress::Parse("127.121.0.1")->value(), IpAddress::Parse("127.121.0.3")->value()});
  spec.ports = {banner_port, tls_port};
  std::sort(spec.ports.begin(), spec.ports.end());
  spec.has_scope = true;
  spec.scope.Add({IpAddress::Parse("127.0.0.0")->value(), IpAddress::Parse("127.255.255.255")->value()});
  spec.seed = 11;
  spec.shard_count = 1;
  spec.probe.concurrency = 16;
  spec.service.banners = true;
  spec.service.tls = true;
  spec.service.tls_ports = {tls_port};
  spec.service.concurrency = 8;
  spec.service.timeout = service_timeout;
  return spec;
}

TEST_F(PoolStore, ScanHostSealsBannerAndTlsEvidenceIntoTheBundle) {
  const std::string greeting = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
  uint16_t banner_port = UnusedPort("127.121.0.1"), tls_port = UnusedPort("127.121.0.2");
  ASSERT_NE(banner_port, tls_port);
  auto key = MakeKey(KeyType::kEcP256);
  CertSpec cs;
  cs.cn = "host-b.test";
  cs.key = key.get();
  cs.not_before = UnixTime(2024, 1, 1);
  cs.not_after = UnixTime(2035, 1, 1);
  cs.sans = {"DNS:host-b.test"};
  auto cert = MakeCert(cs);
  ASSERT_TRUE(cert) << OpenSslErrors();
  ServiceServers servers;
  ASSERT_TRUE(servers.Banner("127.121.0.1", banner_port, greeting));
  ASSERT_TRUE(servers.Tls("127.121.0.2", tls_port, key.get(), {cert.get()}));
  // 127.121.0.3 and the other ports: closed.

  ScanState state = NewState(LoopbackSpec(banner_port, tls_port, std::chrono::milliseconds(4000)), {"lab"});
  PostQueue loop;
  ScanHost host(*store_, loop.Poster());
  std::optional<ShardOutcome> outcome;
  ShardRef ref{state.id, "lab", 0};
  ASSERT_TRUE(host.Start(state, ref, [&](ShardOutcome o) { outcome = o; }).ok());
  ASSERT_TRUE(loop.RunUntil([&] { return outcome.has_value(); }, std::chrono::seconds(60)));
  ASSERT_TRUE(outcome->status.ok()) << outcome->status.ToString();
  EXPECT_FALSE(outcome->stopped);
  EXPECT_EQ(outcome->results, 2u);  // open ports only (store_all is off)
  EXPECT_EQ(outcome->evidence, 2u);

  ScanId pool = PoolId(state.id, "lab");
  auto bytes = LoadBundle(*store_, pool, 0);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(BundleDigest(*bytes), outcome->digest);
  auto bundle = DecodeResultBundle(*bytes);
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  ASSERT_EQ(bundle->evidence.size(), 2u);
  const ServiceEvidence& banner = bundle->evidence[0];
  EXPECT_EQ(banner.address, *IpAddress::Parse("127.121.0.1"));
  EXPECT_EQ(banner.port, banner_port);
  ASSERT_TRUE(banner.banner.has_value());
  EXPECT_EQ(banner.banner->bytes, greeting);
  EXPECT_EQ(banner.service, "ssh");
  const ServiceEvidence& tls = bundle->evidence[1];
  EXPECT_EQ(tls.address, *IpAddress::Parse("127.121.0.2"));
  ASSERT_TRUE(tls.tls.has_value());
  EXPECT_TRUE(tls.tls->error.empty()) << tls.tls->error;
  ASSERT_EQ(tls.tls->chain.size(), 1u);
  ASSERT_EQ(bundle->certificates.size(), 1u);
  EXPECT_EQ(bundle->certificates[0].der, ToDer(cert.get()));
  EXPECT_EQ(tls.tls->chain[0].sha256, bundle->certificates[0].sha256);

  // The same evidence is in the pool's local store, as it was found.
  auto local = store_->GetEvidence(pool, banner.address, banner_port);
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  EXPECT_EQ(local->banner->bytes, greeting);
  auto local_tls = store_->GetEvidence(pool, tls.address, tls_port);
  ASSERT_TRUE(local_tls.ok()) << local_tls.status().ToString();
  ASSERT_EQ(local_tls->tls->chain.size(), 1u);
  EXPECT_EQ(local_tls->tls->chain[0].subject_cn, "host-b.test");

  // Another node applying the bundle gets the same pool content.
  std::string other_dir = dir_ + "-other";
  std::filesystem::remove_all(other_dir);
  {
    auto other = Store::Open(other_dir);
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE(StoreBundle(**other, state, "lab", 0, *bytes).ok());
    EXPECT_EQ(Snapshot(**other, pool), Snapshot(*store_, pool));
  }
  std::filesystem::remove_all(other_dir);
}

TEST_F(PoolStore, ScanHostStopAbandonsFollowUpsAndSealsNothing) {
  // A service that never says anything, with a long follow-up deadline: the
  // shard is finished by the engine long before its follow-up would be.
  uint16_t port = UnusedPort("127.121.0.5");
  ServiceServers servers;
  ASSERT_TRUE(servers.Silent("127.121.0.5", port));
  ScanSpec spec = LoopbackSpec(port, port, std::chrono::milliseconds(60'000));
  spec.targets.addresses = IntervalSet();
  spec.targets.addresses.Add({IpAddress::Parse("127.121.0.5")->value(), IpAddress::Parse("127.121.0.5")->value()});
  spec.ports = {port};
  spec.service.tls = false;
  ScanState state = NewState(spec, {"lab"});
  ScanId pool = PoolId(state.id, "lab");

  PostQueue loop;
  ScanHost host(*store_, loop.Poster());
  std::optional<ShardOutcome> outcome;
  ShardRef ref{state.id, "lab", 0};
  ASSERT_TRUE(host.Start(state, ref, [&](ShardOutcome o) { outcome = o; }).ok());
  // Wait until the open port is stored (the engine found it), then stop.
  auto found = [&] {
    bool open = false;
    store_->ForEachResult(pool, [&](const ProbeResult& r) {
      open = r.state == PortState::kOpen;
      return false;
    });
    return open;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!found() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(found());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the follow-up is under way
  EXPECT_TRUE(host.Running(ref));
  auto stopped_at = std::chrono::steady_clock::now();
  host.Stop(ref);
  ASSERT_TRUE(loop.RunUntil([&] { return outcome.has_value(); }, std::chrono::seconds(20)));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, std::chrono::seconds(10));
  EXPECT_TRUE(outcome->stopped);
  EXPECT_FALSE(HasBundle(*store_, pool, 0));
}

}  // namespace
}  // namespace ndo::mesh

namespace ndo::mesh {
namespace {

// Defence in depth: whatever a coordinator granted, a shard that reaches
// outside the node's scan policy is refused before anything is sent; one
// inside it runs with the engine's scope cut to the policy.
TEST_F(PoolStore, ScanHostRefusesAShardOutsideItsPolicyAndSendsNothing) {
  uint16_t port = UnusedPort("127.121.0.7");
  ndo::testing::AcceptingListeners listener;
  ASSERT_TRUE(listener.Add("127.121.0.7", port));
  ScanSpec spec = LoopbackSpec(port, port, std::chrono::milliseconds(1000));
  spec.targets.addresses = IntervalSet();
  spec.targets.addresses.Add({IpAddress::Parse("127.121.0.6")->value(), IpAddress::Parse("127.121.0.7")->value()});
  spec.ports = {port};
  spec.service.banners = spec.service.tls = false;
  ScanState state = NewState(spec, {"lab"});
  PostQueue loop;
  ScanHost host(*store_, loop.Poster());
  IntervalSet policy;
  policy.Add({IpAddress::Parse("127.121.0.0")->value(), IpAddress::Parse("127.121.0.6")->value()});
  host.SetPolicy(policy);
  ShardRef ref{state.id, "lab", 0};
  Status refused = host.Start(state, ref, [](ShardOutcome) {});
  EXPECT_EQ(refused.code(), Status::Code::kOutOfScope) << refused.ToString();
  EXPECT_NE(refused.message().find("127.121.0.7"), std::string::npos) << refused.message();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(listener.accepted(), 0u);

  // Allowed both: scanned, the port found.
  policy.Add({IpAddress::Parse("127.121.0.7")->value(), IpAddress::Parse("127.121.0.7")->value()});
  host.SetPolicy(policy);
  std::optional<ShardOutcome> outcome;
  ASSERT_TRUE(host.Start(state, ref, [&](ShardOutcome o) { outcome = o; }).ok());
  ASSERT_TRUE(loop.RunUntil([&] { return outcome.has_value(); }, std::chrono::seconds(60)));
  EXPECT_TRUE(outcome->status.ok()) << outcome->status.ToString();
  EXPECT_EQ(outcome->results, 1u);
  EXPECT_GE(listener.accepted(), 1u);
}

}  // namespace
}  // namespace ndo::mesh
