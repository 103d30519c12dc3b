# Records ndo keeps in RocksDB (and, later, replicates between peers).
# Fields are only ever added, never renumbered: old data stays readable.
@0xd3b0a4c8e8f1a2b7;

$import "/capnp/c++.capnp".namespace("ndo::schema");

struct AddressRange {
  # 128-bit addresses (IPv4 is ::ffff:a.b.c.d), split in two words.
  firstHi @0 :UInt64;
  firstLo @1 :UInt64;
  lastHi @2 :UInt64;
  lastLo @3 :UInt64;
}

struct NamedAddress {
  addressHi @0 :UInt64;
  addressLo @1 :UInt64;
  hostname @2 :Text;
}

struct ProbeOptions {
  rate @0 :Float64;
  concurrency @1 :UInt32;
  maxRetries @2 :Int32;
  timeoutMs @3 :UInt32;
  initialRttMs @4 :UInt32;
  minRttMs @5 :UInt32;
  maxRttMs @6 :UInt32;
}

struct ScanSpec {
  arguments @0 :List(Text);
  targets @1 :List(AddressRange);
  names @2 :List(NamedAddress);
  ports @3 :List(UInt16);
  hasScope @4 :Bool;
  scope @5 :List(AddressRange);
  seed @6 :UInt64;
  shardCount @7 :UInt32;
  storeAll @8 :Bool;
  probe @9 :ProbeOptions;
  service @10 :ServiceOptions;
}

struct ScanRecord {
  enum State {
    running @0;
    interrupted @1;
    done @2;
    failed @3;
  }
  id @0 :Data;
  spec @1 :ScanSpec;
  createdUs @2 :Int64;
  updatedUs @3 :Int64;
  finishedUs @4 :Int64;
  state @5 :State;
  error @6 :Text;
  probesSent @7 :UInt64;
  positionsDone @8 :UInt64;
  openCount @9 :UInt64;
  closedCount @10 :UInt64;
  filteredCount @11 :UInt64;
  unreachableCount @12 :UInt64;
  elapsedUs @13 :Int64;
  # wall time spent scanning, over every run of a resumed scan
}

struct ServiceOptions {
  banners @0 :Bool;
  tls @1 :Bool;
  tlsAllPorts @2 :Bool;
  tlsPorts @3 :List(UInt16);
  concurrency @4 :UInt32;
  timeoutMs @5 :UInt32;
  tlsCaFile @6 :Text;
}

struct TlsEvidence {
  error @0 :Text;
  version @1 :Text;
  cipher @2 :Text;
  sni @3 :Text;
  verdict @4 :UInt8;
  verifyDetail @5 :Text;
  chain @6 :List(Data);
  # SHA-256 fingerprints, leaf first; the certificates are stored once each under 'c' | fingerprint
}

struct BannerEvidence {
  bytes @0 :Data;
  truncated @1 :Bool;
  request @2 :Data;
  error @3 :Text;
}

struct ServiceEvidence {
  service @0 :Text;
  hasBanner @1 :Bool;
  banner @2 :BannerEvidence;
  hasTls @3 :Bool;
  tls @4 :TlsEvidence;
}
