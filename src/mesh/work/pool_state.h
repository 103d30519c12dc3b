// The replicated state of distributed scans ("pools as views"): every member
// holds a copy of every scan's state in its store, copies meet over streams
// (pushed on change, exchanged with a random member now and then) and are
// merged. Merge is the join of a semilattice, so it is idempotent,
// commutative and associative, and copies converge whatever the order,
// duplication or delay of the exchanges (docs/protocol.md, "Scan state"):
//
// * the scan's definition (spec, vantages, creation) is immutable and its id
//   is a hash of it: two states of one id always carry the same definition
//   (DecodeScanState refuses one whose id does not match);
// * control (running, paused, stopped) is a last-writer-wins register on a
//   hybrid logical clock stamp; stopped is final (a stopped register wins
//   over any other, and of two stopped ones the earlier stamp) ties broken by
//   the value, then the signature);
// * per pool (one per vantage) and shard:
//   - the lease (holder, coordinator epoch, counter, expiry): the higher
//     (epoch, counter) wins, ties broken by the rest of the record, so a
//     superseded coordinator's leases lose to its successor's;
//   - done flips only from false to true, with the count and SHA-256 digest
//     of the shard's result bundle and the nodes that held it when it was
//     declared done (at least two); of two done records the larger digest
//     wins (both bundles' results are kept by the views: they merge by
//     result), and holders of the winning digest are united. Records that
//     tie on all that (one bundle signed by two scanners) are ordered by
//     their signed fields (results, signer, lease, signature): the winner's
//     signed fields are kept whole, so a joined record still verifies.
// * Signatures (a secured mesh; record_signatures.h) are data to the joins:
//   the work core checks them before it merges (work_core.h).
//
// Pure: no I/O, no clock; times are handed in (wall-clock milliseconds).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/membership/messages.h"
#include "scan/scan_spec.h"
#include "base/status.h"
#include "store/scan_record.h"

namespace ndo::mesh {

inline constexpr size_t kMaxScanVantages = 64;
inline constexpr uint32_t kMaxPoolShards = 1u << 16;
inline constexpr size_t kMaxShardHolders = 16;
// 40 MiB since done records are signed (was 32 MiB): a shard at its largest
// takes 520 bytes now (pool_state.cc kWorstShardBytes), and a state still
// fits one stream frame (kMaxStreamBytes) with room to spare.
inline constexpr size_t kMaxScanStateBytes = 40u << 20;
// Shards of all pools together (vantages x shard count): a state at its
// largest (every shard done and signed, kMaxShardHolders holders each, at
// most 520 bytes encoded) must still fit kMaxScanStateBytes, with room for
// the definition.
inline constexpr size_t kMaxScanShards = 1u << 16;

// A hybrid logical clock stamp (Kulkarni et al. 2014): wall time in ms,
// a logical counter for events within one ms or behind a peer's clock, and
// the node, so that two stamps are never equal unless they are the same.
struct HlcStamp {
  int64_t wall_ms = 0;
  uint32_t logical = 0;
  NodeId node;
  friend auto operator<=>(const HlcStamp&, const HlcStamp&) = default;
};

// One node's hybrid logical clock. Now() stamps a local event; Observe()
// takes in a stamp from a peer so that later local stamps order after it.
class HybridClock {
 public:
  explicit HybridClock(NodeId self) : self_(self) {}
  HlcStamp Now(int64_t wall_ms);
  void Observe(const HlcStamp& seen, int64_t wall_ms);

 private:
  NodeId self_;
  int64_t wall_ms_ = 0;
  uint32_t logical_ = 0;
};

enum class ScanControl : uint8_t { kRunning = 0, kPaused = 1, kStopped = 2 };
std::string_view ScanControlName(ScanControl c);

// Signatures are Ed25519 (record_signatures.h): exactly this long, or empty
// (an insecure mesh signs nothing; states from before signatures).
inline constexpr size_t kRecordSignatureBytes = 64;

struct ControlRegister {
  ScanControl value = ScanControl::kRunning;
  HlcStamp stamp;
  // By stamp.node, an operator, over ControlSigningBytes (record_signatures.h).
  // Default-initialized so that registers built without one (tests,
  // meshsim) compile without -Wmissing-field-initializers.
  std::string signature{};
  friend bool operator==(const ControlRegister&, const ControlRegister&) = default;
};

struct ShardLease {
  NodeId holder;           // empty: never leased
  uint64_t epoch = 0;      // the granting coordinator's epoch
  uint64_t counter = 0;    // per coordinator, rises with every grant or renewal
  int64_t expires_ms = 0;  // wall clock of the granting coordinator
  friend bool operator==(const ShardLease&, const ShardLease&) = default;
};

using Digest = std::array<uint8_t, 32>;

struct ShardDone {
  bool done = false;
  uint64_t results = 0;          // results in the shard's bundle
  Digest digest{};               // SHA-256 of the encoded bundle
  // Not signed: a hint of whom to fetch the bundle from (a fetched bundle is
  // checked against the signed digest anyway).
  std::vector<NodeId> holders;   // sorted, unique, at most kMaxShardHolders
  // The node that scanned the shard, the lease it held when it finished,
  // and its signature over DoneSigningBytes (record_signatures.h). All zero
  // or empty in an insecure mesh; all zero when not done.
  NodeId signer{};
  uint64_t lease_epoch = 0, lease_counter = 0;
  std::string signature{};
  friend bool operator==(const ShardDone&, const ShardDone&) = default;
};

struct ShardState {
  ShardLease lease;
  ShardDone done;
  friend bool operator==(const ShardState&, const ShardState&) = default;
};

// A part of a scan's targets whose every address the same members' scan
// policies cover (mesh/work/scan_regions.h): a shard lies in exactly one
// region, so a node either may scan all of a shard or none of it.
struct ScanRegion {
  IntervalSet targets;
  uint32_t shards = 0;  // its share of each pool's shards, at least 1
};
inline constexpr size_t kMaxScanRegions = 64;
inline constexpr size_t kMaxRegionRanges = 4096;  // of all regions together

// The immutable part of a scan. The spec's shard_count is the number of
// shards of every pool; `vantages` is sorted and unique, each name 1..64
// bytes without NUL. `regions`, when not empty, partition the spec's
// targets (disjoint, in ascending order of their first address, their
// union the targets), and their shares add up to the shard count: shard k
// belongs to the region whose shares, in order, reach past k. Empty: one
// region of all targets (scans submitted before regions existed too).
struct ScanDefinition {
  ScanSpec spec;
  std::vector<std::string> vantages;
  std::vector<ScanRegion> regions;
  int64_t created_ms = 0;
  NodeId submitter;
};

struct ScanState {
  ScanId id{};               // ScanDefinitionId(definition)
  ScanDefinition definition;
  std::string definition_bytes;  // EncodeScanDefinition(definition), kept to hash and forward unchanged
  // By definition.submitter, an operator, over DefinitionSigningBytes
  // (record_signatures.h); empty in an insecure mesh.
  std::string definition_signature;
  ControlRegister control;
  // Per vantage, in the order of definition.vantages: shard_count shards.
  std::vector<std::vector<ShardState>> pools;
};

// Canonical encoding of a definition (Cap'n Proto), and its id: the first 8
// bytes of SHA-256 over those bytes.
Result<std::string> EncodeScanDefinition(const ScanDefinition& def);
Result<ScanDefinition> DecodeScanDefinition(std::string_view bytes);
ScanId ScanDefinitionId(std::string_view definition_bytes);

// A new scan's state: checks the definition (spec valid, 1..kMaxScanVantages
// vantages, shard_count in 1..kMaxPoolShards, at most kMaxScanShards shards
// in all, and a definition small enough that the state always encodes),
// encodes it, derives the id, makes every pool's shards pending, and sets
// control to running at `created`.
Result<ScanState> NewScanState(ScanDefinition def, HlcStamp created);

// The pool of one vantage: its results are kept locally under this id, as a
// scan of their own, so every local view and writer works on it. The first 8
// bytes of SHA-256 over "ndo-pool" | scan id | vantage.
ScanId PoolId(const ScanId& scan, std::string_view vantage);
// Index of `vantage` in def.vantages, or nullopt.
std::optional<size_t> VantageIndex(const ScanState& s, std::string_view vantage);

// Joins `other` into `into` (same id; InvalidArgument otherwise, or when the
// definitions differ). Sets *changed when `into` changed, and appends to
// *done_changed the (pool, shard) of every shard whose done record changed
// (the work core keeps an index of the bundles it lacks by them, and a
// whole state names thousands of shards of which a merge changes a few).
Status MergeScanState(ScanState& into, const ScanState& other, bool* changed = nullptr,
                      std::vector<std::pair<uint32_t, uint32_t>>* done_changed = nullptr);

// The merge rules one field at a time (exposed for tests and the work core):
// each returns the join of a and b.
ControlRegister JoinControl(const ControlRegister& a, const ControlRegister& b);
ShardLease JoinLease(const ShardLease& a, const ShardLease& b);
ShardDone JoinDone(const ShardDone& a, const ShardDone& b);

// Cap'n Proto encoding of the whole state, canonical (the same state always
// gives the same bytes), and a bounded, validating decoder that never throws:
// sizes over the limits above, a definition that does not hash to the id,
// pools that do not match the vantages and shard count, unsorted holders
// give Corruption.
Result<std::string> EncodeScanState(const ScanState& s);
Result<ScanState> DecodeScanState(std::string_view bytes);
// SHA-256 of the canonical encoding: equal digests, equal states (for
// anti-entropy: exchange digests first, then only the states that differ).
// The digest of a state already encoded (EncodeScanState's bytes).
Digest EncodedScanStateDigest(std::string_view encoded);
Result<Digest> ScanStateDigest(const ScanState& s);

// A small part of one scan's state, to ride the gossip (docs/protocol.md,
// "Deltas"): the control register and/or a few shards, as the node that
// sends it holds them. Merging a delta joins exactly those fields, by the
// same rules as MergeScanState, so deltas and whole states may arrive in
// any order, any number of times, and copies still converge. A delta names
// no definition: a node that does not know the scan yet ignores it and
// gets the whole state by anti-entropy.
struct ShardDelta {
  uint32_t pool = 0;   // index of the vantage in definition.vantages
  uint32_t shard = 0;
  ShardState state;
  friend bool operator==(const ShardDelta&, const ShardDelta&) = default;
};

struct ScanDelta {
  ScanId id{};
  std::optional<ControlRegister> control;
  std::vector<ShardDelta> shards;  // sorted by (pool, shard), unique
};

// Bounds: a delta fits one gossip payload (mesh/membership/messages.h
// kMaxPayloadBytes, after the payload's tag byte) with its control register
// and a shard at its largest (kMaxShardHolders holders), both signed: about
// 660 bytes. Two such shards (1,150 bytes) no longer fit since done records
// are signed, so a delta carries one shard (the core never sent more).
inline constexpr size_t kMaxDeltaShards = 1;
inline constexpr size_t kMaxScanDeltaBytes = kMaxPayloadBytes - 1;

// The delta of `s` that carries its control register (when `with_control`)
// and the named shards ((pool, shard) pairs inside the state's shape; the
// others are left out).
ScanDelta DeltaOf(const ScanState& s, bool with_control, const std::vector<std::pair<uint32_t, uint32_t>>& shards);

// Joins `d` into `into`: InvalidArgument, with `into` unchanged, when the ids
// differ or a shard lies outside the state's shape. Sets *changed when
// `into` changed.
Status MergeScanDelta(ScanState& into, const ScanDelta& d, bool* changed = nullptr);

// Canonical Cap'n Proto encoding and a bounded, validating decoder that never
// throws (over kMaxScanDeltaBytes or kMaxDeltaShards, unsorted shards or
// holders, or a pending shard that carries done fields give Corruption; an
// empty delta, too).
Result<std::string> EncodeScanDelta(const ScanDelta& d);
Result<ScanDelta> DecodeScanDelta(std::string_view bytes);

// Counts for status displays.
struct PoolCounts {
  uint32_t done = 0, leased = 0, pending = 0;
  uint32_t refused = 0;  // not done, and no member of the vantage may scan them (scan_regions.h)
  uint64_t results = 0;
};
// A shard is leased when not done and its lease has not expired at now_ms;
// one not done whose index is in `refused` (sorted) is refused, not pending.
PoolCounts CountPool(const std::vector<ShardState>& pool, int64_t now_ms,
                     const std::vector<uint32_t>& refused = {});

// Shards for a mesh scan, sized so that one takes about 20 s at a node's
// rate (between 10 and 20 s unless clamped): long enough that the
// coordinator grants each node a shard only every 20 s or so and a lease
// sees a renewal or two, short enough that a crashed node costs at most
// ~20 s of rescanning and the work spreads over many nodes. rate_per_node 0
// (unlimited) is taken as 20,000 probes/s. At least 1, at most
// kMaxPoolShards (a scan so big that shards last longer simply has long ones).
uint32_t MeshShardCount(u128 probes, double rate_per_node);

}  // namespace ndo::mesh
