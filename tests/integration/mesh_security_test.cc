// Multi-process security tests of the mesh: real `ndo` daemons of a secured
// cluster on 127.0.0.x, attacked with what an outsider (or a token holder
// gone wrong) can send: bad join tokens through the real `ndo join`, TLS
// streams without a certificate or with another cluster's, plaintext
// streams, forged, modified, truncated, replayed, plaintext and misattributed
// gossip datagrams, and a flood of bad enrolment attempts. Each must be
// refused with a logged reason and change nothing: the members keep their
// states, and a token keeps its uses.
//
// The tests are omniscient: they read the cluster's keyring and
// certificates from the data dirs, to seal datagrams an attacker could not.
// Safety rule: every packet they send, and every address a daemon is given,
// is in 127.0.0.0/8.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "mesh/security/cluster_files.h"
#include "mesh/membership/codec.h"
#include "mesh/security/enrolment.h"
#include "mesh/security/gossip_seal.h"
#include "mesh/security/security_state.h"
#include "mesh/membership/stream_frame.h"
#include "mesh/security/join_token.h"
#include "mesh/membership/messages.h"
#include "mesh/agent/node_identity.h"
#include "mesh/security/pki.h"
#include "mesh/security/tls_context.h"
#include "support/mesh_cluster.h"
#include "support/run_command.h"

namespace ndo {
namespace {

using namespace std::chrono_literals;
using namespace ndo::testing;  // the fixture (support/mesh_cluster.h) and the command runners

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }
uint64_t NowMicros() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

std::string RandomHex(size_t digits) {
  std::string bytes((digits + 1) / 2, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size())) != 1) std::abort();
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) out += {hex[c >> 4], hex[c & 15]};
  return out.substr(0, digits);
}

mesh::NodeId FreshNodeId() {
  auto id = mesh::RandomNodeId();
  if (!id.ok()) std::abort();
  return *id;
}

// ---------------------------------------------------------------------------
// Logs and views.

// The lines of the log at `path` that contain every one of `parts`.
std::vector<std::string> LogLines(const std::string& path, std::initializer_list<std::string> parts) {
  std::vector<std::string> out;
  std::istringstream in(Slurp(path));
  for (std::string line; std::getline(in, line);) {
    bool all = true;
    for (const auto& p : parts)
      if (line.find(p) == std::string::npos) all = false;
    if (all) out.push_back(line);
  }
  return out;
}

// The first such line, waiting up to `timeout` for it (a node logs what it
// refused a moment after the refusal reaches the attacker); "" if none.
std::string AwaitLogLine(const std::string& path, std::initializer_list<std::string> parts,
                         SteadyClock::duration timeout = 3s) {
  auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    auto lines = LogLines(path, parts);
    if (!lines.empty()) return lines.front();
    if (SteadyClock::now() >= deadline) return "";
    std::this_thread::sleep_for(50ms);
  }
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// What must not change under attack: who is a member, in which state, under
// which coordinator.
std::string States(const View& v) {
  if (!v.ok) return "error: " + v.error;
  std::string s;
  for (const auto& [name, m] : v.by_name) s += name + "=" + m.state + " ";
  return s + "coordinator=" + v.coordinator_id;
}

std::string Describe(const std::map<std::string, std::string>& snapshot) {
  std::string s;
  for (const auto& [name, states] : snapshot) s += "\n  " + name + ": " + states;
  return s;
}

// The `from=` field of a log line about a peer at 127.0.0.1:port.
std::string FromField(const std::string& ip, uint16_t port) { return "from=" + ip + ":" + std::to_string(port) + " "; }

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

std::string Frame(const std::string& body) { return Be32(static_cast<uint32_t>(body.size())) + body; }

// ---------------------------------------------------------------------------
// Raw UDP: a socket of the test's own on 127.0.0.1, so that what a node logs
// about it can be told apart by source port.

class UdpPeer {
 public:
  UdpPeer() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) port_ = LocalPort(fd_);
  }
  ~UdpPeer() {
    if (fd_ >= 0) close(fd_);
  }
  UdpPeer(const UdpPeer&) = delete;
  UdpPeer& operator=(const UdpPeer&) = delete;

  bool ok() const { return port_ != 0; }
  std::string From() const { return FromField("127.0.0.1", port_); }

  bool Send(const Node& to, const std::string& datagram) {
    if (to.ip.rfind("127.", 0) != 0) return false;  // tests only send to 127.0.0.0/8
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(to.port);
    inet_pton(AF_INET, to.ip.c_str(), &a.sin_addr);
    return sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
           static_cast<ssize_t>(datagram.size());
  }

  std::optional<std::string> Receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    std::string buf(65536, '\0');
    ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------
// A TLS 1.3 client on OpenSSL: no certificate, or the one given. It checks
// nothing of the server (it is the attacker, not a node).

using SslCtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

SslCtxPtr ClientContext(const std::string& cert_pem = "", const std::string& key_pem = "") {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free);
  if (!ctx) return ctx;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (!cert_pem.empty()) {
    BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
    BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
    X509* cert = cb ? PEM_read_bio_X509(cb, nullptr, nullptr, nullptr) : nullptr;
    EVP_PKEY* key = kb ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
    bool ok = cert && key && SSL_CTX_use_certificate(ctx.get(), cert) == 1 &&
              SSL_CTX_use_PrivateKey(ctx.get(), key) == 1 && SSL_CTX_check_private_key(ctx.get()) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    if (!ok) ctx.reset();
  }
  return ctx;
}

std::string TlsError(const char* what) {
  std::string out = what;
  for (unsigned long e; (e = ERR_get_error()) != 0;) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += std::string(": ") + buf;
  }
  return out;
}

class TlsClient {
 public:
  explicit TlsClient(SSL_CTX* ctx) : ctx_(ctx) {}
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) close(fd_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // Connects from `source` (port chosen by the kernel) to ip:port and runs
  // the handshake. False with the reason in error().
  bool Connect(const std::string& source, const std::string& ip, uint16_t port) {
    if (ip.rfind("127.", 0) != 0 || source.rfind("127.", 0) != 0) return Fail("tests stay in 127.0.0.0/8");
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return Fail("socket");
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, source.c_str(), &from.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) return Fail("bind");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &to.sin_addr);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return Fail("connect");
    local_port_ = LocalPort(fd_);
    ssl_ = SSL_new(ctx_);
    if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) return Fail("SSL_new");
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) return Fail("TLS handshake");
    return true;
  }

  bool Write(const std::string& bytes) {
    ERR_clear_error();
    return ssl_ && SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) == static_cast<int>(bytes.size());
  }

  // A whole frame, or nothing (closed, refused, timed out).
  std::optional<std::string> ReadFrame(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string header;
    if (!ReadExactly(4, header)) return std::nullopt;
    uint32_t len = (uint32_t(uint8_t(header[0])) << 24) | (uint32_t(uint8_t(header[1])) << 16) |
                   (uint32_t(uint8_t(header[2])) << 8) | uint32_t(uint8_t(header[3]));
    if (len > mesh::kMaxEnrolMessageBytes) return std::nullopt;
    std::string body;
    if (!ReadExactly(len, body)) return std::nullopt;
    return body;
  }

  SSL* ssl() const { return ssl_; }
  uint16_t local_port() const { return local_port_; }
  const std::string& error() const { return error_; }

 private:
  bool Fail(const char* what) {
    error_ = TlsError(what) + " (errno " + std::to_string(errno) + ")";
    ERR_clear_error();
    return false;
  }
  bool ReadExactly(size_t n, std::string& out) {
    out.clear();
    char buf[4096];
    while (out.size() < n) {
      ERR_clear_error();
      int got = SSL_read(ssl_, buf, static_cast<int>(std::min(sizeof buf, n - out.size())));
      if (got <= 0) {
        error_ = TlsError("read");
        ERR_clear_error();
        return false;
      }
      out.append(buf, static_cast<size_t>(got));
    }
    return true;
  }

  SSL_CTX* ctx_;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  uint16_t local_port_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------------------
// The fixture: MeshProcess, with tokens, other clusters and one-shot joins.

struct Token {
  std::string text, id, secret, ca_hash;
};

class MeshSecurity : public MeshProcess {
 protected:
  void SetUp() override {
    MeshProcess::SetUp();
    // A TLS write to a node that has closed the stream is an error here,
    // not the end of the test process.
    std::signal(SIGPIPE, SIG_IGN);
  }

  // `ndo token create` through the running CA node's control socket.
  Token CreateToken(const Node& ca, std::vector<std::string> options) {
    std::vector<std::string> args = {NdoBinary(), "token", "create", "--data-dir", ca.data, "--format", "json"};
    args.insert(args.end(), options.begin(), options.end());
    auto r = RunArgv(args, tmp_, "token", 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Token t;
    t.text = JsonField(r.out, "token");
    t.ca_hash = JsonField(r.out, "ca_hash");
    std::smatch m;
    if (std::regex_match(t.text, m, std::regex(R"(ndo1\.([0-9a-f]{16})\.([0-9a-f]{32}))"))) {
      t.id = m[1];
      t.secret = m[2];
    }
    EXPECT_FALSE(t.id.empty()) << r.out;
    return t;
  }

  // `ndo init` in a data dir of its own: another cluster (no agent runs for
  // it). Returns the CA hash it prints.
  std::string InitOtherCluster(const std::string& dir) {
    auto r = RunArgv({NdoBinary(), "init", "--data-dir", dir, "--vantage", "lab"}, tmp_, "init-other", 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex(R"(ca hash: (sha256:[0-9a-f]{64}))"))) {
      ADD_FAILURE() << "no CA hash in: " << r.out;
      return "";
    }
    return m[1];
  }

  // The argv of `ndo join` for `j` through `seed`, enrolling with `token`.
  std::vector<std::string> JoinArgs(const Node& j, const Node& seed, const std::string& token,
                                    const std::string& ca_hash, const std::string& vantage) {
    return {NdoBinary(), "join",     seed.Address(), "--listen", j.Address(), "--data-dir", j.data,
            "--vantage", vantage,    "--name",       j.name,     "--token",   token,        "--ca-hash",
            ca_hash};
  }

  // A join that must be refused: run to completion (a refusal is final, and
  // immediate). Its standard error becomes the node's log for TearDown.
  CommandResult JoinOnce(Node& j, const Node& seed, const std::string& token, const std::string& ca_hash,
                         const std::string& vantage) {
    j.seeds = {seed.Address()};
    j.log = tmp_ + "/join-" + j.name + ".stderr";
    return RunArgv(JoinArgs(j, seed, token, ca_hash, vantage), tmp_, "join-" + j.name, 30s);
  }

  // A join that must succeed: the daemon keeps running.
  void SpawnJoin(Node& j, const Node& seed, const std::string& token, const std::string& ca_hash,
                 const std::string& vantage) {
    j.seeds = {seed.Address()};
    j.pid = SpawnArgv(JoinArgs(j, seed, token, ca_hash, vantage), j.log);
    ASSERT_GT(j.pid, 0);
  }

  // Each node's view (States) by node name.
  std::map<std::string, std::string> Snapshot(const std::vector<Node*>& nodes) {
    std::map<std::string, std::string> s;
    for (Node* n : nodes) s[n->name] = States(Members(*n));
    return s;
  }

  // The views once they hold still: a cluster that has just agreed may
  // still hand the coordinator role to the member that ranks first, which
  // is no doing of the attacks that follow.
  std::map<std::string, std::string> SettledSnapshot(const std::vector<Node*>& nodes) {
    auto last = Snapshot(nodes);
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(1s);
      auto now = Snapshot(nodes);
      if (now == last) return now;
      last = now;
    }
    ADD_FAILURE() << "the views did not settle:" << Describe(last);
    return last;
  }

  static bool Enrolled(const Node& j) { return std::filesystem::exists(j.data + "/cluster/node.crt"); }
};

// ---------------------------------------------------------------------------
// 1. Join tokens through the real `ndo join`.
//
// The CA node refuses a source address unseen after 5 failed attempts in a
// minute, and the joiners may all enrol from one address (127.0.0.1, the
// kernel's source for 127.0.0.0/8, unless `ndo join` binds its --listen
// address): so at most four refusals judged by the CA node come before the
// one successful enrolment, and the used-up attempt last. The wrong-CA
// joiner goes to the other member, which it refuses before sending anything.

TEST_F(MeshSecurity, JoinTokensExpiredUsedUpForgedUnknownWrongVantageOrWrongCaAreRefused) {
  StartCluster(2, 60s);
  if (HasFatalFailure()) return;
  Node& a = nodes_[0];  // ran `ndo init`: holds the CA key, enrols
  Node& b = nodes_[1];
  auto before = SettledSnapshot({&a, &b});
  size_t enrolled_before = Count(Slurp(a.log), "msg=\"enrolled node\"");  // node-b's

  Token expired = CreateToken(a, {"--ttl", "1s", "--uses", "0"});
  auto expired_at = SteadyClock::now() + 2s;
  Token one = CreateToken(a, {"--ttl", "1h", "--uses", "1", "--vantage", "dmz"});
  ASSERT_FALSE(HasFailure());
  std::string other_hash = InitOtherCluster(tmp_ + "/other");
  ASSERT_FALSE(other_hash.empty());
  ASSERT_NE(other_hash, one.ca_hash);

  struct Attempt {
    Node* joiner;
    CommandResult result;
  };
  std::map<std::string, Attempt> attempts;
  auto attempt = [&](const std::string& what, const std::string& ip, const Node& seed, const std::string& token,
                     const std::string& ca_hash, const std::string& vantage) {
    Node& j = AddNode("j-" + what, ip);
    attempts[what] = {&j, JoinOnce(j, seed, token, ca_hash, vantage)};
  };

  // Wrong --ca-hash: the hash of another cluster's CA, with the good token.
  attempt("wrong-ca", "127.0.0.10", b, one.text, other_hash, "dmz");
  std::this_thread::sleep_until(expired_at);
  attempt("expired", "127.0.0.11", a, expired.text, expired.ca_hash, "lab");
  attempt("forged", "127.0.0.12", a, "ndo1." + one.id + "." + RandomHex(32), one.ca_hash, "dmz");
  std::string unknown_id = RandomHex(16);
  attempt("unknown", "127.0.0.13", a, "ndo1." + unknown_id + "." + RandomHex(32), one.ca_hash, "dmz");
  attempt("vantage", "127.0.0.14", a, one.text, one.ca_hash, "wifi");

  // (a) Each refused, at once (exit 2, the joiner's reason), and enrolled nothing.
  std::map<std::string, std::string> expected_message = {
      {"wrong-ca", "the server's CA does not match --ca-hash " + other_hash},
      {"expired", "refused: token expired"},
      {"forged", "refused: invalid token"},
      {"unknown", "refused: invalid token"},
      {"vantage", "refused: token not valid for vantage wifi"},
  };
  for (const auto& [what, at] : attempts) {
    EXPECT_EQ(at.result.exit_code, 2) << what << ": " << at.result.err;
    EXPECT_NE(at.result.err.find(expected_message[what]), std::string::npos) << what << ": " << at.result.err;
    EXPECT_FALSE(Enrolled(*at.joiner)) << what << ": " << at.joiner->data << "/cluster/node.crt exists";
    EXPECT_FALSE(std::filesystem::exists(at.joiner->data + "/cluster")) << what;
  }

  // (b) The CA node logged each refusal with its precise reason (never the secret).
  std::string a_log = Slurp(a.log);
  for (const auto& [token_id, reason] : std::vector<std::pair<std::string, std::string>>{
           {expired.id, "token expired (token " + expired.id + ")"},
           {one.id, "wrong token proof (forged or wrong secret) for token " + one.id},
           {unknown_id, "unknown token id " + unknown_id},
           {one.id, "token not valid for vantage wifi (token " + one.id + ")"},
       }) {
    EXPECT_EQ(LogLines(a.log, {"msg=\"refused enrolment\"", "token=" + token_id, reason}).size(), 1u)
        << "no single refusal logged for: " << reason << "\n" << a_log;
  }
  EXPECT_EQ(a_log.find(one.secret), std::string::npos) << "a token secret is never logged";
  EXPECT_EQ(Count(a_log, "msg=\"enrolled node\""), enrolled_before);
  // The wrong-CA joiner refused b before sending anything: b never saw its
  // request, which it would have refused naming the token ("this node does
  // not hold the cluster CA key").
  std::string b_log = Slurp(b.log);
  EXPECT_EQ(b_log.find(one.id), std::string::npos) << "b received the wrong-CA joiner's request:\n" << b_log;
  for (const auto& line : LogLines(b.log, {"msg=\"refused enrolment\""})) {
    // What b may log is the stream that ended before a request: a TLS
    // handshake, then nothing (the joiner closes it without close_notify).
    EXPECT_NE(line.find("token=\"\""), std::string::npos) << line;
    EXPECT_NE(line.find("reason=\"unauthenticated stream: reading a frame header"), std::string::npos) << line;
    std::printf("[ mesh     ] b on the wrong-CA joiner, which sent nothing: %s\n", line.c_str());
  }

  // (c) Nothing changed: the same members in the same states on both nodes.
  EXPECT_EQ(Snapshot({&a, &b}), before) << "before:" << Describe(before);

  // The one use of `one` is intact (neither the forged, the wrong-vantage nor
  // the wrong-CA attempt consumed it): a node of vantage dmz enrols with it.
  Node& ok = AddNode("j-ok", "127.0.0.15");
  SpawnJoin(ok, a, one.text, one.ca_hash, "dmz");
  ASSERT_TRUE(WaitAgreed({&a, &b, &ok}, {"node-a", "node-b", "j-ok"}, 30s));
  EXPECT_TRUE(Enrolled(ok));
  std::string enrolled = AwaitLogLine(a.log, {"msg=\"enrolled node\"", "name=j-ok", "token=" + one.id});
  EXPECT_FALSE(enrolled.empty()) << Slurp(a.log);
  std::printf("[ mesh     ] the --uses 1 token still enrols after the refusals: %s\n", enrolled.c_str());

  // Used up: its one use is gone now.
  auto with_ok = SettledSnapshot({&a, &b, &ok});
  Node& used = AddNode("j-used", "127.0.0.16");
  auto r = JoinOnce(used, a, one.text, one.ca_hash, "dmz");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("refused: token used up"), std::string::npos) << r.err;
  EXPECT_FALSE(Enrolled(used));
  EXPECT_FALSE(AwaitLogLine(a.log, {"msg=\"refused enrolment\"", "token=" + one.id, "token used up (token " + one.id + ")"})
                   .empty())
      << Slurp(a.log);
  EXPECT_EQ(Snapshot({&a, &b, &ok}), with_ok) << "before:" << Describe(with_ok);
  EXPECT_EQ(Count(Slurp(a.log), "msg=\"enrolled node\""), enrolled_before + 1);
}

// ---------------------------------------------------------------------------
// 2. TLS streams: without a client certificate (a stream that may only
// enrol), with another cluster's certificate, and plaintext.

// The vantage is bound at enrolment: a node that joined as wifi (a token
// for any vantage) runs as wifi; started again with another --vantage it
// refuses to start, clearly; started without one it takes its
// certificate's, and every member sees it so.
TEST_F(MeshSecurity, ANodeRunsOnlyAsTheVantageItsCertificateBinds) {
  StartCluster(1, 60s);
  if (HasFatalFailure()) return;
  Node& a = nodes_[0];
  Token any = CreateToken(a, {"--ttl", "1h", "--uses", "1", "--role", "scanner"});
  ASSERT_FALSE(HasFailure());
  Node& w = AddNode("w", "127.0.0.2");
  w.vantage = "wifi";
  ASSERT_NO_FATAL_FAILURE(SpawnJoin(w, a, any.text, any.ca_hash, "wifi"));
  ASSERT_TRUE(WaitAgreed({&a, &w}, {a.name, "w"}, 60s));
  EXPECT_NE(AwaitLogLine(w.log, {"enrolled", "role=scanner", "vantage=wifi"}, 1s), "") << Slurp(w.log);
  // Until a hears of the restarted w, its record of the first run (same
  // name, same vantage) would satisfy the wait below: wait for a newer one.
  uint64_t first_incarnation = Members(a).by_name["w"].incarnation;
  Kill(w);

  auto other = RunArgv({NdoBinary(), "agent", "--listen", w.Address(), "--data-dir", w.data, "--vantage", "dmz"}, tmp_,
                       "restart-dmz", 30s);
  EXPECT_EQ(other.exit_code, 2) << other.err;
  EXPECT_NE(other.err.find("this node's certificate binds vantage 'wifi'; it cannot run as --vantage 'dmz'"),
            std::string::npos)
      << other.err;

  w.pid = SpawnArgv({NdoBinary(), "agent", "--listen", w.Address(), "--data-dir", w.data, "--name", "w"}, w.log);
  ASSERT_GT(w.pid, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        View v = Members(a);
        return v.ok && v.StateOf("w") == "alive" && v.by_name["w"].incarnation > first_incarnation &&
               v.by_name["w"].vantage == "wifi";
      },
      60s))
      << Members(a).Describe();
  // w itself says so too, once its control socket answers.
  View self;
  ASSERT_TRUE(WaitFor(
      [&] {
        self = Members(w);
        return self.ok && self.StateOf("w") == "alive";
      },
      30s))
      << self.Describe();
  EXPECT_EQ(self.by_name["w"].vantage, "wifi");
}

// The record keys (signed records, docs/security.md): a node learns the
// certificate of each member that opens a work stream to it (the TLS
// handshake checked it), keeps it in its store, and knows it again after a
// restart, before any member talks to it.
TEST_F(MeshSecurity, ANodeKeepsTheCertificatesOfMembersItHearsFromAcrossARestart) {
  StartCluster(3, 60s);
  if (HasFatalFailure()) return;
  Node& a = nodes_[0];
  // Work syncs go to a random member every second: b and c reach a soon.
  for (const char* peer : {"node-b", "node-c"})
    EXPECT_NE(AwaitLogLine(a.log, {"msg=\"member certificate kept\"", "id=" + ids_[peer]}, 60s), "")
        << peer << "'s certificate: " << Slurp(a.log);
  EXPECT_TRUE(LogLines(a.log, {"msg=\"member certificate kept\"", "id=" + ids_["node-a"]}).empty());
  ASSERT_NE(AwaitLogLine(a.log, {"msg=\"record keys\"", "certificates=1"}), "") << "its own only, at first";
  Kill(a, SIGTERM);
  ASSERT_NO_FATAL_FAILURE(Start(a));
  EXPECT_NE(AwaitLogLine(a.log, {"msg=\"record keys\"", "certificates=3", "dropped=0"}, 30s), "") << Slurp(a.log);
}

TEST_F(MeshSecurity, StreamsWithoutCertificateWithAForeignCertificateOrInPlaintextChangeNothing) {
  StartCluster(2, 60s);
  if (HasFatalFailure()) return;
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  auto before = SettledSnapshot({&a, &b});
  size_t enrolled_before = Count(Slurp(a.log), "msg=\"enrolled node\"");  // node-b's

  // What a member would send to sync: a push-pull that announces an intruder.
  mesh::PushPull pp;
  pp.sender = FreshNodeId();
  pp.join = true;
  auto intruder = std::make_shared<mesh::MemberInfo>();
  intruder->id = pp.sender;
  intruder->name = "intruder";
  intruder->vantage = "lab";
  intruder->address = "127.0.0.99:" + std::to_string(a.port);
  pp.state.push_back(mesh::Update{mesh::Update::Kind::kAlive, intruder, 1, {}});
  auto pp_body = mesh::EncodePushPull(pp);
  ASSERT_TRUE(pp_body.ok()) << pp_body.status().message();
  // As a member frames it (mesh/membership/stream_frame.h); a bare body fares no better.
  std::string pp_frame = mesh::EncodeFrame(mesh::FrameKind::kPushPull, *pp_body);
  std::string garbage(200, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(garbage.data()), static_cast<int>(garbage.size()));

  // No client certificate, a push-pull frame (to the CA node), a bare
  // push-pull body and a garbage frame (to the other): each node answers
  // with an enrolment error.
  SslCtxPtr certless = ClientContext();
  ASSERT_TRUE(certless);
  for (auto [target, body, what] : std::vector<std::tuple<Node*, std::string, std::string>>{
           {&a, pp_frame, "push-pull"}, {&b, *pp_body, "bare push-pull"}, {&b, garbage, "garbage"}}) {
    TlsClient t(certless.get());
    ASSERT_TRUE(t.Connect("127.0.0.1", target->ip, target->port)) << what << ": " << t.error();
    ASSERT_TRUE(t.Write(Frame(body))) << what;
    auto reply = t.ReadFrame(5000ms);
    ASSERT_TRUE(reply) << what << ": no reply (" << t.error() << ")";
    auto decoded = mesh::DecodeEnrolReply(*reply);
    ASSERT_TRUE(decoded.ok()) << what << ": " << decoded.status().message();
    EXPECT_EQ(decoded->error, "expected an enrolment request (no client certificate)") << what;
    EXPECT_TRUE(decoded->cert_pem.empty() && decoded->ca_pem.empty() && decoded->keyring.keys.empty()) << what;
    EXPECT_FALSE(t.ReadFrame(2000ms)) << what << ": the stream is closed after the answer";
    std::string line = AwaitLogLine(target->log, {"msg=\"refused enrolment\"", FromField("127.0.0.1", t.local_port()),
                                                  "not an enrolment request"});
    EXPECT_FALSE(line.empty()) << what << "\n" << Slurp(target->log);
    std::printf("[ mesh     ] TLS without certificate, %s frame: %s\n", what.c_str(), line.c_str());
  }

  // A certificate of another cluster's CA (its `ndo init` node): the
  // handshake fails (TLS 1.3: the client learns it on its first read).
  ASSERT_EQ(RunArgv({NdoBinary(), "init", "--data-dir", tmp_ + "/other", "--vantage", "lab"}, tmp_, "init-other", 30s).exit_code, 0);
  auto other = mesh::LoadClusterMaterial(tmp_ + "/other", NowUnix());
  ASSERT_TRUE(other.ok()) << other.status().message();
  SslCtxPtr foreign = ClientContext(other->cert_pem, other->key_pem);
  ASSERT_TRUE(foreign) << TlsError("the other cluster's certificate");
  {
    TlsClient t(foreign.get());
    bool connected = t.Connect("127.0.0.1", a.ip, a.port);
    mesh::PushPull theirs = pp;
    theirs.sender = other->node;  // in the name of the node the certificate names
    auto body = mesh::EncodePushPull(theirs);
    ASSERT_TRUE(body.ok());
    if (connected) {
      (void)t.Write(Frame(mesh::EncodeFrame(mesh::FrameKind::kPushPull, *body)));
      EXPECT_FALSE(t.ReadFrame(3000ms)) << "a node answered a stream authenticated by another cluster's CA";
    }
    std::string line = AwaitLogLine(a.log, {"msg=\"refused stream\"", FromField("127.0.0.1", t.local_port()),
                                            "TLS handshake"});
    EXPECT_FALSE(line.empty()) << Slurp(a.log);
    std::printf("[ mesh     ] client certificate of another cluster (handshake %s on the client): %s\n",
                connected ? "completed" : "failed", line.c_str());
  }

  // Plain TCP with a plaintext push-pull frame: not TLS, closed.
  int fd = ConnectTcp(a.ip, a.port);
  ASSERT_GE(fd, 0);
  uint16_t plain_port = LocalPort(fd);
  std::string frame = Frame(pp_frame);
  (void)!write(fd, frame.data(), frame.size());
  EXPECT_TRUE(ClosedWithin(fd, 3000ms)) << "a plaintext stream is closed";
  close(fd);
  std::string line = AwaitLogLine(a.log, {"msg=\"refused stream\"", FromField("127.0.0.1", plain_port), "TLS handshake"});
  EXPECT_FALSE(line.empty()) << Slurp(a.log);
  std::printf("[ mesh     ] plaintext frame: %s\n", line.c_str());

  // Nothing changed: no intruder, the same states, on both nodes.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Snapshot({&a, &b}), before) << "before:" << Describe(before);
  for (Node* n : {&a, &b}) EXPECT_EQ(Members(*n).by_name.count("intruder"), 0u) << n->name;
  EXPECT_EQ(Count(Slurp(a.log), "msg=\"enrolled node\""), enrolled_before);
}

// ---------------------------------------------------------------------------
// 3. Gossip datagrams, sealed (or not) by the omniscient test with the
// cluster's own keyring.

TEST_F(MeshSecurity, ForgedModifiedTruncatedReplayedPlaintextAndMisattributedDatagramsAreDropped) {
  StartCluster(3, 60s);
  if (HasFatalFailure()) return;
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  Node& c = nodes_[2];
  auto before = SettledSnapshot(All());

  auto material = mesh::LoadClusterMaterial(a.data, NowUnix());
  ASSERT_TRUE(material.ok()) << material.status().message();
  const mesh::Keyring& ring = material->keyring;
  const mesh::GossipKey* primary = ring.Find(ring.primary);
  ASSERT_NE(primary, nullptr);
  mesh::NodeId a_id = mesh::NodeId::FromHex(ids_["node-a"]);
  mesh::NodeId b_id = mesh::NodeId::FromHex(ids_["node-b"]);
  mesh::NodeId c_id = mesh::NodeId::FromHex(ids_["node-c"]);
  ASSERT_FALSE(a_id.empty() || b_id.empty() || c_id.empty());

  auto seal = [&](const mesh::Keyring& with, const mesh::NodeId& sealer, const mesh::Message& m) {
    mesh::AeadSeal s(material->cluster, sealer, with, mesh::CounterAtWallMicros(NowMicros()));
    auto plain = mesh::EncodeMessage(m);
    EXPECT_TRUE(plain.ok()) << plain.status().message();
    auto sealed = s.Seal(plain.ok() ? *plain : "");
    EXPECT_TRUE(sealed.ok()) << sealed.status().message();
    return sealed.ok() ? *sealed : std::string();
  };
  // What would change the membership if any of it got through: node-c
  // declared dead, above its incarnation, in the name of `accuser`.
  auto info_c = std::make_shared<mesh::MemberInfo>();
  info_c->id = c_id;
  info_c->name = "node-c";
  info_c->vantage = "lab";
  info_c->address = c.Address();
  uint64_t c_incarnation = Members(a).by_name["node-c"].incarnation;
  auto accusation = [&](const mesh::NodeId& accuser) {
    mesh::Message m;
    m.type = mesh::Message::Type::kGossip;
    m.sender = accuser;
    m.updates.push_back(mesh::Update{mesh::Update::Kind::kDead, info_c, c_incarnation + 10, accuser});
    return m;
  };
  auto ping = [&](const mesh::NodeId& from, const mesh::NodeId& to, uint32_t seq) {
    mesh::Message m;
    m.type = mesh::Message::Type::kPing;
    m.sender = from;
    m.seq = seq;
    m.target = to;
    return m;
  };

  // Every case from a socket of its own: the node's log line is found by
  // source port. At most 5 drops per node: the node logs 10 per 10 s.
  struct Case {
    std::string what;
    Node* target;
    std::string datagram;
    std::string reason;  // in the node's "dropped datagram" line
  };
  std::vector<Case> cases;

  // Forged: sealed under a random key that claims the cluster's key id.
  mesh::Keyring forged_ring = ring;
  for (auto& k : forged_ring.keys) RAND_bytes(k.key.data(), static_cast<int>(k.key.size()));
  mesh::NodeId s_forged = FreshNodeId();
  cases.push_back({"forged", &a, seal(forged_ring, s_forged, accusation(s_forged)), "reason=\"authentication failed\""});

  // Under a key id the cluster never had.
  mesh::Keyring unknown_ring;
  unknown_ring.keys.push_back(*primary);
  unknown_ring.keys[0].id = primary->id + 1;
  RAND_bytes(unknown_ring.keys[0].key.data(), static_cast<int>(unknown_ring.keys[0].key.size()));
  unknown_ring.primary = unknown_ring.keys[0].id;
  mesh::NodeId s_unknown = FreshNodeId();
  cases.push_back({"unknown key", &b, seal(unknown_ring, s_unknown, accusation(s_unknown)),
                   "unknown gossip key " + std::to_string(unknown_ring.primary)});

  // Modified: validly sealed, then one byte flipped in the ciphertext, or in
  // the header (the counter, which the tag covers as associated data).
  mesh::NodeId s_mod = FreshNodeId();
  std::string good = seal(ring, s_mod, accusation(s_mod));
  ASSERT_GT(good.size(), mesh::kSealOverhead + 8);
  std::string body_flipped = good;
  body_flipped[mesh::kSealHeaderBytes + 5] ^= 0x01;
  cases.push_back({"modified body", &a, body_flipped, "reason=\"authentication failed\""});
  std::string header_flipped = good;
  header_flipped[1 + 4 + 16 + 7] ^= 0x01;  // the counter's last byte
  cases.push_back({"modified header", &b, header_flipped, "reason=\"authentication failed\""});

  // Truncated: the last byte of the tag missing; or shorter than the seal.
  cases.push_back({"truncated", &a, good.substr(0, good.size() - 1), "reason=\"authentication failed\""});
  cases.push_back({"truncated below the seal", &b, good.substr(0, 20),
                   "sealed datagram of 20 bytes, shorter than the " + std::to_string(mesh::kSealOverhead) +
                       "-byte seal"});

  // Plaintext: an unsealed ping carrying the accusation, as an --insecure
  // node would send it (longer than a seal: the version byte decides).
  mesh::NodeId s_plain = FreshNodeId();
  mesh::Message plain_msg = accusation(s_plain);
  plain_msg.type = mesh::Message::Type::kPing;
  plain_msg.seq = 11;
  plain_msg.target = b_id;
  auto plain_ping = mesh::EncodeMessage(plain_msg);
  ASSERT_TRUE(plain_ping.ok());
  ASSERT_GT(plain_ping->size(), mesh::kSealOverhead);
  cases.push_back({"plaintext", &b, *plain_ping, "reason=\"unknown seal version "});

  // Seal version 1 (an older ndo: the cluster key itself, a random nonce):
  // the header of one, a plausible body; refused by its version alone.
  std::string v1 = good;
  v1[0] = 1;
  cases.push_back({"seal version 1", &b, v1, "seal version 1 (the cluster key with random nonces) is no longer accepted"});

  // Misattributed: validly sealed by a fresh id, in the name of node-b.
  mesh::NodeId s_mis = FreshNodeId();
  cases.push_back({"misattributed", &a, seal(ring, s_mis, accusation(b_id)),
                   "sealed by " + s_mis.Hex() + " but sent in the name of " + b_id.Hex()});

  std::vector<std::unique_ptr<UdpPeer>> peers;
  for (const Case& k : cases) {
    peers.push_back(std::make_unique<UdpPeer>());
    ASSERT_TRUE(peers.back()->ok());
    ASSERT_TRUE(peers.back()->Send(*k.target, k.datagram)) << k.what;
    EXPECT_FALSE(peers.back()->Receive(100ms)) << k.what << ": the node answered";
  }

  // Replayed: a valid ping from a fresh sender (not a member) is answered;
  // the same bytes again are dropped, unanswered. The answer also proves the
  // test seals as the cluster does, so the drops above are not of garbage.
  mesh::NodeId s_replay = FreshNodeId();
  mesh::AeadSeal replay_seal(material->cluster, s_replay, ring, mesh::CounterAtWallMicros(NowMicros()));
  auto ping_bytes = mesh::EncodeMessage(ping(s_replay, a_id, 7));
  ASSERT_TRUE(ping_bytes.ok());
  auto sealed_ping = replay_seal.Seal(*ping_bytes);
  ASSERT_TRUE(sealed_ping.ok());
  UdpPeer replayer;
  ASSERT_TRUE(replayer.ok());
  ASSERT_TRUE(replayer.Send(a, *sealed_ping));
  auto ack = replayer.Receive(3000ms);
  ASSERT_TRUE(ack) << "a validly sealed ping went unanswered\n" << Slurp(a.log);
  auto opened = replay_seal.Open(*ack);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(opened->sender, a_id);
  auto ack_msg = mesh::DecodeMessage(opened->plain);
  ASSERT_TRUE(ack_msg.ok()) << ack_msg.status().message();
  EXPECT_EQ(ack_msg->type, mesh::Message::Type::kAck);
  EXPECT_EQ(ack_msg->seq, 7u);
  ASSERT_TRUE(replayer.Send(a, *sealed_ping));
  EXPECT_FALSE(replayer.Receive(1000ms)) << "a replayed ping was answered";
  std::string replayed = AwaitLogLine(a.log, {"msg=\"dropped datagram\"", replayer.From(), "replayed datagram"});
  EXPECT_NE(replayed.find("replayed datagram: counter "), std::string::npos) << Slurp(a.log);
  EXPECT_NE(replayed.find(" from " + s_replay.Hex()), std::string::npos) << replayed;

  for (size_t i = 0; i < cases.size(); ++i) {
    std::string line = AwaitLogLine(cases[i].target->log, {"msg=\"dropped datagram\"", peers[i]->From()});
    EXPECT_NE(line.find(cases[i].reason), std::string::npos)
        << cases[i].what << ": expected " << cases[i].reason << " in: " << (line.empty() ? "(no line)" : line);
    std::printf("[ mesh     ] %-24s %s\n", (cases[i].what + ":").c_str(), line.c_str());
  }

  // Nothing changed: no node took node-c for dead, nor anyone new in.
  std::this_thread::sleep_for(1000ms);
  EXPECT_EQ(Snapshot(All()), before) << "before:" << Describe(before);
  for (Node* n : All()) EXPECT_EQ(Members(*n).by_name.size(), 3u) << n->name;
  EXPECT_TRUE(WaitAgreed(All(), Names(All()), 5s));
}

// ---------------------------------------------------------------------------
// 4. A flood of bad join attempts against the CA node of a 3-node cluster.
//
// 300 TLS connections without a certificate, each a well-formed enrolment
// request (a real CSR, a correct-looking proof) under the id of a real token
// with a wrong secret, from addresses 127.0.1.x, over ~10 s. In order:
// 24 handshakes at once from 24 addresses (the CA node judges 20 attempts a
// second: the rest are refused unseen), 6 attempts from 127.0.1.200 (5
// judged failures, then refused unseen for a minute), the 24 requests, then
// the rest paced from 3 threads. The CA node's "refused enrolment" lines are
// rate-limited (20 per 10 s): the first window shows both limiter reasons.

struct FloodResult {
  std::atomic<int> attempts{0}, answered{0}, closed_unanswered{0}, enrolled{0}, other_answer{0};
  std::atomic<int> not_connected{0};  // of closed_unanswered: no TLS stream at all
};

class EnrolFlood {
 public:
  EnrolFlood(const Node& target, const Token& token) : target_(target), token_(token) {
    auto key = mesh::GenerateKeyPem();
    auto csr = key.ok() ? mesh::MakeCsr(*key, FreshNodeId(), "flood") : Result<std::string>(key.status());
    auto info = csr.ok() ? mesh::CheckCsr(*csr) : Result<mesh::CsrInfo>(csr.status());
    if (info.ok()) {
      csr_pem_ = *csr;
      csr_sha256_ = info->der_sha256;
    }
  }
  bool ready() const { return !csr_pem_.empty() && ctx_; }

  // Connects from `source` and runs the handshake.
  std::unique_ptr<TlsClient> Open(const std::string& source) {
    auto t = std::make_unique<TlsClient>(ctx_.get());
    ++result.attempts;
    if (!t->Connect(source, target_.ip, target_.port)) {
      ++result.closed_unanswered;  // refused at accept (too many streams)
      ++result.not_connected;
      return nullptr;
    }
    return t;
  }

  // Sends the request with a wrong secret's proof and sorts the outcome.
  void Finish(TlsClient& t) {
    auto exporter = mesh::ExportKeyingMaterial(t.ssl(), mesh::kEnrolExporterLabel, mesh::kEnrolExporterBytes);
    if (!exporter.ok()) {
      ++result.closed_unanswered;
      return;
    }
    std::string wrong_secret = RandomHex(mesh::kTokenSecretHexDigits);
    mesh::EnrolRequest request{token_.id, csr_pem_, "lab", "flood",
                               mesh::EnrolmentProof(wrong_secret, *exporter, csr_sha256_, "lab", "flood")};
    auto body = mesh::EncodeEnrolRequest(request);
    if (!body.ok() || !t.Write(Frame(*body))) {
      ++result.closed_unanswered;  // closed unseen: the write met a closed stream
      return;
    }
    auto reply = t.ReadFrame(5000ms);
    if (!reply) {
      ++result.closed_unanswered;
      return;
    }
    auto decoded = mesh::DecodeEnrolReply(*reply);
    if (decoded.ok() && decoded->error.empty()) {
      ++result.enrolled;
    } else if (decoded.ok() && decoded->error == "invalid token") {
      ++result.answered;
    } else {
      ++result.other_answer;
      std::lock_guard<std::mutex> lock(mu_);
      other_answers_.push_back(decoded.ok() ? decoded->error : decoded.status().message());
    }
  }

  void Attempt(const std::string& source) {
    if (auto t = Open(source)) Finish(*t);
  }

  std::vector<std::string> other_answers() {
    std::lock_guard<std::mutex> lock(mu_);
    return other_answers_;
  }

  FloodResult result;

 private:
  const Node& target_;
  Token token_;
  std::string csr_pem_, csr_sha256_;
  SslCtxPtr ctx_ = ClientContext();
  std::mutex mu_;
  std::vector<std::string> other_answers_;
};

TEST_F(MeshSecurity, FloodOfBadJoinAttemptsIsRateLimitedAndHarmless) {
  StartCluster(3, 60s);
  if (HasFatalFailure()) return;
  Node& a = nodes_[0];  // the CA node: the only one that enrols
  Node& b = nodes_[1];
  Node& c = nodes_[2];
  SettledSnapshot(All());  // the polls below expect one coordinator throughout
  Token token = CreateToken(a, {"--ttl", "1h", "--uses", "1"});
  ASSERT_FALSE(token.id.empty());
  size_t enrolled_before = Count(Slurp(a.log), "msg=\"enrolled node\"");  // node-b's and node-c's

  EnrolFlood flood(a, token);
  ASSERT_TRUE(flood.ready());
  constexpr int kTotal = 300, kBurst = 24, kFromOne = 6, kThreads = 3;
  const std::string one_source = "127.0.1.200";
  auto burst_source = [](int i) { return "127.0.1." + std::to_string(1 + i % kBurst); };
  std::atomic<bool> flooding{true};
  auto t0 = SteadyClock::now();
  std::thread attacker([&] {
    // 24 handshakes at once, held.
    std::vector<std::unique_ptr<TlsClient>> held(kBurst);
    {
      std::vector<std::thread> openers;
      for (int t = 0; t < 4; ++t)
        openers.emplace_back([&, t] {
          for (int i = t; i < kBurst; i += 4) held[i] = flood.Open(burst_source(i));
        });
      for (auto& th : openers) th.join();
    }
    // The next second of the limiter (its second began at the first of
    // those): one source fails 5 times, then is refused unseen.
    std::this_thread::sleep_for(1100ms);
    for (int i = 0; i < kFromOne; ++i) flood.Attempt(one_source);
    // The held ones send their requests.
    {
      std::vector<std::thread> senders;
      for (int t = 0; t < 4; ++t)
        senders.emplace_back([&, t] {
          for (int i = t; i < kBurst; i += 4)
            if (held[i]) flood.Finish(*held[i]);
        });
      for (auto& th : senders) th.join();
    }
    held.clear();
    // The rest, paced to end ~10 s after the start, from all those addresses.
    int rest = kTotal - kBurst - kFromOne;
    auto start = SteadyClock::now(), end = t0 + 10s;
    auto step = (end - start) / std::max(1, rest / kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        int k = 0;
        for (int i = t; i < rest; i += kThreads, ++k) {
          std::this_thread::sleep_until(start + step * k);
          flood.Attempt(i % (kBurst + 1) == kBurst ? one_source : burst_source(i));
        }
      });
    for (auto& th : threads) th.join();
    flooding = false;
  });

  // Meanwhile every node stays up, alive to the others, under one coordinator.
  int polls = 0, bad_polls = 0;
  std::string first_bad;
  while (flooding) {
    std::string why;
    ++polls;
    if (!Agreed({&b, &c}, Names(All()), nullptr, &why) || !Members(a).ok) {
      if (bad_polls++ == 0) first_bad = why.empty() ? "node-a does not answer" : why;
    }
    std::this_thread::sleep_for(300ms);
  }
  attacker.join();
  double took = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const FloodResult& r = flood.result;
  std::printf("[ mesh     ] flood: %d attempts in %.1f s: %d refused with an answer, %d closed unanswered, "
              "%d enrolled; %d polls of the members, %d bad\n",
              r.attempts.load(), took, r.answered.load(), r.closed_unanswered.load(), r.enrolled.load(), polls,
              bad_polls);
  EXPECT_EQ(r.attempts.load(), kTotal);
  EXPECT_EQ(r.enrolled.load(), 0);
  EXPECT_EQ(r.other_answer.load(), 0) << "answers other than \"invalid token\": "
                                      << (flood.other_answers().empty() ? "" : flood.other_answers().front());
  EXPECT_EQ(r.answered.load() + r.closed_unanswered.load(), kTotal);
  EXPECT_GE(r.closed_unanswered.load(), 1) << "the limiter refused nothing unseen";
  EXPECT_GE(polls, 10);
  EXPECT_EQ(bad_polls, 0) << "first: " << first_bad;
  for (Node* n : All()) EXPECT_EQ(kill(n->pid, 0), 0) << n->name << " is still running";

  // The log: both limits, the judged failures, and a bounded number of lines.
  std::string log = Slurp(a.log);
  size_t refused_lines = Count(log, "msg=\"refused enrolment\"");
  std::printf("[ mesh     ] node-a logged %zu \"refused enrolment\" lines for %d attempts\n", refused_lines, kTotal);
  EXPECT_GE(refused_lines, 20u);
  EXPECT_LE(refused_lines, 40u) << "refusals are logged at most 20 per 10 s";
  EXPECT_NE(log.find("reason=\"too many enrolment attempts (all sources)\""), std::string::npos) << log;
  EXPECT_NE(log.find("reason=\"too many failed enrolment attempts from " + one_source + "\""), std::string::npos)
      << log;
  EXPECT_NE(log.find("wrong token proof (forged or wrong secret) for token " + token.id), std::string::npos) << log;
  EXPECT_EQ(Count(log, "msg=\"enrolled node\""), enrolled_before);

  // Everyone still agrees; the flooding address is still refused unseen,
  // and the next refusal logged (a new 10 s window) counts those left out.
  ASSERT_TRUE(WaitAgreed(All(), Names(All()), 10s));
  std::this_thread::sleep_until(t0 + 11s);
  {
    auto t = flood.Open(one_source);
    ASSERT_TRUE(t);
    int before = flood.result.closed_unanswered.load();
    flood.Finish(*t);
    EXPECT_EQ(flood.result.closed_unanswered.load(), before + 1) << "a flooding address is refused for a minute";
  }
  ASSERT_TRUE(WaitFor([&] { return Count(Slurp(a.log), "msg=\"refused enrolment\"") > refused_lines; }, 3s));
  auto lines = LogLines(a.log, {"msg=\"refused enrolment\""});
  std::printf("[ mesh     ] the next refusal logged: %s\n", lines.back().c_str());
  EXPECT_NE(lines.back().find("reason=\"too many failed enrolment attempts from " + one_source + "\""),
            std::string::npos);
  // Every attempt that reached the node was refused once, logged or
  // counted in the next line's suppressed=.
  uint64_t accounted = lines.size();
  static const std::regex suppressed(R"( suppressed=(\d+))");
  for (const auto& line : lines) {
    std::smatch m;
    if (std::regex_search(line, m, suppressed)) accounted += std::stoull(m[1]);
  }
  EXPECT_EQ(accounted, static_cast<uint64_t>(kTotal + 1 - flood.result.not_connected.load()))
      << "refusals neither logged nor counted";

  // A legitimate join from elsewhere, with the very token whose id the flood
  // used: it was neither used up nor locked.
  Node& d = AddNode("node-d", "127.0.0.9");
  SpawnJoin(d, a, token.text, token.ca_hash, "lab");
  ASSERT_TRUE(WaitAgreed(All(), Names(All()), 30s));
  std::string enrolled = AwaitLogLine(a.log, {"msg=\"enrolled node\"", "name=node-d", "token=" + token.id});
  EXPECT_FALSE(enrolled.empty()) << Slurp(a.log);
  std::printf("[ mesh     ] after the flood: %s\n", enrolled.c_str());
}

// ---------------------------------------------------------------------------
// 5. `ndo members remove` and `ndo keys rotate`: a revoked node is refused on
// every path, by every member, also after a restart; the keys it held are
// removed everywhere, and a datagram sealed with a removed key is dropped.
// The members that stay never lose each other meanwhile.

TEST_F(MeshSecurity, RemovedMemberIsRefusedEverywhereAndItsKeysAreRotatedAway) {
  StartCluster(4, 60s);
  if (HasFatalFailure()) return;
  Node& a = nodes_[0];
  Node& b = nodes_[1];
  Node& c = nodes_[2];
  Node& d = nodes_[3];
  const std::set<std::string> stay = {"node-a", "node-b", "node-c"};
  mesh::NodeId d_id = mesh::NodeId::FromHex(ids_["node-d"]);
  ASSERT_FALSE(d_id.empty());
  // What node-d holds and keeps: its certificate, key and the keys of now.
  auto d_material = mesh::LoadClusterMaterial(d.data, NowUnix());
  ASSERT_TRUE(d_material.ok()) << d_material.status().message();
  const mesh::Keyring old_ring = d_material->keyring;

  // Removed through a member that does not hold the CA key.
  auto removed = RunArgv({NdoBinary(), "members", "remove", "node-d", "--data-dir", b.data}, tmp_, "remove", 30s);
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_NE(removed.out.find("is revoked"), std::string::npos) << removed.out;
  auto t0 = SteadyClock::now();

  // Until the old keys are gone (rotation lead + overlap, 20 s, and a
  // margin), the others declare node-d dead and never lose each other.
  std::vector<Node*> stayers = {&a, &b, &c};
  bool d_dead = false, stayers_fine = true;
  std::string last;
  while (SteadyClock::now() - t0 < std::chrono::seconds(mesh::kRotationLead + mesh::kRotationOverlap + 3)) {
    d_dead = true;
    for (Node* n : stayers) {
      View v = Members(*n);
      if (!v.ok) continue;
      for (const auto& name : stay)
        if (v.StateOf(name) != "alive") {
          stayers_fine = false;
          last = n->name + ": " + v.Describe();
        }
      if (v.StateOf("node-d") != "dead") d_dead = false;
    }
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(stayers_fine) << "a remaining member was lost during the revocation: " << last;
  EXPECT_TRUE(d_dead) << "node-d is not dead everywhere 23 s after its removal";

  // Every member holds the revocation and new keys only; none of node-d's.
  for (Node* n : stayers) {
    auto m = mesh::LoadClusterMaterial(n->data, NowUnix());
    ASSERT_TRUE(m.ok()) << n->name << ": " << m.status().message();
    for (const auto& k : old_ring.keys) EXPECT_EQ(m->keyring.Find(k.id), nullptr) << n->name << " still holds key " << k.id;
    EXPECT_NE(m->keyring.primary, old_ring.primary) << n->name;
    std::string log = Slurp(n->log);
    EXPECT_NE(log.find("msg=\"gossip keys changed\""), std::string::npos) << n->name;
  }
  // Its datagrams: node-d still runs and still talks; everyone drops it.
  for (Node* n : stayers)
    EXPECT_TRUE(WaitFor([&] {
      std::string log = Slurp(n->log);
      return log.find("is revoked") != std::string::npos || log.find("unknown gossip key") != std::string::npos;
    }, 10s)) << n->name << " never dropped node-d's datagrams";

  // A datagram sealed with the removed key, from a sender never seen.
  {
    mesh::NodeId fresh = FreshNodeId();
    mesh::AeadSeal seal(d_material->cluster, fresh, old_ring, mesh::CounterAtWallMicros(NowMicros()));
    mesh::Message ping;
    ping.type = mesh::Message::Type::kPing;
    ping.sender = fresh;
    ping.seq = 7;
    ping.target = mesh::NodeId::FromHex(ids_["node-a"]);
    auto plain = mesh::EncodeMessage(ping);
    ASSERT_TRUE(plain.ok());
    auto sealed = seal.Seal(*plain);
    ASSERT_TRUE(sealed.ok());
    UdpPeer peer;
    ASSERT_TRUE(peer.Send(a, *sealed));
    EXPECT_FALSE(peer.Receive(1500ms).has_value()) << "a ping sealed with a removed key was answered";
    EXPECT_TRUE(WaitFor([&] {
      return !LogLines(a.log, {"msg=\"dropped datagram\"", "unknown gossip key " + std::to_string(old_ring.primary),
                               peer.From()})
                  .empty();
    }, 5s)) << "no drop logged for the removed key";
  }

  // Its streams: node-d's own certificate, to every member, is refused after
  // the handshake; to a member restarted since, too (the revocation is kept).
  auto refused_with_d_cert = [&](Node& n) {
    SslCtxPtr ctx = ClientContext(d_material->cert_pem, d_material->key_pem);
    if (!ctx) return false;
    TlsClient t(ctx.get());
    size_t before = LogLines(n.log, {"msg=\"refused stream\"", "is revoked"}).size();
    if (t.Connect("127.0.0.4", n.ip, n.port)) {
      t.Write(std::string("\0\0\0\1P", 5));
      if (t.ReadFrame(2000ms).has_value()) return false;  // answered: not refused
    }
    return WaitFor([&] { return LogLines(n.log, {"msg=\"refused stream\"", "is revoked"}).size() > before; }, 5s);
  };
  for (Node* n : stayers) EXPECT_TRUE(refused_with_d_cert(*n)) << n->name << " let node-d's certificate in";
  Kill(c);
  Start(c);
  ASSERT_TRUE(WaitFor([&] { return Members(c).ok; }, 20s));
  EXPECT_TRUE(refused_with_d_cert(c)) << "node-c forgot the revocation across a restart";
  ASSERT_TRUE(WaitAgreed(stayers, stay, 30s, nullptr, "dead"));

  // `ndo keys rotate` on any member: new keys everywhere, nobody lost.
  auto before_rotation = mesh::LoadClusterMaterial(a.data, NowUnix());
  ASSERT_TRUE(before_rotation.ok());
  auto rotated = RunArgv({NdoBinary(), "keys", "rotate", "--data-dir", c.data}, tmp_, "rotate", 30s);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  EXPECT_NE(rotated.out.find("new gossip key"), std::string::npos) << rotated.out;
  auto t1 = SteadyClock::now();
  stayers_fine = true;
  while (SteadyClock::now() - t1 < std::chrono::seconds(mesh::kRotationLead + mesh::kRotationOverlap + 3)) {
    for (Node* n : stayers) {
      View v = Members(*n);
      if (!v.ok) continue;
      for (const auto& name : stay)
        if (v.StateOf(name) != "alive") {
          stayers_fine = false;
          last = n->name + ": " + v.Describe();
        }
    }
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(stayers_fine) << "a member was lost during a key rotation: " << last;
  for (Node* n : stayers) {
    auto m = mesh::LoadClusterMaterial(n->data, NowUnix());
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->keyring.keys.size(), 1u) << n->name;
    EXPECT_NE(m->keyring.primary, before_rotation->keyring.primary) << n->name;
  }
  // All three agree on the one key.
  auto ka = mesh::LoadClusterMaterial(a.data, NowUnix()), kb = mesh::LoadClusterMaterial(b.data, NowUnix()),
       kc = mesh::LoadClusterMaterial(c.data, NowUnix());
  ASSERT_TRUE(ka.ok() && kb.ok() && kc.ok());
  EXPECT_EQ(ka->keyring.primary, kb->keyring.primary);
  EXPECT_EQ(kb->keyring.primary, kc->keyring.primary);
}

}  // namespace
}  // namespace ndo
