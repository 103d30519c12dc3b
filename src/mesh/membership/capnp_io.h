// Cap'n Proto to and from bytes for ndo_mesh's records and messages, in the
// one way every decoder of untrusted bytes must do it: a whole number of
// words, a size limit checked first, traversal bounded by the input's size
// (no amplification through aliased pointers), a nesting limit, and kj
// exceptions (how Cap'n Proto reports malformed input) turned into error
// values that never leave the module.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ndo::mesh {

// Runs fn, which returns a Status, and turns anything it throws (Cap'n Proto
// reports malformed input with kj exceptions) into an error value made by
// `error` ("what: reason"). For decoders that read their own way (packed,
// wiping buffers) rather than through CapnpDecode.
template <typename Fn>
Status CapnpGuarded(Status (*error)(std::string), const char* what, Fn&& fn) {
  Status status;
  try {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] { status = fn(); })) {
      return error(std::string(what) + ": " + e->getDescription().cStr());
    }
  } catch (const std::exception& e) {
    return error(std::string(what) + ": " + e.what());
  } catch (...) {
    return error(std::string(what) + ": unknown exception");
  }
  return status;
}

// The flat (unpacked) encoding of a built message.
inline std::string CapnpToBytes(capnp::MessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// A text field with every byte it holds: cStr() would stop at an embedded
// NUL and hide it from the checks that refuse one.
inline std::string CapnpText(capnp::Text::Reader t) { return std::string(t.begin(), t.size()); }

// Builds a message with `build(root builder)` (which may throw kj
// exceptions on impossible sizes) and returns its bytes, at most max_bytes.
template <typename Root, typename Build>
Result<std::string> CapnpEncode(const char* what, size_t max_bytes, Build&& build) {
  std::string out;
  Status status;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::MallocMessageBuilder msg;
    status = build(msg.initRoot<Root>());
    if (status.ok()) out = CapnpToBytes(msg);
  })) {
    return Status::InvalidArgument(std::string("encoding ") + what + ": " + e->getDescription().cStr());
  }
  if (!status.ok()) return status;
  if (out.size() > max_bytes)
    return Status::InvalidArgument(std::string(what) + " too long (" + std::to_string(out.size()) + " bytes)");
  return out;
}

// Runs `read(root reader)` (which returns a Status) over `bytes`.
template <typename Root, typename Read>
Status CapnpDecode(std::string_view bytes, const char* what, size_t max_bytes, Read&& read) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0)
    return Status::Corruption(std::string(what) + " is not a whole number of 8-byte words");
  if (bytes.size() > max_bytes)
    return Status::Corruption(std::string(what) + " too long (" + std::to_string(bytes.size()) + " bytes)");
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  Status status;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = words.size() * 2;
    opts.nestingLimit = 8;
    capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
    status = read(reader.getRoot<Root>());
  })) {
    return Status::Corruption(std::string("malformed ") + what + ": " + e->getDescription().cStr());
  }
  return status;
}

}  // namespace ndo::mesh
