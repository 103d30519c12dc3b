# The mesh's membership protocol on the wire (see mesh/membership/codec.h).
# Fields are only ever added, never renumbered: mixed versions keep talking.
# Field order matters for the size bounds in codec.cc (which fields share a
# data word): change it only together with them and codec_test's bound tests.
@0xe5089128a28c4f08;

$import "/capnp/c++.capnp".namespace("ndo::mesh::wire");

struct MemberInfo {
  # Node ids are 128 bits, split in two words.
  idHi @0 :UInt64;
  idLo @1 :UInt64;
  name @2 :Text;
  vantage @3 :Text;
  address @4 :Text;
  priority @5 :UInt32;
  epoch @6 :UInt64;
  # The scan policy, encoded compactly (mesh/membership/scan_policy.h), at
  # most kMaxPolicyBytes; absent: none (no distributed work).
  allow @7 :Data;
}

struct Update {
  enum Kind {
    alive @0;
    suspect @1;
    dead @2;
    left @3;
  }
  kind @0 :Kind;
  info @1 :MemberInfo;
  incarnation @2 :UInt64;
  fromHi @3 :UInt64;
  fromLo @4 :UInt64;
}

struct Message {
  enum Type {
    ping @0;
    ack @1;
    pingReq @2;
    nack @3;
    gossip @4;
  }
  type @0 :Type;
  senderHi @1 :UInt64;
  senderLo @2 :UInt64;
  seq @3 :UInt32;
  targetHi @4 :UInt64;
  targetLo @5 :UInt64;
  targetAddress @6 :Text;
  updates @7 :List(Update);
  # Opaque broadcasts of the layer above, each 1 to kMaxPayloadBytes bytes.
  payloads @8 :List(Data);
}

struct PushPull {
  senderHi @0 :UInt64;
  senderLo @1 :UInt64;
  join @2 :Bool;
  state @3 :List(Update);
}
