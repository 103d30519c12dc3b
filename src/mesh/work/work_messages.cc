#include "mesh/work/work_messages.h"

#include <cstring>

#include "mesh/membership/capnp_io.h"
#include "mesh/work/work.capnp.h"

namespace ndo::mesh {
namespace {

capnp::Data::Reader AsData(const void* p, size_t n) { return {static_cast<const kj::byte*>(p), n}; }

template <size_t N>
bool CopyExact(capnp::Data::Reader d, std::array<uint8_t, N>& out) {
  if (d.size() != N) return false;
  std::memcpy(out.data(), d.begin(), N);
  return true;
}

void SetLease(schema::WorkLease::Builder b, const ShardLease& l) {
  b.setHolderHi(l.holder.hi);
  b.setHolderLo(l.holder.lo);
  b.setEpoch(l.epoch);
  b.setCounter(l.counter);
  b.setExpiresMs(l.expires_ms);
}

ShardLease GetLease(schema::WorkLease::Reader r) {
  return ShardLease{NodeId{r.getHolderHi(), r.getHolderLo()}, r.getEpoch(), r.getCounter(), r.getExpiresMs()};
}

bool ValidVantage(const std::string& v) { return v.size() <= 64 && v.find('\0') == std::string::npos; }

bool KnownKind(uint8_t k) { return k >= 1 && k <= static_cast<uint8_t>(WorkKind::kCertData); }

bool NeedsShard(WorkKind k) {
  return k == WorkKind::kLeaseGrant || k == WorkKind::kRenewRequest || k == WorkKind::kRenewed ||
         k == WorkKind::kBundlePut || k == WorkKind::kBundleFetch;
}

}  // namespace

std::string_view WorkKindName(WorkKind k) {
  switch (k) {
    case WorkKind::kSync: return "sync";
    case WorkKind::kSyncReply: return "sync-reply";
    case WorkKind::kPush: return "push";
    case WorkKind::kAck: return "ack";
    case WorkKind::kLeaseRequest: return "lease-request";
    case WorkKind::kLeaseGrant: return "lease-grant";
    case WorkKind::kRenewRequest: return "renew-request";
    case WorkKind::kRenewed: return "renewed";
    case WorkKind::kRefused: return "refused";
    case WorkKind::kBundlePut: return "bundle-put";
    case WorkKind::kBundleFetch: return "bundle-fetch";
    case WorkKind::kBundleData: return "bundle-data";
    case WorkKind::kCertFetch: return "cert-fetch";
    case WorkKind::kCertData: return "cert-data";
  }
  return "unknown";
}

Result<std::string> EncodeWorkMessage(const WorkMessage& m) {
  if (m.digests.size() > kMaxSyncDigests || m.wanted.size() > kMaxSyncDigests || m.states.size() > kMaxSyncDigests ||
      m.held.size() > kMaxHeldLeases || m.nodes.size() > kMaxCertFetchNodes || m.certs.size() > kMaxCertFetchNodes)
    return Status::InvalidArgument("work message with too many entries");
  for (const auto& c : m.certs)
    if (c.size() > kMaxCertPemBytes) return Status::InvalidArgument("certificate of " + std::to_string(c.size()) + " bytes");
  if (m.done.done && !m.done.signature.empty() && m.done.signature.size() != kRecordSignatureBytes)
    return Status::InvalidArgument("done claim signature of " + std::to_string(m.done.signature.size()) + " bytes");
  return CapnpEncode<schema::WorkMessage>("work message", kMaxWorkMessageBytes, [&](schema::WorkMessage::Builder b) {
    b.setKind(static_cast<uint8_t>(m.kind));
    b.setSenderHi(m.sender.hi);
    b.setSenderLo(m.sender.lo);
    b.setError(m.error);
    auto digests = b.initDigests(static_cast<unsigned>(m.digests.size()));
    for (size_t i = 0; i < m.digests.size(); ++i) {
      digests[i].setScanId(AsData(m.digests[i].scan.data(), m.digests[i].scan.size()));
      digests[i].setDigest(AsData(m.digests[i].digest.data(), m.digests[i].digest.size()));
    }
    auto states = b.initStates(static_cast<unsigned>(m.states.size()));
    for (size_t i = 0; i < m.states.size(); ++i) states.set(i, AsData(m.states[i].data(), m.states[i].size()));
    auto wanted = b.initWanted(static_cast<unsigned>(m.wanted.size()));
    for (size_t i = 0; i < m.wanted.size(); ++i) wanted.set(i, AsData(m.wanted[i].data(), m.wanted[i].size()));
    b.setScanId(AsData(m.scan.data(), m.scan.size()));
    b.setVantage(m.vantage);
    b.setShard(m.shard);
    SetLease(b.initLease(), m.lease);
    b.setBundle(AsData(m.bundle.data(), m.bundle.size()));
    b.setEpoch(m.epoch);
    auto held = b.initHeld(static_cast<unsigned>(m.held.size()));
    for (size_t i = 0; i < m.held.size(); ++i) {
      held[i].setScanId(AsData(m.held[i].scan.data(), m.held[i].scan.size()));
      held[i].setVantage(m.held[i].vantage);
      held[i].setShard(m.held[i].shard);
      SetLease(held[i].initLease(), m.held[i].lease);
    }
    // Absent when empty: the messages of an insecure mesh keep their bytes.
    if (!m.nodes.empty()) {
      auto nodes = b.initNodes(static_cast<unsigned>(m.nodes.size()));
      for (size_t i = 0; i < m.nodes.size(); ++i) {
        nodes[i].setIdHi(m.nodes[i].hi);
        nodes[i].setIdLo(m.nodes[i].lo);
      }
    }
    if (!m.certs.empty()) {
      auto certs = b.initCerts(static_cast<unsigned>(m.certs.size()));
      for (size_t i = 0; i < m.certs.size(); ++i) certs.set(i, AsData(m.certs[i].data(), m.certs[i].size()));
    }
    if (m.done.done) {
      auto d = b.initDone();
      d.setResults(m.done.results);
      d.setDigest(AsData(m.done.digest.data(), m.done.digest.size()));
      d.setSignerHi(m.done.signer.hi);
      d.setSignerLo(m.done.signer.lo);
      d.setLeaseEpoch(m.done.lease_epoch);
      d.setLeaseCounter(m.done.lease_counter);
      if (!m.done.signature.empty()) d.setSignature(AsData(m.done.signature.data(), m.done.signature.size()));
    }
    return Status::Ok();
  });
}

Result<WorkMessage> DecodeWorkMessage(std::string_view bytes) {
  WorkMessage m;
  Status s = CapnpDecode<schema::WorkMessage>(bytes, "work message", kMaxWorkMessageBytes,
                                              [&](schema::WorkMessage::Reader r) -> Status {
    if (!KnownKind(r.getKind())) return Status::Corruption("unknown work message kind " + std::to_string(r.getKind()));
    m.kind = static_cast<WorkKind>(r.getKind());
    m.sender = NodeId{r.getSenderHi(), r.getSenderLo()};
    if (m.sender.empty()) return Status::Corruption("work message without a sender");
    m.error = CapnpText(r.getError());
    if (m.error.size() > 4096 || m.error.find('\0') != std::string::npos)
      return Status::Corruption("malformed work message error text");
    auto digests = r.getDigests();
    auto states = r.getStates();
    auto wanted = r.getWanted();
    if (digests.size() > kMaxSyncDigests || states.size() > kMaxSyncDigests || wanted.size() > kMaxSyncDigests)
      return Status::Corruption("work message with too many entries");
    for (auto d : digests) {
      ScanDigestEntry e;
      if (!CopyExact(d.getScanId(), e.scan) || !CopyExact(d.getDigest(), e.digest))
        return Status::Corruption("malformed scan digest");
      m.digests.push_back(e);
    }
    for (auto st : states) m.states.emplace_back(reinterpret_cast<const char*>(st.begin()), st.size());
    for (auto w : wanted) {
      ScanId id{};
      if (!CopyExact(w, id)) return Status::Corruption("malformed wanted scan id");
      m.wanted.push_back(id);
    }
    bool needs_scan = NeedsShard(m.kind);
    if (needs_scan || r.getScanId().size() != 0) {
      if (!CopyExact(r.getScanId(), m.scan)) return Status::Corruption("malformed scan id");
    }
    m.vantage = CapnpText(r.getVantage());
    if (!ValidVantage(m.vantage)) return Status::Corruption("malformed vantage");
    if ((needs_scan || m.kind == WorkKind::kLeaseRequest) && m.vantage.empty())
      return Status::Corruption(std::string(WorkKindName(m.kind)) + " without a vantage");
    m.shard = r.getShard();
    if (m.shard >= kMaxPoolShards) return Status::Corruption("shard index out of range");
    m.lease = GetLease(r.getLease());
    if ((m.kind == WorkKind::kLeaseGrant || m.kind == WorkKind::kRenewed) && m.lease.holder.empty())
      return Status::Corruption("lease without a holder");
    auto bundle = r.getBundle();
    m.bundle.assign(reinterpret_cast<const char*>(bundle.begin()), bundle.size());
    m.epoch = r.getEpoch();
    auto held = r.getHeld();
    if (held.size() > kMaxHeldLeases) return Status::Corruption("work message with too many held leases");
    for (auto h : held) {
      HeldLease e;
      if (!CopyExact(h.getScanId(), e.scan)) return Status::Corruption("malformed held lease scan id");
      e.vantage = CapnpText(h.getVantage());
      if (e.vantage.empty() || !ValidVantage(e.vantage)) return Status::Corruption("malformed held lease vantage");
      e.shard = h.getShard();
      if (e.shard >= kMaxPoolShards) return Status::Corruption("held lease shard index out of range");
      e.lease = GetLease(h.getLease());
      if (e.lease.holder.empty()) return Status::Corruption("held lease without a holder");
      m.held.push_back(std::move(e));
    }
    auto nodes = r.getNodes();
    auto certs = r.getCerts();
    if (nodes.size() > kMaxCertFetchNodes || certs.size() > kMaxCertFetchNodes)
      return Status::Corruption("work message with too many certificates");
    for (auto n : nodes) {
      NodeId id{n.getIdHi(), n.getIdLo()};
      if (id.empty()) return Status::Corruption("certificate asked of an empty node id");
      m.nodes.push_back(id);
    }
    for (auto c : certs) {
      if (c.size() > kMaxCertPemBytes) return Status::Corruption("certificate of " + std::to_string(c.size()) + " bytes");
      m.certs.emplace_back(reinterpret_cast<const char*>(c.begin()), c.size());
    }
    if (m.kind == WorkKind::kCertFetch && m.nodes.empty()) return Status::Corruption("cert-fetch of no node");
    if (r.hasDone()) {
      auto d = r.getDone();
      m.done.done = true;
      m.done.results = d.getResults();
      if (!CopyExact(d.getDigest(), m.done.digest)) return Status::Corruption("malformed done claim digest");
      m.done.signer = NodeId{d.getSignerHi(), d.getSignerLo()};
      m.done.lease_epoch = d.getLeaseEpoch();
      m.done.lease_counter = d.getLeaseCounter();
      auto sig = d.getSignature();
      if (sig.size() != 0 && sig.size() != kRecordSignatureBytes)
        return Status::Corruption("done claim signature of " + std::to_string(sig.size()) + " bytes");
      m.done.signature.assign(reinterpret_cast<const char*>(sig.begin()), sig.size());
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return m;
}

}  // namespace ndo::mesh
