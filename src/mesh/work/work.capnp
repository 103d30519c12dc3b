# The messages of distributed scans between members, over the mesh's streams
# (mutual TLS in a secured cluster), one request frame and one reply frame per
# stream, after the frame kind byte 'W'. One flat struct: `kind` says which
# fields are meaningful (mesh/work/work_messages.h). Fields are only ever added,
# never renumbered.
@0xa0ca7836f389ad82;

$import "/capnp/c++.capnp".namespace("ndo::mesh::schema");

struct ScanDigest {
  scanId @0 :Data;     # 8 bytes
  digest @1 :Data;     # 32 bytes: SHA-256 of the scan's state
}

struct WorkLease {
  holderHi @0 :UInt64;
  holderLo @1 :UInt64;
  epoch @2 :UInt64;
  counter @3 :UInt64;
  expiresMs @4 :Int64;
}

# A lease the sender holds, as it was granted or renewed to it.
struct WorkHeldLease {
  scanId @0 :Data;     # 8 bytes
  vantage @1 :Text;
  shard @2 :UInt32;
  lease @3 :WorkLease;
}

struct WorkNode {
  idHi @0 :UInt64;
  idLo @1 :UInt64;
}

# A shard's done record as its scanner signed it (mesh/work/record_signatures.h
# DoneSigningBytes), without holders: what a bundlePut carries, so that the
# replica is checked before it is kept.
struct WorkDoneClaim {
  results @0 :UInt64;
  digest @1 :Data;                # 32 bytes
  signerHi @2 :UInt64;
  signerLo @3 :UInt64;
  leaseEpoch @4 :UInt64;
  leaseCounter @5 :UInt64;
  signature @6 :Data;             # 64 bytes, or absent in an insecure mesh
}

struct WorkMessage {
  kind @0 :UInt8;
  senderHi @1 :UInt64;
  senderLo @2 :UInt64;
  error @3 :Text;
  digests @4 :List(ScanDigest);   # sync: what the sender holds
  states @5 :List(Data);          # syncReply, push: encoded ScanStates
  wanted @6 :List(Data);          # syncReply: scan ids the replier wants pushed
  scanId @7 :Data;                # lease grants, renewals, bundles
  vantage @8 :Text;
  shard @9 :UInt32;
  lease @10 :WorkLease;
  bundle @11 :Data;               # bundlePut, bundleData
  epoch @12 :UInt64;              # leaseRequest, renewRequest: the epoch the worker follows
  held @13 :List(WorkHeldLease);  # leaseRequest, renewRequest: every lease the worker holds
  nodes @14 :List(WorkNode);      # certFetch: whose certificates are wanted
  certs @15 :List(Data);          # certData: PEM certificates, those known of the nodes asked
  # bundlePut: the sender's signed done claim of the shard (absent in an
  # insecure mesh); `lease` then carries the lease it held, as the sender
  # knows it (renewals do not ride the gossip: the receiver's copy may lag).
  done @16 :WorkDoneClaim;
}
