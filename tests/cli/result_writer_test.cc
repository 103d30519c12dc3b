#include "cli/output/result_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ndo {
namespace {

constexpr int64_t kCreatedUs = 1795601316123456;  // 2026-11-25T10:08:36.123456Z

IpAddress V4(const char* text) { return IpAddress::Parse(text).value(); }
IpAddress V6(const char* text) { return IpAddress::Parse(text).value(); }

// 198.18.0.0/28 and 2001:db8::1-2, ports 22,80,443, 198.18.0.5 typed as web.example.
ScanRecord MakeRecord(bool store_all) {
  ScanRecord rec;
  rec.id = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
  rec.created_us = kCreatedUs;
  rec.updated_us = kCreatedUs + 4'000'000;
  rec.finished_us = kCreatedUs + 4'500'000;
  rec.elapsed_us = 4'321'000;
  rec.state = ScanState::kDone;
  ScanSpec& spec = rec.spec;
  spec.arguments = {"ndo", "scan", "-p", "22,80,443", "198.18.0.0/28", "2001:db8::1-2", "web.example",
                    "--exclude", "a&b <c> \"d\" 'e'"};
  spec.targets.addresses.Add(AddressRange{V4("198.18.0.0").value(), V4("198.18.0.15").value()});
  spec.targets.addresses.Add(AddressRange{V6("2001:db8::1").value(), V6("2001:db8::2").value()});
  spec.targets.names.push_back({V4("198.18.0.5"), "web.example"});
  spec.ports = {22, 80, 443};
  spec.store_all = store_all;
  return rec;
}

ProbeResult Result(IpAddress a, uint16_t port, PortState state, uint32_t rtt_us, uint8_t attempts, int64_t offset_us) {
  ProbeResult r;
  r.address = a;
  r.port = port;
  r.state = state;
  r.rtt_us = rtt_us;
  r.attempts = attempts;
  r.time_us = kCreatedUs + offset_us;
  return r;
}

// Every state, both families, sorted by address then port as the store yields them.
std::vector<ProbeResult> AllResults() {
  return {
      Result(V4("198.18.0.5"), 22, PortState::kOpen, 120, 1, 1'000'000),
      Result(V4("198.18.0.5"), 80, PortState::kClosed, 300, 1, 1'000'100),
      Result(V4("198.18.0.5"), 443, PortState::kFiltered, 0, 3, 2'500'000),
      Result(V4("198.18.0.9"), 22, PortState::kFiltered, 0, 3, 2'600'000),
      Result(V4("198.18.0.9"), 80, PortState::kUnreachable, 800, 1, 1'200'000),
      Result(V4("198.18.0.9"), 443, PortState::kFiltered, 0, 3, 2'700'000),
      Result(V6("2001:db8::1"), 22, PortState::kClosed, 1800, 1, 1'300'000),
      Result(V6("2001:db8::1"), 80, PortState::kFiltered, 0, 3, 2'800'000),
      Result(V6("2001:db8::1"), 443, PortState::kOpen, 2500, 2, 1'400'000),
  };
}

std::vector<ProbeResult> OpenOnly() {
  std::vector<ProbeResult> open;
  for (const ProbeResult& r : AllResults())
    if (r.state == PortState::kOpen) open.push_back(r);
  return open;
}

std::string Render(std::string_view format, const ScanRecord& rec, const std::vector<ProbeResult>& results,
                   WriterOptions options = {}) {
  std::ostringstream out;
  auto writer = MakeResultWriter(format, out, options);
  EXPECT_NE(writer, nullptr) << format;
  if (!writer) return "";
  writer->Begin(rec);
  for (const ProbeResult& r : results) writer->Write(r, nullptr);
  writer->End(rec);
  return out.str();
}

TEST(FormatTimestampTest, Rfc3339UtcWithMicroseconds) {
  EXPECT_EQ(FormatTimestamp(kCreatedUs), "2026-11-25T10:08:36.123456Z");
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTimestamp(1'000'007), "1970-01-01T00:00:01.000007Z");
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(ResultWriterRegistryTest, KnowsItsFormatsAndRejectsOthers) {
  EXPECT_EQ(ResultFormats(), (std::vector<std::string>{"table", "json", "csv", "xml"}));
  std::ostringstream out;
  for (const std::string& name : ResultFormats()) EXPECT_NE(MakeResultWriter(name, out), nullptr) << name;
  EXPECT_EQ(MakeResultWriter("yaml", out), nullptr);
  EXPECT_EQ(MakeResultWriter("", out), nullptr);
  EXPECT_EQ(MakeResultWriter("JSON", out), nullptr);
}

TEST(JsonWriterTest, OneExactObjectPerResult) {
  std::vector<ProbeResult> results = AllResults();
  std::string text = Render("json", MakeRecord(true), {results[0], results[4], results[8]});
  EXPECT_EQ(text,
            "{\"scan\":\"0123456789abcdef\",\"address\":\"198.18.0.5\",\"hostname\":\"web.example\",\"port\":22,"
            "\"state\":\"open\",\"service\":\"ssh\",\"rtt_us\":120,\"attempts\":1,"
            "\"time\":\"2026-11-25T10:08:37.123456Z\"}\n"
            "{\"scan\":\"0123456789abcdef\",\"address\":\"198.18.0.9\",\"port\":80,\"state\":\"unreachable\","
            "\"service\":\"http\",\"rtt_us\":800,\"attempts\":1,\"time\":\"2026-11-25T10:08:37.323456Z\"}\n"
            "{\"scan\":\"0123456789abcdef\",\"address\":\"2001:db8::1\",\"port\":443,\"state\":\"open\","
            "\"service\":\"https\",\"rtt_us\":2500,\"attempts\":2,\"time\":\"2026-11-25T10:08:37.523456Z\"}\n");
}

TEST(JsonWriterTest, NothingButResults) {
  EXPECT_EQ(Render("json", MakeRecord(true), {}), "");
}

TEST(JsonWriterTest, EscapesHostnames) {
  ScanRecord rec = MakeRecord(false);
  rec.spec.targets.names = {{V4("198.18.0.5"), "a\"b\\c\x01\n\xff"}};
  std::string text = Render("json", rec, {AllResults()[0]});
  EXPECT_NE(text.find(R"("hostname":"a\"b\\c\u0001\n)" "\xEF\xBF\xBD" R"(",)"), std::string::npos) << text;
}

TEST(CsvWriterTest, HeaderAndRows) {
  std::vector<ProbeResult> results = AllResults();
  std::string text = Render("csv", MakeRecord(true), {results[0], results[2], results[8]});
  EXPECT_EQ(text,
            "scan,address,hostname,port,state,service,rtt_us,attempts,time,banner,tls_verdict,cert_subject,cert_issuer,cert_not_after\n"
            "0123456789abcdef,198.18.0.5,web.example,22,open,ssh,120,1,2026-11-25T10:08:37.123456Z,,,,,\n"
            "0123456789abcdef,198.18.0.5,web.example,443,filtered,https,0,3,2026-11-25T10:08:38.623456Z,,,,,\n"
            "0123456789abcdef,2001:db8::1,,443,open,https,2500,2,2026-11-25T10:08:37.523456Z,,,,,\n");
}

TEST(CsvWriterTest, QuotesFieldsThatNeedIt) {
  ScanRecord rec = MakeRecord(false);
  rec.spec.targets.names = {{V4("198.18.0.5"), "odd,\"name\""}, {V4("198.18.0.5"), "second.example"}};
  std::string text = Render("csv", rec, {AllResults()[0]});
  EXPECT_EQ(text,
            "scan,address,hostname,port,state,service,rtt_us,attempts,time,banner,tls_verdict,cert_subject,cert_issuer,cert_not_after\n"
            "0123456789abcdef,198.18.0.5,\"odd,\"\"name\"\"\",22,open,ssh,120,1,2026-11-25T10:08:37.123456Z,,,,,\n");
}

TEST(TableWriterTest, ListsOpenPortsAndCountsTheRest) {
  // 198.18.0.9 has nothing open: no block at all.
  EXPECT_EQ(Render("table", MakeRecord(true), AllResults()),
            "ndo scan report for 198.18.0.5 (web.example)\n"
            "Not shown: 1 closed port, 1 filtered port\n"
            "PORT   STATE SERVICE RTT\n"
            "22/tcp open  ssh     0.12ms\n"
            "\n"
            "ndo scan report for 2001:db8::1\n"
            "Not shown: 1 closed port, 1 filtered port\n"
            "PORT    STATE SERVICE RTT\n"
            "443/tcp open  https   2.50ms\n");
}

TEST(TableWriterTest, ShowsEveryStateOnRequest) {
  std::vector<ProbeResult> results = AllResults();
  WriterOptions options;
  options.table_show_all = true;
  EXPECT_EQ(Render("table", MakeRecord(true), {results[0], results[1], results[2], results[3], results[4], results[5]}, options),
            "ndo scan report for 198.18.0.5 (web.example)\n"
            "PORT    STATE    SERVICE RTT\n"
            "22/tcp  open     ssh     0.12ms\n"
            "80/tcp  closed   http    0.30ms\n"
            "443/tcp filtered https   -\n"
            "\n"
            "ndo scan report for 198.18.0.9\n"
            "PORT    STATE       SERVICE RTT\n"
            "22/tcp  filtered    ssh     -\n"
            "80/tcp  unreachable http    0.80ms\n"
            "443/tcp filtered    https   -\n");
}

TEST(TableWriterTest, OpenOnlyScanSaysNothingOfTheRest) {
  EXPECT_EQ(Render("table", MakeRecord(false), OpenOnly()),
            "ndo scan report for 198.18.0.5 (web.example)\n"
            "PORT   STATE SERVICE RTT\n"
            "22/tcp open  ssh     0.12ms\n"
            "\n"
            "ndo scan report for 2001:db8::1\n"
            "PORT    STATE SERVICE RTT\n"
            "443/tcp open  https   2.50ms\n");
}

TEST(TableWriterTest, InterruptedStoreAllScanCountsUnscannedPorts) {
  EXPECT_EQ(Render("table", MakeRecord(true), {AllResults()[8]}),
            "ndo scan report for 2001:db8::1\n"
            "Not shown: 2 unscanned ports\n"
            "PORT    STATE SERVICE RTT\n"
            "443/tcp open  https   2.50ms\n");
}

TEST(XmlWriterTest, NmapShape) {
  std::string xml = Render("xml", MakeRecord(true), AllResults());
  EXPECT_EQ(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n", 0), 0u) << xml;
  EXPECT_NE(xml.find("<!-- ndo 0.1.0 scan 0123456789abcdef initiated 2026-11-25T10:08:36.123456Z -->"),
            std::string::npos);
  EXPECT_NE(xml.find("<nmaprun scanner=\"nmap\" args=\"ndo scan -p 22,80,443 198.18.0.0/28 2001:db8::1-2 web.example "
                     "--exclude &apos;a&amp;b &lt;c&gt; &quot;d&quot; &apos;\\&apos;&apos;e&apos;\\&apos;&apos;&apos;\" "
                     "start=\"1795601316\" startstr=\"Wed Nov 25 10:08:36 2026\" version=\"0.1.0\" "
                     "xmloutputversion=\"1.05\">"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"3\" services=\"22,80,443\"/>"),
            std::string::npos);
  EXPECT_NE(xml.find("<host starttime=\"1795601317\" endtime=\"1795601318\"><status state=\"up\" reason=\"user-set\" "
                     "reason_ttl=\"0\"/>\n<address addr=\"198.18.0.5\" addrtype=\"ipv4\"/>\n<hostnames>\n"
                     "<hostname name=\"web.example\" type=\"user\"/>\n</hostnames>\n"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"0\"/>"
                     "<service name=\"ssh\" method=\"table\" conf=\"3\"/></port>"),
            std::string::npos);
  EXPECT_NE(xml.find("portid=\"80\"><state state=\"filtered\" reason=\"host-unreach\""), std::string::npos);
  EXPECT_NE(xml.find("<address addr=\"2001:db8::1\" addrtype=\"ipv6\"/>"), std::string::npos);
  // srtt over 1800 then 2500: 1800 + (2500-1800)/8; the timeout is floored at min_rtt (100 ms).
  EXPECT_NE(xml.find("<times srtt=\"1887\" rttvar=\"850\" to=\"100000\"/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<finished time=\"1795601320\" timestr=\"Wed Nov 25 10:08:40 2026\" summary=\"ndo done at Wed "
                     "Nov 25 10:08:40 2026; 18 IP addresses (3 hosts up) scanned in 4.32 seconds\" elapsed=\"4.32\" "
                     "exit=\"success\"/><hosts up=\"3\" down=\"0\" total=\"18\"/>"),
            std::string::npos)
      << xml;
  EXPECT_EQ(xml.find("<extraports"), std::string::npos);  // every port of every listed host is stored
  EXPECT_EQ(xml.substr(xml.size() - 11), "</nmaprun>\n");
}

TEST(XmlWriterTest, ExtraportsForPortsWithoutResults) {
  std::string open_only = Render("xml", MakeRecord(false), OpenOnly());
  EXPECT_NE(open_only.find("<ports><extraports state=\"closed|filtered\" count=\"2\">"), std::string::npos)
      << open_only;
  std::string interrupted = Render("xml", MakeRecord(true), OpenOnly());
  EXPECT_NE(interrupted.find("<ports><extraports state=\"filtered\" count=\"2\">"), std::string::npos) << interrupted;
}

// --- Checks with Nmap's own tools ------------------------------------------

bool HaveTool(const std::string& name) { return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0; }

// Exit status of a shell command, -1 if it did not exit normally.
int ExitStatus(const std::string& command) {
  int status = std::system(command.c_str());
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr const char* kNmapDtd = "/usr/share/nmap/nmap.dtd";

class NmapToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "ndo_xml_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) ExitStatus("rm -rf '" + dir_ + "'");
  }

  std::string WriteXml(const std::string& name, const ScanRecord& rec, const std::vector<ProbeResult>& results) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << Render("xml", rec, results);
    return path;
  }

  static bool CanValidate() { return HaveTool("xmllint") && access(kNmapDtd, R_OK) == 0; }

  void ExpectValid(const std::string& path) {
    EXPECT_EQ(ExitStatus("xmllint --noout --dtdvalid " + std::string(kNmapDtd) + " '" + path + "'"), 0) << ReadFile(path);
  }

  std::string dir_;
};

TEST_F(NmapToolsTest, ValidatesAgainstNmapDtd) {
  if (!CanValidate()) GTEST_SKIP() << "xmllint or nmap.dtd not installed";
  ExpectValid(WriteXml("all.xml", MakeRecord(true), AllResults()));
  ExpectValid(WriteXml("open.xml", MakeRecord(false), OpenOnly()));
  ExpectValid(WriteXml("empty.xml", MakeRecord(false), {}));
}

TEST_F(NmapToolsTest, ValidatesWithHostileText) {
  if (!CanValidate()) GTEST_SKIP() << "xmllint or nmap.dtd not installed";
  ScanRecord rec = MakeRecord(true);
  rec.spec.targets.names = {{V4("198.18.0.5"), "x\"&<y>\x01\t\xff\xc0"}, {V4("198.18.0.5"), "two.example"}};
  rec.spec.arguments.push_back("--bad=\x02\xfe\r\n-->");
  rec.state = ScanState::kFailed;
  rec.error = "disk <full> & \"gone\"";
  std::string path = WriteXml("hostile.xml", rec, AllResults());
  EXPECT_NE(ReadFile(path).find("exit=\"error\" errormsg=\"disk &lt;full&gt; &amp; &quot;gone&quot;\""),
            std::string::npos);
  ExpectValid(path);
}

TEST_F(NmapToolsTest, NdiffReadsItAndSeesChanges) {
  if (!HaveTool("ndiff")) GTEST_SKIP() << "ndiff not installed";
  std::string a = WriteXml("a.xml", MakeRecord(true), AllResults());
  std::string same = WriteXml("same.xml", MakeRecord(true), AllResults());
  EXPECT_EQ(ExitStatus("ndiff '" + a + "' '" + a + "' >/dev/null 2>&1"), 0);
  EXPECT_EQ(ExitStatus("ndiff '" + a + "' '" + same + "' >/dev/null 2>&1"), 0);

  std::vector<ProbeResult> changed = AllResults();
  changed[1].state = PortState::kOpen;  // 198.18.0.5:80 closed -> open
  std::string b = WriteXml("b.xml", MakeRecord(true), changed);
  std::string diff = dir_ + "/diff.txt";
  EXPECT_EQ(ExitStatus("ndiff '" + a + "' '" + b + "' >'" + diff + "' 2>&1"), 1);
  std::string text = ReadFile(diff);
  EXPECT_NE(text.find("web.example (198.18.0.5)"), std::string::npos) << text;
  EXPECT_NE(text.find("-80/tcp closed http"), std::string::npos) << text;
  EXPECT_NE(text.find("+80/tcp open   http"), std::string::npos) << text;

  // The open-only form, with extraports, reads too.
  std::string open = WriteXml("open.xml", MakeRecord(false), OpenOnly());
  EXPECT_EQ(ExitStatus("ndiff '" + open + "' '" + open + "' >'" + diff + "' 2>&1"), 0) << ReadFile(diff);
}

}  // namespace
}  // namespace ndo
