#include "store/result_bundle.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "scan/service/tls_session.h"
#include "store/evidence_codec.h"
#include "store/result_codec.h"

namespace ndo {
namespace {

using Fingerprint = std::array<uint8_t, 32>;

constexpr char kMagic[4] = {'n', 'd', 'o', 'b'};
constexpr uint8_t kVersion1 = 1;
constexpr uint8_t kVersion2 = 2;
constexpr size_t kProbeKeySize = 16 + 2;  // address and port, as in a result key
constexpr size_t kReservedValueByte = 3;  // of result_codec.h's value: written 0, never read
constexpr size_t kLengthSize = 4;
constexpr size_t kEvidenceHeadSize = kProbeKeySize + kLengthSize;

bool KnownState(PortState s) { return s >= PortState::kOpen && s <= PortState::kUnreachable; }

bool ProbeLess(const ProbeResult& a, const ProbeResult& b) {
  return std::tie(a.address, a.port) < std::tie(b.address, b.port);
}

// address (16, BE) | port (2, BE): the tail of a result key, so records sort
// by their bytes exactly as results sort in the store.
void AppendProbeKey(std::string& out, IpAddress address, uint16_t port) {
  auto b = address.bytes();
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
  out.push_back(static_cast<char>(port >> 8));
  out.push_back(static_cast<char>(port & 0xff));
}

void AppendU32(std::string& out, uint32_t v) {
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
}

void PutU32(std::string& out, size_t at, uint32_t v) {
  for (int b = 0; b < 4; ++b) out[at + b] = static_cast<char>((v >> (8 * b)) & 0xff);
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int b = 3; b >= 0; --b) v = (v << 8) | static_cast<uint8_t>(p[b]);
  return v;
}

Fingerprint Sha256(std::string_view bytes) { return BundleDigest(bytes); }

// A chain's certificate by fingerprint alone: what the evidence codec reads
// and writes of it.
Result<CertificateInfo> FingerprintOnly(const Fingerprint& fp) {
  CertificateInfo c;
  c.sha256 = fp;
  return c;
}

// An evidence key in the store's layout ('e' | scan id | address | port),
// for the evidence codec's decoder.
std::string EvidenceKeyOf(std::string_view probe_key) {
  std::string key(kResultKeySize - kProbeKeySize, '\0');
  key[0] = 'e';
  key.append(probe_key);
  return key;
}

// What both sides require of one evidence record besides its decoding: a
// bounded banner and an encoding that is the record's own (so a decoded
// bundle re-encodes to the same bytes).
Status CheckEvidenceRecord(const ServiceEvidence& ev, std::string_view encoded) {
  if (encoded.empty() || encoded.size() > kMaxBundleEvidenceBytes)
    return Status::InvalidArgument("evidence record of " + std::to_string(encoded.size()) + " bytes");
  if (ev.banner && ev.banner->bytes.size() > kMaxBannerBytes)
    return Status::InvalidArgument("banner of " + std::to_string(ev.banner->bytes.size()) + " bytes");
  if (EncodeEvidence(ev) != encoded) return Status::InvalidArgument("evidence record not in its canonical encoding");
  return Status::Ok();
}

// Decodes `count` result records at `p` (checked sorted and valid).
Status DecodeResults(const char* p, size_t count, std::vector<ProbeResult>& out) {
  out.resize(count);
  // A result key in the store's layout ('r' | scan id | address | port), so
  // that result_codec's decoder checks every record as it checks stored ones.
  char key[kResultKeySize] = {'r'};
  for (size_t i = 0; i < count; ++i) {
    const char* rec = p + i * kBundleRecordSize;
    if (i > 0 && std::memcmp(rec - kBundleRecordSize, rec, kProbeKeySize) >= 0)
      return Status::Corruption("result bundle not sorted by address and port, or a probe repeated");
    std::string_view value(rec + kProbeKeySize, kResultValueSize);
    if (value[kReservedValueByte] != 0) return Status::Corruption("result bundle: reserved byte set");
    std::memcpy(key + kResultKeySize - kProbeKeySize, rec, kProbeKeySize);
    if (Status s = DecodeResult(std::string_view(key, sizeof key), value, out[i]); !s.ok())
      return Status::Corruption("result bundle: " + s.message());
  }
  return Status::Ok();
}

Result<ResultBundle> DecodeV2(std::string_view bytes) {
  if (bytes.size() < kBundleV2HeaderSize) return Status::Corruption("result bundle header cut short");
  const uint64_t n = GetU32(bytes.data() + 5), m = GetU32(bytes.data() + 9), c = GetU32(bytes.data() + 13);
  size_t at = kBundleV2HeaderSize;
  // Every count is checked against the bytes left before it sizes anything.
  if (n > kMaxBundleResults || n * kBundleRecordSize > bytes.size() - at)
    return Status::Corruption("result bundle of " + std::to_string(n) + " results in " +
                              std::to_string(bytes.size()) + " bytes");
  if (m == 0) return Status::Corruption("version 2 result bundle without evidence");
  if (m > n) return Status::Corruption("result bundle with more evidence than results");
  const char* results = bytes.data() + at;
  at += n * kBundleRecordSize;
  if (c > (bytes.size() - at) / (kLengthSize + 1) ||
      m > (bytes.size() - at - c * (kLengthSize + 1)) / (kEvidenceHeadSize + 1))
    return Status::Corruption("result bundle counts exceed its size");

  // The framing first, cheap checks only (lengths, order, the exact size),
  // so that a damaged bundle costs no certificate parsing.
  std::vector<std::string_view> ders(c), records(m);
  for (uint64_t i = 0; i < c; ++i) {
    if (bytes.size() - at < kLengthSize) return Status::Corruption("result bundle certificate cut short");
    uint32_t len = GetU32(bytes.data() + at);
    at += kLengthSize;
    if (len == 0 || len > kMaxBundleCertificateBytes || len > bytes.size() - at)
      return Status::Corruption("result bundle certificate of " + std::to_string(len) + " bytes");
    ders[i] = bytes.substr(at, len);
    at += len;
  }
  const char* previous = nullptr;
  for (uint64_t i = 0; i < m; ++i) {
    if (bytes.size() - at < kEvidenceHeadSize) return Status::Corruption("result bundle evidence cut short");
    const char* head = bytes.data() + at;
    if (previous && std::memcmp(previous, head, kProbeKeySize) >= 0)
      return Status::Corruption("result bundle evidence not sorted by address and port, or a port repeated");
    previous = head;
    uint32_t len = GetU32(head + kProbeKeySize);
    at += kEvidenceHeadSize;
    if (len == 0 || len > kMaxBundleEvidenceBytes || len > bytes.size() - at)
      return Status::Corruption("result bundle evidence record of " + std::to_string(len) + " bytes");
    records[i] = bytes.substr(at - kEvidenceHeadSize, kEvidenceHeadSize + len);
    at += len;
  }
  // No trailing bytes: they would change the digest, not the content.
  if (at != bytes.size())
    return Status::Corruption("result bundle has " + std::to_string(bytes.size() - at) + " bytes too many");

  ResultBundle out;
  if (Status s = DecodeResults(results, n, out.results); !s.ok()) return s;
  // Certificates are named by the SHA-256 of their DER; parsing them, the
  // dearest step, comes last.
  std::vector<Fingerprint> fps(c);
  for (uint64_t i = 0; i < c; ++i) {
    fps[i] = Sha256(ders[i]);
    if (i > 0 && !(fps[i - 1] < fps[i]))
      return Status::Corruption("result bundle certificates not sorted by fingerprint, or one repeated");
  }
  std::vector<bool> used(c, false);
  auto load = [&](const Fingerprint& fp) -> Result<CertificateInfo> {
    auto it = std::lower_bound(fps.begin(), fps.end(), fp);
    if (it == fps.end() || *it != fp)
      return Status::Corruption("result bundle evidence refers to a certificate it lacks");
    used[it - fps.begin()] = true;
    return FingerprintOnly(fp);
  };
  out.evidence.reserve(m);
  size_t r = 0;  // the result of the evidence's port: both lists are sorted
  for (std::string_view rec : records) {
    std::string_view key = rec.substr(0, kProbeKeySize), record = rec.substr(kEvidenceHeadSize);
    while (r < n && std::memcmp(results + r * kBundleRecordSize, key.data(), kProbeKeySize) < 0) ++r;
    if (r == n || std::memcmp(results + r * kBundleRecordSize, key.data(), kProbeKeySize) != 0 ||
        out.results[r].state != PortState::kOpen)
      return Status::Corruption("result bundle evidence of a port that is not open in it");
    auto ev = DecodeEvidence(EvidenceKeyOf(key), record, load);
    if (!ev.ok()) return Status::Corruption("result bundle: " + ev.status().message());
    if (Status s = CheckEvidenceRecord(*ev, record); !s.ok()) return Status::Corruption("result bundle: " + s.message());
    out.evidence.push_back(std::move(*ev));
  }
  if (std::find(used.begin(), used.end(), false) != used.end())
    return Status::Corruption("result bundle holds a certificate no evidence refers to");
  out.certificates.reserve(c);
  for (uint64_t i = 0; i < c; ++i) {
    auto cert = ParseCertificate(ders[i]);
    if (!cert.ok()) return Status::Corruption("result bundle: " + cert.status().message());
    if (cert->sha256 != fps[i]) return Status::Corruption("result bundle certificate does not match its fingerprint");
    out.certificates.push_back(std::move(*cert));
  }
  return out;
}

}  // namespace

Status CheckBundleEvidence(const ServiceEvidence& ev) {
  std::string encoded = EncodeEvidence(ev);
  auto decoded = DecodeEvidence(EvidenceKey(ScanId{}, ev.address, ev.port), encoded, FingerprintOnly);
  if (!decoded.ok()) return Status::InvalidArgument("evidence does not decode: " + decoded.status().message());
  if (Status s = CheckEvidenceRecord(*decoded, encoded); !s.ok()) return s;
  if (ev.tls)
    for (const CertificateInfo& cert : ev.tls->chain) {
      if (cert.der.empty()) continue;
      if (cert.der.size() > kMaxBundleCertificateBytes)
        return Status::InvalidArgument("certificate of " + std::to_string(cert.der.size()) + " bytes");
      if (Sha256(cert.der) != cert.sha256)
        return Status::InvalidArgument("certificate " + FingerprintHex(cert.sha256) + " does not match its DER");
    }
  return Status::Ok();
}

Result<std::string> EncodeResultBundle(std::vector<ProbeResult> results) {
  ResultBundle bundle;
  bundle.results = std::move(results);
  return EncodeResultBundle(std::move(bundle));
}

Result<std::string> EncodeResultBundle(ResultBundle bundle) {
  std::vector<ProbeResult>& results = bundle.results;
  for (const ProbeResult& r : results)
    if (!KnownState(r.state))
      return Status::InvalidArgument("result bundle: unknown port state " + std::to_string(static_cast<int>(r.state)));
  // Among results of one probe the order does not matter: the preference
  // rule is commutative and associative.
  std::sort(results.begin(), results.end(), ProbeLess);
  const bool with_evidence = !bundle.evidence.empty();
  std::string out(kMagic, sizeof kMagic);
  out.push_back(static_cast<char>(with_evidence ? kVersion2 : kVersion1));
  out.append(with_evidence ? 12 : 4, '\0');  // the counts, once known
  size_t count = 0;
  std::vector<ProbeResult> open_ports;  // the open ports, which evidence may describe
  for (size_t i = 0; i < results.size();) {
    size_t j = i + 1;
    std::string value = EncodeResultValue(results[i]);
    for (; j < results.size() && results[j].address == results[i].address && results[j].port == results[i].port; ++j)
      value = std::string(PreferredResultValue(value, EncodeResultValue(results[j])));
    if (++count > kMaxBundleResults)
      return Status::InvalidArgument("result bundle: more than " + std::to_string(kMaxBundleResults) + " results");
    if (with_evidence) {
      ProbeResult kept;
      if (Status s = DecodeResult(ResultKey(ScanId{}, results[i].address, results[i].port), value, kept); !s.ok())
        return s;
      if (kept.state == PortState::kOpen) open_ports.push_back(kept);
    }
    AppendProbeKey(out, results[i].address, results[i].port);
    out += value;
    i = j;
  }
  PutU32(out, sizeof kMagic + 1, static_cast<uint32_t>(count));
  if (!with_evidence) return out;
  results.clear();
  results.shrink_to_fit();

  // The evidence records, encoded, each of an open port; of several of one
  // port the one whose encoding sorts first.
  struct Record {
    IpAddress address;
    uint16_t port;
    std::string bytes;
    const ServiceEvidence* ev;
  };
  std::vector<Record> records;
  records.reserve(bundle.evidence.size());
  for (const ServiceEvidence& ev : bundle.evidence) {
    if (Status s = CheckBundleEvidence(ev); !s.ok())
      return Status::InvalidArgument("result bundle: evidence of " + ev.address.ToString() + " port " +
                                     std::to_string(ev.port) + ": " + s.message());
    ProbeResult probe;
    probe.address = ev.address;
    probe.port = ev.port;
    auto it = std::lower_bound(open_ports.begin(), open_ports.end(), probe, ProbeLess);
    if (it == open_ports.end() || it->address != ev.address || it->port != ev.port)
      return Status::InvalidArgument("result bundle: evidence of " + ev.address.ToString() + " port " +
                                     std::to_string(ev.port) + ", which is not open in it");
    records.push_back({ev.address, ev.port, EncodeEvidence(ev), &ev});
  }
  std::sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
    return std::tie(a.address, a.port, a.bytes) < std::tie(b.address, b.port, b.bytes);
  });
  records.erase(std::unique(records.begin(), records.end(),
                            [](const Record& a, const Record& b) { return a.address == b.address && a.port == b.port; }),
                records.end());

  // The DER of every certificate the kept evidence refers to, once each, by
  // fingerprint (so sorted as the decoder wants them).
  std::map<Fingerprint, const std::string*> known;
  auto offer = [&](const CertificateInfo& cert) -> Status {
    if (cert.der.empty()) return Status::Ok();
    auto [it, fresh] = known.emplace(cert.sha256, &cert.der);
    if (!fresh && *it->second == cert.der) return Status::Ok();
    if (Sha256(cert.der) != cert.sha256)
      return Status::InvalidArgument("result bundle: certificate " + FingerprintHex(cert.sha256) + " does not match its DER");
    return Status::Ok();
  };
  for (const CertificateInfo& cert : bundle.certificates)
    if (Status s = offer(cert); !s.ok()) return s;
  std::map<Fingerprint, const std::string*> used;
  for (const Record& rec : records) {
    if (!rec.ev->tls) continue;
    for (const CertificateInfo& cert : rec.ev->tls->chain) {
      if (Status s = offer(cert); !s.ok()) return s;
      if (used.count(cert.sha256)) continue;
      auto it = known.find(cert.sha256);
      if (it == known.end())
        return Status::InvalidArgument("result bundle: no DER for certificate " + FingerprintHex(cert.sha256));
      // The decoder parses every certificate: refuse here what it would.
      auto parsed = ParseCertificate(*it->second);
      if (!parsed.ok()) return Status::InvalidArgument("result bundle: " + parsed.status().message());
      used.emplace(cert.sha256, it->second);
    }
  }

  PutU32(out, sizeof kMagic + 1 + 4, static_cast<uint32_t>(records.size()));
  PutU32(out, sizeof kMagic + 1 + 8, static_cast<uint32_t>(used.size()));
  for (const auto& [fp, der] : used) {
    AppendU32(out, static_cast<uint32_t>(der->size()));
    out += *der;
  }
  for (const Record& rec : records) {
    AppendProbeKey(out, rec.address, rec.port);
    AppendU32(out, static_cast<uint32_t>(rec.bytes.size()));
    out += rec.bytes;
  }
  return out;
}

Result<ResultBundle> DecodeResultBundle(std::string_view bytes) {
  if (bytes.size() < kBundleHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return Status::Corruption("not a result bundle");
  uint8_t version = static_cast<uint8_t>(bytes[4]);
  if (version == kVersion2) return DecodeV2(bytes);
  if (version != kVersion1) return Status::Corruption("result bundle version " + std::to_string(version));
  uint64_t count = GetU32(bytes.data() + 5);
  // The count is checked before it sizes anything; then the size must match
  // it exactly (no trailing bytes: they would change the digest, not the results).
  if (count > kMaxBundleResults) return Status::Corruption("result bundle of " + std::to_string(count) + " results");
  if (bytes.size() != kBundleHeaderSize + count * kBundleRecordSize)
    return Status::Corruption("result bundle of " + std::to_string(bytes.size()) + " bytes for " +
                              std::to_string(count) + " results");
  ResultBundle out;
  if (Status s = DecodeResults(bytes.data() + kBundleHeaderSize, count, out.results); !s.ok()) return s;
  return out;
}

std::array<uint8_t, 32> BundleDigest(std::string_view bytes) {
  std::array<uint8_t, 32> digest{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return digest;
}

}  // namespace ndo
