// Feeds: any bytes, as the scan-state delta a member gossips, to
// DecodeScanDelta (src/mesh/work/pool_state.h).
// Checks, beyond "no crash":
//  - decode -> encode -> decode gives the same delta, and encoding it again
//    the same bytes (canonical);
//  - merged into a state of a fixed scan (2 pools of 4 shards; the delta's
//    id is taken over), it is either refused with the state untouched
//    (a shard outside the scan) or joined, and then merging it again, or
//    merging the result with the state it started from, changes nothing
//    (idempotent, and an upper bound of both).
#include <cstdint>

#include "fuzz_check.h"
#include "mesh/work/pool_state.h"

using namespace ndo::mesh;

namespace {

ScanState FixedState() {
  ScanDefinition def;
  def.spec.arguments = {"ndo", "127.0.0.1", "-p", "80"};
  def.spec.targets.addresses.Add({ndo::IpAddress::FromV4(0x7f000001).value(), ndo::IpAddress::FromV4(0x7f000001).value()});
  def.spec.ports = {80};
  def.spec.seed = 1;
  def.spec.shard_count = 4;
  def.vantages = {"dmz", "wifi"};
  auto s = NewScanState(std::move(def), HlcStamp{1'700'000'000'000, 0, NodeId{1, 2}});
  FUZZ_CHECK_MSG(s.ok(), s.status().message());
  return *s;
}

std::string Encoded(const ScanState& s) {
  auto bytes = EncodeScanState(s);
  FUZZ_CHECK_MSG(bytes.ok(), bytes.status().message());
  return *bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto d = DecodeScanDelta(FuzzInput(data, size));
  if (!d.ok()) return 0;

  auto bytes = EncodeScanDelta(*d);
  FUZZ_CHECK_MSG(bytes.ok(), bytes.status().message());
  auto again = DecodeScanDelta(*bytes);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(again->id == d->id && again->control == d->control && again->shards == d->shards);
  FUZZ_CHECK(*EncodeScanDelta(*again) == *bytes);

  static const ScanState base = FixedState();
  ScanDelta mine = *d;
  mine.id = base.id;
  ScanState s = base;
  bool changed = false;
  ndo::Status st = MergeScanDelta(s, mine, &changed);
  if (!st.ok()) {
    FUZZ_CHECK(!changed);
    FUZZ_CHECK(Encoded(s) == Encoded(base));
    return 0;
  }
  std::string merged = Encoded(s);
  FUZZ_CHECK(changed == (merged != Encoded(base)));
  FUZZ_CHECK(MergeScanDelta(s, mine, &changed).ok() && !changed);
  FUZZ_CHECK(MergeScanState(s, base, &changed).ok() && !changed);
  FUZZ_CHECK(Encoded(s) == merged);
  return 0;
}
