# The replicated state of distributed scans (mesh/work/pool_state.h), saved in
# the store and exchanged between members. Fields are only ever added,
# never renumbered.
@0x8b8322a7bfacf3ad;

$import "/capnp/c++.capnp".namespace("ndo::mesh::schema");

# The immutable part of a scan. Its bytes, as encoded once by the submitter,
# are hashed into the scan id and forwarded unchanged.
struct ScanDefinition {
  spec @0 :Data;                 # the store's ScanSpec encoding (store/scan_record.h EncodeScanSpec)
  vantages @1 :List(Text);       # sorted, unique: one pool each
  createdMs @2 :Int64;
  submitterHi @3 :UInt64;
  submitterLo @4 :UInt64;
  # The targets cut by the members' scan policies (mesh/work/scan_regions.h);
  # absent: one region of all targets.
  regions @5 :List(ScanRegion);
}

struct AddressRange {
  firstHi @0 :UInt64;
  firstLo @1 :UInt64;
  lastHi @2 :UInt64;
  lastLo @3 :UInt64;
}

struct ScanRegion {
  ranges @0 :List(AddressRange);  # ascending, disjoint, non-adjacent
  shards @1 :UInt32;
}

struct HlcStamp {
  wallMs @0 :Int64;
  logical @1 :UInt32;
  nodeHi @2 :UInt64;
  nodeLo @3 :UInt64;
}

struct ShardNode {
  idHi @0 :UInt64;
  idLo @1 :UInt64;
}

struct ShardState {
  # The lease: holder zero = never leased.
  holderHi @0 :UInt64;
  holderLo @1 :UInt64;
  epoch @2 :UInt64;
  counter @3 :UInt64;
  expiresMs @4 :Int64;
  # Done: the result bundle's count and SHA-256, and who held it.
  done @5 :Bool;
  results @6 :UInt64;
  digest @7 :Data;               # 32 bytes when done, empty otherwise
  holders @8 :List(ShardNode);   # sorted, unique; not signed
  # Who declared it done, with the lease it held then, and its Ed25519
  # signature (mesh/work/record_signatures.h DoneSigningBytes): all zero or
  # empty when not done, and in an insecure mesh. The signature is exactly
  # 64 bytes or absent.
  signerHi @9 :UInt64;
  signerLo @10 :UInt64;
  doneLeaseEpoch @11 :UInt64;
  doneLeaseCounter @12 :UInt64;
  doneSig @13 :Data;
}

struct Pool {
  shards @0 :List(ShardState);   # the spec's shard count
}

struct ScanState {
  enum Control {
    running @0;
    paused @1;
    stopped @2;
  }
  id @0 :Data;                   # 8 bytes: SHA-256 of definition, truncated
  definition @1 :Data;           # an encoded ScanDefinition
  control @2 :Control;
  controlStamp @3 :HlcStamp;
  pools @4 :List(Pool);          # one per vantage, in the definition's order
  # Ed25519 signatures (mesh/work/record_signatures.h), 64 bytes or absent
  # (an insecure mesh): of the definition by its submitter, of the control
  # register by its stamp's node.
  definitionSig @5 :Data;
  controlSig @6 :Data;
}

# A small part of one scan's state, piggybacked on gossip (mesh/work/pool_state.h
# ScanDelta): the control register, some shards, or both. Merged by the same
# joins as a whole state, restricted to what it carries.
struct ScanDelta {
  id @0 :Data;                   # 8 bytes: the scan's id
  hasControl @1 :Bool;
  control @2 :ScanState.Control;
  controlStamp @3 :HlcStamp;
  shards @4 :List(ShardDelta);   # sorted by (pool, shard), unique
  controlSig @5 :Data;           # as ScanState.controlSig; absent without control
}

struct ShardDelta {
  pool @0 :UInt32;               # index of the vantage in the definition
  shard @1 :UInt32;
  state @2 :ShardState;
}
