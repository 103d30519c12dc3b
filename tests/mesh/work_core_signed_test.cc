// Signed records in the work core (docs/security.md, "Signed records"): with
// a RecordKeys, WorkCore signs what it writes and checks what it merges.
// The keys here are fake but strict (a keyed hash per node, a table of
// roles, vantages and revocations as the cluster CA would certify them),
// so every check can be made to fail: a record from a member that may not
// write it is refused and changes nothing, an honest one merges, a mesh of
// three converges, and a record by a signer whose certificate arrives late
// merges once it has.
#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "mesh/work/record_signatures.h"
#include "mesh/work/work_core.h"
#include "store/result_bundle.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // ms

// What the cluster CA has certified: each node's role and vantage, and the
// revocations.
struct FakeCa {
  std::map<NodeId, SignerInfo> certs;
  std::set<NodeId> revoked;
};

// SHA-512 over the signer and the message: 64 bytes, deterministic like
// Ed25519, and nobody else's key makes it.
std::string FakeSignature(const NodeId& signer, std::string_view message) {
  std::string data = signer.Hex() + '\0' + std::string(message);
  std::string out(64, '\0');
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len, EVP_sha512(), nullptr);
  return out;
}

class FakeKeys : public RecordKeys {
 public:
  // knows_all: every certified node's certificate is known here; else only
  // its own, and the others once Learnt.
  FakeKeys(NodeId self, const FakeCa& ca, bool knows_all = true) : self_(self), ca_(ca), knows_all_(knows_all) {
    known_.insert(self);
  }
  std::string Sign(std::string_view message) override { return FakeSignature(self_, message); }
  Result<SignerInfo> Verify(const NodeId& signer, std::string_view message, std::string_view signature) override {
    ++verifies;
    auto it = ca_.certs.find(signer);
    if (it == ca_.certs.end() || !Knows(signer)) return Status::NotFound("no certificate of " + signer.Hex());
    if (ca_.revoked.count(signer)) return Status::PermissionDenied("certificate revoked");
    if (signature != FakeSignature(signer, message)) return Status::InvalidArgument("bad signature");
    return it->second;
  }
  std::optional<std::string> Certificate(const NodeId& node) const override {
    if (!ca_.certs.count(node) || !Knows(node)) return std::nullopt;
    return "fake-cert:" + node.Hex();
  }
  Status Learn(std::string_view pem) override {
    ++learnt;
    if (pem.substr(0, 10) != "fake-cert:") return Status::InvalidArgument("not a certificate");
    NodeId n = NodeId::FromHex(pem.substr(10));
    if (!ca_.certs.count(n)) return Status::PermissionDenied("not the cluster's");
    known_.insert(n);
    return Status::Ok();
  }
  bool Knows(const NodeId& n) const { return knows_all_ || known_.count(n); }

  int verifies = 0, learnt = 0;

 private:
  NodeId self_;
  const FakeCa& ca_;
  bool knows_all_;
  std::set<NodeId> known_;
};

class MemoryShelf : public BundleShelf {
 public:
  Result<std::string> Load(const ScanId& pool, uint32_t shard) override {
    auto it = bundles.find({pool, shard});
    if (it == bundles.end()) return Status::NotFound("no bundle");
    return it->second;
  }
  Status Keep(const ScanState& s, std::string_view vantage, uint32_t shard, std::string_view bundle,
              const Digest&) override {
    bundles[{PoolId(s.id, vantage), shard}] = std::string(bundle);
    return Status::Ok();
  }
  std::map<std::pair<ScanId, uint32_t>, std::string> bundles;
};

// A bundle of its own per shard (distinct digests).
std::string BundleOf(uint32_t shard) {
  ProbeResult r;
  r.address = IpAddress::FromV4(0x7f000001);
  r.port = static_cast<uint16_t>(1000 + shard);
  r.state = PortState::kOpen;
  r.attempts = 1;
  auto b = EncodeResultBundle(std::vector<ProbeResult>{r});
  EXPECT_TRUE(b.ok());
  return b.ok() ? *b : std::string();
}

ScanDefinition Definition(uint32_t shards) {
  ScanDefinition def;
  def.spec.arguments = {"ndo", "127.0.0.1", "-p", "1-64"};
  def.spec.targets.addresses.Add({IpAddress::FromV4(0x7f000001).value(), IpAddress::FromV4(0x7f000001).value()});
  for (uint16_t p = 1; p <= 64; ++p) def.spec.ports.push_back(p);
  def.spec.seed = 5;
  def.spec.shard_count = shards;
  def.vantages = {"dmz"};
  return def;
}

std::string Address(const NodeId& n) { return n.Hex().substr(28) + ":1"; }

// A few cores, their shelves and keys, and the "network" between them:
// requests answered at once, gossip handed to every other core, and every
// shard a core is told to start scanned at once.
struct Mesh {
  FakeCa ca;
  NodeId coordinator;
  std::map<NodeId, std::unique_ptr<MemoryShelf>> shelves;
  std::map<NodeId, std::unique_ptr<FakeKeys>> keys;
  std::map<NodeId, std::unique_ptr<WorkCore>> cores;
  std::set<NodeId> partitioned;  // its requests fail, nobody reaches it, no gossip either way

  WorkConfig config{};
  bool hold_scans = false;                      // started shards wait in `scanning` until finished by hand
  std::map<NodeId, std::vector<ScanCommand>> scanning;
  std::vector<std::pair<NodeId, std::string>> gossip;  // every payload sent, by sender

  void Add(NodeId id, bool is_operator, std::string vantage, bool knows_all = true) {
    ca.certs[id] = SignerInfo{is_operator, vantage};
    shelves[id] = std::make_unique<MemoryShelf>();
    keys[id] = std::make_unique<FakeKeys>(id, ca, knows_all);
    cores[id] = std::make_unique<WorkCore>(id, vantage, config, id.lo, *shelves[id], keys[id].get());
  }
  void Finish(const NodeId& id, const ScanCommand& c, int64_t now) {
    std::string bundle = BundleOf(c.ref.shard);
    const ScanState* s = cores.at(id)->Find(c.ref.scan);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(shelves[id]->Keep(*s, c.ref.vantage, c.ref.shard, bundle, BundleDigest(bundle)).ok());
    ShardOutcome out;
    out.ref = c.ref;
    out.results = 1;
    out.digest = BundleDigest(bundle);
    cores.at(id)->OnShardOutcome(out, now);
  }
  void Views(int64_t now) {
    for (auto& [id, core] : cores) {
      auto v = std::make_shared<MeshView>();
      v->coordinator = coordinator;
      v->epoch = 1;
      for (auto& [other, c] : cores)
        if (other != id) v->alive.push_back({other, Address(other), ca.certs[other].vantage});
      v->known = v->unsuspected = v->alive.size();
      if (coordinator != id) v->coordinator_address = Address(coordinator), v->coordinator_unsuspected = true;
      core->UpdateView(v, now);
    }
  }
  WorkCore& operator[](const NodeId& id) { return *cores.at(id); }
  // Delivers what `from` queued; returns the messages delivered.
  std::vector<WorkMessage> Deliver(const NodeId& from, int64_t now) {
    std::vector<WorkMessage> out;
    WorkCore& core = *cores.at(from);
    for (auto& r : core.TakeRequests()) {
      auto it = cores.find(r.to);
      if (it == cores.end() || partitioned.count(r.to) || partitioned.count(from)) {
        core.OnReply(r.id, Status::Unavailable("unreachable"), now);
        continue;
      }
      out.push_back(r.message);
      core.OnReply(r.id, it->second->OnMessage(r.message, ca.certs.at(from), now), now);
    }
    return out;
  }
  void Step(int64_t now) {
    for (auto& [id, core] : cores) {
      core->Tick(now);
      for (auto& c : core->TakeScanCommands()) {
        if (c.kind != ScanCommand::Kind::kStart) continue;
        if (hold_scans) scanning[id].push_back(c);
        else Finish(id, c, now);
      }
      Deliver(id, now);
      for (auto& b : core->TakeBroadcasts()) {
        gossip.push_back({id, b.payload});
        for (auto& [other, oc] : cores)
          if (other != id && !partitioned.count(other) && !partitioned.count(id)) oc->OnPayload(b.payload, now);
      }
    }
  }
};

const NodeId kA{1, 1}, kB{2, 2}, kC{3, 3}, kH{4, 4}, kI{5, 5};

bool AllDone(const ScanState& s) {
  for (const auto& pool : s.pools)
    for (const auto& sh : pool)
      if (!sh.done.done) return false;
  return true;
}

// Three honest cores (a, an operator and the coordinator; scanners b and
// c): the scan spreads by push, leases and done records by gossip deltas,
// renewals and the rest by anti-entropy, and every copy ends equal, every
// shard done and signed by a member of the pool's vantage that the checks
// of every other copy let through.
TEST(WorkCoreSigned, AMeshOfThreeConvergesWithEveryRecordSignedAndChecked) {
  Mesh m;
  m.Add(kA, true, "dmz");
  m.Add(kB, false, "dmz");
  m.Add(kC, false, "dmz");
  m.coordinator = kA;
  m.Views(kT0);
  auto id = m[kA].Submit(Definition(12), kT0);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  const ScanState& submitted = *m[kA].Find(*id);
  EXPECT_EQ(submitted.definition_signature.size(), kRecordSignatureBytes);
  EXPECT_EQ(submitted.control.signature.size(), kRecordSignatureBytes);
  int64_t now = kT0;
  auto converged = [&] {
    for (auto& [n, core] : m.cores) {
      const ScanState* s = core->Find(*id);
      if (!s || !AllDone(*s)) return false;
      if (*ScanStateDigest(*s) != *ScanStateDigest(*m[kA].Find(*id))) return false;
    }
    return true;
  };
  for (int i = 0; i < 400 && !converged(); ++i) m.Step(now += 250);
  ASSERT_TRUE(converged()) << "not converged after 100 s";
  for (int i = 0; i < 20; ++i) m.Step(now += 250);  // the last bundles fetched
  std::set<NodeId> signers;
  const ScanState& s = *m[kA].Find(*id);
  for (uint32_t k = 0; k < s.pools[0].size(); ++k) {
    const ShardState& sh = s.pools[0][k];
    EXPECT_EQ(sh.done.signature.size(), kRecordSignatureBytes) << k;
    EXPECT_TRUE(CheckDone(*m.keys[kB], s, 0, k, sh.lease, sh.done).ok()) << k;
    signers.insert(sh.done.signer);
  }
  EXPECT_GE(signers.size(), 2u) << "the work spread over the scanners";
  for (auto& [n, core] : m.cores) EXPECT_EQ(m.shelves[n]->bundles.size(), 12u) << n.Hex() << " holds every bundle";
  // Control set by the operator: paused everywhere, by the gossip.
  ASSERT_TRUE(m[kA].SetControl(ScanIdToHex(*id), ScanControl::kPaused, now += 10).ok());
  m.Step(now += 10);
  for (auto& [n, core] : m.cores) EXPECT_EQ(core->Find(*id)->control.value, ScanControl::kPaused) << n.Hex();
}

// Renewals reach only the coordinator's copy: a node whose copy has the
// lease as granted still takes the scanner's done record, which names the
// renewed lease, by the gossip alone (the scanner writes the lease it held
// into its copy with the record, and the delta carries both), and the
// replica it is handed carries the lease too.
TEST(WorkCoreSigned, ADoneRecordNamingARenewedLeaseIsTakenByANodeThatNeverSawTheRenewal) {
  Mesh m;
  m.config.lease_duration = std::chrono::milliseconds(3000);  // renewed every second
  m.Add(kA, true, "dmz");
  m.Add(kB, false, "dmz");
  m.Add(kC, false, "dmz");
  m.coordinator = kA;
  m.hold_scans = true;
  m.Views(kT0);
  m[kA].SetPolicy(IntervalSet{});  // only b scans
  m[kC].SetPolicy(IntervalSet{});
  auto id = m[kA].Submit(Definition(1), kT0);
  ASSERT_TRUE(id.ok());
  int64_t now = kT0;
  for (int i = 0; i < 8 && m.scanning[kB].empty(); ++i) m.Step(now += 250);
  ASSERT_EQ(m.scanning[kB].size(), 1u) << "b scans the only shard";
  ASSERT_EQ(m[kC].Find(*id)->pools[0][0].lease.holder, kB) << "c heard of the grant";
  // c cut off while b renews with a.
  m.partitioned = {kC};
  for (int i = 0; i < 20; ++i) m.Step(now += 250);
  const ShardLease renewed = m[kA].Find(*id)->pools[0][0].lease;
  const ShardLease seen_by_c = m[kC].Find(*id)->pools[0][0].lease;
  ASSERT_GT(renewed.counter, seen_by_c.counter) << "b's lease was renewed since c heard of it";
  // b finishes; its replica goes to a (c is unreachable), then it marks done.
  m.Finish(kB, m.scanning[kB][0], now);
  m.gossip.clear();
  for (int i = 0; i < 20 && !m[kB].Find(*id)->pools[0][0].done.done; ++i) m.Step(now += 250);
  const ShardDone& done = m[kB].Find(*id)->pools[0][0].done;
  ASSERT_TRUE(done.done);
  EXPECT_EQ(done.lease_counter, renewed.counter);
  // Only b's gossip reaches c: its done record merges.
  ASSERT_FALSE(m[kC].Find(*id)->pools[0][0].done.done);
  for (const auto& [from, payload] : m.gossip)
    if (from == kB) m[kC].OnPayload(payload, now);
  EXPECT_TRUE(m[kC].Find(*id)->pools[0][0].done.done) << "c took the done record by gossip";
  EXPECT_EQ(m[kC].Find(*id)->pools[0][0].done.signer, kB);
}

// The hostile member h: enrolled and certified, a scanner of vantage dmz
// (i: of vantage internet), signing with its own key whatever it likes.
struct Hostile {
  Mesh m;
  ScanId id{};
  int64_t now = kT0;
  Hostile() {
    m.Add(kA, true, "dmz");
    m.Add(kB, false, "dmz");
    m.Add(kH, false, "dmz");
    m.Add(kI, false, "internet");
    m.coordinator = kA;
    m.Views(now);
    auto submitted = m[kA].Submit(Definition(4), now);
    EXPECT_TRUE(submitted.ok());
    id = *submitted;
    m.Deliver(kA, now);  // the push
    // b takes shard 0's lease (a grant, by the coordinator).
    now += 10;
    WorkMessage ask;
    ask.kind = WorkKind::kLeaseRequest;
    ask.sender = kB;
    ask.vantage = "dmz";
    ask.epoch = 1;
    grant = m[kA].OnMessage(ask, m.ca.certs[kB], now);
    EXPECT_EQ(grant.kind, WorkKind::kLeaseGrant);
    for (auto& b : m[kA].TakeBroadcasts()) m[kB].OnPayload(b.payload, now);
    m[kA].TakeRequests();
    m[kB].TakeBroadcasts();  // b passes the news on: not what the tests look at
  }
  WorkMessage grant;
  // A copy of b's state as h would push it, edited, re-encoded.
  ScanState Copy() { return *m[kB].Find(id); }
  WorkMessage Push(const NodeId& sender, const ScanState& s) {
    WorkMessage p;
    p.kind = WorkKind::kPush;
    p.sender = sender;
    p.states = {*EncodeScanState(s)};
    return p;
  }
  // What `at` holds of the scan, printable: the digest, and the fields
  // that can change.
  std::string Bytes(const NodeId& at) {
    const ScanState& s = *m[at].Find(id);
    std::string out = std::string(ScanControlName(s.control.value)) + " by " + s.control.stamp.node.Hex();
    for (uint32_t k = 0; k < s.pools[0].size(); ++k) {
      const ShardState& sh = s.pools[0][k];
      out += " | " + std::to_string(k) + ": " + sh.lease.holder.Hex().substr(28) + "/" + std::to_string(sh.lease.epoch) +
             "." + std::to_string(sh.lease.counter) + "@" + std::to_string(sh.lease.expires_ms) +
             (sh.done.done ? " done by " + sh.done.signer.Hex().substr(28) : "");
    }
    Digest d = *ScanStateDigest(s);
    return out + " | digest " + std::to_string(d[0]) + "." + std::to_string(d[1]) + "." + std::to_string(d[2]);
  }
  // h's signature over a done record of shard `k` of the dmz pool.
  ShardDone Done(const ScanState& s, uint32_t k, const NodeId& signer, const NodeId& key, ShardLease lease) {
    ShardDone d;
    d.done = true;
    d.results = 1;
    d.digest = BundleDigest(BundleOf(k));
    d.holders = {kH};
    d.signer = signer;
    d.lease_epoch = lease.epoch;
    d.lease_counter = lease.counter;
    d.signature = FakeSignature(key, DoneSigningBytes(s.id, "dmz", k, d));
    return d;
  }
};

TEST(WorkCoreSigned, AScanSubmittedByAScannerOrWithABadSignatureIsRefusedWhole) {
  Hostile t;
  FakeKeys h_keys(kH, t.m.ca);
  ScanDefinition def = Definition(2);
  def.submitter = kH;
  def.created_ms = t.now;
  auto state = NewScanState(def, HlcStamp{t.now, 0, kH});
  ASSERT_TRUE(state.ok());
  SignDefinition(h_keys, *state);
  SignControl(h_keys, state->id, state->control);
  WorkMessage reply = t.m[kB].OnMessage(t.Push(kH, *state), t.m.ca.certs[kH], t.now);
  EXPECT_EQ(reply.kind, WorkKind::kRefused);
  EXPECT_NE(reply.error.find("not an operator"), std::string::npos) << reply.error;
  EXPECT_EQ(t.m[kB].Find(state->id), nullptr) << "a scanner may not submit";
  EXPECT_TRUE(t.m[kB].TakeDirty().size() <= 1);  // at most the known scan, from the setup
  // In an operator's name, signed by h: the signature does not verify.
  state->definition.submitter = kA;
  def.submitter = kA;
  auto in_a_name = NewScanState(def, HlcStamp{t.now, 0, kA});
  ASSERT_TRUE(in_a_name.ok());
  in_a_name->definition_signature = h_keys.Sign(DefinitionSigningBytes(in_a_name->definition_bytes));
  in_a_name->control.signature = h_keys.Sign(ControlSigningBytes(in_a_name->id, in_a_name->control));
  t.m[kB].OnMessage(t.Push(kH, *in_a_name), t.m.ca.certs[kH], t.now);
  EXPECT_EQ(t.m[kB].Find(in_a_name->id), nullptr);
  // Unsigned (what an insecure mesh pushes): refused too.
  auto plain = NewScanState(def, HlcStamp{t.now, 0, kA});
  t.m[kB].OnMessage(t.Push(kH, *plain), t.m.ca.certs[kH], t.now);
  EXPECT_EQ(t.m[kB].Find(plain->id), nullptr);
  // Signed by a revoked operator: refused.
  SignDefinition(*t.m.keys[kA], *plain);
  SignControl(*t.m.keys[kA], plain->id, plain->control);
  t.m.ca.revoked.insert(kA);
  t.m[kB].OnMessage(t.Push(kH, *plain), t.m.ca.certs[kH], t.now);
  EXPECT_EQ(t.m[kB].Find(plain->id), nullptr);
  // The same, unrevoked: taken (the checks let honest records through).
  t.m.ca.revoked.clear();
  t.m[kB].OnMessage(t.Push(kH, *plain), t.m.ca.certs[kH], t.now);
  EXPECT_NE(t.m[kB].Find(plain->id), nullptr);
}

TEST(WorkCoreSigned, AControlRegisterNotSignedByAnOperatorIsLeftOutOfTheMerge) {
  Hostile t;
  FakeKeys h_keys(kH, t.m.ca);
  std::string before = t.Bytes(kB);
  for (bool in_own_name : {true, false}) {
    for (ScanControl c : {ScanControl::kPaused, ScanControl::kStopped}) {
      ScanState s = t.Copy();
      s.control = {c, HlcStamp{t.now + 100, 0, in_own_name ? kH : kA}};
      SignControl(h_keys, s.id, s.control);
      WorkMessage reply = t.m[kB].OnMessage(t.Push(kH, s), t.m.ca.certs[kH], t.now);
      EXPECT_EQ(reply.kind, WorkKind::kRefused);
      EXPECT_NE(reply.error.find(in_own_name ? "not an operator" : "bad signature"), std::string::npos) << reply.error;
      EXPECT_EQ(t.Bytes(kB), before) << ScanControlName(c) << (in_own_name ? " by h" : " in a's name");
      // By the gossip: the same.
      ScanDelta d = DeltaOf(s, true, {});
      t.m[kB].OnPayload(*ScanDeltaPayload(d), t.now);
      EXPECT_EQ(t.Bytes(kB), before);
      EXPECT_TRUE(t.m[kB].TakeBroadcasts().empty()) << "nothing refused is passed on";
    }
  }
  // The operator's pause, relayed by h: merged.
  ScanState s = t.Copy();
  s.control = {ScanControl::kPaused, HlcStamp{t.now + 100, 0, kA}};
  SignControl(*t.m.keys[kA], s.id, s.control);
  EXPECT_EQ(t.m[kB].OnMessage(t.Push(kH, s), t.m.ca.certs[kH], t.now).kind, WorkKind::kAck);
  EXPECT_EQ(t.m[kB].Find(t.id)->control.value, ScanControl::kPaused);
}

TEST(WorkCoreSigned, ADoneRecordIsTakenOnlyFromTheLeaseHolderOfThePoolsVantageWithItsOwnSignature) {
  Hostile t;
  std::string before = t.Bytes(kB);
  const ShardLease b_lease = t.grant.lease;  // b holds shard 0
  const uint32_t k = t.grant.shard;
  auto refused = [&](const ScanState& s, const char* what) {
    EXPECT_EQ(t.m[kB].OnMessage(t.Push(kH, s), t.m.ca.certs[kH], t.now).kind, WorkKind::kRefused) << what;
    EXPECT_EQ(t.Bytes(kB), before) << what << " (push)";
    t.m[kB].OnPayload(*ScanDeltaPayload(DeltaOf(s, false, {{0, k}})), t.now);
    EXPECT_EQ(t.Bytes(kB), before) << what << " (delta)";
    EXPECT_TRUE(t.m[kB].TakeBroadcasts().empty()) << what;
  };
  // h signs a done for the shard b holds: it did not hold the lease.
  ScanState s = t.Copy();
  s.pools[0][k].done = t.Done(s, k, kH, kH, b_lease);
  refused(s, "not the lease holder");
  // h's done, naming b as signer, signed with h's key.
  s = t.Copy();
  s.pools[0][k].done = t.Done(s, k, kB, kH, b_lease);
  refused(s, "impersonated");
  // i (vantage internet) holds a lease of the dmz pool in its pushed copy,
  // and signs its own done: the vantage is not the pool's.
  s = t.Copy();
  uint32_t free_shard = (k + 1) % 4;
  ShardLease i_lease{kI, 1, 99, t.now + 30'000};
  s.pools[0][free_shard].lease = i_lease;
  s.pools[0][free_shard].done = t.Done(s, free_shard, kI, kI, i_lease);
  WorkMessage reply = t.m[kB].OnMessage(t.Push(kI, s), t.m.ca.certs[kI], t.now);
  EXPECT_NE(reply.error.find("done record for a pool of vantage dmz signed by a node of vantage internet"),
            std::string::npos)
      << reply.error;
  EXPECT_FALSE(t.m[kB].Find(t.id)->pools[0][free_shard].done.done) << "other vantage";
  // A revoked scanner's done, with its own lease: refused.
  s = t.Copy();
  ShardLease h_lease{kH, 1, 99, t.now + 30'000};
  s.pools[0][free_shard].lease = h_lease;
  s.pools[0][free_shard].done = t.Done(s, free_shard, kH, kH, h_lease);
  t.m.ca.revoked.insert(kH);
  t.m[kB].OnMessage(t.Push(kH, s), t.m.ca.certs[kH], t.now);
  EXPECT_FALSE(t.m[kB].Find(t.id)->pools[0][free_shard].done.done) << "revoked";
  t.m.ca.revoked.clear();
  // (Their leases merged: leases are not signed, only what is done is.)
  before = t.Bytes(kB);
  // A done without a signature: refused.
  s = t.Copy();
  s.pools[0][k].done = t.Done(s, k, kB, kB, b_lease);
  s.pools[0][k].done.signature.clear();
  refused(s, "unsigned");
  // b's own done, signed by b with its lease, relayed by h: merged.
  s = t.Copy();
  s.pools[0][k].done = t.Done(s, k, kB, kB, b_lease);
  EXPECT_EQ(t.m[kA].OnMessage(t.Push(kH, s), t.m.ca.certs[kH], t.now).kind, WorkKind::kAck);
  EXPECT_TRUE(t.m[kA].Find(t.id)->pools[0][k].done.done) << "the honest record";
  // And a copy of it with other holders only adds holders (unsigned hints).
  ScanState more = *t.m[kA].Find(t.id);
  more.pools[0][k].done.holders = {kA, kB, kH};
  t.m[kA].OnMessage(t.Push(kH, more), t.m.ca.certs[kH], t.now);
  EXPECT_EQ(t.m[kA].Find(t.id)->pools[0][k].done.holders.size(), 3u);
  EXPECT_EQ(t.m[kA].Find(t.id)->pools[0][k].done.signer, kB);
}

TEST(WorkCoreSigned, ABundlePutNeedsItsSendersSignedClaimOfALeaseItHeld) {
  Hostile t;
  const uint32_t k = t.grant.shard;
  const std::string bundle = BundleOf(k);
  auto put = [&](const NodeId& sender, const ShardDone& claim, const ShardLease& lease, const std::string& b) {
    WorkMessage p;
    p.kind = WorkKind::kBundlePut;
    p.sender = sender;
    p.scan = t.id;
    p.vantage = "dmz";
    p.shard = k;
    p.bundle = b;
    p.done = claim;
    p.done.holders.clear();
    p.lease = lease;
    return t.m[kA].OnMessage(p, t.m.ca.certs[sender], t.now);
  };
  ScanState s = t.Copy();
  const ShardLease b_lease = t.grant.lease;
  EXPECT_EQ(put(kH, {}, {}, bundle).kind, WorkKind::kRefused) << "no claim";
  EXPECT_EQ(put(kH, t.Done(s, k, kH, kH, b_lease), b_lease, bundle).kind, WorkKind::kRefused) << "not h's lease";
  EXPECT_EQ(put(kH, t.Done(s, k, kB, kH, b_lease), b_lease, bundle).kind, WorkKind::kRefused) << "in b's name";
  EXPECT_EQ(put(kB, t.Done(s, k, kB, kB, b_lease), b_lease, BundleOf(k + 1)).kind, WorkKind::kRefused)
      << "another bundle than the claim's digest";
  EXPECT_TRUE(t.m.shelves[kA]->bundles.empty()) << "nothing refused was kept";
  EXPECT_EQ(put(kB, t.Done(s, k, kB, kB, b_lease), b_lease, bundle).kind, WorkKind::kAck) << "b's own";
  EXPECT_EQ(t.m.shelves[kA]->bundles.size(), 1u);
}

// c knows no certificate but its own: a's scan is left out when pushed, c
// asks a for a's certificate (once, however often the record comes), learns
// it, and the next anti-entropy round brings the scan, which merges.
TEST(WorkCoreSigned, ARecordOfAnUnknownSignerMergesOnceItsCertificateHasArrived) {
  Mesh m;
  m.Add(kA, true, "dmz");
  m.Add(kC, false, "dmz", /*knows_all=*/false);
  m.coordinator = kA;
  m.Views(kT0);
  auto id = m[kA].Submit(Definition(2), kT0);
  ASSERT_TRUE(id.ok());
  auto push = m[kA].TakeRequests();
  ASSERT_EQ(push.size(), 1u);
  // Delivered twice: one fetch only.
  m[kC].OnMessage(push[0].message, m.ca.certs[kA], kT0 + 1);
  m[kC].OnMessage(push[0].message, m.ca.certs[kA], kT0 + 2);
  EXPECT_EQ(m[kC].Find(*id), nullptr) << "unknown signer: not merged yet";
  auto fetches = m[kC].TakeRequests();
  ASSERT_EQ(fetches.size(), 1u);
  EXPECT_EQ(fetches[0].message.kind, WorkKind::kCertFetch);
  EXPECT_EQ(fetches[0].to, kA);
  EXPECT_EQ(fetches[0].message.nodes, std::vector<NodeId>{kA});
  WorkMessage certs = m[kA].OnMessage(fetches[0].message, m.ca.certs[kC], kT0 + 3);
  ASSERT_EQ(certs.kind, WorkKind::kCertData);
  ASSERT_EQ(certs.certs.size(), 1u);
  m[kC].OnReply(fetches[0].id, certs, kT0 + 3);
  EXPECT_EQ(m.keys[kC]->learnt, 1);
  EXPECT_EQ(m[kC].Find(*id), nullptr) << "the record comes again by anti-entropy";
  // c's next sync with a brings it.
  for (int64_t now = kT0 + 1000; now < kT0 + 5000 && !m[kC].Find(*id); now += 1000) {
    m[kC].Tick(now);
    m.Deliver(kC, now);
  }
  ASSERT_NE(m[kC].Find(*id), nullptr);
  EXPECT_EQ(*ScanStateDigest(*m[kC].Find(*id)), *ScanStateDigest(*m[kA].Find(*id)));
  // An insecure core has no certificates to give.
  MemoryShelf shelf;
  WorkCore insecure(kB, "dmz", WorkConfig{}, 1, shelf);
  EXPECT_EQ(insecure.OnMessage(fetches[0].message, SignerInfo{}, kT0).kind, WorkKind::kRefused);
}

// Without keys nothing is signed and nothing checked: a scanner's unsigned
// pause merges, as before signatures (an insecure mesh).
TEST(WorkCoreSigned, WithoutKeysNothingIsSignedOrChecked) {
  MemoryShelf shelf_a, shelf_b;
  WorkCore a(kA, "dmz", WorkConfig{}, 1, shelf_a), b(kB, "dmz", WorkConfig{}, 2, shelf_b);
  auto id = a.Submit(Definition(2), kT0);
  ASSERT_TRUE(id.ok());
  ScanState s = *a.Find(*id);
  EXPECT_TRUE(s.definition_signature.empty());
  EXPECT_TRUE(s.control.signature.empty());
  s.control = {ScanControl::kPaused, HlcStamp{kT0 + 5, 0, kH}};
  WorkMessage p;
  p.kind = WorkKind::kPush;
  p.sender = kH;
  p.states = {*EncodeScanState(s)};
  b.OnMessage(p, SignerInfo{}, kT0 + 6);
  ASSERT_NE(b.Find(*id), nullptr);
  EXPECT_EQ(b.Find(*id)->control.value, ScanControl::kPaused);
}


// The signed bytes are fixed (record_signatures.h): a node of another
// build, or a test that crafts records, must build the very same.
TEST(RecordSignatures, TheSignedBytesAreTheDocumentedLayout) {
  ScanId id{1, 2, 3, 4, 5, 6, 7, 8};
  std::string def = DefinitionSigningBytes("DEF");
  EXPECT_EQ(def, std::string("ndo-scan-definition-v1\0DEF", 26));
  ControlRegister c{ScanControl::kStopped, HlcStamp{0x0102030405060708, 0x0a0b0c0d, NodeId{0x11, 0x22}}};
  std::string control = ControlSigningBytes(id, c);
  std::string want("ndo-scan-control-v1\0", 20);
  want += std::string("\1\2\3\4\5\6\7\x08", 8) + '\2' + std::string("\1\2\3\4\5\6\7\x08", 8) + "\x0a\x0b\x0c\x0d";
  want += std::string(7, '\0') + '\x11' + std::string(7, '\0') + '\x22';
  EXPECT_EQ(control, want);
  ShardDone d;
  d.done = true;
  d.results = 3;
  d.digest.fill(0xee);
  d.lease_epoch = 4;
  d.lease_counter = 5;
  d.signer = NodeId{0, 9};
  d.holders = {NodeId{7, 7}};
  std::string done = DoneSigningBytes(id, "dmz", 6, d);
  want = std::string("ndo-shard-done-v1\0", 18) + std::string("\1\2\3\4\5\6\7\x08", 8) + std::string("\0\3dmz", 5) +
         std::string("\0\0\0\6", 4) + std::string(7, '\0') + '\3' + std::string(32, '\xee') + std::string(7, '\0') +
         '\4' + std::string(7, '\0') + '\5' + std::string(15, '\0') + '\x09';
  EXPECT_EQ(done, want);
  // Holders are not signed; every other field is.
  ShardDone other = d;
  other.holders.clear();
  EXPECT_EQ(DoneSigningBytes(id, "dmz", 6, other), done);
  for (auto edit : std::vector<std::function<void(ShardDone&)>>{
           [](ShardDone& x) { x.results++; }, [](ShardDone& x) { x.digest[0] ^= 1; },
           [](ShardDone& x) { x.lease_epoch++; }, [](ShardDone& x) { x.lease_counter++; },
           [](ShardDone& x) { x.signer.lo++; }}) {
    ShardDone x = d;
    edit(x);
    EXPECT_NE(DoneSigningBytes(id, "dmz", 6, x), done);
  }
  EXPECT_NE(DoneSigningBytes(id, "dmz", 7, d), done);
  EXPECT_NE(DoneSigningBytes(id, "dm", 6, d), done);
}

}  // namespace
}  // namespace ndo::mesh
