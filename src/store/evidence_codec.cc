#include "store/evidence_codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

#include "store/records.capnp.h"
#include "store/result_codec.h"

namespace ndo {
namespace {

kj::ArrayPtr<const kj::byte> Bytes(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string Str(capnp::Data::Reader d) { return std::string(reinterpret_cast<const char*>(d.begin()), d.size()); }

}  // namespace

std::string EvidencePrefix(const ScanId& scan) {
  std::string k(1, 'e');
  k.append(reinterpret_cast<const char*>(scan.data()), scan.size());
  return k;
}

std::string EvidenceKey(const ScanId& scan, IpAddress address, uint16_t port) {
  std::string k = ResultKey(scan, address, port);
  k[0] = 'e';  // same layout as results, own prefix
  return k;
}

std::string CertificateKey(const std::array<uint8_t, 32>& fp) {
  std::string k(1, 'c');
  k.append(reinterpret_cast<const char*>(fp.data()), fp.size());
  return k;
}

std::string EncodeEvidence(const ServiceEvidence& ev) {
  capnp::MallocMessageBuilder msg;
  auto b = msg.initRoot<schema::ServiceEvidence>();
  b.setService(ev.service);
  if (ev.banner) {
    b.setHasBanner(true);
    auto bb = b.initBanner();
    bb.setBytes(Bytes(ev.banner->bytes));
    bb.setTruncated(ev.banner->truncated);
    bb.setRequest(Bytes(ev.banner->request));
    bb.setError(ev.banner->error);
  }
  if (ev.tls) {
    b.setHasTls(true);
    auto t = b.initTls();
    t.setError(ev.tls->error);
    t.setVersion(ev.tls->version);
    t.setCipher(ev.tls->cipher);
    t.setSni(ev.tls->sni);
    t.setVerdict(static_cast<uint8_t>(ev.tls->verdict));
    t.setVerifyDetail(ev.tls->verify_detail);
    auto chain = t.initChain(static_cast<unsigned>(ev.tls->chain.size()));
    for (unsigned i = 0; i < ev.tls->chain.size(); ++i)
      chain.set(i, kj::arrayPtr(ev.tls->chain[i].sha256.data(), ev.tls->chain[i].sha256.size()));
  }
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Result<ServiceEvidence> DecodeEvidence(
    std::string_view key, std::string_view value,
    const std::function<Result<CertificateInfo>(const std::array<uint8_t, 32>&)>& load_cert) {
  ServiceEvidence ev;
  if (!DecodeResultKey(key, 'e', ev.address, ev.port).ok()) return Status::Corruption("bad evidence key");
  if (value.size() % sizeof(capnp::word) != 0) return Status::Corruption("evidence record is not word-aligned");
  auto words = kj::heapArray<capnp::word>(value.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), value.data(), value.size());
  Status status;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = 1 << 20;
    opts.nestingLimit = 8;
    capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
    auto r = reader.getRoot<schema::ServiceEvidence>();
    ev.service = r.getService().cStr();
    if (r.getHasBanner()) {
      auto b = r.getBanner();
      BannerEvidence be;
      be.bytes = Str(b.getBytes());
      be.truncated = b.getTruncated();
      be.request = Str(b.getRequest());
      be.error = b.getError().cStr();
      ev.banner = std::move(be);
    }
    if (r.getHasTls()) {
      auto t = r.getTls();
      TlsEvidence te;
      te.error = t.getError().cStr();
      te.version = t.getVersion().cStr();
      te.cipher = t.getCipher().cStr();
      te.sni = t.getSni().cStr();
      if (t.getVerdict() > static_cast<uint8_t>(TlsVerdict::kNoCertificate)) {
        status = Status::Corruption("unknown TLS verdict");
        return;
      }
      te.verdict = static_cast<TlsVerdict>(t.getVerdict());
      te.verify_detail = t.getVerifyDetail().cStr();
      for (auto fp : t.getChain()) {
        std::array<uint8_t, 32> f{};
        if (fp.size() != f.size()) {
          status = Status::Corruption("bad certificate fingerprint");
          return;
        }
        std::memcpy(f.data(), fp.begin(), f.size());
        auto cert = load_cert(f);
        if (!cert.ok()) {
          status = cert.status();
          return;
        }
        te.chain.push_back(std::move(*cert));
      }
      ev.tls = std::move(te);
    }
  })) {
    return Status::Corruption(std::string("malformed evidence record: ") + e->getDescription().cStr());
  }
  if (!status.ok()) return status;
  return ev;
}

}  // namespace ndo
