#include "store/store.h"

#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/write_batch.h>

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "scan/service/tls_session.h"
#include "store/evidence_codec.h"
#include "store/result_codec.h"

namespace ndo {
namespace {

std::string ScanKey(const ScanId& id) {
  std::string k(1, 's');
  k.append(reinterpret_cast<const char*>(id.data()), id.size());
  return k;
}

std::string ProgressPrefix(const ScanId& id) {
  std::string k(1, 'p');
  k.append(reinterpret_cast<const char*>(id.data()), id.size());
  return k;
}

std::string ProgressKey(const ScanId& id, uint32_t shard) {
  std::string k = ProgressPrefix(id);
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>((shard >> (8 * i)) & 0xff));
  return k;
}

std::string MetaKey(std::string_view key) {
  std::string k(1, 'm');
  k.append(key);
  return k;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos)
    return Status::Unavailable(what + ": the data directory is in use by another ndo process (" + s.ToString() + ")");
  return Status::IoError(what + ": " + s.ToString());
}

// Applies PreferredResultValue, so rewriting a probe (a resumed or re-leased
// shard) never replaces an answer by silence.
class ResultMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* out,
             rocksdb::Logger*) const override {
    std::string_view v(value.data(), value.size());
    if (!existing) {
      out->assign(v);
      return true;
    }
    out->assign(PreferredResultValue(std::string_view(existing->data(), existing->size()), v));
    return true;
  }
  const char* Name() const override { return "ndo.PreferredResult.v1"; }
};

// The options of every opening, primary or secondary: a reader must merge
// results by the same rule as the writer.
rocksdb::Options StoreOptions() {
  rocksdb::Options opts;
  opts.merge_operator = std::make_shared<ResultMergeOperator>();
  opts.max_open_files = 256;  // descriptors belong to probes
  opts.keep_log_file_num = 4;
  opts.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  return opts;
}

}  // namespace

Store::Store(rocksdb::DB* db, bool read_only, std::string secondary_dir)
    : db_(db), read_only_(read_only), secondary_dir_(std::move(secondary_dir)) {}

Store::~Store() {
  db_.reset();  // the secondary's files go only once it is closed
  if (!secondary_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(secondary_dir_, ec);
  }
}

Status Store::RefuseWrite(const std::string& what) const {
  if (!read_only_) return Status::Ok();
  return Status::Unavailable("cannot write " + what + ": the store is open read-only");
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create data directory '" + dir + "': " + ec.message());
  rocksdb::Options opts = StoreOptions();
  opts.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &db);
  if (!s.ok()) return FromRocks(s, "opening store '" + dir + "'");
  return std::unique_ptr<Store>(new Store(db, false, ""));
}

Result<std::unique_ptr<Store>> Store::OpenReadOnly(const std::string& dir) {
  std::error_code ec;
  // A reader never creates a store: a mistyped --data-dir must say so.
  if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec))
    return Status::NotFound("no ndo store in '" + dir + "'");
  std::string scratch = (std::filesystem::temp_directory_path(ec) / "ndo-reader-XXXXXX").string();
  if (ec || !mkdtemp(scratch.data()))
    return Status::IoError("cannot create a temporary directory for reading '" + dir + "'");
  rocksdb::Options opts = StoreOptions();
  // RocksDB's rule for secondaries: the primary may delete a table file at
  // any time, so a secondary keeps every one it uses open. Readers run no
  // probes, so the descriptors are theirs to spend.
  opts.max_open_files = -1;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenAsSecondary(opts, dir, scratch, &db);
  if (s.ok()) s = db->TryCatchUpWithPrimary();
  if (!s.ok()) {
    delete db;
    std::filesystem::remove_all(scratch, ec);
    return FromRocks(s, "opening store '" + dir + "' for reading");
  }
  return std::unique_ptr<Store>(new Store(db, true, scratch));
}

Status Store::PutScan(const ScanRecord& rec) {
  if (Status s = RefuseWrite("scan"); !s.ok()) return s;
  return FromRocks(db_->Put(rocksdb::WriteOptions(), ScanKey(rec.id), EncodeScanRecord(rec)), "writing scan");
}

Result<std::vector<ScanRecord>> Store::ListScans() {
  std::vector<ScanRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("s"); it->Valid() && it->key().starts_with("s"); it->Next()) {
    auto rec = DecodeScanRecord(std::string_view(it->value().data(), it->value().size()));
    if (!rec.ok()) return rec.status();
    out.push_back(std::move(*rec));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing scans");
  return out;
}

Result<ScanRecord> Store::FindScan(std::string_view prefix) {
  if (prefix.size() < 4) return Status::InvalidArgument("give at least 4 hex digits of the scan id");
  auto all = ListScans();
  if (!all.ok()) return all.status();
  std::vector<ScanRecord*> hits;
  for (auto& rec : *all)
    if (ScanIdToHex(rec.id).starts_with(prefix)) hits.push_back(&rec);
  if (hits.empty()) return Status::NotFound("no stored scan with id '" + std::string(prefix) + "' (see 'ndo scans')");
  if (hits.size() > 1) return Status::InvalidArgument("scan id prefix '" + std::string(prefix) + "' is ambiguous");
  return std::move(*hits.front());
}

Status Store::WriteBatch(const ScanId& scan, const ResultBatch& batch, bool store_all) {
  if (Status s = RefuseWrite("results"); !s.ok()) return s;
  rocksdb::WriteBatch wb;
  for (const auto& r : batch.results) {
    if (!store_all && r.state != PortState::kOpen) continue;
    wb.Merge(ResultKey(scan, r.address, r.port), EncodeResultValue(r));
  }
  for (const auto& p : batch.progress) {
    std::string v;
    for (int i = 0; i < 8; ++i) v.push_back(static_cast<char>((p.next_position >> (8 * i)) & 0xff));
    v.push_back(p.done ? 1 : 0);
    wb.Put(ProgressKey(scan, p.shard), v);
  }
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "writing results");
}

Result<std::vector<ShardProgress>> Store::LoadProgress(const ScanId& scan) {
  std::vector<ShardProgress> out;
  std::string prefix = ProgressPrefix(scan);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (k.size() != prefix.size() + 4 || v.size() != 9) return Status::Corruption("bad progress record");
    ShardProgress p;
    for (size_t i = 0; i < 4; ++i) p.shard = (p.shard << 8) | static_cast<uint8_t>(k[prefix.size() + i]);
    for (int i = 7; i >= 0; --i) p.next_position = (p.next_position << 8) | static_cast<uint8_t>(v[i]);
    p.done = v[8] != 0;
    out.push_back(p);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading progress");
  return out;
}

Status Store::ForEachResult(const ScanId& scan, const std::function<bool(const ProbeResult&)>& visit) {
  std::string prefix = ResultPrefix(scan);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    ProbeResult r;
    Status s = DecodeResult(std::string_view(it->key().data(), it->key().size()),
                            std::string_view(it->value().data(), it->value().size()), r);
    if (!s.ok()) return s;
    if (!visit(r)) break;
  }
  return FromRocks(it->status(), "reading results");
}

Status Store::WriteEvidence(const ScanId& scan, const std::vector<ServiceEvidence>& evidence) {
  if (Status s = RefuseWrite("service evidence"); !s.ok()) return s;
  rocksdb::WriteBatch wb;
  for (const auto& ev : evidence) {
    if (ev.tls)
      for (const auto& cert : ev.tls->chain)
        if (!cert.der.empty()) wb.Put(CertificateKey(cert.sha256), cert.der);
    wb.Put(EvidenceKey(scan, ev.address, ev.port), EncodeEvidence(ev));
  }
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "writing service evidence");
}

namespace {

// Loads and parses certificates by fingerprint, each once per call site.
class CertificateLoader {
 public:
  explicit CertificateLoader(rocksdb::DB* db) : db_(db) {}
  Result<CertificateInfo> operator()(const std::array<uint8_t, 32>& fp) {
    std::string key = CertificateKey(fp);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    std::string der;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &der);
    if (s.IsNotFound()) return Status::Corruption("certificate " + FingerprintHex(fp) + " is missing");
    if (!s.ok()) return FromRocks(s, "reading certificate");
    auto cert = ParseCertificate(der);
    if (!cert.ok()) return cert.status();
    cache_.emplace(key, *cert);
    return cert;
  }

 private:
  rocksdb::DB* db_;
  std::map<std::string, CertificateInfo> cache_;
};

}  // namespace

Result<ServiceEvidence> Store::GetEvidence(const ScanId& scan, IpAddress address, uint16_t port) {
  std::string key = EvidenceKey(scan, address, port), value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return Status::NotFound("no service evidence");
  if (!s.ok()) return FromRocks(s, "reading service evidence");
  CertificateLoader load(db_.get());
  return DecodeEvidence(key, value, std::ref(load));
}

Status Store::ForEachEvidence(const ScanId& scan, const std::function<bool(const ServiceEvidence&)>& visit) {
  std::string prefix = EvidencePrefix(scan);
  CertificateLoader load(db_.get());
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto ev = DecodeEvidence(std::string_view(it->key().data(), it->key().size()),
                             std::string_view(it->value().data(), it->value().size()), std::ref(load));
    if (!ev.ok()) return ev.status();
    if (!visit(*ev)) break;
  }
  return FromRocks(it->status(), "reading service evidence");
}

Status Store::PutMeta(std::string_view key, std::string_view value, bool sync) {
  if (key.empty()) return Status::InvalidArgument("empty metadata key");
  if (Status s = RefuseWrite("metadata '" + std::string(key) + "'"); !s.ok()) return s;
  rocksdb::WriteOptions options;
  options.sync = sync;
  return FromRocks(db_->Put(options, MetaKey(key), rocksdb::Slice(value.data(), value.size())),
                   "writing metadata '" + std::string(key) + "'");
}

Result<std::string> Store::GetMeta(std::string_view key) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey(key), &value);
  if (s.IsNotFound()) return Status::NotFound("no metadata '" + std::string(key) + "'");
  if (!s.ok()) return FromRocks(s, "reading metadata '" + std::string(key) + "'");
  return value;
}

Status Store::DeleteMeta(std::string_view key) {
  if (Status s = RefuseWrite("metadata '" + std::string(key) + "'"); !s.ok()) return s;
  return FromRocks(db_->Delete(rocksdb::WriteOptions(), MetaKey(key)), "deleting metadata '" + std::string(key) + "'");
}

Status Store::ForEachMeta(std::string_view prefix,
                         const std::function<bool(std::string_view key, std::string_view value)>& visit) {
  std::string start = MetaKey(prefix);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(start); it->Valid() && it->key().starts_with(start); it->Next()) {
    std::string_view key(it->key().data() + 1, it->key().size() - 1);  // without the 'm'
    if (!visit(key, std::string_view(it->value().data(), it->value().size()))) break;
  }
  return FromRocks(it->status(), "reading metadata");
}

std::string DefaultDataDir() {
  if (const char* d = std::getenv("NDO_DATA_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/ndo";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/ndo";
  return ".ndo";
}

}  // namespace ndo
