# What a mesh node keeps across restarts, in its data directory's RocksDB
# (Store metadata key "mesh.node"). Fields are only ever added, never
# renumbered: old data stays readable.
@0xc381e46b1221f39d;

$import "/capnp/c++.capnp".namespace("ndo::mesh::schema");

struct KnownMember {
  idHi @0 :UInt64;
  idLo @1 :UInt64;
  name @2 :Text;
  vantage @3 :Text;
  address @4 :Text;
  priority @5 :UInt32;
  epoch @6 :UInt64;
  incarnation @7 :UInt64;
  state @8 :UInt8;       # MemberState: 0 alive, 1 suspect, 2 dead, 3 left
  allow @9 :Data;        # its scan policy (mesh/membership/scan_policy.h); absent: none
}

struct NodeState {
  self @0 :KnownMember;  # this node's own record (its incarnation: the last one published)
  listen @1 :Text;       # where it was bound (may differ from self.address, the advertised one)
  maxEpochSeen @2 :UInt64;
  members @3 :List(KnownMember);
  savedAtUs @4 :Int64;   # wall clock, for operators
}
