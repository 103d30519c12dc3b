#include "mesh/security/security_sync.h"

#include <utility>

namespace ndo::mesh {

SecuritySync::SecuritySync(NodeId self, uint64_t seed, GossipKeyMaker make_key)
    : self_(self), rng_(seed), make_key_(std::move(make_key)) {}

Status SecuritySync::Load(const Keyring& ring, const std::optional<std::string>& saved, int64_t unix_now) {
  state_ = StateFromKeyring(ring);
  if (saved) {
    auto decoded = DecodeSecurityState(*saved);
    if (!decoded.ok()) return decoded.status().WithContext("the saved security state");
    Merge(state_, *decoded);
  }
  Apply("start", unix_now);
  return Status::Ok();
}

void SecuritySync::AddSelfAsAuthority(int64_t unix_now) {
  // Members without the CA key relay enrolments to the ones announced here.
  if (AddAuthority(state_, self_)) Apply("enrolment authority", unix_now);
}

// Every change goes through here: removed keys pruned, then what to put in
// force handed to the driver.
void SecuritySync::Apply(std::string why, int64_t unix_now) {
  PruneRemovedKeys(state_, unix_now);
  SecurityChange change;
  change.why = std::move(why);
  change.persist = EncodeSecurityState(state_);
  change.keyring = EffectiveKeyring(state_, unix_now);
  if (IsRevoked(self_) && !self_revoked_) {
    self_revoked_ = true;
    change.self_revoked = true;
  }
  changes_.push_back(std::move(change));
  next_key_change_ = ::ndo::mesh::NextKeyChange(state_, unix_now);
}

bool SecuritySync::MergeIn(const SecurityState& other, int64_t unix_now) {
  if (!Merge(state_, other)) return false;
  Apply("merged from a member", unix_now);
  return true;
}

void SecuritySync::SyncWith(const std::string& address) {
  // Encoded now: a later change is sent by its own push.
  auto body = EncodeSecurityState(state_);
  if (!body.ok()) return;  // never for a state that decoded or was built here
  requests_.push_back({address, std::move(*body)});
}

// A change made here goes to every alive member at once; the periodic sync
// with a random member brings it to those that missed it.
void SecuritySync::PushToAll(const std::vector<SecurityPeer>& alive) {
  for (const SecurityPeer& p : alive)
    if (!IsRevoked(p.id)) SyncWith(p.address);
}

void SecuritySync::Tick(Time now, int64_t unix_now, const std::vector<SecurityPeer>& alive) {
  if (next_key_change_ && unix_now >= *next_key_change_) Apply("key schedule", unix_now);
  if (now < next_sync_) return;
  next_sync_ = now + kSecuritySyncInterval;
  std::vector<const SecurityPeer*> candidates;
  for (const SecurityPeer& p : alive)
    if (!IsRevoked(p.id)) candidates.push_back(&p);
  if (candidates.empty()) return;
  SyncWith(candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng_)]->address);
}

Result<std::string> SecuritySync::OnSyncRequest(std::string_view body, int64_t unix_now) {
  auto other = DecodeSecurityState(body);
  if (!other.ok()) return Status::InvalidArgument("bad security state: " + other.status().message());
  MergeIn(*other, unix_now);
  auto reply = EncodeSecurityState(state_);
  // Not the peer's fault: told apart from a bad request by its code.
  if (!reply.ok()) return Status::Corruption("cannot encode the security state: " + reply.status().message());
  return reply;
}

Status SecuritySync::OnSyncReply(std::string_view body, int64_t unix_now) {
  auto other = DecodeSecurityState(body);
  if (!other.ok()) return Status::InvalidArgument(other.status().message());
  MergeIn(*other, unix_now);
  return Status::Ok();
}

Result<RotationDone> SecuritySync::Rotate(int64_t unix_now, const std::vector<SecurityPeer>& alive) {
  Keyring held;
  held.keys = state_.keys;
  Status scheduled = Status::Unavailable("no free gossip key id");
  GossipKey fresh;
  // A fresh id may clash with a key removed meanwhile (its tombstone stays):
  // a few tries.
  for (int attempt = 0; attempt < 8 && !scheduled.ok(); ++attempt) {
    auto key = make_key_(held, unix_now);
    if (!key.ok()) {
      scheduled = key.status();
      break;
    }
    fresh = *key;
    scheduled = ScheduleRotation(state_, fresh, unix_now);
  }
  if (!scheduled.ok()) return Status::Unavailable("cannot rotate the gossip keys: " + scheduled.message());
  Apply("rotation", unix_now);
  PushToAll(alive);
  RotationDone done{fresh.id, unix_now + kRotationLead, ""};
  done.message = "new gossip key " + std::to_string(fresh.id) + " seals from unix time " +
                 std::to_string(unix_now + kRotationLead) + " (in " + std::to_string(kRotationLead) +
                 " s); the keys before it are removed " + std::to_string(kRotationOverlap) + " s later";
  return done;
}

RevocationDone SecuritySync::Revoke(const RevokedNode& revoked, int64_t unix_now, const std::vector<SecurityPeer>& alive) {
  ::ndo::mesh::Revoke(state_, revoked);
  // In force, saved and on its way to every member at once, whatever the
  // rotation below does.
  Apply("revocation", unix_now);
  PushToAll(alive);
  // The removed node knows the gossip keys: new ones, which it will never
  // receive (every stream refuses it now), replace them.
  RevocationDone done{"", Rotate(unix_now, alive)};
  done.message = "node " + revoked.node.Hex() + (revoked.name.empty() ? "" : " (" + revoked.name + ")") +
                 " is revoked: every member refuses its streams and datagrams; " +
                 (done.rotation.ok() ? done.rotation->message : done.rotation.status().message());
  return done;
}

std::vector<SecuritySyncRequest> SecuritySync::TakeRequests() { return std::exchange(requests_, {}); }
std::vector<SecurityChange> SecuritySync::TakeChanges() { return std::exchange(changes_, {}); }

}  // namespace ndo::mesh
