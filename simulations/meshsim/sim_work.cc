#include "sim_work.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "mesh/work/scan_regions.h"
#include "scan/ip_address.h"
#include "scan/permutation.h"
#include "store/result_bundle.h"

namespace ndo::mesh::sim {

using namespace std::chrono_literals;

namespace {

// The wall clock the simulated clock stands for, in Unix milliseconds at
// Time{} (fixed, arbitrary); each node's is off by a fixed skew below this.
constexpr int64_t kWallBaseMs = 1'795'000'000'000;
constexpr int64_t kMaxSkewMs = 500;

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }
Duration FromSeconds(double s) { return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s)); }
double Unit(uint64_t& rng) { return static_cast<double>(SplitMix64(rng) >> 11) * 0x1.0p-53; }

uint64_t Mix(uint64_t h, uint64_t x) {
  // One round of a multiply-rotate hash (as in MurmurHash2's 64-bit loop).
  x *= 0x87c37b91114253d5ULL;
  x = (x << 31) | (x >> 33);
  h ^= x * 0x4cf5ad432745937fULL;
  return ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
}

uint64_t HashString(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return h;
}

std::string KindName(WorkKind k) {
  switch (k) {
    case WorkKind::kSync: return "sync";
    case WorkKind::kPush: return "push";
    case WorkKind::kLeaseRequest: return "lease";
    case WorkKind::kRenewRequest: return "renew";
    case WorkKind::kBundlePut: return "bundle_put";
    case WorkKind::kBundleFetch: return "bundle_fetch";
    default: return std::string(WorkKindName(k));
  }
}

bool SameView(const MeshView& a, const MeshView& b) {
  if (a.coordinator != b.coordinator || a.coordinator_address != b.coordinator_address || a.epoch != b.epoch ||
      a.known != b.known || a.unsuspected != b.unsuspected || a.coordinator_unsuspected != b.coordinator_unsuspected ||
      a.alive.size() != b.alive.size())
    return false;
  for (size_t k = 0; k < a.alive.size(); ++k)
    if (a.alive[k].id != b.alive[k].id || a.alive[k].address != b.alive[k].address ||
        a.alive[k].vantage != b.alive[k].vantage)
      return false;
  return true;
}

}  // namespace

// ---- The shelf -----------------------------------------------------------------

Result<std::string> SimWork::Shelf::Load(const ScanId& pool, uint32_t shard) {
  auto it = held_.find({pool, shard});
  if (it == held_.end()) return Status::NotFound("bundle not held");
  return *it->second;
}

Status SimWork::Shelf::Keep(const ScanState& state, std::string_view vantage, uint32_t shard, std::string_view bundle,
                            const Digest& digest) {
  // The core has checked the digest against the bytes (or computed it).
  held_[{PoolId(state.id, vantage), shard}] = work_.Intern(digest, bundle);
  return Status::Ok();
}

const std::shared_ptr<const std::string>* SimWork::Shelf::Find(const ScanId& pool, uint32_t shard) const {
  auto it = held_.find({pool, shard});
  return it == held_.end() ? nullptr : &it->second;
}

std::shared_ptr<const std::string> SimWork::Intern(const Digest& digest, std::string_view bytes) {
  auto& slot = bundles_[digest];
  if (!slot) slot = std::make_shared<const std::string>(bytes);
  return slot;
}

// ---- The nodes ---------------------------------------------------------------

SimWork::SimWork(SimMesh& mesh, SimWorkConfig cfg)
    : mesh_(mesh), cfg_(std::move(cfg)), net_rng_(cfg_.seed * 0x2545f4914f6cdd1dULL + 0x5157) {
  nodes_.resize(static_cast<size_t>(mesh_.size()));
  sent_.assign(nodes_.size(), 0);
  uint64_t rng = cfg_.seed ^ 0x776f726b73696dULL;  // "worksim"
  if (cfg_.signatures) {
    std::vector<SimNodeKey> who;
    for (int i = 0; i < mesh_.size(); ++i)
      who.push_back({mesh_.node(i).self().id, VantageName(i % std::max(1, cfg_.vantages)), cfg_.operators.count(i) > 0});
    // Certificates by the nodes' wall clocks (skewed as their cores' are).
    auto keys = MakeSimKeys(who, kWallBaseMs / 1000, [this](size_t i) { return WallMs(static_cast<int>(i)) / 1000; },
                            key_stats_);
    if (!keys.ok()) {
      Fail("cannot make the simulation's keys: " + keys.status().message());
    } else {
      keys_ = std::move(*keys);
    }
  }
  for (int i = 0; i < mesh_.size(); ++i) {
    Node& n = nodes_[i];
    n.up = mesh_.IsUp(i);
    n.vantage = VantageName(i % std::max(1, cfg_.vantages));
    n.skew_ms = static_cast<int64_t>(SplitMix64(rng) % kMaxSkewMs);
    n.rate = cfg_.rate * (1 + cfg_.rate_spread * (2 * Unit(rng) - 1));
    n.shelf = std::make_unique<Shelf>(*this);
    n.core = std::make_unique<WorkCore>(mesh_.node(i).self().id, n.vantage, cfg_.work, SplitMix64(rng), *n.shelf,
                                        keys_.empty() ? nullptr : keys_[i].get());
    if (cfg_.policies.empty()) {
      n.policy.Add({IpAddress::FromV4(0x0a000000).value(), IpAddress::FromV4(0x0affffff).value()});
    } else {
      n.policy = cfg_.policies[static_cast<size_t>(i) % cfg_.policies.size()];
    }
    n.core->SetPolicy(n.policy);
    index_[mesh_.node(i).self().id] = static_cast<size_t>(i);
    // Nodes started at different times: their first ticks (and so their
    // syncs, one a second from the first) do not line up.
    n.scheduled = mesh_.now() + FromSeconds(Unit(rng));
    Push(n.scheduled, Ev::kWake, i, 0);
  }
  mesh_.OnPayloads([this](int i, std::vector<std::string> payloads) {
    if (i >= 0 && static_cast<size_t>(i) < nodes_.size()) OnPayloads(i, payloads);
  });
  // Any change of a node's view (a member's state, the coordinator) makes
  // it rebuild the view it hands its core, at its next input.
  mesh_.OnObservation([this](const Observation& ob) {
    if (ob.observer >= 0 && static_cast<size_t>(ob.observer) < nodes_.size()) nodes_[ob.observer].view_dirty = true;
  });
}

int64_t SimWork::WallMs(int i) const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(mesh_.now().time_since_epoch()).count();
  return kWallBaseMs + ms + nodes_[i].skew_ms;
}

void SimWork::Push(Time at, Ev kind, int node, uint64_t id) { queue_.push({at, kind, seq_++, node, id}); }

void SimWork::Fail(const std::string& what) {
  if (stats_.violations++ == 0) stats_.first_violation = what;
}

void SimWork::Feed(int i) {
  Node& n = nodes_[i];
  if (!n.view_dirty && n.view) return;
  // The simulated member records carry no policy (their datagrams stay as
  // they were measured): each peer's comes from its node here.
  auto view = std::make_shared<MeshView>(MeshViewOf(mesh_.node(i)));
  for (MeshPeer& p : view->alive)
    if (auto it = index_.find(p.id); it != index_.end()) p.allow = nodes_[it->second].policy;
  n.view = std::move(view);
  n.view_dirty = false;
  n.core->UpdateView(n.view, WallMs(i));
}

bool SimWork::ViewsConsistent() {
  for (int i = 0; i < mesh_.size(); ++i) {
    Node& n = nodes_[i];
    if (!n.up || !n.view || n.view_dirty) continue;  // a dirty view is rebuilt before the core's next input
    if (!SameView(*n.view, MeshViewOf(mesh_.node(i)))) return false;
  }
  return true;
}

int SimWork::MajorityCoordinator() const {
  std::map<NodeId, int> votes;
  for (int i = 0; i < mesh_.size(); ++i)
    if (mesh_.IsUp(i) && mesh_.node(i).Coordinator()) ++votes[*mesh_.node(i).Coordinator()];
  int best = 0;
  NodeId who;
  for (const auto& [id, v] : votes)
    if (v > best) best = v, who = id;
  return best ? mesh_.IndexOf(who) : -1;
}

// ---- The event loop ----------------------------------------------------------

void SimWork::RunUntil(Time until, const std::function<void()>& step) {
  for (;;) {
    Time t = until;
    if (!queue_.empty() && queue_.top().at < t) t = queue_.top().at;
    mesh_.RunUntil(t);  // the membership first, up to and including t
    bool any = false;
    while (!queue_.empty() && queue_.top().at <= t) {
      Event e = queue_.top();
      queue_.pop();
      ++processed_;
      Handle(e);
      any = true;
    }
    if (any && step) step();
    if (t >= until) break;
  }
}

void SimWork::Reschedule(int i, bool ticked) {
  Node& n = nodes_[i];
  if (!n.up || !n.started) return;  // the first tick is scheduled already
  int64_t delta = n.core->NextWakeup() - WallMs(i);
  // Due at this very ms is no fault after another input: a timer falls due
  // in the ms of a reply or a payload that comes first (same instant, or
  // the wake queued later in the ms, as it was scheduled from a time with a
  // fraction of a ms), and the Tick follows. Right after a Tick it is one:
  // the next Tick changes nothing and is due at once again.
  if (delta < 0 || (delta == 0 && ticked)) ++stats_.past_wakeups;
  if (delta <= 0) delta = 1;  // the daemon's timer would fire at once; here 1 ms later, so time moves on
  Time w = mesh_.now() + std::chrono::milliseconds(delta);
  if (w < n.scheduled) {
    n.scheduled = w;
    Push(w, Ev::kWake, i, 0);
  }
}

void SimWork::Carry(int i, bool ticked) {
  Node& n = nodes_[i];
  // As WorkService::Carry: carrying out one output may bring new ones.
  for (int round = 0; round < 8; ++round) {
    auto requests = n.core->TakeRequests();
    auto broadcasts = n.core->TakeBroadcasts();
    auto commands = n.core->TakeScanCommands();
    n.core->TakeDirty();  // no store here: a crash loses everything anyway
    if (requests.empty() && broadcasts.empty() && commands.empty()) break;
    Broadcast(i, std::move(broadcasts));
    for (auto& r : requests) Send(i, std::move(r));
    for (const auto& c : commands) c.kind == ScanCommand::Kind::kStart ? Start(i, c) : Stop(i, c);
  }
  Reschedule(i, ticked);
}

void SimWork::Broadcast(int i, std::vector<GossipPayload> payloads) {
  if (payloads.empty()) return;
  for (auto& b : payloads) {
    mesh_.node(i).Broadcast(std::move(b.key), std::move(b.payload));
    ++stats_.deltas_queued;
  }
  mesh_.Wake(i);  // its gossip timer may now be due sooner
}

void SimWork::OnPayloads(int i, const std::vector<std::string>& payloads) {
  Node& n = nodes_[i];
  if (!n.up || !n.core) return;
  Feed(i);
  for (const auto& p : payloads) {
    n.core->OnPayload(p, WallMs(i));
    // A payload that was news is passed on at once: that is how it shows.
    auto out = n.core->TakeBroadcasts();
    if (!out.empty()) ++stats_.deltas_merged;
    Broadcast(i, std::move(out));
  }
  Carry(i);
}

void SimWork::Handle(const Event& e) {
  switch (e.kind) {
    case Ev::kWake: {
      Node& n = nodes_[e.node];
      if (e.at != n.scheduled) return;  // superseded by an earlier one
      n.scheduled = Time::max();
      if (!n.up) return;
      n.started = true;
      Feed(e.node);
      n.core->Tick(WallMs(e.node));
      Carry(e.node, true);
      return;
    }
    case Ev::kScanned:
    case Ev::kStopped: {
      auto it = jobs_.find(e.id);
      Job job = it->second;
      jobs_.erase(it);
      Node& n = nodes_[job.node];
      if (!n.up) return;
      ShardOutcome out;
      out.ref = job.ref;
      if (e.kind == Ev::kStopped) {
        out.stopped = true;  // as ScanHost reports a stopped engine
      } else {
        auto s = n.scanning.find(job.ref);
        if (s == n.scanning.end() || s->second != e.id) return;  // stopped meanwhile: reported then
        n.scanning.erase(s);
        DropScanner(job.node, job.ref);
        const ScanState* state = n.core->Find(job.ref.scan);
        if (!state) {
          out.status = Status::NotFound("unknown scan");
        } else {
          // ScanHost's completion: the bundle is on the shelf, then the core hears.
          auto bundle = Yield(*state, job.ref.vantage, job.ref.shard);
          out.status = n.shelf->Keep(*state, job.ref.vantage, job.ref.shard, *bundle->bytes, bundle->digest);
          out.results = bundle->results;
          out.digest = bundle->digest;
          out.probes_sent = cfg_.shard_probes;
          out.seconds = static_cast<double>(cfg_.shard_probes) / n.rate;
          ++stats_.scans_finished;
        }
      }
      Feed(job.node);
      n.core->OnShardOutcome(out, WallMs(job.node));
      Carry(job.node);
      return;
    }
    case Ev::kRequest: {
      auto it = pending_.find(e.id);
      Pending& p = it->second;
      const Time now = mesh_.now();
      const std::string kind = KindName(p.kind);
      if (!mesh_.CanReach(p.from, p.to) || !nodes_[p.to].up) {
        ++stats_.by_kind[kind].failed;
        Push(std::max(now, p.sent + cfg_.request_timeout), Ev::kFail, p.from, e.id);
        return;
      }
      // As the daemon's Node::OnWorkStream: the service ticks with the
      // current view, then answers. The vantage a member asks work for is
      // the one its record says; SimMesh's records carry their own
      // vantage names, so this simulation's assignment stands for them.
      const int to = p.to;
      Node& r = nodes_[to];
      Feed(to);
      r.core->Tick(WallMs(to));
      WorkMessage reply = r.core->OnMessage(p.request, nodes_[p.from].vantage, WallMs(to));
      Carry(to);
      p.request = WorkMessage{};  // delivered: its states and bundle are not kept in flight
      if (p.kind == WorkKind::kLeaseRequest) {
        if (reply.kind == WorkKind::kLeaseGrant) ++stats_.grants;
        else if (reply.kind == WorkKind::kRefused && reply.error == "no work") ++stats_.grant_refusals;
        else if (reply.kind == WorkKind::kRefused && reply.error == "coordinator taking office")
          ++stats_.grant_refusals_taking_office;
      } else if (p.kind == WorkKind::kRenewRequest) {
        if (reply.kind == WorkKind::kRenewed) ++stats_.renewals;
        else if (reply.kind == WorkKind::kRefused) {
          ++stats_.renew_refusals;
          stats_.renew_refusals_not_coordinator += reply.error == "not the coordinator";
        }
      }
      Count(reply, to, p.kind);
      if (Unit(net_rng_) < mesh_.config().loss) {
        ++stats_.by_kind[kind].failed;
        Push(std::max(now, p.sent + cfg_.request_timeout), Ev::kFail, p.from, e.id);
        return;
      }
      p.reply = std::move(reply);
      Push(now + mesh_.DrawLatency(net_rng_), Ev::kReply, p.from, e.id);
      return;
    }
    case Ev::kReply:
    case Ev::kFail: {
      auto it = pending_.find(e.id);
      Pending p = std::move(it->second);
      pending_.erase(it);
      Node& n = nodes_[p.from];
      if (!n.up) return;
      if (e.kind == Ev::kFail) p.reply = Status::Unavailable("stream failed");
      const bool ok = p.reply.ok();
      if (p.kind == WorkKind::kBundlePut) {
        ok && p.reply->kind == WorkKind::kAck ? ++stats_.replicas_stored : ++stats_.replicas_failed;
      } else if (p.kind == WorkKind::kBundleFetch) {
        ok && p.reply->kind == WorkKind::kBundleData ? ++stats_.bundles_fetched : ++stats_.fetch_failures;
      } else if (p.kind == WorkKind::kRenewRequest && ok && p.reply->kind == WorkKind::kRenewed) {
        // The invariant's record of the lease this scanner holds.
        auto key = std::make_tuple(p.ref.scan, p.ref.vantage, p.ref.shard);
        if (auto s = scanners_.find(key); s != scanners_.end())
          for (Scanner& sc : s->second)
            if (sc.node == p.from && std::tie(p.reply->lease.epoch, p.reply->lease.counter) >
                                         std::tie(sc.lease.epoch, sc.lease.counter))
              sc.lease = p.reply->lease;
      }
      Feed(p.from);
      n.core->OnReply(p.core_id, std::move(p.reply), WallMs(p.from));
      Carry(p.from);
      return;
    }
  }
}

void SimWork::Count(const WorkMessage& m, int from, WorkKind request_kind) {
  WorkTraffic& t = stats_.by_kind[KindName(request_kind)];
  ++t.messages;
  if (!cfg_.count_bytes) return;
  // The message as work_messages.h encodes it, plus the frame's kind byte;
  // states and bundles apart (their sizes are known), so that a state is
  // not encoded once more for each message that carries it.
  WorkMessage skeleton;
  skeleton.kind = m.kind;
  skeleton.sender = m.sender;
  skeleton.error = m.error;
  skeleton.digests = m.digests;
  skeleton.wanted = m.wanted;
  skeleton.scan = m.scan;
  skeleton.vantage = m.vantage;
  skeleton.shard = m.shard;
  skeleton.lease = m.lease;
  skeleton.epoch = m.epoch;
  uint64_t bytes = 1;
  if (auto enc = EncodeWorkMessage(skeleton); enc.ok()) bytes += enc->size();
  for (const auto& s : m.states) bytes += s.size() + 8;  // a list element's pointer and padding, roughly
  bytes += m.bundle.size();
  t.bytes += bytes;
  sent_[from] += bytes;
}

void SimWork::Send(int i, WorkRequest r) {
  const int to = mesh_.IndexOf(r.to);
  const WorkKind kind = r.message.kind;
  Count(r.message, i, kind);
  uint64_t id = next_id_++;
  Pending& p = pending_[id];
  p.from = i;
  p.to = to;
  p.sent = mesh_.now();
  p.core_id = r.id;
  p.kind = kind;
  p.ref = {r.message.scan, r.message.vantage, r.message.shard};
  p.request = std::move(r.message);
  if (to < 0 || !mesh_.CanReach(i, to) || Unit(net_rng_) < mesh_.config().loss) {
    ++stats_.by_kind[KindName(kind)].failed;
    p.request = WorkMessage{};
    Push(p.sent + cfg_.request_timeout, Ev::kFail, i, id);
    return;
  }
  // As SimMesh's streams: a handshake and the transfer, a few latencies.
  Push(p.sent + mesh_.DrawLatency(net_rng_) * 3, Ev::kRequest, to, id);
}

// ---- The fake scanner --------------------------------------------------------

ShardLease SimWork::LeaseOf(const Scanner& s, const ShardRef& ref) const {
  ShardLease l = s.lease;
  const Node& n = nodes_[s.node];
  if (!n.core) return l;
  if (const ScanState* st = n.core->Find(ref.scan))
    if (auto v = VantageIndex(*st, ref.vantage); v && ref.shard < st->pools[*v].size()) {
      const ShardLease& mine = st->pools[*v][ref.shard].lease;
      if (mine.holder == mesh_.node(s.node).self().id &&
          std::tie(mine.epoch, mine.counter) > std::tie(l.epoch, l.counter))
        l = mine;
    }
  return l;
}

void SimWork::Start(int i, const ScanCommand& c) {
  Node& n = nodes_[i];
  const ShardRef& ref = c.ref;
  const ShardLease& lease = c.lease;
  ++stats_.scans_started;
  if (n.view && n.view->coordinator && *n.view->coordinator == mesh_.node(i).self().id) ++stats_.self_grants;
  auto key = std::make_tuple(ref.scan, ref.vantage, ref.shard);
  // Invariants: another up scanner of this shard must hold an older lease
  // (it will stop on seeing ours); its previous scanner should be down.
  std::vector<Scanner>& now_scanning = scanners_[key];
  for (const Scanner& s : now_scanning) {
    if (s.node == i || !mesh_.IsUp(s.node)) continue;
    ++stats_.concurrent_scans;
    ShardLease theirs = LeaseOf(s, ref);
    if (theirs.epoch == lease.epoch && theirs.counter == lease.counter)
      Fail("nodes " + std::to_string(s.node) + " and " + std::to_string(i) + " scan shard " + std::to_string(ref.shard) +
           " of " + ref.vantage + " under lease (epoch " + std::to_string(lease.epoch) + ", counter " +
           std::to_string(lease.counter) + ")");
  }
  auto& starts = starts_[key];
  bool first_crashed = false;
  if (!starts.empty()) {
    if (mesh_.IsUp(starts.back().first)) {
      ++stats_.rescans_previous_up;
      ExplainRescan(i, ref, lease, starts.back().first, now_scanning);
    }
    first_crashed = !mesh_.IsUp(starts.front().first);
  }
  starts.emplace_back(i, first_crashed);
  std::erase_if(now_scanning, [i](const Scanner& s) { return s.node == i; });
  now_scanning.push_back({i, lease});
  // ScanHost::Start: the engine runs shard_probes at this node's rate.
  uint64_t job = next_id_++;
  jobs_[job] = {i, ref};
  n.scanning[ref] = job;
  Push(mesh_.now() + FromSeconds(static_cast<double>(cfg_.shard_probes) / n.rate), Ev::kScanned, i, job);
}

// Why a shard was granted again while its previous scanner was up, on
// stderr: what the granting coordinator saw of that scanner and its lease.
// The simulator knows the ground truth; the core only its view.
void SimWork::ExplainRescan(int i, const ShardRef& ref, const ShardLease& lease, int prev,
                            const std::vector<Scanner>& now_scanning) {
  std::optional<ShardLease> prev_lease;
  for (const Scanner& s : now_scanning)
    if (s.node == prev) prev_lease = LeaseOf(s, ref);
  const NodeId& prev_id = mesh_.node(prev).self().id;
  int granter = -1;
  for (int k = 0; k < mesh_.size(); ++k) {
    const Node& c = nodes_[k];
    if (c.up && c.view && c.view->coordinator && *c.view->coordinator == mesh_.node(k).self().id &&
        c.view->epoch == lease.epoch)
      granter = k;
  }
  auto sees = [&](int k) -> const char* {
    if (k < 0 || !nodes_[k].view) return "?";
    for (const MeshPeer& p : nodes_[k].view->alive)
      if (p.id == prev_id) return "alive";
    return k == prev ? "self" : "not-alive";
  };
  int64_t now = WallMs(i);
  std::fprintf(stderr,
               "rescan t=%.1f shard %s/%u to n%d lease (e%llu,c%llu); previous n%d %s, its lease %s; "
               "granter n%d sees it %s\n",
               std::chrono::duration<double>(mesh_.now().time_since_epoch()).count(), ref.vantage.c_str(), ref.shard, i, (unsigned long long)lease.epoch,
               (unsigned long long)lease.counter, prev, prev_lease ? "still scanning" : "not scanning",
               prev_lease ? ("(e" + std::to_string(prev_lease->epoch) + ",c" + std::to_string(prev_lease->counter) +
                             ", expires in " + std::to_string(prev_lease->expires_ms - now) + " ms)")
                                .c_str()
                          : "-",
               granter, sees(granter));
}

void SimWork::Stop(int i, const ScanCommand& c) {
  Node& n = nodes_[i];
  if (!n.scanning.erase(c.ref)) return;
  ++stats_.scans_stopped;
  DropScanner(i, c.ref);
  // The engine stops and reports so, after this round (ScanHost's report).
  uint64_t job = next_id_++;
  jobs_[job] = {i, c.ref};
  Push(mesh_.now(), Ev::kStopped, i, job);
}

void SimWork::DropScanner(int i, const ShardRef& ref) {
  auto it = scanners_.find(std::make_tuple(ref.scan, ref.vantage, ref.shard));
  if (it == scanners_.end()) return;
  auto& v = it->second;
  std::erase_if(v, [i](const Scanner& s) { return s.node == i; });
  if (v.empty()) scanners_.erase(it);
}

std::shared_ptr<const SimBundle> SimWork::Yield(const ScanState& s, const std::string& vantage, uint32_t shard) {
  auto key = std::make_tuple(s.id, vantage, shard);
  if (auto it = truth_.find(key); it != truth_.end()) return it->second;
  uint64_t rng = Mix(Mix(Mix(0x79696564ULL, s.definition.spec.seed), HashString(vantage)), shard);
  const uint64_t base = static_cast<uint64_t>(shard) * cfg_.shard_probes;
  std::vector<uint64_t> hits;
  const double p = std::clamp(cfg_.hit_rate, 0.0, 1.0);
  if (p >= 1) {
    for (uint64_t k = 0; k < cfg_.shard_probes; ++k) hits.push_back(base + k);
  } else if (p > 0) {
    // Each probe a hit with probability p: geometric gaps between hits.
    const double log_miss = std::log1p(-p);
    uint64_t next = 0;
    for (;;) {
      double gap = std::floor(std::log(std::max(Unit(rng), 1e-300)) / log_miss);
      if (gap >= static_cast<double>(cfg_.shard_probes - next)) break;
      next += static_cast<uint64_t>(gap);
      hits.push_back(base + next);
      if (++next >= cfg_.shard_probes) break;
    }
  }
  // A probe index stands for one (address, port): the low 32 bits the IPv4
  // address, the rest the port, so that indices map to distinct probes.
  // Every field derives from the index: any scanner encodes the same bytes.
  std::vector<ProbeResult> results;
  results.reserve(hits.size());
  for (uint64_t x : hits) {
    ProbeResult r;
    r.address = IpAddress::FromV4(static_cast<uint32_t>(x));
    r.port = static_cast<uint16_t>(80 + (x >> 32));
    r.state = PortState::kOpen;
    r.attempts = 1;
    r.rtt_us = static_cast<uint32_t>(500 + Mix(x, 0x727474) % 100'000);
    r.time_us = kWallBaseMs * 1000 + static_cast<int64_t>(x % 1'000'000'000);
    results.push_back(r);
  }
  auto b = std::make_shared<SimBundle>();
  b->results = results.size();
  auto bytes = EncodeResultBundle(std::move(results));
  if (!bytes.ok()) {
    // Only a broken fake scanner gets here: counted, never hidden.
    Fail("result bundle not encoded: " + bytes.status().message());
    bytes = std::string();
  }
  b->digest = BundleDigest(*bytes);
  b->bytes = Intern(b->digest, *bytes);
  truth_[key] = b;
  return b;
}

// ---- Control and measurements --------------------------------------------------

Result<ScanId> SimWork::Submit(int i, uint32_t shards) {
  Node& n = nodes_[i];
  ScanDefinition def;
  def.spec.arguments = {"ndo", "10.0.0.0/8", "-p", "80"};
  def.spec.targets.addresses.Add({IpAddress::FromV4(0x0a000000).value(), IpAddress::FromV4(0x0affffff).value()});
  def.spec.ports = {80};
  def.spec.seed = cfg_.seed;
  def.spec.shard_count = shards;
  std::vector<IntervalSet> policies;
  for (const Node& node : nodes_) policies.push_back(node.policy);
  auto regions = PlanRegions(def.spec.targets.addresses, def.spec.ports.size(), policies, shards);
  if (!regions.ok()) return regions.status();
  if (!regions->empty()) {
    def.regions = std::move(*regions);
    def.spec.shard_count = 0;
    for (const auto& r : def.regions) def.spec.shard_count += r.shards;
  }
  for (int v = 0; v < std::max(1, cfg_.vantages); ++v) def.vantages.push_back(VantageName(v));
  std::sort(def.vantages.begin(), def.vantages.end());
  Feed(i);
  auto id = n.core->Submit(std::move(def), WallMs(i));
  Carry(i);
  return id;
}

void SimWork::Crash(int i) {
  mesh_.Crash(i);
  Node& n = nodes_[i];
  if (!n.up) return;
  n.up = false;
  for (const auto& [ref, job] : n.scanning) DropScanner(i, ref);
  // Everything in memory is gone; requests and jobs in flight find the node down.
  n.core.reset();
  n.shelf.reset();
  n.view.reset();
  n.scanning.clear();
  n.done_seen.clear();
}

SimWork::Progress SimWork::Check(const ScanId& scan) {
  Progress p;
  std::vector<uint8_t> done_anywhere;
  for (int i = 0; i < mesh_.size(); ++i) {
    Node& n = nodes_[i];
    if (!n.up) continue;
    ++p.survivors;
    const ScanState* s = n.core->Find(scan);
    if (!s) continue;
    const size_t shards = s->definition.spec.shard_count;
    auto& seen = n.done_seen[scan];
    seen.resize(s->pools.size() * shards);
    done_anywhere.resize(seen.size());
    bool all_done = true, all_held = true;
    const auto& held = n.core->held();
    for (size_t v = 0; v < s->pools.size(); ++v) {
      const ScanId pool = PoolId(scan, s->definition.vantages[v]);
      for (uint32_t k = 0; k < shards; ++k) {
        const ShardDone& d = s->pools[v][k].done;
        const size_t x = v * shards + k;
        if (!d.done) {
          all_done = false;
          if (seen[x])
            Fail("shard " + std::to_string(k) + " of " + s->definition.vantages[v] + " done, then not, on node " +
                 std::to_string(i));
          continue;
        }
        seen[x] = 1;
        done_anywhere[x] = 1;
        if (!n.complete && all_held) {
          auto h = held.find({pool, k});
          if (h == held.end() || h->second != d.digest) all_held = false;
        }
      }
    }
    if (all_done) ++p.all_done;
    if (all_done && (n.complete || all_held)) {
      n.complete = true;  // done never goes back and bundles are never dropped
      ++p.complete;
    }
  }
  p.shards_done_somewhere = static_cast<uint32_t>(std::count(done_anywhere.begin(), done_anywhere.end(), 1));
  return p;
}

uint32_t SimWork::DoneIn(int i, const ScanId& scan) const {
  const ScanState* s = nodes_[i].core ? nodes_[i].core->Find(scan) : nullptr;
  if (!s) return 0;
  uint32_t n = 0;
  for (const auto& pool : s->pools)
    for (const auto& sh : pool) n += sh.done.done;
  return n;
}

uint64_t SimWork::MissingResults(const ScanId& scan, uint64_t* shards_lost) {
  // The truth, from any copy of the definition.
  const ScanState* def = nullptr;
  for (const Node& n : nodes_)
    if (n.up && n.core->Find(scan)) def = n.core->Find(scan);
  if (!def) return 0;
  const size_t shards = def->definition.spec.shard_count;
  std::vector<std::shared_ptr<const SimBundle>> truth;
  std::vector<ScanId> pools;
  for (size_t v = 0; v < def->pools.size(); ++v) {
    pools.push_back(PoolId(scan, def->definition.vantages[v]));
    for (uint32_t k = 0; k < shards; ++k) truth.push_back(Yield(*def, def->definition.vantages[v], k));
  }
  std::vector<uint8_t> anyone(truth.size());
  uint64_t missing = 0;
  for (const Node& n : nodes_) {
    if (!n.up) continue;
    for (size_t x = 0; x < truth.size(); ++x) {
      auto* held = n.shelf->Find(pools[x / shards], static_cast<uint32_t>(x % shards));
      // Interned by digest: the same pointer is the same bytes; else compare.
      bool ok = held && (*held == truth[x]->bytes || **held == *truth[x]->bytes);
      if (ok) {
        anyone[x] = 1;
      } else {
        ++missing;
      }
    }
  }
  if (shards_lost) *shards_lost = static_cast<uint64_t>(std::count(anyone.begin(), anyone.end(), 0));
  return missing;
}

uint64_t SimWork::ShardsScannedTwice(uint64_t* first_holder_crashed) const {
  uint64_t twice = 0, crashed = 0;
  for (const auto& [key, starts] : starts_) {
    if (starts.size() < 2) continue;
    ++twice;
    crashed += starts[1].second;
  }
  if (first_holder_crashed) *first_holder_crashed = crashed;
  return twice;
}

// ---- The scenario -----------------------------------------------------------

Figures DistributedScan(const ScenarioOptions& o, const WorkScenarioOptions& w) {
  Figures f;
  SimConfig mc;
  mc.nodes = o.nodes;
  mc.seed = o.seed;
  mc.loss = o.loss;
  mc.count_bytes = o.count_bytes;
  mc.rejoin = o.rejoin;
  mc.membership = o.membership;
  SimMesh mesh(mc);
  mesh.Bootstrap();
  uint64_t rng = o.seed * 0x9e3779b97f4a7c15ULL + 17;
  auto pick = [&](uint64_t n) { return SplitMix64(rng) % n; };
  // Drawn before the work layer is built (the same draw as ever: rng is
  // this scenario's own), so that its certificate can make it an operator.
  int submitter = static_cast<int>(pick(static_cast<uint64_t>(mesh.size())));
  SimWorkConfig wc;
  wc.signatures = w.signatures;
  if (w.signatures) wc.operators = {submitter};
  wc.vantages = w.vantages;
  wc.shard_probes = w.shard_probes;
  wc.rate = w.rate;
  wc.hit_rate = w.hit_rate;
  wc.count_bytes = o.count_bytes;
  wc.seed = o.seed;
  SimWork work(mesh, wc);

  work.RunUntil(mesh.now() + 10s);  // one coordinator, known to all
  const Time settled = mesh.now();
  auto id = work.Submit(submitter, w.shards_per_pool);
  if (!id.ok()) {
    f.Add("submit_failed", 1);
    return f;
  }
  const Time t0 = mesh.now();

  // Crashes at random times during the scan as expected without them: the
  // shards of a pool over its nodes, one shard after another.
  const int crashes = static_cast<int>(std::lround(w.crash_fraction * mesh.size()));
  const double shard_s = static_cast<double>(w.shard_probes) / w.rate;
  const int per_vantage = std::max(1, mesh.size() / std::max(1, w.vantages));
  const double expected_s = std::ceil(static_cast<double>(w.shards_per_pool) / per_vantage) * shard_s;
  const double window_s = std::max(5.0, 0.9 * expected_s);
  std::vector<double> at;
  for (int c = 0; c < crashes; ++c) at.push_back(1.0 + (window_s - 1.0) * Unit(rng));
  std::sort(at.begin(), at.end());
  std::set<int> of_coordinator;
  const int of_coord = std::min(w.coordinator_crashes, crashes);
  if (w.coordinator_crash_at_s >= 0 && of_coord > 0) {
    // The crash nearest the time asked for, and those after it.
    size_t first = 0;
    for (size_t c = 0; c < at.size(); ++c)
      if (std::abs(at[c] - w.coordinator_crash_at_s) < std::abs(at[first] - w.coordinator_crash_at_s)) first = c;
    at[first] = w.coordinator_crash_at_s;
    std::sort(at.begin(), at.end());
    first = static_cast<size_t>(std::lower_bound(at.begin(), at.end(), w.coordinator_crash_at_s) - at.begin());
    for (int k = 0; k < of_coord; ++k)
      of_coordinator.insert(static_cast<int>(std::min(first + static_cast<size_t>(k) * (at.size() - first) / of_coord, at.size() - 1)));
  } else {
    for (int k = 0; k < of_coord; ++k) of_coordinator.insert((k + 1) * crashes / (of_coord + 1));
  }

  std::optional<double> all_somewhere, all_everywhere, complete;
  int coordinator_crashes = 0, first_coordinator = -1;
  double first_coordinator_crash = std::nan("");
  uint32_t done_at_coordinator_crash = 0;
  size_t next_crash = 0;
  std::vector<uint64_t> scan_phase_sent;  // bytes sent per node until all is done everywhere
  const Time limit = t0 + FromSeconds(w.time_limit_s);
  const double shards_total = static_cast<double>(w.shards_per_pool) * w.vantages;
  SimWork::Progress p;
  while (mesh.now() < limit) {
    Time next = std::min(limit, mesh.now() + 1s);
    if (next_crash < at.size()) next = std::min(next, t0 + FromSeconds(at[next_crash]));
    work.RunUntil(next);
    while (next_crash < at.size() && t0 + FromSeconds(at[next_crash]) <= mesh.now()) {
      int victim = -1;
      if (of_coordinator.count(static_cast<int>(next_crash))) {
        victim = work.MajorityCoordinator();
        if (victim >= 0 && mesh.IsUp(victim)) {
          if (coordinator_crashes++ == 0) {
            first_coordinator = victim;
            first_coordinator_crash = Seconds(mesh.now() - t0);
            done_at_coordinator_crash = work.Check(*id).shards_done_somewhere;
          }
        } else {
          victim = -1;
        }
      }
      while (victim < 0 || !mesh.IsUp(victim)) victim = static_cast<int>(pick(static_cast<uint64_t>(mesh.size())));
      work.Crash(victim);
      ++next_crash;
    }
    p = work.Check(*id);
    double t = Seconds(mesh.now() - t0);
    f.curve.emplace_back("shards_done_somewhere", t, p.shards_done_somewhere / shards_total);
    f.curve.emplace_back("survivors_complete", t, static_cast<double>(p.complete) / std::max(1, p.survivors));
    if (!all_somewhere && p.shards_done_somewhere == shards_total) all_somewhere = t;
    if (!all_everywhere && p.all_done == p.survivors) {
      all_everywhere = t;
      scan_phase_sent = work.bytes_sent();
    }
    if (!complete && p.complete == p.survivors) complete = t;
    if (complete && next_crash == at.size()) break;
    if (w.progress && std::fmod(t + 1e-6, 30.0) < 1.0)
      std::fprintf(stderr, "  t=%.0f s: %u/%.0f shards done somewhere, %d/%d survivors all done, %d complete\n", t,
                   p.shards_done_somewhere, shards_total, p.all_done, p.survivors, p.complete);
  }
  const double elapsed = Seconds(mesh.now() - t0);
  const WorkStats& st = work.stats();
  uint64_t lost = 0, first_crashed = 0;
  uint64_t missing = work.MissingResults(*id, &lost);
  uint64_t twice = work.ShardsScannedTwice(&first_crashed);
  uint32_t done_min = UINT32_MAX;
  for (int i = 0; i < mesh.size(); ++i)
    if (mesh.IsUp(i)) done_min = std::min(done_min, work.DoneIn(i, *id));

  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("vantages", w.vantages);
  f.Add("shards_per_pool", w.shards_per_pool);
  f.Add("shards_total", shards_total);
  f.Add("shard_scan_s", shard_s);
  f.Add("crashes", crashes);
  f.Add("coordinator_crashes", coordinator_crashes);
  f.Add("first_coordinator_crash_s", first_coordinator_crash);
  f.Add("shards_done_at_coordinator_crash", done_at_coordinator_crash);
  f.Add("last_crash_s", at.empty() ? std::nan("") : at.back());
  f.Add("survivors", p.survivors);
  f.Add("all_shards_done_somewhere_s", all_somewhere.value_or(std::nan("")));
  f.Add("all_shards_done_everywhere_s", all_everywhere.value_or(std::nan("")));
  f.Add("completion_s", complete.value_or(std::nan("")));  // every survivor: all done, every bundle held
  f.Add("shards_done_min_over_survivors", done_min == UINT32_MAX ? 0 : done_min);
  f.Add("survivors_complete", p.complete);
  f.Add("results_missing", static_cast<double>(missing));  // (survivor, shard) pairs
  f.Add("shards_lost", static_cast<double>(lost));          // held by no survivor
  f.Add("shards_scanned_twice", static_cast<double>(twice));
  f.Add("scanned_twice_first_holder_crashed", static_cast<double>(first_crashed));
  f.Add("rescans_previous_scanner_up", static_cast<double>(st.rescans_previous_up));
  f.Add("concurrent_scans", static_cast<double>(st.concurrent_scans));
  f.Add("invariant_violations", static_cast<double>(st.violations));
  f.Add("lease_grants", static_cast<double>(st.grants));  // replies sent over the network
  f.Add("self_grants", static_cast<double>(st.self_grants));  // starts of a node coordinating then
  f.Add("grant_refusals_no_work", static_cast<double>(st.grant_refusals));
  f.Add("lease_renewals", static_cast<double>(st.renewals));
  f.Add("renew_refusals", static_cast<double>(st.renew_refusals));
  f.Add("renew_refusals_not_coordinator", static_cast<double>(st.renew_refusals_not_coordinator));
  f.Add("grant_refusals_taking_office", static_cast<double>(st.grant_refusals_taking_office));
  f.Add("scans_started", static_cast<double>(st.scans_started));
  f.Add("scans_stopped", static_cast<double>(st.scans_stopped));
  f.Add("scans_finished", static_cast<double>(st.scans_finished));
  f.Add("replicas_stored", static_cast<double>(st.replicas_stored));
  f.Add("replicas_failed", static_cast<double>(st.replicas_failed));
  f.Add("deltas_queued", static_cast<double>(st.deltas_queued));
  f.Add("deltas_merged", static_cast<double>(st.deltas_merged));
  f.Add("bundles_fetched", static_cast<double>(st.bundles_fetched));
  f.Add("bundle_fetch_failures", static_cast<double>(st.fetch_failures));
  f.Add("worker_past_wakeups", static_cast<double>(st.past_wakeups));
  uint64_t messages = 0, bytes = 0, failed = 0;
  for (const auto& [kind, t] : st.by_kind) {
    messages += t.messages;
    bytes += t.bytes;
    failed += t.failed;
    f.Add("work_" + kind + "_messages", static_cast<double>(t.messages));
    if (o.count_bytes) f.Add("work_" + kind + "_bytes", static_cast<double>(t.bytes));
  }
  const double secs = std::max(elapsed, 1e-9), n = static_cast<double>(o.nodes);
  f.Add("work_messages", static_cast<double>(messages));
  f.Add("work_failed_legs", static_cast<double>(failed));
  if (o.count_bytes) {
    f.Add("work_bytes", static_cast<double>(bytes));
    f.Add("work_bytes_per_s_per_node", static_cast<double>(bytes) / secs / n);
    const auto& sent = work.bytes_sent();
    f.Add("work_bytes_per_s_busiest_node", static_cast<double>(*std::max_element(sent.begin(), sent.end())) / secs);
    // Which nodes those are: the coordinators (first and last) against the rest.
    int last = work.MajorityCoordinator();
    f.Add("busiest_node_is_last_coordinator",
          last >= 0 && sent[last] == *std::max_element(sent.begin(), sent.end()));
    if (first_coordinator >= 0) f.Add("work_bytes_first_coordinator", static_cast<double>(sent[first_coordinator]));
    if (last >= 0) f.Add("work_bytes_last_coordinator", static_cast<double>(sent[last]));
    if (all_everywhere && !scan_phase_sent.empty()) {
      // While shards are leased and declared done: until every survivor's
      // copy is all done. (Grants and dones ride the gossip as deltas:
      // their bytes are the membership's below.)
      double scan_s = std::max(*all_everywhere, 1e-9), total = 0;
      for (uint64_t b : scan_phase_sent) total += static_cast<double>(b);
      f.Add("scan_phase_work_bytes_per_s_per_node", total / scan_s / n);
      f.Add("scan_phase_work_bytes_per_s_busiest_node",
            static_cast<double>(*std::max_element(scan_phase_sent.begin(), scan_phase_sent.end())) / scan_s);
    }
    double membership = 0;
    for (const auto& t : mesh.traffic()) membership += static_cast<double>(t.datagram_bytes + t.stream_bytes);
    f.Add("membership_bytes_per_s_per_node", membership / Seconds(mesh.now() - settled + 10s) / n);
    uint64_t busiest = 0;
    for (const auto& t : mesh.traffic()) busiest = std::max(busiest, t.datagram_bytes + t.stream_bytes);
    f.Add("membership_bytes_per_s_busiest_node", static_cast<double>(busiest) / Seconds(mesh.now() - settled + 10s));
  }
  // Per done shard (a shard done once counts once), in every run, so that
  // runs with and without --signatures compare: the bytes a done shard
  // costs the mesh, signatures and certificate fetches included.
  if (o.count_bytes && shards_total > 0) {
    double membership = 0;
    for (const auto& t : mesh.traffic()) membership += static_cast<double>(t.datagram_bytes + t.stream_bytes);
    f.Add("work_bytes_per_done_shard", static_cast<double>(bytes) / shards_total);
    f.Add("membership_bytes_per_done_shard", membership / shards_total);
  }
  f.Add("signatures", w.signatures);
  if (w.signatures) {
    const KeyStats& k = work.key_stats();
    f.Add("sign_calls", static_cast<double>(k.signs));
    f.Add("verify_calls", static_cast<double>(k.verifies));
    f.Add("verify_unknown_signer", static_cast<double>(k.verify_unknown));
    f.Add("verify_refused", static_cast<double>(k.verify_refused));
    f.Add("sign_us_per_call", k.signs ? k.sign_s * 1e6 / static_cast<double>(k.signs) : 0);
    f.Add("verify_us_per_call", k.verifies ? k.verify_s * 1e6 / static_cast<double>(k.verifies) : 0);
    // Over the whole mesh: every node's signing and checking, per shard done.
    f.Add("sign_verify_cpu_ms_per_done_shard", shards_total > 0 ? (k.sign_s + k.verify_s) * 1e3 / shards_total : 0);
    f.Add("sign_verify_cpu_s_total", k.sign_s + k.verify_s);
    f.Add("signature_bytes_made_per_done_shard", shards_total > 0 ? 64.0 * static_cast<double>(k.signs) / shards_total : 0);
    f.Add("certs_served", static_cast<double>(k.certs_served));
    f.Add("cert_fetch_bytes", static_cast<double>(k.cert_bytes_served));  // PEM bytes handed out
    f.Add("cert_fetch_bytes_per_done_shard", shards_total > 0 ? static_cast<double>(k.cert_bytes_served) / shards_total : 0);
    f.Add("certs_learnt", static_cast<double>(k.certs_learnt));
    f.Add("cert_learn_refusals", static_cast<double>(k.learn_refusals));
  }
  f.Add("simulated_s", elapsed);
  f.Add("work_events", static_cast<double>(work.events_processed()));
  f.Add("mesh_events", static_cast<double>(mesh.events_processed()));
  return f;
}

}  // namespace ndo::mesh::sim
