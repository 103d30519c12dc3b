#include "mesh/agent/node_identity.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "mesh/membership/codec.h"
#include "mesh/membership/scan_policy.h"
#include "mesh/agent/node_state.capnp.h"

namespace ndo::mesh {
namespace {

void BuildMember(schema::KnownMember::Builder b, const MemberInfo& info, uint64_t incarnation, MemberState state) {
  b.setIdHi(info.id.hi);
  b.setIdLo(info.id.lo);
  b.setName(info.name);
  b.setVantage(info.vantage);
  b.setAddress(info.address);
  b.setPriority(info.priority);
  b.setEpoch(info.epoch);
  b.setIncarnation(incarnation);
  b.setState(static_cast<uint8_t>(state));
  if (!info.allow.empty()) {
    std::string allow = EncodeScanPolicy(info.allow);
    b.setAllow(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(allow.data()), allow.size()));
  }
}

Status ReadMember(schema::KnownMember::Reader r, KnownMember& out) {
  out.info.id = NodeId{r.getIdHi(), r.getIdLo()};
  out.info.name = r.getName().cStr();
  out.info.vantage = r.getVantage().cStr();
  out.info.address = r.getAddress().cStr();
  out.info.priority = r.getPriority();
  out.info.epoch = r.getEpoch();
  auto allow = r.getAllow();
  auto policy = DecodeScanPolicy(std::string_view(reinterpret_cast<const char*>(allow.begin()), allow.size()));
  if (!policy.ok()) return policy.status();
  out.info.allow = std::move(*policy);
  out.incarnation = r.getIncarnation();
  if (r.getState() > static_cast<uint8_t>(MemberState::kLeft)) return Status::Corruption("unknown member state");
  out.state = static_cast<MemberState>(r.getState());
  if (Status s = ValidateMemberInfo(out.info); !s.ok()) return Status::Corruption(s.message());
  return Status::Ok();
}

// Cuts at a UTF-8 character boundary so the name stays valid text.
std::string CutUtf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  s.resize(n);
  return s;
}

}  // namespace

Result<NodeId> RandomNodeId() {
  for (int attempt = 0; attempt < 4; ++attempt) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return Status::IoError("no randomness for a node id (OpenSSL RAND_bytes failed)");
    NodeId id;
    for (int i = 0; i < 8; ++i) id.hi = (id.hi << 8) | b[i];
    for (int i = 8; i < 16; ++i) id.lo = (id.lo << 8) | b[i];
    if (!id.empty()) return id;
  }
  return Status::IoError("no randomness for a node id");
}

Result<uint64_t> RandomSeed() {
  unsigned char b[8];
  if (RAND_bytes(b, sizeof b) != 1) return Status::IoError("no randomness (OpenSSL RAND_bytes failed)");
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

std::string DefaultNodeName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "ndo";
  return CutUtf8(buf, kMaxNameBytes);
}

Result<std::string> EncodeNodeState(const NodeState& state) {
  std::string out;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::MallocMessageBuilder msg;
    auto root = msg.initRoot<schema::NodeState>();
    BuildMember(root.initSelf(), state.self, state.incarnation, MemberState::kAlive);
    root.setListen(state.listen);
    root.setMaxEpochSeen(state.max_epoch_seen);
    root.setSavedAtUs(state.saved_at_us);
    auto members = root.initMembers(static_cast<unsigned>(state.members.size()));
    for (unsigned i = 0; i < state.members.size(); ++i)
      BuildMember(members[i], state.members[i].info, state.members[i].incarnation, state.members[i].state);
    auto words = capnp::messageToFlatArray(msg);
    auto bytes = words.asBytes();
    out.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  })) {
    return Status::InvalidArgument("encoding node state: " + std::string(e->getDescription().cStr()));
  }
  return out;
}

Result<NodeState> DecodeNodeState(std::string_view bytes) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0)
    return Status::Corruption("node state is not a whole number of words");
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  NodeState state;
  Status status;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = (kMaxStreamBytes / sizeof(capnp::word)) * 2;
    opts.nestingLimit = 8;
    capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
    auto root = reader.getRoot<schema::NodeState>();
    KnownMember self;
    if (status = ReadMember(root.getSelf(), self); !status.ok()) return;
    state.self = std::move(self.info);
    state.incarnation = self.incarnation;
    state.listen = root.getListen().cStr();
    state.max_epoch_seen = root.getMaxEpochSeen();
    state.saved_at_us = root.getSavedAtUs();
    auto members = root.getMembers();
    if (members.size() > kMaxStateMembers) {
      status = Status::Corruption("node state lists too many members");
      return;
    }
    state.members.reserve(members.size());
    for (auto m : members) {
      KnownMember km;
      if (status = ReadMember(m, km); !status.ok()) return;
      if (km.info.id == state.self.id) continue;
      state.members.push_back(std::move(km));
    }
  })) {
    return Status::Corruption("decoding node state: " + std::string(e->getDescription().cStr()));
  }
  if (!status.ok()) return status.WithContext("node state");
  return state;
}

// The counters record: a version byte (1), then incarnation and highest
// epoch seen, 8 bytes each, little-endian.
constexpr size_t kCountersBytes = 17;

Result<NodeState> LoadNodeState(Store& store) {
  auto bytes = store.GetMeta(kNodeStateKey);
  if (!bytes.ok()) return bytes.status();
  auto state = DecodeNodeState(*bytes);
  if (!state.ok()) return state;
  auto counters = store.GetMeta(kNodeCountersKey);
  if (!counters.ok()) {
    if (counters.status().code() == Status::Code::kNotFound) return state;  // written by an older ndo
    return counters.status();
  }
  if (counters->size() != kCountersBytes || (*counters)[0] != 1)
    return Status::Corruption("node counters: expected " + std::to_string(kCountersBytes) + " bytes of version 1");
  auto word = [&](size_t at) {
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i)
      v |= static_cast<uint64_t>(static_cast<unsigned char>((*counters)[at + i])) << (8 * i);
    return v;
  };
  state->incarnation = std::max(state->incarnation, word(1));
  state->max_epoch_seen = std::max(state->max_epoch_seen, word(9));
  return state;
}

Status SaveNodeState(Store& store, const NodeState& state, bool sync) {
  auto bytes = EncodeNodeState(state);
  if (!bytes.ok()) return bytes.status();
  return store.PutMeta(kNodeStateKey, *bytes, sync);
}

Status SaveNodeCounters(Store& store, uint64_t incarnation, uint64_t max_epoch_seen) {
  std::string out(kCountersBytes, '\0');
  out[0] = 1;
  for (size_t i = 0; i < 8; ++i) {
    out[1 + i] = static_cast<char>(incarnation >> (8 * i));
    out[9 + i] = static_cast<char>(max_epoch_seen >> (8 * i));
  }
  return store.PutMeta(kNodeCountersKey, out, /*sync=*/true);
}

Result<NodeState> ResolveIdentity(const std::optional<NodeState>& saved, const IdentityRequest& req) {
  NodeState st;
  if (saved) {
    if (req.id && *req.id != saved->self.id)
      return Status::InvalidArgument("this data directory's node is " + saved->self.id.Hex() +
                                     " but its certificate names node " + req.id->Hex());
    st = *saved;
    st.incarnation = saved->incarnation + 1;
  } else {
    if (req.id) {
      st.self.id = *req.id;
    } else {
      auto id = RandomNodeId();
      if (!id.ok()) return id.status();
      st.self.id = *id;
    }
    st.self.name = DefaultNodeName();
    st.self.priority = kDefaultPriority;
    st.incarnation = 0;
  }
  if (!req.name.empty()) st.self.name = req.name;
  if (req.certified_vantage) {
    if (!req.vantage.empty() && req.vantage != *req.certified_vantage)
      return Status::InvalidArgument("this node's certificate binds vantage '" + *req.certified_vantage +
                                     "'; it cannot run as --vantage '" + req.vantage +
                                     "' (leave --vantage out, or enrol a new node with a token for that vantage)");
    st.self.vantage = *req.certified_vantage;
  } else if (!req.vantage.empty()) {
    st.self.vantage = req.vantage;
  }
  if (req.priority) st.self.priority = *req.priority;
  if (req.allow) st.self.allow = *req.allow;
  if (req.listen) st.listen = req.listen->ToString();
  if (st.listen.empty()) return Status::InvalidArgument("give --listen ADDR:PORT (this data directory has no node yet)");
  if (st.self.vantage.empty())
    return Status::InvalidArgument("give --vantage NAME (this data directory has no node yet)");
  auto listen = ParseHostPort(st.listen);
  if (!listen.ok()) return listen.status().WithContext("saved listen address");
  // The advertised address follows the listen address only where it was
  // derived from it: one given with --advertise (NAT, a wildcard listen)
  // survives a restart with a new --listen alone.
  bool derived = !saved || saved->self.address.empty() || saved->self.address == saved->listen;
  if (req.advertise) {
    st.self.address = req.advertise->ToString();
  } else if (derived) {
    if (listen->unspecified())
      return Status::InvalidArgument("--listen " + st.listen +
                                     " is a wildcard address that others cannot reach; listen on a specific "
                                     "address or give --advertise ADDR:PORT");
    st.self.address = listen->ToString();
  }
  auto advertised = ParseHostPort(st.self.address);
  if (!advertised.ok()) return advertised.status().WithContext("advertised address");
  if (!SameFamily(*listen, *advertised))
    return Status::InvalidArgument("the advertised address " + st.self.address + " and the listen address " +
                                   st.listen + " are of different address families (IPv4 and IPv6); give " +
                                   "--advertise of the listen address's family, or --listen [::]:PORT");
  if (Status s = ValidateMemberInfo(st.self); !s.ok()) return s;
  auto now = std::chrono::system_clock::now().time_since_epoch();
  st.saved_at_us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  return st;
}

NodeState SnapshotNodeState(const Membership& m, const std::string& listen) {
  NodeState st;
  st.self = m.self();
  st.incarnation = m.incarnation();
  st.listen = listen;
  st.max_epoch_seen = m.max_epoch_seen();
  st.members = KnownMembers(m);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  st.saved_at_us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  return st;
}

}  // namespace ndo::mesh
