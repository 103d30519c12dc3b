#include "cli/scan_vantages.h"

#include <set>

namespace ndo {

std::vector<std::string> DefaultScanVantages(const mesh::ControlMember& self,
                                             const std::vector<mesh::ControlMember>& members) {
  std::set<std::string> vantages;
  if (!self.vantage.empty()) vantages.insert(self.vantage);
  for (const auto& m : members)
    if (!m.vantage.empty()) vantages.insert(m.vantage);
  return {vantages.begin(), vantages.end()};
}

}  // namespace ndo
