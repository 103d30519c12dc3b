#include "mesh/agent/work_service.h"

#include <algorithm>

#include "base/log.h"
#include "mesh/agent/pool_store.h"
#include "store/result_bundle.h"

namespace ndo::mesh {

Result<std::string> WorkService::StoreShelf::Load(const ScanId& pool, uint32_t shard) {
  return LoadBundle(store_, pool, shard);
}

Status WorkService::StoreShelf::Keep(const ScanState& state, std::string_view vantage, uint32_t shard,
                                     std::string_view bundle, const Digest& /*digest: checked by the core*/) {
  return StoreBundle(store_, state, vantage, shard, bundle);
}

WorkService::WorkService(Store& store, NodeId self, std::string vantage, WorkConfig config, WorkEnv env,
                         uint64_t seed, RecordKeys* keys)
    : store_(store),
      env_(std::move(env)),
      shelf_(store),
      core_(self, std::move(vantage), config, seed, shelf_, keys) {
  auto post = env_.post;
  host_ = std::make_unique<ScanHost>(store_, [post](std::function<void()> fn) { post(std::move(fn)); });
}

void WorkService::SetPolicy(const IntervalSet& policy) {
  core_.SetPolicy(policy);
  host_->SetPolicy(policy);
}

WorkService::~WorkService() {
  *alive_ = false;
  Save(true);
  host_.reset();  // stops and joins the engines; their completions are dropped
}

Status WorkService::Load() {
  size_t skipped = 0;
  auto loaded = LoadScanStates(store_, &skipped);
  if (!loaded.ok()) return loaded.status();
  if (skipped) Log(LogLevel::kWarn, "scan states that do not decode were skipped", {{"count", uint64_t(skipped)}});
  // Which bundles this node holds: looked up once; the core keeps it up to date.
  std::map<std::pair<ScanId, uint32_t>, Digest> held;
  for (const auto& [id, s] : *loaded)
    for (size_t v = 0; v < s.pools.size(); ++v) {
      ScanId pool = PoolId(id, s.definition.vantages[v]);
      for (uint32_t k = 0; k < s.pools[v].size(); ++k) {
        if (!s.pools[v][k].done.done) continue;
        if (auto bundle = LoadBundle(store_, pool, k); bundle.ok()) held[{pool, k}] = BundleDigest(*bundle);
      }
    }
  core_.Load(std::move(*loaded), std::move(held), WallMs());
  Carry();
  return Status::Ok();
}

void WorkService::Tick(Time /*now*/, const MeshView& view) {
  int64_t now = WallMs();
  core_.UpdateView(std::make_shared<const MeshView>(view), now);
  core_.Tick(now);
  Carry();
}

Time WorkService::NextWakeup() const {
  // The core's wake-ups are wall-clock; translated by their distance from now.
  int64_t wall = WallMs();
  int64_t at = core_.NextWakeup();
  if (!unsaved_.empty()) at = std::min(at, last_save_ms_ + kSaveEveryMs);
  return Clock::now() + std::chrono::milliseconds(std::max<int64_t>(0, at - wall));
}

void WorkService::OnMessage(const WorkMessage& message, const SignerInfo& peer,
                            const std::function<void(WorkMessage)>& reply) {
  // The core takes the peer's vantage; its role too once the core has
  // signed records (WorkCore::OnMessage(message, SignerInfo, now)).
  WorkMessage answer = core_.OnMessage(message, peer, WallMs());
  // A bundle acknowledged is in the store already (the shelf); the state
  // change that a grant or renewal made is saved with the debounce: the
  // coordinator's successor learns leases from their holders anyway.
  Carry();
  reply(std::move(answer));
}

void WorkService::OnPayload(std::string_view payload) {
  core_.OnPayload(payload, WallMs());
  Carry();
}

Result<ScanId> WorkService::Submit(ScanDefinition definition) {
  auto id = core_.Submit(std::move(definition), WallMs());
  Carry();
  Save(true);  // "submitted" means kept
  return id;
}

Result<ScanId> WorkService::SetControl(std::string_view scan, ScanControl control) {
  auto id = core_.SetControl(scan, control, WallMs());
  Carry();
  Save(true);
  return id;
}

void WorkService::Carry() {
  // Carrying out one output may bring new ones (a start that fails at once
  // is answered from the loop, not from inside), so this loops until quiet.
  for (int round = 0; round < 8; ++round) {
    auto requests = core_.TakeRequests();
    auto broadcasts = core_.TakeBroadcasts();
    auto commands = core_.TakeScanCommands();
    for (const ScanId& id : core_.TakeDirty()) unsaved_.insert(id);
    if (requests.empty() && broadcasts.empty() && commands.empty()) break;
    for (auto& b : broadcasts)
      if (env_.broadcast) env_.broadcast(std::move(b.key), std::move(b.payload));
    for (const auto& r : requests) {
      std::weak_ptr<bool> alive = alive_;
      env_.request(r.address, r.message, [this, alive, id = r.id](Result<WorkMessage> reply) {
        if (alive.expired() || !*alive.lock()) return;
        core_.OnReply(id, std::move(reply), WallMs());
        Carry();
      });
    }
    for (const auto& c : commands) {
      if (c.kind == ScanCommand::Kind::kStop) {
        host_->Stop(c.ref);
      } else {
        Start(c);
      }
    }
  }
  Save(false);
}

void WorkService::Start(const ScanCommand& c) {
  const ScanState* s = core_.Find(c.ref.scan);
  std::weak_ptr<bool> alive = alive_;
  auto report = [this, alive](ShardOutcome out) {
    if (alive.expired() || !*alive.lock()) return;
    core_.OnShardOutcome(out, WallMs());
    Carry();
  };
  Status started = s ? host_->Start(*s, c.ref, report) : Status::NotFound("unknown scan");
  if (!started.ok()) {
    Log(LogLevel::kError, "shard not started", {{"scan", ScanIdToHex(c.ref.scan)}, {"reason", started.message()}});
    ShardOutcome out;
    out.ref = c.ref;
    out.status = started;
    // Through the event loop: the core hears of it after this round.
    env_.post([report, out] { report(out); });
  }
}

void WorkService::Save(bool now) {
  if (unsaved_.empty()) return;
  int64_t wall = WallMs();
  if (!now && wall < last_save_ms_ + kSaveEveryMs) return;
  last_save_ms_ = wall;
  for (const ScanId& id : unsaved_)
    if (const ScanState* s = core_.Find(id))
      if (Status st = SaveScanState(store_, *s); !st.ok())
        Log(LogLevel::kError, "cannot save scan state", {{"reason", st.message()}});
  unsaved_.clear();
}

WorkStatus WorkService::status() const {
  WorkStatus st;
  st.scans = core_.scans().size();
  st.running_shards = host_->running();
  st.probes_sent = host_->probes_sent();
  st.dead_man_engaged = core_.dead_man_engaged();
  return st;
}

}  // namespace ndo::mesh
