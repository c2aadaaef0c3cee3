/**
 * Our DHT nodes and a libtorrent 2.0 DHT node (Debian's python3-libtorrent) on loopback, both directions:
 * libtorrent stores what our node announces and answers our lookups; our nodes store what libtorrent announces and
 * answer its lookups. Settings from PEERS.md ("DHT on loopback"), with no bootstrap routers (no traffic leaves
 * 127.0.0.1).
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Krpc from "../../src/dht/Krpc.ts"
import * as Node from "../../src/dht/Node.ts"
import * as NodeId from "../../src/dht/NodeId.ts"
import * as Udp from "../../src/net/Udp.ts"
import { PYTHON, shouldRun } from "../support/libtorrentSeeder.ts"

const SCRIPT = `
import libtorrent as lt, sys, json, time, select, tempfile, shutil
s = {"listen_interfaces": "127.0.0.1:0", "enable_dht": True, "enable_lsd": False, "enable_upnp": False,
  "enable_natpmp": False, "enable_incoming_utp": False, "enable_outgoing_utp": False,
  "dht_bootstrap_nodes": "", "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
  "dht_ignore_dark_internet": False, "dht_enforce_node_id": False, "dht_prefer_verified_node_ids": False,
  "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification}
ses = lt.session(s)
for _ in range(100):
    if ses.listen_port() != 0: break
    time.sleep(0.05)
print(json.dumps({"event": "ready", "port": ses.listen_port()}), flush=True)
dirs = []
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.05)
    if r:
        line = sys.stdin.readline()
        if not line:
            for d in dirs: shutil.rmtree(d, ignore_errors=True)
            break
        cmd = json.loads(line)
        if cmd["op"] == "add_node": ses.add_dht_node((cmd["ip"], cmd["port"]))
        elif cmd["op"] == "announce":
            # The bindings take no dht_announce flags: add the torrent by magnet and announce its listen port.
            p = lt.parse_magnet_uri("magnet:?xt=urn:btih:" + cmd["ih"])
            p.save_path = tempfile.mkdtemp()
            dirs.append(p.save_path)
            ses.add_torrent(p).force_dht_announce()
        elif cmd["op"] == "announce_again":
            for h in ses.get_torrents():
                if str(h.info_hash()) == cmd["ih"]: h.force_dht_announce()
        elif cmd["op"] == "get_peers": ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(cmd["ih"])))
    for a in ses.pop_alerts():
        if isinstance(a, lt.dht_get_peers_reply_alert):
            peers = [[p[0], p[1]] for p in a.peers()]
            print(json.dumps({"event": "peers", "ih": str(a.info_hash), "peers": peers}), flush=True)
`

interface LtNode {
  readonly port: number
  readonly command: (cmd: Record<string, unknown>) => Effect.Effect<void>
  /** Peers from libtorrent's get_peers replies so far, by info-hash hex. */
  readonly peers: Map<string, Array<readonly [string, number]>>
}

const libtorrentNode = Effect.acquireRelease(
  Effect.gen(function*() {
    const child = spawn(PYTHON, ["-c", SCRIPT], { stdio: ["pipe", "pipe", "inherit"] })
    const ready = yield* Deferred.make<number, Error>()
    const peers = new Map<string, Array<readonly [string, number]>>()
    child.once("exit", (code) => Deferred.unsafeDone(ready, Effect.fail(new Error(`libtorrent exited (${code})`))))
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const msg = JSON.parse(line) as { event: string; port?: number; ih?: string; peers?: Array<[string, number]> }
      if (msg.event === "ready") Deferred.unsafeDone(ready, Effect.succeed(msg.port!))
      if (msg.event === "peers") peers.set(msg.ih!, [...(peers.get(msg.ih!) ?? []), ...msg.peers!])
    })
    const port = yield* Deferred.await(ready).pipe(Effect.timeout("10 seconds"), Effect.orDie)
    const node: LtNode = {
      port,
      peers,
      command: (cmd) => Effect.sync(() => void child.stdin!.write(`${JSON.stringify(cmd)}\n`))
    }
    return { child, node }
  }),
  ({ child }) =>
    Effect.sync(() => {
      child.stdin!.end()
      setTimeout(() => child.exitCode === null && child.kill("SIGKILL"), 2000).unref()
    })
).pipe(Effect.map(({ node }) => node))

const host = "127.0.0.1"
const fast = { address: host, queryTimeout: "2 seconds", queriesPerSecond: 1000, burst: 100 } as const
const poll = Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))

/** A raw get_peers to `port`: the values it answers with. */
const rawGetPeers = (port: number, infoHash: Uint8Array) =>
  Effect.gen(function*() {
    const sock = yield* Udp.make({ family: "udp4", address: host })
    const answer = yield* Deferred.make<Uint8Array>()
    sock.onMessage((d) => Deferred.unsafeDone(answer, Effect.succeed(new Uint8Array(d.data))))
    const q = { t: "zz", y: "q", q: "get_peers", a: { id: NodeId.random(), info_hash: infoHash } }
    yield* sock.send(Bencode.encode(q), port, host)
    const m = yield* Deferred.await(answer).pipe(Effect.timeout("2 seconds"))
    const decoded = Krpc.decode(m)
    return decoded._tag === "Right" && decoded.right._tag === "Response" ? decoded.right.values ?? [] : []
  }).pipe(Effect.scoped)

describe.runIf(shouldRun("DHT interop with libtorrent"))("Node interop with libtorrent", () => {
  it.scopedLive("libtorrent answers our queries and stores our announce", () =>
    Effect.gen(function*() {
      const lt = yield* libtorrentNode
      const a = yield* Node.make({ ...fast, bootstrap: [{ host, port: lt.port }] })
      const b = yield* Node.make({ ...fast, bootstrap: [{ host, port: lt.port }] })
      const ltId = yield* a.ping(host, lt.port)
      expect(ltId.length).toBe(20)
      yield* a.bootstrap
      yield* b.bootstrap
      const infoHash = NodeId.random()
      expect(yield* a.announce(infoHash, 7002)).toBeGreaterThanOrEqual(1)
      const stored = yield* rawGetPeers(lt.port, infoHash)
      expect(stored).toContainEqual({ ip: host, port: 7002 })
      // B's lookup reaches libtorrent (directly, or through A's view of the DHT).
      const found = yield* b.lookup(infoHash).pipe(Stream.runCollect)
      expect(Chunk.toReadonlyArray(found)).toContainEqual({ ip: host, port: 7002 })
    }), { timeout: 75_000 })

  it.scopedLive("our nodes answer libtorrent's lookups and store its announce", () =>
    Effect.gen(function*() {
      const lt = yield* libtorrentNode
      const a = yield* Node.make(fast)
      const b = yield* Node.make({ ...fast, bootstrap: [{ host, port: a.local.port }] })
      yield* b.bootstrap
      yield* lt.command({ op: "add_node", ip: host, port: a.local.port })
      // libtorrent announces: it stores nothing itself for its own announce, so it must reach our nodes.
      const fromLt = NodeId.random()
      yield* lt.command({ op: "announce", ih: Bytes.toHex(fromLt) })
      // libtorrent announces once; on a loaded machine that one may go out before it has taken in our node, so
      // ask again every 2 s until one of our nodes holds it.
      let polls = 0
      const storedBy = Effect.gen(function*() {
        const all = [...(yield* a.storedPeers(fromLt)), ...(yield* b.storedPeers(fromLt))]
        if (all.some((p) => p.port === lt.port)) return
        if (++polls % 20 === 0) yield* lt.command({ op: "announce_again", ih: Bytes.toHex(fromLt) })
        return yield* Effect.fail("not yet")
      })
      yield* storedBy.pipe(Effect.retry(poll))
      // Our announce lands on our nodes and libtorrent; libtorrent's lookup must find it through our nodes' answers.
      const fromUs = NodeId.random()
      expect(yield* b.announce(fromUs, 7004)).toBeGreaterThanOrEqual(1)
      yield* lt.command({ op: "get_peers", ih: Bytes.toHex(fromUs) })
      const ltFound = Effect.suspend(() =>
        (lt.peers.get(Bytes.toHex(fromUs)) ?? []).some(([, port]) => port === 7004)
          ? Effect.void
          : Effect.fail("not yet")
      )
      yield* ltFound.pipe(Effect.retry(poll))
    }), { timeout: 75_000 })
})
