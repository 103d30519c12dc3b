// `ndo view`: the pure logic (filters, compare, diff, id prefixes) on
// hand-made results, then every view end to end on a store with two pools,
// read while a primary (as an agent would) holds the database.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"  // test_certs.h's designated initializers

#include "cli/pool_views.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "cli/pool_source.h"
#include "cli/view_commands.h"
#include "mesh/work/pool_state.h"
#include "scan/service/tls_session.h"
#include "store/store.h"
#include "cli/test_json.h"
#include "support/run_command.h"
#include "support/test_certs.h"

namespace ndo {
namespace {

using ndo::testing::Json;
using ndo::testing::ParseJsonLines;

IpAddress V4(const char* text) { return IpAddress::Parse(text).value(); }

PoolResult Stored(const char* address, uint16_t port, PortState state, std::string service = "",
                  std::string banner = "") {
  PoolResult pr;
  pr.result.address = V4(address);
  pr.result.port = port;
  pr.result.state = state;
  pr.result.attempts = 1;
  if (!service.empty() || !banner.empty()) {
    ServiceEvidence ev;
    ev.address = pr.result.address;
    ev.port = port;
    ev.service = service;
    if (!banner.empty()) ev.banner = BannerEvidence{banner, false, "", ""};
    pr.evidence = ev;
  }
  return pr;
}
PoolResult Open(const char* address, uint16_t port, std::string service = "", std::string banner = "") {
  return Stored(address, port, PortState::kOpen, service, banner);
}

// ---------------------------------------------------------------------------
// Filters

TEST(PoolViewFilter, ParsesPortsServicesAndHostsOfAnySize) {
  auto f = ParseViewFilter({"22", "443,80", "8000-8001"}, "SSH", {"10.0.0.0/8,192.0.2.5-192.0.2.6", "2001:db8::/32"},
                           false);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->ports, (std::vector<uint16_t>{22, 80, 443, 8000, 8001}));
  EXPECT_TRUE(f->hosts.Contains(V4("10.255.0.1").value()));
  EXPECT_TRUE(f->hosts.Contains(V4("192.0.2.6").value()));
  EXPECT_FALSE(f->hosts.Contains(V4("192.0.2.7").value()));
  EXPECT_TRUE(f->hosts.Contains(IpAddress::Parse("2001:db8:ffff::1")->value()));  // a /32 is fine in a filter
  EXPECT_FALSE(f->hosts.Contains(IpAddress::Parse("2001:db9::1")->value()));

  for (auto [ports, hosts] : std::vector<std::pair<std::string, std::string>>{
           {"0", "10.0.0.1"}, {"22", "10.0.0.0/33"}, {"22", "example.test"}, {"22", "10.0.0.1/x"}}) {
    auto bad = ParseViewFilter({ports}, "", {hosts}, false);
    EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument) << ports << " " << hosts;
  }
}

TEST(PoolViewFilter, MatchesStatePortServiceAndHost) {
  auto any = ParseViewFilter({}, "", {}, false);
  auto all = ParseViewFilter({}, "", {}, true);
  auto ssh = ParseViewFilter({}, "ssh", {}, false);
  auto narrow = ParseViewFilter({"22,80"}, "", {"10.0.0.0/31"}, true);
  ASSERT_TRUE(any.ok() && all.ok() && ssh.ok() && narrow.ok());
  PoolResult open22 = Open("10.0.0.1", 22);
  PoolResult open2222 = Open("10.0.0.9", 2222, "SSH");  // the service from evidence, compared without case
  PoolResult closed80 = Stored("10.0.0.1", 80, PortState::kClosed);
  auto matches = [](const Result<ViewFilter>& f, const PoolResult& pr) {
    return Matches(*f, pr.result, pr.evidence ? &*pr.evidence : nullptr);
  };
  EXPECT_TRUE(matches(any, open22));
  EXPECT_FALSE(matches(any, closed80));
  EXPECT_TRUE(matches(all, closed80));
  EXPECT_TRUE(matches(ssh, open22));  // Nmap's name for 22
  EXPECT_TRUE(matches(ssh, open2222));
  EXPECT_FALSE(matches(ssh, Open("10.0.0.1", 80)));
  EXPECT_TRUE(matches(narrow, closed80));
  EXPECT_FALSE(matches(narrow, open2222));              // port and host
  EXPECT_FALSE(matches(narrow, Open("10.0.0.2", 22)));  // host
}

// ---------------------------------------------------------------------------
// Compare and diff

std::vector<VantageResults> TwoPools() {
  return {{"dmz",
           {Open("10.0.0.1", 22, "ssh"), Open("10.0.0.1", 80), Open("10.0.0.2", 443, ""),
            Stored("10.0.0.2", 8080, PortState::kClosed)}},
          {"wifi", {Open("10.0.0.1", 22), Open("10.0.0.3", 22), Open("10.0.0.3", 3306, "mysql")}}};
}

TEST(PoolViewCompare, CountsOpenPortsByServicePerVantageWithATotal) {
  ReportTable t = CompareTable(TwoPools());
  std::ostringstream table, csv, json;
  ASSERT_TRUE(PrintReport(t, "table", table).ok());
  ASSERT_TRUE(PrintReport(t, "csv", csv).ok());
  ASSERT_TRUE(PrintReport(t, "json", json).ok());
  EXPECT_EQ(table.str(),
            "PORT   SERVICE  dmz  wifi\n"
            "22     ssh        1     2\n"
            "80     http       1     0\n"
            "443    https      1     0\n"
            "3306   mysql      0     1\n"
            "Total             3     3\n");
  EXPECT_EQ(csv.str(),
            "PORT,SERVICE,dmz,wifi\n"
            "22,ssh,1,2\n"
            "80,http,1,0\n"
            "443,https,1,0\n"
            "3306,mysql,0,1\n"
            "Total,,3,3\n");
  EXPECT_EQ(json.str().substr(0, json.str().find('\n')),
            R"({"port":"22","service":"ssh","counts":{"dmz":1,"wifi":2}})");
}

TEST(PoolViewDiff, OpenInOnePoolButNotTheOtherInAnyInputOrder) {
  std::vector<PoolResult> a = {Open("10.0.0.2", 443), Open("10.0.0.1", 80, "http", "HTTP/1.1 200 OK\r\nServer: x\r\n"),
                               Open("10.0.0.1", 22), Open("10.0.0.10", 25, "", "220 mail, ready\r\n"),
                               Stored("10.0.0.1", 25, PortState::kClosed)};
  std::vector<PoolResult> b = {Open("10.0.0.1", 22), Stored("10.0.0.1", 80, PortState::kFiltered),
                               Stored("10.0.0.1", 25, PortState::kOpen)};
  std::mt19937 rng(7);
  std::shuffle(b.begin(), b.end(), rng);
  auto diff = DiffPools(a, b);
  ASSERT_EQ(diff.size(), 3u);
  EXPECT_EQ(diff[0].address, V4("10.0.0.1"));
  EXPECT_EQ(diff[0].port, 80);
  EXPECT_EQ(diff[0].other, PortState::kFiltered);
  EXPECT_EQ(diff[1].address, V4("10.0.0.2"));
  EXPECT_EQ(diff[1].other, std::nullopt);
  EXPECT_EQ(diff[2].address, V4("10.0.0.10"));  // address order, not text order

  std::ostringstream table, jsonl, csv;
  ASSERT_TRUE(PrintDiff(diff, "dmz", "wifi", "table", table).ok());
  ASSERT_TRUE(PrintDiff(diff, "dmz", "wifi", "json", jsonl).ok());
  ASSERT_TRUE(PrintDiff(diff, "dmz", "wifi", "csv", csv).ok());
  EXPECT_EQ(table.str(),
            "HOST       PORT  SERVICE  IN wifi   BANNER\n"
            "10.0.0.1     80  http     filtered  HTTP/1.1 200 OK\n"
            "10.0.0.2    443  https    -\n"
            "10.0.0.10    25  smtp     -         220 mail, ready\n");
  EXPECT_EQ(jsonl.str(),
            R"({"address":"10.0.0.1","port":80,"service":"http","seen_by":"dmz","not_by":"wifi","not_by_state":"filtered","banner":"HTTP/1.1 200 OK\\r\\nServer: x\\r\\n"})"
            "\n"
            R"({"address":"10.0.0.2","port":443,"service":"https","seen_by":"dmz","not_by":"wifi","not_by_state":null})"
            "\n"
            R"({"address":"10.0.0.10","port":25,"service":"smtp","seen_by":"dmz","not_by":"wifi","not_by_state":null,"banner":"220 mail, ready\\r\\n"})"
            "\n");
  EXPECT_EQ(csv.str(),
            "address,port,service,seen_by,not_by,not_by_state,banner\n"
            "10.0.0.1,80,http,dmz,wifi,filtered,HTTP/1.1 200 OK\\r\\nServer: x\\r\\n\n"
            "10.0.0.2,443,https,dmz,wifi,,\n"
            "10.0.0.10,25,smtp,dmz,wifi,,\"220 mail, ready\\r\\n\"\n");
  std::ostringstream bad;
  EXPECT_EQ(PrintDiff(diff, "dmz", "wifi", "xml", bad).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(PrintDiff(diff, "dmz", "wifi", "jsonl", bad).code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(DiffPools(b, b).empty());
}

TEST(PoolViewDiff, TableShowsEachHostOnceAndKeepsTerminalsSafe) {
  auto diff = DiffPools({Open("10.0.0.1", 22, "ssh", "SSH-2.0-\x1b[31mred\r\n"), Open("10.0.0.1", 23)}, {});
  std::ostringstream table;
  ASSERT_TRUE(PrintDiff(diff, "a", "b", "table", table).ok());
  EXPECT_EQ(table.str(),
            "HOST      PORT  SERVICE  IN b  BANNER\n"
            "10.0.0.1    22  ssh      -     SSH-2.0-\\x1b[31mred\n"
            "            23  telnet   -\n");
  EXPECT_EQ(TerminalText("ab\x01\xff" "cdef", 6), "ab?\xef\xbf\xbd...");  // U+FFFD for the bad byte
  EXPECT_EQ(TerminalText("ab\x01\xff" "cdef", 5), "ab?...");                // never half a character
  EXPECT_EQ(TerminalText("short", 5), "short");
}

// ---------------------------------------------------------------------------
// Scan ids

TEST(PoolViewIds, MatchesAWholeIdOrAUniquePrefix) {
  std::vector<std::string> ids = {"3f2a9c0011223344", "3f2a9d0011223344", "77aa000000000000"};
  EXPECT_EQ(*MatchScanId(ids, "77aa"), "77aa000000000000");
  EXPECT_EQ(*MatchScanId(ids, "3F2A9C"), "3f2a9c0011223344");
  EXPECT_EQ(*MatchScanId(ids, "3f2a9d0011223344"), "3f2a9d0011223344");
  auto ambiguous = MatchScanId(ids, "3f2a");
  EXPECT_EQ(ambiguous.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(ambiguous.status().message().find("ambiguous"), std::string::npos);
  EXPECT_EQ(MatchScanId(ids, "3f2").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(MatchScanId(ids, "beef").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(MatchScanId({}, "beef").status().code(), Status::Code::kNotFound);
}

TEST(PoolViewText, AlignsColumnsWithoutTrailingBlanks) {
  EXPECT_EQ(AlignColumns({{"A", "NUM", "Z"}, {"long", "7", ""}}, {false, true, false}),
            "A     NUM  Z\n"
            "long    7\n");
}

// ---------------------------------------------------------------------------
// End to end: a store with a distributed scan of two pools

constexpr int64_t kCreatedMs = 1795601316123;  // 2026-11-25T10:08:36.123Z
constexpr int64_t kNowMs = kCreatedMs + 600'000;

mesh::NodeId Node(uint64_t n) { return {0, n}; }

class PoolViewsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = ::testing::TempDir() + "/ndo-views-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(data_);
    auto store = Store::Open(data_ + "/db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    primary_ = std::move(*store);  // held open throughout, as a running agent holds it
    MakeCertificates();
    MakeScan();
  }
  void TearDown() override {
    primary_.reset();
    std::filesystem::remove_all(data_);
  }

  void MakeCertificates() {
    using namespace ndo::testing;
    auto key = MakeKey(KeyType::kEcP256);
    auto ca = MakeCert({.cn = "Test Root", .o = "Test CA", .key = key.get(), .not_before = UnixTime(2010, 1, 1),
                        .not_after = UnixTime(2040, 1, 1), .is_ca = true});
    auto other = MakeCert({.cn = "Other Root", .o = "Other CA", .key = key.get(), .not_before = UnixTime(2010, 1, 1),
                           .not_after = UnixTime(2040, 1, 1), .is_ca = true});
    auto old_leaf = MakeCert({.cn = "old.test", .key = key.get(), .issuer = ca.get(), .issuer_key = key.get(),
                              .not_before = UnixTime(2018, 1, 1), .not_after = UnixTime(2019, 3, 1),
                              .sans = {"DNS:old.test"}, .serial_hex = "10"});
    auto new_leaf = MakeCert({.cn = "new.test", .key = key.get(), .issuer = other.get(), .issuer_key = key.get(),
                              .not_before = UnixTime(2025, 1, 1), .not_after = UnixTime(2030, 1, 1),
                              .sans = {"DNS:new.test"}, .serial_hex = "11"});
    ASSERT_TRUE(old_leaf && new_leaf) << OpenSslErrors();
    old_leaf_ = ParseCertificate(ToDer(old_leaf.get())).value();
    new_leaf_ = ParseCertificate(ToDer(new_leaf.get())).value();
  }

  ServiceEvidence Tls(const char* address, const CertificateInfo& leaf) {
    ServiceEvidence ev;
    ev.address = V4(address);
    ev.port = 443;
    TlsEvidence t;
    t.version = "TLSv1.3";
    t.cipher = "TLS_AES_128_GCM_SHA256";
    t.verdict = TlsVerdict::kUntrustedIssuer;
    t.chain = {leaf};
    ev.tls = t;
    return ev;
  }
  ServiceEvidence Banner(const char* address, uint16_t port, std::string service, std::string bytes) {
    ServiceEvidence ev;
    ev.address = V4(address);
    ev.port = port;
    ev.service = std::move(service);
    ev.banner = BannerEvidence{std::move(bytes), false, "", ""};
    return ev;
  }
  static ProbeResult Probe(const char* address, uint16_t port, PortState state, int64_t offset_ms) {
    ProbeResult r;
    r.address = V4(address);
    r.port = port;
    r.state = state;
    r.attempts = state == PortState::kFiltered ? 2 : 1;
    r.rtt_us = state == PortState::kFiltered ? 0 : 1500;
    r.time_us = (kCreatedMs + offset_ms) * 1000;
    return r;
  }

  void MakeScan() {
    mesh::ScanDefinition def;
    def.spec.arguments = {"ndo", "scan", "198.18.0.0/29", "-p", "22,80,443", "--store-all"};
    def.spec.targets.addresses.Add({V4("198.18.0.0").value(), V4("198.18.0.7").value()});
    def.spec.ports = {22, 80, 443};
    def.spec.seed = 7;
    def.spec.shard_count = 2;
    def.spec.store_all = true;
    def.vantages = {"dmz", "wifi"};
    def.created_ms = kCreatedMs;
    def.submitter = Node(1);
    auto state = mesh::NewScanState(def, {kCreatedMs, 0, Node(1)});
    ASSERT_TRUE(state.ok()) << state.status().message();
    // dmz: shard 0 done, shard 1 leased until after now; wifi: a lease
    // that expired (pending again) and a shard never leased.
    auto& dmz = state->pools[0];
    dmz[0].done = {true, 6, mesh::Digest{1}, {Node(2), Node(3)}};
    dmz[1].lease = {Node(2), 1, 5, kNowMs + 30'000};
    state->pools[1][0].lease = {Node(3), 1, 6, kNowMs - 1};
    scan_ = *state;
    auto bytes = mesh::EncodeScanState(scan_);
    ASSERT_TRUE(bytes.ok()) << bytes.status().message();
    ASSERT_TRUE(primary_->PutMeta("pool." + ScanIdToHex(scan_.id), *bytes).ok());

    // The dmz pool has its record; the wifi pool's has not arrived yet.
    dmz_id_ = mesh::PoolId(scan_.id, "dmz");
    wifi_id_ = mesh::PoolId(scan_.id, "wifi");
    ScanRecord rec;
    rec.id = dmz_id_;
    rec.spec = def.spec;
    rec.created_us = kCreatedMs * 1000;
    ASSERT_TRUE(primary_->PutScan(rec).ok());
    ResultBatch dmz_results, wifi_results;
    const PortState open = PortState::kOpen;
    dmz_results.results = {Probe("198.18.0.1", 22, open, 10),  Probe("198.18.0.1", 80, open, 11),
                           Probe("198.18.0.2", 443, open, 12), Probe("198.18.0.3", 443, open, 13),
                           Probe("198.18.0.4", 22, PortState::kClosed, 14), Probe("198.18.0.4", 443, open, 15)};
    wifi_results.results = {Probe("198.18.0.1", 22, open, 20), Probe("198.18.0.1", 80, PortState::kFiltered, 21),
                            Probe("198.18.0.2", 443, open, 22), Probe("198.18.0.5", 22, open, 23)};
    ASSERT_TRUE(primary_->WriteBatch(dmz_id_, dmz_results, true).ok());
    ASSERT_TRUE(primary_->WriteBatch(wifi_id_, wifi_results, true).ok());
    ASSERT_TRUE(primary_
                    ->WriteEvidence(dmz_id_, {Banner("198.18.0.1", 22, "ssh", "SSH-2.0-OpenSSH_9.2\r\n"),
                                              Banner("198.18.0.1", 80, "http", "HTTP/1.1 200 OK\r\nServer: lab\r\n"),
                                              Tls("198.18.0.2", old_leaf_), Tls("198.18.0.3", new_leaf_),
                                              Tls("198.18.0.4", old_leaf_)})
                    .ok());
    ASSERT_TRUE(primary_->WriteEvidence(wifi_id_, {Tls("198.18.0.2", old_leaf_)}).ok());
  }

  ViewCommand Command() const {
    ViewCommand cmd;
    cmd.data_dir = data_;
    cmd.scan_id = ScanIdToHex(scan_.id).substr(0, 6);
    return cmd;
  }

  std::string data_;
  std::unique_ptr<Store> primary_;
  mesh::ScanState scan_;
  ScanId dmz_id_{}, wifi_id_{};
  CertificateInfo old_leaf_, new_leaf_;
};

TEST_F(PoolViewsStoreTest, ListShowsEveryPoolsProgress) {
  std::ostringstream out;
  ASSERT_TRUE(RunViewList(Command(), kNowMs, out).ok());
  std::string id = ScanIdToHex(scan_.id);
  EXPECT_EQ(out.str(),
            "SCAN              CREATED (UTC)        CONTROL  VANTAGE  DONE  LEASED  PENDING  REFUSED  RESULTS\n" + id +
                "  2026-11-25T10:08:36  running  dmz         1       1        0        0        6\n"
                "                                                wifi        0       0        2        0        0\n");
}

TEST_F(PoolViewsStoreTest, ListAsJsonLinesOneObjectPerScan) {
  ViewCommand cmd = Command();
  cmd.format = "json";
  std::ostringstream out;
  ASSERT_TRUE(RunViewList(cmd, kNowMs, out).ok());
  auto lines = ParseJsonLines(out.str());
  ASSERT_TRUE(lines) << out.str();
  ASSERT_EQ(lines->size(), 1u);
  const Json& scan = lines->front();
  EXPECT_EQ(scan["record"].text, "scan");
  EXPECT_EQ(scan["id"].text, ScanIdToHex(scan_.id));
  EXPECT_EQ(scan["created"].text.substr(0, 19), "2026-11-25T10:08:36");
  EXPECT_EQ(scan["control"].text, "running");
  EXPECT_FALSE(scan["complete"].boolean);
  EXPECT_EQ(scan["probes_per_pool"].UInt(), 24u);  // 8 hosts x 3 ports
  EXPECT_EQ(scan["shards_per_pool"].UInt(), 2u);
  const auto& pools = scan["pools"].items;
  ASSERT_EQ(pools.size(), 2u);
  EXPECT_EQ(pools[0]["vantage"].text, "dmz");
  EXPECT_EQ(pools[0]["done"].UInt(), 1u);
  EXPECT_EQ(pools[0]["leased"].UInt(), 1u);
  EXPECT_EQ(pools[0]["pending"].UInt(), 0u);
  EXPECT_EQ(pools[0]["results"].UInt(), 6u);
  EXPECT_EQ(pools[1]["vantage"].text, "wifi");
  EXPECT_EQ(pools[1]["pending"].UInt(), 2u);

  cmd.format = "csv";
  EXPECT_EQ(RunViewList(cmd, kNowMs, out).code(), Status::Code::kInvalidArgument);
}

// The binary on this store: what `ndo view list`, `ndo scan status` and
// the views print with --format json, and -o as the output file.
TEST_F(PoolViewsStoreTest, TheBinarysJsonAndOutputFiles) {
  using ndo::testing::RunNdo;
  std::string id = ScanIdToHex(scan_.id);
  auto list = RunNdo({"view", "list", "--format", "json", "--data-dir", data_}, data_);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto lines = ParseJsonLines(list.out);
  ASSERT_TRUE(lines && lines->size() == 1) << list.out;
  EXPECT_EQ(lines->front()["id"].text, id);
  EXPECT_EQ(lines->front()["pools"].items.size(), 2u);

  auto status = RunNdo({"scan", "status", id.substr(0, 6), "--format", "json", "--data-dir", data_}, data_);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  lines = ParseJsonLines(status.out);
  ASSERT_TRUE(lines && lines->size() == 1) << status.out;
  const Json& s = lines->front();
  EXPECT_EQ(s["record"].text, "scan");
  EXPECT_EQ(s["id"].text, id);
  EXPECT_EQ(s["control"].text, "running");
  EXPECT_FALSE(s["complete"].boolean);
  EXPECT_GT(s["elapsed_s"].Number(), 0);
  ASSERT_EQ(s["pools"].items.size(), 2u);
  const Json& dmz = s["pools"].items[0];
  EXPECT_EQ(dmz["vantage"].text, "dmz");
  EXPECT_EQ(dmz["done"].UInt(), 1u);
  EXPECT_EQ(dmz["results"].UInt(), 6u);
  EXPECT_EQ(dmz["probes_per_s"].kind, Json::Kind::kNumber);
  EXPECT_TRUE(dmz.Has("eta_s"));
  EXPECT_EQ(dmz["nodes_working"].kind, Json::Kind::kArray);
  // The text output is as before.
  auto text = RunNdo({"scan", "status", id, "--data-dir", data_}, data_);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("scan " + id + "  running  in progress", 0), 0u) << text.out;

  // ndo view SCAN --format json -o FILE: JSON Lines in the file, nothing on standard output.
  std::string file = data_ + "/dmz.json";
  auto view = RunNdo({"view", id, "--vantage", "dmz", "--format", "json", "-o", file, "--data-dir", data_}, data_);
  ASSERT_EQ(view.exit_code, 0) << view.err;
  EXPECT_EQ(view.out, "");
  auto results = ParseJsonLines(ndo::testing::Slurp(file));
  ASSERT_TRUE(results) << ndo::testing::Slurp(file);
  EXPECT_EQ(results->size(), 5u);  // dmz's open ports
  for (const Json& r : *results) EXPECT_EQ(r["state"].text, "open");

  // ndo view list -o FILE (and -o given to `view` before `list`): the list
  // in the file, nothing on standard output.
  for (const auto& args : {std::vector<std::string>{"view", "list", "--format", "json", "-o", data_ + "/list.json"},
                           std::vector<std::string>{"view", "-o", data_ + "/list.json", "list", "--format", "json"}}) {
    std::filesystem::remove(data_ + "/list.json");
    auto a = args;
    a.insert(a.end(), {"--data-dir", data_});
    auto listed = RunNdo(a, data_);
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    EXPECT_EQ(listed.out, "");
    auto in_file = ParseJsonLines(ndo::testing::Slurp(data_ + "/list.json"));
    ASSERT_TRUE(in_file && in_file->size() == 1) << ndo::testing::Slurp(data_ + "/list.json");
    EXPECT_EQ(in_file->front()["id"].text, id);
  }

  // Bad formats: exit 2 and an error that says what to give; nothing written.
  struct Case {
    std::vector<std::string> args;
    std::string error;
  } cases[] = {
      {{"view", "list", "--format", "jsonl"}, "give --format json"},
      {{"view", id, "--vantage", "dmz", "-o", "jsonl"}, "-o is the output file now, not the format: give --format json"},
      {{"scan", "status", id, "--format", "xml"}, "unknown format 'xml': give table or json"},
      {{"scans", "--format", "jsonl"}, "give --format json"},
      {{"view", "compare", id, "--json"}, "was replaced by --format json"},
  };
  for (auto& c : cases) {
    c.args.insert(c.args.end(), {"--data-dir", data_});
    auto r = RunNdo(c.args, data_);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << "expected '" << c.error << "' in: " << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_FALSE(std::filesystem::exists(data_ + "/jsonl"));
}

TEST_F(PoolViewsStoreTest, OneVantagesResultsFilteredThroughTheWriters) {
  ViewCommand cmd = Command();
  cmd.vantage = "dmz";
  cmd.format = "csv";
  cmd.ports = {"22,80"};
  cmd.all_states = true;
  std::ostringstream csv;
  ASSERT_TRUE(RunViewResults(cmd, csv).ok());
  std::string pool = ScanIdToHex(dmz_id_);
  EXPECT_EQ(csv.str(),
            "scan,address,hostname,port,state,service,rtt_us,attempts,time,banner,tls_verdict,cert_subject,"
            "cert_issuer,cert_not_after\n" +
                pool + ",198.18.0.1,,22,open,ssh,1500,1,2026-11-25T10:08:36.133000Z,SSH-2.0-OpenSSH_9.2\\r\\n,,,,\n" +
                pool +
                ",198.18.0.1,,80,open,http,1500,1,2026-11-25T10:08:36.134000Z,HTTP/1.1 200 OK\\r\\nServer: lab\\r\\n,,,,\n" +
                pool + ",198.18.0.4,,22,closed,ssh,1500,1,2026-11-25T10:08:36.137000Z,,,,,\n");

  // The wifi pool has no record of its own yet: the scan's definition stands in.
  cmd = Command();
  cmd.vantage = "wifi";
  cmd.service = "https";
  cmd.hosts = {"198.18.0.0/30"};
  std::ostringstream table;
  ASSERT_TRUE(RunViewResults(cmd, table).ok());
  EXPECT_EQ(table.str(),
            "ndo scan report for 198.18.0.2\n"
            "PORT    STATE SERVICE RTT\n"
            "443/tcp open  https   1.50ms\n"
            "|  tls: TLSv1.3 TLS_AES_128_GCM_SHA256, untrusted_issuer\n"
            "|_   cert: CN=old.test; issuer CN=Test Root, O=Test CA; 2018-01-01 to 2019-03-01; EC 256\n");

  // To a file.
  cmd.format = "json";
  cmd.output_path = data_ + "/out.json";
  std::ostringstream none;
  ASSERT_TRUE(RunViewResults(cmd, none).ok());
  EXPECT_EQ(none.str(), "");
  EXPECT_TRUE(std::filesystem::file_size(cmd.output_path) > 0);

  // jsonl was json's old name: refused with an error that says json.
  cmd.format = "jsonl";
  cmd.output_path.clear();
  Status s = RunViewResults(cmd, none);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("give --format json"), std::string::npos) << s.message();
}

TEST_F(PoolViewsStoreTest, CompareCountsEachVantage) {
  std::ostringstream out;
  ASSERT_TRUE(RunViewCompare(Command(), out).ok());
  EXPECT_EQ(out.str(),
            "PORT   SERVICE  dmz  wifi\n"
            "22     ssh        1     2\n"
            "80     http       1     0\n"
            "443    https      3     1\n"
            "Total             5     3\n");

  // --format json and -o FILE, as every view.
  ViewCommand cmd = Command();
  cmd.format = "json";
  cmd.output_path = data_ + "/compare.json";
  std::ostringstream none;
  ASSERT_TRUE(RunViewCompare(cmd, none).ok());
  EXPECT_EQ(none.str(), "");
  std::ifstream file(cmd.output_path);
  std::string first;
  ASSERT_TRUE(std::getline(file, first));
  EXPECT_EQ(first.front(), '{') << first;
  EXPECT_NE(first.find(R"("dmz":1)"), std::string::npos) << first;
}

TEST_F(PoolViewsStoreTest, DiffListsWhatOnlyOneVantageSees) {
  ViewCommand cmd = Command();
  cmd.seen_by = "dmz";
  cmd.not_by = "wifi";
  std::ostringstream out;
  ASSERT_TRUE(RunViewDiff(cmd, out).ok());
  EXPECT_EQ(out.str(),
            "HOST        PORT  SERVICE  IN wifi   BANNER\n"
            "198.18.0.1    80  http     filtered  HTTP/1.1 200 OK\n"
            "198.18.0.3   443  https    -\n"
            "198.18.0.4   443  https    -\n");
  std::swap(cmd.seen_by, cmd.not_by);
  cmd.format = "csv";
  std::ostringstream csv;
  ASSERT_TRUE(RunViewDiff(cmd, csv).ok());
  EXPECT_EQ(csv.str(),
            "address,port,service,seen_by,not_by,not_by_state,banner\n"
            "198.18.0.5,22,ssh,wifi,dmz,,\n");
}

TEST_F(PoolViewsStoreTest, ReportHasOneColumnPerVantage) {
  ViewCommand cmd = Command();
  cmd.groups = {"Test=Test CA"};
  std::ostringstream out;
  ASSERT_TRUE(RunViewReport(cmd, out).ok());
  EXPECT_EQ(out.str(),
            "Open ports by port and service:\n"
            "PORT  SERVICE  dmz  wifi\n"
            "22    ssh        1     2\n"
            "80    http       1     0\n"
            "443   https      3     1\n"
            "\n"
            "Leaf certificates by issuer:\n"
            "ISSUER     dmz  wifi\n"
            "Test         1     1\n"
            "other CAs    1     0\n"
            "Total        2     1\n"
            "\n"
            "Expired leaf certificates by year of expiry:\n"
            "YEAR   dmz  wifi\n"
            "2019     1     1\n"
            "Total    1     1\n");
  cmd.format = "json";
  std::ostringstream json;
  ASSERT_TRUE(RunViewReport(cmd, json).ok());
  EXPECT_NE(json.str().find(R"({"report":"tls expired","year":"2019","counts":{"dmz":1,"wifi":1}})"),
            std::string::npos)
      << json.str();
}

TEST_F(PoolViewsStoreTest, ClearErrors) {
  std::ostringstream out;
  ViewCommand cmd = Command();
  cmd.scan_id = "ffffffff";
  EXPECT_EQ(RunViewCompare(cmd, out).code(), Status::Code::kNotFound);
  cmd.scan_id = "ff";
  EXPECT_EQ(RunViewCompare(cmd, out).code(), Status::Code::kInvalidArgument);

  cmd = Command();
  cmd.vantage = "internet";
  Status s = RunViewResults(cmd, out);
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find("has no vantage 'internet' (its vantages: dmz, wifi)"), std::string::npos)
      << s.message();
  cmd.vantage = "";
  EXPECT_EQ(RunViewResults(cmd, out).code(), Status::Code::kInvalidArgument);
  cmd.vantage = "dmz";
  cmd.format = "yaml";
  EXPECT_EQ(RunViewResults(cmd, out).code(), Status::Code::kInvalidArgument);

  cmd = Command();
  cmd.seen_by = cmd.not_by = "dmz";
  EXPECT_EQ(RunViewDiff(cmd, out).code(), Status::Code::kInvalidArgument);
  cmd.not_by = "lab";
  EXPECT_EQ(RunViewDiff(cmd, out).code(), Status::Code::kNotFound);

  cmd = Command();
  cmd.data_dir = data_ + "/missing";
  s = RunViewList(cmd, kNowMs, out);
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find("no such data directory"), std::string::npos) << s.message();
  std::filesystem::create_directories(data_ + "/empty");
  cmd.data_dir = data_ + "/empty";
  EXPECT_EQ(RunViewList(cmd, kNowMs, out).code(), Status::Code::kNotFound);
  EXPECT_EQ(out.str(), "");

  // A store without distributed scans lists none.
  std::filesystem::create_directories(data_ + "/plain");
  ASSERT_TRUE(Store::Open(data_ + "/plain/db").ok());
  cmd.data_dir = data_ + "/plain";
  ASSERT_TRUE(RunViewList(cmd, kNowMs, out).ok());
  EXPECT_EQ(out.str(), "SCAN  CREATED (UTC)  CONTROL  VANTAGE  DONE  LEASED  PENDING  REFUSED  RESULTS\n");
}

}  // namespace
}  // namespace ndo
