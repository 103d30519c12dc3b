// Feeds: any bytes, as the 4-byte header of a frame on a mesh stream or the
// control socket, to ReadFrameLength (src/mesh/membership/codec.h).
// Checks, beyond "no crash":
//  - it accepts exactly the headers of at least 4 bytes whose big-endian
//    length is at most kMaxStreamBytes, and returns that length;
//  - FrameHeader writes an accepted length back as the same 4 bytes;
//  - FrameHeader of any size_t (the input's first 8 bytes) reads back as that
//    size if it is within kMaxStreamBytes and is refused otherwise: a length
//    too large for 32 bits saturates, it never wraps to a small frame.
#include <cstring>

#include "fuzz_check.h"
#include "mesh/membership/codec.h"

using namespace ndo;
using namespace ndo::mesh;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view header = FuzzInput(data, size);
  auto n = ReadFrameLength(header);
  if (size < kFrameHeaderBytes) {
    FUZZ_CHECK(!n.ok());
  } else {
    uint64_t be = (uint64_t{data[0]} << 24) | (uint64_t{data[1]} << 16) | (uint64_t{data[2]} << 8) | data[3];
    FUZZ_CHECK(n.ok() == (be <= kMaxStreamBytes));
    if (n.ok()) {
      FUZZ_CHECK(*n == be);
      FUZZ_CHECK(FrameHeader(*n) == header.substr(0, kFrameHeaderBytes));
    }
  }

  size_t length = 0;
  std::memcpy(&length, data, std::min(size, sizeof length));
  std::string h = FrameHeader(length);
  FUZZ_CHECK(h.size() == kFrameHeaderBytes);
  auto back = ReadFrameLength(h);
  FUZZ_CHECK(back.ok() == (length <= kMaxStreamBytes));
  if (back.ok()) FUZZ_CHECK(*back == length);
  return 0;
}
