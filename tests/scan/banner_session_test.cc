#include "scan/service/banner_session.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace ndo {
namespace {

using State = BannerSession::State;
using namespace std::string_literals;

// A MySQL 8.0.35 handshake (protocol 10) as the server sends it on connect:
// 4-byte header (payload length 0x4a, sequence 0), then the payload. The first
// salt half holds a 0x0a byte, which must not look like an end of line.
const std::string kMySql8Greeting =
    "\x4a\x00\x00\x00"                  // payload length 74, sequence 0
    "\x0a"                              // protocol 10
    "8.0.35\x00"                        // server version
    "\x0b\x00\x00\x00"                  // connection id
    "\x3c\x1e\x5d\x0a\x0f\x26\x1f\x66"  // auth-plugin-data part 1
    "\x00"                              // filler
    "\xff\xff"                          // capability flags (lower)
    "\xff"                              // character set utf8mb4_0900_ai_ci
    "\x02\x00"                          // status flags
    "\xff\xdf"                          // capability flags (upper)
    "\x15"                              // auth-plugin-data length
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"              // reserved
    "\x6b\x2a\x1c\x4d\x6e\x3e\x08\x47\x72\x10\x0c\x37\x00"  // auth-plugin-data part 2
    "caching_sha2_password\x00"s;

// PostgreSQL's answer to bytes it does not understand: an ErrorResponse.
std::string PostgresError() {
  std::string fields = "SFATAL\0VFATAL\0C0A000\0Munsupported frontend protocol 18245.8224: server supports 3.0 to 3.0\0"
                       "Fpostmaster.c\0L2211\0RProcessStartupPacket\0\0"s;
  uint32_t len = static_cast<uint32_t>(fields.size() + 4);
  std::string msg = "E";
  for (int shift : {24, 16, 8, 0}) msg += static_cast<char>((len >> shift) & 0xff);
  return msg + fields;
}

const std::string kHttpResponse =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 45\r\n"
    "Connection: close\r\n"
    "\r\n"
    "<html><title>Welcome</title><body></body></html>";

struct Fed {
  BannerEvidence evidence;
  State last = State::kReading;
  size_t done_after = 0;  // bytes fed when kDone first came back (0: never)
};

// Feeds `bytes` in chunks of `chunk` bytes (0: in one piece), all of them, and
// notes when the session first said it was done.
Fed Feed(const std::string& bytes, uint16_t port, size_t chunk = 0, BannerConfig cfg = {}) {
  BannerSession s(cfg, port);
  s.TakeOutput();
  Fed f;
  size_t step = chunk == 0 ? std::max<size_t>(bytes.size(), 1) : chunk;
  for (size_t off = 0; off < bytes.size(); off += step) {
    f.last = s.OnData(std::string_view(bytes).substr(off, step));
    if (f.last == State::kDone && f.done_after == 0) f.done_after = std::min(off + step, bytes.size());
  }
  f.evidence = s.Finish();
  return f;
}

struct Case {
  const char* name;
  std::string bytes;
  uint16_t port;
  std::string service;
  size_t done_after;  // where the banner is complete; 0: not before EOF
};
constexpr size_t kAtEnd = SIZE_MAX;  // complete with its last byte

std::vector<Case> Cases() {
  return {
      {"openssh", "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 22, "ssh", kAtEnd},
      {"postfix", "220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n", 25, "smtp", kAtEnd},
      {"exim_multiline",
       "220-mx.example.org ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000\r\n"
       "220-We do not authorize the use of this system to transport unsolicited,\r\n"
       "220 and/or bulk e-mail.\r\n",
       25, "smtp", kAtEnd},
      {"vsftpd", "220 (vsFTPd 3.0.3)\r\n", 21, "ftp", kAtEnd},
      {"proftpd_multiline", "220-Welcome to the archive\r\n220 ProFTPD Server (mail.example.org)\r\n", 21, "ftp", kAtEnd},
      {"dovecot_pop3", "+OK Dovecot ready.\r\n", 110, "pop3", kAtEnd},
      {"dovecot_imap",
       "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] "
       "Dovecot ready.\r\n",
       143, "imap", kAtEnd},
      {"mysql8", kMySql8Greeting, 3306, "mysql", kAtEnd},
      {"http", kHttpResponse, 80, "http", kHttpResponse.find("\r\n\r\n") + 4},
      {"redis", "-NOAUTH Authentication required.\r\n", 6379, "redis", kAtEnd},
      {"vnc", "RFB 003.008\n", 5900, "vnc", kAtEnd},
      {"postgresql", PostgresError(), 5432, "postgresql", kAtEnd},
      {"telnet", "\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27", 23, "telnet", 0},
  };
}

TEST(BannerSession, EachProtocolInOnePieceAndByteByByte) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Fed whole = Feed(c.bytes, c.port);
    Fed bytewise = Feed(c.bytes, c.port, 1);
    EXPECT_EQ(whole.evidence.bytes, c.bytes);
    EXPECT_EQ(bytewise.evidence.bytes, c.bytes);
    EXPECT_FALSE(whole.evidence.truncated);
    EXPECT_FALSE(bytewise.evidence.truncated);
    EXPECT_EQ(whole.evidence.error, "");
    EXPECT_EQ(GuessService(whole.evidence.bytes), c.service);
    EXPECT_EQ(GuessService(bytewise.evidence.bytes), c.service);
    if (c.done_after == 0) {
      EXPECT_EQ(whole.last, State::kReading);
      EXPECT_EQ(bytewise.done_after, 0u);
    } else {
      EXPECT_EQ(whole.last, State::kDone);
      EXPECT_EQ(bytewise.done_after, c.done_after == kAtEnd ? c.bytes.size() : c.done_after);  // not a byte earlier
    }
  }
}

TEST(BannerSession, MySqlCaseIsTheRealLength) {
  ASSERT_EQ(kMySql8Greeting.size(), 78u);  // 4-byte header + 0x4a
}

TEST(BannerSession, ChunkingNeverChangesTheEvidence) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    for (size_t chunk : {2, 3, 5, 7, 16}) {
      Fed f = Feed(c.bytes, c.port, chunk);
      EXPECT_EQ(f.evidence.bytes, c.bytes);
      EXPECT_EQ(f.last, c.done_after ? State::kDone : State::kReading);
    }
  }
}

TEST(BannerSession, HttpRequestOnHttpPortsOnly) {
  BannerConfig cfg;
  cfg.http_host = "www.example.org";
  BannerSession s(cfg, 8080);
  const std::string expected =
      "GET / HTTP/1.0\r\nHost: www.example.org\r\nUser-Agent: ndo/0.1\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(s.TakeOutput(), expected);
  EXPECT_EQ(s.TakeOutput(), "");  // once
  EXPECT_EQ(s.Finish().request, expected);

  BannerSession ssh(cfg, 22);
  EXPECT_EQ(ssh.TakeOutput(), "");
  EXPECT_EQ(ssh.Finish().request, "");

  BannerSession tls(cfg, 443);  // a TLS port: no plain-text request
  EXPECT_EQ(tls.TakeOutput(), "");
}

TEST(BannerSession, IsHttpPort) {
  for (uint16_t p : {80, 81, 591, 3000, 5000, 5601, 8000, 8008, 8080, 8081, 8088, 8888, 9000, 9090, 9200})
    EXPECT_TRUE(IsHttpPort(p)) << p;
  for (uint16_t p : {0, 21, 22, 25, 443, 8443, 3306, 65535}) EXPECT_FALSE(IsHttpPort(p)) << p;
}

TEST(BannerSession, HostIsSanitised) {
  auto request_for = [](std::string host) {
    BannerConfig cfg;
    cfg.http_host = std::move(host);
    return BannerSession(cfg, 80).TakeOutput();
  };
  const std::string no_host = "GET / HTTP/1.0\r\nUser-Agent: ndo/0.1\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(request_for("192.0.2.7"),
            "GET / HTTP/1.0\r\nHost: 192.0.2.7\r\nUser-Agent: ndo/0.1\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  EXPECT_NE(request_for("[2001:db8::1]").find("\r\nHost: [2001:db8::1]\r\n"), std::string::npos);
  EXPECT_NE(request_for("my-host.Example.ORG").find("\r\nHost: my-host.Example.ORG\r\n"), std::string::npos);
  EXPECT_EQ(request_for(""), no_host);
  EXPECT_EQ(request_for("evil.org\r\nX-Injected: 1"), no_host);
  EXPECT_EQ(request_for("a b"), no_host);
  EXPECT_EQ(request_for("host/path"), no_host);
  EXPECT_EQ(request_for("h\xc3\xa9.example"), no_host);
  EXPECT_EQ(request_for("a\0b"s), no_host);
  EXPECT_EQ(request_for(std::string(300, 'a')), no_host);
}

TEST(BannerSession, LineProtocolWaitsForTheNewline) {
  BannerSession s({}, 22);
  EXPECT_EQ(s.OnData("SSH-2.0-OpenSSH_9.2p1"), State::kReading);
  EXPECT_EQ(s.OnData(" Debian-2\r"), State::kReading);
  EXPECT_EQ(s.OnData("\n"), State::kDone);
}

TEST(BannerSession, MultiLineGreetingEndsWithTheSpaceLine) {
  BannerSession s({}, 25);
  EXPECT_EQ(s.OnData("220-mx.example.org ESMTP\r\n"), State::kReading);
  EXPECT_EQ(s.OnData("220-more text\r\n"), State::kReading);
  EXPECT_EQ(s.OnData("some FTP servers put plain lines in between\r\n"), State::kReading);
  EXPECT_EQ(s.OnData("220 ready"), State::kReading);  // not yet a full line
  EXPECT_EQ(s.OnData("\r\n"), State::kDone);
}

TEST(BannerSession, HttpWaitsForTheEndOfHeaders) {
  BannerSession s({}, 80);
  EXPECT_EQ(s.OnData("HTTP/1.1 301 Moved Permanently\r\n"), State::kReading);
  EXPECT_EQ(s.OnData("Location: https://example.org/\r\n"), State::kReading);
  EXPECT_EQ(s.OnData("\r\n"), State::kDone);
  EXPECT_EQ(GuessService(s.Finish().bytes), "http");
}

TEST(BannerSession, NonHttpAnswerOnAnHttpPortUsesLineRules) {
  Fed f = Feed("SSH-2.0-dropbear_2022.83\r\n", 8080);
  EXPECT_EQ(f.last, State::kDone);
  EXPECT_EQ(GuessService(f.evidence.bytes), "ssh");
  EXPECT_NE(f.evidence.request, "");
}

TEST(BannerSession, MySqlWaitsForTheWholePacket) {
  BannerSession s({}, 3306);
  EXPECT_EQ(s.OnData(std::string_view(kMySql8Greeting).substr(0, 77)), State::kReading);
  EXPECT_EQ(s.OnData(std::string_view(kMySql8Greeting).substr(77)), State::kDone);
}

TEST(BannerSession, MySqlRefusal) {
  std::string payload = "\xff\x6a\x04Host '192.0.2.9' is not allowed to connect to this MySQL server"s;
  std::string packet = std::string(1, static_cast<char>(payload.size())) + "\x00\x00\x00"s + payload;
  Fed f = Feed(packet, 3306, 1);
  EXPECT_EQ(f.done_after, packet.size());
  EXPECT_EQ(GuessService(packet), "mysql");
}

TEST(BannerSession, EndlessBannerIsBoundedAndTruncated) {
  const std::string endless(1 << 20, 'A');  // 1 MiB without a newline
  Fed whole = Feed(endless, 7777);
  EXPECT_EQ(whole.evidence.bytes.size(), kMaxBannerBytes);
  EXPECT_TRUE(whole.evidence.truncated);
  EXPECT_EQ(whole.last, State::kDone);

  Fed chunked = Feed(endless, 7777, 4096);
  EXPECT_EQ(chunked.evidence.bytes, whole.evidence.bytes);
  EXPECT_TRUE(chunked.evidence.truncated);
  EXPECT_EQ(chunked.done_after, 4096u);

  Fed bytewise = Feed(endless.substr(0, 3000), 7777, 1);
  EXPECT_EQ(bytewise.evidence.bytes.size(), kMaxBannerBytes);
  EXPECT_TRUE(bytewise.evidence.truncated);
  EXPECT_EQ(bytewise.done_after, kMaxBannerBytes + 1);  // the first byte that did not fit
}

TEST(BannerSession, ExactlyFullIsNotTruncated) {
  BannerConfig cfg;
  cfg.max_bytes = 10;
  BannerSession s(cfg, 7777);
  EXPECT_EQ(s.OnData("0123456789"), State::kReading);
  EXPECT_EQ(s.OnEof(), State::kDone);
  BannerEvidence e = s.Finish();
  EXPECT_EQ(e.bytes, "0123456789");
  EXPECT_FALSE(e.truncated);
}

TEST(BannerSession, SmallMaxBytes) {
  BannerConfig cfg;
  cfg.max_bytes = 8;
  Fed f = Feed("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 22, 0, cfg);
  EXPECT_EQ(f.evidence.bytes, "SSH-2.0-");
  EXPECT_TRUE(f.evidence.truncated);
  EXPECT_EQ(f.last, State::kDone);
}

TEST(BannerSession, BinaryGarbageIsHarmless) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::string junk(rng() % 4000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{13}}) {
      Fed f = Feed(junk, static_cast<uint16_t>(rng()), chunk);
      ASSERT_LE(f.evidence.bytes.size(), kMaxBannerBytes);
      ASSERT_EQ(f.evidence.bytes, junk.substr(0, kMaxBannerBytes));
      ASSERT_EQ(f.evidence.truncated, junk.size() > kMaxBannerBytes);
      GuessService(f.evidence.bytes);
      std::string esc = EscapeBytes(f.evidence.bytes);
      ASSERT_LE(esc.size(), f.evidence.bytes.size() * 4);
      for (char c : esc) ASSERT_TRUE(c >= 0x20 && c <= 0x7e) << int(c);
    }
  }
}

TEST(BannerSession, EmptyBannerThenEof) {
  BannerSession s({}, 22);
  EXPECT_EQ(s.TakeOutput(), "");
  EXPECT_EQ(s.OnEof(), State::kDone);
  BannerEvidence e = s.Finish();
  EXPECT_EQ(e.bytes, "");
  EXPECT_FALSE(e.truncated);
  EXPECT_EQ(e.error, "");
  EXPECT_EQ(GuessService(e.bytes), "");
}

TEST(BannerSession, FinishCarriesTheDriversError) {
  BannerSession s({}, 23);
  EXPECT_EQ(s.OnData("\xff\xfd\x18"), State::kReading);
  BannerEvidence e = s.Finish("timeout");
  EXPECT_EQ(e.error, "timeout");
  EXPECT_EQ(e.bytes, "\xff\xfd\x18");
}

TEST(GuessService, Rules) {
  EXPECT_EQ(GuessService("SSH-1.99-Cisco-1.25\r\n"), "ssh");
  EXPECT_EQ(GuessService("220 mail.example.org\r\n"), "smtp");
  EXPECT_EQ(GuessService("220 smtp.example.org ESMTP Sendmail 8.17.1\r\n"), "smtp");
  EXPECT_EQ(GuessService("220-mx.example.org\r\n220-Exim ESMTP here\r\n220 go ahead\r\n"), "smtp");
  EXPECT_EQ(GuessService("220 Microsoft FTP Service\r\n"), "ftp");
  EXPECT_EQ(GuessService("220-FileZilla Server 1.7.0\r\n220 Please visit https://filezilla-project.org/\r\n"), "ftp");
  EXPECT_EQ(GuessService("220 ProFTPD Server (mail.example.org)\r\n"), "ftp");  // FTP before weak "mail"
  EXPECT_EQ(GuessService("220 welcome\r\n"), "");
  EXPECT_EQ(GuessService("* OK IMAP4rev1 Service Ready\r\n"), "imap");
  EXPECT_EQ(GuessService("* OK ready\r\n"), "imap");
  EXPECT_EQ(GuessService("HTTP/2 200\r\n\r\n"), "http");
  EXPECT_EQ(GuessService("HTTP/1.0 400 Bad Request\r\n\r\n"), "http");
  EXPECT_EQ(GuessService("-ERR unknown command 'GET'\r\n"), "redis");
  EXPECT_EQ(GuessService("+PONG\r\n"), "redis");
  EXPECT_EQ(GuessService("RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"), "rtsp");
  EXPECT_EQ(GuessService("<?xml version='1.0'?><stream:stream xmlns='jabber:client'>"), "xmpp");
  EXPECT_EQ(GuessService("<?xml version='1.0'?><doc/>"), "");
  EXPECT_EQ(GuessService("\xff\xfb\x01"), "telnet");
  EXPECT_EQ(GuessService(""), "");
  EXPECT_EQ(GuessService("hello\r\n"), "");
  EXPECT_EQ(GuessService("E rror"), "");
  EXPECT_EQ(GuessService(kMySql8Greeting.substr(0, 12)), "mysql");  // version already complete
  EXPECT_EQ(GuessService(kMySql8Greeting.substr(0, 11)), "");        // version cut short
  std::string bad_version = kMySql8Greeting;
  bad_version[6] = '\x01';
  EXPECT_EQ(GuessService(bad_version), "");
}

TEST(EscapeBytes, ExactStrings) {
  EXPECT_EQ(EscapeBytes(""), "");
  EXPECT_EQ(EscapeBytes("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), "SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n");
  EXPECT_EQ(EscapeBytes("a\tb"), "a\\tb");
  EXPECT_EQ(EscapeBytes("C:\\dir"), "C:\\\\dir");
  EXPECT_EQ(EscapeBytes("\x00\x01\x1f\x7f\x80\xff"s), "\\x00\\x01\\x1f\\x7f\\x80\\xff");
  EXPECT_EQ(EscapeBytes(" ~"), " ~");
  EXPECT_EQ(EscapeBytes("\xc3\xa9"), "\\xc3\\xa9");
  EXPECT_EQ(EscapeBytes(kMySql8Greeting.substr(0, 12)), "J\\x00\\x00\\x00\\n8.0.35\\x00");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  std::string esc = EscapeBytes(all);
  EXPECT_LE(esc.size(), all.size() * 4);
  EXPECT_EQ(esc.find('\n'), std::string::npos);
  EXPECT_EQ(esc.find('\r'), std::string::npos);
}

}  // namespace
}  // namespace ndo
