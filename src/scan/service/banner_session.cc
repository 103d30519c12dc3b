#include "scan/service/banner_session.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "base/hex.h"

namespace ndo {
namespace {

constexpr std::array<uint16_t, 15> kHttpPorts = {80,   81,   591,  3000, 5000, 5601, 8000, 8008,
                                                 8080, 8081, 8088, 8888, 9000, 9090, 9200};

// A Host header value we are willing to send: host names, IPv4 and bracketed
// IPv6 literals only. Anything else (control bytes, spaces, CR/LF that could
// inject headers) means no Host header at all.
bool IsSafeHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == ':' || c == '[' || c == ']';
  });
}

std::string HttpRequest(std::string_view host) {
  std::string r = "GET / HTTP/1.0\r\n";
  if (IsSafeHost(host)) {
    r += "Host: ";
    r += host;
    r += "\r\n";
  }
  r += "User-Agent: ndo/0.1\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  return r;
}

uint8_t Byte(std::string_view b, size_t i) { return static_cast<uint8_t>(b[i]); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view FirstLine(std::string_view b) {
  size_t nl = b.find('\n');
  return nl == std::string_view::npos ? b : b.substr(0, nl);
}

bool ContainsNoCase(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

// MySQL/MariaDB first packet: 3-byte little-endian payload length, sequence
// number 0, then the protocol byte (10 for the handshake, 0xff for an error
// such as "Host ... is not allowed to connect"). Returns the payload length,
// or 0 when `b` does not start like one (needs 5 bytes).
size_t MySqlPacketLength(std::string_view b) {
  if (b.size() < 5 || Byte(b, 3) != 0) return 0;
  if (Byte(b, 4) != 0x0a && Byte(b, 4) != 0xff) return 0;
  return Byte(b, 0) | (Byte(b, 1) << 8) | (static_cast<size_t>(Byte(b, 2)) << 16);
}

// PostgreSQL ErrorResponse: 'E', then a 4-byte big-endian length that counts
// itself but not the type byte. Returns that length, or 0 (needs 5 bytes).
size_t PostgresMessageLength(std::string_view b) {
  if (b.size() < 5 || b[0] != 'E' || b[1] != 0 || b[2] != 0) return 0;
  return (static_cast<size_t>(Byte(b, 3)) << 8) | Byte(b, 4);
}

// Is the banner received so far complete? Decided from the bytes alone, so
// the answer does not depend on how the network split them (the buffer only
// grows, and every rule is monotonic in it).
bool BannerComplete(std::string_view b) {
  if (b.empty()) return false;
  // HTTP (and RTSP) responses: the status line and headers, up to the blank
  // line. The body, if any came in the same reads, is kept but not waited for.
  for (std::string_view proto : {std::string_view("HTTP/"), std::string_view("RTSP/")}) {
    if (b.size() < proto.size() && proto.starts_with(b)) return false;  // undecided yet
    if (b.starts_with(proto)) return b.find("\r\n\r\n") != std::string_view::npos ||
                                     b.find("\n\n") != std::string_view::npos;
  }
  // Length-prefixed binary greetings: complete when the first packet is.
  if (size_t len = MySqlPacketLength(b); len > 0) return b.size() >= 4 + len;
  if (size_t len = PostgresMessageLength(b); len >= 4) return b.size() >= 1 + len;
  // Too short to tell a binary header from text: a NUL or a control byte up
  // front (a MySQL length of 10 is a '\n') means wait for more.
  if (b.size() < 5 && (b.find('\0') != std::string_view::npos || Byte(b, 0) < 0x20)) return false;

  // Line protocols: the first full line, unless it is a multi-line reply
  // ("220-..." in SMTP and FTP), which ends with the line "220 ..." (same code).
  size_t nl = b.find('\n');
  if (nl == std::string_view::npos) return false;
  if (nl >= 4 && IsDigit(b[0]) && IsDigit(b[1]) && IsDigit(b[2]) && b[3] == '-') {
    std::string_view code = b.substr(0, 3);
    for (size_t start = nl + 1; start < b.size();) {
      size_t end = b.find('\n', start);
      if (end == std::string_view::npos) return false;  // last line not complete yet
      std::string_view line = b.substr(start, end - start);
      if (line.starts_with(code) && (line.size() == 3 || line[3] == ' ' || line[3] == '\r')) return true;
      start = end + 1;
    }
    return false;
  }
  return true;
}

// --- Service guessing ---------------------------------------------------------

bool Starts(std::string_view b, std::string_view p) { return b.starts_with(p); }

// The text of an SMTP/FTP "220" greeting worth searching: the first line, or
// every line of a multi-line ("220-") greeting.
std::string_view GreetingText(std::string_view b) {
  if (!Starts(b, "220 ") && !Starts(b, "220-") && b != "220") return {};
  return Starts(b, "220-") ? b : FirstLine(b);
}

bool AnyNoCase(std::string_view text, std::initializer_list<std::string_view> words) {
  return std::any_of(words.begin(), words.end(), [&](std::string_view w) { return ContainsNoCase(text, w); });
}

bool IsMySqlGreeting(std::string_view b) {
  size_t len = MySqlPacketLength(b);
  if (len < 2 || Byte(b, 4) != 0x0a) return false;
  // The server version: printable, NUL-terminated, inside the packet.
  std::string_view payload = b.substr(5, std::min(b.size(), 4 + len) - 5);
  size_t nul = payload.find('\0');
  if (nul == 0 || nul == std::string_view::npos) return false;
  return std::all_of(payload.begin(), payload.begin() + nul, [](char c) { return c >= 0x20 && c < 0x7f; });
}

bool IsMySqlError(std::string_view b) {
  size_t len = MySqlPacketLength(b);
  if (len < 3 || Byte(b, 4) != 0xff) return false;
  return ContainsNoCase(b, "mysql") || ContainsNoCase(b, "mariadb");
}

struct GuessRule {
  const char* service;
  bool (*match)(std::string_view banner);
};

// First match wins. The order matters where rules overlap:
//  - FTP comes before SMTP's weak "mail" clue ("220 ProFTPD on mail.example.org"
//    is FTP), but after SMTP's strong clues (an MTA that names itself).
//  - The binary MySQL rules come before telnet (a 255-byte MySQL packet would
//    start with 0xff too) and before the text rules.
//  - Every other rule keys on a distinct leading token, so its place is free.
constexpr GuessRule kGuessRules[] = {
    // OpenSSH and every other SSH server: the identification string (RFC 4253).
    {"ssh", [](std::string_view b) { return Starts(b, "SSH-"); }},
    // A response to our GET (or a server that talks HTTP on a non-HTTP port).
    {"http", [](std::string_view b) { return Starts(b, "HTTP/1.") || Starts(b, "HTTP/2"); }},
    // RTSP responses look like HTTP's, with their own version token.
    {"rtsp", [](std::string_view b) { return Starts(b, "RTSP/1.0"); }},
    // VNC: the RFB protocol version, "RFB 003.008\n".
    {"vnc", [](std::string_view b) { return Starts(b, "RFB "); }},
    // MySQL / MariaDB handshake: protocol 10, then the version string.
    {"mysql", IsMySqlGreeting},
    // MySQL / MariaDB refusing us up front ("Host ... is not allowed to connect").
    {"mysql", IsMySqlError},
    // PostgreSQL ErrorResponse ('E', int32 length, "SFATAL" field).
    {"postgresql",
     [](std::string_view b) { return b.size() > 5 && b[0] == 'E' && b[1] == 0 && b.find("SFATAL") != b.npos; }},
    // SMTP, strong clues: the MTA says what it is in its 220 greeting.
    {"smtp",
     [](std::string_view b) { return AnyNoCase(GreetingText(b), {"SMTP", "Postfix", "Exim", "Sendmail"}); }},
    // FTP: vsFTPd, ProFTPD, Pure-FTPd, "Microsoft FTP Service", FileZilla.
    {"ftp", [](std::string_view b) { return AnyNoCase(GreetingText(b), {"FTP", "FileZilla"}); }},
    // SMTP, weak clue: a mail host's 220 greeting that names no software.
    {"smtp", [](std::string_view b) { return AnyNoCase(GreetingText(b), {"mail"}); }},
    // POP3 (RFC 1939) greeting.
    {"pop3", [](std::string_view b) { return Starts(b, "+OK"); }},
    // IMAP (RFC 9051) untagged greeting, with or without "IMAP" in it.
    {"imap", [](std::string_view b) { return Starts(b, "* OK") || Starts(b, "* PREAUTH"); }},
    // Redis answering (protected mode, AUTH required, or a PING).
    {"redis",
     [](std::string_view b) {
       return Starts(b, "-ERR") || Starts(b, "-NOAUTH") || Starts(b, "-DENIED") || Starts(b, "+PONG");
     }},
    // Telnet: option negotiation starts with IAC (0xff).
    {"telnet", [](std::string_view b) { return !b.empty() && Byte(b, 0) == 0xff; }},
    // XMPP: an XML prolog and a stream header.
    {"xmpp", [](std::string_view b) { return Starts(b, "<?xml") && b.find("stream") != b.npos; }},
};

}  // namespace

bool IsHttpPort(uint16_t port) { return std::find(kHttpPorts.begin(), kHttpPorts.end(), port) != kHttpPorts.end(); }

BannerSession::BannerSession(BannerConfig config, uint16_t port) : config_(std::move(config)), port_(port) {
  if (IsHttpPort(port_)) request_ = HttpRequest(config_.http_host);
  evidence_.request = request_;
}

std::string BannerSession::TakeOutput() {
  if (sent_) return "";
  sent_ = true;
  return request_;
}

BannerSession::State BannerSession::OnData(std::string_view bytes) {
  std::string& buf = evidence_.bytes;
  size_t room = config_.max_bytes > buf.size() ? config_.max_bytes - buf.size() : 0;
  buf.append(bytes.substr(0, std::min(room, bytes.size())));
  if (bytes.size() > room) {
    evidence_.truncated = true;
    state_ = State::kDone;
  }
  if (state_ == State::kReading && BannerComplete(buf)) state_ = State::kDone;
  return state_;
}

BannerSession::State BannerSession::OnEof() {
  state_ = State::kDone;
  return state_;
}

BannerEvidence BannerSession::Finish(const std::string& error) {
  state_ = State::kDone;
  evidence_.error = error;
  return evidence_;
}

std::string GuessService(std::string_view banner) {
  for (const GuessRule& r : kGuessRules)
    if (r.match(banner)) return r.service;
  return "";
}

std::string EscapeBytes(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    auto c = static_cast<uint8_t>(ch);
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c >= 0x20 && c <= 0x7e) {
          out += static_cast<char>(c);
        } else {
          out += "\\x";
          AppendHexByte(out, c);
        }
    }
  }
  return out;
}

}  // namespace ndo
