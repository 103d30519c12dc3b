#include "store/result_bundle.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "store/result_codec.h"

namespace ndo {
namespace {

constexpr char kMagic[4] = {'n', 'd', 'o', 'b'};
constexpr uint8_t kVersion = 1;
constexpr size_t kProbeKeySize = 16 + 2;  // address and port, as in a result key
constexpr size_t kReservedValueByte = 3;  // of result_codec.h's value: written 0, never read

bool KnownState(PortState s) { return s >= PortState::kOpen && s <= PortState::kUnreachable; }

// address (16, BE) | port (2, BE): the tail of a result key, so records sort
// by their bytes exactly as results sort in the store.
void AppendProbeKey(std::string& out, const ProbeResult& r) {
  auto b = r.address.bytes();
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
  out.push_back(static_cast<char>(r.port >> 8));
  out.push_back(static_cast<char>(r.port & 0xff));
}

}  // namespace

Result<std::string> EncodeResultBundle(std::vector<ProbeResult> results) {
  for (const ProbeResult& r : results)
    if (!KnownState(r.state))
      return Status::InvalidArgument("result bundle: unknown port state " + std::to_string(static_cast<int>(r.state)));
  // Among results of one probe the order does not matter: the preference
  // rule is commutative and associative.
  std::sort(results.begin(), results.end(), [](const ProbeResult& a, const ProbeResult& b) {
    return std::tie(a.address, a.port) < std::tie(b.address, b.port);
  });
  std::string out(kMagic, sizeof kMagic);
  out.push_back(static_cast<char>(kVersion));
  out.append(4, '\0');  // the count, once known
  size_t count = 0;
  for (size_t i = 0; i < results.size();) {
    size_t j = i + 1;
    std::string value = EncodeResultValue(results[i]);
    for (; j < results.size() && results[j].address == results[i].address && results[j].port == results[i].port; ++j)
      value = std::string(PreferredResultValue(value, EncodeResultValue(results[j])));
    if (++count > kMaxBundleResults)
      return Status::InvalidArgument("result bundle: more than " + std::to_string(kMaxBundleResults) + " results");
    AppendProbeKey(out, results[i]);
    out += value;
    i = j;
  }
  for (int b = 0; b < 4; ++b) out[sizeof kMagic + 1 + b] = static_cast<char>((count >> (8 * b)) & 0xff);
  return out;
}

Result<std::vector<ProbeResult>> DecodeResultBundle(std::string_view bytes) {
  if (bytes.size() < kBundleHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return Status::Corruption("not a result bundle");
  if (static_cast<uint8_t>(bytes[4]) != kVersion)
    return Status::Corruption("result bundle version " + std::to_string(static_cast<uint8_t>(bytes[4])));
  uint64_t count = 0;
  for (int b = 3; b >= 0; --b) count = (count << 8) | static_cast<uint8_t>(bytes[5 + b]);
  // The count is checked before it sizes anything; then the size must match
  // it exactly (no trailing bytes: they would change the digest, not the results).
  if (count > kMaxBundleResults) return Status::Corruption("result bundle of " + std::to_string(count) + " results");
  if (bytes.size() != kBundleHeaderSize + count * kBundleRecordSize)
    return Status::Corruption("result bundle of " + std::to_string(bytes.size()) + " bytes for " +
                              std::to_string(count) + " results");
  std::vector<ProbeResult> out(count);
  // A result key in the store's layout ('r' | scan id | address | port), so
  // that result_codec's decoder checks every record as it checks stored ones.
  char key[kResultKeySize] = {'r'};
  for (size_t i = 0; i < count; ++i) {
    const char* rec = bytes.data() + kBundleHeaderSize + i * kBundleRecordSize;
    if (i > 0 && std::memcmp(rec - kBundleRecordSize, rec, kProbeKeySize) >= 0)
      return Status::Corruption("result bundle not sorted by address and port, or a probe repeated");
    std::string_view value(rec + kProbeKeySize, kResultValueSize);
    if (value[kReservedValueByte] != 0) return Status::Corruption("result bundle: reserved byte set");
    std::memcpy(key + kResultKeySize - kProbeKeySize, rec, kProbeKeySize);
    if (Status s = DecodeResult(std::string_view(key, sizeof key), value, out[i]); !s.ok())
      return Status::Corruption("result bundle: " + s.message());
  }
  return out;
}

std::array<uint8_t, 32> BundleDigest(std::string_view bytes) {
  std::array<uint8_t, 32> digest{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return digest;
}

}  // namespace ndo
