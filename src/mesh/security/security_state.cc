#include "mesh/security/security_state.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "mesh/membership/capnp_io.h"
#include "mesh/security/security.capnp.h"

namespace ndo::mesh {
namespace {

// The order in which a clash of key ids is decided: the smaller bytes, then
// the earlier creation time (a total order on what operator== compares, so
// every merge order keeps the same entry).
bool KeyLess(const GossipKey& a, const GossipKey& b) {
  return std::tie(a.key, a.created_unix) < std::tie(b.key, b.created_unix);
}

template <typename T, typename Key>
const T* FindSorted(const std::vector<T>& v, const Key& key, Key (*key_of)(const T&)) {
  auto it = std::lower_bound(v.begin(), v.end(), key, [&](const T& e, const Key& k) { return key_of(e) < k; });
  return it != v.end() && key_of(*it) == key ? &*it : nullptr;
}

uint32_t IdOfKey(const GossipKey& k) { return k.id; }
uint32_t IdOfSchedule(const KeySchedule& s) { return s.id; }
NodeId IdOfRevoked(const RevokedNode& r) { return r.node; }

// Inserts `e` in sorted position, or joins it into the entry of its key
// with `join`, which returns whether it changed that entry.
template <typename T, typename Key, typename Join>
bool Upsert(std::vector<T>& v, const T& e, Key (*key_of)(const T&), Join&& join) {
  auto it = std::lower_bound(v.begin(), v.end(), key_of(e), [&](const T& x, const Key& k) { return key_of(x) < k; });
  if (it == v.end() || key_of(*it) != key_of(e)) {
    v.insert(it, e);
    return true;
  }
  return join(*it, e);
}

bool JoinKey(GossipKey& into, const GossipKey& other) {
  if (!KeyLess(other, into)) return false;
  into = other;
  return true;
}

bool JoinSchedule(KeySchedule& into, const KeySchedule& other) {
  KeySchedule before = into;
  into.primary_from_unix = std::max(into.primary_from_unix, other.primary_from_unix);
  if (other.removed_from_unix != 0 &&
      (into.removed_from_unix == 0 || other.removed_from_unix < into.removed_from_unix))
    into.removed_from_unix = other.removed_from_unix;
  return !(into == before);
}

bool JoinRevoked(RevokedNode& into, const RevokedNode& other) {
  RevokedNode before = into;
  into.revoked_unix = std::min(into.revoked_unix, other.revoked_unix);
  // Either copy may lack the serial or name (a node that did not know it);
  // of two different ones the smaller is kept, so every order agrees.
  auto join_text = [](std::string& a, const std::string& b) {
    if (a.empty() || (!b.empty() && b < a)) a = b;
  };
  join_text(into.serial_hex, other.serial_hex);
  join_text(into.name, other.name);
  return !(into == before);
}

bool Removed(const KeySchedule* s, int64_t now) { return s && s->removed_from_unix != 0 && s->removed_from_unix <= now; }

Status CheckSortedUnique(const SecurityState& s) {
  auto ids_ok = [](const auto& v, auto key_of) {
    for (size_t i = 1; i < v.size(); ++i)
      if (!(key_of(v[i - 1]) < key_of(v[i]))) return false;
    return true;
  };
  if (!ids_ok(s.keys, IdOfKey) || !ids_ok(s.schedule, IdOfSchedule) || !ids_ok(s.revoked, IdOfRevoked) ||
      !ids_ok(s.authorities, [](const NodeId& n) { return n; }))
    return Status::Corruption("security state entries out of order or repeated");
  return Status::Ok();
}

}  // namespace

const KeySchedule* SecurityState::ScheduleOf(uint32_t id) const {
  return FindSorted(schedule, id, IdOfSchedule);
}

const RevokedNode* SecurityState::FindRevoked(const NodeId& node) const {
  return FindSorted(revoked, node, IdOfRevoked);
}

bool operator==(const SecurityState& a, const SecurityState& b) {
  auto same_keys = std::equal(a.keys.begin(), a.keys.end(), b.keys.begin(), b.keys.end(),
                              [](const GossipKey& x, const GossipKey& y) {
                                return x.id == y.id && x.key == y.key && x.created_unix == y.created_unix;
                              });
  return same_keys && a.schedule == b.schedule && a.revoked == b.revoked && a.authorities == b.authorities;
}

SecurityState StateFromKeyring(const Keyring& ring) {
  SecurityState s;
  for (const GossipKey& k : ring.keys) {
    Upsert(s.keys, k, IdOfKey, JoinKey);
    Upsert(s.schedule, KeySchedule{k.id, k.id == ring.primary ? 1 : 0, 0}, IdOfSchedule, JoinSchedule);
  }
  return s;
}

bool Merge(SecurityState& into, const SecurityState& other) {
  bool changed = false;
  for (const GossipKey& k : other.keys) changed |= Upsert(into.keys, k, IdOfKey, JoinKey);
  for (const KeySchedule& s : other.schedule) changed |= Upsert(into.schedule, s, IdOfSchedule, JoinSchedule);
  for (const RevokedNode& r : other.revoked) changed |= Upsert(into.revoked, r, IdOfRevoked, JoinRevoked);
  for (const NodeId& n : other.authorities) changed |= AddAuthority(into, n);
  return changed;
}

Result<Keyring> EffectiveKeyring(const SecurityState& state, int64_t now) {
  Keyring ring;
  const KeySchedule* best = nullptr;
  for (const GossipKey& k : state.keys) {
    const KeySchedule* s = state.ScheduleOf(k.id);
    if (Removed(s, now)) continue;
    ring.keys.push_back(k);
    if (!s || s->primary_from_unix == 0 || s->primary_from_unix > now) continue;
    if (!best || std::tie(s->primary_from_unix, s->id) > std::tie(best->primary_from_unix, best->id)) best = s;
  }
  if (ring.keys.empty()) return Status::InvalidArgument("no gossip key is left in the security state");
  // A state whose primary is not due yet (a fresh joiner's copy, say) seals
  // with the newest key it holds rather than not at all.
  if (best) {
    ring.primary = best->id;
  } else {
    auto newest = std::max_element(ring.keys.begin(), ring.keys.end(), [](const GossipKey& a, const GossipKey& b) {
      return std::tie(a.created_unix, a.id) < std::tie(b.created_unix, b.id);
    });
    ring.primary = newest->id;
  }
  if (ring.keys.size() > kMaxGossipKeys) {
    // Only after many rotations within one overlap: the primary and the
    // highest other ids stay.
    std::stable_partition(ring.keys.begin(), ring.keys.end(), [&](const GossipKey& k) { return k.id == ring.primary; });
    std::sort(ring.keys.begin() + 1, ring.keys.end(), [](const GossipKey& a, const GossipKey& b) { return a.id > b.id; });
    ring.keys.resize(kMaxGossipKeys);
  }
  return ring;
}

std::optional<int64_t> NextKeyChange(const SecurityState& state, int64_t now) {
  std::optional<int64_t> next;
  auto consider = [&](int64_t t) {
    if (t > now && (!next || t < *next)) next = t;
  };
  for (const KeySchedule& s : state.schedule) {
    // Times of keys whose material has not arrived change nothing yet.
    if (!FindSorted(state.keys, s.id, IdOfKey)) continue;
    consider(s.primary_from_unix);
    if (s.removed_from_unix != 0) consider(s.removed_from_unix);
  }
  return next;
}

void PruneRemovedKeys(SecurityState& state, int64_t now) {
  std::erase_if(state.keys, [&](const GossipKey& k) { return Removed(state.ScheduleOf(k.id), now); });
}

Status ScheduleRotation(SecurityState& state, const GossipKey& fresh, int64_t now) {
  if (state.ScheduleOf(fresh.id)) return Status::InvalidArgument("gossip key id " + std::to_string(fresh.id) + " is taken");
  // A state holding more keys than a keyring does no longer encodes (it
  // could be neither saved nor exchanged): wait for older keys to go.
  auto open = std::count_if(state.keys.begin(), state.keys.end(),
                            [&](const GossipKey& k) { return !Removed(state.ScheduleOf(k.id), now); });
  if (static_cast<size_t>(open) >= kMaxGossipKeys)
    return Status::Unavailable("already " + std::to_string(open) + " gossip keys in use; rotate again once the older " +
                               "ones are removed (" + std::to_string(kRotationLead + kRotationOverlap) +
                               " s after a rotation)");
  auto current = EffectiveKeyring(state, now);
  if (!current.ok()) return current.status();
  for (const GossipKey& k : current->keys)
    Upsert(state.schedule, KeySchedule{k.id, 0, now + kRotationLead + kRotationOverlap}, IdOfSchedule, JoinSchedule);
  Upsert(state.keys, fresh, IdOfKey, JoinKey);
  Upsert(state.schedule, KeySchedule{fresh.id, now + kRotationLead, 0}, IdOfSchedule, JoinSchedule);
  return Status::Ok();
}

void Revoke(SecurityState& state, const RevokedNode& revoked) { Upsert(state.revoked, revoked, IdOfRevoked, JoinRevoked); }

bool AddAuthority(SecurityState& state, const NodeId& node) {
  auto it = std::lower_bound(state.authorities.begin(), state.authorities.end(), node);
  if (it != state.authorities.end() && *it == node) return false;
  state.authorities.insert(it, node);
  return true;
}

Result<std::string> EncodeSecurityState(const SecurityState& s) {
  std::string keys;
  if (!s.keys.empty()) {
    Keyring ring{s.keys, s.keys.front().id};
    auto encoded = EncodeKeyring(ring);
    if (!encoded.ok()) return encoded.status();
    keys = std::move(*encoded);
  }
  if (s.schedule.size() > kMaxKeySchedules) return Status::InvalidArgument("too many gossip key schedules");
  if (s.revoked.size() > kMaxRevokedNodes) return Status::InvalidArgument("too many revoked nodes");
  if (s.authorities.size() > kMaxAuthorities) return Status::InvalidArgument("too many enrolment authorities");
  return CapnpEncode<schema::SecurityState>("security state", kMaxSecurityStateBytes, [&](auto b) {
    b.setKeys(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(keys.data()), keys.size()));
    auto schedule = b.initSchedule(static_cast<unsigned>(s.schedule.size()));
    for (unsigned i = 0; i < s.schedule.size(); ++i) {
      schedule[i].setId(s.schedule[i].id);
      schedule[i].setPrimaryFromUnix(s.schedule[i].primary_from_unix);
      schedule[i].setRemovedFromUnix(s.schedule[i].removed_from_unix);
    }
    auto revoked = b.initRevoked(static_cast<unsigned>(s.revoked.size()));
    for (unsigned i = 0; i < s.revoked.size(); ++i) {
      revoked[i].setIdHi(s.revoked[i].node.hi);
      revoked[i].setIdLo(s.revoked[i].node.lo);
      revoked[i].setSerial(s.revoked[i].serial_hex);
      revoked[i].setRevokedUnix(s.revoked[i].revoked_unix);
      revoked[i].setName(s.revoked[i].name);
    }
    auto authorities = b.initAuthorities(static_cast<unsigned>(s.authorities.size()));
    for (unsigned i = 0; i < s.authorities.size(); ++i) {
      authorities[i].setIdHi(s.authorities[i].hi);
      authorities[i].setIdLo(s.authorities[i].lo);
    }
    return Status::Ok();
  });
}

Result<SecurityState> DecodeSecurityState(std::string_view bytes) {
  SecurityState out;
  std::string keys;
  Status st = CapnpDecode<schema::SecurityState>(bytes, "security state", kMaxSecurityStateBytes, [&](auto r) {
    auto k = r.getKeys();
    keys.assign(reinterpret_cast<const char*>(k.begin()), k.size());
    auto schedule = r.getSchedule();
    if (schedule.size() > kMaxKeySchedules) return Status::Corruption("too many gossip key schedules");
    // Times are seconds of this era: anything past 2^40 s is an attack or a
    // bug, and would reach every member through the merge.
    constexpr int64_t kMaxTime = int64_t{1} << 40;
    for (auto e : schedule) {
      if (e.getPrimaryFromUnix() < 0 || e.getPrimaryFromUnix() > kMaxTime || e.getRemovedFromUnix() < 0 ||
          e.getRemovedFromUnix() > kMaxTime)
        return Status::Corruption("key schedule time out of range");
      out.schedule.push_back({e.getId(), e.getPrimaryFromUnix(), e.getRemovedFromUnix()});
    }
    auto revoked = r.getRevoked();
    if (revoked.size() > kMaxRevokedNodes) return Status::Corruption("too many revoked nodes");
    for (auto e : revoked) {
      RevokedNode n{NodeId{e.getIdHi(), e.getIdLo()}, CapnpText(e.getSerial()), e.getRevokedUnix(),
                    CapnpText(e.getName())};
      if (n.node.empty() || n.serial_hex.size() > 40 || n.name.size() > kMaxNameBytes ||
          n.serial_hex.find('\0') != std::string::npos || n.name.find('\0') != std::string::npos)
        return Status::Corruption("malformed revoked node");
      out.revoked.push_back(std::move(n));
    }
    auto authorities = r.getAuthorities();
    if (authorities.size() > kMaxAuthorities) return Status::Corruption("too many enrolment authorities");
    for (auto e : authorities) {
      NodeId n{e.getIdHi(), e.getIdLo()};
      if (n.empty()) return Status::Corruption("empty enrolment authority id");
      out.authorities.push_back(n);
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  if (!keys.empty()) {
    auto ring = DecodeKeyring(keys);
    if (!ring.ok()) return ring.status();
    std::sort(ring->keys.begin(), ring->keys.end(), [](const GossipKey& a, const GossipKey& b) { return a.id < b.id; });
    out.keys = std::move(ring->keys);
  }
  if (Status s = CheckSortedUnique(out); !s.ok()) return s;
  return out;
}

}  // namespace ndo::mesh
