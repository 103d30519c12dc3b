// Output formats, each a ResultWriter registered by name (like ZMap's output
// modules): table, json (JSON Lines), csv, xml (Nmap-compatible).
//
// Contract: Begin once, then Write for each stored result in (address, port)
// order, with its service evidence (banner, TLS) when there is any, then End
// once. A writer only formats; it never touches the store.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "scan/probe_result.h"
#include "scan/service/evidence.h"
#include "store/scan_record.h"

namespace ndo {

struct WriterOptions {
  // The table lists open ports only unless this is set; machine formats
  // always write every stored result.
  bool table_show_all = false;
};

class ResultWriter {
 public:
  virtual ~ResultWriter() = default;
  virtual void Begin(const ScanRecord& scan) = 0;
  virtual void Write(const ProbeResult& result, const ServiceEvidence* evidence) = 0;
  virtual void End(const ScanRecord& scan) = 0;
};

// nullptr for an unknown format name.
std::unique_ptr<ResultWriter> MakeResultWriter(std::string_view format, std::ostream& out, WriterOptions options = {});
// The names MakeResultWriter knows, for --help and error messages.
const std::vector<std::string>& ResultFormats();

// Formats Unix microseconds as RFC 3339 UTC ("2026-11-25T10:08:36.123456Z").
std::string FormatTimestamp(int64_t unix_us);

// The service of a port: what its banner or handshake revealed, else Nmap's
// name for the port number.
std::string ServiceLabel(uint16_t port, const ServiceEvidence* evidence);
// "CN=www.example.org, O=Example, OU=Web" (empty parts left out).
std::string DistinguishedName(const std::string& cn, const std::string& o, const std::string& ou);

}  // namespace ndo
