// The control socket's messages and its client, against fake agents.
#include "mesh/api/control.h"
#include "mesh/agent/membership_report.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "mesh/membership/codec.h"

namespace ndo::mesh {
namespace {

ControlResponse Sample() {
  ControlResponse r;
  r.self = {NodeId{1, 2}, "node-a", "dmz", "127.0.0.1:7946", MemberState::kAlive, 3, 100};
  r.members.push_back({NodeId{3, 4}, "node-b", "wifi", "[::1]:7000", MemberState::kDead, 5, 1});
  r.members.push_back({NodeId{5, 6}, "nöde-c", "internet", "127.0.0.3:7946", MemberState::kLeft, 0, 100});
  r.self.allow.Add({IpAddress::FromV4(0x7f460000).value(), IpAddress::FromV4(0x7f4600ff).value()});
  r.members[0].allow.Add({IpAddress::Parse("::1")->value(), IpAddress::Parse("::1")->value()});
  r.coordinator = NodeId{3, 4};
  r.epoch = 4;
  r.joined = true;
  r.local_health = 2;
  r.alive_count = 1;
  return r;
}

void ExpectSame(const ControlMember& a, const ControlMember& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.vantage, b.vantage);
  EXPECT_EQ(a.address, b.address);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.incarnation, b.incarnation);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.allow.ranges(), b.allow.ranges());  // the scan policy, for `ndo members` and submissions
}

TEST(ControlMessages, RequestsRoundTrip) {
  for (auto c : {ControlCommand::kMembers, ControlCommand::kLeave, ControlCommand::kStatus}) {
    auto enc = EncodeControlRequest(c);
    ASSERT_TRUE(enc.ok());
    auto dec = DecodeControlRequest(*enc);
    ASSERT_TRUE(dec.ok()) << dec.status().message();
    EXPECT_EQ(dec->command, c);
  }
  ControlRequest token(ControlCommand::kCreateToken);
  token.token = {3600, 5, "dmz"};
  auto enc = EncodeControlRequest(token);
  ASSERT_TRUE(enc.ok());
  auto dec = DecodeControlRequest(*enc);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  EXPECT_EQ(dec->command, ControlCommand::kCreateToken);
  EXPECT_EQ(dec->token.ttl_seconds, 3600);
  EXPECT_EQ(dec->token.max_uses, 5u);
  EXPECT_EQ(dec->token.vantage, "dmz");
  EXPECT_EQ(dec->token.role, NodeRole::kScanner);  // the default
  token.token.role = NodeRole::kOperator;
  dec = DecodeControlRequest(*EncodeControlRequest(token));
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  EXPECT_EQ(dec->token.role, NodeRole::kOperator);
  ControlRequest remove(ControlCommand::kRemoveMember);
  remove.member = "worker-3";
  enc = EncodeControlRequest(remove);
  ASSERT_TRUE(enc.ok());
  dec = DecodeControlRequest(*enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec->command, ControlCommand::kRemoveMember);
  EXPECT_EQ(dec->member, "worker-3");
}

TEST(ControlMessages, ResponsesRoundTrip) {
  ControlResponse r = Sample();
  auto enc = EncodeControlResponse(r);
  ASSERT_TRUE(enc.ok());
  auto dec = DecodeControlResponse(*enc);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  ExpectSame(dec->self, r.self);
  ASSERT_EQ(dec->members.size(), 2u);
  ExpectSame(dec->members[0], r.members[0]);
  ExpectSame(dec->members[1], r.members[1]);
  EXPECT_EQ(dec->coordinator, r.coordinator);
  EXPECT_EQ(dec->epoch, 4u);
  EXPECT_TRUE(dec->joined);
  EXPECT_EQ(dec->local_health, 2u);
  EXPECT_EQ(dec->alive_count, 1u);
  EXPECT_FALSE(dec->leaving);
  EXPECT_TRUE(dec->error.empty());
}

TEST(ControlMessages, GarbageIsAnErrorNotACrash) {
  EXPECT_FALSE(DecodeControlRequest("").ok());
  EXPECT_FALSE(DecodeControlRequest("garbage").ok());
  EXPECT_FALSE(DecodeControlRequest(std::string(4096, '\0')).ok());  // above the request bound
  EXPECT_FALSE(DecodeControlResponse(std::string(16, '\xff')).ok());
  auto good = EncodeControlResponse(Sample());
  ASSERT_TRUE(good.ok());
  for (size_t i = 0; i < good->size(); ++i) {
    std::string bad = *good;
    bad[i] = static_cast<char>(bad[i] ^ 0xa5);
    (void)DecodeControlResponse(bad);
  }
}

TEST(ControlMessages, DescribeMembershipOfALoneNode) {
  MemberInfo self{NodeId{7, 7}, "solo", "lab", "127.0.0.1:7946", 100, 0};
  Membership m(self, MembershipConfig{}, 1, Time{} + std::chrono::hours(1), 5);
  auto r = DescribeMembership(m, ControlCommand::kMembers);
  EXPECT_EQ(r.self.id, self.id);
  EXPECT_EQ(r.self.name, "solo");
  EXPECT_EQ(r.self.state, MemberState::kAlive);
  EXPECT_EQ(r.self.incarnation, 5u);
  EXPECT_TRUE(r.members.empty());
  EXPECT_EQ(r.alive_count, 1u);
}

class ControlClient : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ndo-ctl-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (listener_ >= 0) close(listener_);
    if (server_.joinable()) server_.join();
    std::filesystem::remove_all(dir_);
  }

  void Listen() {
    listener_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string path = ControlSocketPath(dir_);
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(listener_, 4), 0);
  }

  // A fake agent: reads a request, answers with `reply` (raw bytes).
  void Serve(std::string reply, bool answer = true) {
    server_ = std::thread([this, reply, answer] {
      int c = accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      ssize_t n = recv(c, buf, sizeof buf, 0);
      request_ = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
      if (answer) {
        (void)!send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(800));
      }
      close(c);
    });
  }

  std::string dir_, request_;
  int listener_ = -1;
  std::thread server_;
};

TEST_F(ControlClient, NoAgentGivesAnActionableError) {
  auto r = CallControl(dir_, ControlCommand::kMembers, std::chrono::milliseconds(500));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
  EXPECT_EQ(r.status().message(), "no ndo agent is running for data dir " + dir_ + " (connect to " + dir_ +
                                      "/control.sock: No such file or directory)");
  EXPECT_FALSE(ControlSocketAnswers(ControlSocketPath(dir_)));
}

TEST_F(ControlClient, TalksToAnAgent) {
  Listen();
  auto body = EncodeControlResponse(Sample());
  ASSERT_TRUE(body.ok());
  Serve(FrameHeader(body->size()) + *body);
  auto r = CallControl(dir_, ControlCommand::kMembers, std::chrono::seconds(5));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->members.size(), 2u);
  server_.join();
  auto req = EncodeControlRequest(ControlCommand::kMembers);
  EXPECT_EQ(request_, FrameHeader(req->size()) + *req);
}

TEST_F(ControlClient, AgentErrorsAndGarbageAndSilenceAreErrors) {
  Listen();
  ControlResponse err;
  err.error = "busy";
  auto body = EncodeControlResponse(err);
  Serve(FrameHeader(body->size()) + *body);
  auto r = CallControl(dir_, ControlCommand::kStatus, std::chrono::seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("busy"), std::string::npos);
  server_.join();

  Serve(std::string("\x7f\xff\xff\xff", 4));  // a huge announced length, then nothing
  r = CallControl(dir_, ControlCommand::kStatus, std::chrono::seconds(5));
  EXPECT_FALSE(r.ok());
  server_.join();

  Serve("", false);  // accepts, never answers
  auto start = std::chrono::steady_clock::now();
  r = CallControl(dir_, ControlCommand::kStatus, std::chrono::milliseconds(300));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(700));
}

}  // namespace
}  // namespace ndo::mesh
