// The messages of distributed scans between members (mesh/work/work.capnp), sent
// over the mesh's streams as one request frame and one reply frame of kind
// FrameKind::kWork (mesh/membership/stream_frame.h):
//
//   kSync        {digests}         -> kSyncReply {states that differ or the
//                                     sender lacks, ids the replier wants}
//   kPush        {states}          -> kAck
//   kLeaseRequest{vantage, epoch, held}  -> kLeaseGrant {scan, vantage, shard,
//                                     lease} or kRefused {error}
//   kRenewRequest{scan, vantage, shard, epoch, held} -> kRenewed {lease} /
//                                     kRefused
//
// `held` is every lease the worker holds: a coordinator that has just taken
// office learns from it the leases its predecessor granted that it never
// heard of (work_core.h).
//   kBundlePut   {scan, vantage, shard, bundle, done, lease} -> kAck / kRefused
//   kBundleFetch {scan, vantage, shard} -> kBundleData {bundle} / kRefused
//   kCertFetch   {nodes}          -> kCertData {certs: PEM, of those known}
//                                     / kRefused (an insecure mesh)
//
// In a secured mesh a bundlePut carries the sender's signed done claim of
// the shard (`done`: done, results, digest, signer = sender, lease epoch and
// counter, signature; no holders) and the lease it holds (`lease`): the
// receiver checks both as it checks a done record (record_signatures.h)
// before it keeps the bundle, whose digest must be the claim's. A node
// that meets a record signed by a node whose certificate it lacks asks the
// member it had the record from with a certFetch.
//
// The decoder is bounded and validating: a message that does not hold what
// its kind needs is Corruption, never a crash.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/membership/messages.h"
#include "mesh/work/pool_state.h"
#include "base/status.h"

namespace ndo::mesh {

inline constexpr size_t kMaxWorkMessageBytes = kMaxStreamBytes;
inline constexpr size_t kMaxSyncDigests = 100000;
inline constexpr size_t kMaxHeldLeases = 256;
inline constexpr size_t kMaxCertFetchNodes = 16;   // certFetch nodes, certData certs
inline constexpr size_t kMaxCertPemBytes = 16384;  // one PEM certificate

enum class WorkKind : uint8_t {
  kSync = 1,
  kSyncReply = 2,
  kPush = 3,
  kAck = 4,
  kLeaseRequest = 5,
  kLeaseGrant = 6,
  kRenewRequest = 7,
  kRenewed = 8,
  kRefused = 9,
  kBundlePut = 10,
  kBundleFetch = 11,
  kBundleData = 12,
  kCertFetch = 13,
  kCertData = 14,
};
std::string_view WorkKindName(WorkKind k);

struct ScanDigestEntry {
  ScanId scan{};
  Digest digest{};
};

// A lease its holder reports (WorkMessage::held).
struct HeldLease {
  ScanId scan{};
  std::string vantage;
  uint32_t shard = 0;
  ShardLease lease;
  friend bool operator==(const HeldLease&, const HeldLease&) = default;
};

struct WorkMessage {
  WorkKind kind = WorkKind::kAck;
  NodeId sender;
  std::string error;                      // kRefused
  std::vector<ScanDigestEntry> digests;   // kSync
  std::vector<std::string> states;        // kSyncReply, kPush: EncodeScanState bytes
  std::vector<ScanId> wanted;             // kSyncReply
  ScanId scan{};                          // lease, renew, bundle kinds
  std::string vantage;
  uint32_t shard = 0;
  ShardLease lease;                       // kLeaseGrant, kRenewed
  std::string bundle;                     // kBundlePut, kBundleData
  uint64_t epoch = 0;                     // kLeaseRequest, kRenewRequest
  std::vector<HeldLease> held;            // kLeaseRequest, kRenewRequest
  std::vector<NodeId> nodes;              // kCertFetch
  std::vector<std::string> certs;         // kCertData
  ShardDone done;                         // kBundlePut: the signed claim (done false: none)
};

// Without the kind byte.
Result<std::string> EncodeWorkMessage(const WorkMessage& m);
Result<WorkMessage> DecodeWorkMessage(std::string_view bytes);

}  // namespace ndo::mesh
