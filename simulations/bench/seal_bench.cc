// seal_bench: the CPU cost of sealed gossip (mesh/security/gossip_seal.h),
// one thread, through the public AeadSeal API only, so the same program
// measures any version of the seal. Cases, each per datagram:
//   seal       a sender seals (its steady state)
//   open       a receiver opens datagrams of one known sender, in order
//   seal+open  the two
//   first      the first datagram of each of many new senders (no cached
//              state for the sender: windows, and subkeys where there are)
//   forged     a datagram of a known sender with its tag's last byte flipped
//              (what an outsider without the key costs a node)
//   forged+    the same with header byte 30 flipped too (from version 2 on,
//              the epoch: a subkey to derive for every such datagram)
// Usage: seal_bench [datagrams=200000] [plaintext bytes=180]
// (180 and 516 bytes are the mean sealed-datagram sizes of meshsim's detect
// and falsepos runs at N=1000, docs/mesh.md.)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "mesh/security/gossip_seal.h"

using namespace ndo;
using namespace ndo::mesh;
using Clock = std::chrono::steady_clock;

namespace {

constexpr ClusterId kCluster{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
constexpr NodeId kSender{0x1111111111111111ULL, 0xaaaaaaaaaaaaaaaaULL};
constexpr NodeId kReceiver{0x2222222222222222ULL, 0xbbbbbbbbbbbbbbbbULL};

void Die(const char* what, const Status& s) {
  std::fprintf(stderr, "seal_bench: %s: %s\n", what, s.message().c_str());
  std::exit(1);
}

double NanosEach(Clock::time_point t0, size_t n) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  const size_t bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 180;
  auto ring = NewKeyring(1700000000);
  if (!ring.ok()) Die("keyring", ring.status());
  const std::string plain(bytes, 'p');

  AeadSeal sender(kCluster, kSender, *ring, 1);
  std::vector<std::string> wires;
  wires.reserve(n);
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    auto w = sender.Seal(plain);
    if (!w.ok()) Die("seal", w.status());
    wires.push_back(std::move(*w));
  }
  const double seal_ns = NanosEach(t0, n);

  AeadSeal receiver(kCluster, kReceiver, *ring, 1);
  t0 = Clock::now();
  for (const std::string& w : wires)
    if (auto o = receiver.Open(w); !o.ok()) Die("open", o.status());
  const double open_ns = NanosEach(t0, n);

  // A forged copy of each: refused at the tag, nothing recorded.
  for (std::string& w : wires) w.back() = static_cast<char>(w.back() ^ 1);
  t0 = Clock::now();
  for (const std::string& w : wires)
    if (receiver.Open(w).ok()) Die("forged", Status::Corruption("a forged datagram opened"));
  const double forged_ns = NanosEach(t0, n);
  for (std::string& w : wires) w[30] = static_cast<char>(w[30] ^ 0x5a);
  t0 = Clock::now();
  for (const std::string& w : wires)
    if (receiver.Open(w).ok()) Die("forged", Status::Corruption("a forged datagram opened"));
  const double forged_epoch_ns = NanosEach(t0, n);

  // First contact: one datagram from each of m new senders.
  const size_t m = std::min<size_t>(n / 10, 20000);
  std::vector<std::string> firsts;
  for (size_t i = 0; i < m; ++i) {
    AeadSeal s(kCluster, NodeId{0x77, i + 1}, *ring, 1);
    auto w = s.Seal(plain);
    if (!w.ok()) Die("seal", w.status());
    firsts.push_back(std::move(*w));
  }
  AeadSeal fresh(kCluster, kReceiver, *ring, 1);
  t0 = Clock::now();
  for (const std::string& w : firsts)
    if (auto o = fresh.Open(w); !o.ok()) Die("first open", o.status());
  const double first_ns = NanosEach(t0, m);

  std::printf("seal_bench: %zu datagrams of %zu bytes (sealed %zu), seal version %u\n", n, bytes,
              bytes + sender.Overhead(), static_cast<unsigned>(kSealVersion));
  std::printf("  seal       %7.0f ns\n", seal_ns);
  std::printf("  open       %7.0f ns\n", open_ns);
  std::printf("  seal+open  %7.0f ns  (%.0f datagrams/s on one core)\n", seal_ns + open_ns,
              1e9 / (seal_ns + open_ns));
  std::printf("  first      %7.0f ns  (first datagram of each of %zu new senders)\n", first_ns, m);
  std::printf("  forged     %7.0f ns  (tag flipped, known sender)\n", forged_ns);
  std::printf("  forged+    %7.0f ns  (and header byte 30 flipped)\n", forged_epoch_ns);
  return 0;
}
