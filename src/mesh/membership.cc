#include "mesh/membership.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "scan/permutation.h"

namespace ndo::mesh {

std::string NodeId::Hex() const {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

std::string_view MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "alive";
    case MemberState::kSuspect: return "suspect";
    case MemberState::kDead: return "dead";
    case MemberState::kLeft: return "left";
  }
  return "unknown";
}

namespace {

bool Gone(MemberState s) { return s == MemberState::kDead || s == MemberState::kLeft; }

Update AliveUpdate(const Member& m) { return {Update::Kind::kAlive, m.info, m.incarnation, m.info.id}; }

}  // namespace

Membership::Membership(MemberInfo self, MembershipConfig config, uint64_t seed, Time now, uint64_t incarnation)
    : cfg_(config), rng_(seed ^ 0x9e3779b97f4a7c15ULL) {
  self_.info = std::move(self);
  self_.incarnation = incarnation;
  self_.state_since = self_.alive_since = now;
  next_probe_ = now + cfg_.probe_interval;
  next_reconnect_ = now + cfg_.reconnect_interval;
  Enqueue(AliveUpdate(self_));
  UpdateCoordinator(now);
}

// Deterministic for a given seed, on every platform (the scan's generator).
uint64_t Membership::NextRandom() { return SplitMix64(rng_); }

size_t Membership::AliveCount() const {
  size_t n = left_ ? 0 : 1;
  for (const auto& [id, m] : members_) n += !Gone(m.state);
  return n;
}

void Membership::Join(const std::vector<std::string>& seeds, Time now) {
  for (const auto& address : seeds) {
    Message ping;
    ping.type = Message::Type::kPing;
    ping.seq = next_seq_++;
    Send(address, std::move(ping));
  }
  UpdateCoordinator(now);
}

void Membership::Send(const std::string& address, Message msg) {
  msg.sender = self_.info.id;
  // Every ping carries its sender's own record: whoever is pinged learns it,
  // even once the gossip about it has run out of retransmissions.
  if (msg.type == Message::Type::kPing && !left_) msg.updates.insert(msg.updates.begin(), AliveUpdate(self_));
  // Piggyback the least-sent updates; each goes out about mult * log10(N+1) times.
  int limit = cfg_.retransmit_mult * static_cast<int>(std::ceil(std::log10(static_cast<double>(AliveCount()) + 1)));
  limit = std::max(limit, 1);
  std::stable_sort(broadcasts_.begin(), broadcasts_.end(),
                   [](const Broadcast& a, const Broadcast& b) { return a.transmits < b.transmits; });
  for (auto& b : broadcasts_) {
    if (msg.updates.size() >= cfg_.max_updates_per_message) break;
    msg.updates.push_back(b.update);
    ++b.transmits;
  }
  std::erase_if(broadcasts_, [&](const Broadcast& b) { return b.transmits >= limit; });
  out_.push_back({address, std::move(msg)});
}

void Membership::Enqueue(Update u) {
  // A newer word about a member replaces the older one still queued.
  std::erase_if(broadcasts_, [&](const Broadcast& b) { return b.update.info.id == u.info.id; });
  broadcasts_.push_back({std::move(u), 0});
}

std::vector<Outgoing> Membership::TakeOutgoing() {
  std::vector<Outgoing> out;
  out.swap(out_);
  return out;
}

void Membership::AdjustHealth(int delta) { local_health_ = std::clamp(local_health_ + delta, 0, cfg_.max_local_health); }

Duration Membership::SuspicionTimeout(size_t confirmations) const {
  double n = static_cast<double>(std::max<size_t>(AliveCount(), 1));
  auto interval = std::chrono::duration<double>(cfg_.probe_interval).count();
  double min_s = cfg_.suspicion_mult * std::max(1.0, std::log10(n + 1)) * interval;
  double max_s = cfg_.suspicion_max_mult * min_s;
  // Lifeguard: from max down to min as independent confirmations arrive.
  double k = std::max(1, cfg_.indirect_checks);
  double frac = std::log(static_cast<double>(confirmations) + 1) / std::log(k + 1);
  double t = std::max(min_s, max_s - (max_s - min_s) * std::min(1.0, frac));
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(t));
}

std::vector<NodeId> Membership::RandomMembers(size_t k, const NodeId& exclude) {
  std::vector<NodeId> candidates;
  for (const auto& [id, m] : members_)
    if (m.state == MemberState::kAlive && id != exclude) candidates.push_back(id);
  for (size_t i = 0; i < candidates.size() && i < k; ++i) {
    size_t j = i + NextRandom() % (candidates.size() - i);
    std::swap(candidates[i], candidates[j]);
  }
  if (candidates.size() > k) candidates.resize(k);
  return candidates;
}

void Membership::Probe(Time now) {
  // Round-robin over a shuffled list, reshuffled each round (SWIM's bound on
  // the time to first detection).
  if (probe_index_ >= probe_order_.size()) {
    probe_order_.clear();
    for (const auto& [id, m] : members_)
      if (!Gone(m.state)) probe_order_.push_back(id);
    for (size_t i = probe_order_.size(); i > 1; --i) std::swap(probe_order_[i - 1], probe_order_[NextRandom() % i]);
    probe_index_ = 0;
  }
  while (probe_index_ < probe_order_.size()) {
    NodeId target = probe_order_[probe_index_++];
    auto it = members_.find(target);
    if (it == members_.end() || Gone(it->second.state)) continue;
    PendingProbe p;
    p.target = target;
    p.seq = next_seq_++;
    p.ack_deadline = now + Scaled(cfg_.probe_timeout);
    p.period_end = now + Scaled(cfg_.probe_interval);
    pending_ = p;
    Message ping;
    ping.type = Message::Type::kPing;
    ping.seq = p.seq;
    ping.target = target;
    Send(it->second.info.address, std::move(ping));
    return;
  }
}

void Membership::ExpireProbe(Time now) {
  if (!pending_) return;
  PendingProbe& p = *pending_;
  auto it = members_.find(p.target);
  if (it == members_.end() || Gone(it->second.state)) {
    pending_.reset();
    return;
  }
  if (!p.indirect_sent && now >= p.ack_deadline) {
    p.indirect_sent = true;
    for (const NodeId& helper : RandomMembers(static_cast<size_t>(cfg_.indirect_checks), p.target)) {
      Message req;
      req.type = Message::Type::kPingReq;
      req.seq = p.seq;
      req.target = p.target;
      req.target_address = it->second.info.address;
      Send(members_[helper].info.address, std::move(req));
    }
  }
  if (now >= p.period_end) {
    // No ack, directly or through others: suspect it, and doubt ourselves a
    // little (Lifeguard: a missed ack may be our own fault).
    AdjustHealth(+1);
    Update u{Update::Kind::kSuspect, it->second.info, it->second.incarnation, self_.info.id};
    pending_.reset();
    ApplySuspect(u, now);
  }
}

void Membership::Tick(Time now) {
  if (left_) return;
  ExpireProbe(now);
  for (auto it = forwards_.begin(); it != forwards_.end();)
    it = now >= it->second.expires ? forwards_.erase(it) : std::next(it);

  // Suspicions that ran out become deaths.
  for (auto it = suspicions_.begin(); it != suspicions_.end();) {
    auto m = members_.find(it->first);
    if (m == members_.end() || m->second.state != MemberState::kSuspect) {
      it = suspicions_.erase(it);
      continue;
    }
    if (now - it->second.started >= SuspicionTimeout(it->second.confirmations.size())) {
      Update dead{Update::Kind::kDead, m->second.info, m->second.incarnation, self_.info.id};
      it = suspicions_.erase(it);
      ApplyDead(dead, now);
      continue;
    }
    ++it;
  }

  if (now >= next_probe_ && !pending_) {
    Probe(now);
    next_probe_ = now + Scaled(cfg_.probe_interval);
  }

  // Now and then, knock on a dead member's door: a healed partition merges.
  if (now >= next_reconnect_) {
    next_reconnect_ = now + cfg_.reconnect_interval;
    std::vector<const Member*> dead;
    for (const auto& [id, m] : members_)
      if (m.state == MemberState::kDead) dead.push_back(&m);
    if (!dead.empty()) {
      const Member* m = dead[NextRandom() % dead.size()];
      Message ping;
      ping.type = Message::Type::kPing;
      ping.seq = next_seq_++;
      ping.target = m->info.id;
      Send(m->info.address, std::move(ping));
    }
  }

  // Reap the long dead; keep a tombstone so stale gossip cannot revive them.
  for (auto it = members_.begin(); it != members_.end();) {
    if (Gone(it->second.state) && now - it->second.state_since >= cfg_.reap_after) {
      reaped_[it->first] = now;
      it = members_.erase(it);
    } else {
      ++it;
    }
  }
  UpdateCoordinator(now);
}

void Membership::OnMessage(const std::string& from, const Message& msg, Time now) {
  if (left_ || msg.sender == self_.info.id) return;
  for (const Update& u : msg.updates) Apply(u, msg.sender, now);

  switch (msg.type) {
    case Message::Type::kPing: {
      if (!msg.target.empty() && msg.target != self_.info.id) return;  // meant for a previous owner of this address
      Message ack;
      ack.type = Message::Type::kAck;
      ack.seq = msg.seq;
      ack.target = self_.info.id;
      // "You are dead to me": lets a node back from a partition refute at once.
      if (auto it = members_.find(msg.sender); it != members_.end() && Gone(it->second.state)) {
        Update dead{it->second.state == MemberState::kLeft ? Update::Kind::kLeft : Update::Kind::kDead,
                    it->second.info, it->second.incarnation, self_.info.id};
        ack.updates.push_back(dead);
      }
      // The sender may not know us yet (a join through a seed).
      if (members_.find(msg.sender) == members_.end()) ack.updates.push_back(AliveUpdate(self_));
      Send(from, std::move(ack));
      break;
    }
    case Message::Type::kAck: {
      // msg.target names the member whose liveness the ack proves: the sender
      // of a direct ack, or the member a helper pinged for us.
      if (pending_ && msg.seq == pending_->seq && msg.target == pending_->target) {
        pending_.reset();
        AdjustHealth(-1);
      } else if (auto f = forwards_.find(msg.seq); f != forwards_.end() && f->second.target == msg.sender) {
        Message fwd;
        fwd.type = Message::Type::kAck;
        fwd.seq = f->second.requester_seq;
        fwd.target = msg.sender;
        Send(f->second.requester_address, std::move(fwd));
        forwards_.erase(f);
      }
      break;
    }
    case Message::Type::kPingReq: {
      uint32_t seq = next_seq_++;
      forwards_[seq] = {from, msg.seq, msg.target, now + Scaled(cfg_.probe_interval)};
      Message ping;
      ping.type = Message::Type::kPing;
      ping.seq = seq;
      ping.target = msg.target;
      Send(msg.target_address, std::move(ping));
      break;
    }
  }
  UpdateCoordinator(now);
}

void Membership::Apply(const Update& u, const NodeId& via, Time now) {
  if (u.info.id.empty()) return;
  switch (u.kind) {
    case Update::Kind::kAlive: ApplyAlive(u, via, now); break;
    case Update::Kind::kSuspect: ApplySuspect(u, now); break;
    case Update::Kind::kDead:
    case Update::Kind::kLeft: ApplyDead(u, now); break;
  }
}

void Membership::Refute(uint64_t accused_incarnation) {
  self_.incarnation = std::max(self_.incarnation, accused_incarnation) + 1;
  AdjustHealth(+1);  // being accused hints that our own acks are late
  Enqueue(AliveUpdate(self_));
}

void Membership::ApplyAlive(const Update& u, const NodeId& via, Time now) {
  if (u.info.id == self_.info.id) {
    if (u.incarnation > self_.incarnation) Refute(u.incarnation);  // someone speaks for us with a newer word
    return;
  }
  auto it = members_.find(u.info.id);
  if (it == members_.end()) {
    // A reaped member returns only in its own voice, never through stale gossip.
    if (reaped_.count(u.info.id) && via != u.info.id) return;
    reaped_.erase(u.info.id);
    Member m;
    m.info = u.info;
    m.incarnation = u.incarnation;
    m.state_since = m.alive_since = now;
    members_.emplace(u.info.id, std::move(m));
    Enqueue(u);
    return;
  }
  Member& m = it->second;
  if (u.incarnation <= m.incarnation) return;  // stale or already known
  if (m.state == MemberState::kLeft && via != u.info.id) return;
  bool was_gone = Gone(m.state);
  m.info = u.info;
  m.incarnation = u.incarnation;
  if (m.state != MemberState::kAlive) m.state_since = now;
  if (was_gone) m.alive_since = now;
  m.state = MemberState::kAlive;
  suspicions_.erase(u.info.id);
  Enqueue(u);
}

void Membership::ApplySuspect(const Update& u, Time now) {
  if (u.info.id == self_.info.id) {
    if (u.incarnation >= self_.incarnation) Refute(u.incarnation);
    return;
  }
  auto it = members_.find(u.info.id);
  if (it == members_.end()) return;
  Member& m = it->second;
  if (u.incarnation < m.incarnation || Gone(m.state)) return;
  if (m.state == MemberState::kSuspect && u.incarnation == m.incarnation) {
    // An independent confirmation shortens the suspicion (Lifeguard).
    auto& s = suspicions_[u.info.id];
    if (u.from != self_.info.id && std::find(s.confirmations.begin(), s.confirmations.end(), u.from) == s.confirmations.end()) {
      s.confirmations.push_back(u.from);
      Enqueue(u);
    }
    return;
  }
  m.incarnation = u.incarnation;
  m.state = MemberState::kSuspect;
  m.state_since = now;
  suspicions_[u.info.id] = Suspicion{now, {}};
  Update fwd = u;
  fwd.info = m.info;
  Enqueue(fwd);
}

void Membership::ApplyDead(const Update& u, Time now) {
  bool left = u.kind == Update::Kind::kLeft;
  if (u.info.id == self_.info.id) {
    if (!left_ && u.incarnation >= self_.incarnation) Refute(u.incarnation);
    return;
  }
  auto it = members_.find(u.info.id);
  if (it == members_.end()) return;
  Member& m = it->second;
  if (u.incarnation < m.incarnation || Gone(m.state)) return;
  m.incarnation = u.incarnation;
  m.state = left ? MemberState::kLeft : MemberState::kDead;
  m.state_since = now;
  suspicions_.erase(u.info.id);
  if (pending_ && pending_->target == u.info.id) pending_.reset();
  Update fwd = u;
  fwd.info = m.info;
  Enqueue(fwd);
}

void Membership::Leave(Time now) {
  if (left_) return;
  Update bye{Update::Kind::kLeft, self_.info, self_.incarnation, self_.info.id};
  Enqueue(bye);
  // Tell a few members at once; the rest hear it through them.
  for (const NodeId& id : RandomMembers(static_cast<size_t>(cfg_.indirect_checks) + 1, NodeId{})) {
    Message ping;
    ping.type = Message::Type::kPing;
    ping.seq = next_seq_++;
    ping.target = id;
    Send(members_[id].info.address, std::move(ping));
  }
  left_ = true;
  UpdateCoordinator(now);
}

Time Membership::NextWakeup() const {
  if (left_) return Time::max();
  // While a probe is out, the next one waits for its verdict.
  Time t = pending_ ? (pending_->indirect_sent ? pending_->period_end : pending_->ack_deadline) : next_probe_;
  t = std::min(t, next_reconnect_);
  for (const auto& [id, s] : suspicions_) t = std::min(t, s.started + SuspicionTimeout(s.confirmations.size()));
  return t;
}

void Membership::UpdateCoordinator(Time now) {
  std::optional<std::pair<uint32_t, NodeId>> best;
  auto consider = [&](const Member& m) {
    if (Gone(m.state) || now - m.alive_since < cfg_.coordinator_stabilisation) return;
    std::pair<uint32_t, NodeId> key{m.info.priority, m.info.id};
    if (!best || key < *best) best = key;
  };
  if (!left_) consider(self_);
  for (const auto& [id, m] : members_) consider(m);
  std::optional<NodeId> chosen;
  if (best) chosen = best->second;
  if (chosen != coordinator_) {
    coordinator_ = chosen;
    ++epoch_;
  }
}

}  // namespace ndo::mesh
