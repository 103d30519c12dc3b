// The work messages of distributed scans (mesh/work/work_messages.h): every kind
// round-trips, and what a kind needs is checked on decoding.
#include "mesh/work/work_messages.h"

#include <gtest/gtest.h>

namespace ndo::mesh {
namespace {

WorkMessage Full(WorkKind kind) {
  WorkMessage m;
  m.kind = kind;
  m.sender = NodeId{1, 2};
  m.error = "no work";
  ScanDigestEntry d;
  d.scan = ScanId{1, 2, 3, 4, 5, 6, 7, 8};
  d.digest.fill(0xab);
  m.digests = {d};
  m.states = {std::string("state bytes\0with a nul", 22)};
  m.wanted = {ScanId{8, 7, 6, 5, 4, 3, 2, 1}};
  m.scan = ScanId{9, 9, 9, 9, 9, 9, 9, 9};
  m.vantage = "dmz";
  m.shard = 41;
  m.lease = ShardLease{NodeId{3, 4}, 7, 12, 1'800'000'000'000};
  m.bundle = std::string(1000, 'b');
  m.epoch = 7;
  m.held = {{ScanId{5, 5, 5, 5, 5, 5, 5, 5}, "dmz", 3, ShardLease{NodeId{1, 2}, 6, 2, 1'800'000'000'000}}};
  m.nodes = {NodeId{5, 6}, NodeId{7, 8}};
  m.certs = {"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"};
  m.done.done = true;
  m.done.results = 17;
  m.done.digest.fill(0xcd);
  m.done.signer = NodeId{1, 2};
  m.done.lease_epoch = 7;
  m.done.lease_counter = 12;
  m.done.signature = std::string(kRecordSignatureBytes, 's');
  return m;
}

TEST(WorkMessagesTest, EveryKindRoundTrips) {
  for (uint8_t k = 1; k <= static_cast<uint8_t>(WorkKind::kCertData); ++k) {
    WorkMessage m = Full(static_cast<WorkKind>(k));
    auto bytes = EncodeWorkMessage(m);
    ASSERT_TRUE(bytes.ok()) << bytes.status().message();
    auto back = DecodeWorkMessage(*bytes);
    ASSERT_TRUE(back.ok()) << WorkKindName(m.kind) << ": " << back.status().message();
    EXPECT_EQ(back->kind, m.kind);
    EXPECT_EQ(back->sender, m.sender);
    EXPECT_EQ(back->error, m.error);
    ASSERT_EQ(back->digests.size(), 1u);
    EXPECT_EQ(back->digests[0].scan, m.digests[0].scan);
    EXPECT_EQ(back->digests[0].digest, m.digests[0].digest);
    EXPECT_EQ(back->states, m.states);
    EXPECT_EQ(back->wanted, m.wanted);
    EXPECT_EQ(back->scan, m.scan);
    EXPECT_EQ(back->vantage, m.vantage);
    EXPECT_EQ(back->shard, m.shard);
    EXPECT_EQ(back->lease, m.lease);
    EXPECT_EQ(back->bundle, m.bundle);
    EXPECT_EQ(back->epoch, m.epoch);
    EXPECT_EQ(back->held, m.held);
    EXPECT_EQ(back->nodes, m.nodes);
    EXPECT_EQ(back->certs, m.certs);
    EXPECT_EQ(back->done, m.done);
  }
}


std::string DecodeError(WorkMessage m) {
  auto bytes = EncodeWorkMessage(m);
  if (!bytes.ok()) return "encode: " + bytes.status().message();
  auto back = DecodeWorkMessage(*bytes);
  return back.ok() ? "" : back.status().message();
}

TEST(WorkMessagesTest, WhatAKindNeedsIsChecked) {
  WorkMessage m = Full(WorkKind::kLeaseRequest);
  m.sender = NodeId{};
  EXPECT_NE(DecodeError(m), "");  // no sender
  m = Full(WorkKind::kLeaseRequest);
  m.vantage.clear();
  EXPECT_NE(DecodeError(m), "");  // a lease for no vantage
  m = Full(WorkKind::kLeaseGrant);
  m.lease.holder = NodeId{};
  EXPECT_NE(DecodeError(m), "");  // a grant to nobody
  m = Full(WorkKind::kRenewRequest);
  m.shard = kMaxPoolShards;
  EXPECT_NE(DecodeError(m), "");  // beyond any pool
  m = Full(WorkKind::kBundleFetch);
  m.vantage = std::string(65, 'v');
  EXPECT_NE(DecodeError(m), "");
  m = Full(WorkKind::kRenewRequest);
  m.held[0].lease.holder = NodeId{};
  EXPECT_NE(DecodeError(m), "");  // a held lease of nobody
  m = Full(WorkKind::kLeaseRequest);
  m.held[0].shard = kMaxPoolShards;
  EXPECT_NE(DecodeError(m), "");
  m = Full(WorkKind::kLeaseRequest);
  m.held.assign(kMaxHeldLeases + 1, m.held[0]);
  EXPECT_NE(DecodeError(m), "");  // more than any worker holds
  // Kinds that carry no shard do not need a scan id.
  m = Full(WorkKind::kSync);
  m.scan = ScanId{};
  EXPECT_EQ(DecodeError(m), "");
}

TEST(WorkMessagesTest, HostileBytesAreRefusedNeverACrash) {
  auto good = EncodeWorkMessage(Full(WorkKind::kPush));
  ASSERT_TRUE(good.ok());
  EXPECT_FALSE(DecodeWorkMessage("").ok());
  EXPECT_FALSE(DecodeWorkMessage("1234567").ok());  // not whole words
  for (size_t cut = 0; cut < good->size(); cut += 8) (void)DecodeWorkMessage(good->substr(0, cut));
  std::string flipped = *good;
  for (size_t i = 0; i < flipped.size(); ++i) {
    flipped[i] ^= 0x5a;
    (void)DecodeWorkMessage(flipped);
    flipped[i] ^= 0x5a;
  }
  // An unknown kind.
  WorkMessage m = Full(WorkKind::kAck);
  auto bytes = EncodeWorkMessage(m);
  ASSERT_TRUE(bytes.ok());
  WorkMessage unknown = m;
  unknown.kind = static_cast<WorkKind>(99);
  EXPECT_NE(DecodeError(unknown), "");
}

TEST(WorkMessagesTest, CertificatesAndDoneClaimsAreBounded) {
  WorkMessage m = Full(WorkKind::kCertFetch);
  m.nodes.assign(kMaxCertFetchNodes + 1, NodeId{1, 1});
  EXPECT_NE(DecodeError(m), "");
  m = Full(WorkKind::kCertFetch);
  m.nodes.clear();
  EXPECT_EQ(DecodeError(m), "cert-fetch of no node");
  m = Full(WorkKind::kCertFetch);
  m.nodes = {NodeId{}};
  EXPECT_EQ(DecodeError(m), "certificate asked of an empty node id");
  m = Full(WorkKind::kCertData);
  m.certs = {std::string(kMaxCertPemBytes + 1, 'c')};
  EXPECT_NE(DecodeError(m), "");
  m = Full(WorkKind::kBundlePut);
  m.done.signature = "short";
  EXPECT_NE(DecodeError(m), "");
  // No claim: none comes back (an insecure mesh's put).
  m = Full(WorkKind::kBundlePut);
  m.done = {};
  auto back = DecodeWorkMessage(*EncodeWorkMessage(m));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->done.done);
}

}  // namespace
}  // namespace ndo::mesh
