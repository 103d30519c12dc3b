#include "mesh/work/record_signatures.h"

#include <tuple>

namespace ndo::mesh {
namespace {

void PutBE(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>(v >> (8 * i));
}

void PutNode(std::string& out, const NodeId& n) {
  PutBE(out, n.hi, 8);
  PutBE(out, n.lo, 8);
}

std::string Domain(std::string_view tag) {
  std::string out(tag);
  out += '\0';
  return out;
}

void PutId(std::string& out, const ScanId& id) { out.append(reinterpret_cast<const char*>(id.data()), id.size()); }

// Verify's error, said of what was signed and by whom; the code kept.
Status Refusal(const Status& s, std::string_view what, const NodeId& signer) {
  std::string why = std::string(what) + " signed by " + signer.Hex() + ": ";
  switch (s.code()) {
    case Status::Code::kNotFound: return Status::NotFound(why + "certificate not known here");
    case Status::Code::kInvalidArgument: return Status::InvalidArgument(why + "bad signature");
    default: return Status::PermissionDenied(why + s.message());
  }
}

}  // namespace

std::string DefinitionSigningBytes(std::string_view definition_bytes) {
  return Domain("ndo-scan-definition-v1") + std::string(definition_bytes);
}

std::string ControlSigningBytes(const ScanId& scan, const ControlRegister& c) {
  std::string out = Domain("ndo-scan-control-v1");
  PutId(out, scan);
  out += static_cast<char>(c.value);
  PutBE(out, static_cast<uint64_t>(c.stamp.wall_ms), 8);
  PutBE(out, c.stamp.logical, 4);
  PutNode(out, c.stamp.node);
  return out;
}

std::string DoneSigningBytes(const ScanId& scan, std::string_view vantage, uint32_t shard, const ShardDone& d) {
  std::string out = Domain("ndo-shard-done-v1");
  PutId(out, scan);
  // Vantages are at most 64 bytes (pool_state.cc); the length keeps the
  // fields after it unambiguous whatever the name.
  PutBE(out, vantage.size() & 0xffff, 2);
  out.append(vantage.substr(0, 0xffff));
  PutBE(out, shard, 4);
  PutBE(out, d.results, 8);
  out.append(reinterpret_cast<const char*>(d.digest.data()), d.digest.size());
  PutBE(out, d.lease_epoch, 8);
  PutBE(out, d.lease_counter, 8);
  PutNode(out, d.signer);
  return out;
}

void SignDefinition(RecordKeys& keys, ScanState& state) {
  state.definition_signature = keys.Sign(DefinitionSigningBytes(state.definition_bytes));
}

void SignControl(RecordKeys& keys, const ScanId& scan, ControlRegister& control) {
  control.signature = keys.Sign(ControlSigningBytes(scan, control));
}

void SignDone(RecordKeys& keys, const NodeId& self, const ScanId& scan, std::string_view vantage, uint32_t shard,
              const ShardLease& held, ShardDone& done) {
  done.signer = self;
  done.lease_epoch = held.epoch;
  done.lease_counter = held.counter;
  done.signature = keys.Sign(DoneSigningBytes(scan, vantage, shard, done));
}

Status CheckDefinition(RecordKeys& keys, const ScanState& state) {
  const NodeId& submitter = state.definition.submitter;
  auto info = keys.Verify(submitter, DefinitionSigningBytes(state.definition_bytes), state.definition_signature);
  if (!info.ok()) return Refusal(info.status(), "scan definition", submitter);
  if (!info->is_operator)
    return Status::PermissionDenied("scan definition submitted by " + submitter.Hex() + ", not an operator");
  return Status::Ok();
}

Status CheckControl(RecordKeys& keys, const ScanId& scan, const ControlRegister& control) {
  const NodeId& node = control.stamp.node;
  auto info = keys.Verify(node, ControlSigningBytes(scan, control), control.signature);
  if (!info.ok()) return Refusal(info.status(), "control register", node);
  if (!info->is_operator)
    return Status::PermissionDenied("control register (" + std::string(ScanControlName(control.value)) + ") set by " +
                                    node.Hex() + ", not an operator");
  return Status::Ok();
}

Status CheckDone(RecordKeys& keys, const ScanState& state, size_t pool, uint32_t shard, const ShardLease& lease,
                 const ShardDone& done) {
  if (pool >= state.definition.vantages.size()) return Status::InvalidArgument("done record outside the scan");
  const std::string& vantage = state.definition.vantages[pool];
  auto info = keys.Verify(done.signer, DoneSigningBytes(state.id, vantage, shard, done), done.signature);
  if (!info.ok()) return Refusal(info.status(), "done record", done.signer);
  if (info->vantage != vantage)
    return Status::PermissionDenied("done record for a pool of vantage " + vantage + " signed by a node of vantage " +
                                    (info->vantage.empty() ? std::string("none") : info->vantage));
  bool named = lease.epoch == done.lease_epoch && lease.counter == done.lease_counter && lease.holder == done.signer;
  bool later = std::tie(lease.epoch, lease.counter) > std::tie(done.lease_epoch, done.lease_counter);
  if (!named && !later) return Status::PermissionDenied("the signer did not hold the lease");
  return Status::Ok();
}

}  // namespace ndo::mesh
