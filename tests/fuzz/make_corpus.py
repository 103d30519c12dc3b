#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: tests/fuzz/corpus/<target>/.

A few small valid inputs per target (and a few near-misses), so the fuzzers
start from the formats' real shapes. Cap'n Proto records are written from
their text form with `capnp encode` (Debian package capnproto), straight
from the schemas in src/mesh; sealed datagrams are sealed here with the
fuzz target's fixed key and cluster id, following the layout documented in
src/mesh/security/gossip_seal.h (needs python3-cryptography; skipped without it).
Deterministic: rerunning it rewrites the same files.

    tests/fuzz/make_corpus.py            # from the repository's top directory
"""
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
MESH = os.path.join(ROOT, "src", "mesh")


def capnp(schema, struct_name, text, packed=False):
    cmd = ["capnp", "encode"] + (["--packed"] if packed else []) + [os.path.join(MESH, schema), struct_name]
    return subprocess.run(cmd, input=text.encode(), check=True, capture_output=True).stdout


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def info(hi, lo, name, vantage, address, priority=100, epoch=0):
    return (f'(idHi = {hi}, idLo = {lo}, name = "{name}", vantage = "{vantage}", address = "{address}", '
            f'priority = {priority}, epoch = {epoch})')


def update(kind, inf, incarnation=1, frm=(0, 0)):
    return f"(kind = {kind}, info = {inf}, incarnation = {incarnation}, fromHi = {frm[0]}, fromLo = {frm[1]})"


A = info(1, 2, "a", "dmz", "192.0.2.10:7946", 10, 3)
B = info(3, 4, "b", "wifi", "[2001:db8::7]:7946")
C = info(5, 6, "c-node", "lab", "127.0.0.3:7946", 200)


def wire_messages():
    return {
        "ping": f'(type = ping, senderHi = 1, senderLo = 2, seq = 7, targetHi = 3, targetLo = 4, '
                f'updates = [{update("alive", A, 5)}])',
        "ack": '(type = ack, senderHi = 3, senderLo = 4, seq = 7, targetHi = 3, targetLo = 4)',
        "ping_req": f'(type = pingReq, senderHi = 1, senderLo = 2, seq = 9, targetHi = 5, targetLo = 6, '
                    f'targetAddress = "127.0.0.3:7946", updates = [{update("suspect", C, 2, (1, 2))}])',
        "gossip": f'(type = gossip, senderHi = 1, senderLo = 2, updates = [{update("alive", A)}, '
                  f'{update("dead", B, 4, (5, 6))}, {update("left", C, 9)}])',
    }


def main():
    try:
        subprocess.run(["capnp", "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        sys.exit("make_corpus.py: needs the capnp tool (Debian package capnproto)")

    msgs = wire_messages()
    for name, text in msgs.items():
        write("fuzz_wire_message", name, capnp("wire.capnp", "Message", text, packed=True))
    write("fuzz_wire_message", "nack_empty", capnp("wire.capnp", "Message", "(type = nack, senderHi = 9)", packed=True))

    write("fuzz_push_pull", "join", capnp("wire.capnp", "PushPull",
                                          f'(senderHi = 1, senderLo = 2, join = true, state = [{update("alive", A)}])'))
    write("fuzz_push_pull", "state3", capnp("wire.capnp", "PushPull",
                                            f'(senderHi = 3, senderLo = 4, state = [{update("alive", A)}, '
                                            f'{update("suspect", B, 2, (5, 6))}, {update("dead", C, 7)}])'))
    write("fuzz_push_pull", "empty_state", capnp("wire.capnp", "PushPull", "(senderHi = 3, senderLo = 4)"))

    shard = ('(holderHi = 1, holderLo = 2, epoch = 3, counter = 4, expiresMs = 1700000020000)')
    done = ('(holderHi = 1, holderLo = 2, epoch = 3, counter = 5, expiresMs = 1700000020000, done = true, '
            'results = 7, digest = 0x"' + "ab" * 32 + '", holders = [(idHi = 1, idLo = 2), (idHi = 3, idLo = 4)])')
    scan_id = '0x"0102030405060708"'
    for name, text in [
            ("control", f'(id = {scan_id}, hasControl = true, control = paused, '
                        'controlStamp = (wallMs = 1700000000005, logical = 1, nodeHi = 1, nodeLo = 2))'),
            ("grant", f'(id = {scan_id}, shards = [(pool = 1, shard = 3, state = {shard})])'),
            ("done_two", f'(id = {scan_id}, shards = [(pool = 0, shard = 0, state = {done}), '
                         f'(pool = 1, shard = 2, state = {shard})])'),
            ("outside", f'(id = {scan_id}, shards = [(pool = 0, shard = 9, state = {shard})])')]:
        write("fuzz_scan_delta", name, capnp("pool_state.capnp", "ScanDelta", text))

    for name, n in [("small", 16), ("max", 64 << 20), ("over_max", (64 << 20) + 1), ("all_ones", 0xffffffff)]:
        write("fuzz_frame_length", name, struct.pack(">I", n))
    write("fuzz_frame_length", "short", b"\x00\x01")
    write("fuzz_frame_length", "size_t_huge", struct.pack("<Q", 1 << 40))

    for name, text in [("members", "(members = void)"), ("leave", "(leave = void)"), ("status", "(status = void)"),
                       ("create_token", '(createToken = (ttlSeconds = 86400, maxUses = 3, vantage = "wifi"))'),
                       ("remove_member", '(removeMember = "b")'), ("rotate_keys", "(rotateKeys = void)")]:
        write("fuzz_control_request", name, capnp("control.capnp", "ControlRequest", text))

    def cmember(hi, lo, name, state, inc):
        return (f'(idHi = {hi}, idLo = {lo}, name = "{name}", vantage = "dmz", address = "127.0.0.{lo}:7946", '
                f'state = {state}, incarnation = {inc}, priority = 100)')
    for name, text in [
        ("status", f"(self = {cmember(1, 2, 'a', 0, 4)}, coordinatorHi = 1, coordinatorLo = 2, epoch = 3, "
                   f"joined = true, localHealth = 1, aliveCount = 3)"),
        ("members", f"(self = {cmember(1, 2, 'a', 0, 4)}, members = [{cmember(3, 4, 'b', 1, 2)}, "
                    f"{cmember(5, 6, 'c', 3, 9)}], joined = true, aliveCount = 2)"),
        ("error", '(error = "not a member yet")'),
        ("token", '(token = "ndo1.0123456789abcdef.0123456789abcdef0123456789abcdef", '
                  'caHash = "sha256:00ff", expiresUnix = 1700086400, message = "token created")'),
    ]:
        write("fuzz_control_response", name, capnp("control.capnp", "ControlResponse", text))

    def known(hi, lo, name, state, inc):
        return (f'(idHi = {hi}, idLo = {lo}, name = "{name}", vantage = "dmz", address = "127.0.0.{lo}:7946", '
                f'priority = 100, epoch = 1, incarnation = {inc}, state = {state})')
    write("fuzz_node_state", "two_members", capnp("node_state.capnp", "NodeState",
          f'(self = {known(1, 2, "a", 0, 5)}, listen = "127.0.0.2:7946", maxEpochSeen = 4, '
          f'members = [{known(3, 4, "b", 0, 1)}, {known(5, 6, "c", 3, 2)}], savedAtUs = 1700000000000000)'))
    write("fuzz_node_state", "alone", capnp("node_state.capnp", "NodeState",
          f'(self = {known(1, 2, "a", 0, 0)}, listen = "[::1]:7946")'))

    for name, text in [("v4", "192.0.2.7"), ("mixed", "192.0.2.0/24,10.0.0.5-10.0.1.20 10.0.2.10-20"),
                       ("v6", "2001:db8::/112 2001:db8::1 2001:db8::5-2001:db8::9"),
                       ("hostname", "scanme.example 192.0.2.1"), ("mapped_all", "::ffff:1.2.3.4 0.0.0.0/0"),
                       ("bad", "10.0.0.300 2001:db8::/64")]:
        write("fuzz_target_spec", name, text)

    for name, text in [("list", "22,80,443,8000-8100"), ("all", "-"), ("open_low", "-100"), ("open_high", "60000-"),
                       ("spaces", " 1, 2 ,3-5"), ("bad", "0,65536")]:
        write("fuzz_port_list", name, text)

    write("fuzz_join_token", "token", "ndo1.0123456789abcdef.0123456789abcdef0123456789abcdef")
    write("fuzz_join_token", "upper_spaced", "  ndo1.0123456789ABCDEF.0123456789ABCDEF0123456789ABCDEF\n")
    write("fuzz_join_token", "upper_prefix", "NDO1.0123456789abcdef.0123456789abcdef0123456789abcdef")
    write("fuzz_join_token", "short_secret", "ndo1.0123456789abcdef.0123456789abcdef")

    for name, text in [
        ("fresh", '(id = "0123456789abcdef", secret = "0123456789abcdef0123456789abcdef", createdUnix = 1700000000, '
                  'expiresUnix = 1700086400, maxUses = 1, vantage = "wifi")'),
        ("used", '(id = "fedcba9876543210", secret = "ffffffffffffffffffffffffffffffff", createdUnix = 1700000000, '
                 'expiresUnix = 1700086400, maxUses = 0, uses = 2, '
                 'usedBy = ["00000000000000010000000000000002", "00000000000000030000000000000004"], revoked = true)'),
    ]:
        write("fuzz_token_record", name, capnp("security.capnp", "TokenRecord", text))

    k1, k2 = "a1" * 32, "b2" * 32
    write("fuzz_keyring", "one", capnp("security.capnp", "Keyring",
                                       f'(keys = [(id = 1, key = 0x"{k1}", createdUnix = 1700000001)], primary = 1)'))
    write("fuzz_keyring", "two", capnp("security.capnp", "Keyring",
                                       f'(keys = [(id = 1, key = 0x"{k1}", createdUnix = 1700000001), '
                                       f'(id = 2, key = 0x"{k2}", createdUnix = 1700000002)], primary = 2)'))
    write("fuzz_keyring", "short_key", capnp("security.capnp", "Keyring",
                                             '(keys = [(id = 7, key = 0x"a1a1")], primary = 7)'))

    # fuzz_sealed_datagram: a mode byte, then (odd modes, sealed by the target
    # itself) counter | position | mask | plaintext, or (even) the datagram.
    plain = capnp("wire.capnp", "Message", msgs["ping"], packed=True)
    for name, mode, mask in [("seal_key1", 1, 0), ("seal_key2", 3, 0), ("seal_flip", 1, 0x40),
                             ("seal_other_cluster", 5, 0), ("seal_unknown_key", 7, 0), ("seal_truncate", 9, 0)]:
        write("fuzz_sealed_datagram", name, bytes([mode]) + struct.pack(">QHB", 1700000000000000, 30, mask) + plain)
    # Version 2: version | key id | sender | counter | epoch; nonce = 4 zero
    # bytes | counter; the key is the sender's subkey (HKDF-SHA256 of key 1,
    # no salt, info = label | cluster | key id | sender | epoch).
    cluster = struct.pack(">QQ", 0x0123456789abcdef, 0xfedcba9876543210)
    sender = struct.pack(">QQ", 0x3333333333333333, 0x4444444444444444)
    counter, epoch = 42, 0x0102030405060708
    header = struct.pack(">BI", 2, 1) + sender + struct.pack(">QQ", counter, epoch)
    write("fuzz_sealed_datagram", "raw_forged", b"\x00" + header + plain + bytes(16))
    write("fuzz_sealed_datagram", "raw_version1", b"\x00" + struct.pack(">BI", 1, 1) + sender +
          struct.pack(">Q", counter) + bytes(range(12)) + plain + bytes(16))
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError:
        print("make_corpus.py: python3-cryptography missing: no genuinely sealed raw seed", file=sys.stderr)
    else:
        # The target's receiver: cluster 0123456789abcdef:fedcba9876543210, key 1 = 32 x 0xa1.
        info = b"ndo-gossip-subkey-v2" + cluster + struct.pack(">I", 1) + sender + struct.pack(">Q", epoch)
        subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(bytes([0xa1]) * 32)
        aad = b"ndo-gossip-v2" + cluster + header
        sealed = AESGCM(subkey).encrypt(bytes(4) + struct.pack(">Q", counter), plain, aad)
        write("fuzz_sealed_datagram", "raw_genuine", b"\x00" + header + sealed)

if __name__ == "__main__":
    main()
