// SimMesh's node services: the production RejoinPolicy and SecuritySync,
// driven at the points mesh_node.cc drives them, over the simulated network
// and clock. Only the driving is here (what is called when, what is carried
// where); every decision is the services' own. mesh_node.cc's counterparts:
//
//   StartServices      Node::Start (rejoin_.emplace, Start) and
//                      LoadSecurityState (security_.emplace, Load)
//   ObserveServices    the end of AfterInput (Observe, SyncSoon)
//   TickServices       OnTimer after core_->Tick (StartRejoin, Tick ->
//                      core_->Join, security_->Tick, DrainSecurity), on
//                      a timer of their own (SimMesh::Reschedule says why)
//   ServicesWakeup     ArmTimer's share of the services
//   StartRejoin        StartRejoin
//   DrainSecurity, PutInForce, SendSecuritySync, OnSecurityRequest (the
//   peer's OnSecuritySync), OnSecurityReply (SendSecuritySync's callback)
//
// The store is modelled by what it keeps across a crash: the saved members,
// the security state and the keyring file.
#include <algorithm>

#include "scan/permutation.h"
#include "sim_mesh.h"

namespace ndo::mesh::sim {

uint64_t SimMesh::ServiceSeed(int i, uint64_t salt) const {
  // Not from rng_ (the membership's draws stay as without the services),
  // and new for every process of the node, as the daemon seeds from the OS.
  uint64_t state = cfg_.seed ^ salt ^ (static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL) ^
                   (services_[i].starts * 0xbf58476d1ce4e5b9ULL);
  return SplitMix64(state);
}

void SimMesh::StartServices(int i) {
  Services& sv = services_[i];
  ++sv.starts;
  if (cfg_.rejoin) {
    // The daemon's RejoinConfig (api/node.h join_retry_*, the membership's
    // reap_after). Started by Join; until then, as a founding node's (a
    // Start without addresses), it only watches for being alone.
    RejoinConfig rc;
    rc.reap_after = cfg_.membership.reap_after;
    sv.rejoin.emplace(rc, ServiceSeed(i, 0x7265a017e1ULL));
  }
  if (cfg_.seal && cfg_.security_sync) {
    sv.security.emplace(nodes_[i]->self().id, ServiceSeed(i, 0x5ec5a1c0ULL), make_key_);
    if (Status s = sv.security->Load(sv.keyring, sv.saved_security, UnixNow(i)); !s.ok()) {
      // Never with states this simulation wrote; a daemon would not start.
      ++service_stats_.security_errors;
      sv.security.reset();
      return;
    }
    DrainSecurity(i);
  }
}

void SimMesh::TakeJoinAttempt(int i) {
  auto attempt = services_[i].rejoin->Tick(now_);
  if (!attempt) return;
  ++service_stats_.join_attempts;
  nodes_[i]->Join(attempt->addresses, now_);
}

void SimMesh::ObserveServices(int i) {
  Services& sv = services_[i];
  if (!sv.rejoin) return;
  const Membership& core = *nodes_[i];
  // A join just completed: the security state at once (a rotation or a
  // revocation may be under way), not after the first sync interval.
  if (sv.rejoin->Observe(core.joined(), core.AliveCount(), now_) && sv.security) sv.security->SyncSoon(now_);
  for (const RejoinEvent& e : sv.rejoin->TakeEvents()) {
    if (e.kind == RejoinEvent::Kind::kRejoining) ++service_stats_.rejoins;
    if (e.kind == RejoinEvent::Kind::kRejoined) ++service_stats_.rejoined;
    if (rejoin_events_) rejoin_events_(i, e);
  }
}

void SimMesh::TickServices(int i) {
  Services& sv = services_[i];
  if (sv.rejoin) {
    if (sv.rejoin->RejoinDue(now_)) StartRejoin(i);
    TakeJoinAttempt(i);
  }
  if (sv.security) {
    // Tick reads the alive members only for its periodic exchange, once
    // NextSync is due: the list (O(N)) is built only then.
    std::vector<SecurityPeer> alive;
    if (now_ >= sv.security->NextSync()) alive = AlivePeers(i);
    sv.security->Tick(now_, UnixNow(i), alive);
    DrainSecurity(i);
  }
}

Time SimMesh::ServicesWakeup(int i) const {
  const Services& sv = services_[i];
  Time w = sv.rejoin ? sv.rejoin->NextWakeup() : Time::max();
  if (sv.security) {
    w = std::min(w, sv.security->NextSync());
    if (auto change = sv.security->NextKeyChange()) {
      // As ArmTimer: the change's Unix second, read off this node's clock,
      // clamped (a far time is looked at again within a minute), plus 20 ms.
      int64_t in_s = std::clamp<int64_t>(*change - UnixNow(i), 0, 60);
      w = std::min(w, now_ + std::chrono::seconds(in_s) + std::chrono::milliseconds(20));
    }
  }
  return w;
}

void SimMesh::SaveMembers(int i) {
  Services& sv = services_[i];
  bool keep_absent = !sv.rejoin || sv.rejoin->KeepAbsentMembers(now_);
  sv.saved = MergeSavedMembers(KnownMembers(*nodes_[i]), sv.saved, keep_absent);
}

void SimMesh::StartRejoin(int i) {
  Services& sv = services_[i];
  SaveMembers(i);
  sv.rejoin->Rejoin(RejoinAddresses(nodes_[i]->self().address, sv.saved, sv.seeds), sv.seeds.size(), now_);
}

std::vector<SecurityPeer> SimMesh::AlivePeers(int i) const {
  std::vector<SecurityPeer> alive;
  for (const auto& [id, m] : nodes_[i]->members())
    if (m.info && m.state == MemberState::kAlive) alive.push_back({id, m.info->address});
  return alive;
}

void SimMesh::DrainSecurity(int i) {
  Services& sv = services_[i];
  for (const SecurityChange& change : sv.security->TakeChanges()) PutInForce(i, change);
  for (SecuritySyncRequest& request : sv.security->TakeRequests()) SendSecuritySync(i, std::move(request));
}

void SimMesh::PutInForce(int i, const SecurityChange& change) {
  Services& sv = services_[i];
  // "On disk" first: what follows survives a crash.
  if (change.persist.ok()) sv.saved_security = *change.persist;
  else ++service_stats_.security_errors;
  RevocationSet revoked;
  for (const RevokedNode& r : sv.security->state().revoked) revoked.Add(r.serial_hex, r.node);
  sv.revoked = std::move(revoked);
  const Result<Keyring>& ring = change.keyring;
  if (!ring.ok()) {
    ++service_stats_.security_errors;
    return;
  }
  if (!cfg_.seal) return;
  // As mesh_node.cc: installed (and the keyring file written) only when the
  // primary or the set of ids changed.
  const Keyring& current = seals_[i]->keyring();
  auto ids = [](const Keyring& k) {
    std::vector<uint32_t> out;
    for (const GossipKey& g : k.keys) out.push_back(g.id);
    return out;
  };
  if (current.primary == ring->primary && ids(current) == ids(*ring)) return;
  if (Status s = seals_[i]->SetKeyring(*ring); !s.ok()) {
    ++service_stats_.security_errors;
    return;
  }
  ++service_stats_.keyrings_installed;
  sv.keyring = *ring;
}

void SimMesh::SendSecuritySync(int i, SecuritySyncRequest request) {
  // mesh_node.cc RequestReply over a stream: a handshake and the transfer
  // (a few round trips, as a push-pull), then the reply. A failure reaches
  // the service as nothing (the daemon logs it); the periodic exchange
  // tries again.
  ++service_stats_.security_requests;
  traffic_[i].security_bytes += request.body.size();
  int to = ParseAddress(request.address);
  if (to < 0 || !Reachable(i, to)) {
    ++service_stats_.security_failed;
    return;
  }
  Push(now_ + DrawLatency(service_rng_) * 3, Kind::kSecurityRequest, i, to,
       Store({{}, {}, std::move(request.address), std::move(request.body)}));
}

void SimMesh::OnSecurityRequest(const Event& e, Payload& p) {
  const int to = e.to;
  if (!Reachable(e.from, to) || !services_[to].security) {
    ++service_stats_.security_failed;
    return;
  }
  if (Refused(e.from, to)) {
    ++service_stats_.security_failed;
    ++service_stats_.security_refused;
    return;
  }
  // The peer's OnSecuritySync: merged, put in force, then answered.
  auto reply = services_[to].security->OnSyncRequest(p.wire, UnixNow(to));
  DrainSecurity(to);
  Reschedule(to);
  if (!reply.ok()) {
    ++service_stats_.security_errors;
    ++service_stats_.security_failed;
    return;
  }
  traffic_[to].security_bytes += reply->size();
  Push(now_ + DrawLatency(service_rng_), Kind::kSecurityReply, to, e.from,
       Store({{}, {}, std::move(p.address), std::move(*reply)}));
}

void SimMesh::OnSecurityReply(const Event& e, Payload& p) {
  const int to = e.to;  // the requester
  if (!up_[to] || !services_[to].security) {
    ++service_stats_.security_failed;
    return;
  }
  if (Status s = services_[to].security->OnSyncReply(p.wire, UnixNow(to)); !s.ok()) {
    ++service_stats_.security_errors;
    return;
  }
  ++service_stats_.security_replies;
  DrainSecurity(to);
  Reschedule(to);
}

Result<RotationDone> SimMesh::RotateKeys(int i) {
  Services& sv = services_[i];
  if (!sv.security || !up_[i]) return Status::Unavailable("node " + std::to_string(i) + " runs no SecuritySync");
  auto done = sv.security->Rotate(UnixNow(i), AlivePeers(i));
  DrainSecurity(i);
  Reschedule(i);  // the key schedule's next change
  return done;
}

Result<RevocationDone> SimMesh::RemoveMember(int at, int victim) {
  Services& sv = services_[at];
  if (!sv.security || !up_[at]) return Status::Unavailable("node " + std::to_string(at) + " runs no SecuritySync");
  int64_t unix_now = UnixNow(at);
  const MemberInfo& who = nodes_[victim]->self();
  RevocationDone done = sv.security->Revoke({who.id, "", unix_now, who.name}, unix_now, AlivePeers(at));
  DrainSecurity(at);
  Reschedule(at);
  return done;
}

}  // namespace ndo::mesh::sim
