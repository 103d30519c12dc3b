// mesh/api/policy.h: what the members' scan policies refuse of each pool,
// from the node state the agent saves (itself and every member it knew),
// and the policy `ndo init --allow` leaves for the first start.
#include "mesh/api/policy.h"

#include "mesh/agent/data_dir.h"
#include "mesh/agent/node_identity.h"

namespace ndo::mesh {

Status SaveInitPolicy(const std::string& data_dir, const IntervalSet& policy) {
  auto store = OpenDataDirStore(data_dir);
  if (!store.ok()) return store.status();
  return (*store)->PutMeta(kInitPolicyKey, EncodeScanPolicy(policy), /*sync=*/true);
}

Result<std::vector<PoolPolicy>> PoolPolicies(Store& store, const ScanState& scan) {
  auto state = LoadNodeState(store);
  if (!state.ok()) return state.status();
  std::vector<const MemberInfo*> members{&state->self};
  for (const auto& m : state->members) members.push_back(&m.info);
  std::vector<PoolPolicy> out;
  for (const std::string& vantage : scan.definition.vantages) {
    PoolPolicy pool;
    std::vector<IntervalSet> policies;
    for (const MemberInfo* m : members) {
      if (m->vantage != vantage) continue;
      if (m->allow.empty()) pool.without_policy.push_back(m->name + " (" + m->id.Hex().substr(0, 8) + ")");
      else policies.push_back(m->allow);
    }
    pool.refused = RefusedByPolicy(scan.definition, policies);
    out.push_back(std::move(pool));
  }
  return out;
}

}  // namespace ndo::mesh
