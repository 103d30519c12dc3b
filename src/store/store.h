// ndo's persistent state in RocksDB: scans, their shard progress, and results.
//
// Key space (one column family, prefixes keep kinds apart):
//   's' | scan id                 -> ScanRecord (Cap'n Proto)
//   'p' | scan id | shard (4, BE) -> next position (8, LE) | done (1)
//   'r' | scan id | address | port -> result (see result_codec.h), merged
//   'e' | scan id | address | port -> service evidence (see evidence_codec.h)
//   'c' | SHA-256 fingerprint     -> certificate DER, stored once
//   'm' | name                    -> metadata of other modules, opaque here
//                                    (the mesh node's identity and members)
// A batch of results and the progress it completes are written in one
// WriteBatch, so after a crash the stored progress never claims a probe whose
// result is missing.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "scan/probe_result.h"
#include "scan/service/evidence.h"
#include "store/scan_record.h"

namespace rocksdb {
class DB;
}

namespace ndo {

class Store {
 public:
  // Opens (creating if needed) the store in `dir`. Unavailable if another
  // process holds it.
  static Result<std::unique_ptr<Store>> Open(const std::string& dir);
  // Opens the store in `dir` for reading only, as a RocksDB secondary
  // instance: it takes no lock, so it works while an agent holds the
  // database, and it sees what that agent had written when it was opened.
  // The secondary's own files live in a fresh temporary directory, removed
  // when the store is destroyed. NotFound when `dir` holds no store; every
  // write returns Unavailable.
  static Result<std::unique_ptr<Store>> OpenReadOnly(const std::string& dir);
  ~Store();
  bool read_only() const { return read_only_; }

  Status PutScan(const ScanRecord& rec);
  // By full id or unique hex prefix (at least 4 digits).
  Result<ScanRecord> FindScan(std::string_view id_or_prefix);
  Result<std::vector<ScanRecord>> ListScans();

  // Stores results (all states if store_all, else open ports only) and the
  // progress they complete, atomically.
  Status WriteBatch(const ScanId& scan, const ResultBatch& batch, bool store_all);
  Result<std::vector<ShardProgress>> LoadProgress(const ScanId& scan);

  // Visits results in (address, port) order; stop early by returning false.
  Status ForEachResult(const ScanId& scan, const std::function<bool(const ProbeResult&)>& visit);

  // Service evidence of open ports; certificates are kept once per fingerprint.
  Status WriteEvidence(const ScanId& scan, const std::vector<ServiceEvidence>& evidence);
  // NotFound when the port has none.
  Result<ServiceEvidence> GetEvidence(const ScanId& scan, IpAddress address, uint16_t port);
  Status ForEachEvidence(const ScanId& scan, const std::function<bool(const ServiceEvidence&)>& visit);

  // Small named values other modules keep here (the mesh node's state), so
  // that a data directory is one database. The store does not interpret
  // them. GetMeta is NotFound when the key was never written. `sync` waits
  // until the write is on disk (fsync of the log), for values that must
  // survive a power loss once acted upon; otherwise a write survives a crash
  // of the process but not of the machine.
  Status PutMeta(std::string_view key, std::string_view value, bool sync = false);
  Result<std::string> GetMeta(std::string_view key);
  Status DeleteMeta(std::string_view key);
  // Visits metadata whose key starts with `prefix`, in key order; stop early
  // by returning false.
  Status ForEachMeta(std::string_view prefix,
                     const std::function<bool(std::string_view key, std::string_view value)>& visit);

 private:
  Store(rocksdb::DB* db, bool read_only, std::string secondary_dir);
  Status RefuseWrite(const std::string& what) const;
  std::unique_ptr<rocksdb::DB> db_;
  bool read_only_ = false;
  std::string secondary_dir_;  // OpenReadOnly's scratch directory, removed last
};

// Every command's data dir when --data-dir is not given: $NDO_DATA_DIR,
// else $XDG_DATA_HOME/ndo, else $HOME/.local/share/ndo.
std::string DefaultDataDir();

}  // namespace ndo
