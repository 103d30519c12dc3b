#include "store/result_codec.h"

#include <cstring>

namespace ndo {
namespace {

constexpr uint8_t kValueVersion = 1;

void PutLe(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLe(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

}  // namespace

std::string ResultPrefix(const ScanId& scan) {
  std::string k(1, 'r');
  k.append(reinterpret_cast<const char*>(scan.data()), scan.size());
  return k;
}

std::string ResultKey(const ScanId& scan, IpAddress address, uint16_t port) {
  std::string k = ResultPrefix(scan);
  auto b = address.bytes();
  k.append(reinterpret_cast<const char*>(b.data()), b.size());
  k.push_back(static_cast<char>(port >> 8));
  k.push_back(static_cast<char>(port & 0xff));
  return k;
}

std::string EncodeResultValue(const ProbeResult& r) {
  std::string v;
  v.reserve(kResultValueSize);
  v.push_back(static_cast<char>(kValueVersion));
  v.push_back(static_cast<char>(r.state));
  v.push_back(static_cast<char>(r.attempts));
  v.push_back(0);
  PutLe(v, r.rtt_us, 4);
  PutLe(v, static_cast<uint64_t>(r.time_us), 8);
  return v;
}

Status DecodeResultKey(std::string_view key, char kind, IpAddress& address, uint16_t& port) {
  if (key.size() != kResultKeySize || key[0] != kind) return Status::Corruption("bad result key");
  std::array<uint8_t, 16> addr{};
  std::memcpy(addr.data(), key.data() + 9, 16);
  address = IpAddress::FromBytes(addr);
  port = static_cast<uint16_t>((static_cast<uint8_t>(key[25]) << 8) | static_cast<uint8_t>(key[26]));
  return Status::Ok();
}

Status DecodeResult(std::string_view key, std::string_view value, ProbeResult& out) {
  if (Status s = DecodeResultKey(key, 'r', out.address, out.port); !s.ok()) return s;
  if (value.size() != kResultValueSize || static_cast<uint8_t>(value[0]) != kValueVersion)
    return Status::Corruption("bad result value");
  uint8_t state = static_cast<uint8_t>(value[1]);
  if (state < 1 || state > 4) return Status::Corruption("bad port state in stored result");
  out.state = static_cast<PortState>(state);
  out.attempts = static_cast<uint8_t>(value[2]);
  out.rtt_us = static_cast<uint32_t>(GetLe(value, 4, 4));
  out.time_us = static_cast<int64_t>(GetLe(value, 8, 8));
  return Status::Ok();
}

std::string_view PreferredResultValue(std::string_view a, std::string_view b) {
  // Malformed values lose to well-formed ones; two malformed: keep the first.
  bool a_ok = a.size() == kResultValueSize && a[1] >= 1 && a[1] <= 4;
  bool b_ok = b.size() == kResultValueSize && b[1] >= 1 && b[1] <= 4;
  if (!a_ok || !b_ok) return a_ok ? a : b_ok ? b : a;
  int ra = StateRank(static_cast<PortState>(a[1])), rb = StateRank(static_cast<PortState>(b[1]));
  if (ra != rb) return ra > rb ? a : b;
  uint64_t ta = GetLe(a, 8, 8), tb = GetLe(b, 8, 8);
  if (ta != tb) return ta > tb ? a : b;
  return a < b ? b : a;  // total order on bytes keeps the rule commutative
}

}  // namespace ndo
