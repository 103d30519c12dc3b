// The mesh's wire codec: round trips, the size bounds the core fills
// datagrams with, and hostile input (random, truncated, corrupted and
// crafted messages), which must come back as errors, never as crashes or
// exceptions.
#include "mesh/membership/codec.h"

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <kj/io.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mesh/membership/wire.capnp.h"

namespace ndo::mesh {
namespace {

MemberInfoPtr Info(NodeId id, std::string name, std::string vantage, std::string address, uint32_t priority = 0,
                   uint64_t epoch = 0) {
  auto info = std::make_shared<MemberInfo>();
  info->id = id;
  info->name = std::move(name);
  info->vantage = std::move(vantage);
  info->address = std::move(address);
  info->priority = priority;
  info->epoch = epoch;
  return info;
}

Update Upd(Update::Kind kind, MemberInfoPtr info, uint64_t incarnation = 0, NodeId from = {}) {
  Update u;
  u.kind = kind;
  u.info = std::move(info);
  u.incarnation = incarnation;
  u.from = from;
  return u;
}

void ExpectSameUpdate(const Update& a, const Update& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.incarnation, b.incarnation);
  EXPECT_EQ(a.from, b.from);
  ASSERT_TRUE(a.info && b.info);
  EXPECT_EQ(a.info->id, b.info->id);
  EXPECT_EQ(a.info->name, b.info->name);
  EXPECT_EQ(a.info->vantage, b.info->vantage);
  EXPECT_EQ(a.info->address, b.info->address);
  EXPECT_EQ(a.info->priority, b.info->priority);
  EXPECT_EQ(a.info->epoch, b.info->epoch);
}

void ExpectSameMessage(const Message& a, const Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.sender, b.sender);
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.target_address, b.target_address);
  ASSERT_EQ(a.updates.size(), b.updates.size());
  for (size_t i = 0; i < a.updates.size(); ++i) ExpectSameUpdate(a.updates[i], b.updates[i]);
  EXPECT_EQ(a.payloads, b.payloads);
}

Message RoundTrip(const Message& m) {
  auto bytes = EncodeMessage(m);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  if (!bytes.ok()) return {};
  EXPECT_LE(bytes->size(), kMaxDatagramBytes);
  auto back = DecodeMessage(*bytes);
  EXPECT_TRUE(back.ok()) << back.status().ToString();
  return back.ok() ? *back : Message{};
}

size_t Bound(const Message& m) {
  size_t b = MessageSizeBound(m);
  for (const Update& u : m.updates) b += UpdateSizeBound(u);
  for (const std::string& p : m.payloads) b += PayloadSizeBound(p);
  return b;
}

bool Contains(const Status& s, const std::string& what) { return s.message().find(what) != std::string::npos; }

// What every successfully decoded message must satisfy, whatever the input.
void ExpectValid(const Message& m) {
  EXPECT_LE(static_cast<unsigned>(m.type), static_cast<unsigned>(Message::Type::kGossip));
  EXPECT_FALSE(m.sender.empty());
  EXPECT_LE(m.target_address.size(), kMaxAddressBytes);
  EXPECT_LE(m.updates.size(), kMaxUpdatesPerDatagram);
  for (const Update& u : m.updates) {
    EXPECT_LE(static_cast<unsigned>(u.kind), static_cast<unsigned>(Update::Kind::kLeft));
    ASSERT_TRUE(u.info);
    EXPECT_TRUE(ValidateMemberInfo(*u.info).ok());
  }
  EXPECT_LE(m.payloads.size(), kMaxPayloadsPerDatagram);
  for (const std::string& p : m.payloads) {
    EXPECT_FALSE(p.empty());
    EXPECT_LE(p.size(), kMaxPayloadBytes);
  }
}

std::string Packed(capnp::MessageBuilder& b) {
  kj::VectorOutputStream out;
  capnp::writePackedMessage(out, b);
  auto a = out.getArray();
  return std::string(reinterpret_cast<const char*>(a.begin()), a.size());
}

std::string PackedWords(kj::ArrayPtr<const capnp::word> segment) {
  kj::VectorOutputStream out;
  kj::ArrayPtr<const capnp::word> segments[] = {segment};
  capnp::writePackedMessage(out, kj::arrayPtr(segments, 1));
  auto a = out.getArray();
  return std::string(reinterpret_cast<const char*>(a.begin()), a.size());
}

std::string Flat(capnp::MessageBuilder& b) {
  auto words = capnp::messageToFlatArray(b);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Random messages, biased to what stresses the bounds: all-nonzero words
// (which cost the most packed), zeros, maximal strings of non-NUL bytes.
class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  uint64_t U64() {
    switch (rng_() % 6) {
      case 0: return 0;
      case 1: return rng_() % 1000;
      case 2: return 0x0101010101010101ULL * (1 + rng_() % 255);
      case 3: return rng_() | 0x8080808080808080ULL;
      case 4: return rng_() & 0x00ff00ff00ff00ffULL;
      default: return rng_();
    }
  }
  NodeId Id() { return {U64(), U64()}; }
  NodeId NonEmptyId() {
    NodeId id = Id();
    if (id.empty()) id.lo = 1 + rng_() % 1000;
    return id;
  }
  std::string Str(size_t max) {
    size_t n;
    switch (rng_() % 4) {
      case 0: n = max; break;
      case 1: n = 0; break;
      default: n = rng_() % (max + 1);
    }
    std::string s(n, 'x');
    bool printable = rng_() % 2;
    for (auto& c : s) c = static_cast<char>(printable ? 'a' + rng_() % 26 : 1 + rng_() % 255);
    return s;
  }
  Update RandomUpdate() {
    return Upd(static_cast<Update::Kind>(rng_() % 4),
               Info(NonEmptyId(), Str(kMaxNameBytes), Str(kMaxVantageBytes), Str(kMaxAddressBytes),
                    static_cast<uint32_t>(U64()), U64()),
               U64(), Id());
  }
  Message RandomMessage(size_t max_updates) {
    Message m;
    m.type = static_cast<Message::Type>(rng_() % 4);
    m.sender = NonEmptyId();
    m.seq = static_cast<uint32_t>(U64());
    m.target = Id();
    m.target_address = Str(kMaxAddressBytes);
    size_t n = rng_() % (max_updates + 1);
    for (size_t i = 0; i < n; ++i) m.updates.push_back(RandomUpdate());
    return m;
  }
  // Opaque bytes of the given length, in one of the styles that matter to
  // packing: all nonzero (the worst), at most one zero byte per word (raw
  // runs go on), random, mostly zeros.
  std::string Payload(size_t n) {
    std::string p(n, '\0');
    int style = static_cast<int>(rng_() % 4);
    for (size_t i = 0; i < n; ++i) {
      switch (style) {
        case 0: p[i] = static_cast<char>(1 + rng_() % 255); break;
        case 1: p[i] = static_cast<char>(i % 8 == 3 ? 0 : 1 + rng_() % 255); break;
        case 2: p[i] = static_cast<char>(rng_()); break;
        default: p[i] = static_cast<char>(rng_() % 8 ? 0 : rng_());
      }
    }
    return p;
  }
  std::string RandomPayload() { return Payload(1 + rng_() % (rng_() % 2 ? 64 : kMaxPayloadBytes)); }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

Message SampleMessage(Message::Type type) {
  Message m;
  m.type = type;
  m.sender = {0x1122334455667788ULL, 0x99aabbccddeeff00ULL};
  m.seq = 4242;
  m.target = {7, 8};
  if (type == Message::Type::kPingReq || type == Message::Type::kNack) m.target_address = "127.0.0.8:7946";
  m.updates.push_back(Upd(Update::Kind::kAlive, Info({1, 2}, "alpha", "dmz", "127.0.0.1:7946", 3, 9), 5));
  m.updates.push_back(Upd(Update::Kind::kSuspect, Info({3, 4}, "beta", "wifi", "[fe80::1]:7946"), 6, {1, 2}));
  m.updates.push_back(Upd(Update::Kind::kDead, Info({5, 6}, "", "", ""), 0, {3, 4}));
  m.updates.push_back(Upd(Update::Kind::kLeft, Info({0, 1}, "gamma", "internet", "192.0.2.1:1", 0xffffffffu,
                                                    ~0ULL),
                          ~0ULL, {~0ULL, ~0ULL}));
  return m;
}

// ---------------------------------------------------------------------------
// Round trips.

TEST(CodecTest, RoundTripsEveryMessageType) {
  for (auto type : {Message::Type::kPing, Message::Type::kAck, Message::Type::kPingReq, Message::Type::kNack, Message::Type::kGossip}) {
    Message m = SampleMessage(type);
    ExpectSameMessage(m, RoundTrip(m));
  }
}

TEST(CodecTest, RoundTripsMinimalMessages) {
  Message m;
  m.sender = {0, 1};
  ExpectSameMessage(m, RoundTrip(m));
  // Zeros everywhere but the ids: long zero runs in the packed form.
  for (size_t i = 0; i < kMaxUpdatesPerDatagram; ++i)
    m.updates.push_back(Upd(Update::Kind::kAlive, Info({0, i + 1}, "", "", "")));
  ExpectSameMessage(m, RoundTrip(m));
}

TEST(CodecTest, RoundTripsMaximalFields) {
  std::string name(kMaxNameBytes, '\xff'), vantage(kMaxVantageBytes, '\x01'), address(kMaxAddressBytes, 'a');
  Message m = SampleMessage(Message::Type::kPingReq);
  m.target_address = std::string(kMaxAddressBytes, '\x80');
  m.updates = {Upd(Update::Kind::kSuspect, Info({~0ULL, ~0ULL}, name, vantage, address, ~0u, ~0ULL), ~0ULL,
                   {~0ULL, ~0ULL})};
  ExpectSameMessage(m, RoundTrip(m));
}

TEST(CodecTest, RoundTripsPayloads) {
  for (auto type : {Message::Type::kPing, Message::Type::kAck, Message::Type::kPingReq, Message::Type::kNack, Message::Type::kGossip}) {
    Message m = SampleMessage(type);
    // Opaque bytes: NULs, high bytes, lengths around word boundaries.
    m.payloads = {std::string(1, '\0'), "delta", std::string("\0\xff\0", 3), std::string(8, '\x01'),
                  std::string(9, '\x80')};
    ExpectSameMessage(m, RoundTrip(m));
  }
  Message m = SampleMessage(Message::Type::kGossip);
  m.updates.clear();
  for (size_t i = 0; i < kMaxPayloadsPerDatagram; ++i) m.payloads.push_back("p" + std::to_string(i));
  ExpectSameMessage(m, RoundTrip(m));
  Gen gen(3);
  m.payloads = {gen.Payload(kMaxPayloadBytes)};
  ExpectSameMessage(m, RoundTrip(m));
}

TEST(CodecTest, EveryValidMessageFitsOneSegment) {
  // Zeros pack to almost nothing: the most updates and the most, largest
  // payloads, zero but for the ids, fit a datagram packed, yet unpack to
  // more than a thousand words. The encoder must build them and the decoder
  // take them back.
  Message m;
  m.sender = {0, 1};
  for (size_t i = 0; i < kMaxUpdatesPerDatagram; ++i)
    m.updates.push_back(Upd(Update::Kind::kAlive, Info({0, i + 1}, "", "", "")));
  for (size_t i = 0; i < kMaxPayloadsPerDatagram; ++i) m.payloads.push_back(std::string(kMaxPayloadBytes, '\0'));
  auto bytes = EncodeMessage(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_LE(bytes->size(), Bound(m));
  ExpectSameMessage(m, RoundTrip(m));
}

TEST(CodecTest, DecodesEachUpdateIntoItsOwnMemberInfo) {
  Message m = SampleMessage(Message::Type::kPing);
  auto shared = Info({9, 9}, "same", "dmz", "a:1");
  m.updates = {Upd(Update::Kind::kAlive, shared), Upd(Update::Kind::kSuspect, shared, 1)};
  Message back = RoundTrip(m);
  ASSERT_EQ(back.updates.size(), 2u);
  EXPECT_NE(back.updates[0].info, back.updates[1].info);
  EXPECT_NE(back.updates[0].info, shared);
  ExpectSameMessage(m, back);
}

TEST(CodecTest, DecodesUnalignedInput) {
  Message m = SampleMessage(Message::Type::kAck);
  auto bytes = EncodeMessage(m);
  ASSERT_TRUE(bytes.ok());
  for (size_t shift = 1; shift < 8; ++shift) {
    std::string buf(shift, 'z');
    buf += *bytes;
    auto back = DecodeMessage(std::string_view(buf).substr(shift));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ExpectSameMessage(m, *back);
  }
}

TEST(CodecTest, RandomMessagesRoundTrip) {
  Gen gen(7);
  int encoded = 0;
  for (int i = 0; i < 3000; ++i) {
    Message m = gen.RandomMessage(6);
    auto bytes = EncodeMessage(m);
    if (!bytes.ok()) continue;
    ++encoded;
    auto back = DecodeMessage(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ExpectSameMessage(m, *back);
  }
  EXPECT_GT(encoded, 1500);
}

TEST(CodecTest, PushPullRoundTripsManyMembers) {
  Gen gen(11);
  PushPull pp;
  pp.sender = {42, 43};
  pp.join = true;
  for (int i = 0; i < 20000; ++i) pp.state.push_back(gen.RandomUpdate());
  auto body = EncodePushPull(pp);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  // Framed as a stream carries it, and read back from an unaligned buffer.
  std::string stream = "x" + FrameHeader(body->size()) + *body;
  auto len = ReadFrameLength(std::string_view(stream).substr(1, kFrameHeaderBytes));
  ASSERT_TRUE(len.ok());
  ASSERT_EQ(*len, body->size());
  auto back = DecodePushPull(std::string_view(stream).substr(1 + kFrameHeaderBytes, *len));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->sender, pp.sender);
  EXPECT_TRUE(back->join);
  ASSERT_EQ(back->state.size(), pp.state.size());
  for (size_t i = 0; i < pp.state.size(); ++i) ExpectSameUpdate(pp.state[i], back->state[i]);
}

TEST(CodecTest, PushPullRoundTripsEmptyState) {
  PushPull pp;
  pp.sender = {0, 5};
  auto body = EncodePushPull(pp);
  ASSERT_TRUE(body.ok());
  auto back = DecodePushPull(*body);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->sender, pp.sender);
  EXPECT_FALSE(back->join);
  EXPECT_TRUE(back->state.empty());
}

// ---------------------------------------------------------------------------
// Encoding errors.

TEST(CodecTest, EncodeRejectsInvalidMessages) {
  auto expect_invalid = [](const Message& m, const std::string& why) {
    auto r = EncodeMessage(m);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_TRUE(Contains(r.status(), why)) << r.status().ToString();
  };
  Message base = SampleMessage(Message::Type::kPing);
  Message m = base;
  m.sender = {};
  expect_invalid(m, "message without sender id");
  m = base;
  m.type = static_cast<Message::Type>(7);
  expect_invalid(m, "unknown message type 7");
  m = base;
  m.target_address = std::string(kMaxAddressBytes + 1, 'a');
  expect_invalid(m, "target address longer than 64 bytes");
  m = base;
  m.updates[1].info = nullptr;
  expect_invalid(m, "update 1: update without member info");
  m = base;
  m.updates[0].info = Info({}, "x", "y", "z");
  expect_invalid(m, "update without member id");
  m = base;
  m.updates[2].kind = static_cast<Update::Kind>(9);
  expect_invalid(m, "unknown update kind 9");
  m = base;
  m.updates[0].info = Info({1, 1}, std::string(kMaxNameBytes + 1, 'n'), "", "");
  expect_invalid(m, "name longer than 64 bytes");
  m = base;
  m.updates[0].info = Info({1, 1}, "", std::string(kMaxVantageBytes + 1, 'v'), "");
  expect_invalid(m, "vantage longer than 32 bytes");
  m = base;
  m.updates[0].info = Info({1, 1}, "", "", std::string(kMaxAddressBytes + 1, 'a'));
  expect_invalid(m, "address longer than 64 bytes");
  m = base;
  m.updates[0].info = Info({1, 1}, std::string("a\0b", 3), "", "");
  expect_invalid(m, "name contains a NUL byte");
  m = base;
  m.updates.clear();
  for (size_t i = 0; i <= kMaxUpdatesPerDatagram; ++i)
    m.updates.push_back(Upd(Update::Kind::kAlive, Info({0, i + 1}, "", "", "")));
  expect_invalid(m, "25 updates, above the limit of 24");
}

TEST(CodecTest, EncodeRefusesDatagramsAboveTheLimit) {
  Message m = SampleMessage(Message::Type::kPing);
  m.updates.clear();
  for (size_t i = 0; i < kMaxUpdatesPerDatagram; ++i)
    m.updates.push_back(Upd(Update::Kind::kAlive,
                            Info({~0ULL - i, ~0ULL}, std::string(kMaxNameBytes, 'n'), std::string(kMaxVantageBytes, 'v'),
                                 std::string(kMaxAddressBytes, 'a'))));
  auto r = EncodeMessage(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status(), "above the 1200-byte datagram limit")) << r.status().ToString();
}

TEST(CodecTest, EncodeRejectsInvalidPayloads) {
  auto expect_invalid = [](const Message& m, const std::string& why) {
    auto r = EncodeMessage(m);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(r.status().message(), why);
  };
  Message m = SampleMessage(Message::Type::kGossip);
  m.payloads = {"a", ""};
  expect_invalid(m, "payload 1: empty payload");
  m.payloads = {std::string(kMaxPayloadBytes + 1, 'x')};
  expect_invalid(m, "payload 0: payload longer than 1024 bytes (1025)");
  m.payloads.assign(kMaxPayloadsPerDatagram + 1, "x");
  expect_invalid(m, "9 payloads, above the limit of 8");
  // The limits themselves are fine.
  m.updates.clear();
  m.payloads.assign(kMaxPayloadsPerDatagram, "x");
  EXPECT_TRUE(EncodeMessage(m).ok());
  m.payloads = {std::string(kMaxPayloadBytes, 'x')};
  EXPECT_TRUE(EncodeMessage(m).ok());
}

TEST(CodecTest, EncodePushPullRejectsInvalidState) {
  PushPull pp;
  pp.sender = {1, 2};
  pp.state.push_back(Upd(Update::Kind::kAlive, nullptr));
  auto r = EncodePushPull(pp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(Contains(r.status(), "update without member info"));
  pp.state.clear();
  pp.sender = {};
  EXPECT_FALSE(EncodePushPull(pp).ok());
}

// ---------------------------------------------------------------------------
// Size bounds.

TEST(CodecTest, SizeBoundHoldsForRandomMessages) {
  Gen gen(20240601);
  int encoded = 0, too_large = 0, large = 0;
  double large_slack = 0;
  for (int i = 0; i < 20000; ++i) {
    Message m = gen.RandomMessage(i % 2 ? kMaxUpdatesPerDatagram : 8);
    size_t bound = Bound(m);
    auto bytes = EncodeMessage(m);
    if (bytes.ok()) {
      ++encoded;
      ASSERT_LE(bytes->size(), bound) << "iteration " << i;
      ASSERT_LE(bytes->size(), kMaxDatagramBytes);
      // Tight enough for the core to fill datagrams with: a few bytes per
      // update (zero runs, pointer offsets), and the update list's pointer
      // and tag and the payload list's pointer, counted even when there are
      // no updates or payloads.
      EXPECT_LE(bound, bytes->size() + 23 + 4 * m.updates.size()) << "iteration " << i;
      if (m.updates.size() >= 4) {
        ++large;
        large_slack += static_cast<double>(bound - bytes->size()) / static_cast<double>(bytes->size());
      }
    } else {
      ++too_large;
      ASSERT_EQ(bytes.status().code(), Status::Code::kInvalidArgument);
      ASSERT_GT(bound, kMaxDatagramBytes) << "iteration " << i << ": " << bytes.status().ToString();
    }
  }
  EXPECT_GT(encoded, 5000);
  EXPECT_GT(too_large, 1000);
  ASSERT_GT(large, 1000);
  EXPECT_LT(large_slack / large, 0.03);
}

TEST(CodecTest, SizeBoundHoldsForWorstCaseBytes) {
  // Every byte that can be nonzero is: the most expensive packing. Strings
  // of every length around word boundaries.
  Message m;
  m.type = Message::Type::kNack;
  m.sender = m.target = {~0ULL, ~0ULL};
  m.seq = ~0u;
  m.target_address = std::string(kMaxAddressBytes, '\xff');
  int encoded = 0;
  for (size_t n = 0; n < kMaxUpdatesPerDatagram; ++n) {
    for (size_t len : {0, 1, 7, 8, 9, 15, 16, 23, 30, 31, 32, 63, 64}) {
      Message one = m;
      auto s = [&](size_t max) { return std::string(std::min(len, max), '\x7f'); };
      one.updates.push_back(Upd(Update::Kind::kLeft, Info({~0ULL, ~0ULL - n}, s(kMaxNameBytes), s(kMaxVantageBytes),
                                                         s(kMaxAddressBytes), ~0u, ~0ULL),
                                ~0ULL, {~0ULL, ~0ULL}));
      auto b = EncodeMessage(one);
      if (b.ok()) {
        ++encoded;
        EXPECT_LE(b->size(), Bound(one)) << n << " updates, strings of " << len;
      } else {
        EXPECT_GT(Bound(one), kMaxDatagramBytes) << b.status().ToString();
      }
    }
    m.updates.push_back(Upd(Update::Kind::kLeft, Info({~0ULL, ~0ULL - n}, std::string(n % 2 ? 8 : 7, 'x'), "",
                                                      std::string(n, 'a'), ~0u, ~0ULL),
                            ~0ULL, {~0ULL, ~0ULL}));
  }
  EXPECT_GT(encoded, 50);
}

TEST(CodecTest, DatagramsFilledByTheBoundAlwaysEncode) {
  // How the core uses the bounds: add updates while the bound fits.
  Gen gen(99);
  size_t total_updates = 0;
  for (int i = 0; i < 2000; ++i) {
    Message m = gen.RandomMessage(0);
    size_t used = MessageSizeBound(m);
    for (int tries = 0; tries < 100 && m.updates.size() < kMaxUpdatesPerDatagram; ++tries) {
      Update u = gen.RandomUpdate();
      if (used + UpdateSizeBound(u) > kMaxDatagramBytes) continue;
      used += UpdateSizeBound(u);
      m.updates.push_back(std::move(u));
    }
    auto bytes = EncodeMessage(m);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    ASSERT_LE(bytes->size(), used);
    total_updates += m.updates.size();
  }
  EXPECT_GT(total_updates, 2000u * 5);
}

// Checks the bound against the encoder for one message; returns whether it
// encoded.
bool ExpectBoundHolds(const Message& m, const std::string& what) {
  size_t bound = Bound(m);
  auto bytes = EncodeMessage(m);
  if (!bytes.ok()) {
    EXPECT_EQ(bytes.status().code(), Status::Code::kInvalidArgument) << what;
    EXPECT_GT(bound, kMaxDatagramBytes) << what << ": " << bytes.status().ToString();
    return false;
  }
  EXPECT_LE(bytes->size(), bound) << what;
  // Tight: per payload, at most its pointer's offset and count bytes and
  // one raw-run opening more than it takes.
  EXPECT_LE(bound, bytes->size() + 23 + 4 * m.updates.size() + 6 * m.payloads.size()) << what;
  return true;
}

TEST(CodecTest, SizeBoundHoldsForPayloadsOfEverySize) {
  Gen gen(31);
  int encoded = 0, refused = 0;
  for (size_t n = 1; n <= kMaxPayloadBytes; ++n) {
    for (size_t updates : {0, 1, 4, 12}) {
      Message m = gen.RandomMessage(0);
      for (size_t i = 0; i < updates; ++i) m.updates.push_back(gen.RandomUpdate());
      m.payloads.push_back(gen.Payload(n));
      // Now and then more: neighbouring payloads' bytes may share raw runs.
      size_t more = n % 3 == 0 ? gen.rng()() % kMaxPayloadsPerDatagram : 0;
      for (size_t i = 0; i < more; ++i) m.payloads.push_back(gen.RandomPayload());
      std::string what = "payload of " + std::to_string(n) + " bytes, " + std::to_string(updates) + " updates, " +
                         std::to_string(m.payloads.size()) + " payloads";
      (ExpectBoundHolds(m, what) ? encoded : refused)++;
      if (::testing::Test::HasFailure()) return;
    }
  }
  EXPECT_GT(encoded, 1000);
  EXPECT_GT(refused, 1000);
}

TEST(CodecTest, SizeBoundHoldsForWorstCasePayloads) {
  // Every byte that can be nonzero is, or one zero byte per word (which
  // continues a raw run but is still copied): the most expensive packing.
  Message m;
  m.type = Message::Type::kNack;
  m.sender = m.target = {~0ULL, ~0ULL};
  m.seq = ~0u;
  m.target_address = std::string(kMaxAddressBytes, '\xff');
  int encoded = 0;
  for (size_t count = 1; count <= kMaxPayloadsPerDatagram; ++count) {
    for (size_t n = 1; n <= kMaxPayloadBytes; n += 1 + n / 8) {
      for (bool one_zero : {false, true}) {
        Message one = m;
        std::string p(n, '\xff');
        if (one_zero)
          for (size_t i = 5; i < n; i += 8) p[i] = '\0';
        one.payloads.assign(count, p);
        if (ExpectBoundHolds(one, std::to_string(count) + " payloads of " + std::to_string(n) + " bytes")) ++encoded;
      }
    }
  }
  EXPECT_GT(encoded, 100);
}

TEST(CodecTest, DatagramsFilledWithPayloadsByTheBoundAlwaysEncode) {
  // How the core uses the bounds: updates first, then payloads, while the
  // bound fits.
  Gen gen(123);
  size_t total_payloads = 0;
  for (int i = 0; i < 2000; ++i) {
    Message m = gen.RandomMessage(0);
    size_t used = MessageSizeBound(m);
    size_t want_updates = gen.rng()() % 8;
    for (int tries = 0; tries < 20 && m.updates.size() < want_updates; ++tries) {
      Update u = gen.RandomUpdate();
      if (used + UpdateSizeBound(u) > kMaxDatagramBytes) continue;
      used += UpdateSizeBound(u);
      m.updates.push_back(std::move(u));
    }
    for (int tries = 0; tries < 50 && m.payloads.size() < kMaxPayloadsPerDatagram; ++tries) {
      std::string p = gen.RandomPayload();
      if (used + PayloadSizeBound(p) > kMaxDatagramBytes) continue;
      used += PayloadSizeBound(p);
      m.payloads.push_back(std::move(p));
    }
    auto bytes = EncodeMessage(m);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    ASSERT_LE(bytes->size(), used);
    total_payloads += m.payloads.size();
  }
  EXPECT_GT(total_payloads, 2000u * 3);
}

// ---------------------------------------------------------------------------
// Hostile datagrams.

TEST(CodecTest, RejectsOversizedAndEmptyDatagrams) {
  auto r = DecodeMessage(std::string(kMaxDatagramBytes + 1, '\0'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(r.status().message(), "datagram too large: 1201 bytes");
  // Even a valid message followed by padding.
  auto bytes = EncodeMessage(SampleMessage(Message::Type::kPing));
  ASSERT_TRUE(bytes.ok());
  EXPECT_FALSE(DecodeMessage(*bytes + std::string(kMaxDatagramBytes + 1 - bytes->size(), '\0')).ok());
  EXPECT_FALSE(DecodeMessage("").ok());
}

TEST(CodecTest, RejectsTrailingBytes) {
  auto bytes = EncodeMessage(SampleMessage(Message::Type::kPing));
  ASSERT_TRUE(bytes.ok());
  auto r = DecodeMessage(*bytes + std::string("\0\0", 2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
}

TEST(CodecTest, RejectsEveryTruncation) {
  for (auto type : {Message::Type::kPing, Message::Type::kPingReq}) {
    auto bytes = EncodeMessage(SampleMessage(type));
    ASSERT_TRUE(bytes.ok());
    for (size_t n = 0; n < bytes->size(); ++n) {
      auto r = DecodeMessage(std::string_view(*bytes).substr(0, n));
      ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
      EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
    }
  }
}

TEST(CodecTest, SurvivesEveryByteFlip) {
  auto bytes = EncodeMessage(SampleMessage(Message::Type::kPingReq));
  ASSERT_TRUE(bytes.ok());
  int rejected = 0, total = 0;
  for (size_t i = 0; i < bytes->size(); ++i) {
    for (uint8_t x : {0x01, 0x10, 0x80, 0xff}) {
      std::string b = *bytes;
      b[i] = static_cast<char>(b[i] ^ x);
      auto r = DecodeMessage(b);
      ++total;
      if (r.ok()) {
        ExpectValid(*r);
      } else {
        ++rejected;
        EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
      }
    }
  }
  // Flips inside names and numbers still decode; flips in the framing do not.
  EXPECT_GT(rejected, total / 10);
}

TEST(CodecTest, PayloadsSurviveTruncationAndByteFlips) {
  Message m = SampleMessage(Message::Type::kGossip);
  m.payloads = {"abc", std::string(40, '\x05'), std::string("\0\0\x01", 3)};
  auto bytes = EncodeMessage(m);
  ASSERT_TRUE(bytes.ok());
  for (size_t n = 0; n < bytes->size(); ++n) {
    auto r = DecodeMessage(std::string_view(*bytes).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  }
  for (size_t i = 0; i < bytes->size(); ++i) {
    for (uint8_t x : {0x01, 0x10, 0x80, 0xff}) {
      std::string b = *bytes;
      b[i] = static_cast<char>(b[i] ^ x);
      auto r = DecodeMessage(b);
      if (r.ok())
        ExpectValid(*r);
      else
        EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
    }
  }
}

TEST(CodecTest, SurvivesRandomBytes) {
  std::mt19937_64 rng(5);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b(rng() % (kMaxDatagramBytes + 1), '\0');
    int zero_bias = static_cast<int>(rng() % 4);  // packed data is mostly small bytes
    for (auto& c : b) c = static_cast<char>(rng() % 4 < static_cast<unsigned>(zero_bias) ? rng() % 3 : rng());
    auto r = DecodeMessage(b);
    if (r.ok()) ++accepted, ExpectValid(*r);
  }
  EXPECT_LT(accepted, 20);
}

// Random words behind a well-formed segment table, packed properly: gets past
// the framing into pointer validation.
TEST(CodecTest, SurvivesRandomWordsInValidFraming) {
  std::mt19937_64 rng(6);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    size_t n = 1 + rng() % 64;
    auto words = kj::heapArray<capnp::word>(n);
    auto* raw = reinterpret_cast<uint64_t*>(words.begin());
    for (size_t w = 0; w < n; ++w) {
      switch (rng() % 4) {
        case 0: raw[w] = 0; break;
        case 1:  // a plausible struct or list pointer
          raw[w] = ((rng() % 16) << 2) | (rng() % 4) | ((rng() % 8) << 32) | ((rng() % 8) << 48);
          break;
        case 2: raw[w] = rng() % 256; break;
        default: raw[w] = rng();
      }
    }
    if (i % 2 == 0) raw[0] = (uint64_t{5} << 32) | (uint64_t{2} << 48);  // root: a Message-sized struct
    auto r = DecodeMessage(PackedWords(words.asPtr()));
    if (r.ok()) ++accepted, ExpectValid(*r);
  }
  // Some random words do form valid messages; most do not.
  EXPECT_LT(accepted, 20000 / 2);
}

TEST(CodecTest, RejectsAmplifyingZeroRuns) {
  // 2 bytes unpack to 256 zero words: 1200 bytes would be 1.2 MB.
  std::string b;
  while (b.size() + 2 <= kMaxDatagramBytes) b += std::string("\0\xff", 2);
  auto r = DecodeMessage(b);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status(), "unpacks to")) << r.status().ToString();
}

TEST(CodecTest, RejectsHugeSegmentTables) {
  // One segment announced with 2^31 words.
  auto r = DecodeMessage(std::string("\xf0\xff\xff\xff\x7f", 5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  // 1000 segments.
  r = DecodeMessage(std::string("\x03\xe7\x03", 3));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
}

// Messages crafted with the builder, each breaking one rule.
class CraftedTest : public ::testing::Test {
 protected:
  // The builder sits behind a pointer: its destructor may throw, which a
  // gtest fixture's may not.
  CraftedTest()
      : builder_(std::make_unique<capnp::MallocMessageBuilder>()), root_(builder_->initRoot<wire::Message>()) {
    root_.setType(wire::Message::Type::PING);
    root_.setSenderHi(1);
    root_.setSenderLo(2);
  }
  wire::MemberInfo::Builder AddUpdates(unsigned n) {
    auto list = root_.initUpdates(n);
    for (unsigned i = 0; i < n; ++i) {
      auto info = list[i].initInfo();
      info.setIdLo(i + 1);
      info.setName("n");
    }
    return list[0].getInfo();
  }
  Status Decode() {
    auto r = DecodeMessage(Packed(*builder_));
    return r.ok() ? Status::Ok() : r.status();
  }
  void ExpectRejected(const std::string& why) {
    Status s = Decode();
    ASSERT_FALSE(s.ok()) << why;
    EXPECT_EQ(s.code(), Status::Code::kCorruption);
    EXPECT_TRUE(Contains(s, why)) << s.ToString();
  }

  std::unique_ptr<capnp::MallocMessageBuilder> builder_;
  wire::Message::Builder root_;
};

TEST_F(CraftedTest, ValidBaseline) {
  AddUpdates(3);
  EXPECT_TRUE(Decode().ok());
}

TEST_F(CraftedTest, TooManyUpdates) {
  AddUpdates(kMaxUpdatesPerDatagram + 1);
  ExpectRejected("25 updates, above the limit of 24");
}

TEST_F(CraftedTest, OverlongName) {
  AddUpdates(2).setName(std::string(kMaxNameBytes + 1, 'x'));
  ExpectRejected("update 0: name longer than 64 bytes (65)");
}

TEST_F(CraftedTest, OverlongVantage) {
  AddUpdates(1).setVantage(std::string(kMaxVantageBytes + 1, 'x'));
  ExpectRejected("vantage longer than 32 bytes");
}

TEST_F(CraftedTest, OverlongAddress) {
  AddUpdates(1).setAddress(std::string(kMaxAddressBytes + 1, 'x'));
  ExpectRejected("address longer than 64 bytes");
}

TEST_F(CraftedTest, OverlongTargetAddress) {
  root_.setTargetAddress(std::string(kMaxAddressBytes + 1, 'x'));
  ExpectRejected("target address longer than 64 bytes");
}

TEST_F(CraftedTest, EmbeddedNul) {
  std::string name("a\0b", 3);
  AddUpdates(1).setName(capnp::Text::Reader(name.c_str(), name.size()));
  ExpectRejected("name contains a NUL byte");
}

TEST_F(CraftedTest, UnknownMessageType) {
  root_.setType(static_cast<wire::Message::Type>(7));
  ExpectRejected("unknown message type 7");
}

TEST_F(CraftedTest, UnknownUpdateKind) {
  AddUpdates(2);
  root_.getUpdates()[1].setKind(static_cast<wire::Update::Kind>(4));
  ExpectRejected("update 1: unknown update kind 4");
}

TEST_F(CraftedTest, UpdateWithoutInfo) {
  root_.initUpdates(1);
  ExpectRejected("update without member info");
}

TEST_F(CraftedTest, UpdateWithoutId) {
  AddUpdates(1).setIdLo(0);
  ExpectRejected("update without member id");
}

TEST_F(CraftedTest, TooManyPayloads) {
  auto list = root_.initPayloads(kMaxPayloadsPerDatagram + 1);
  for (unsigned i = 0; i < list.size(); ++i) list.set(i, capnp::Data::Reader(reinterpret_cast<const kj::byte*>("x"), 1));
  ExpectRejected("9 payloads, above the limit of 8");
}

TEST_F(CraftedTest, NullPayload) {
  root_.initPayloads(2).set(0, capnp::Data::Reader(reinterpret_cast<const kj::byte*>("x"), 1));
  ExpectRejected("payload 1: empty payload");
}

TEST_F(CraftedTest, EmptyPayload) {
  root_.initPayloads(1).init(0, 0);  // a non-null pointer to zero bytes
  ExpectRejected("payload 0: empty payload");
}

TEST_F(CraftedTest, OverlongPayload) {
  std::string big(kMaxPayloadBytes + 1, 'x');
  root_.initPayloads(1).set(0, capnp::Data::Reader(reinterpret_cast<const kj::byte*>(big.data()), big.size()));
  ExpectRejected("payload 0: payload longer than 1024 bytes (1025)");
}

TEST_F(CraftedTest, NoSender) {
  root_.setSenderHi(0);
  root_.setSenderLo(0);
  ExpectRejected("message without sender id");
}

TEST(CodecTest, RejectsWrongPointerKinds) {
  // A push-pull read as a datagram: its list of structs sits where the
  // datagram has its target address text.
  capnp::MallocMessageBuilder b;
  auto pp = b.initRoot<wire::PushPull>();
  pp.setSenderHi(1);  // reads as type ack
  pp.setSenderLo(2);
  pp.initState(2)[0].initInfo().setIdLo(3);
  auto r = DecodeMessage(Packed(b));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
}

// Deep nesting cannot be expressed: the schema has no recursion, so the
// reader follows at most four levels whatever the input claims.

// ---------------------------------------------------------------------------
// Hostile push-pull bodies.

TEST(CodecTest, PushPullRejectsMalformedBodies) {
  EXPECT_FALSE(DecodePushPull("").ok());
  auto r = DecodePushPull(std::string(kMaxStreamBytes + 8, '\0'));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status(), "push-pull body too large")) << r.status().ToString();
  r = DecodePushPull(std::string(12, '\0'));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status(), "not a whole number of words"));
}

TEST(CodecTest, PushPullRejectsTooManyMembers) {
  capnp::MallocMessageBuilder b;
  auto pp = b.initRoot<wire::PushPull>();
  pp.setSenderLo(1);
  pp.initState(kMaxStateMembers + 1);
  auto r = DecodePushPull(Flat(b));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_TRUE(Contains(r.status(), "100001 members, above the limit of 100000")) << r.status().ToString();
}

TEST(CodecTest, PushPullSurvivesTruncationFlipsAndNoise) {
  Gen gen(8);
  PushPull pp;
  pp.sender = {3, 4};
  for (int i = 0; i < 6; ++i) pp.state.push_back(gen.RandomUpdate());
  auto body = EncodePushPull(pp);
  ASSERT_TRUE(body.ok());
  for (size_t n = 0; n < body->size(); ++n)
    EXPECT_FALSE(DecodePushPull(std::string_view(*body).substr(0, n)).ok()) << n;
  EXPECT_FALSE(DecodePushPull(*body + std::string(8, '\0')).ok());  // trailing word
  for (size_t i = 0; i < body->size(); ++i) {
    for (uint8_t x : {0x01, 0x80, 0xff}) {
      std::string b = *body;
      b[i] = static_cast<char>(b[i] ^ x);
      auto r = DecodePushPull(b);
      if (r.ok()) {
        EXPECT_FALSE(r->sender.empty());
        for (const Update& u : r->state) ASSERT_TRUE(u.info && ValidateMemberInfo(*u.info).ok());
      }
    }
  }
  std::mt19937_64 rng(9);
  for (int i = 0; i < 5000; ++i) {
    std::string b(8 * (rng() % 64), '\0');
    for (auto& c : b) c = static_cast<char>(rng() % 3 ? rng() % 4 : rng());
    auto r = DecodePushPull(b);
    if (r.ok()) {
      EXPECT_FALSE(r->sender.empty());
    }
  }
}

// ---------------------------------------------------------------------------
// Frames, validation, ids.

TEST(CodecTest, FrameHeaders) {
  EXPECT_EQ(FrameHeader(0x01020304), std::string("\x01\x02\x03\x04"));
  EXPECT_EQ(FrameHeader(0), std::string(4, '\0'));
  auto n = ReadFrameLength(FrameHeader(12345));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 12345u);
  n = ReadFrameLength(FrameHeader(kMaxStreamBytes));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, kMaxStreamBytes);
  EXPECT_FALSE(ReadFrameLength(FrameHeader(kMaxStreamBytes + 1)).ok());
  EXPECT_FALSE(ReadFrameLength(FrameHeader(size_t{1} << 40)).ok());  // saturates, never wraps
  EXPECT_FALSE(ReadFrameLength("\xff\xff\xff\xff").ok());
  auto r = ReadFrameLength(std::string("\0\0\x01", 3));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "short frame header: 3 bytes");
}

TEST(CodecTest, ValidateMemberInfo) {
  MemberInfo info;
  EXPECT_FALSE(ValidateMemberInfo(info).ok());
  info.id = {0, 1};
  EXPECT_TRUE(ValidateMemberInfo(info).ok());  // name, vantage and address may be empty here
  info.name = std::string(kMaxNameBytes, 'n');
  info.vantage = std::string(kMaxVantageBytes, 'v');
  info.address = std::string(kMaxAddressBytes, 'a');
  EXPECT_TRUE(ValidateMemberInfo(info).ok());
  for (std::string MemberInfo::*field : {&MemberInfo::name, &MemberInfo::vantage, &MemberInfo::address}) {
    MemberInfo bad = info;
    (bad.*field) += "x";
    Status s = ValidateMemberInfo(bad);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    EXPECT_TRUE(Contains(s, "longer than")) << s.ToString();
  }
}

TEST(CodecTest, NodeIdFromHex) {
  NodeId id{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  EXPECT_EQ(NodeId::FromHex(id.Hex()), id);
  EXPECT_EQ(NodeId::FromHex("0123456789ABCDEFFEDCBA9876543210"), id);
  EXPECT_TRUE(NodeId::FromHex("").empty());
  EXPECT_TRUE(NodeId::FromHex("0123456789abcdeffedcba987654321").empty());    // 31 digits
  EXPECT_TRUE(NodeId::FromHex("0123456789abcdeffedcba98765432100").empty());  // 33
  EXPECT_TRUE(NodeId::FromHex("0123456789abcdeffedcba987654321g").empty());
  EXPECT_TRUE(NodeId::FromHex("0x23456789abcdeffedcba9876543210").empty());
}

}  // namespace
}  // namespace ndo::mesh
