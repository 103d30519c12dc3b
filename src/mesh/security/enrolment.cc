#include "mesh/security/enrolment.h"

#include <algorithm>

#include "mesh/membership/capnp_io.h"
#include "mesh/security/security.capnp.h"

namespace ndo::mesh {
namespace {

constexpr std::string_view kTokenKeyPrefix = "mesh.token.";
// The HMAC proof is exactly SHA-256 long.
constexpr size_t kProofBytes = 32;

std::string TokenKey(std::string_view id) { return std::string(kTokenKeyPrefix) + std::string(id); }
std::string IssuedKey(const NodeId& node) { return "mesh.cert." + node.Hex(); }

Status CheckText(std::string_view value, size_t max, const char* field) {
  if (value.size() > max)
    return Status::InvalidArgument(std::string(field) + " longer than " + std::to_string(max) + " bytes");
  if (value.find('\0') != std::string_view::npos) return Status::InvalidArgument(std::string(field) + " contains NUL");
  return Status::Ok();
}

std::string_view AsView(capnp::Data::Reader d) { return {reinterpret_cast<const char*>(d.begin()), d.size()}; }
kj::ArrayPtr<const kj::byte> AsBytes(std::string_view s) {
  return {reinterpret_cast<const kj::byte*>(s.data()), s.size()};
}

}  // namespace

Result<std::string> EncodeEnrolRequest(const EnrolRequest& r) {
  return CapnpEncode<schema::EnrolRequest>("enrol request", kMaxEnrolMessageBytes, [&](auto b) {
    b.setTokenId(r.token_id);
    b.setCsr(r.csr_pem);
    b.setVantage(r.vantage);
    b.setName(r.name);
    b.setProof(AsBytes(r.proof));
    return Status::Ok();
  });
}

Result<EnrolRequest> DecodeEnrolRequest(std::string_view bytes) {
  EnrolRequest out;
  Status s = CapnpDecode<schema::EnrolRequest>(bytes, "enrol request", kMaxEnrolMessageBytes, [&](auto r) {
    out.token_id = CapnpText(r.getTokenId());
    out.csr_pem = CapnpText(r.getCsr());
    out.vantage = CapnpText(r.getVantage());
    out.name = CapnpText(r.getName());
    out.proof = std::string(AsView(r.getProof()));
    if (Status st = CheckText(out.token_id, kTokenIdHexDigits, "token id"); !st.ok()) return st;
    if (Status st = CheckText(out.csr_pem, kMaxPemBytes, "CSR"); !st.ok()) return st;
    if (Status st = CheckText(out.vantage, kMaxVantageBytes, "vantage"); !st.ok()) return st;
    if (Status st = CheckText(out.name, kMaxNameBytes, "name"); !st.ok()) return st;
    if (out.proof.size() != kProofBytes) return Status::InvalidArgument("proof is not 32 bytes");
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::string> EncodeEnrolReply(const EnrolReply& r) {
  std::string ring;
  if (r.error.empty()) {
    auto encoded = EncodeKeyring(r.keyring);
    if (!encoded.ok()) return encoded.status();
    ring = std::move(*encoded);
  }
  return CapnpEncode<schema::EnrolReply>("enrol reply", kMaxEnrolMessageBytes, [&](auto b) {
    b.setError(r.error);
    b.setCert(r.cert_pem);
    b.setCa(r.ca_pem);
    b.setKeyring(AsBytes(ring));
    size_t n = std::min(r.members.size(), kMaxEnrolMembers);
    auto members = b.initMembers(static_cast<unsigned>(n));
    for (size_t i = 0; i < n; ++i) members.set(static_cast<unsigned>(i), r.members[i]);
    return Status::Ok();
  });
}

Result<EnrolReply> DecodeEnrolReply(std::string_view bytes) {
  EnrolReply out;
  Status s = CapnpDecode<schema::EnrolReply>(bytes, "enrol reply", kMaxEnrolMessageBytes, [&](auto r) {
    out.error = CapnpText(r.getError());
    if (Status st = CheckText(out.error, 1024, "error"); !st.ok()) return st;
    if (!out.error.empty()) return Status::Ok();
    out.cert_pem = CapnpText(r.getCert());
    out.ca_pem = CapnpText(r.getCa());
    if (Status st = CheckText(out.cert_pem, kMaxPemBytes, "certificate"); !st.ok()) return st;
    if (Status st = CheckText(out.ca_pem, kMaxPemBytes, "CA certificate"); !st.ok()) return st;
    auto ring = DecodeKeyring(AsView(r.getKeyring()));
    if (!ring.ok()) return ring.status();
    out.keyring = std::move(*ring);
    auto members = r.getMembers();
    if (members.size() > kMaxEnrolMembers) return Status::InvalidArgument("too many members");
    for (auto m : members) {
      std::string member = CapnpText(m);
      if (Status st = CheckText(member, kMaxAddressBytes, "member address"); !st.ok()) return st;
      out.members.push_back(std::move(member));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::string> EncodeRelayedEnrol(const RelayedEnrol& r) {
  return CapnpEncode<schema::RelayedEnrol>("relayed enrolment", 2 * kMaxEnrolMessageBytes, [&](auto b) {
    b.setRequest(AsBytes(r.request));
    b.setExporter(AsBytes(r.exporter));
    b.setSource(r.source);
    return Status::Ok();
  });
}

Result<RelayedEnrol> DecodeRelayedEnrol(std::string_view bytes) {
  RelayedEnrol out;
  Status s = CapnpDecode<schema::RelayedEnrol>(bytes, "relayed enrolment", 2 * kMaxEnrolMessageBytes, [&](auto r) {
    out.request = std::string(AsView(r.getRequest()));
    out.exporter = std::string(AsView(r.getExporter()));
    out.source = CapnpText(r.getSource());
    if (out.request.size() > kMaxEnrolMessageBytes) return Status::InvalidArgument("relayed request too long");
    if (out.exporter.size() != kEnrolExporterBytes) return Status::InvalidArgument("exporter is not 32 bytes");
    return CheckText(out.source, kMaxAddressBytes, "source");
  });
  if (!s.ok()) return s;
  return out;
}

Result<TokenRecord> LoadToken(Store& store, std::string_view id) {
  auto bytes = store.GetMeta(TokenKey(id));
  if (!bytes.ok()) return bytes.status();
  return DecodeTokenRecord(*bytes);
}

Status SaveToken(Store& store, const TokenRecord& record) {
  auto bytes = EncodeTokenRecord(record);
  if (!bytes.ok()) return bytes.status();
  return store.PutMeta(TokenKey(record.id), *bytes, /*sync=*/true);
}

Status RecordIssued(Store& store, const NodeId& node, std::string_view serial_hex) {
  return store.PutMeta(IssuedKey(node), serial_hex, /*sync=*/true);
}

Result<std::string> IssuedSerial(Store& store, const NodeId& node) { return store.GetMeta(IssuedKey(node)); }

Result<TokenRecord> CreateToken(Store& store, const TokenParams& params, int64_t now_unix) {
  constexpr int64_t kMaxTtl = 365LL * 24 * 3600;
  if (params.ttl_seconds <= 0 || params.ttl_seconds > kMaxTtl)
    return Status::InvalidArgument("token lifetime must be between 1 s and 365 days");
  if (Status s = CheckText(params.vantage, kMaxVantageBytes, "vantage"); !s.ok()) return s;
  auto token = NewJoinToken();
  if (!token.ok()) return token.status();
  TokenRecord rec;
  rec.id = token->id;
  rec.secret = token->secret;
  rec.created_unix = now_unix;
  rec.expires_unix = now_unix + params.ttl_seconds;
  rec.max_uses = params.max_uses;
  rec.vantage = params.vantage;
  rec.role = params.role;
  if (Status s = SaveToken(store, rec); !s.ok()) return s;
  return rec;
}

EnrolmentAuthority::Outcome EnrolmentAuthority::Handle(const EnrolRequest& request, std::string_view exporter,
                                                        std::vector<std::string> members,
                                                        const std::function<bool(const NodeId&)>& known_member,
                                                        int64_t now_unix) {
  Outcome out;
  // The joiner learns only a coarse reason: enough to fix an honest mistake
  // (a token that expired, the wrong vantage), nothing that helps guess.
  auto refuse = [&](std::string shown, std::string logged) {
    out.reply.error = std::move(shown);
    out.log_reason = std::move(logged);
    return out;
  };
  auto record = LoadToken(store_, request.token_id);
  if (!record.ok()) {
    if (record.status().code() == Status::Code::kNotFound)
      return refuse("invalid token", "unknown token id " + request.token_id);
    return refuse("enrolment unavailable", "cannot read token " + request.token_id + ": " + record.status().message());
  }
  if (Status s = CheckTokenUsable(*record, request.vantage, now_unix); !s.ok())
    return refuse(s.message(), s.message() + " (token " + request.token_id + ")");
  // The vantage the certificate binds: the token's if it names one (then
  // the request named the same, CheckTokenUsable saw to it), else the one
  // the joiner asked for. Every new certificate binds one.
  const std::string& vantage = record->vantage.empty() ? request.vantage : record->vantage;
  if (Status s = CheckVantageName(vantage); !s.ok())
    return refuse("no valid vantage: " + s.message(), "no valid vantage (" + s.message() + ", token " +
                                                          request.token_id + ")");
  auto csr = CheckCsr(request.csr_pem);
  if (!csr.ok()) return refuse("bad certificate request", "bad CSR: " + csr.status().message());
  if (!VerifyEnrolmentProof(record->secret, exporter, csr->der_sha256, request.vantage, request.name, request.proof))
    return refuse("invalid token", "wrong token proof (forged or wrong secret) for token " + request.token_id);
  // A node id is issued once: a token holder may not take over a member's
  // identity by asking for a certificate in its name.
  if (known_member(csr->node))
    return refuse("node id already taken", "CSR asks for node id " + csr->node.Hex() + ", a member's");
  if (auto issued = store_.GetMeta(IssuedKey(csr->node)); issued.status().code() != Status::Code::kNotFound)
    return issued.ok() ? refuse("node id already taken", "CSR asks for node id " + csr->node.Hex() + ", issued before")
                       : refuse("enrolment unavailable", "cannot read issued certificates: " + issued.status().message());
  // Counted (synced) before the certificate exists: a crash in between
  // wastes a use, never grants an extra one.
  record->uses += 1;
  record->used_by.push_back(csr->node.Hex());
  if (Status s = SaveToken(store_, *record); !s.ok())
    return refuse("enrolment unavailable", "cannot record the token's use: " + s.message());
  constexpr std::chrono::seconds kNodeCertValidity{365LL * 24 * 3600};
  CaMaterial ca{material_.ca_pem, material_.ca_key_pem};
  auto cert = SignNodeCert(ca, material_.cluster, request.csr_pem, record->role, vantage, kNodeCertValidity, now_unix);
  if (!cert.ok()) return refuse("enrolment unavailable", "cannot sign: " + cert.status().message());
  if (Status s = RecordIssued(store_, csr->node, cert->serial_hex); !s.ok())
    return refuse("enrolment unavailable", "cannot record the certificate: " + s.message());
  out.reply.cert_pem = cert->cert_pem;
  out.reply.ca_pem = material_.ca_pem;
  out.reply.keyring = material_.keyring;
  out.reply.members = std::move(members);
  out.enrolled = csr->node;
  out.role = record->role;
  out.vantage = vantage;
  return out;
}

std::string EnrolmentLimiter::Admit(const std::string& source, Time now) {
  if (now - second_start_ >= std::chrono::seconds(1)) {
    second_start_ = now;
    this_second_ = 0;
  }
  if (this_second_ >= kGlobalPerSecond) return "too many enrolment attempts (all sources)";
  auto it = failures_.find(source);
  if (it != failures_.end()) {
    if (now - it->second.window_start >= kWindow) {
      failures_.erase(it);
    } else if (it->second.failures >= kMaxFailures) {
      return "too many failed enrolment attempts from " + source;
    }
  }
  ++this_second_;
  return {};
}

void EnrolmentLimiter::RecordFailure(const std::string& source, Time now) {
  auto it = failures_.find(source);
  if (it == failures_.end() || now - it->second.window_start >= kWindow) {
    if (it == failures_.end() && failures_.size() >= kMaxTracked) {
      // Full: forget the entries whose window has passed; if none has, the
      // oldest goes (a flood from many addresses still meets the global cap).
      std::erase_if(failures_, [&](const auto& kv) { return now - kv.second.window_start >= kWindow; });
      if (failures_.size() >= kMaxTracked)
        failures_.erase(std::min_element(failures_.begin(), failures_.end(), [](const auto& a, const auto& b) {
          return a.second.window_start < b.second.window_start;
        }));
    }
    failures_[source] = Entry{now, 1};
    return;
  }
  ++it->second.failures;
}

}  // namespace ndo::mesh
