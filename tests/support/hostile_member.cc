// hostile_member: an enrolled but hostile member of a secured mesh, for the
// process tests of tests/integration/mesh_hostile_test.cc. It loads a
// member's credentials from its data dir (DATA_DIR/cluster: node key and
// certificate, CA; mesh/security/cluster_files.h), opens a mutual-TLS stream
// to one node exactly as a member does (mesh/transport: 'W' frame, one
// request frame, one reply frame), sends crafted work messages and prints
// each reply as one line:
//
//   <what>: kind=<reply kind> error="<the refusal's reason, if any>"
//
// The attacks (docs/security.md, "Attacks tested"), one subcommand each:
//   submit         a new scan submitted and signed by itself (a scanner)
//   pause | stop   a known scan's control register set to paused/stopped,
//                  stamped and signed by itself
//   forge-bundle   a kBundlePut and a done record for a shard it did not
//                  lease, signed by itself (--forge-lease: with a lease of
//                  the shard forged in its name, in the put and the state)
//   impersonate    a done record (and its bundle) naming another node as
//                  signer, the signature by its own key
//   other-vantage  a done record (and its bundle), correctly signed by
//                  itself, for the pool of a vantage not its certificate's
//   claim-vantage  a kLeaseRequest (and held leases) for a vantage other
//                  than its certificate's
// and one that is no attack, to watch the nodes:
//   digests        every scan state the target holds: id and SHA-256, and
//                  every done record (shard, results, digest, signer)
//
// It is an honest client of a hostile member: everything it sends decodes,
// and it signs with the member's real key, so what refuses it is the
// record checks, not the codecs. Network safety: it connects only to
// 127.0.0.0/8 or ::1, and the only scan it submits has scope 127.0.0.0/8.
//
// Exit codes: 0 when every message got a reply (whatever it says), 1 when
// one could not be sent or answered, 2 on a usage error.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/ids.h"
#include "base/status.h"
#include "mesh/membership/address.h"
#include "mesh/membership/stream_frame.h"
#include "mesh/security/cluster_files.h"
#include "mesh/security/tls_context.h"
#include "mesh/transport/transport.h"
#include "mesh/work/pool_state.h"
#include "mesh/work/record_signatures.h"
#include "mesh/work/work_messages.h"
#include "scan/port_list.h"
#include "scan/target_parser.h"
#include "store/result_bundle.h"

namespace ndo::mesh {
namespace {

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Args {
  std::string attack, data_dir, target, scan, vantage, as, targets = "127.70.0.11", ports = "1-1000";
  // -1: the attack picks one (a shard done for impersonate, one not done
  // for forge-bundle and other-vantage) and prints which.
  int64_t shard = -1;
  bool forge_lease = false;  // --forge-lease
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "hostile_member: %s\n"
               "usage: hostile_member ATTACK --data-dir DIR --target IP:PORT [--scan ID] [--vantage V]\n"
               "                      [--shard K] [--as NODE_ID] [--forge-lease] [--targets LIST] [--ports LIST]\n"
               "ATTACK: submit pause stop forge-bundle impersonate other-vantage claim-vantage digests\n",
               why.c_str());
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  if (argc < 2) Usage("no attack given");
  Args a;
  a.attack = argv[1];
  for (int i = 2; i < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--forge-lease") {
      a.forge_lease = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) Usage(flag + " needs a value");
    std::string value = argv[i + 1];
    if (flag == "--data-dir") a.data_dir = value;
    else if (flag == "--target") a.target = value;
    else if (flag == "--scan") a.scan = value;
    else if (flag == "--vantage") a.vantage = value;
    else if (flag == "--shard") a.shard = std::stol(value);
    else if (flag == "--as") a.as = value;
    else if (flag == "--targets") a.targets = value;
    else if (flag == "--ports") a.ports = value;
    else Usage("unknown flag " + flag);
  }
  if (a.data_dir.empty() || a.target.empty()) Usage("--data-dir and --target are required");
  return a;
}

// The member's Ed25519 signature over `message`, as a member signs.
std::string Sign(const std::string& key_pem, std::string_view message) {
  std::string sig;
  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 64;
  sig.resize(len);
  if (!key || !ctx || EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key) != 1 ||
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
    sig.clear();
  else
    sig.resize(len);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  BIO_free(bio);
  return sig;
}

class Member {
 public:
  Member(ClusterMaterial material, HostPort target) : m_(std::move(material)), target_(target) {}
  const NodeId& id() const { return m_.node; }
  const std::string& key_pem() const { return m_.key_pem; }

  WorkMessage Base(WorkKind kind) const {
    WorkMessage w;
    w.kind = kind;
    w.sender = m_.node;
    return w;
  }

  // One stream: the request frame, the reply frame.
  Result<WorkMessage> Exchange(const WorkMessage& request) {
    auto body = EncodeWorkMessage(request);
    if (!body.ok()) return body.status();
    boost::asio::io_context io;
    StreamLimits limits;
    limits.deadline = std::chrono::seconds(20);
    auto transport = MutualTlsTransportFactory(std::make_shared<const ClusterMaterial>(m_),
                                               std::make_shared<const RevocationSet>())(io, limits);
    if (!transport.ok()) return transport.status();
    Result<std::string> frame = Status::Unavailable("no reply");
    std::string out = EncodeFrame(FrameKind::kWork, *body);
    (*transport)->Connect(target_, [&](Result<FrameStreamPtr> connected) {
      if (!connected.ok()) {
        frame = connected.status();
        return;
      }
      FrameStreamPtr s = *connected;
      s->WriteFrame(std::move(out), [&, s](Status written) {
        if (!written.ok()) {
          frame = written;
          return s->Close();
        }
        s->ReadFrame(kMaxStreamBytes, [&, s](Result<std::string> got) {
          frame = std::move(got);
          s->Close();
        });
      });
    });
    io.run();
    if (!frame.ok()) return frame.status();
    auto bytes = ExpectFrame(*frame, FrameKind::kWork);
    if (!bytes.ok()) return bytes.status();
    return DecodeWorkMessage(*bytes);
  }

  // Sends and prints the reply; false when there was none.
  bool Send(const std::string& what, const WorkMessage& request) {
    auto reply = Exchange(request);
    if (!reply.ok()) {
      std::printf("%s: no reply: %s\n", what.c_str(), reply.status().message().c_str());
      return false;
    }
    std::printf("%s: kind=%s error=\"%s\"\n", what.c_str(), std::string(WorkKindName(reply->kind)).c_str(),
                reply->error.c_str());
    std::fflush(stdout);
    return true;
  }

  // Every state the target holds (a kSync naming none).
  Result<std::vector<ScanState>> States() {
    auto reply = Exchange(Base(WorkKind::kSync));
    if (!reply.ok()) return reply.status();
    if (reply->kind != WorkKind::kSyncReply) return Status::Unavailable("sync answered " + reply->error);
    std::vector<ScanState> out;
    for (const auto& bytes : reply->states) {
      auto s = DecodeScanState(bytes);
      if (!s.ok()) return s.status();
      out.push_back(std::move(*s));
    }
    return out;
  }

  Result<ScanState> State(const std::string& scan) {
    auto all = States();
    if (!all.ok()) return all.status();
    for (auto& s : *all)
      if (ScanIdToHex(s.id) == scan) return std::move(s);
    return Status::NotFound("the target holds no scan " + scan);
  }

  bool Push(const std::string& what, const ScanState& state) {
    auto bytes = EncodeScanState(state);
    if (!bytes.ok()) {
      std::printf("%s: not encoded: %s\n", what.c_str(), bytes.status().message().c_str());
      return false;
    }
    WorkMessage push = Base(WorkKind::kPush);
    push.states.push_back(std::move(*bytes));
    return Send(what, push);
  }

 private:
  ClusterMaterial m_;
  HostPort target_;
};

// The control register of `s`, re-signed by whoever's stamp it carries
// (the hostile member signs as itself, whatever the stamp says).
void SignControl(const Member& me, ScanState& s) {
  s.control.signature = Sign(me.key_pem(), ControlSigningBytes(s.id, s.control));
}

// A done record of (vantage, shard) naming `signer` and `lease` (the lease
// the shard has, so that only the check under test refuses it, or one
// forged), the signature by the member's own key.
ShardDone ForgedDone(const Member& me, const ScanState& s, const std::string& vantage, uint32_t shard,
                     const NodeId& signer, const ShardLease& lease, const std::string& bundle, uint64_t results) {
  ShardDone d;
  d.done = true;
  d.results = results;
  d.digest = BundleDigest(bundle);
  d.holders = {signer};
  d.signer = signer;
  d.lease_epoch = lease.epoch;
  d.lease_counter = lease.counter;
  d.signature = Sign(me.key_pem(), DoneSigningBytes(s.id, vantage, shard, d));
  return d;
}

// A bundle of invented results: one open port of 127.66.6.6, a loopback
// address no test listens on, so a view that shows it shows the forgery.
// The port is picked so that the bundle's digest sorts above `above`: of
// two done records the larger digest wins the join, so the forgery would
// replace an honest record of a shard already done.
std::string ForgedBundle(const Digest& above) {
  for (uint16_t port = 6000;; ++port) {
    ProbeResult r;
    r.address = *IpAddress::Parse("127.66.6.6");
    r.port = port;
    r.state = PortState::kOpen;
    r.attempts = 1;
    r.rtt_us = 100;
    r.time_us = WallMs() * 1000;
    auto bundle = EncodeResultBundle(std::vector<ProbeResult>{r});
    if (bundle.ok() && BundleDigest(*bundle) > above) return *bundle;
  }
}

// A replica put as the scanner of the shard sends it: with its signed done
// claim (no holders) and the lease it says it held.
WorkMessage BundlePut(const Member& me, const ScanState& s, const std::string& vantage, uint32_t shard,
                      const std::string& bundle, const ShardDone& claim, const ShardLease& lease) {
  WorkMessage put = me.Base(WorkKind::kBundlePut);
  put.scan = s.id;
  put.vantage = vantage;
  put.shard = shard;
  put.bundle = bundle;
  put.done = claim;
  put.done.holders.clear();
  put.lease = lease;
  return put;
}

// The highest coordinator epoch the state shows: a forged lease of it
// looks like one the current coordinator granted.
uint64_t LatestEpoch(const ScanState& s) {
  uint64_t epoch = 0;
  for (const auto& pool : s.pools)
    for (const auto& sh : pool) epoch = std::max(epoch, sh.lease.epoch);
  return epoch;
}

int Run(const Args& a) {
  auto target = ParseHostPort(a.target);
  if (!target.ok()) Usage("--target: " + target.status().message());
  // Network safety: loopback only.
  bool loopback = target->ip.is_v4() ? (target->ip.v4() >> 24) == 127 : target->ip == *IpAddress::Parse("::1");
  if (!loopback) Usage("--target must be in 127.0.0.0/8 or ::1");
  auto material = LoadClusterMaterial(a.data_dir, WallMs() / 1000);
  if (!material.ok()) {
    std::fprintf(stderr, "hostile_member: %s\n", material.status().message().c_str());
    return 1;
  }
  Member me(std::move(*material), *target);
  auto need_state = [&]() -> ScanState {
    if (a.scan.empty()) Usage(a.attack + " needs --scan");
    auto s = me.State(a.scan);
    if (!s.ok()) {
      std::fprintf(stderr, "hostile_member: %s\n", s.status().message().c_str());
      std::exit(1);
    }
    return std::move(*s);
  };
  // The pool of --vantage and the shard attacked: --shard, else the first
  // that is done (`done`) or not.
  auto shard_of = [&](const ScanState& s, bool done) -> std::pair<size_t, uint32_t> {
    auto v = VantageIndex(s, a.vantage);
    if (!v) Usage("the scan has no pool of vantage " + a.vantage);
    int64_t k = a.shard;
    for (uint32_t i = 0; k < 0 && i < s.pools[*v].size(); ++i)
      if (s.pools[*v][i].done.done == done) k = i;
    if (k < 0 || static_cast<size_t>(k) >= s.pools[*v].size())
      Usage("no such shard of vantage " + a.vantage + (a.shard < 0 ? std::string(done ? " done" : " not done") : ""));
    std::printf("shard %s %lld\n", a.vantage.c_str(), static_cast<long long>(k));
    return {*v, static_cast<uint32_t>(k)};
  };

  if (a.attack == "digests") {
    auto states = me.States();
    if (!states.ok()) {
      std::printf("digests: no reply: %s\n", states.status().message().c_str());
      return 1;
    }
    for (const auto& s : *states) {
      auto d = ScanStateDigest(s);
      std::string hex;
      for (uint8_t b : d.ok() ? *d : Digest{}) {
        static const char* k = "0123456789abcdef";
        hex += k[b >> 4];
        hex += k[b & 15];
      }
      std::printf("scan %s %s control=%s\n", ScanIdToHex(s.id).c_str(), hex.c_str(),
                  std::string(ScanControlName(s.control.value)).c_str());
      // The done records alone (a lease may change without any of them).
      for (size_t v = 0; v < s.pools.size(); ++v)
        for (uint32_t k = 0; k < s.pools[v].size(); ++k) {
          const ShardDone& d = s.pools[v][k].done;
          if (!d.done) continue;
          std::printf("done %s %s %u results=%llu digest=%02x%02x%02x%02x signer=%s\n", ScanIdToHex(s.id).c_str(),
                      s.definition.vantages[v].c_str(), k, static_cast<unsigned long long>(d.results), d.digest[0],
                      d.digest[1], d.digest[2], d.digest[3], d.signer.Hex().c_str());
        }
    }
    return 0;
  }

  if (a.attack == "submit") {
    // A scan of loopback targets only, scope 127.0.0.0/8, for the dmz
    // vantage: a scanner of the internet aiming the DMZ's scanners.
    ScanDefinition def;
    auto targets = ParseAddressList(a.targets);
    auto ports = ParsePortList(a.ports);
    auto scope = ParseAddressList("127.0.0.0/8");
    if (!targets.ok() || !ports.ok()) Usage("bad --targets or --ports");
    def.spec.arguments = {"ndo", "scan", a.targets, "-p", a.ports, "--scope", "127.0.0.0/8"};
    def.spec.targets.addresses = *targets;
    def.spec.ports = *ports;
    def.spec.has_scope = true;
    def.spec.scope = *scope;
    def.spec.shard_count = 1;
    def.spec.probe.rate = 1000;
    def.vantages = {a.vantage.empty() ? "dmz" : a.vantage};
    int64_t now = WallMs();
    def.created_ms = now;
    def.submitter = me.id();
    auto state = NewScanState(std::move(def), HlcStamp{now, 0, me.id()});
    if (!state.ok()) {
      std::fprintf(stderr, "hostile_member: %s\n", state.status().message().c_str());
      return 1;
    }
    state->definition_signature = Sign(me.key_pem(), DefinitionSigningBytes(state->definition_bytes));
    SignControl(me, *state);
    std::printf("scan %s\n", ScanIdToHex(state->id).c_str());
    return me.Push("push", *state) ? 0 : 1;
  }

  if (a.attack == "pause" || a.attack == "stop") {
    ScanState s = need_state();
    s.control.value = a.attack == "pause" ? ScanControl::kPaused : ScanControl::kStopped;
    s.control.stamp = HlcStamp{std::max(WallMs(), s.control.stamp.wall_ms + 1), 0, me.id()};
    SignControl(me, s);
    return me.Push("push", s) ? 0 : 1;
  }

  if (a.attack == "forge-bundle" || a.attack == "impersonate" || a.attack == "other-vantage") {
    ScanState s = need_state();
    auto [v, k] = shard_of(s, a.attack == "impersonate");
    ShardState& shard = s.pools[v][k];
    NodeId signer = me.id();
    if (a.attack == "impersonate") {
      // In the name of the node that scanned it: its lease, its id.
      signer = a.as.empty() ? shard.lease.holder : NodeId::FromHex(a.as);
      if (signer.empty()) Usage("impersonate: no --as and the shard was never leased");
    }
    // --forge-lease: the lease is forged too, in the put and in the pushed
    // state: held by the member, of the latest epoch, a counter above any.
    ShardLease lease = shard.lease;
    if (a.forge_lease) {
      // Expired already: the done check does not look at expiry, and an
      // expired lease shows nowhere (status, views) if it is merged.
      lease = ShardLease{me.id(), LatestEpoch(s), shard.lease.counter + (1u << 20), WallMs() - 1000};
      shard.lease = lease;
    }
    std::string bundle = ForgedBundle(shard.done.digest);
    ShardDone done = ForgedDone(me, s, a.vantage, k, signer, lease, bundle, 1);
    bool ok = me.Send("put", BundlePut(me, s, a.vantage, k, bundle, done, lease));
    shard.done = done;
    ok = me.Push("push", s) && ok;
    return ok ? 0 : 1;
  }

  if (a.attack == "claim-vantage") {
    // A lease request for another vantage, reporting (for AdoptHeld) a
    // lease of every shard of that pool not done, as if granted to itself
    // by the current coordinator: if the claim were taken, those shards
    // would be held by it and nobody else would scan them.
    if (a.vantage.empty()) Usage("claim-vantage needs --vantage");
    WorkMessage req = me.Base(WorkKind::kLeaseRequest);
    req.vantage = a.vantage;
    if (!a.scan.empty()) {
      ScanState s = need_state();
      if (auto v = VantageIndex(s, a.vantage)) {
        uint64_t epoch = LatestEpoch(s);
        req.epoch = epoch;
        for (uint32_t k = 0; k < s.pools[*v].size() && req.held.size() < kMaxHeldLeases; ++k) {
          if (s.pools[*v][k].done.done) continue;
          req.held.push_back({s.id, a.vantage, k, ShardLease{me.id(), epoch, 1u << 30, WallMs() + 20000}});
        }
      }
    }
    return me.Send("lease", req) ? 0 : 1;
  }

  Usage("unknown attack " + a.attack);
}

}  // namespace
}  // namespace ndo::mesh

int main(int argc, char** argv) { return ndo::mesh::Run(ndo::mesh::ParseArgs(argc, argv)); }
