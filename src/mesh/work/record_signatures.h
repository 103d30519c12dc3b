// What the records of the replicated scan state are signed over, and the
// checks a node makes before it merges one (docs/security.md, "Signed
// records"). The formats are fixed: every node, and every test that crafts
// a record, builds the same bytes.
//
//   definition: "ndo-scan-definition-v1" 0x00 definition_bytes
//               signed by definition.submitter, an operator
//   control:    "ndo-scan-control-v1" 0x00 scan id (8) value (1)
//               wall_ms (8, big-endian) logical (4, BE) node (16: hi, lo BE)
//               signed by stamp.node, an operator
//   done:       "ndo-shard-done-v1" 0x00 scan id (8) vantage length (2, BE)
//               vantage, shard (4, BE) results (8, BE) digest (32)
//               lease_epoch (8, BE) lease_counter (8, BE) signer (16)
//               signed by `signer`, the scanner, with the lease it held
//
// The done record's holders are not signed: they are a hint of whom to
// fetch the bundle from, and a fetched bundle is checked against the
// signed digest anyway.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "mesh/work/pool_state.h"
#include "mesh/work/record_keys.h"

namespace ndo::mesh {

std::string DefinitionSigningBytes(std::string_view definition_bytes);
std::string ControlSigningBytes(const ScanId& scan, const ControlRegister& control);
std::string DoneSigningBytes(const ScanId& scan, std::string_view vantage, uint32_t shard, const ShardDone& done);

// This node's signatures, set into the record (keys.Sign).
void SignDefinition(RecordKeys& keys, ScanState& state);
void SignControl(RecordKeys& keys, const ScanId& scan, ControlRegister& control);
// Sets done.signer = self and the lease (epoch, counter) it held, then signs.
void SignDone(RecordKeys& keys, const NodeId& self, const ScanId& scan, std::string_view vantage, uint32_t shard,
              const ShardLease& held, ShardDone& done);

// The checks. Each returns Ok, or why the record is refused: NotFound when
// the signer's certificate is not known here yet (ask a member for it, then
// take the record when it comes again), PermissionDenied when the signer is
// not allowed to sign it (revoked, not an operator, another vantage, no
// lease), InvalidArgument when the signature does not verify.
//
// A new scan's definition: signed by its submitter, an operator.
Status CheckDefinition(RecordKeys& keys, const ScanState& state);
// A control register: signed by its stamp's node, an operator.
Status CheckControl(RecordKeys& keys, const ScanId& scan, const ControlRegister& control);
// A done record of shard `shard` of pool `pool` of `state`: signed by its
// signer, whose certificate binds the pool's vantage, and who held the lease
// it names. `lease` is this node's lease of the shard with the incoming one
// joined in: it must be the one the record names (same epoch and counter,
// held by the signer) or a later one (the shard was leased again since: an
// earlier lease cannot be refuted, the state keeps no history).
Status CheckDone(RecordKeys& keys, const ScanState& state, size_t pool, uint32_t shard, const ShardLease& lease,
                 const ShardDone& done);

}  // namespace ndo::mesh
