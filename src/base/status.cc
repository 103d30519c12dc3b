#include "base/status.h"

namespace ndo {

std::string Status::ToString() const {
  const char* kind = "OK";
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: kind = "invalid argument"; break;
    case Code::kNotFound: kind = "not found"; break;
    case Code::kIoError: kind = "I/O error"; break;
    case Code::kOutOfScope: kind = "out of scope"; break;
    case Code::kCorruption: kind = "corruption"; break;
    case Code::kUnavailable: kind = "unavailable"; break;
    case Code::kPermissionDenied: kind = "permission denied"; break;
  }
  return std::string(kind) + ": " + message_;
}

}  // namespace ndo
