# The mesh's security records: join tokens and the gossip keyring, as kept in
# a node's store and data directory and sent to an enrolling node. Fields are
# only ever added, never renumbered.
@0xb7f3c1d2a4e59608;

$import "/capnp/c++.capnp".namespace("ndo::mesh::schema");

struct TokenRecord {
  id @0 :Text;
  secret @1 :Text;
  createdUnix @2 :Int64;
  expiresUnix @3 :Int64;
  maxUses @4 :UInt32;
  uses @5 :UInt32;
  vantage @6 :Text;
  usedBy @7 :List(Text);
  revoked @8 :Bool;
  role @9 :NodeRole;     # what the nodes it enrols may do; a record older than roles reads as scanner
}

# mesh/security/roles.h; scanner first, so that an absent field reads as it.
enum NodeRole {
  scanner @0;
  operator @1;
}

struct GossipKey {
  id @0 :UInt32;
  key @1 :Data;          # 32 bytes, AES-256-GCM
  createdUnix @2 :Int64;
}

struct Keyring {
  keys @0 :List(GossipKey);
  primary @1 :UInt32;    # the id of the key that seals; every key opens
}

# A node without a certificate, over TLS to a member (whose CA it pinned),
# asks to be enrolled: one frame each way.
struct EnrolRequest {
  tokenId @0 :Text;
  csr @1 :Text;          # PEM
  vantage @2 :Text;
  name @3 :Text;
  proof @4 :Data;        # HMAC-SHA256 (mesh/security/join_token.h)
}

struct EnrolReply {
  error @0 :Text;        # empty on success; the reason otherwise
  cert @1 :Text;         # PEM: the node's certificate
  ca @2 :Text;           # PEM: the cluster CA
  keyring @3 :Data;     # an encoded Keyring message (EncodeKeyring)
  members @4 :List(Text);  # addresses to join through
}

# The replicated security state (mesh/security/security_state.h), saved in the store
# and exchanged between members over mutual TLS.
struct KeySchedule {
  id @0 :UInt32;
  primaryFromUnix @1 :Int64;   # 0: never primary by schedule
  removedFromUnix @2 :Int64;   # 0: not removed
}

struct RevokedNode {
  idHi @0 :UInt64;
  idLo @1 :UInt64;
  serial @2 :Text;
  revokedUnix @3 :Int64;
  name @4 :Text;
}

struct NodeRef {
  idHi @0 :UInt64;
  idLo @1 :UInt64;
}

struct SecurityState {
  keys @0 :Data;               # an encoded Keyring of the key material held (its primary field unused)
  schedule @1 :List(KeySchedule);
  revoked @2 :List(RevokedNode);
  authorities @3 :List(NodeRef);  # members that hold the CA key and enrol
}

# A member without the CA key passes an enrolment on to one that has it,
# over mutual TLS, with the keying material of its session with the joiner
# (which the proof is bound to).
struct RelayedEnrol {
  request @0 :Data;            # the joiner's EnrolRequest, as received
  exporter @1 :Data;
  source @2 :Text;             # the joiner's address, for the rate limit and logs
}
