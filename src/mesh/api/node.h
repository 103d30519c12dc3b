// The agent, as the CLI starts it: a mesh node in production, the membership
// core (mesh/membership/membership.h) driven
// by real sockets on one Asio thread, with its identity and members kept in
// the data directory's store, logs on standard error, and a control socket
// for `ndo members` and `ndo leave`.
//
// * One UDP socket and one stream listener, both bound to the listen
//   address (one port). Datagrams are size-checked, opened by the
//   DatagramSeal, decoded, and handed to the core; anything malformed is
//   dropped with its reason logged (rate-limited) and changes nothing.
// * Push-pull exchanges run over streams from the StreamTransport (plain TCP
//   by default), one request frame and one reply frame per stream, each
//   stream bounded in time and size, inbound streams bounded in number, and
//   the bodies all streams hold bounded by one memory budget.
// * One timer, re-armed after every input to the earliest of the core's
//   NextWakeup(), the next state save and the next join attempt.
// * The state (identity, incarnation, highest epoch seen, known members) is
//   saved at start, at most every `save_interval` after changes, and on exit;
//   a new incarnation or epoch is saved (synced) before anything carries it.
// * A node alone for 10 s (everyone else dead or reaped) that knows seeds or
//   saved members goes back to joining through them, with backoff.
// * SIGINT/SIGTERM or a control `leave`: the node leaves gracefully (the
//   core tells the others), keeps serving for `leave_grace` so the news
//   spreads, saves, and returns. A second signal ends it at once. The
//   control socket file is removed last, after the store is closed.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mesh/membership/address.h"
#include "mesh/security/cluster_files.h"
#include "mesh/membership/membership.h"
#include "mesh/agent/node_identity.h"
#include "mesh/transport/transport.h"
#include "mesh/work/worker.h"
#include "base/status.h"

namespace ndo::mesh {

struct MeshNodeOptions {
  std::string data_dir;  // its parent must exist; created (mode 0700) if missing
  IdentityRequest identity;
  std::vector<HostPort> seeds;  // `ndo join`: tried with backoff until a join succeeds
  MembershipConfig membership;
  StreamLimits streams;
  WorkConfig work;  // distributed scans: leases, the dead man's switch
  std::chrono::steady_clock::duration save_interval = std::chrono::seconds(2);
  std::chrono::steady_clock::duration leave_grace = std::chrono::seconds(2);
  std::chrono::steady_clock::duration join_retry_first = std::chrono::seconds(1);
  std::chrono::steady_clock::duration join_retry_max = std::chrono::seconds(30);
  // A secured cluster (mesh/security/cluster_files.h): datagrams sealed with its
  // keyring, streams over mutual TLS, the node id its certificate names,
  // enrolment of new nodes served when it holds the CA key, and tokens
  // issued on request. Null: an unsecured mesh (`--insecure`, labs only).
  std::shared_ptr<const ClusterMaterial> cluster;
  // The security seam (transport.h), for tests: when set, these replace
  // what `cluster` (or its absence) would choose.
  std::shared_ptr<DatagramSeal> seal;
  StreamTransportFactory stream_transport;
};

// Runs the node in the foreground until it has left (signal or control
// request). Ok after a graceful leave; InvalidArgument for bad options (bad
// data dir, missing --listen/--vantage on first start); Unavailable when
// another agent holds the data dir; IoError when a socket cannot be bound.
// No exception escapes.
Status RunMeshNode(const MeshNodeOptions& options);

// Checks a data directory before anything is created: its parent must exist,
// and the control socket path must fit a Unix socket address.
Status CheckDataDir(const std::string& data_dir);

}  // namespace ndo::mesh
