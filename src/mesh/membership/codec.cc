#include "mesh/membership/codec.h"

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>

#include "mesh/membership/capnp_io.h"
#include "mesh/membership/scan_policy.h"
#include "mesh/membership/wire.capnp.h"

// Encoding choice: datagrams are PACKED, push-pull bodies are not.
//  - A datagram must fit kMaxDatagramBytes, and the updates it piggybacks are
//    what spreads membership news: packing drops the zero bytes of small
//    numbers, unset ids, padding and pointers, so about twice as many updates
//    fit (a typical update packs to ~75 bytes instead of 144: 13 to 15 per
//    datagram instead of 7).
//    Unpacking (see Unpack) writes into an aligned buffer of a fixed size,
//    so unaligned input is fine and what a datagram expands to is bounded.
//  - A push-pull body is one occasional stream frame where bytes matter little,
//    and the flat layout lets the reader work in place on an aligned copy of
//    the input: what it allocates and traverses is bounded by what was
//    received, with no unpacking amplification to reason about.

namespace ndo::mesh {
namespace {

// Cap'n Proto objects are made of 8-byte words.
constexpr size_t kWord = sizeof(capnp::word);

// Words of a text of n bytes: its bytes, a NUL, padding; nothing when empty
// (an empty text is left as a null pointer).
constexpr size_t TextWords(size_t n) { return n == 0 ? 0 : (n + 1 + kWord - 1) / kWord; }

// The largest valid update: a list element (4 data words, 1 pointer), its
// member info (4 data words, 4 pointers), three texts and the policy.
constexpr size_t kMaxUpdateWords = 5 + 8 + TextWords(kMaxNameBytes) + TextWords(kMaxVantageBytes) +
                                   TextWords(kMaxAddressBytes) + (kMaxPolicyBytes + kWord - 1) / kWord;

// The largest valid payload: its pointer in the list (a list of pointers has
// no tag word) and its bytes, padded to a word (no NUL: it is Data).
constexpr size_t kMaxPayloadWords = 1 + (kMaxPayloadBytes + kWord - 1) / kWord;

// What a datagram may unpack to. The largest valid one is below: root
// pointer, 5 data and 3 pointer words, the target address, the update list's
// tag, kMaxUpdatesPerDatagram maximal updates, kMaxPayloadsPerDatagram
// maximal payloads (2803 words with today's limits). Such a message packs to
// far more than kMaxDatagramBytes unless it is mostly zeros, but zeros are
// what payloads may well be: every valid message must still fit. The encoder
// builds in a single segment of this size, which the size bounds rely on (one
// segment-table word, no far pointers, offsets below 2^14 words).
constexpr size_t kMaxDatagramWords = 3072;
static_assert(1 + 8 + TextWords(kMaxAddressBytes) + 1 + kMaxUpdatesPerDatagram * kMaxUpdateWords +
                  kMaxPayloadsPerDatagram * kMaxPayloadWords <=
              kMaxDatagramWords);

// A push-pull body: a valid state always fits (segment table, root pointer,
// 3 data and 1 pointer words, list tag, kMaxStateMembers maximal updates).
constexpr size_t kMaxStreamWords = kMaxStreamBytes / kWord;
static_assert(1 + 5 + 1 + kMaxStateMembers * kMaxUpdateWords <= kMaxStreamWords);

// Our schema nests 4 deep (message, update list, member info, text) and has
// no recursion; the limit is a backstop.
constexpr int kNestingLimit = 8;

static_assert(static_cast<uint16_t>(wire::Message::Type::PING) == static_cast<uint8_t>(Message::Type::kPing));
static_assert(static_cast<uint16_t>(wire::Message::Type::ACK) == static_cast<uint8_t>(Message::Type::kAck));
static_assert(static_cast<uint16_t>(wire::Message::Type::PING_REQ) == static_cast<uint8_t>(Message::Type::kPingReq));
static_assert(static_cast<uint16_t>(wire::Message::Type::NACK) == static_cast<uint8_t>(Message::Type::kNack));
static_assert(static_cast<uint16_t>(wire::Message::Type::GOSSIP) == static_cast<uint8_t>(Message::Type::kGossip));
static_assert(static_cast<uint16_t>(wire::Update::Kind::ALIVE) == static_cast<uint8_t>(Update::Kind::kAlive));
static_assert(static_cast<uint16_t>(wire::Update::Kind::SUSPECT) == static_cast<uint8_t>(Update::Kind::kSuspect));
static_assert(static_cast<uint16_t>(wire::Update::Kind::DEAD) == static_cast<uint8_t>(Update::Kind::kDead));
static_assert(static_cast<uint16_t>(wire::Update::Kind::LEFT) == static_cast<uint8_t>(Update::Kind::kLeft));
constexpr unsigned kLastType = static_cast<unsigned>(Message::Type::kGossip);
constexpr unsigned kLastKind = static_cast<unsigned>(Update::Kind::kLeft);

std::string Num(size_t n) { return std::to_string(n); }


// Why a text field is unacceptable, or empty if it is fine. NUL bytes are
// refused: nothing legitimate holds one, and it would cut the text short
// wherever it ends up as a C string.
std::string TextProblem(std::string_view s, size_t max, const char* field) {
  if (s.size() > max) return std::string(field) + " longer than " + Num(max) + " bytes (" + Num(s.size()) + ")";
  if (s.find('\0') != std::string_view::npos) return std::string(field) + " contains a NUL byte";
  return {};
}

// Why a payload is unacceptable, or empty if it is fine. Any bytes are: the
// layer above owns their meaning. Empty ones are refused, as nothing would
// tell them from a null pointer.
std::string PayloadProblem(size_t size) {
  if (size == 0) return "empty payload";
  if (size > kMaxPayloadBytes) return "payload longer than " + Num(kMaxPayloadBytes) + " bytes (" + Num(size) + ")";
  return {};
}

// ---------------------------------------------------------------------------
// Encoding.

Status ValidateUpdate(const Update& u) {
  if (static_cast<unsigned>(u.kind) > kLastKind)
    return Status::InvalidArgument("unknown update kind " + Num(static_cast<unsigned>(u.kind)));
  if (!u.info) return Status::InvalidArgument("update without member info");
  if (u.info->id.empty()) return Status::InvalidArgument("update without member id");
  return ValidateMemberInfo(*u.info);
}

Status ValidateUpdates(const std::vector<Update>& updates, size_t max, const char* what) {
  if (updates.size() > max)
    return Status::InvalidArgument(Num(updates.size()) + " " + what + ", above the limit of " + Num(max));
  for (size_t i = 0; i < updates.size(); ++i)
    if (Status s = ValidateUpdate(updates[i]); !s.ok()) return s.WithContext("update " + Num(i));
  return Status::Ok();
}

Status ValidateMessage(const Message& m) {
  if (static_cast<unsigned>(m.type) > kLastType)
    return Status::InvalidArgument("unknown message type " + Num(static_cast<unsigned>(m.type)));
  if (m.sender.empty()) return Status::InvalidArgument("message without sender id");
  if (auto p = TextProblem(m.target_address, kMaxAddressBytes, "target address"); !p.empty())
    return Status::InvalidArgument(p);
  if (Status s = ValidateUpdates(m.updates, kMaxUpdatesPerDatagram, "updates"); !s.ok()) return s;
  if (m.payloads.size() > kMaxPayloadsPerDatagram)
    return Status::InvalidArgument(Num(m.payloads.size()) + " payloads, above the limit of " +
                                   Num(kMaxPayloadsPerDatagram));
  for (size_t i = 0; i < m.payloads.size(); ++i)
    if (auto p = PayloadProblem(m.payloads[i].size()); !p.empty())
      return Status::InvalidArgument("payload " + Num(i) + ": " + p);
  return Status::Ok();
}

// Empty texts stay null pointers: smaller, and read back as "".
template <typename SetFn>
void SetText(const std::string& s, SetFn set) {
  if (!s.empty()) set(capnp::Text::Reader(s.c_str(), s.size()));
}

void WriteUpdate(wire::Update::Builder b, const Update& u) {
  b.setKind(static_cast<wire::Update::Kind>(u.kind));
  b.setIncarnation(u.incarnation);
  b.setFromHi(u.from.hi);
  b.setFromLo(u.from.lo);
  const MemberInfo& info = *u.info;
  // The texts go right after the struct (see PackedBound::TextPointer).
  auto ib = b.initInfo();
  ib.setIdHi(info.id.hi);
  ib.setIdLo(info.id.lo);
  SetText(info.name, [&](capnp::Text::Reader t) { ib.setName(t); });
  SetText(info.vantage, [&](capnp::Text::Reader t) { ib.setVantage(t); });
  SetText(info.address, [&](capnp::Text::Reader t) { ib.setAddress(t); });
  ib.setPriority(info.priority);
  ib.setEpoch(info.epoch);
  // After the texts (see UpdateSizeBound); none stays a null pointer.
  if (!info.allow.empty()) {
    std::string allow = EncodeScanPolicy(info.allow);
    ib.setAllow(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(allow.data()), allow.size()));
  }
}

void WriteUpdates(capnp::List<wire::Update>::Builder list, const std::vector<Update>& updates) {
  for (size_t i = 0; i < updates.size(); ++i) WriteUpdate(list[static_cast<unsigned>(i)], updates[i]);
}

// Each payload's bytes follow the list, in order (see PayloadSizeBound).
void WritePayloads(capnp::List<capnp::Data>::Builder list, const std::vector<std::string>& payloads) {
  for (size_t i = 0; i < payloads.size(); ++i) {
    const std::string& p = payloads[i];
    list.set(static_cast<unsigned>(i), capnp::Data::Reader(reinterpret_cast<const kj::byte*>(p.data()), p.size()));
  }
}

// ---------------------------------------------------------------------------
// Decoding. Every reader call may throw on malformed input; callers run these
// under Guarded.

Status ReadText(capnp::Text::Reader t, size_t max, const char* field, std::string& out) {
  // Checked before copying: the length is the wire's claim, bounded only by
  // the traversal limit so far.
  if (auto p = TextProblem(std::string_view(t.begin(), t.size()), max, field); !p.empty())
    return Status::Corruption(p);
  out.assign(t.begin(), t.size());
  return Status::Ok();
}

Status ReadUpdate(wire::Update::Reader r, Update& out) {
  auto kind = static_cast<unsigned>(r.getKind());
  if (kind > kLastKind) return Status::Corruption("unknown update kind " + Num(kind));
  if (!r.hasInfo()) return Status::Corruption("update without member info");
  auto ir = r.getInfo();
  auto info = std::make_shared<MemberInfo>();
  info->id = {ir.getIdHi(), ir.getIdLo()};
  if (info->id.empty()) return Status::Corruption("update without member id");
  if (Status s = ReadText(ir.getName(), kMaxNameBytes, "name", info->name); !s.ok()) return s;
  if (Status s = ReadText(ir.getVantage(), kMaxVantageBytes, "vantage", info->vantage); !s.ok()) return s;
  if (Status s = ReadText(ir.getAddress(), kMaxAddressBytes, "address", info->address); !s.ok()) return s;
  info->priority = ir.getPriority();
  info->epoch = ir.getEpoch();
  auto allow = ir.getAllow();
  auto policy = DecodeScanPolicy(std::string_view(reinterpret_cast<const char*>(allow.begin()), allow.size()));
  if (!policy.ok()) return policy.status();
  info->allow = std::move(*policy);
  out.kind = static_cast<Update::Kind>(kind);
  out.info = std::move(info);
  out.incarnation = r.getIncarnation();
  out.from = {r.getFromHi(), r.getFromLo()};
  return Status::Ok();
}

Status ReadUpdates(capnp::List<wire::Update>::Reader list, size_t max, const char* what, std::vector<Update>& out) {
  if (list.size() > max)
    return Status::Corruption(Num(list.size()) + " " + what + ", above the limit of " + Num(max));
  out.resize(list.size());
  for (unsigned i = 0; i < list.size(); ++i)
    if (Status s = ReadUpdate(list[i], out[i]); !s.ok()) return s.WithContext("update " + Num(i));
  return Status::Ok();
}

Status ReadPayloads(capnp::List<capnp::Data>::Reader list, std::vector<std::string>& out) {
  if (list.size() > kMaxPayloadsPerDatagram)
    return Status::Corruption(Num(list.size()) + " payloads, above the limit of " + Num(kMaxPayloadsPerDatagram));
  out.reserve(list.size());
  for (unsigned i = 0; i < list.size(); ++i) {
    capnp::Data::Reader d = list[i];
    // Checked before copying, as texts are.
    if (auto p = PayloadProblem(d.size()); !p.empty()) return Status::Corruption("payload " + Num(i) + ": " + p);
    out.emplace_back(reinterpret_cast<const char*>(d.begin()), d.size());
  }
  return Status::Ok();
}

Status ReadMessage(wire::Message::Reader r, Message& out) {
  auto type = static_cast<unsigned>(r.getType());
  if (type > kLastType) return Status::Corruption("unknown message type " + Num(type));
  out.type = static_cast<Message::Type>(type);
  out.sender = {r.getSenderHi(), r.getSenderLo()};
  if (out.sender.empty()) return Status::Corruption("message without sender id");
  out.seq = r.getSeq();
  out.target = {r.getTargetHi(), r.getTargetLo()};
  if (Status s = ReadText(r.getTargetAddress(), kMaxAddressBytes, "target address", out.target_address); !s.ok())
    return s;
  if (Status s = ReadUpdates(r.getUpdates(), kMaxUpdatesPerDatagram, "updates", out.updates); !s.ok()) return s;
  return ReadPayloads(r.getPayloads(), out.payloads);
}

// Undoes Cap'n Proto's packing (capnp/serialize-packed.c++: per word a tag
// byte, whose bits say which bytes follow; a 0x00 tag is followed by a count
// of further zero words, a 0xff tag by a count of further words copied raw)
// into `out`, which is aligned and bounds what the input may unpack to: a run
// of zero words packs 2048 bytes into 2. Done here rather than with
// capnp::PackedMessageReader, which reads segments lazily and, given a
// malformed multi-segment message, logs from its destructor.
Result<kj::ArrayPtr<const capnp::word>> Unpack(std::string_view in, kj::ArrayPtr<capnp::word> out) {
  auto too_long = [&] {
    return Status::Corruption("datagram unpacks to more than " + Num(out.size()) + " words");
  };
  kj::byte* dst = out.asBytes().begin();
  size_t i = 0, words = 0;
  while (i < in.size()) {
    if (words == out.size()) return too_long();
    uint8_t tag = static_cast<uint8_t>(in[i++]);
    kj::byte* word = dst + words * kWord;
    for (size_t b = 0; b < kWord; ++b) {
      if (!(tag & (1u << b))) {
        word[b] = 0;
        continue;
      }
      if (i == in.size()) return Status::Corruption("packed word cut short");
      word[b] = static_cast<kj::byte>(in[i++]);
    }
    ++words;
    if (tag != 0 && tag != 0xff) continue;
    if (i == in.size()) return Status::Corruption("packed run without its length");
    size_t run = static_cast<uint8_t>(in[i++]);
    if (run > out.size() - words) return too_long();
    if (tag == 0) {
      std::memset(dst + words * kWord, 0, run * kWord);
    } else {
      if (in.size() - i < run * kWord) return Status::Corruption("packed raw run cut short");
      std::memcpy(dst + words * kWord, in.data() + i, run * kWord);
      i += run * kWord;
    }
    words += run;
  }
  return kj::ArrayPtr<const capnp::word>(out.begin(), words);
}

// Reads a flat (unpacked) message with bounded traversal and nesting, and
// insists that it fills `words` exactly.
template <typename ReadFn>
Status ReadFlat(kj::ArrayPtr<const capnp::word> words, size_t traversal_limit, const char* what, ReadFn&& read) {
  return CapnpGuarded(&Status::Corruption, what, [&]() -> Status {
    capnp::ReaderOptions options;
    // A valid message traverses each of its words once; twice as many
    // leaves room without letting shared pointers multiply the work.
    options.traversalLimitInWords = traversal_limit;
    options.nestingLimit = kNestingLimit;
    capnp::FlatArrayMessageReader reader(words, options);
    if (reader.getEnd() != words.end())
      return Status::Corruption(Num((words.end() - reader.getEnd()) * kWord) + " bytes after the message");
    return read(static_cast<capnp::MessageReader&>(reader));
  });
}

// ---------------------------------------------------------------------------
// Size bounds.
//
// Packing (capnp/serialize-packed.c++) writes each word as a tag byte
// followed by its nonzero bytes, except that
//  - an all-zero word's tag is followed by a count of the zero words after
//    it, which are then skipped: 2 bytes for the whole run;
//  - an all-nonzero word (8 bytes after its tag) is followed by a count of
//    the words after it holding at most one zero byte, copied raw (8 bytes
//    each), up to 255 of them.
// So a word with z zero bytes costs at most 2 if z == 8, 9 - z if
// 2 <= z <= 7, 8 if z <= 1, plus 2 bytes for each all-nonzero word that opens
// a raw run. A raw run extends over every following word with at most one
// zero byte: within a stretch of such words, only the first all-nonzero word
// opens one (a run is cut short only after 255 raw words, 2040 bytes: the
// bound then exceeds a datagram anyway). Where two objects' words may be adjacent,
// merging their stretches only removes run openings: a bound computed per
// object holds for the message.
// Likewise, consecutive all-zero words known to be adjacent (a payload of
// zeros) cost 2 bytes per 256: counted from the first one of an object, a
// stretch of n holds at most ceil(n / 256) of the packer's run starts,
// wherever its runs began.
class PackedBound {
 public:
  // A word whose value is known.
  void Word(uint64_t w) {
    int z = 0;
    for (int i = 0; i < 8; ++i) z += ((w >> (8 * i)) & 0xff) == 0;
    Exact(z);
  }
  // A word whose value is not known in advance but holds at least z >= 2
  // zero bytes (pointers, the segment table).
  void AtLeastZeros(int z) { Exact(std::max(z, 2)); }
  // A pointer: null (all zero) or, in a datagram, with at least 4 zero bytes
  // (offsets below 2^14 words, sizes and counts below 2^13: the two high
  // bytes of the offset half and one byte of each 16-bit size field, or the
  // top two bytes of a list's count, are zero).
  void Pointer(bool null) { AtLeastZeros(null ? 8 : 4); }
  // A pointer to a text of n bytes, which the encoder sets right after the
  // struct holding the pointer (or the previous text of that struct), so the
  // offset is below 64 words and fits one byte; the byte count plus the NUL,
  // shifted by 3, takes one byte up to 31 and two beyond.
  void TextPointer(size_t n) {
    if (n == 0) return AtLeastZeros(8);
    AtLeastZeros(n + 1 <= 31 ? 6 : 5);
  }
  // The words of a non-empty text: its bytes, a NUL, zero padding. Texts are
  // allocated apart from the pointer to them.
  void Text(std::string_view s) { Blob(s, 1); }
  // The words of a Data blob: its bytes, zero padding (no NUL).
  void Data(std::string_view s) { Blob(s, 0); }
  // The next words start another object, not known to follow these.
  void Break() {
    run_open_ = false;
    zero_words_ = 0;
  }
  size_t bytes() const { return bytes_; }

 private:
  // The bytes of s, then `extra` zero bytes, padded to whole words.
  void Blob(std::string_view s, size_t extra) {
    if (s.empty()) return;
    Break();
    for (size_t at = 0; at < s.size() + extra; at += kWord) {
      int z = 0;
      for (size_t i = at; i < at + kWord; ++i) z += i >= s.size() || s[i] == '\0';
      Exact(z);
    }
  }
  void Exact(int z) {
    if (z == 8) {
      if (zero_words_++ % 256 == 0) bytes_ += 2;
      run_open_ = false;
      return;
    }
    zero_words_ = 0;
    if (z >= 2) {
      bytes_ += 9 - z;
      run_open_ = false;
      return;
    }
    bytes_ += 8;
    if (z == 0 && !run_open_) {
      bytes_ += 2;
      run_open_ = true;
    }
  }

  size_t bytes_ = 0;
  bool run_open_ = false;
  size_t zero_words_ = 0;  // all-zero words just before, in this object
};

}  // namespace

// ---------------------------------------------------------------------------

Status ValidateMemberInfo(const MemberInfo& info) {
  if (info.id.empty()) return Status::InvalidArgument("member without an id");
  if (auto p = TextProblem(info.name, kMaxNameBytes, "name"); !p.empty()) return Status::InvalidArgument(p);
  if (auto p = TextProblem(info.vantage, kMaxVantageBytes, "vantage"); !p.empty()) return Status::InvalidArgument(p);
  if (auto p = TextProblem(info.address, kMaxAddressBytes, "address"); !p.empty()) return Status::InvalidArgument(p);
  return CheckScanPolicy(info.allow);
}

Result<std::string> EncodeMessage(const Message& msg) {
  if (Status s = ValidateMessage(msg); !s.ok()) return s;
  std::string out;
  Status status = CapnpGuarded(&Status::InvalidArgument, "cannot encode datagram", [&]() -> Status {
    capnp::MallocMessageBuilder builder(kMaxDatagramWords);
    auto root = builder.initRoot<wire::Message>();
    root.setType(static_cast<wire::Message::Type>(msg.type));
    root.setSenderHi(msg.sender.hi);
    root.setSenderLo(msg.sender.lo);
    root.setSeq(msg.seq);
    root.setTargetHi(msg.target.hi);
    root.setTargetLo(msg.target.lo);
    // Before the updates: the size bounds count on a short text offset.
    SetText(msg.target_address, [&](capnp::Text::Reader t) { root.setTargetAddress(t); });
    if (!msg.updates.empty()) WriteUpdates(root.initUpdates(static_cast<unsigned>(msg.updates.size())), msg.updates);
    if (!msg.payloads.empty())
      WritePayloads(root.initPayloads(static_cast<unsigned>(msg.payloads.size())), msg.payloads);
    auto segments = builder.getSegmentsForOutput();
    // Cannot happen for a valid message (see kMaxDatagramWords), but the size
    // bounds assume a single segment.
    if (segments.size() != 1) return Status::InvalidArgument("datagram does not fit one segment");
    kj::VectorOutputStream stream(kMaxDatagramBytes + 64);
    capnp::writePackedMessage(stream, segments);
    auto packed = stream.getArray();
    if (packed.size() > kMaxDatagramBytes)
      return Status::InvalidArgument("message encodes to " + Num(packed.size()) + " bytes, above the " +
                                     Num(kMaxDatagramBytes) + "-byte datagram limit");
    out.assign(reinterpret_cast<const char*>(packed.begin()), packed.size());
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return out;
}

Result<Message> DecodeMessage(std::string_view bytes) {
  if (bytes.empty()) return Status::Corruption("empty datagram");
  if (bytes.size() > kMaxDatagramBytes) return Status::Corruption("datagram too large: " + Num(bytes.size()) + " bytes");
  auto buffer = kj::heapArray<capnp::word>(kMaxDatagramWords);
  auto words = Unpack(bytes, buffer);
  if (!words.ok()) return words.status();
  Message msg;
  Status status = ReadFlat(*words, 2 * words->size(), "malformed datagram", [&](capnp::MessageReader& reader) {
    return ReadMessage(reader.getRoot<wire::Message>(), msg);
  });
  if (!status.ok()) return status;
  return msg;
}

size_t MessageSizeBound(const Message& m) {
  PackedBound b;
  b.AtLeastZeros(6);  // segment table: one segment (count - 1 = 0) of fewer than 2^16 words
  b.AtLeastZeros(6);  // root pointer: offset 0, 5 data words, 3 pointers
  // Data section (see the offsets capnp assigns in wire.capnp): type and seq
  // share the first word.
  b.Word(static_cast<uint64_t>(m.type) | (static_cast<uint64_t>(m.seq) << 32));
  b.Word(m.sender.hi);
  b.Word(m.sender.lo);
  b.Word(m.target.hi);
  b.Word(m.target.lo);
  b.TextPointer(m.target_address.size());
  b.Pointer(false);   // the updates, counted as present
  b.Pointer(false);   // the payloads, counted as present
  b.AtLeastZeros(4);  // the update list's tag word: element count, element size
  b.Text(m.target_address);
  return b.bytes();
}

size_t UpdateSizeBound(const Update& u) {
  PackedBound b;
  // The list element: kind alone in the first word, then incarnation, from.
  b.Break();
  b.Word(static_cast<uint64_t>(u.kind));
  b.Word(u.incarnation);
  b.Word(u.from.hi);
  b.Word(u.from.lo);
  b.Pointer(false);
  if (!u.info) return b.bytes();  // not encodable anyway
  const MemberInfo& info = *u.info;
  // The member info: id, priority alone in a word, epoch.
  b.Break();
  b.Word(info.id.hi);
  b.Word(info.id.lo);
  b.Word(info.priority);
  b.Word(info.epoch);
  b.TextPointer(info.name.size());
  b.TextPointer(info.vantage.size());
  b.TextPointer(info.address.size());
  std::string allow = EncodeScanPolicy(info.allow);
  // Set after the texts: an offset below 64 words fits one byte, and a
  // byte count of at most kMaxPolicyBytes (shifted by 3) two.
  b.AtLeastZeros(allow.empty() ? 8 : 4);
  b.Text(info.name);
  b.Text(info.vantage);
  b.Text(info.address);
  b.Data(allow);
  return b.bytes();
}

size_t PayloadSizeBound(const std::string& payload) {
  PackedBound b;
  // Its element of the payload list (pointers, no tag word): an offset
  // below 2^14 words, a byte count below 2^13.
  b.Pointer(false);
  b.Data(payload);
  return b.bytes();
}

Result<std::string> EncodePushPull(const PushPull& pp) {
  if (pp.sender.empty()) return Status::InvalidArgument("push-pull without sender id");
  if (Status s = ValidateUpdates(pp.state, kMaxStateMembers, "members"); !s.ok()) return s;
  std::string out;
  Status status = CapnpGuarded(&Status::InvalidArgument, "cannot encode push-pull", [&]() -> Status {
    // One segment sized for the whole state: no reallocation, no far pointers.
    size_t words = 8;
    for (const Update& u : pp.state)
      words += 13 + TextWords(u.info->name.size()) + TextWords(u.info->vantage.size()) +
               TextWords(u.info->address.size()) + (ScanPolicyBytes(u.info->allow) + kWord - 1) / kWord;
    capnp::MallocMessageBuilder builder(static_cast<unsigned>(std::min(words, kMaxStreamWords)));
    auto root = builder.initRoot<wire::PushPull>();
    root.setSenderHi(pp.sender.hi);
    root.setSenderLo(pp.sender.lo);
    root.setJoin(pp.join);
    if (!pp.state.empty()) WriteUpdates(root.initState(static_cast<unsigned>(pp.state.size())), pp.state);
    auto flat = capnp::messageToFlatArray(builder);
    auto bytes = flat.asBytes();
    if (bytes.size() > kMaxStreamBytes)
      return Status::InvalidArgument("push-pull encodes to " + Num(bytes.size()) + " bytes, above the " +
                                     Num(kMaxStreamBytes) + "-byte stream limit");
    out.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return out;
}

Result<PushPull> DecodePushPull(std::string_view body) {
  if (body.empty()) return Status::Corruption("empty push-pull body");
  if (body.size() > kMaxStreamBytes) return Status::Corruption("push-pull body too large: " + Num(body.size()) + " bytes");
  if (body.size() % kWord != 0)
    return Status::Corruption("push-pull body of " + Num(body.size()) + " bytes is not a whole number of words");
  // Stream buffers give no alignment guarantee: copy into words.
  auto words = kj::heapArray<capnp::word>(body.size() / kWord);
  std::memcpy(words.begin(), body.data(), body.size());
  PushPull pp;
  Status status = ReadFlat(words, std::min(2 * words.size(), kMaxStreamWords), "malformed push-pull",
                           [&](capnp::MessageReader& reader) -> Status {
                             auto r = reader.getRoot<wire::PushPull>();
                             pp.sender = {r.getSenderHi(), r.getSenderLo()};
                             if (pp.sender.empty()) return Status::Corruption("push-pull without sender id");
                             pp.join = r.getJoin();
                             return ReadUpdates(r.getState(), kMaxStateMembers, "members", pp.state);
                           });
  if (!status.ok()) return status;
  return pp;
}

std::string FrameHeader(size_t body_length) {
  // Saturate rather than wrap: an impossible length must read back as too
  // large, not as a small frame.
  uint32_t n = body_length > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(body_length);
  std::string h(kFrameHeaderBytes, '\0');
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) h[i] = static_cast<char>((n >> (8 * (kFrameHeaderBytes - 1 - i))) & 0xff);
  return h;
}

Result<size_t> ReadFrameLength(std::string_view header) {
  if (header.size() < kFrameHeaderBytes)
    return Status::Corruption("short frame header: " + Num(header.size()) + " bytes");
  size_t n = 0;
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) n = (n << 8) | static_cast<uint8_t>(header[i]);
  if (n > kMaxStreamBytes)
    return Status::Corruption("frame of " + Num(n) + " bytes, above the " + Num(kMaxStreamBytes) + "-byte limit");
  return n;
}

}  // namespace ndo::mesh
