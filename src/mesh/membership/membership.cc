#include "mesh/membership/membership.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>

#include "mesh/membership/codec.h"
#include "base/ids.h"
#include "scan/permutation.h"

namespace ndo::mesh {

std::string NodeId::Hex() const { return Id128ToHex(hi, lo); }

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

// Before a suspicion runs out, a node pings the suspect itself this many
// times (at one and at half a probe interval before its deadline), carrying
// the accusation: a live suspect whose refutation gossip missed us answers
// in person. See Membership::Deadline for why few nodes ever get that far.
constexpr int kSuspectChecks = 2;

Update::Kind KindOf(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return Update::Kind::kAlive;
    case MemberState::kSuspect: return Update::Kind::kSuspect;
    case MemberState::kDead: return Update::Kind::kDead;
    case MemberState::kLeft: return Update::Kind::kLeft;
  }
  return Update::Kind::kAlive;
}

}  // namespace

Membership::Membership(MemberInfo self, MembershipConfig config, uint64_t seed, Time now, uint64_t incarnation)
    : cfg_(config), rng_(seed ^ 0x9e3779b97f4a7c15ULL) {
  max_epoch_seen_ = self.epoch;
  self_.info = std::make_shared<const MemberInfo>(std::move(self));
  self_.incarnation = incarnation;
  self_.state_since = self_.alive_since = now;
  next_probe_ = now + cfg_.probe_interval;
  next_gossip_ = now + cfg_.gossip_interval;
  next_push_pull_ = now + PushPullInterval();
  next_reconnect_ = now + cfg_.reconnect_interval;
  next_reap_ = now + std::chrono::seconds(1);
  Enqueue(SelfUpdate());
  UpdateCoordinator(now);
}

// Deterministic for a given seed, on every platform (the scan's generator).
uint64_t Membership::NextRandom() { return SplitMix64(rng_); }
double Membership::NextUniform() { return static_cast<double>(NextRandom() >> 11) * 0x1.0p-53; }  // [0, 1)

const Member* Membership::Find(const NodeId& id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

Update Membership::SelfUpdate() const {
  return {Update::Kind::kAlive, self_.info, self_.incarnation, self_.info->id};
}

Update Membership::LeftUpdate() const {
  return {Update::Kind::kLeft, self_.info, self_.incarnation, self_.info->id};
}

Update Membership::AccusationOf(const Member& m) const {
  return {KindOf(m.state), m.info, m.incarnation, self_.info->id};
}

// --- live set -------------------------------------------------------------

void Membership::AddLive(Member& m) {
  m.live_index = static_cast<uint32_t>(live_.size());
  live_.push_back(&m);
}

void Membership::RemoveLive(Member& m) {
  uint32_t i = m.live_index;
  live_[i] = live_.back();
  live_[i]->live_index = i;
  live_.pop_back();
}

void Membership::SetState(Member& m, MemberState s, Time now) {
  if (m.state == s) return;
  bool was_gone = IsGone(m.state), now_gone = IsGone(s);
  if (was_gone && !now_gone) {
    AddLive(m);
    gone_.erase(m.info->id);
    m.alive_since = now;
  } else if (!was_gone && now_gone) {
    RemoveLive(m);
    gone_[m.info->id] = now;
    if (pending_ && pending_->target == m.info->id) pending_.reset();
  }
  if (was_gone != now_gone) coordinator_dirty_ = true;
  m.state = s;
  m.state_since = now;
  Emit({MemberEvent::Kind::kState, m.info->id, s, m.incarnation, now});
}

std::vector<Member*> Membership::RandomLive(size_t k, const NodeId& exclude) {
  std::vector<Member*> picked;
  size_t n = live_.size();
  if (n == 0 || k == 0) return picked;
  if (n <= k + 1) {  // few enough: take all but the excluded
    for (Member* m : live_)
      if (m->info->id != exclude) picked.push_back(m);
    for (size_t i = picked.size(); i > 1; --i) std::swap(picked[i - 1], picked[NextRandom() % i]);
    if (picked.size() > k) picked.resize(k);
    return picked;
  }
  // Rejection sampling: k is small and n larger than k + 1.
  while (picked.size() < k) {
    Member* m = live_[NextRandom() % n];
    if (m->info->id == exclude || std::find(picked.begin(), picked.end(), m) != picked.end()) continue;
    picked.push_back(m);
  }
  return picked;
}

// --- sending --------------------------------------------------------------

int Membership::RetransmitLimit() const {
  int limit = cfg_.retransmit_mult * static_cast<int>(std::ceil(std::log10(static_cast<double>(AliveCount()) + 1)));
  return std::max(limit, 1);
}

void Membership::Dequeue(const NodeId& member) {
  auto it = queued_.find(member);
  if (it == queued_.end()) return;
  for (const auto& entry : it->second) queue_.erase(entry.second);
  queued_.erase(it);
}

void Membership::Enqueue(Update u) {
  const NodeId id = u.info->id;
  auto& entries = queued_[id];
  // A newer word about a member replaces what is still queued about it,
  // except another member's independent suspicion at the same incarnation.
  std::erase_if(entries, [&](const std::pair<Update, QueueKey>& e) {
    bool keep = u.kind == Update::Kind::kSuspect && e.first.kind == Update::Kind::kSuspect &&
                e.first.incarnation == u.incarnation && e.first.from != u.from;
    if (!keep) queue_.erase(e.second);
    return !keep;
  });
  QueueKey key{0, UINT64_MAX - queue_order_++, id};
  queue_.insert(key);
  entries.emplace_back(std::move(u), key);
}

const Update& Membership::QueuedUpdate(const QueueKey& k) const {
  for (const auto& [u, key] : queued_.at(k.id))
    if (key.order == k.order) return u;
  std::abort();  // queue_ and queued_ always hold the same entries
}

bool Membership::Send(const std::string& address, Message msg, const NodeId& to) {
  msg.sender = self_.info->id;
  // Every ping carries its sender's own record: whoever is pinged learns it,
  // even once the gossip about it has run out of retransmissions.
  if (msg.type == Message::Type::kPing && !left_) msg.updates.insert(msg.updates.begin(), SelfUpdate());
  // The accused hears the accusation directly, so it can refute at once
  // (memberlist's and Lifeguard's "buddy system").
  if (!to.empty()) {
    auto it = members_.find(to);
    if (it != members_.end() && it->second.state != MemberState::kAlive) msg.updates.push_back(AccusationOf(it->second));
  }
  size_t size = MessageSizeBound(msg);
  for (const Update& u : msg.updates) size += UpdateSizeBound(u);
  // Membership news first: the layer above depends on it, not the reverse.
  FillPayloads(msg, FillUpdates(msg, size));
  if (msg.type == Message::Type::kGossip && msg.updates.empty() && msg.payloads.empty()) return false;
  out_.push_back({address, std::move(msg)});
  return true;
}

size_t Membership::FillUpdates(Message& msg, size_t size) {
  // The least-sent queued updates (newest first among equals).
  std::vector<QueueKey> taken;
  int scanned = 0;
  for (auto it = queue_.begin(); it != queue_.end() && scanned < 64; ++it, ++scanned) {
    if (msg.updates.size() >= kMaxUpdatesPerDatagram) break;
    const Update& u = QueuedUpdate(*it);
    size_t need = UpdateSizeBound(u);
    if (size + need > cfg_.max_datagram_bytes) continue;
    size += need;
    msg.updates.push_back(u);
    taken.push_back(*it);
  }
  const int limit = RetransmitLimit();
  for (const QueueKey& k : taken) {
    queue_.erase(k);
    auto& entries = queued_.at(k.id);
    auto e = std::find_if(entries.begin(), entries.end(), [&](const auto& x) { return x.second.order == k.order; });
    QueueKey next{k.transmits + 1, k.order, k.id};
    if (next.transmits >= limit) {
      entries.erase(e);
      if (entries.empty()) queued_.erase(k.id);
    } else {
      e->second = next;
      queue_.insert(next);
    }
  }
  return size;
}

size_t Membership::FillPayloads(Message& msg, size_t size) {
  // As FillUpdates; a payload that does not fit this datagram waits for a
  // roomier one (Broadcast took only those that fit an empty gossip message).
  std::vector<PayloadQueueKey> taken;
  int scanned = 0;
  for (auto it = payload_queue_.begin(); it != payload_queue_.end() && scanned < 64; ++it, ++scanned) {
    if (msg.payloads.size() >= kMaxPayloadsPerDatagram) break;
    const std::string& p = payloads_by_key_.at(it->key).payload;
    size_t need = PayloadSizeBound(p);
    if (size + need > cfg_.max_datagram_bytes) continue;
    size += need;
    msg.payloads.push_back(p);
    taken.push_back(*it);
  }
  const int limit = RetransmitLimit();
  for (const PayloadQueueKey& k : taken) {
    payload_queue_.erase(k);
    auto e = payloads_by_key_.find(k.key);
    if (k.transmits + 1 >= limit) {
      payloads_by_key_.erase(e);
    } else {
      e->second.queued.transmits = k.transmits + 1;
      payload_queue_.insert(e->second.queued);
    }
  }
  return size;
}

void Membership::Broadcast(std::string key, std::string payload) {
  if (left_ || payload.empty() || payload.size() > kMaxPayloadBytes) return;
  // One that would not fit even an otherwise empty gossip message (a
  // max_datagram_bytes below the default) would wait forever.
  Message bare;
  bare.type = Message::Type::kGossip;
  bare.sender = self_.info->id;
  if (MessageSizeBound(bare) + PayloadSizeBound(payload) > cfg_.max_datagram_bytes) return;
  auto [it, inserted] = payloads_by_key_.try_emplace(key);
  if (!inserted) payload_queue_.erase(it->second.queued);  // superseded, sent or not
  it->second.payload = std::move(payload);
  it->second.queued = {0, UINT64_MAX - queue_order_++, std::move(key)};
  payload_queue_.insert(it->second.queued);
  // Full (alone, or broadcasting faster than gossip spreads): the most sent,
  // oldest payload goes, never the one just queued.
  if (payload_queue_.size() > kMaxQueuedPayloads) {
    auto last = std::prev(payload_queue_.end());
    payloads_by_key_.erase(last->key);
    payload_queue_.erase(last);
  }
}

void Membership::Receive(const std::vector<std::string>& payloads) {
  for (const std::string& p : payloads) received_payloads_.push_back(p);
  // A driver that never takes them must not grow memory without bound.
  while (received_payloads_.size() > kMaxPendingPayloads) received_payloads_.pop_front();
}

std::vector<std::string> Membership::TakePayloads() {
  std::vector<std::string> out(std::make_move_iterator(received_payloads_.begin()),
                               std::make_move_iterator(received_payloads_.end()));
  received_payloads_.clear();
  return out;
}

void Membership::SendDirect(const NodeId& to, Update u, Time now) {
  auto it = members_.find(to);
  if (it == members_.end()) return;
  auto& last = hinted_[to];
  if (last != Time{} && now - last < cfg_.probe_timeout) return;
  last = now;
  Message m;
  m.type = Message::Type::kGossip;
  m.updates.push_back(std::move(u));
  Send(it->second.info->address, std::move(m), to);
}

std::vector<Outgoing> Membership::TakeOutgoing() {
  std::vector<Outgoing> out;
  out.swap(out_);
  return out;
}

std::vector<StreamRequest> Membership::TakeStreamRequests() {
  std::vector<StreamRequest> out;
  out.swap(streams_);
  return out;
}

std::vector<MemberEvent> Membership::TakeEvents() {
  std::vector<MemberEvent> out;
  out.swap(events_);
  return out;
}

// --- timing ---------------------------------------------------------------

void Membership::AdjustHealth(int delta) { local_health_ = std::clamp(local_health_ + delta, 0, cfg_.max_local_health); }

Duration Membership::SuspicionTimeout(size_t confirmations) const {
  double n = static_cast<double>(AliveCount());
  double interval = std::chrono::duration<double>(cfg_.probe_interval).count();
  double floor_s = std::chrono::duration<double>(cfg_.suspicion_floor).count();
  double min_s = std::max(floor_s, cfg_.suspicion_mult * std::max(1.0, std::log10(n + 1)) * interval);
  double max_s = cfg_.suspicion_max_mult * min_s;
  // Lifeguard: from max down to min as independent confirmations arrive; in
  // a small mesh fewer can arrive (everyone but the suspect and ourselves).
  double k = std::min<double>(cfg_.suspicion_confirmations, n - 2);
  if (k < 1) return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(min_s));
  double frac = std::log(static_cast<double>(confirmations) + 1) / std::log(k + 1);
  double t = std::max(min_s, max_s - (max_s - min_s) * std::min(1.0, frac));
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(t));
}

Duration Membership::PushPullInterval() const {
  // memberlist's scaling: beyond 32 members, one more interval per doubling,
  // so the full-state traffic per node stays flat as the mesh grows.
  double n = static_cast<double>(AliveCount());
  if (n <= 32) return cfg_.push_pull_interval;
  int mult = static_cast<int>(std::ceil(std::log2(n) - std::log2(32.0))) + 1;
  return cfg_.push_pull_interval * mult;
}

Time Membership::NextWakeup() const {
  // After leaving: only the gossip rounds that spread the goodbye.
  if (left_) return HasQueued() ? next_gossip_ : Time::max();
  // While a probe is out, the next one waits for its verdict.
  Time t = pending_ ? (pending_->indirect_sent ? pending_->period_end : pending_->ack_deadline) : next_probe_;
  if (HasQueued()) t = std::min(t, next_gossip_);
  t = std::min(t, next_push_pull_);
  if (!gone_.empty()) t = std::min({t, next_reconnect_, next_reap_});
  for (const auto& [seq, f] : forwards_) t = std::min(t, f.nacked ? f.expires : f.nack_at);
  for (const auto& [id, s] : suspicions_) {
    t = std::min(t, Deadline(s));
    if (s.checks < kSuspectChecks) t = std::min(t, CheckDue(s));
  }
  return std::min(t, coordinator_recheck_);
}

// --- probing --------------------------------------------------------------

void Membership::Probe(Time now) {
  // Round-robin over a shuffled list, reshuffled each round (SWIM's bound on
  // the time to first detection).
  if (probe_index_ >= probe_order_.size()) {
    probe_order_.clear();
    for (const Member* m : live_) probe_order_.push_back(m->info->id);
    for (size_t i = probe_order_.size(); i > 1; --i) std::swap(probe_order_[i - 1], probe_order_[NextRandom() % i]);
    probe_index_ = 0;
  }
  // In a mesh of four or fewer this is every period: there the others'
  // failures are found by the coordinator's own round-robin and confirmed by
  // the extra probes every suspicion triggers.
  if (!probe_next_ && coordinator_ && *coordinator_ != self_.info->id) {
    double others = std::max(1.0, static_cast<double>(AliveCount()) - 1);
    if (NextUniform() < cfg_.coordinator_watchers / others)
      probe_next_ = *coordinator_;
  }
  while (probe_next_ || probe_index_ < probe_order_.size()) {
    NodeId target = probe_next_ ? *probe_next_ : probe_order_[probe_index_++];
    probe_next_.reset();
    auto it = members_.find(target);
    if (it == members_.end() || IsGone(it->second.state)) continue;
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
    Send(it->second.info->address, std::move(ping), target);
    return;
  }
}

void Membership::ExpireProbe(Time now) {
  if (!pending_) return;
  PendingProbe& p = *pending_;
  auto it = members_.find(p.target);
  if (it == members_.end() || IsGone(it->second.state)) {
    pending_.reset();
    return;
  }
  if (!p.indirect_sent && now >= p.ack_deadline) {
    p.indirect_sent = true;
    // A second direct ping beside the indirect ones: under random loss it
    // saves most probes (memberlist sends a TCP ping here instead).
    Message again;
    again.type = Message::Type::kPing;
    again.seq = p.seq;
    again.target = p.target;
    Send(it->second.info->address, std::move(again), p.target);
    for (Member* helper : RandomLive(static_cast<size_t>(cfg_.indirect_checks), p.target)) {
      Message req;
      req.type = Message::Type::kPingReq;
      req.seq = p.seq;
      req.target = p.target;
      req.target_address = it->second.info->address;
      Send(helper->info->address, std::move(req), helper->info->id);
      ++p.helpers;
    }
  }
  if (now >= p.period_end) {
    // No ack, directly or through others. Lifeguard: helpers that did not
    // even nack suggest the fault is ours (a stall, a bad link), so we slow
    // down; the member becomes suspect either way.
    AdjustHealth(p.helpers - p.nacks);
    Update u{Update::Kind::kSuspect, it->second.info, it->second.incarnation, self_.info->id};
    pending_.reset();
    ApplySuspect(u, now);
  }
}

void Membership::ExpireForwards(Time now) {
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    Forward& f = it->second;
    if (!f.nacked && now >= f.nack_at) {
      f.nacked = true;
      Message nack;
      nack.type = Message::Type::kNack;
      nack.seq = f.requester_seq;
      nack.target = f.target;
      Send(f.requester_address, std::move(nack), NodeId{});
    }
    it = now >= f.expires ? forwards_.erase(it) : std::next(it);
  }
}

bool Membership::FirstHand(const Suspicion& s) const { return s.accuser == self_.info->id || s.confirmed_by_self; }

// Nodes that saw the suspect fail themselves decide first; those that only
// heard of it wait two more probe intervals, by which the verdict (or the
// refutation) has almost always reached them. Either checks in person before
// deciding (see kSuspectChecks), so a suspect gets a few pings from
// first-hand suspecters and, only if gossip failed someone, from that node.
Time Membership::Deadline(const Suspicion& s) const {
  Time t = s.started + SuspicionTimeout(s.confirmations.size());
  return FirstHand(s) ? t : t + 2 * cfg_.probe_interval;
}

Time Membership::CheckDue(const Suspicion& s) const {
  return Deadline(s) - cfg_.probe_interval / (s.checks + 1);
}

void Membership::CheckSuspect(const Member& m, Suspicion& s) {
  ++s.checks;
  Message ping;
  ping.type = Message::Type::kPing;
  ping.seq = next_seq_++;
  ping.target = m.info->id;
  Send(m.info->address, std::move(ping), m.info->id);  // Send() attaches the accusation
}

void Membership::Gossip(Time now) {
  (void)now;
  if (!HasQueued()) return;
  for (Member* m : RandomLive(static_cast<size_t>(cfg_.gossip_fanout), NodeId{})) {
    Message g;
    g.type = Message::Type::kGossip;
    if (!Send(m->info->address, std::move(g), m->info->id)) break;  // nothing left to say
  }
}

void Membership::Tick(Time now) {
  if (left_) {
    if (now >= next_gossip_) {
      Gossip(now);
      next_gossip_ = now + cfg_.gossip_interval;
    }
    return;
  }
  ExpireProbe(now);
  ExpireForwards(now);

  // Suspicions that ran out become deaths.
  for (auto it = suspicions_.begin(); it != suspicions_.end();) {
    auto m = members_.find(it->first);
    if (m == members_.end() || m->second.state != MemberState::kSuspect) {
      it = suspicions_.erase(it);
      continue;
    }
    if (it->second.checks < kSuspectChecks && now >= CheckDue(it->second)) CheckSuspect(m->second, it->second);
    if (now >= Deadline(it->second)) {
      Update dead{Update::Kind::kDead, m->second.info, m->second.incarnation, self_.info->id};
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
  if (now >= next_gossip_) {
    Gossip(now);
    next_gossip_ = now + cfg_.gossip_interval;
  }
  if (now >= next_push_pull_) {
    next_push_pull_ = now + PushPullInterval();
    if (!live_.empty()) {
      Member* m = live_[NextRandom() % live_.size()];
      StartPushPull(m->info->address, false);
    } else if (!joined_ && !join_seeds_.empty()) {
      // Still alone: keep trying the seeds we were given.
      for (const auto& seed : join_seeds_) StartPushPull(seed, true);
    }
  }

  // Now and then, knock on a gone member's door: a healed partition merges,
  // and a member that left and came back is found even if it only knows
  // seeds that are gone. (A node that has left answers nothing.)
  if (now >= next_reconnect_) {
    next_reconnect_ = now + cfg_.reconnect_interval;
    std::vector<const Member*> dead;
    for (const auto& [id, since] : gone_) dead.push_back(&members_.at(id));
    if (!dead.empty()) {
      const Member* m = dead[NextRandom() % dead.size()];
      Message ping;
      ping.type = Message::Type::kPing;
      ping.seq = next_seq_++;
      ping.target = m->info->id;
      Send(m->info->address, std::move(ping), m->info->id);
    }
  }

  // Reap the long gone; keep a tombstone with the incarnation so stale gossip
  // cannot revive them. Tombstones themselves expire after another period.
  if (now >= next_reap_) {
    next_reap_ = now + std::chrono::seconds(1);
    for (auto it = gone_.begin(); it != gone_.end();) {
      if (now - it->second >= cfg_.reap_after) {
        auto m = members_.find(it->first);
        reaped_[it->first] = {now, m->second.incarnation};
        Dequeue(it->first);
        hinted_.erase(it->first);
        members_.erase(m);
        it = gone_.erase(it);
      } else {
        ++it;
      }
    }
    std::erase_if(reaped_, [&](const auto& kv) { return now - kv.second.reaped >= cfg_.reap_after; });
  }
  UpdateCoordinator(now);
}

// --- receiving ------------------------------------------------------------

void Membership::OnMessage(const std::string& from, const Message& msg, Time now) {
  if (msg.sender == self_.info->id || msg.sender.empty()) return;
  if (left_) {
    // Gone, but still here while the driver lets the news spread: a ping
    // is answered with the goodbye, so the pinger marks us left, not dead.
    if (msg.type == Message::Type::kPing && (msg.target.empty() || msg.target == self_.info->id)) {
      Message ack;
      ack.type = Message::Type::kAck;
      ack.seq = msg.seq;
      ack.target = self_.info->id;
      ack.updates.push_back(LeftUpdate());
      Send(from, std::move(ack), NodeId{});
    }
    return;
  }
  // Payloads follow the updates' fate: taken wherever the updates are applied.
  Receive(msg.payloads);
  for (const Update& u : msg.updates) Apply(u, msg.sender, now);

  switch (msg.type) {
    case Message::Type::kPing: {
      if (!msg.target.empty() && msg.target != self_.info->id) return;  // meant for a previous owner of this address
      Message ack;
      ack.type = Message::Type::kAck;
      ack.seq = msg.seq;
      ack.target = self_.info->id;
      // The sender may not know us yet (a join through a seed), or may hold
      // an accusation against us that we have refuted: answer with our record.
      bool accused = std::any_of(msg.updates.begin(), msg.updates.end(), [&](const Update& u) {
        return u.info && u.info->id == self_.info->id && u.kind != Update::Kind::kAlive;
      });
      if (accused || !members_.count(msg.sender)) ack.updates.push_back(SelfUpdate());
      // Send() adds "you are suspect/dead to me" if that is what we think.
      Send(from, std::move(ack), msg.sender);
      break;
    }
    case Message::Type::kAck: {
      MarkJoined(now);
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
        Send(f->second.requester_address, std::move(fwd), NodeId{});
        forwards_.erase(f);
      }
      break;
    }
    case Message::Type::kNack: {
      if (pending_ && msg.seq == pending_->seq && msg.target == pending_->target) ++pending_->nacks;
      break;
    }
    case Message::Type::kPingReq: {
      if (msg.target.empty() || msg.target == self_.info->id || msg.target_address.empty()) break;
      uint32_t seq = next_seq_++;
      // Lifeguard: nack at 80% of the probe timeout if the target is silent.
      forwards_[seq] = {from, msg.seq, msg.target, now + cfg_.probe_timeout * 4 / 5, now + cfg_.probe_interval, false};
      Message ping;
      ping.type = Message::Type::kPing;
      ping.seq = seq;
      ping.target = msg.target;
      Send(msg.target_address, std::move(ping), msg.target);
      break;
    }
    case Message::Type::kGossip: break;
  }
  // A member we hold suspect or dead is talking to us: tell it, so it refutes
  // (pings got this in the ack already).
  if (msg.type != Message::Type::kPing) {
    auto it = members_.find(msg.sender);
    if (it != members_.end() && it->second.state != MemberState::kAlive && it->second.state != MemberState::kLeft)
      SendDirect(msg.sender, AccusationOf(it->second), now);
  }
  UpdateCoordinator(now);
}

void Membership::Apply(const Update& u, const NodeId& via, Time now) {
  if (!u.info || u.info->id.empty()) return;
  switch (u.kind) {
    case Update::Kind::kAlive: ApplyAlive(u, via, now); break;
    case Update::Kind::kSuspect: ApplySuspect(u, now); break;
    case Update::Kind::kDead:
    case Update::Kind::kLeft: ApplyDead(u, now); break;
  }
}

void Membership::Republish() {
  Enqueue(SelfUpdate());
  coordinator_dirty_ = true;
}

void Membership::Refute(uint64_t accused_incarnation) {
  self_.incarnation = std::max(self_.incarnation, accused_incarnation) + 1;
  AdjustHealth(+1);  // being accused hints that our own acks are late
  Republish();
}

void Membership::MaybeBumpEpoch(const MemberInfo& other) {
  max_epoch_seen_ = std::max(max_epoch_seen_, other.epoch);
  // The coordinator stays above every epoch announced by a member it
  // outranks: after a healed partition, leases of the other side's
  // coordinator lose to ours.
  if (coordinator_ == self_.info->id && other.epoch >= self_.info->epoch && Outranks(*self_.info, other)) {
    MemberInfo next = *self_.info;
    next.epoch = max_epoch_seen_ + 1;
    max_epoch_seen_ = next.epoch;
    self_.info = std::make_shared<const MemberInfo>(std::move(next));
    ++self_.incarnation;
    Republish();
  }
}

void Membership::ApplyAlive(const Update& u, const NodeId& via, Time now) {
  const NodeId& id = u.info->id;
  if (id == self_.info->id) {
    if (u.incarnation > self_.incarnation) Refute(u.incarnation);  // someone speaks for us with a newer word
    return;
  }
  auto it = members_.find(id);
  if (it == members_.end()) {
    // A reaped member returns only with an incarnation above the one it
    // died with; if it speaks itself with an old one, tell it to refute.
    if (auto t = reaped_.find(id); t != reaped_.end()) {
      if (u.incarnation <= t->second.incarnation) {
        if (via == id) {
          Message m;
          m.type = Message::Type::kGossip;
          m.updates.push_back({Update::Kind::kDead, u.info, t->second.incarnation, self_.info->id});
          Send(u.info->address, std::move(m), NodeId{});
        }
        return;
      }
      reaped_.erase(t);
    }
    Member& m = members_[id];
    m.info = u.info;
    m.incarnation = u.incarnation;
    m.state = MemberState::kAlive;
    m.state_since = m.alive_since = now;
    AddLive(m);
    coordinator_dirty_ = true;
    Emit({MemberEvent::Kind::kState, id, MemberState::kAlive, m.incarnation, now});
    Enqueue(u);
    MaybeBumpEpoch(*u.info);
    return;
  }
  Member& m = it->second;
  if (u.incarnation <= m.incarnation) return;  // stale or already known
  bool was_gone = IsGone(m.state);
  if (u.info->priority != m.info->priority) coordinator_dirty_ = true;
  m.info = u.info;
  m.incarnation = u.incarnation;
  if (coordinator_ == id) coordinator_dirty_ = true;  // its epoch may have changed
  SetState(m, MemberState::kAlive, now);
  suspicions_.erase(id);
  Enqueue(u);
  MaybeBumpEpoch(*u.info);
  // Back from the dead (a healed partition, a restart): exchange full state
  // with it, so both sides learn everything the other missed.
  if (was_gone && now >= next_revive_sync_) {
    next_revive_sync_ = now + cfg_.probe_interval;
    StartPushPull(m.info->address, false);
  }
}

// We are suspected or declared dead: refute a current accusation, and tell
// the accuser directly either way (its timer is running; a stale accusation
// means our refutation has not reached it yet).
void Membership::AnswerAccusation(const Update& u, Time now) {
  if (left_) return;
  if (u.incarnation >= self_.incarnation) Refute(u.incarnation);
  if (u.from != self_.info->id) SendDirect(u.from, SelfUpdate(), now);
}

void Membership::ApplySuspect(const Update& u, Time now) {
  const NodeId& id = u.info->id;
  if (id == self_.info->id) return AnswerAccusation(u, now);
  auto it = members_.find(id);
  if (it == members_.end()) return;
  Member& m = it->second;
  if (u.incarnation < m.incarnation || IsGone(m.state)) return;
  if (m.state == MemberState::kSuspect && u.incarnation == m.incarnation) {
    auto& s = suspicions_[id];
    if (u.from == self_.info->id) {
      // Our own probe failed too: an independent confirmation for everyone
      // else (it does not shorten our own timer). Said once per suspicion.
      if (s.accuser != self_.info->id && !s.confirmed_by_self) {
        s.confirmed_by_self = true;
        Enqueue(u);
      }
      return;
    }
    // An independent confirmation shortens the suspicion (Lifeguard).
    if (u.from != s.accuser &&
        std::find(s.confirmations.begin(), s.confirmations.end(), u.from) == s.confirmations.end()) {
      s.confirmations.push_back(u.from);
      Enqueue(u);
    }
    return;
  }
  m.incarnation = u.incarnation;
  SetState(m, MemberState::kSuspect, now);
  suspicions_[id] = Suspicion{now, u.from, {}};
  if (u.from != self_.info->id && !probe_next_) {
    // Among the n-2 members that are neither the suspect nor its accuser.
    double others = std::max(1.0, static_cast<double>(AliveCount()) - 2);
    double p = cfg_.extra_suspect_probers / others;
    if (NextUniform() < p) {
      probe_next_ = id;
      if (!pending_) next_probe_ = std::min(next_probe_, now);  // at once, not at the next slot
    }
  }
  Update fwd = u;
  fwd.info = m.info;
  Enqueue(fwd);
}

void Membership::ApplyDead(const Update& u, Time now) {
  const NodeId& id = u.info->id;
  bool left = u.kind == Update::Kind::kLeft;
  if (id == self_.info->id) return AnswerAccusation(u, now);
  auto it = members_.find(id);
  if (it == members_.end()) return;
  Member& m = it->second;
  if (u.incarnation < m.incarnation) return;
  if (IsGone(m.state)) {
    // A member declared dead that then says goodbye itself: record it as left.
    if (left && m.state == MemberState::kDead && u.from == id) {
      SetState(m, MemberState::kLeft, now);
      Enqueue(u);
    }
    return;
  }
  m.incarnation = u.incarnation;
  suspicions_.erase(id);
  SetState(m, left ? MemberState::kLeft : MemberState::kDead, now);
  Update fwd = u;
  fwd.info = m.info;
  Enqueue(fwd);
}

// --- push-pull ------------------------------------------------------------

PushPull Membership::LocalState(bool join) const {
  PushPull pp;
  pp.sender = self_.info->id;
  pp.join = join;
  pp.state.reserve(members_.size() + 1);
  pp.state.push_back(left_ ? LeftUpdate() : SelfUpdate());
  for (const auto& [id, m] : members_) pp.state.push_back(AccusationOf(m));
  return pp;
}

void Membership::StartPushPull(const std::string& address, bool join) {
  if (address.empty() || address == self_.info->address || !push_pulls_in_flight_.insert(address).second) return;
  streams_.push_back({address, LocalState(join)});
}

void Membership::MergeState(const PushPull& remote, Time now) {
  for (const Update& u : remote.state) {
    if (!u.info || u.info->id.empty()) continue;
    const NodeId& id = u.info->id;
    switch (u.kind) {
      case Update::Kind::kAlive: ApplyAlive(u, id == remote.sender ? id : remote.sender, now); break;
      case Update::Kind::kLeft: ApplyDead(u, now); break;
      // A remote verdict of death is only a suspicion here (memberlist's
      // rule): we give the member its own chance to refute.
      case Update::Kind::kSuspect:
      case Update::Kind::kDead: {
        Update s = u;
        s.kind = Update::Kind::kSuspect;
        s.from = remote.sender;
        ApplySuspect(s, now);
        break;
      }
    }
  }
}

PushPull Membership::OnPushPullRequest(const PushPull& request, Time now) {
  if (left_) return LocalState(false);  // tells the requester we left
  MergeState(request, now);
  UpdateCoordinator(now);
  return LocalState(false);
}

void Membership::OnPushPullReply(const std::string& address, const PushPull& reply, Time now) {
  push_pulls_in_flight_.erase(address);
  if (left_) return;
  MarkJoined(now);
  MergeState(reply, now);
  UpdateCoordinator(now);
}

// The first answer to a join: from now on we count ourselves as a candidate
// coordinator, after the same stabilisation period the others give us.
void Membership::MarkJoined(Time now) {
  if (joined_) return;
  joined_ = true;
  if (join_attempted_) self_.alive_since = now;
  coordinator_dirty_ = true;
}

void Membership::OnPushPullFailed(const std::string& address, Time now) {
  push_pulls_in_flight_.erase(address);
  (void)now;
}

// --- lifecycle ------------------------------------------------------------

void Membership::Join(const std::vector<std::string>& seeds, Time now) {
  join_attempted_ = true;
  join_seeds_ = seeds;
  for (const auto& address : seeds) {
    StartPushPull(address, true);
    Message ping;
    ping.type = Message::Type::kPing;
    ping.seq = next_seq_++;
    Send(address, std::move(ping), NodeId{});
  }
  UpdateCoordinator(now);
}

void Membership::Bootstrap(const std::vector<std::pair<MemberInfoPtr, uint64_t>>& members, Time now) {
  for (const auto& [info, incarnation] : members) {
    if (!info || info->id == self_.info->id || members_.count(info->id)) continue;
    Member& m = members_[info->id];
    m.info = info;
    m.incarnation = incarnation;
    m.state = MemberState::kAlive;
    m.state_since = m.alive_since = now - cfg_.coordinator_stabilisation;
    AddLive(m);
    max_epoch_seen_ = std::max(max_epoch_seen_, info->epoch);
  }
  self_.alive_since = now - cfg_.coordinator_stabilisation;
  joined_ = true;
  // Nothing to announce: everyone knows everyone.
  queue_.clear();
  queued_.clear();
  coordinator_dirty_ = true;
  next_push_pull_ = now + PushPullInterval();
  UpdateCoordinator(now);
}

void Membership::Leave(Time now) {
  if (left_) return;
  Enqueue(LeftUpdate());
  // Tell a few members at once; the rest hear it through them.
  for (Member* m : RandomLive(static_cast<size_t>(cfg_.gossip_fanout) + 1, NodeId{})) {
    Message g;
    g.type = Message::Type::kGossip;
    Send(m->info->address, std::move(g), m->info->id);
  }
  left_ = true;
  coordinator_dirty_ = true;
  UpdateCoordinator(now);
}

// --- coordinator ----------------------------------------------------------

uint64_t Membership::epoch() const {
  if (!coordinator_) return 0;
  if (*coordinator_ == self_.info->id) return self_.info->epoch;
  auto it = members_.find(*coordinator_);
  return it == members_.end() ? 0 : it->second.info->epoch;
}

void Membership::UpdateCoordinator(Time now) {
  if (now >= coordinator_recheck_) coordinator_dirty_ = true;
  if (coordinator_dirty_) {
    coordinator_dirty_ = false;
    coordinator_recheck_ = Time::max();
    // The best-ranked live member (self included) that has been alive for the
    // stabilisation period; a better-ranked one not yet stable sets a recheck.
    const MemberInfo* best = nullptr;
    auto consider = [&](const MemberInfo& info, Time alive_since) {
      if (best && !Outranks(info, *best)) return;
      Time stable_at = alive_since + cfg_.coordinator_stabilisation;
      if (now < stable_at) {
        coordinator_recheck_ = std::min(coordinator_recheck_, stable_at);
        return;
      }
      best = &info;
    };
    // A node that asked to join counts itself only once it has heard back.
    if (!left_ && (!join_attempted_ || joined_)) consider(*self_.info, self_.alive_since);
    for (const Member* m : live_) consider(*m->info, m->alive_since);
    std::optional<NodeId> chosen;
    if (best) chosen = best->id;
    bool became_self = chosen == self_.info->id && coordinator_ != self_.info->id;
    coordinator_ = chosen;
    if (became_self) {
      // Taking the role: an epoch above every one seen.
      MemberInfo next = *self_.info;
      next.epoch = max_epoch_seen_ + 1;
      max_epoch_seen_ = next.epoch;
      self_.info = std::make_shared<const MemberInfo>(std::move(next));
      ++self_.incarnation;
      Enqueue(SelfUpdate());
    }
  }
  std::pair<std::optional<NodeId>, uint64_t> now_following{coordinator_, epoch()};
  if (now_following != announced_) {
    announced_ = now_following;
    Emit({MemberEvent::Kind::kCoordinator, coordinator_.value_or(NodeId{}), MemberState::kAlive, announced_.second, now});
  }
}

}  // namespace ndo::mesh
