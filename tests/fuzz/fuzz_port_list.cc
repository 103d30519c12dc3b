// Feeds: any text, as the -p list of `ndo scan` (also --tls-ports), to
// ParsePortList (src/scan/port_list.h).
// Checks, beyond "no crash": a parsed list is non-empty, strictly ascending
// (sorted, unique) and within 1-65535; FormatPortList writes it in a form
// that parses back to the same list.
#include "fuzz_check.h"
#include "scan/port_list.h"

using namespace ndo;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ports = ParsePortList(FuzzInput(data, size));
  if (!ports.ok()) {
    FUZZ_CHECK(!ports.status().message().empty());
    return 0;
  }
  const std::vector<uint16_t>& p = *ports;
  FUZZ_CHECK(!p.empty());
  FUZZ_CHECK(p.front() >= 1);
  for (size_t i = 1; i < p.size(); ++i) FUZZ_CHECK(p[i - 1] < p[i]);

  std::string text = FormatPortList(p);
  auto back = ParsePortList(text);
  FUZZ_CHECK_MSG(back.ok(), back.status().message());
  FUZZ_CHECK_MSG(*back == p, text);
  return 0;
}
