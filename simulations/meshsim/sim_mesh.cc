#include "sim_mesh.h"

#include <cmath>
#include <stdexcept>

#include "mesh/membership/codec.h"
#include "scan/permutation.h"

namespace ndo::mesh::sim {

namespace {

// SimConfig::seal: the cluster's id, the keyring's creation time and the
// wall clock the simulated clock stands for (Unix microseconds at Time{}),
// all fixed and arbitrary. The key itself is random; nothing depends on it.
constexpr ClusterId kSimCluster{0x6e646f2d6d657368, 0x73696d2d636c7573};
constexpr int64_t kSimKeyringUnix = 1'795'000'000;
constexpr uint64_t kSimEpochUnixMicros = 1'795'000'000'000'000;
// Clock skew between nodes: each node's wall clock is off by up to this.
constexpr uint64_t kMaxSkewMicros = 1'000'000;

// The gossip keys of a sealed run, from the seed: NewGossipKey's contract
// (an unused non-zero id, fresh bytes) without the OS's randomness, so the
// same seed gives the same key ids and schedule. Nothing secret is at stake
// in a simulation; the bytes only have to differ.
GossipKeyMaker SeededKeyMaker(uint64_t seed) {
  auto state = std::make_shared<uint64_t>(seed);
  return [state](const Keyring& held, int64_t now_unix) -> Result<GossipKey> {
    GossipKey key;
    key.created_unix = now_unix;
    for (size_t b = 0; b < key.key.size(); b += 8) {
      uint64_t r = SplitMix64(*state);
      for (size_t k = 0; k < 8 && b + k < key.key.size(); ++k) key.key[b + k] = static_cast<uint8_t>(r >> (8 * k));
    }
    do key.id = static_cast<uint32_t>(SplitMix64(*state));
    while (key.id == 0 || held.Find(key.id));
    return key;
  };
}

}  // namespace

SimMesh::SimMesh(SimConfig cfg)
    : cfg_(std::move(cfg)), rng_(cfg_.seed), service_rng_(cfg_.seed ^ 0x5e541ce5a11ce5ULL) {
  // A fixed, arbitrary start: steady_clock's epoch is meaningless anyway.
  now_ = Time{} + std::chrono::hours(1);
  if (cfg_.seal) {
    cfg_.count_bytes = true;  // every datagram is encoded anyway
    make_key_ = SeededKeyMaker(cfg_.seed ^ 0x6b65797365656421ULL);
    auto key = make_key_(Keyring{}, kSimKeyringUnix);
    if (!key.ok()) throw std::runtime_error("meshsim: no keyring: " + key.status().message());
    keyring_.keys = {*key};
    keyring_.primary = key->id;
  }
  for (int i = 0; i < cfg_.nodes; ++i) AddNode();
  // These nodes stand for processes started before the run, each at its
  // own time: their periodic security exchanges are spread over one
  // interval. (Started at one instant, every node would exchange at the
  // same instants for ever, the interval having no jitter.)
  for (int i = 0; i < size(); ++i) {
    if (!services_[i].security) continue;
    uint64_t state = ServiceSeed(i, 0x9ba5e1);
    double u = static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53;
    services_[i].security->SyncSoon(now_ + std::chrono::duration_cast<Duration>(kSecuritySyncInterval * u));
    Reschedule(i);
  }
}

uint64_t SimMesh::WallMicros(int i) const {
  // Not from rng_: sealing must not change what the simulation draws.
  uint64_t skew_state = cfg_.seed ^ (0x5ea1ed5ea1ed5ea1ULL + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL);
  uint64_t skew = SplitMix64(skew_state) % kMaxSkewMicros;
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now_.time_since_epoch()).count();
  return kSimEpochUnixMicros + static_cast<uint64_t>(micros) + skew;
}

std::unique_ptr<AeadSeal> SimMesh::NewSeal(int i) {
  // As mesh_node.cc makes it: the first counter at the wall clock, and the
  // clock tied to the seal (unless seal_clock is off).
  // The keyring file: the one of the cluster, or what the node's security
  // state last put in force.
  auto seal = std::make_unique<AeadSeal>(kSimCluster, nodes_[i]->self().id, services_[i].keyring,
                                         CounterAtWallMicros(WallMicros(i)));
  if (cfg_.seal_clock) seal->SetClock([this, i] { return WallMicros(i); });
  return seal;
}

double SimMesh::Uniform() { return static_cast<double>(SplitMix64(rng_) >> 11) * 0x1.0p-53; }

Duration SimMesh::Latency() {
  // Log-normal around the median (Box-Muller), clipped to something sane.
  double u1 = std::max(Uniform(), 1e-12), u2 = Uniform();
  double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  double median = std::chrono::duration<double>(cfg_.latency_median).count();
  double s = std::clamp(median * std::exp(cfg_.latency_sigma * z), median / 20, median * 40);
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

Duration SimMesh::DrawLatency(uint64_t& rng) const {
  // Latency()'s distribution, from another generator.
  auto uniform = [&rng] { return static_cast<double>(SplitMix64(rng) >> 11) * 0x1.0p-53; };
  double u1 = std::max(uniform(), 1e-12), u2 = uniform();
  double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  double median = std::chrono::duration<double>(cfg_.latency_median).count();
  double s = std::clamp(median * std::exp(cfg_.latency_sigma * z), median / 20, median * 40);
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

int SimMesh::AddNode() {
  int i = static_cast<int>(nodes_.size());
  MemberInfo info;
  info.id = {SplitMix64(rng_), SplitMix64(rng_)};
  info.name = "node" + std::to_string(i);
  info.vantage = i % 2 ? "dmz" : "internet";
  if (cfg_.long_names) {
    info.name.resize(kMaxNameBytes, 'x');
    info.vantage.resize(kMaxVantageBytes, 'v');
  }
  info.address = Address(i);
  index_[info.id] = i;
  nodes_.push_back(std::make_unique<Membership>(info, cfg_.membership, SplitMix64(rng_), now_));
  up_.push_back(true);
  side_.push_back(0);
  stalled_until_.push_back(Time{});
  scheduled_.push_back(Time::max());
  service_scheduled_.push_back(Time::max());
  traffic_.emplace_back();
  services_.emplace_back();
  services_[i].keyring = keyring_;
  if (cfg_.seal) {
    seals_.push_back(NewSeal(i));
    heard_.emplace_back();
  }
  StartServices(i);
  Reschedule(i);
  return i;
}

int SimMesh::IndexOf(const NodeId& id) const {
  auto it = index_.find(id);
  return it == index_.end() ? -1 : it->second;
}

int SimMesh::ParseAddress(const std::string& a) const {
  if (a.size() < 2 || a[0] != 'n') return -1;
  int i = 0;
  for (size_t k = 1; k < a.size(); ++k) {
    if (a[k] < '0' || a[k] > '9') return -1;
    i = i * 10 + (a[k] - '0');
    if (i >= size()) return -1;
  }
  return i;
}

void SimMesh::JoinAllThrough(int seed_node) {
  for (int i = 0; i < size(); ++i)
    if (i != seed_node) Join(i, {seed_node});
}

void SimMesh::Join(int i, const std::vector<int>& seeds) {
  Services& sv = services_[i];
  sv.seeds.clear();
  for (int s : seeds) sv.seeds.push_back(Address(s));
  if (sv.rejoin) {
    sv.rejoin->Start(RejoinAddresses(nodes_[i]->self().address, sv.saved, sv.seeds), sv.seeds.size(), now_);
    // The daemon takes it at its first timer, a millisecond after the
    // start; here at once, as before the policy ran (the same trace).
    TakeJoinAttempt(i);
  } else {
    nodes_[i]->Join(sv.seeds, now_);
  }
  Flush(i);
}

void SimMesh::Bootstrap() {
  std::vector<std::pair<MemberInfoPtr, uint64_t>> all;
  all.reserve(nodes_.size());
  for (auto& n : nodes_) all.emplace_back(std::make_shared<const MemberInfo>(n->self()), n->incarnation());
  for (int i = 0; i < size(); ++i) {
    nodes_[i]->Bootstrap(all, now_);
    Flush(i);
  }
}

void SimMesh::Crash(int i) {
  if (!up_[i]) return;
  SaveMembers(i);
  up_[i] = false;
}

void SimMesh::Restart(int i, int seed_node) {
  const Membership& old = *nodes_[i];
  MemberInfo info = old.self();
  uint64_t incarnation = old.incarnation() + 1;
  uint64_t epoch = old.max_epoch_seen();
  nodes_[i] = std::make_unique<Membership>(info, cfg_.membership, SplitMix64(rng_), now_, incarnation);
  nodes_[i]->set_max_epoch_seen(epoch);
  up_[i] = true;
  stalled_until_[i] = Time{};
  if (cfg_.seal) {
    // A new process: a new seal whose counter starts at the clock (above
    // what the old one reached), and no replay windows.
    seals_[i] = NewSeal(i);
    for (bool heard : heard_[i]) seal_stats_.windows -= heard;
    heard_[i].clear();
  }
  StartServices(i);
  Join(i, {seed_node});
}

void SimMesh::Partition(std::vector<int> side) {
  for (int i : side) side_[i] = 1;
}

void SimMesh::Heal() { std::fill(side_.begin(), side_.end(), 0); }

void SimMesh::Stall(int i, Time until) { stalled_until_[i] = std::max(stalled_until_[i], until); }

bool SimMesh::Reachable(int a, int b) const { return up_[a] && up_[b] && side_[a] == side_[b]; }

size_t SimMesh::Store(Payload p) {
  if (!free_slots_.empty()) {
    size_t s = free_slots_.back();
    free_slots_.pop_back();
    slots_[s] = std::move(p);
    return s;
  }
  slots_.push_back(std::move(p));
  return slots_.size() - 1;
}

SimMesh::Payload SimMesh::Take(size_t slot) {
  Payload p = std::move(slots_[slot]);
  slots_[slot] = Payload{};
  free_slots_.push_back(slot);
  return p;
}

void SimMesh::Push(Time at, Kind kind, int from, int to, size_t slot) { queue_.push({at, kind, seq_++, from, to, slot}); }

void SimMesh::Flush(int i) {
  Membership& n = *nodes_[i];
  for (auto& o : n.TakeOutgoing()) {
    int to = ParseAddress(o.address);
    if (cfg_.seal) {
      SendSealed(i, o, to);
      continue;
    }
    if (cfg_.count_bytes) {
      auto bytes = EncodeMessage(o.message);
      if (bytes.ok()) {
        traffic_[i].datagram_bytes += bytes.value().size();
        traffic_[i].largest_datagram = std::max<uint64_t>(traffic_[i].largest_datagram, bytes.value().size());
      } else {
        ++traffic_[i].encode_errors;
      }
    }
    ++traffic_[i].datagrams;
    if (to < 0 || !Reachable(i, to) || Uniform() < cfg_.loss) {
      ++traffic_[i].dropped;
      continue;
    }
    Push(now_ + Latency(), Kind::kDatagram, i, to, Store({std::move(o.message), {}, {}, {}}));
  }
  for (auto& s : n.TakeStreamRequests()) {
    int to = ParseAddress(s.address);
    if (cfg_.count_bytes) {
      auto bytes = EncodePushPull(s.request);
      traffic_[i].stream_bytes += bytes.ok() ? bytes.value().size() : 0;
    }
    size_t slot = Store({{}, std::move(s.request), s.address, {}});
    if (to < 0 || !Reachable(i, to)) {
      Push(now_ + cfg_.stream_timeout, Kind::kStreamFailed, to, i, slot);
      continue;
    }
    // A stream costs a handshake and the transfer: a few round trips.
    Push(now_ + Latency() * 3, Kind::kStreamRequest, i, to, slot);
  }
  for (auto& e : n.TakeEvents())
    if (observer_) observer_({i, e});
  // After the events, as the daemon does (the layer above sees the view
  // they made); what it gossips on in answer is only queued, and the
  // reschedule below wakes the core for it.
  if (auto payloads = n.TakePayloads(); !payloads.empty() && payloads_) payloads_(i, std::move(payloads));
  ObserveServices(i);
  Reschedule(i);
}

void SimMesh::SendSealed(int i, Outgoing& o, int to) {
  // mesh_node.cc Send(): a datagram that cannot be encoded or sealed is not
  // sent. Neither happens in a correct run (they are counted).
  Traffic& t = traffic_[i];
  auto bytes = EncodeMessage(o.message);
  if (!bytes.ok()) {
    ++t.encode_errors;
    return;
  }
  auto wire = seals_[i]->Seal(bytes.value());
  if (!wire.ok()) {
    ++seal_stats_.seal_errors;
    return;
  }
  ++seal_stats_.sealed;
  t.datagram_bytes += wire->size();
  t.largest_datagram = std::max<uint64_t>(t.largest_datagram, wire->size());
  ++t.datagrams;
  // The same draws, in the same order, as the unsealed path.
  if (to < 0 || !Reachable(i, to) || Uniform() < cfg_.loss) {
    ++t.dropped;
    return;
  }
  Push(now_ + Latency(), Kind::kDatagram, i, to, Store({{}, {}, {}, std::move(wire.value())}));
}

void SimMesh::DeliverSealed(const Event& e, Payload& p) {
  // mesh_node.cc OnDatagram(): open (authenticate, replay window), decode,
  // check that the sealer is the sender the message names.
  const int to = e.to;
  auto opened = seals_[to]->Open(p.wire);
  if (!opened.ok()) {
    const std::string& why = opened.status().message();
    if (why.rfind("too old", 0) == 0) ++seal_stats_.too_old;
    else if (why.rfind("replayed", 0) == 0) ++seal_stats_.replayed;
    else if (why.find("the clock") != std::string::npos) ++seal_stats_.off_clock;
    else ++seal_stats_.refused;
    return;
  }
  ++seal_stats_.opened;
  if (!opened->sender.empty() && services_[to].revoked.IsRevoked(opened->sender)) {
    ++seal_stats_.revoked;
    return;
  }
  std::vector<bool>& heard = heard_[to];
  if (heard.size() <= static_cast<size_t>(e.from)) heard.resize(static_cast<size_t>(size()));
  if (!heard[e.from]) {
    heard[e.from] = true;
    ++seal_stats_.windows;
  }
  auto msg = DecodeMessage(opened->plain);
  if (!msg.ok()) {
    ++seal_stats_.decode_errors;
    return;
  }
  if (opened->sender != msg->sender) {
    ++seal_stats_.sender_mismatch;
    return;
  }
  nodes_[to]->OnMessage(Address(e.from), msg.value(), now_);
  Flush(to);
}

bool SimMesh::Refused(int a, int b) const {
  return services_[b].revoked.IsRevoked(nodes_[a]->self().id) || services_[a].revoked.IsRevoked(nodes_[b]->self().id);
}

void SimMesh::Reschedule(int i) {
  // Two timers where the daemon has one (ArmTimer: the earliest of what the
  // core and the services ask for): the core is ticked at its own wake-ups
  // only, as before the services ran. Membership::Tick between its wake-ups
  // is not a no-op (a round with no news still moves the next gossip round),
  // so one timer would let every sync of the services shift the membership's
  // trace; the daemon's timer fires for more than the sim models anyway
  // (saves, the work service, control requests).
  auto arm = [&](Time w, std::vector<Time>& scheduled, Kind kind) {
    if (w == Time::max()) return;
    if (w < scheduled[i]) {
      scheduled[i] = w;
      Push(w, kind, i, i, 0);
    }
  };
  arm(std::max(nodes_[i]->NextWakeup(), now_), scheduled_, Kind::kTick);
  // As ArmTimer: a wake-up in the past (or now) fires after 1 ms, so a
  // service that keeps asking for "now" idles the node instead of spinning
  // the simulation at one instant.
  Time services = ServicesWakeup(i);
  if (services != Time::max() && services <= now_) services = now_ + std::chrono::milliseconds(1);
  arm(services, service_scheduled_, Kind::kServiceTick);
}

void SimMesh::Handle(const Event& e) {
  const int to = e.to;
  // A stalled node handles its mail and timers when it wakes.
  if (up_[to] && now_ < stalled_until_[to]) {
    if (e.kind == Kind::kTick || e.kind == Kind::kServiceTick) {
      std::vector<Time>& scheduled = e.kind == Kind::kTick ? scheduled_ : service_scheduled_;
      if (e.at == scheduled[to]) {
        scheduled[to] = stalled_until_[to];
        Push(stalled_until_[to], e.kind, to, to, 0);
      }
    } else {
      Push(stalled_until_[to], e.kind, e.from, to, e.slot);
    }
    return;
  }
  switch (e.kind) {
    case Kind::kTick: {
      if (e.at != scheduled_[to]) return;  // superseded by an earlier one
      scheduled_[to] = Time::max();
      if (!up_[to]) return;
      nodes_[to]->Tick(now_);
      Flush(to);
      return;
    }
    case Kind::kServiceTick: {
      // OnTimer's part after core_->Tick.
      if (e.at != service_scheduled_[to]) return;
      service_scheduled_[to] = Time::max();
      if (!up_[to]) return;
      TickServices(to);
      Flush(to);
      return;
    }
    case Kind::kDatagram: {
      Payload p = Take(e.slot);
      if (!up_[to]) return;
      if (cfg_.seal) return DeliverSealed(e, p);
      nodes_[to]->OnMessage(Address(e.from), p.message, now_);
      Flush(to);
      return;
    }
    case Kind::kStreamRequest: {
      Payload p = Take(e.slot);
      if (!Reachable(e.from, to)) {
        Push(now_ + cfg_.stream_timeout, Kind::kStreamFailed, to, e.from, Store(std::move(p)));
        return;
      }
      if (Refused(e.from, to)) {
        // The handshake fails at once, not after the timeout.
        ++service_stats_.push_pulls_refused;
        Push(now_ + Latency(), Kind::kStreamFailed, to, e.from, Store(std::move(p)));
        return;
      }
      PushPull reply = nodes_[to]->OnPushPullRequest(p.state, now_);
      if (cfg_.count_bytes) {
        auto bytes = EncodePushPull(reply);
        traffic_[to].stream_bytes += bytes.ok() ? bytes.value().size() : 0;
      }
      Flush(to);
      Push(now_ + Latency(), Kind::kStreamReply, to, e.from, Store({{}, std::move(reply), p.address, {}}));
      return;
    }
    case Kind::kStreamReply: {
      Payload p = Take(e.slot);
      if (!up_[to]) return;
      nodes_[to]->OnPushPullReply(p.address, p.state, now_);
      Flush(to);
      return;
    }
    case Kind::kStreamFailed: {
      Payload p = Take(e.slot);
      if (!up_[to]) return;
      nodes_[to]->OnPushPullFailed(p.address, now_);
      Flush(to);
      return;
    }
    case Kind::kSecurityRequest: {
      Payload p = Take(e.slot);
      return OnSecurityRequest(e, p);
    }
    case Kind::kSecurityReply: {
      Payload p = Take(e.slot);
      return OnSecurityReply(e, p);
    }
  }
}

void SimMesh::RunUntil(Time until, const std::function<void()>& step) {
  while (!queue_.empty() && queue_.top().at <= until) {
    Time at = queue_.top().at;
    now_ = at;
    while (!queue_.empty() && queue_.top().at == at) {
      Event e = queue_.top();
      queue_.pop();
      ++processed_;
      Handle(e);
    }
    if (step) step();
  }
  now_ = until;
}

bool SimMesh::AllSee(int target, MemberState s) const {
  int observers = 0;
  for (int i = 0; i < size(); ++i) observers += up_[i] && i != target;
  return CountSeeing(target, s) == observers;
}

int SimMesh::CountSeeing(int target, MemberState s) const {
  int n = 0;
  const NodeId id = nodes_[target]->self().id;
  for (int i = 0; i < size(); ++i) {
    if (!up_[i] || i == target) continue;
    const Member* m = nodes_[i]->Find(id);
    n += m != nullptr && m->state == s;
  }
  return n;
}

}  // namespace ndo::mesh::sim
