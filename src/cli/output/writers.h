// Internals shared by the output formats: the factories the registry in
// result_writer.cc knows, and helpers more than one format needs.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/output/json.h"  // AppendJsonString
#include "cli/output/result_writer.h"
#include "scan/target_parser.h"

namespace ndo {

std::unique_ptr<ResultWriter> MakeTableWriter(std::ostream& out, WriterOptions options);
std::unique_ptr<ResultWriter> MakeJsonWriter(std::ostream& out, WriterOptions options);
std::unique_ptr<ResultWriter> MakeCsvWriter(std::ostream& out, WriterOptions options);
std::unique_ptr<ResultWriter> MakeXmlWriter(std::ostream& out, WriterOptions options);

// The hostnames the user typed, looked up by address. Several names may
// resolve to one address; all are kept, in the order they were given.
class HostnameIndex {
 public:
  HostnameIndex() = default;
  explicit HostnameIndex(const TargetSet& targets);

  // The first name given for the address, empty for addresses typed as literals.
  std::string_view First(IpAddress address) const;
  std::vector<std::string_view> All(IpAddress address) const;

 private:
  std::vector<std::pair<IpAddress, std::string>> entries_;  // sorted by address, stable
};

// One CSV field (RFC 4180 quoting where needed), appended to `out`.
void AppendCsvField(std::string& out, std::string_view field);

// The text with every byte sequence that is not valid UTF-8 replaced by U+FFFD:
// JSON and XML readers reject invalid UTF-8, and arguments may hold any bytes.
std::string ValidUtf8(std::string_view text);

}  // namespace ndo
