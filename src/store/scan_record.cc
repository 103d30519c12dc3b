#include "store/scan_record.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "store/records.capnp.h"

namespace ndo {
namespace {

void SetRange(schema::AddressRange::Builder b, const AddressRange& r) {
  b.setFirstHi(static_cast<uint64_t>(r.first >> 64));
  b.setFirstLo(static_cast<uint64_t>(r.first));
  b.setLastHi(static_cast<uint64_t>(r.last >> 64));
  b.setLastLo(static_cast<uint64_t>(r.last));
}

u128 Join(uint64_t hi, uint64_t lo) { return (static_cast<u128>(hi) << 64) | lo; }

void BuildSpec(schema::ScanSpec::Builder b, const ScanSpec& spec) {
  auto args = b.initArguments(static_cast<unsigned>(spec.arguments.size()));
  for (unsigned i = 0; i < spec.arguments.size(); ++i) args.set(i, spec.arguments[i]);
  const auto& ranges = spec.targets.addresses.ranges();
  auto targets = b.initTargets(static_cast<unsigned>(ranges.size()));
  for (unsigned i = 0; i < ranges.size(); ++i) SetRange(targets[i], ranges[i]);
  auto names = b.initNames(static_cast<unsigned>(spec.targets.names.size()));
  for (unsigned i = 0; i < spec.targets.names.size(); ++i) {
    const auto& n = spec.targets.names[i];
    names[i].setAddressHi(static_cast<uint64_t>(n.address.value() >> 64));
    names[i].setAddressLo(static_cast<uint64_t>(n.address.value()));
    names[i].setHostname(n.hostname);
  }
  auto ports = b.initPorts(static_cast<unsigned>(spec.ports.size()));
  for (unsigned i = 0; i < spec.ports.size(); ++i) ports.set(i, spec.ports[i]);
  b.setHasScope(spec.has_scope);
  const auto& scope = spec.scope.ranges();
  auto sc = b.initScope(static_cast<unsigned>(scope.size()));
  for (unsigned i = 0; i < scope.size(); ++i) SetRange(sc[i], scope[i]);
  b.setSeed(spec.seed);
  b.setShardCount(spec.shard_count);
  b.setStoreAll(spec.store_all);
  auto p = b.initProbe();
  p.setRate(spec.probe.rate);
  p.setConcurrency(spec.probe.concurrency);
  p.setMaxRetries(spec.probe.max_retries);
  p.setTimeoutMs(spec.probe.timeout_ms);
  p.setInitialRttMs(spec.probe.initial_rtt_ms);
  p.setMinRttMs(spec.probe.min_rtt_ms);
  p.setMaxRttMs(spec.probe.max_rtt_ms);
  auto sv = b.initService();
  sv.setBanners(spec.service.banners);
  sv.setTls(spec.service.tls);
  sv.setTlsAllPorts(spec.service.tls_all_ports);
  auto tp = sv.initTlsPorts(static_cast<unsigned>(spec.service.tls_ports.size()));
  for (unsigned i = 0; i < spec.service.tls_ports.size(); ++i) tp.set(i, spec.service.tls_ports[i]);
  sv.setConcurrency(spec.service.concurrency);
  sv.setTimeoutMs(static_cast<uint32_t>(spec.service.timeout.count()));
  sv.setTlsCaFile(spec.service.tls_ca_file);
}

Status ReadRange(schema::AddressRange::Reader r, AddressRange& out) {
  out = {Join(r.getFirstHi(), r.getFirstLo()), Join(r.getLastHi(), r.getLastLo())};
  if (out.last < out.first) return Status::Corruption("address range ends before it starts");
  return Status::Ok();
}

Status ReadSpec(schema::ScanSpec::Reader r, ScanSpec& spec) {
  for (auto a : r.getArguments()) spec.arguments.emplace_back(a.cStr(), a.size());
  for (auto t : r.getTargets()) {
    AddressRange range;
    if (Status s = ReadRange(t, range); !s.ok()) return s;
    spec.targets.addresses.Add(range);
  }
  for (auto n : r.getNames())
    spec.targets.names.push_back({IpAddress(Join(n.getAddressHi(), n.getAddressLo())), std::string(n.getHostname().cStr())});
  for (auto p : r.getPorts()) {
    if (p == 0) return Status::Corruption("port 0 in stored spec");
    spec.ports.push_back(p);
  }
  spec.has_scope = r.getHasScope();
  for (auto t : r.getScope()) {
    AddressRange range;
    if (Status s = ReadRange(t, range); !s.ok()) return s;
    spec.scope.Add(range);
  }
  spec.seed = r.getSeed();
  spec.shard_count = r.getShardCount();
  spec.store_all = r.getStoreAll();
  auto p = r.getProbe();
  spec.probe.rate = p.getRate();
  spec.probe.concurrency = p.getConcurrency();
  spec.probe.max_retries = p.getMaxRetries();
  spec.probe.timeout_ms = p.getTimeoutMs();
  spec.probe.initial_rtt_ms = p.getInitialRttMs();
  spec.probe.min_rtt_ms = p.getMinRttMs();
  spec.probe.max_rtt_ms = p.getMaxRttMs();
  if (r.hasService()) {
    auto sv = r.getService();
    spec.service.banners = sv.getBanners();
    spec.service.tls = sv.getTls();
    spec.service.tls_all_ports = sv.getTlsAllPorts();
    spec.service.tls_ports.clear();
    for (auto port : sv.getTlsPorts()) spec.service.tls_ports.push_back(port);
    spec.service.concurrency = sv.getConcurrency();
    spec.service.timeout = std::chrono::milliseconds(sv.getTimeoutMs());
    spec.service.tls_ca_file = sv.getTlsCaFile().cStr();
  }
  return ValidateSpec(spec).ok() ? Status::Ok() : Status::Corruption("stored spec is not valid: " + ValidateSpec(spec).message());
}

std::string ToBytes(capnp::MessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Reads a flat Cap'n Proto message of `bytes` with `read(root reader)`,
// which returns a Status. Never throws: kj exceptions (malformed input)
// become Corruption.
template <typename Root, typename Read>
Status ReadMessage(std::string_view bytes, const char* what, uint64_t traversal_words, Read&& read) {
  if (bytes.size() % sizeof(capnp::word) != 0) return Status::Corruption(std::string(what) + " is not word-aligned");
  // RocksDB gives no alignment guarantee: copy into words before reading.
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  Status status;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = traversal_words;
    opts.nestingLimit = 16;
    capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
    status = read(reader.getRoot<Root>());
  })) {
    return Status::Corruption(std::string("malformed ") + what + ": " + e->getDescription().cStr());
  }
  return status;
}

}  // namespace

std::string_view ScanStateName(ScanState s) {
  switch (s) {
    case ScanState::kRunning: return "running";
    case ScanState::kInterrupted: return "interrupted";
    case ScanState::kDone: return "done";
    case ScanState::kFailed: return "failed";
  }
  return "unknown";
}

std::string EncodeScanSpec(const ScanSpec& spec) {
  capnp::MallocMessageBuilder msg;
  BuildSpec(msg.initRoot<schema::ScanSpec>(), spec);
  return ToBytes(msg);
}

ScanId MakeScanId(const ScanSpec& spec, int64_t created_us) {
  std::string data = EncodeScanSpec(spec);
  data.append(reinterpret_cast<const char*>(&created_us), sizeof created_us);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  ScanId id{};
  std::memcpy(id.data(), digest, id.size());
  return id;
}

std::string EncodeScanRecord(const ScanRecord& rec) {
  capnp::MallocMessageBuilder msg;
  auto b = msg.initRoot<schema::ScanRecord>();
  b.setId(kj::arrayPtr(rec.id.data(), rec.id.size()));
  BuildSpec(b.initSpec(), rec.spec);
  b.setCreatedUs(rec.created_us);
  b.setUpdatedUs(rec.updated_us);
  b.setFinishedUs(rec.finished_us);
  b.setElapsedUs(rec.elapsed_us);
  b.setState(static_cast<schema::ScanRecord::State>(rec.state));
  b.setError(rec.error);
  b.setProbesSent(rec.counters.probes_sent);
  b.setPositionsDone(rec.counters.positions_done);
  b.setOpenCount(rec.counters.open);
  b.setClosedCount(rec.counters.closed);
  b.setFilteredCount(rec.counters.filtered);
  b.setUnreachableCount(rec.counters.unreachable);
  return ToBytes(msg);
}

Result<ScanRecord> DecodeScanRecord(std::string_view bytes) {
  ScanRecord rec;
  // A record is our own, from the local store: a generous traversal limit.
  Status status = ReadMessage<schema::ScanRecord>(bytes, "scan record", 64 * 1024 * 1024, [&](auto r) {
    auto id = r.getId();
    if (id.size() != rec.id.size()) return Status::Corruption("scan record id has " + std::to_string(id.size()) + " bytes");
    std::memcpy(rec.id.data(), id.begin(), id.size());
    Status spec = ReadSpec(r.getSpec(), rec.spec);
    rec.created_us = r.getCreatedUs();
    rec.updated_us = r.getUpdatedUs();
    rec.finished_us = r.getFinishedUs();
    rec.elapsed_us = r.getElapsedUs();
    auto state = static_cast<uint16_t>(r.getState());
    if (state > static_cast<uint16_t>(ScanState::kFailed)) return Status::Corruption("unknown scan state");
    rec.state = static_cast<ScanState>(state);
    rec.error = r.getError().cStr();
    rec.counters.probes_sent = r.getProbesSent();
    rec.counters.positions_done = r.getPositionsDone();
    rec.counters.open = r.getOpenCount();
    rec.counters.closed = r.getClosedCount();
    rec.counters.filtered = r.getFilteredCount();
    rec.counters.unreachable = r.getUnreachableCount();
    return spec;
  });
  if (!status.ok()) return status;
  return rec;
}

Result<ScanSpec> DecodeScanSpec(std::string_view bytes) {
  ScanSpec spec;
  // A spec may come from a peer (inside a scan definition): traversal is
  // bounded by the input's own size, so aliased pointers cannot amplify it.
  uint64_t words = bytes.size() / sizeof(capnp::word);
  Status status = ReadMessage<schema::ScanSpec>(bytes, "scan spec", std::max<uint64_t>(words * 2, 64),
                                                [&](auto r) { return ReadSpec(r, spec); });
  if (!status.ok()) return status;
  return spec;
}

Result<std::string> MatchScanId(const std::vector<std::string>& ids, std::string_view prefix) {
  if (prefix.size() < 4) return Status::InvalidArgument("give at least 4 hex digits of the scan id");
  std::string lower(prefix);
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  std::vector<const std::string*> hits;
  for (const auto& id : ids)
    if (id.starts_with(lower)) hits.push_back(&id);
  if (hits.empty())
    return Status::NotFound("no distributed scan with id '" + std::string(prefix) + "' (see 'ndo view list')");
  if (hits.size() > 1)
    return Status::InvalidArgument("scan id prefix '" + std::string(prefix) + "' is ambiguous: it matches " +
                                   *hits[0] + " and " + *hits[1]);
  return *hits.front();
}

}  // namespace ndo
