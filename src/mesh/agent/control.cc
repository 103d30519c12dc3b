#include "mesh/api/control.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "mesh/agent/control.capnp.h"
#include "mesh/membership/scan_policy.h"

namespace ndo::mesh {
namespace {

void BuildMember(schema::ControlMember::Builder b, const ControlMember& m) {
  b.setIdHi(m.id.hi);
  b.setIdLo(m.id.lo);
  b.setName(m.name);
  b.setVantage(m.vantage);
  b.setAddress(m.address);
  b.setState(static_cast<uint8_t>(m.state));
  b.setIncarnation(m.incarnation);
  b.setPriority(m.priority);
  if (!m.allow.empty()) {
    std::string allow = EncodeScanPolicy(m.allow);
    b.setAllow(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(allow.data()), allow.size()));
  }
}

Status ReadMember(schema::ControlMember::Reader r, ControlMember& m) {
  m.id = NodeId{r.getIdHi(), r.getIdLo()};
  m.name = r.getName().cStr();
  m.vantage = r.getVantage().cStr();
  m.address = r.getAddress().cStr();
  if (r.getState() > static_cast<uint8_t>(MemberState::kLeft)) return Status::Corruption("unknown member state");
  m.state = static_cast<MemberState>(r.getState());
  m.incarnation = r.getIncarnation();
  m.priority = r.getPriority();
  auto allow = r.getAllow();
  auto policy = DecodeScanPolicy(std::string_view(reinterpret_cast<const char*>(allow.begin()), allow.size()));
  if (!policy.ok()) return policy.status();
  m.allow = std::move(*policy);
  return Status::Ok();
}

std::string ToBytes(capnp::MessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Runs `read` over the message in `body` with bounded traversal; kj
// exceptions (malformed input) become Corruption.
template <typename Root, typename F>
Status ReadMessage(std::string_view body, size_t max_bytes, F&& read) {
  if (body.empty() || body.size() % sizeof(capnp::word) != 0)
    return Status::Corruption("control message is not a whole number of words");
  if (body.size() > max_bytes) return Status::Corruption("control message too long");
  auto words = kj::heapArray<capnp::word>(body.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), body.data(), body.size());
  Status status;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = words.size() * 2;  // no amplification by aliasing
    opts.nestingLimit = 8;
    capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
    status = read(reader.getRoot<Root>());
  })) {
    return Status::Corruption("malformed control message: " + std::string(e->getDescription().cStr()));
  }
  return status;
}

}  // namespace

std::string ControlSocketPath(const std::string& data_dir) {
  std::string dir = data_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + "/control.sock";
}

Result<std::string> EncodeControlRequest(const ControlRequest& request) {
  std::string out;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::MallocMessageBuilder msg;
    auto root = msg.initRoot<schema::ControlRequest>();
    switch (request.command) {
      case ControlCommand::kMembers: root.setMembers(); break;
      case ControlCommand::kLeave: root.setLeave(); break;
      case ControlCommand::kStatus: root.setStatus(); break;
      case ControlCommand::kCreateToken: {
        auto t = root.initCreateToken();
        t.setTtlSeconds(request.token.ttl_seconds);
        t.setMaxUses(request.token.max_uses);
        t.setVantage(request.token.vantage);
        t.setOperatorRole(request.token.role == NodeRole::kOperator);
        break;
      }
      case ControlCommand::kRemoveMember: root.setRemoveMember(request.member); break;
      case ControlCommand::kRotateKeys: root.setRotateKeys(); break;
      case ControlCommand::kSubmitScan:
        root.initSubmitScan().setDefinition(capnp::Data::Reader(
            reinterpret_cast<const kj::byte*>(request.scan_definition.data()), request.scan_definition.size()));
        break;
      case ControlCommand::kScanControl: {
        auto c = root.initScanControl();
        c.setScan(request.scan);
        c.setAction(request.scan_action);
        break;
      }
    }
    out = ToBytes(msg);
  })) {
    return Status::InvalidArgument("encoding control request: " + std::string(e->getDescription().cStr()));
  }
  if (out.size() > kMaxControlRequestBytes) return Status::InvalidArgument("control request too long");
  return out;
}

Result<ControlRequest> DecodeControlRequest(std::string_view body) {
  ControlRequest request;
  Status s = ReadMessage<schema::ControlRequest>(body, kMaxControlRequestBytes, [&](schema::ControlRequest::Reader r) {
    switch (r.which()) {
      case schema::ControlRequest::MEMBERS: request.command = ControlCommand::kMembers; return Status::Ok();
      case schema::ControlRequest::LEAVE: request.command = ControlCommand::kLeave; return Status::Ok();
      case schema::ControlRequest::STATUS: request.command = ControlCommand::kStatus; return Status::Ok();
      case schema::ControlRequest::CREATE_TOKEN: {
        auto t = r.getCreateToken();
        request.command = ControlCommand::kCreateToken;
        request.token.ttl_seconds = t.getTtlSeconds();
        request.token.max_uses = t.getMaxUses();
        request.token.vantage = t.getVantage().cStr();
        request.token.role = t.getOperatorRole() ? NodeRole::kOperator : NodeRole::kScanner;
        if (request.token.vantage.size() > kMaxVantageBytes) return Status::InvalidArgument("vantage too long");
        return Status::Ok();
      }
      case schema::ControlRequest::REMOVE_MEMBER:
        request.command = ControlCommand::kRemoveMember;
        request.member = r.getRemoveMember().cStr();
        if (request.member.size() > kMaxNameBytes) return Status::InvalidArgument("member name too long");
        return Status::Ok();
      case schema::ControlRequest::ROTATE_KEYS: request.command = ControlCommand::kRotateKeys; return Status::Ok();
      case schema::ControlRequest::SUBMIT_SCAN: {
        request.command = ControlCommand::kSubmitScan;
        auto d = r.getSubmitScan().getDefinition();
        request.scan_definition.assign(reinterpret_cast<const char*>(d.begin()), d.size());
        return Status::Ok();
      }
      case schema::ControlRequest::SCAN_CONTROL: {
        request.command = ControlCommand::kScanControl;
        auto c = r.getScanControl();
        request.scan = c.getScan().cStr();
        request.scan_action = c.getAction();
        if (request.scan.size() > 64) return Status::InvalidArgument("scan id too long");
        if (request.scan_action > 2) return Status::InvalidArgument("unknown scan action");
        return Status::Ok();
      }
    }
    return Status::InvalidArgument("unknown control request (a newer ndo?)");
  });
  if (!s.ok()) return s;
  return request;
}

Result<std::string> EncodeControlResponse(const ControlResponse& r) {
  std::string out;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::MallocMessageBuilder msg;
    auto root = msg.initRoot<schema::ControlResponse>();
    root.setError(r.error);
    BuildMember(root.initSelf(), r.self);
    auto members = root.initMembers(static_cast<unsigned>(r.members.size()));
    for (unsigned i = 0; i < r.members.size(); ++i) BuildMember(members[i], r.members[i]);
    root.setCoordinatorHi(r.coordinator.hi);
    root.setCoordinatorLo(r.coordinator.lo);
    root.setEpoch(r.epoch);
    root.setJoined(r.joined);
    root.setLocalHealth(r.local_health);
    root.setAliveCount(r.alive_count);
    root.setLeaving(r.leaving);
    root.setToken(r.token);
    root.setCaHash(r.ca_hash);
    root.setExpiresUnix(r.expires_unix);
    root.setMessage(r.message);
    root.setScanId(r.scan_id);
    out = ToBytes(msg);
  })) {
    return Status::InvalidArgument("encoding control response: " + std::string(e->getDescription().cStr()));
  }
  if (out.size() > kMaxControlBytes) return Status::InvalidArgument("control response too long");
  return out;
}

Result<ControlResponse> DecodeControlResponse(std::string_view body) {
  ControlResponse out;
  Status s = ReadMessage<schema::ControlResponse>(body, kMaxControlBytes, [&](schema::ControlResponse::Reader r) {
    out.error = r.getError().cStr();
    if (Status st = ReadMember(r.getSelf(), out.self); !st.ok()) return st;
    auto members = r.getMembers();
    if (members.size() > kMaxStateMembers) return Status::Corruption("too many members");
    out.members.resize(members.size());
    for (unsigned i = 0; i < members.size(); ++i)
      if (Status st = ReadMember(members[i], out.members[i]); !st.ok()) return st;
    out.coordinator = NodeId{r.getCoordinatorHi(), r.getCoordinatorLo()};
    out.epoch = r.getEpoch();
    out.joined = r.getJoined();
    out.local_health = r.getLocalHealth();
    out.alive_count = r.getAliveCount();
    out.leaving = r.getLeaving();
    out.token = r.getToken().cStr();
    out.ca_hash = r.getCaHash().cStr();
    out.expires_unix = r.getExpiresUnix();
    out.message = r.getMessage().cStr();
    out.scan_id = r.getScanId().cStr();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace ndo::mesh
