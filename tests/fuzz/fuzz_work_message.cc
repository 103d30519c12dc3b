// Feeds: any bytes, as a work message of a distributed scan from a member
// (src/mesh/work/work_messages.h: sync, push, lease and renew requests and
// replies, bundle put and fetch), to DecodeWorkMessage. Checks, beyond "no
// crash":
//  - whatever decodes has the bounds the decoder promises (a sender, a known
//    kind, a shard index below kMaxPoolShards, vantage text of at most 64
//    bytes without NUL, entry counts within kMaxSyncDigests);
//  - decode -> encode -> decode gives the same message.
#include <cstdint>

#include "fuzz_check.h"
#include "mesh/work/work_messages.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

bool Same(const WorkMessage& a, const WorkMessage& b) {
  if (a.digests.size() != b.digests.size()) return false;
  for (size_t i = 0; i < a.digests.size(); ++i)
    if (a.digests[i].scan != b.digests[i].scan || a.digests[i].digest != b.digests[i].digest) return false;
  return a.kind == b.kind && a.sender == b.sender && a.error == b.error && a.states == b.states &&
         a.wanted == b.wanted && a.scan == b.scan && a.vantage == b.vantage && a.shard == b.shard &&
         a.lease == b.lease && a.bundle == b.bundle && a.epoch == b.epoch;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = FuzzInput(data, size);
  auto m = DecodeWorkMessage(in);
  if (!m.ok()) return 0;
  FUZZ_CHECK(!m->sender.empty());
  FUZZ_CHECK(!WorkKindName(m->kind).empty() && WorkKindName(m->kind) != "unknown");
  FUZZ_CHECK(m->shard < kMaxPoolShards);
  FUZZ_CHECK(m->vantage.size() <= 64 && m->vantage.find('\0') == std::string::npos);
  FUZZ_CHECK(m->digests.size() <= kMaxSyncDigests && m->states.size() <= kMaxSyncDigests &&
             m->wanted.size() <= kMaxSyncDigests);
  auto encoded = EncodeWorkMessage(*m);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeWorkMessage(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(Same(*m, *again));
  return 0;
}
