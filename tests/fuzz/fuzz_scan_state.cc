// Feeds: any bytes, as the scan state a member sends or the one saved in
// the store, to DecodeScanState (src/mesh/work/pool_state.h).
// Checks, beyond "no crash":
//  - decode -> encode -> decode gives the same state (the same bytes and
//    digest when encoded again);
//  - the merge is a semilattice join: merging the state into itself changes
//    nothing, and merging it with a pending copy of its scan (no lease,
//    nothing done, running at time zero) gives the same state in either
//    order, which a second merge leaves as it is;
//  - CountPool and VantageIndex never crash and agree with the state.
#include <cstdint>

#include "fuzz_check.h"
#include "mesh/work/pool_state.h"

// Not `using namespace ndo`: its ScanState (a stored scan's run state,
// store/scan_record.h) would make the name ambiguous.
using namespace ndo::mesh;

namespace {

std::string Encoded(const ScanState& s) {
  auto bytes = EncodeScanState(s);
  FUZZ_CHECK_MSG(bytes.ok(), bytes.status().message());
  return *bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = DecodeScanState(FuzzInput(data, size));
  if (!s.ok()) return 0;

  std::string bytes = Encoded(*s);
  auto again = DecodeScanState(bytes);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(Encoded(*again) == bytes);
  FUZZ_CHECK(ScanStateDigest(*again).ok() && *ScanStateDigest(*again) == *ScanStateDigest(*s));

  ScanState self = *s;
  bool changed = true;
  FUZZ_CHECK(MergeScanState(self, *s, &changed).ok());
  FUZZ_CHECK(!changed);
  FUZZ_CHECK(Encoded(self) == bytes);

  ScanState pending = *s;
  pending.control = ControlRegister{};
  for (auto& pool : pending.pools)
    for (ShardState& shard : pool) shard = ShardState{};
  ScanState a = pending, b = *s;
  FUZZ_CHECK(MergeScanState(a, *s).ok());
  FUZZ_CHECK(MergeScanState(b, pending).ok());
  FUZZ_CHECK(Encoded(a) == Encoded(b));  // commutative
  FUZZ_CHECK(MergeScanState(a, *s, &changed).ok());
  FUZZ_CHECK(!changed);                  // idempotent

  for (size_t v = 0; v < s->definition.vantages.size(); ++v) {
    FUZZ_CHECK(VantageIndex(*s, s->definition.vantages[v]) == v);
    PoolCounts c = CountPool(s->pools[v], 0);
    FUZZ_CHECK(uint64_t{c.done} + c.leased + c.pending == s->pools[v].size());
  }
  return 0;
}
