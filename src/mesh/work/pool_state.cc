#include "mesh/work/pool_state.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

#include "mesh/membership/capnp_io.h"
#include "mesh/work/pool_state.capnp.h"

namespace ndo::mesh {
namespace {

// A vantage named in a definition may be as long as a member's name; a
// member's own vantage is shorter still (kMaxVantageBytes).
constexpr size_t kMaxDefinitionVantageBytes = 64;

// The most one shard can take in an encoded state: its struct (11 data words,
// 3 pointers), a 32-byte digest, a 64-byte signature, a list of
// kMaxShardHolders holders (a tag word, 2 words each), and, where the
// digest, the signature or the list landed in another segment of the
// message, a far pointer's landing pad (up to 2 words) for each. A unit
// test checks this against the encoder.
constexpr size_t kWorstShardBytes = 8 * (14 + 4 + 8 + 1 + 2 * kMaxShardHolders + 3 * 2);
// The rest: the root, the id, the control stamp, and per pool a pointer and
// a list tag.
constexpr size_t kStateOverheadBytes = 4096 + 16 * kMaxScanVantages + 2 * (kRecordSignatureBytes + 16);
static_assert(kMaxScanShards * kWorstShardBytes + kStateOverheadBytes < kMaxScanStateBytes);

Digest Sha256(std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  // EVP_Digest fails only when out of memory; the zero digest is then
  // harmless (ids are checked by recomputing them, and that fails too).
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

ScanId Truncate(const Digest& d) {
  ScanId id{};
  std::memcpy(id.data(), d.data(), id.size());
  return id;
}

// What is wrong with a definition's regions, or "".
std::string RegionsProblem(const ScanDefinition& def) {
  if (def.regions.empty()) return "";
  if (def.regions.size() > kMaxScanRegions)
    return std::to_string(def.regions.size()) + " regions (at most " + std::to_string(kMaxScanRegions) + ")";
  IntervalSet all;
  size_t ranges = 0;
  uint64_t shards = 0;
  const IntervalSet& targets = def.spec.targets.addresses;
  for (size_t i = 0; i < def.regions.size(); ++i) {
    const ScanRegion& r = def.regions[i];
    if (r.targets.empty()) return "an empty region";
    ranges += r.targets.ranges().size();
    if (ranges > kMaxRegionRanges) return "regions of more than " + std::to_string(kMaxRegionRanges) + " ranges";
    if (i > 0 && !(def.regions[i - 1].targets.ranges().front().first < r.targets.ranges().front().first))
      return "regions not in ascending order";
    if (r.shards == 0) return "a region of no shards";
    if (u128{r.shards} > r.targets.size() * def.spec.ports.size()) return "a region of more shards than probes";
    shards += r.shards;
    u128 size_before = all.size();
    all.Add(r.targets);
    if (all.size() != size_before + r.targets.size()) return "regions overlap";
  }
  if (shards != def.spec.shard_count) return "the regions' shards do not add up to the shard count";
  if (all.size() != targets.size() || !all.IsSubsetOf(targets)) return "the regions are not the targets";
  return "";
}

// What is wrong with a definition, or "" (the caller picks InvalidArgument
// for a local one, Corruption for one that arrived).
std::string DefinitionProblem(const ScanDefinition& def) {
  if (Status s = ValidateSpec(def.spec); !s.ok()) return "scan spec not valid: " + s.message();
  if (def.spec.shard_count < 1 || def.spec.shard_count > kMaxPoolShards)
    return "shard count " + std::to_string(def.spec.shard_count) + " outside 1.." + std::to_string(kMaxPoolShards);
  if (def.vantages.empty() || def.vantages.size() > kMaxScanVantages)
    return std::to_string(def.vantages.size()) + " vantages (1.." + std::to_string(kMaxScanVantages) + ")";
  if (def.vantages.size() * def.spec.shard_count > kMaxScanShards)
    return std::to_string(def.vantages.size()) + " vantages x " + std::to_string(def.spec.shard_count) +
           " shards is more than " + std::to_string(kMaxScanShards) + " shards in all";
  if (std::string problem = RegionsProblem(def); !problem.empty()) return problem;
  for (size_t i = 0; i < def.vantages.size(); ++i) {
    const std::string& v = def.vantages[i];
    if (v.empty() || v.size() > kMaxDefinitionVantageBytes || v.find('\0') != std::string::npos)
      return "vantage name of " + std::to_string(v.size()) + " bytes (1.." +
             std::to_string(kMaxDefinitionVantageBytes) + ", no NUL)";
    if (i > 0 && !(def.vantages[i - 1] < v)) return "vantages not sorted and unique";
  }
  return "";
}

bool SignatureSizeOk(std::string_view sig) { return sig.empty() || sig.size() == kRecordSignatureBytes; }

std::string SignatureProblem(std::string_view sig, const char* what) {
  if (SignatureSizeOk(sig)) return "";
  return std::string(what) + " signature of " + std::to_string(sig.size()) + " bytes (" +
         std::to_string(kRecordSignatureBytes) + " or none)";
}

capnp::Data::Reader AsData(std::string_view b) { return {reinterpret_cast<const kj::byte*>(b.data()), b.size()}; }
std::string FromData(capnp::Data::Reader d) { return std::string(reinterpret_cast<const char*>(d.begin()), d.size()); }

// What is wrong with one shard's record, or "". A record that is not done
// carries nothing of done (so two copies of a pending shard are equal).
std::string ShardProblem(const ShardState& s) {
  const auto& h = s.done.holders;
  if (h.size() > kMaxShardHolders) return "more than " + std::to_string(kMaxShardHolders) + " holders of a shard";
  for (size_t i = 0; i < h.size(); ++i) {
    if (h[i].empty()) return "empty shard holder id";
    if (i > 0 && !(h[i - 1] < h[i])) return "shard holders not sorted and unique";
  }
  if (!s.done.done && (s.done.results != 0 || s.done.digest != Digest{} || !h.empty()))
    return "a shard not done carries a result count, digest or holders";
  if (!s.done.done && (!s.done.signer.empty() || s.done.lease_epoch != 0 || s.done.lease_counter != 0 ||
                       !s.done.signature.empty()))
    return "a shard not done carries a signer, lease or signature";
  if (!SignatureSizeOk(s.done.signature)) return "done record signature of " + std::to_string(s.done.signature.size()) + " bytes";
  return "";
}

// The order behind JoinControl, total on registers: stopped above anything
// else; of two stopped, the earlier stamp above (the first stop is the one
// every copy keeps); otherwise the later stamp, then the value (equal stamps
// with different values come only from broken or hostile copies, but must
// join alike everywhere too).
bool ControlBelow(const ControlRegister& a, const ControlRegister& b) {
  bool sa = a.value == ScanControl::kStopped, sb = b.value == ScanControl::kStopped;
  if (sa != sb) return sb;
  if (sa) return a.stamp != b.stamp ? b.stamp < a.stamp : a.signature < b.signature;
  return std::tie(a.stamp, a.value, a.signature) < std::tie(b.stamp, b.value, b.signature);
}

template <typename T>
bool Assign(T& field, T value) {
  if (field == value) return false;
  field = std::move(value);
  return true;
}

void SetStamp(schema::HlcStamp::Builder b, const HlcStamp& s) {
  b.setWallMs(s.wall_ms);
  b.setLogical(s.logical);
  b.setNodeHi(s.node.hi);
  b.setNodeLo(s.node.lo);
}

HlcStamp GetStamp(schema::HlcStamp::Reader r) {
  return {r.getWallMs(), r.getLogical(), NodeId{r.getNodeHi(), r.getNodeLo()}};
}

// One shard's record, in states and deltas alike. A pending shard's digest
// stays unset, so equal records give equal bytes.
void SetShard(schema::ShardState::Builder out, const ShardState& in) {
  out.setHolderHi(in.lease.holder.hi);
  out.setHolderLo(in.lease.holder.lo);
  out.setEpoch(in.lease.epoch);
  out.setCounter(in.lease.counter);
  out.setExpiresMs(in.lease.expires_ms);
  if (!in.done.done) return;
  out.setDone(true);
  out.setResults(in.done.results);
  out.setDigest(kj::ArrayPtr<const kj::byte>(in.done.digest.data(), in.done.digest.size()));
  auto holders = out.initHolders(static_cast<unsigned>(in.done.holders.size()));
  for (unsigned i = 0; i < in.done.holders.size(); ++i) {
    holders[i].setIdHi(in.done.holders[i].hi);
    holders[i].setIdLo(in.done.holders[i].lo);
  }
  out.setSignerHi(in.done.signer.hi);
  out.setSignerLo(in.done.signer.lo);
  out.setDoneLeaseEpoch(in.done.lease_epoch);
  out.setDoneLeaseCounter(in.done.lease_counter);
  // Unset when empty: a record of an insecure mesh (or from before
  // signatures) keeps its bytes, and its state its digest.
  if (!in.done.signature.empty()) out.setDoneSig(AsData(in.done.signature));
}

Status GetShard(schema::ShardState::Reader in, ShardState& out) {
  out.lease = {NodeId{in.getHolderHi(), in.getHolderLo()}, in.getEpoch(), in.getCounter(), in.getExpiresMs()};
  out.done.done = in.getDone();
  out.done.results = in.getResults();
  auto digest = in.getDigest();
  if (digest.size() != (out.done.done ? out.done.digest.size() : 0))
    return Status::Corruption("shard digest of " + std::to_string(digest.size()) + " bytes");
  if (digest.size() != 0) std::memcpy(out.done.digest.data(), digest.begin(), digest.size());
  auto holders = in.getHolders();
  if (holders.size() > kMaxShardHolders)
    return Status::Corruption("more than " + std::to_string(kMaxShardHolders) + " holders of a shard");
  for (auto h : holders) out.done.holders.push_back(NodeId{h.getIdHi(), h.getIdLo()});
  out.done.signer = NodeId{in.getSignerHi(), in.getSignerLo()};
  out.done.lease_epoch = in.getDoneLeaseEpoch();
  out.done.lease_counter = in.getDoneLeaseCounter();
  auto sig = in.getDoneSig();
  // Checked before it is copied: the size bounds what is read.
  if (!SignatureSizeOk({reinterpret_cast<const char*>(sig.begin()), sig.size()}))
    return Status::Corruption(SignatureProblem({reinterpret_cast<const char*>(sig.begin()), sig.size()}, "done record"));
  out.done.signature = FromData(sig);
  if (std::string problem = ShardProblem(out); !problem.empty()) return Status::Corruption(problem);
  return Status::Ok();
}

Status GetScanId(capnp::Data::Reader id, const char* what, ScanId& out) {
  if (id.size() != out.size()) return Status::Corruption(std::string(what) + " id has " + std::to_string(id.size()) + " bytes");
  std::memcpy(out.data(), id.begin(), id.size());
  return Status::Ok();
}

// Sets a clock's logical counter. 2^32 events within one millisecond cannot
// happen, but a peer's stamp can say so: move on to the next millisecond
// rather than wrap (and at the end of time, which again only a hostile stamp
// reaches, stand still).
void AdvanceClock(int64_t& wall_ms, uint32_t& logical, uint64_t next) {
  if (next <= std::numeric_limits<uint32_t>::max()) {
    logical = static_cast<uint32_t>(next);
  } else if (wall_ms < std::numeric_limits<int64_t>::max()) {
    ++wall_ms;
    logical = 0;
  } else {
    logical = std::numeric_limits<uint32_t>::max();
  }
}

}  // namespace

HlcStamp HybridClock::Now(int64_t wall_ms) {
  if (wall_ms > wall_ms_) {
    wall_ms_ = wall_ms;
    logical_ = 0;
  } else {
    AdvanceClock(wall_ms_, logical_, uint64_t{logical_} + 1);
  }
  return {wall_ms_, logical_, self_};
}

void HybridClock::Observe(const HlcStamp& seen, int64_t wall_ms) {
  int64_t l = std::max({wall_ms_, seen.wall_ms, wall_ms});
  uint64_t c = 0;
  if (l == wall_ms_ && l == seen.wall_ms)
    c = uint64_t{std::max(logical_, seen.logical)} + 1;
  else if (l == wall_ms_)
    c = uint64_t{logical_} + 1;
  else if (l == seen.wall_ms)
    c = uint64_t{seen.logical} + 1;
  wall_ms_ = l;
  AdvanceClock(wall_ms_, logical_, c);
}

std::string_view ScanControlName(ScanControl c) {
  switch (c) {
    case ScanControl::kRunning: return "running";
    case ScanControl::kPaused: return "paused";
    case ScanControl::kStopped: return "stopped";
  }
  return "unknown";
}

Result<std::string> EncodeScanDefinition(const ScanDefinition& def) {
  if (std::string problem = DefinitionProblem(def); !problem.empty()) return Status::InvalidArgument(problem);
  // Built in one fixed order from the definition alone: the same definition
  // gives the same bytes on every node (the id depends on it).
  return CapnpEncode<schema::ScanDefinition>("scan definition", kMaxScanStateBytes, [&](auto b) {
    std::string spec = EncodeScanSpec(def.spec);
    b.setSpec(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(spec.data()), spec.size()));
    auto vantages = b.initVantages(static_cast<unsigned>(def.vantages.size()));
    for (unsigned i = 0; i < def.vantages.size(); ++i) vantages.set(i, def.vantages[i]);
    b.setCreatedMs(def.created_ms);
    b.setSubmitterHi(def.submitter.hi);
    b.setSubmitterLo(def.submitter.lo);
    // Absent when there are none: a scan without regions keeps its bytes,
    // and so its id.
    if (!def.regions.empty()) {
      auto regions = b.initRegions(static_cast<unsigned>(def.regions.size()));
      for (unsigned i = 0; i < def.regions.size(); ++i) {
        const auto& rs = def.regions[i].targets.ranges();
        auto ranges = regions[i].initRanges(static_cast<unsigned>(rs.size()));
        for (unsigned k = 0; k < rs.size(); ++k) {
          ranges[k].setFirstHi(static_cast<uint64_t>(rs[k].first >> 64));
          ranges[k].setFirstLo(static_cast<uint64_t>(rs[k].first));
          ranges[k].setLastHi(static_cast<uint64_t>(rs[k].last >> 64));
          ranges[k].setLastLo(static_cast<uint64_t>(rs[k].last));
        }
        regions[i].setShards(def.regions[i].shards);
      }
    }
    return Status::Ok();
  });
}

Result<ScanDefinition> DecodeScanDefinition(std::string_view bytes) {
  ScanDefinition def;
  std::string spec;
  Status st = CapnpDecode<schema::ScanDefinition>(bytes, "scan definition", kMaxScanStateBytes, [&](auto r) {
    auto s = r.getSpec();
    spec.assign(reinterpret_cast<const char*>(s.begin()), s.size());
    auto vantages = r.getVantages();
    if (vantages.size() > kMaxScanVantages) return Status::Corruption("too many vantages in a scan definition");
    for (auto v : vantages) def.vantages.push_back(CapnpText(v));
    def.created_ms = r.getCreatedMs();
    def.submitter = NodeId{r.getSubmitterHi(), r.getSubmitterLo()};
    auto regions = r.getRegions();
    if (regions.size() > kMaxScanRegions) return Status::Corruption("too many regions in a scan definition");
    size_t total = 0;
    for (auto region : regions) {
      auto ranges = region.getRanges();
      total += ranges.size();
      if (total > kMaxRegionRanges) return Status::Corruption("too many region ranges in a scan definition");
      ScanRegion out;
      u128 last_end = 0;
      for (unsigned k = 0; k < ranges.size(); ++k) {
        AddressRange a{(u128{ranges[k].getFirstHi()} << 64) | ranges[k].getFirstLo(),
                       (u128{ranges[k].getLastHi()} << 64) | ranges[k].getLastLo()};
        // Canonical only (one definition, one encoding, one id).
        if (a.last < a.first || (k > 0 && (last_end == ~u128{0} || a.first <= last_end + 1)))
          return Status::Corruption("scan definition: region ranges not sorted, disjoint and apart");
        last_end = a.last;
        out.targets.Add(a);
      }
      out.shards = region.getShards();
      def.regions.push_back(std::move(out));
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  auto decoded = DecodeScanSpec(spec);
  if (!decoded.ok()) return Status::Corruption("scan definition: " + decoded.status().message());
  def.spec = std::move(*decoded);
  if (std::string problem = DefinitionProblem(def); !problem.empty())
    return Status::Corruption("scan definition: " + problem);
  return def;
}

ScanId ScanDefinitionId(std::string_view definition_bytes) { return Truncate(Sha256(definition_bytes)); }

Result<ScanState> NewScanState(ScanDefinition def, HlcStamp created) {
  auto bytes = EncodeScanDefinition(def);
  if (!bytes.ok()) return bytes.status();
  size_t shards = def.vantages.size() * def.spec.shard_count;
  // Checked now, so that no later merge can make the state too large to
  // encode (and so to save or send).
  if (bytes->size() + shards * kWorstShardBytes + kStateOverheadBytes > kMaxScanStateBytes)
    return Status::InvalidArgument("scan definition too large (" + std::to_string(bytes->size()) +
                                   " bytes) for its state to stay within " + std::to_string(kMaxScanStateBytes) +
                                   " bytes with " + std::to_string(shards) + " shards");
  ScanState s;
  s.id = ScanDefinitionId(*bytes);
  s.definition_bytes = std::move(*bytes);
  s.control = {ScanControl::kRunning, created};
  s.pools.assign(def.vantages.size(), std::vector<ShardState>(def.spec.shard_count));
  s.definition = std::move(def);
  return s;
}

ScanId PoolId(const ScanId& scan, std::string_view vantage) {
  std::string data = "ndo-pool";
  data.append(reinterpret_cast<const char*>(scan.data()), scan.size());
  data.append(vantage);
  return Truncate(Sha256(data));
}

std::optional<size_t> VantageIndex(const ScanState& s, std::string_view vantage) {
  const auto& v = s.definition.vantages;
  auto it = std::lower_bound(v.begin(), v.end(), vantage);
  if (it == v.end() || *it != vantage) return std::nullopt;
  return static_cast<size_t>(it - v.begin());
}

ControlRegister JoinControl(const ControlRegister& a, const ControlRegister& b) { return ControlBelow(a, b) ? b : a; }

ShardLease JoinLease(const ShardLease& a, const ShardLease& b) {
  // Lexicographic on every field: (epoch, counter) decides, the rest only
  // breaks ties (two grants of one counter come only from a broken or
  // hostile coordinator), so the order is total and every copy agrees.
  auto key = [](const ShardLease& l) { return std::tie(l.epoch, l.counter, l.expires_ms, l.holder); };
  return key(a) < key(b) ? b : a;
}

ShardDone JoinDone(const ShardDone& a, const ShardDone& b) {
  if (a.done != b.done) return a.done ? a : b;
  auto key = [](const ShardDone& d) {
    return std::tie(d.digest, d.results, d.holders, d.signer, d.lease_epoch, d.lease_counter, d.signature);
  };
  // Not done: both are empty in any valid state; the order is total anyway.
  if (!a.done || a.digest != b.digest) return key(a) < key(b) ? b : a;
  // One bundle declared done by different holders: they all hold it. The
  // kMaxShardHolders smallest ids of the union is itself a join. The signed
  // fields come whole from one record (the larger result count, equal for
  // equal digests unless a copy is broken, then the signer, lease and
  // signature), never mixed, so the join verifies as that record did.
  auto signed_key = [](const ShardDone& d) {
    return std::tie(d.results, d.signer, d.lease_epoch, d.lease_counter, d.signature);
  };
  ShardDone out = signed_key(a) < signed_key(b) ? b : a;
  const ShardDone& other = signed_key(a) < signed_key(b) ? a : b;
  out.holders.insert(out.holders.end(), other.holders.begin(), other.holders.end());
  std::sort(out.holders.begin(), out.holders.end());
  out.holders.erase(std::unique(out.holders.begin(), out.holders.end()), out.holders.end());
  if (out.holders.size() > kMaxShardHolders) out.holders.resize(kMaxShardHolders);
  return out;
}

Status MergeScanState(ScanState& into, const ScanState& other, bool* changed,
                      std::vector<std::pair<uint32_t, uint32_t>>* done_changed) {
  if (changed) *changed = false;
  if (into.id != other.id)
    return Status::InvalidArgument("scan state of " + ScanIdToHex(other.id) + " is not of scan " + ScanIdToHex(into.id));
  if (into.definition_bytes != other.definition_bytes)
    return Status::InvalidArgument("two different definitions of scan " + ScanIdToHex(into.id));
  // Equal definitions give equal shapes in decoded or new states; checked
  // before anything changes, so a refused merge leaves `into` as it was.
  bool same_shape = into.pools.size() == other.pools.size();
  for (size_t v = 0; same_shape && v < into.pools.size(); ++v) same_shape = into.pools[v].size() == other.pools[v].size();
  if (!same_shape) return Status::InvalidArgument("scan " + ScanIdToHex(into.id) + ": pools of different shapes");
  bool any = Assign(into.control, JoinControl(into.control, other.control));
  // One definition has one valid signature (Ed25519 is deterministic): the
  // larger bytes win, so a signed copy wins over an unsigned one. A bad one
  // is the work core's to screen out before it merges.
  any |= Assign(into.definition_signature, std::max(into.definition_signature, other.definition_signature));
  for (size_t v = 0; v < into.pools.size(); ++v) {
    for (size_t k = 0; k < into.pools[v].size(); ++k) {
      ShardState& mine = into.pools[v][k];
      const ShardState& theirs = other.pools[v][k];
      any |= Assign(mine.lease, JoinLease(mine.lease, theirs.lease));
      if (Assign(mine.done, JoinDone(mine.done, theirs.done))) {
        any = true;
        if (done_changed) done_changed->emplace_back(static_cast<uint32_t>(v), static_cast<uint32_t>(k));
      }
    }
  }
  if (changed) *changed = any;
  return Status::Ok();
}

Result<std::string> EncodeScanState(const ScanState& s) {
  if (s.pools.size() != s.definition.vantages.size())
    return Status::InvalidArgument("scan state has " + std::to_string(s.pools.size()) + " pools for " +
                                   std::to_string(s.definition.vantages.size()) + " vantages");
  for (const auto& pool : s.pools) {
    if (pool.size() != s.definition.spec.shard_count)
      return Status::InvalidArgument("scan state pool has " + std::to_string(pool.size()) + " shards, not " +
                                     std::to_string(s.definition.spec.shard_count));
    for (const ShardState& shard : pool)
      if (std::string problem = ShardProblem(shard); !problem.empty()) return Status::InvalidArgument(problem);
  }
  for (auto [sig, what] : {std::pair{&s.definition_signature, "definition"}, {&s.control.signature, "control"}})
    if (std::string problem = SignatureProblem(*sig, what); !problem.empty()) return Status::InvalidArgument(problem);
  // Every field in one fixed order, lists in the state's own order, and
  // nothing optional left to chance (a pending shard's digest stays unset):
  // equal states, equal bytes.
  return CapnpEncode<schema::ScanState>("scan state", kMaxScanStateBytes, [&](auto b) {
    b.setId(kj::ArrayPtr<const kj::byte>(s.id.data(), s.id.size()));
    b.setDefinition(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(s.definition_bytes.data()),
                                                 s.definition_bytes.size()));
    b.setControl(static_cast<schema::ScanState::Control>(s.control.value));
    SetStamp(b.initControlStamp(), s.control.stamp);
    auto pools = b.initPools(static_cast<unsigned>(s.pools.size()));
    for (unsigned v = 0; v < s.pools.size(); ++v) {
      auto shards = pools[v].initShards(static_cast<unsigned>(s.pools[v].size()));
      for (unsigned k = 0; k < s.pools[v].size(); ++k) SetShard(shards[k], s.pools[v][k]);
    }
    if (!s.definition_signature.empty()) b.setDefinitionSig(AsData(s.definition_signature));
    if (!s.control.signature.empty()) b.setControlSig(AsData(s.control.signature));
    return Status::Ok();
  });
}

Result<ScanState> DecodeScanState(std::string_view bytes) {
  ScanState s;
  Status st = CapnpDecode<schema::ScanState>(bytes, "scan state", kMaxScanStateBytes, [&](auto r) {
    if (Status st = GetScanId(r.getId(), "scan state", s.id); !st.ok()) return st;
    auto def = r.getDefinition();
    s.definition_bytes.assign(reinterpret_cast<const char*>(def.begin()), def.size());
    // The id is checked first: a definition that does not hash to it may
    // be anything, and is not worth decoding.
    if (ScanDefinitionId(s.definition_bytes) != s.id)
      return Status::Corruption("scan state of " + ScanIdToHex(s.id) + ": the definition does not hash to the id");
    auto decoded = DecodeScanDefinition(s.definition_bytes);
    if (!decoded.ok()) return decoded.status();
    s.definition = std::move(*decoded);

    auto control = static_cast<uint16_t>(r.getControl());
    if (control > static_cast<uint16_t>(ScanControl::kStopped)) return Status::Corruption("unknown scan control value");
    s.control.value = static_cast<ScanControl>(control);
    s.control.stamp = GetStamp(r.getControlStamp());
    for (auto [data, out, what] : {std::tuple{r.getDefinitionSig(), &s.definition_signature, "definition"},
                                   {r.getControlSig(), &s.control.signature, "control"}}) {
      std::string_view view(reinterpret_cast<const char*>(data.begin()), data.size());
      if (std::string problem = SignatureProblem(view, what); !problem.empty()) return Status::Corruption(problem);
      *out = std::string(view);
    }

    // Counts before contents: the definition bounds what is read (at most
    // kMaxScanShards shards), whatever the lists claim.
    auto pools = r.getPools();
    uint32_t shard_count = s.definition.spec.shard_count;
    if (pools.size() != s.definition.vantages.size())
      return Status::Corruption("scan state has " + std::to_string(pools.size()) + " pools for " +
                                std::to_string(s.definition.vantages.size()) + " vantages");
    s.pools.resize(pools.size());
    for (unsigned v = 0; v < pools.size(); ++v) {
      auto shards = pools[v].getShards();
      if (shards.size() != shard_count)
        return Status::Corruption("scan state pool has " + std::to_string(shards.size()) + " shards, not " +
                                  std::to_string(shard_count));
      s.pools[v].resize(shard_count);
      for (unsigned k = 0; k < shard_count; ++k)
        if (Status st = GetShard(shards[k], s.pools[v][k]); !st.ok()) return st;
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return s;
}

Digest EncodedScanStateDigest(std::string_view encoded) { return Sha256(encoded); }

Result<Digest> ScanStateDigest(const ScanState& s) {
  auto bytes = EncodeScanState(s);
  if (!bytes.ok()) return bytes.status();
  return Sha256(*bytes);
}

ScanDelta DeltaOf(const ScanState& s, bool with_control, const std::vector<std::pair<uint32_t, uint32_t>>& shards) {
  ScanDelta d;
  d.id = s.id;
  if (with_control) d.control = s.control;
  for (const auto& [v, k] : shards)
    if (v < s.pools.size() && k < s.pools[v].size()) d.shards.push_back({v, k, s.pools[v][k]});
  std::sort(d.shards.begin(), d.shards.end(),
            [](const ShardDelta& a, const ShardDelta& b) { return std::tie(a.pool, a.shard) < std::tie(b.pool, b.shard); });
  d.shards.erase(std::unique(d.shards.begin(), d.shards.end(),
                             [](const ShardDelta& a, const ShardDelta& b) { return a.pool == b.pool && a.shard == b.shard; }),
                 d.shards.end());
  return d;
}

Status MergeScanDelta(ScanState& into, const ScanDelta& d, bool* changed) {
  if (changed) *changed = false;
  if (into.id != d.id)
    return Status::InvalidArgument("delta of " + ScanIdToHex(d.id) + " is not of scan " + ScanIdToHex(into.id));
  // Checked before anything changes: a refused delta leaves `into` as it was.
  for (const ShardDelta& sd : d.shards)
    if (sd.pool >= into.pools.size() || sd.shard >= into.pools[sd.pool].size())
      return Status::InvalidArgument("delta of scan " + ScanIdToHex(d.id) + " names shard " + std::to_string(sd.shard) +
                                     " of pool " + std::to_string(sd.pool) + ", outside the scan");
  bool any = d.control && Assign(into.control, JoinControl(into.control, *d.control));
  for (const ShardDelta& sd : d.shards) {
    ShardState& mine = into.pools[sd.pool][sd.shard];
    any |= Assign(mine.lease, JoinLease(mine.lease, sd.state.lease));
    any |= Assign(mine.done, JoinDone(mine.done, sd.state.done));
  }
  if (changed) *changed = any;
  return Status::Ok();
}

namespace {

// What is wrong with a delta's shape, or "".
std::string DeltaProblem(const ScanDelta& d) {
  if (!d.control && d.shards.empty()) return "empty scan delta";
  if (d.control)
    if (std::string problem = SignatureProblem(d.control->signature, "control"); !problem.empty()) return problem;
  if (d.shards.size() > kMaxDeltaShards)
    return "scan delta of " + std::to_string(d.shards.size()) + " shards (at most " + std::to_string(kMaxDeltaShards) + ")";
  for (size_t i = 0; i < d.shards.size(); ++i) {
    const ShardDelta& sd = d.shards[i];
    if (sd.pool >= kMaxScanVantages || sd.shard >= kMaxPoolShards) return "scan delta shard outside any scan";
    if (i > 0 && !(std::tie(d.shards[i - 1].pool, d.shards[i - 1].shard) < std::tie(sd.pool, sd.shard)))
      return "scan delta shards not sorted and unique";
    if (std::string problem = ShardProblem(sd.state); !problem.empty()) return problem;
  }
  return "";
}

}  // namespace

Result<std::string> EncodeScanDelta(const ScanDelta& d) {
  if (std::string problem = DeltaProblem(d); !problem.empty()) return Status::InvalidArgument(problem);
  return CapnpEncode<schema::ScanDelta>("scan delta", kMaxScanDeltaBytes, [&](auto b) {
    b.setId(kj::ArrayPtr<const kj::byte>(d.id.data(), d.id.size()));
    if (d.control) {
      b.setHasControl(true);
      b.setControl(static_cast<schema::ScanState::Control>(d.control->value));
      SetStamp(b.initControlStamp(), d.control->stamp);
      if (!d.control->signature.empty()) b.setControlSig(AsData(d.control->signature));
    }
    auto shards = b.initShards(static_cast<unsigned>(d.shards.size()));
    for (unsigned i = 0; i < d.shards.size(); ++i) {
      shards[i].setPool(d.shards[i].pool);
      shards[i].setShard(d.shards[i].shard);
      SetShard(shards[i].initState(), d.shards[i].state);
    }
    return Status::Ok();
  });
}

Result<ScanDelta> DecodeScanDelta(std::string_view bytes) {
  ScanDelta d;
  Status st = CapnpDecode<schema::ScanDelta>(bytes, "scan delta", kMaxScanDeltaBytes, [&](auto r) {
    if (Status s = GetScanId(r.getId(), "scan delta", d.id); !s.ok()) return s;
    if (r.getHasControl()) {
      auto control = static_cast<uint16_t>(r.getControl());
      if (control > static_cast<uint16_t>(ScanControl::kStopped)) return Status::Corruption("unknown scan control value");
      auto sig = r.getControlSig();
      std::string_view view(reinterpret_cast<const char*>(sig.begin()), sig.size());
      if (std::string problem = SignatureProblem(view, "control"); !problem.empty()) return Status::Corruption(problem);
      d.control = ControlRegister{static_cast<ScanControl>(control), GetStamp(r.getControlStamp()), std::string(view)};
    } else if (r.hasControlStamp() || r.hasControlSig() || r.getControl() != schema::ScanState::Control::RUNNING) {
      return Status::Corruption("scan delta without control carries a control value");
    }
    auto shards = r.getShards();
    if (shards.size() > kMaxDeltaShards)
      return Status::Corruption("scan delta of " + std::to_string(shards.size()) + " shards");
    for (auto in : shards) {
      ShardDelta sd{in.getPool(), in.getShard(), {}};
      if (Status s = GetShard(in.getState(), sd.state); !s.ok()) return s;
      d.shards.push_back(std::move(sd));
    }
    if (std::string problem = DeltaProblem(d); !problem.empty()) return Status::Corruption(problem);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return d;
}

PoolCounts CountPool(const std::vector<ShardState>& pool, int64_t now_ms, const std::vector<uint32_t>& refused) {
  PoolCounts c;
  for (uint32_t k = 0; k < pool.size(); ++k) {
    const ShardState& s = pool[k];
    if (s.done.done) {
      ++c.done;
      c.results += s.done.results;
    } else if (std::binary_search(refused.begin(), refused.end(), k)) {
      ++c.refused;
    } else if (!s.lease.holder.empty() && now_ms < s.lease.expires_ms) {
      ++c.leased;
    } else {
      ++c.pending;
    }
  }
  return c;
}

uint32_t MeshShardCount(u128 probes, double rate_per_node) {
  constexpr double kShardSeconds = 20;
  constexpr double kUnlimitedRate = 20000;  // what one node's descriptors sustain, roughly
  constexpr double kMaxPerShard = 1e18;     // keeps the conversion below defined for absurd rates
  double rate = rate_per_node > 0 ? rate_per_node : kUnlimitedRate;  // NaN too: unlimited
  double per_shard = std::clamp(rate * kShardSeconds, 1.0, kMaxPerShard);
  u128 per = static_cast<u128>(per_shard);
  u128 shards = probes / per + (probes % per != 0 ? 1 : 0);  // no overflow near 2^128
  return static_cast<uint32_t>(std::clamp<u128>(shards, 1, kMaxPoolShards));
}

}  // namespace ndo::mesh
