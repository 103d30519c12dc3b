# The control socket's messages (DATA_DIR/control.sock): `ndo members`,
# `ndo leave`, and status queries of the local agent. Framed like the mesh
# streams (4-byte big-endian length, then the message). Fields are only ever
# added, never renumbered.
@0xfbfb48a68d64bca2;

$import "/capnp/c++.capnp".namespace("ndo::mesh::schema");

struct TokenRequest {
  ttlSeconds @0 :Int64;
  maxUses @1 :UInt32;    # 0: unlimited until it expires
  vantage @2 :Text;      # empty: any
  operatorRole @3 :Bool;    # the nodes it enrols are operators (false: scanners)
}

struct ControlRequest {
  union {
    members @0 :Void;
    leave @1 :Void;
    status @2 :Void;
    createToken @3 :TokenRequest;
    removeMember @4 :Text;   # a node id (32 hex) or an unambiguous name
    rotateKeys @5 :Void;
    submitScan @6 :SubmitScan;
    scanControl @7 :ScanControlRequest;
  }
}

struct SubmitScan {
  definition @0 :Data;   # EncodeScanDefinition (mesh/work/pool_state.h); vantages empty: every vantage present
}

struct ScanControlRequest {
  scan @0 :Text;         # id or unique hex prefix
  action @1 :UInt8;      # ScanControl: 0 running (resume), 1 paused, 2 stopped
}

struct ControlMember {
  idHi @0 :UInt64;
  idLo @1 :UInt64;
  name @2 :Text;
  vantage @3 :Text;
  address @4 :Text;
  state @5 :UInt8;       # MemberState: 0 alive, 1 suspect, 2 dead, 3 left
  incarnation @6 :UInt64;
  priority @7 :UInt32;
  allow @8 :Data;        # its scan policy (mesh/membership/scan_policy.h); absent: none
}

struct ControlResponse {
  error @0 :Text;        # empty on success
  self @1 :ControlMember;
  members @2 :List(ControlMember);   # without self; empty for status and leave
  coordinatorHi @3 :UInt64;          # both 0: no coordinator
  coordinatorLo @4 :UInt64;
  epoch @5 :UInt64;
  joined @6 :Bool;
  localHealth @7 :UInt32;
  aliveCount @8 :UInt64;
  leaving @9 :Bool;                  # the agent is leaving and will exit
  token @10 :Text;                   # createToken: the token (the only copy outside the agent)
  caHash @11 :Text;                  # createToken: "sha256:..." of the cluster CA
  expiresUnix @12 :Int64;            # createToken
  message @13 :Text;                 # removeMember, rotateKeys, submitScan, scanControl: what was done
  scanId @14 :Text;                  # submitScan, scanControl: the scan's id (hex)
}
