#include "mesh/security/pki.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/hex.h"
#include "mesh/security/openssl_ptr.h"

namespace ndo::mesh {
namespace {

// ---------------------------------------------------------------------------
// RAII for OpenSSL objects (openssl_ptr.h, and the types only pki uses).

using openssl::BioPtr;
using openssl::PkeyPtr;
using openssl::Ptr;
using openssl::X509Ptr;

void FreeGeneralNames(GENERAL_NAMES* g) { GENERAL_NAMES_free(g); }
void FreeExtensions(STACK_OF(X509_EXTENSION) * s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
void FreeOpenSslBytes(unsigned char* p) { OPENSSL_free(p); }
void FreeOpenSslChars(char* p) { OPENSSL_free(p); }

using ReqPtr = Ptr<X509_REQ, X509_REQ_free>;
using ExtPtr = Ptr<X509_EXTENSION, X509_EXTENSION_free>;
using ExtsPtr = Ptr<STACK_OF(X509_EXTENSION), FreeExtensions>;
using NamesPtr = Ptr<GENERAL_NAMES, FreeGeneralNames>;
using BnPtr = Ptr<BIGNUM, BN_free>;
using Asn1IntPtr = Ptr<ASN1_INTEGER, ASN1_INTEGER_free>;
using NamePtr = Ptr<X509_NAME, X509_NAME_free>;
using StorePtr = Ptr<X509_STORE, X509_STORE_free>;
using StoreCtxPtr = Ptr<X509_STORE_CTX, X509_STORE_CTX_free>;
using BytesPtr = Ptr<unsigned char, FreeOpenSslBytes>;
using CharsPtr = Ptr<char, FreeOpenSslChars>;

// Leaves this thread's OpenSSL error queue empty whichever way a public
// function returns, so no stale error is blamed on a later call.
struct ErrorQueueGuard {
  ErrorQueueGuard() { ERR_clear_error(); }
  ~ErrorQueueGuard() { ERR_clear_error(); }
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

// The errors in this thread's OpenSSL queue, oldest first (a few at most),
// as "; "-separated text; clears the queue.
std::string TakeOpenSslErrors() {
  std::string out;
  int n = 0;
  while (unsigned long e = ERR_get_error()) {
    if (n++ == 4) continue;  // drain the rest
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

// `what`, with OpenSSL's reasons appended when it gave any.
std::string WithSslErrors(std::string what) {
  std::string errors = TakeOpenSslErrors();
  if (!errors.empty()) what += " (" + errors + ")";
  return what;
}

Status SslInvalid(std::string what) { return Status::InvalidArgument(WithSslErrors(std::move(what))); }

std::string Num(int64_t n) { return std::to_string(n); }

constexpr std::string_view kNodeUriPrefix = "urn:ndo:node:";
constexpr std::string_view kClusterUriPrefix = "urn:ndo:cluster:";
constexpr std::string_view kRoleUriPrefix = "urn:ndo:role:";
constexpr std::string_view kVantageUriPrefix = "urn:ndo:vantage:";
constexpr int64_t kClockSkewSeconds = 3600;
// Long enough for any CA, short enough that no time computation overflows.
constexpr int64_t kMaxValiditySeconds = int64_t{100} * 366 * 86400;
constexpr size_t kMaxSubjectBytes = 512;

std::string NodeUri(const NodeId& node) { return std::string(kNodeUriPrefix) + node.Hex(); }
std::string ClusterUri(const ClusterId& cluster) { return std::string(kClusterUriPrefix) + cluster.Hex(); }
std::string RoleUri(NodeRole role) { return std::string(kRoleUriPrefix) + std::string(NodeRoleName(role)); }

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// RFC 3986 percent-encoding of every byte but the unreserved ones: the
// result is ASCII without ',' or ' ', safe in an IA5String and in
// OpenSSL's "URI:a,URI:b" syntax.
std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (IsUnreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The inverse, strict: a '%' not followed by two hex digits fails.
std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (s.size() - i < 3) return std::nullopt;
    int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string VantageUri(std::string_view vantage) { return std::string(kVantageUriPrefix) + PercentEncode(vantage); }

// ---------------------------------------------------------------------------
// PEM in and out.

// Never prompt for a passphrase (OpenSSL's default callback reads the
// terminal): an encrypted key is simply unreadable here.
int NoPassphrase(char*, int, int, void*) { return -1; }

Result<BioPtr> InputBio(std::string_view pem, const char* what) {
  if (pem.empty()) return Status::InvalidArgument(std::string(what) + ": empty input");
  if (pem.size() > kMaxPemBytes)
    return Status::InvalidArgument(std::string(what) + ": " + Num(static_cast<int64_t>(pem.size())) +
                                   " bytes, above the limit of " + Num(kMaxPemBytes));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return SslInvalid(std::string(what) + ": out of memory");
  return bio;
}

Result<X509Ptr> ReadCert(std::string_view pem, const char* what) {
  auto bio = InputBio(pem, what);
  if (!bio.ok()) return bio.status();
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, NoPassphrase, nullptr));
  if (!cert) return SslInvalid(std::string(what) + ": not a PEM certificate");
  return cert;
}

Result<ReqPtr> ReadCsr(std::string_view pem) {
  auto bio = InputBio(pem, "certificate signing request");
  if (!bio.ok()) return bio.status();
  ReqPtr req(PEM_read_bio_X509_REQ(bio->get(), nullptr, NoPassphrase, nullptr));
  if (!req) return SslInvalid("not a PEM certificate signing request");
  return req;
}

bool IsEd25519(const EVP_PKEY* key) { return key != nullptr && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519; }

Result<PkeyPtr> ReadKey(std::string_view pem, const char* what) {
  auto bio = InputBio(pem, what);
  if (!bio.ok()) return bio.status();
  PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, NoPassphrase, nullptr));
  if (!key) return SslInvalid(std::string(what) + ": not an unencrypted PEM private key");
  if (!IsEd25519(key.get())) return Status::InvalidArgument(std::string(what) + ": not an Ed25519 key");
  return key;
}

// Whatever `write` puts into a memory BIO, as a string.
template <typename WriteFn>
Result<std::string> ToPem(const char* what, WriteFn&& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return SslInvalid(std::string("cannot write ") + what);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  if (n <= 0 || data == nullptr) return SslInvalid(std::string("cannot write ") + what);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> CertPem(X509* cert) {
  return ToPem("certificate", [&](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

// ---------------------------------------------------------------------------
// Small helpers.

char ToLowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

Result<std::string> Sha256(const unsigned char* data, size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr) != 1 || len != 32)
    return SslInvalid("SHA-256 failed");
  return std::string(reinterpret_cast<const char*>(md), len);
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil), so that no time zone or libc clock is involved.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

Result<int64_t> UnixTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return SslInvalid("unreadable certificate time");
  int64_t days = DaysFromCivil(int64_t{tm.tm_year} + 1900, int64_t{tm.tm_mon} + 1, tm.tm_mday);
  return days * 86400 + int64_t{tm.tm_hour} * 3600 + int64_t{tm.tm_min} * 60 + tm.tm_sec;
}

Status CheckValidity(std::chrono::seconds validity, int64_t now_unix) {
  if (validity.count() <= 0) return Status::InvalidArgument("validity must be positive");
  if (validity.count() > kMaxValiditySeconds) return Status::InvalidArgument("validity above 100 years");
  // Years 0 to 9999 are all X.509 can say.
  if (now_unix < 0 || now_unix > int64_t{253402300799} - kMaxValiditySeconds)
    return Status::InvalidArgument("current time out of range: " + Num(now_unix));
  return Status::Ok();
}

Status SetValidity(X509* cert, std::chrono::seconds validity, int64_t now_unix) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(now_unix - kClockSkewSeconds)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(now_unix + validity.count())) == nullptr)
    return SslInvalid("cannot set the validity period");
  return Status::Ok();
}

// A serial number as BN_bn2hex writes it (whole bytes, so possibly one
// leading zero digit), lowercased and without leading zeros.
Result<std::string> BnHex(const BIGNUM* bn) {
  CharsPtr hex(BN_bn2hex(bn));
  if (!hex) return SslInvalid("cannot format the serial number");
  std::string out(hex.get());
  for (char& c : out) c = ToLowerAscii(c);
  size_t digits = out[0] == '-' ? 1 : 0;
  size_t first = out.find_first_not_of('0', digits);
  if (first == std::string::npos) first = out.size() - 1;  // zero: keep one digit
  out.erase(digits, first - digits);
  return out;
}

// A random positive serial of 128 bits.
Result<std::string> SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return Status::Unavailable(WithSslErrors("no random bytes for a serial"));
  bytes[15] |= 1;  // never zero
  BnPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn) return SslInvalid("cannot make a serial");
  Asn1IntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1) return SslInvalid("cannot set the serial");
  return BnHex(bn.get());
}

Result<std::string> SerialHex(const X509* cert) {
  BnPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return SslInvalid("unreadable serial number");
  return BnHex(bn.get());
}

// Adds an extension written in OpenSSL's configuration syntax.
Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return SslInvalid(std::string("cannot add extension ") + OBJ_nid2sn(nid));
  return Status::Ok();
}

Status SetCommonName(X509_NAME* name, std::string_view cn) {
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()), static_cast<int>(cn.size()), -1,
                                 0) != 1)
    return SslInvalid("cannot set the common name");
  return Status::Ok();
}

// The ndo identities a list of subject alternative names carries.
struct NdoNames {
  std::vector<NodeId> nodes;
  std::vector<ClusterId> clusters;
  std::vector<NodeRole> roles;
  std::vector<std::string> vantages;
  // ndo URIs whose id is not 32 hex digits (or is zero), whose role is
  // neither operator nor scanner, or whose vantage is not a valid name
  size_t malformed = 0;
};

NdoNames CollectNames(const GENERAL_NAMES* names) {
  NdoNames out;
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn == nullptr || gn->type != GEN_URI || gn->d.uniformResourceIdentifier == nullptr) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    std::string_view uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    auto parse = [&](std::string_view prefix, std::vector<NodeId>& into) {
      if (uri.substr(0, prefix.size()) != prefix) return false;
      NodeId id = NodeId::FromHex(uri.substr(prefix.size()));
      if (id.empty())
        ++out.malformed;
      else
        into.push_back(id);
      return true;
    };
    if (parse(kNodeUriPrefix, out.nodes) || parse(kClusterUriPrefix, out.clusters)) continue;
    if (uri.substr(0, kRoleUriPrefix.size()) == kRoleUriPrefix) {
      if (auto role = ParseNodeRole(uri.substr(kRoleUriPrefix.size())))
        out.roles.push_back(*role);
      else
        ++out.malformed;
    } else if (uri.substr(0, kVantageUriPrefix.size()) == kVantageUriPrefix) {
      auto vantage = PercentDecode(uri.substr(kVantageUriPrefix.size()));
      if (vantage && CheckVantageName(*vantage).ok())
        out.vantages.push_back(std::move(*vantage));
      else
        ++out.malformed;
    }
  }
  return out;
}

Result<NdoNames> CertNames(const X509* cert) {
  int crit = -1;
  NamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
  if (!names && crit != -1) return SslInvalid("unreadable or repeated subject alternative name extension");
  return CollectNames(names.get());
}

std::string Utf8(const ASN1_STRING* s, bool& ok) {
  ok = false;
  if (s == nullptr) return "";
  unsigned char* raw = nullptr;
  int n = ASN1_STRING_to_UTF8(&raw, s);
  BytesPtr out(raw);
  if (n < 0 || !out) return "";
  ok = true;
  return std::string(reinterpret_cast<const char*>(out.get()), static_cast<size_t>(n));
}

std::string OneLine(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) {
    ERR_clear_error();
    return "";
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  if (n <= 0 || data == nullptr) return "";
  std::string out(data, std::min(static_cast<size_t>(n), kMaxSubjectBytes));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

bool IsCa(X509* cert) { return (X509_get_extension_flags(cert) & EXFLAG_CA) != 0; }

// ---------------------------------------------------------------------------
// CSRs.

struct ParsedCsr {
  ReqPtr req;
  CsrInfo info;
};

Result<ParsedCsr> ParseCsr(std::string_view csr_pem) {
  auto req = ReadCsr(csr_pem);
  if (!req.ok()) return req.status();
  X509_REQ* r = req->get();
  EVP_PKEY* key = X509_REQ_get0_pubkey(r);
  if (key == nullptr) return SslInvalid("certificate signing request without a readable public key");
  if (!IsEd25519(key)) return Status::InvalidArgument("certificate signing request key is not Ed25519");
  if (X509_REQ_verify(r, key) != 1) return SslInvalid("certificate signing request signature does not verify");

  ExtsPtr exts(X509_REQ_get_extensions(r));
  ERR_clear_error();  // no extension request is not an error by itself
  int crit = -1;
  NamesPtr names;
  if (exts) names.reset(static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts.get(), NID_subject_alt_name, &crit, nullptr)));
  if (!names && crit != -1)
    return SslInvalid("certificate signing request has an unreadable or repeated subject alternative name");
  NdoNames ndo = CollectNames(names.get());
  if (ndo.malformed != 0) return Status::InvalidArgument("certificate signing request has a malformed ndo node URI");
  if (ndo.nodes.size() != 1)
    return Status::InvalidArgument("certificate signing request names " + Num(static_cast<int64_t>(ndo.nodes.size())) +
                                   " node ids (expected exactly one urn:ndo:node URI)");

  ParsedCsr out;
  out.info.node = ndo.nodes.front();
  const X509_NAME* subject = X509_REQ_get_subject_name(r);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at >= 0) {
    if (X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0)
      return Status::InvalidArgument("certificate signing request has more than one common name");
    bool ok = false;
    out.info.name = Utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)), ok);
    if (!ok) return SslInvalid("certificate signing request has an unreadable common name");
    if (out.info.name.size() > kMaxNameBytes)
      return Status::InvalidArgument("certificate signing request name longer than " + Num(kMaxNameBytes) + " bytes");
    for (char c : out.info.name)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return Status::InvalidArgument("certificate signing request name contains a control character");
  }

  unsigned char* der = nullptr;
  int n = i2d_X509_REQ(r, &der);
  BytesPtr der_owner(der);
  if (n <= 0 || !der_owner) return SslInvalid("cannot encode the certificate signing request");
  auto digest = Sha256(der_owner.get(), static_cast<size_t>(n));
  if (!digest.ok()) return digest.status();
  out.info.der_sha256 = std::move(*digest);
  out.req = std::move(*req);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------

Result<std::string> GenerateKeyPem() {
  ErrorQueueGuard guard;
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return SslInvalid("cannot generate an Ed25519 key");
  return ToPem("private key", [&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
}

Result<CaMaterial> CreateClusterCa(const ClusterId& cluster, std::chrono::seconds validity, int64_t now_unix) {
  ErrorQueueGuard guard;
  if (cluster.empty()) return Status::InvalidArgument("cluster id is empty");
  if (Status s = CheckValidity(validity, now_unix); !s.ok()) return s;
  auto key_pem = GenerateKeyPem();
  if (!key_pem.ok()) return key_pem.status();
  auto key = ReadKey(*key_pem, "CA key");
  if (!key.ok()) return key.status();

  X509Ptr cert(X509_new());
  if (!cert) return SslInvalid("out of memory");
  X509* x = cert.get();
  if (X509_set_version(x, X509_VERSION_3) != 1) return SslInvalid("cannot set the certificate version");
  auto serial = SetRandomSerial(x);
  if (!serial.ok()) return serial.status();
  X509_NAME* subject = X509_get_subject_name(x);
  if (Status s = SetCommonName(subject, "ndo cluster " + cluster.Hex()); !s.ok()) return s;
  if (X509_set_issuer_name(x, subject) != 1) return SslInvalid("cannot set the issuer");
  if (Status s = SetValidity(x, validity, now_unix); !s.ok()) return s;
  if (X509_set_pubkey(x, key->get()) != 1) return SslInvalid("cannot set the public key");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  const std::pair<int, std::string> extensions[] = {
      {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
      {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {NID_subject_key_identifier, "hash"},
      {NID_subject_alt_name, "URI:" + ClusterUri(cluster)},
  };
  for (const auto& [nid, value] : extensions) {
    if (Status s = AddExtension(x, &ctx, nid, value); !s.ok()) return s;
  }
  if (X509_sign(x, key->get(), nullptr) <= 0) return SslInvalid("cannot sign the CA certificate");
  auto cert_pem = CertPem(x);
  if (!cert_pem.ok()) return cert_pem.status();
  return CaMaterial{std::move(*cert_pem), std::move(*key_pem)};
}

Result<std::string> SpkiSha256(std::string_view cert_pem) {
  ErrorQueueGuard guard;
  auto cert = ReadCert(cert_pem, "certificate");
  if (!cert.ok()) return cert.status();
  X509_PUBKEY* spki = X509_get_X509_PUBKEY(cert->get());
  unsigned char* der = nullptr;
  int n = spki == nullptr ? -1 : i2d_X509_PUBKEY(spki, &der);
  BytesPtr der_owner(der);
  if (n <= 0 || !der_owner) return SslInvalid("cannot encode the certificate's public key");
  auto digest = Sha256(der_owner.get(), static_cast<size_t>(n));
  if (!digest.ok()) return digest.status();
  return "sha256:" + HexEncode(*digest);
}

Result<std::string> ParseCaHash(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  auto bad = [] { return Status::InvalidArgument("malformed CA hash (expected sha256:<64 hex digits>)"); };
  if (text.size() != kPrefix.size() + 64 || text.substr(0, kPrefix.size()) != kPrefix) return bad();
  std::string out(kPrefix);
  for (char c : text.substr(kPrefix.size())) {
    if (!IsHexDigit(c)) return bad();
    out += ToLowerAscii(c);
  }
  return out;
}

Result<std::string> MakeCsr(std::string_view key_pem, const NodeId& node, std::string_view name) {
  ErrorQueueGuard guard;
  if (node.empty()) return Status::InvalidArgument("node id is empty");
  if (name.size() > kMaxNameBytes)
    return Status::InvalidArgument("name longer than " + Num(kMaxNameBytes) + " bytes");
  for (char c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return Status::InvalidArgument("name contains a control character");
  auto key = ReadKey(key_pem, "node key");
  if (!key.ok()) return key.status();

  ReqPtr req(X509_REQ_new());
  if (!req) return SslInvalid("out of memory");
  X509_REQ* r = req.get();
  if (X509_REQ_set_version(r, X509_REQ_VERSION_1) != 1) return SslInvalid("cannot set the request version");
  if (!name.empty()) {
    if (Status s = SetCommonName(X509_REQ_get_subject_name(r), name); !s.ok()) return s;
  }
  if (X509_REQ_set_pubkey(r, key->get()) != 1) return SslInvalid("cannot set the public key");
  ExtsPtr exts(sk_X509_EXTENSION_new_null());
  if (!exts) return SslInvalid("out of memory");
  std::string san = "URI:" + NodeUri(node);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
  if (!ext) return SslInvalid("cannot make the subject alternative name");
  if (sk_X509_EXTENSION_push(exts.get(), ext.get()) <= 0) return SslInvalid("out of memory");
  ext.release();  // owned by exts now
  if (X509_REQ_add_extensions(r, exts.get()) != 1) return SslInvalid("cannot add the extension request");
  if (X509_REQ_sign(r, key->get(), nullptr) <= 0) return SslInvalid("cannot sign the request");
  return ToPem("certificate signing request", [&](BIO* b) { return PEM_write_bio_X509_REQ(b, r); });
}

Result<CsrInfo> CheckCsr(std::string_view csr_pem) {
  ErrorQueueGuard guard;
  auto parsed = ParseCsr(csr_pem);
  if (!parsed.ok()) return parsed.status();
  return std::move(parsed->info);
}

Result<IssuedCert> SignNodeCert(const CaMaterial& ca, const ClusterId& cluster, std::string_view csr_pem,
                                NodeRole role, std::string_view vantage, std::chrono::seconds validity,
                                int64_t now_unix) {
  ErrorQueueGuard guard;
  if (cluster.empty()) return Status::InvalidArgument("cluster id is empty");
  if (role != NodeRole::kScanner && role != NodeRole::kOperator) return Status::InvalidArgument("unknown role");
  if (Status s = CheckVantageName(vantage); !s.ok()) return s;
  if (Status s = CheckValidity(validity, now_unix); !s.ok()) return s;
  auto csr = ParseCsr(csr_pem);
  if (!csr.ok()) return csr.status();
  if (ca.key_pem.empty()) return Status::InvalidArgument("this node does not hold the CA key");
  auto ca_cert = ReadCert(ca.cert_pem, "CA certificate");
  if (!ca_cert.ok()) return ca_cert.status();
  auto ca_key = ReadKey(ca.key_pem, "CA key");
  if (!ca_key.ok()) return ca_key.status();
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1)
    return SslInvalid("the CA key does not match the CA certificate");
  if (!IsCa(ca_cert->get())) return Status::InvalidArgument("the CA certificate is not a CA");
  auto ca_names = CertNames(ca_cert->get());
  if (!ca_names.ok()) return ca_names.status();
  if (ca_names->clusters.size() != 1 || ca_names->clusters.front() != cluster)
    return Status::InvalidArgument("the CA certificate is not for cluster " + cluster.Hex());

  const CsrInfo& info = csr->info;
  X509Ptr cert(X509_new());
  if (!cert) return SslInvalid("out of memory");
  X509* x = cert.get();
  if (X509_set_version(x, X509_VERSION_3) != 1) return SslInvalid("cannot set the certificate version");
  auto serial = SetRandomSerial(x);
  if (!serial.ok()) return serial.status();
  if (Status s = SetCommonName(X509_get_subject_name(x), info.name.empty() ? info.node.Hex() : info.name); !s.ok())
    return s;
  if (X509_set_issuer_name(x, X509_get_subject_name(ca_cert->get())) != 1) return SslInvalid("cannot set the issuer");
  if (Status s = SetValidity(x, validity, now_unix); !s.ok()) return s;
  if (X509_set_pubkey(x, X509_REQ_get0_pubkey(csr->req.get())) != 1) return SslInvalid("cannot set the public key");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert->get(), x, nullptr, nullptr, 0);
  const std::pair<int, std::string> extensions[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth,clientAuth"},
      {NID_subject_alt_name, "URI:" + NodeUri(info.node) + ",URI:" + ClusterUri(cluster) + ",URI:" + RoleUri(role) +
                                 ",URI:" + VantageUri(vantage)},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  for (const auto& [nid, value] : extensions) {
    if (Status s = AddExtension(x, &ctx, nid, value); !s.ok()) return s;
  }
  if (X509_sign(x, ca_key->get(), nullptr) <= 0) return SslInvalid("cannot sign the node certificate");
  auto cert_pem = CertPem(x);
  if (!cert_pem.ok()) return cert_pem.status();
  IssuedCert out;
  out.cert_pem = std::move(*cert_pem);
  out.serial_hex = std::move(*serial);
  out.not_after_unix = now_unix + validity.count();
  return out;
}

namespace {

Result<CertInfo> Inspect(X509* x) {
  CertInfo info;
  auto names = CertNames(x);
  if (!names.ok()) return names.status();
  if (names->nodes.size() > 1) return Status::InvalidArgument("certificate names more than one node id");
  if (names->clusters.size() > 1) return Status::InvalidArgument("certificate names more than one cluster id");
  if (names->roles.size() > 1) return Status::InvalidArgument("certificate names more than one role");
  if (names->vantages.size() > 1) return Status::InvalidArgument("certificate names more than one vantage");
  if (names->malformed != 0) return Status::InvalidArgument("certificate has a malformed ndo URI");
  if (!names->nodes.empty()) info.node = names->nodes.front();
  if (!names->clusters.empty()) info.cluster = names->clusters.front();
  if (!names->roles.empty()) info.role = names->roles.front();
  if (!names->vantages.empty()) info.vantage = std::move(names->vantages.front());
  auto serial = SerialHex(x);
  if (!serial.ok()) return serial.status();
  info.serial_hex = std::move(*serial);
  info.subject = OneLine(X509_get_subject_name(x));
  auto nb = UnixTime(X509_get0_notBefore(x));
  if (!nb.ok()) return nb.status();
  auto na = UnixTime(X509_get0_notAfter(x));
  if (!na.ok()) return na.status();
  info.not_before_unix = *nb;
  info.not_after_unix = *na;
  info.is_ca = IsCa(x);
  return info;
}

}  // namespace

Result<CertInfo> InspectCert(std::string_view cert_pem) {
  ErrorQueueGuard guard;
  auto cert = ReadCert(cert_pem, "certificate");
  if (!cert.ok()) return cert.status();
  return Inspect(cert->get());
}

Result<CertInfo> VerifyNodeCert(std::string_view cert_pem, std::string_view ca_pem, int64_t now_unix) {
  ErrorQueueGuard guard;
  auto cert = ReadCert(cert_pem, "node certificate");
  if (!cert.ok()) return cert.status();
  auto ca = ReadCert(ca_pem, "CA certificate");
  if (!ca.ok()) return ca.status();
  auto ca_info = Inspect(ca->get());
  if (!ca_info.ok()) return ca_info.status().WithContext("CA certificate");
  if (!ca_info->is_ca) return Status::InvalidArgument("the CA certificate is not a CA");
  if (ca_info->cluster.empty()) return Status::InvalidArgument("the CA certificate names no cluster");

  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx) return SslInvalid("out of memory");
  if (X509_STORE_add_cert(store.get(), ca->get()) != 1) return SslInvalid("cannot use the CA certificate");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1)
    return SslInvalid("cannot set up verification");
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now_unix));
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_ANY);
  X509_VERIFY_PARAM_set_depth(param, 0);  // no intermediate CA
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return Status::InvalidArgument(std::string("node certificate does not verify: ") +
                                   X509_verify_cert_error_string(err));
  }

  auto info = Inspect(cert->get());
  if (!info.ok()) return info.status().WithContext("node certificate");
  if (info->is_ca || X509_check_ca(cert->get()) != 0)
    return Status::InvalidArgument("node certificate is a CA certificate");
  if (info->node.empty()) return Status::InvalidArgument("node certificate names no node id");
  if (info->cluster != ca_info->cluster)
    return Status::InvalidArgument("node certificate is for another cluster than its CA");
  return info;
}

Status CheckKeyMatchesCert(std::string_view key_pem, std::string_view cert_pem) {
  ErrorQueueGuard guard;
  auto key = ReadKey(key_pem, "private key");
  if (!key.ok()) return key.status();
  auto cert = ReadCert(cert_pem, "certificate");
  if (!cert.ok()) return cert.status();
  if (X509_check_private_key(cert->get(), key->get()) != 1)
    return Status::InvalidArgument("the private key does not match the certificate");
  return Status::Ok();
}

}  // namespace ndo::mesh
