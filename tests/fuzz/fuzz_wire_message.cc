// Feeds: any bytes, as one gossip datagram off the UDP socket, to
// DecodeMessage (packed Cap'n Proto, src/mesh/membership/codec.h).
// Checks, beyond "no crash, no sanitizer report, no exception":
//  - a decoded message is one the encoder accepts: EncodeMessage may fail
//    only for size, and only where the documented bound (MessageSizeBound +
//    UpdateSizeBound of each update + PayloadSizeBound of each payload)
//    exceeds kMaxDatagramBytes;
//  - when it encodes, the encoding is within that bound, decodes to the same
//    message (decode -> encode -> decode), and encodes to the same bytes again.
#include "fuzz_check.h"
#include "fuzz_mesh_equal.h"
#include "mesh/membership/codec.h"

using namespace ndo;
using namespace ndo::mesh;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodeMessage(FuzzInput(data, size));
  if (!decoded.ok()) return 0;
  const Message& m = *decoded;
  FUZZ_CHECK(!m.sender.empty());
  FUZZ_CHECK(m.updates.size() <= kMaxUpdatesPerDatagram);
  FUZZ_CHECK(m.payloads.size() <= kMaxPayloadsPerDatagram);
  for (const std::string& p : m.payloads) FUZZ_CHECK(!p.empty() && p.size() <= kMaxPayloadBytes);

  size_t bound = MessageSizeBound(m);
  for (const Update& u : m.updates) bound += UpdateSizeBound(u);
  for (const std::string& p : m.payloads) bound += PayloadSizeBound(p);

  auto encoded = EncodeMessage(m);
  if (!encoded.ok()) {
    FUZZ_CHECK_MSG(bound > kMaxDatagramBytes, encoded.status().message());
    return 0;
  }
  FUZZ_CHECK_MSG(encoded->size() <= bound, std::to_string(encoded->size()) + " > " + std::to_string(bound));
  auto again = DecodeMessage(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(fuzz::SameMessage(m, *again));
  auto reencoded = EncodeMessage(*again);
  FUZZ_CHECK(reencoded.ok() && *reencoded == *encoded);
  return 0;
}
