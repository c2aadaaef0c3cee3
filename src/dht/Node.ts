/**
 * A BEP 5 DHT node on one IPv4 UDP socket, as a scoped Effect. It answers ping / find_node / get_peers /
 * announce_peer (storing announced peers per info-hash with expiry, bounded in torrents and peers), and runs
 * outgoing queries through one rate limiter and a transaction-id → Deferred dispatcher.
 *
 * - Inbound datagrams are decoded in the socket's synchronous handler (every one treated as hostile): responses
 *   complete their waiting query there (only when they come from the address the query went to); queries go
 *   through a dropping `Mailbox` to one server fiber, the single owner of the announced-peer store.
 * - The routing table is pure (RoutingTable.ts) and lives in a `Ref`; nodes are inserted when they query us
 *   (unless `ro`) or answer us. A `PingFirst` result pings the stale node in the background and retries the
 *   newcomer, so a dead node is replaced after two unanswered pings.
 * - Lookups are iterative (find_node / get_peers) in rounds of at most `alpha` parallel queries to the closest
 *   not-yet-asked candidates, until the k closest known have all been asked (or failed).
 * - Saving the table is the caller's: `snapshot` gives plain JSON; pass it back as `options.snapshot`.
 * - BEP 42: `externalIp` makes our id a BEP 42 id; other nodes' ids are not checked (we do not learn our own
 *   address from the `ip` field yet).
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Bytes from "../core/Bytes.ts"
import * as Destination from "../net/Destination.ts"
import * as Dns from "../net/Dns.ts"
import * as Udp from "../net/Udp.ts"
import { DhtError } from "./DhtError.ts"
import * as Krpc from "./Krpc.ts"
import * as NodeId from "./NodeId.ts"
import * as RoutingTable from "./RoutingTable.ts"
import * as Tokens from "./Tokens.ts"

export { DhtError } from "./DhtError.ts"

export interface HostPort {
  readonly host: string
  readonly port: number
}

export interface Options {
  /** Local address to bind (default all IPv4 interfaces). */
  readonly address?: string | undefined
  readonly port?: number | undefined
  /**
   * A socket to use instead of binding one (`address`/`port` are then ignored): the uTP socket's `udp` view, so the
   * DHT and uTP share one UDP port as libtorrent does. The node installs its message handler on it.
   */
  readonly socket?: Udp.Socket | undefined
  /** Our node id; else the snapshot's, else a BEP 42 id for `externalIp`, else random. */
  readonly id?: Uint8Array | undefined
  readonly externalIp?: string | undefined
  /** A routing table saved with `snapshot` in an earlier run. */
  readonly snapshot?: RoutingTable.Snapshot | undefined
  /** Nodes to start from when the table knows fewer than k nodes (router.bittorrent.com:6881, ...). */
  readonly bootstrap?: ReadonlyArray<HostPort> | undefined
  readonly queryTimeout?: Duration.DurationInput | undefined
  /** Outgoing query rate limit (token bucket): sustained rate and burst. */
  readonly queriesPerSecond?: number | undefined
  readonly burst?: number | undefined
  /** Parallel queries per lookup round (BEP 5's α). */
  readonly alpha?: number | undefined
  /** Bounds of the announced-peer store (defaults 1000 torrents × 100 peers; the oldest go first). */
  readonly maxTorrents?: number | undefined
  readonly maxPeersPerTorrent?: number | undefined
  readonly peerTtl?: Duration.DurationInput | undefined
  /** How often buckets idle for 15 minutes are refreshed and expired peers swept. */
  readonly maintenanceInterval?: Duration.DurationInput | undefined
  /** Client version sent as `v`. */
  readonly version?: Uint8Array | undefined
  /**
   * Contact only 127.0.0.0/8 and ::1 (no DNS query for other names): default `EFFECT_TORRENT_LOOPBACK_ONLY`
   * (net/Destination.ts). Other addresses a lookup learns are never queried.
   */
  readonly loopbackOnly?: boolean | undefined
}

export interface Node {
  readonly id: Uint8Array
  readonly local: { readonly address: string; readonly port: number }
  /** Iterative find_node for our own id from the table and the bootstrap nodes; the table size after. */
  readonly bootstrap: Effect.Effect<number>
  /** Pings one node; its id. */
  readonly ping: (host: string, port: number) => Effect.Effect<Uint8Array, DhtError>
  /** Iterative find_node: the k closest nodes that answered. */
  readonly findNode: (target: Uint8Array) => Effect.Effect<Array<RoutingTable.Contact>>
  /** Iterative get_peers: peers as they arrive, each once; ends when the lookup converges. */
  readonly lookup: (infoHash: Uint8Array) => Stream.Stream<Krpc.Address>
  /** A get_peers lookup, then announce_peer to the closest nodes that gave a token; how many accepted. */
  readonly announce: (infoHash: Uint8Array, port: number) => Effect.Effect<number>
  readonly table: Effect.Effect<RoutingTable.RoutingTable>
  readonly snapshot: Effect.Effect<RoutingTable.Snapshot>
  /** Peers announced to us for an info-hash (not expired). */
  readonly storedPeers: (infoHash: Uint8Array) => Effect.Effect<Array<Krpc.Address>>
}

type Body =
  | { readonly method: "ping" }
  | { readonly method: "find_node"; readonly target: Uint8Array }
  | { readonly method: "get_peers"; readonly infoHash: Uint8Array }
  | {
    readonly method: "announce_peer"
    readonly infoHash: Uint8Array
    readonly port: number
    readonly token: Uint8Array
    readonly impliedPort: boolean
  }

type Inbound =
  | { readonly _tag: "Query"; readonly query: Krpc.Query; readonly address: string; readonly port: number }
  | {
    readonly _tag: "Malformed"
    readonly t: Uint8Array
    readonly detail: string
    readonly address: string
    readonly port: number
  }

interface Pending {
  readonly address: string
  readonly port: number
  readonly reply: Deferred.Deferred<Krpc.Response | Krpc.ErrorMessage>
}

interface Candidate {
  id: Uint8Array | undefined
  readonly ip: string
  readonly port: number
  state: "new" | "asked" | "replied" | "failed"
  token: Uint8Array | undefined
}

const MAX_VALUES = 50
const MAX_CANDIDATES = 512
const MAX_ROUNDS = 64
/** Background pings of stale nodes at once (a flood of new queriers must not pile up fibers). */
const MAX_PINGS = 16

const normalize = (address: string): string => {
  const a = address.toLowerCase()
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a
}

const addressKey = (ip: string, port: number) => `${normalize(ip)}:${port}`

export const make = (options: Options = {}): Effect.Effect<Node, Udp.UdpError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const k = RoutingTable.K
    const alpha = options.alpha ?? 3
    const timeout = Duration.decode(options.queryTimeout ?? "3 seconds")
    const interval = 1000 / (options.queriesPerSecond ?? 100)
    const burst = options.burst ?? 20
    const maxTorrents = options.maxTorrents ?? 1000
    const maxPeers = options.maxPeersPerTorrent ?? 100
    const peerTtl = Duration.toMillis(options.peerTtl ?? "30 minutes")
    const version = options.version ?? Bytes.fromBinaryString("ET\x00\x01")
    const restricted = options.loopbackOnly ?? Destination.loopbackOnly()
    const allowed = (host: string) => !restricted || Destination.isLoopbackHost(host)
    const now0 = yield* Clock.currentTimeMillis

    const loaded = options.snapshot === undefined ? undefined : RoutingTable.fromJSON(options.snapshot, now0)
    const fromSnapshot = loaded !== undefined && Either.isRight(loaded) ? loaded.right : undefined
    const own = options.id ?? fromSnapshot?.own ??
      (options.externalIp === undefined ? undefined : NodeId.bep42(options.externalIp)) ?? NodeId.random()
    const tableRef = yield* Ref.make(
      fromSnapshot !== undefined && NodeId.equals(fromSnapshot.own, own)
        ? fromSnapshot
        : RoutingTable.empty(own, now0)
    )
    const tokensRef = yield* Ref.make(Tokens.make(now0))

    const socket = options.socket ?? (yield* Udp.make({ family: "udp4", address: options.address, port: options.port }))
    const self = addressKey(socket.local.address, socket.local.port)
    const pending = new Map<string, Pending>()
    let nextTid = Math.floor(Math.random() * 0x10000)
    const inbox = yield* Mailbox.make<Inbound>({ capacity: 512, strategy: "dropping" })

    socket.onMessage((d) => {
      const decoded = Krpc.decode(d.data)
      if (Either.isLeft(decoded)) {
        const e = decoded.left
        if (e.isQuery && e.transactionId !== undefined) {
          const { address, port } = d
          inbox.unsafeOffer({ _tag: "Malformed", t: e.transactionId, detail: e.detail, address, port })
        }
        return
      }
      const m = decoded.right
      if (m._tag === "Query") {
        inbox.unsafeOffer({ _tag: "Query", query: m, address: d.address, port: d.port })
        return
      }
      const key = Bytes.toBinaryString(m.t)
      const p = pending.get(key)
      if (p === undefined || p.port !== d.port || normalize(p.address) !== normalize(d.address)) return
      pending.delete(key)
      Deferred.unsafeDone(p.reply, Effect.succeed(m))
    })

    // -------------------------------------------------------------------------------------------------------------
    // Outgoing queries

    const nextFree = yield* Ref.make(0)
    const rateLimit = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const wait = yield* Ref.modify(nextFree, (next) => {
        const at = Math.max(now - burst * interval, next)
        return [at - now, at + interval] as const
      })
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
    })

    const send = (m: Krpc.Message, address: string, port: number) =>
      allowed(address) ? socket.send(Krpc.encode(m), port, address).pipe(Effect.ignore) : Effect.void

    const register = (address: string, port: number) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const reply = yield* Deferred.make<Krpc.Response | Krpc.ErrorMessage>()
          let t: Uint8Array
          do {
            nextTid = (nextTid + 1) & 0xffff
            t = new Uint8Array([nextTid >> 8, nextTid & 0xff])
          } while (pending.has(Bytes.toBinaryString(t)))
          pending.set(Bytes.toBinaryString(t), { address, port, reply })
          return { t, reply }
        }),
        ({ t }) => Effect.sync(() => void pending.delete(Bytes.toBinaryString(t)))
      )

    const pinging = new Set<string>()

    const consider = (contact: RoutingTable.Contact, seen: RoutingTable.Observation, depth = 0): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (addressKey(contact.ip, contact.port) === self) return
        const now = yield* Clock.currentTimeMillis
        const result = yield* Ref.modify(tableRef, (t) => {
          const r = RoutingTable.insert(t, contact, now, seen)
          return [r.result, r.table] as const
        })
        if (result._tag !== "PingFirst" || depth >= 3) return
        const stale = result.questionable
        const key = addressKey(stale.ip, stale.port)
        if (pinging.has(key) || pinging.size >= MAX_PINGS) return
        pinging.add(key)
        // On failure `query` has marked the stale node failed; try the newcomer again (it may replace it now).
        yield* query(stale.ip, stale.port, { method: "ping" }).pipe(
          Effect.matchEffect({ onFailure: () => consider(contact, seen, depth + 1), onSuccess: () => Effect.void }),
          Effect.ensuring(Effect.sync(() => pinging.delete(key))),
          Effect.forkIn(scope)
        )
      })

    const markFailed = (ip: string, port: number) =>
      Ref.update(tableRef, (t) => {
        const e = RoutingTable.entries(t).find((x) => x.port === port && x.ip === normalize(ip))
        return e === undefined ? t : RoutingTable.markFailed(t, e.id)
      })

    const query = (address: string, port: number, body: Body): Effect.Effect<Krpc.Response, DhtError> => {
      const node = `${address}:${port}`
      if (!allowed(address)) {
        return Effect.fail(new DhtError({ reason: "network", node, detail: "refused: loopback only" }))
      }
      return Effect.scoped(Effect.gen(function*() {
        yield* rateLimit
        const { reply, t } = yield* register(address, port)
        const msg = { _tag: "Query", t, id: own, v: version, ...body } as Krpc.Query
        yield* socket.send(Krpc.encode(msg), port, address).pipe(
          Effect.mapError((e) => new DhtError({ reason: "network", node, detail: e.message }))
        )
        return yield* Deferred.await(reply).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new DhtError({ reason: "timeout", node, detail: `no answer to ${body.method}` })
          })
        )
      })).pipe(
        Effect.flatMap((m) =>
          m._tag === "Error"
            ? Effect.fail(new DhtError({ reason: "error-response", node, detail: m.message, code: m.code }))
            : Effect.as(consider({ id: m.id, ip: normalize(address), port }, "response"), m)
        ),
        Effect.tapError((e) => (e.reason === "timeout" ? markFailed(address, port) : Effect.void))
      )
    }

    // -------------------------------------------------------------------------------------------------------------
    // Iterative lookups

    const resolveBootstrap = Effect.forEach(
      options.bootstrap ?? [],
      (hp) =>
        allowed(hp.host)
          ? Dns.lookup(hp.host).pipe(Effect.map((a) => (a.family === 4 ? [{ ip: a.address, port: hp.port }] : [])))
          : Effect.succeed([]),
      { concurrency: 4 }
    ).pipe(Effect.map((xs) => xs.flat()), Effect.orElseSucceed(() => []))

    const iterate = (
      target: Uint8Array,
      method: "find_node" | "get_peers",
      onValues: (peers: ReadonlyArray<Krpc.Address>) => Effect.Effect<void>
    ): Effect.Effect<Array<Candidate>> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const table = yield* Ref.updateAndGet(tableRef, (t) => RoutingTable.touch(t, target, now))
        const cands = new Map<string, Candidate>()
        const add = (id: Uint8Array | undefined, ip: string, port: number) => {
          const key = addressKey(ip, port)
          if (key === self || cands.has(key) || cands.size >= MAX_CANDIDATES) return
          if (id !== undefined && NodeId.equals(id, own)) return
          cands.set(key, { id, ip: normalize(ip), port, state: "new", token: undefined })
        }
        for (const e of RoutingTable.closest(table, target, k)) add(e.id, e.ip, e.port)
        if (cands.size < k) for (const b of yield* resolveBootstrap) add(undefined, b.ip, b.port)
        // Unknown ids (bootstrap nodes) rank last.
        const ranked = () =>
          [...cands.values()].filter((c) => c.state !== "failed").sort((a, b) =>
            a.id === undefined ? (b.id === undefined ? 0 : 1) : b.id === undefined ? -1 :
            NodeId.compareDistance(target, a.id, b.id)
          )
        const body: Body = method === "find_node" ? { method, target } : { method, infoHash: target }
        for (let round = 0; round < MAX_ROUNDS; round++) {
          const next = ranked().slice(0, k).filter((c) => c.state === "new").slice(0, alpha)
          if (next.length === 0) break
          for (const c of next) c.state = "asked"
          yield* Effect.forEach(next, (c) =>
            query(c.ip, c.port, body).pipe(
              Effect.flatMap((r) => {
                // A node answering with our own id is lying or is us behind another address.
                if (NodeId.equals(r.id, own)) return Effect.sync(() => void (c.state = "failed"))
                c.state = "replied"
                c.id = r.id
                c.token = r.token
                for (const n of r.nodes ?? []) add(n.id, n.ip, n.port)
                return r.values !== undefined && r.values.length > 0 ? onValues(r.values) : Effect.void
              }),
              Effect.catchAll(() => Effect.sync(() => void (c.state = "failed")))
            ), { concurrency: alpha, discard: true })
        }
        return ranked().filter((c) => c.state === "replied").slice(0, k)
      })

    const findNode = (target: Uint8Array) =>
      iterate(target, "find_node", () => Effect.void).pipe(
        Effect.map((cs) => cs.flatMap((c) => (c.id === undefined ? [] : [{ id: c.id, ip: c.ip, port: c.port }])))
      )

    const getPeers = (infoHash: Uint8Array, onPeer: (peer: Krpc.Address) => Effect.Effect<void>) => {
      const seen = new Set<string>()
      return iterate(infoHash, "get_peers", (peers) =>
        Effect.forEach(peers, (p) => {
          const key = addressKey(p.ip, p.port)
          if (seen.has(key)) return Effect.void
          seen.add(key)
          return onPeer(p)
        }, { discard: true }))
    }

    const lookup = (infoHash: Uint8Array): Stream.Stream<Krpc.Address> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const box = yield* Mailbox.make<Krpc.Address>()
        yield* getPeers(infoHash, (p) => Effect.asVoid(box.offer(p))).pipe(
          Effect.ensuring(box.end),
          Effect.forkScoped
        )
        return Mailbox.toStream(box)
      }))

    const announce = (infoHash: Uint8Array, port: number) =>
      Effect.gen(function*() {
        const closest = yield* getPeers(infoHash, () => Effect.void)
        const accepted = yield* Effect.forEach(
          closest.filter((c) => c.token !== undefined),
          (c) =>
            query(c.ip, c.port, { method: "announce_peer", infoHash, port, token: c.token!, impliedPort: false }).pipe(
              Effect.as(1),
              Effect.orElseSucceed(() => 0)
            ),
          { concurrency: alpha }
        )
        return accepted.reduce((a, b) => a + b, 0)
      })

    // -------------------------------------------------------------------------------------------------------------
    // Answering queries (the server fiber owns the peer store)

    const store = new Map<string, Map<string, { readonly peer: Krpc.Address; readonly expires: number }>>()

    const livePeers = (infoHash: Uint8Array, now: number): Array<Krpc.Address> => {
      const key = Bytes.toBinaryString(infoHash)
      const peers = store.get(key)
      if (peers === undefined) return []
      for (const [k2, v] of peers) if (v.expires <= now) peers.delete(k2)
      if (peers.size === 0) store.delete(key)
      return [...peers.values()].map((v) => v.peer)
    }

    const storePeer = (infoHash: Uint8Array, peer: Krpc.Address, now: number) => {
      const key = Bytes.toBinaryString(infoHash)
      let peers = store.get(key)
      if (peers === undefined) {
        if (store.size >= maxTorrents) store.delete(store.keys().next().value!) // the oldest torrent goes
        peers = new Map()
        store.set(key, peers)
      }
      const pk = addressKey(peer.ip, peer.port)
      peers.delete(pk) // re-insert at the end: insertion order is age order
      if (peers.size >= maxPeers) peers.delete(peers.keys().next().value!)
      peers.set(pk, { peer, expires: now + peerTtl })
    }

    const nodesFor = (table: RoutingTable.RoutingTable, target: Uint8Array) =>
      RoutingTable.closest(table, target, k).filter((e) => e.ip.includes(".")).map((e) => ({
        id: e.id,
        ip: e.ip,
        port: e.port
      }))

    const handle = (inb: Inbound): Effect.Effect<void> =>
      Effect.gen(function*() {
        const ip = normalize(inb.address)
        if (inb._tag === "Malformed") {
          const code = Krpc.ErrorCode.protocol
          return yield* send({ _tag: "Error", t: inb.t, code, message: inb.detail }, ip, inb.port)
        }
        const q = inb.query
        const now = yield* Clock.currentTimeMillis
        if (q.ro !== true) yield* consider({ id: q.id, ip, port: inb.port }, "query")
        const reply = (fields: Partial<Omit<Krpc.Response, "_tag" | "t" | "id">>) =>
          send({ _tag: "Response", t: q.t, id: own, v: version, ip: { ip, port: inb.port }, ...fields }, ip, inb.port)
        const error = (code: number, message: string) => send({ _tag: "Error", t: q.t, code, message }, ip, inb.port)
        const table = yield* Ref.get(tableRef)
        switch (q.method) {
          case "ping":
            return yield* reply({})
          case "find_node":
            return yield* reply({ nodes: nodesFor(table, q.target) })
          case "get_peers": {
            const tokens = yield* Ref.updateAndGet(tokensRef, (t) => Tokens.rotate(t, now))
            const values = livePeers(q.infoHash, now).slice(-MAX_VALUES)
            return yield* reply({
              token: Tokens.issue(tokens, ip),
              nodes: nodesFor(table, q.infoHash),
              ...(values.length > 0 ? { values } : {})
            })
          }
          case "announce_peer": {
            const tokens = yield* Ref.updateAndGet(tokensRef, (t) => Tokens.rotate(t, now))
            if (!Tokens.verify(tokens, q.token, ip)) return yield* error(Krpc.ErrorCode.protocol, "bad token")
            storePeer(q.infoHash, { ip, port: q.impliedPort ? inb.port : q.port }, now)
            return yield* reply({})
          }
          case "unknown":
            return yield* error(Krpc.ErrorCode.methodUnknown, "method unknown")
        }
      })

    yield* Mailbox.toStream(inbox).pipe(Stream.runForEach(handle), Effect.forkScoped)
    yield* Effect.addFinalizer(() => inbox.shutdown)

    // -------------------------------------------------------------------------------------------------------------
    // Maintenance: refresh idle buckets, sweep expired peers.

    const maintain = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const key of [...store.keys()]) livePeers(Bytes.fromBinaryString(key), now)
      const table = yield* Ref.get(tableRef)
      if (RoutingTable.size(table) === 0) return
      for (const i of RoutingTable.refreshCandidates(table, now).slice(0, 4)) {
        yield* findNode(RoutingTable.randomIdIn(table, i))
      }
    })
    yield* maintain.pipe(
      Effect.repeat(Schedule.spaced(options.maintenanceInterval ?? "1 minute")),
      Effect.delay(options.maintenanceInterval ?? "1 minute"),
      Effect.forkScoped
    )

    return {
      id: own,
      local: socket.local,
      bootstrap: findNode(own).pipe(Effect.zipRight(Ref.get(tableRef)), Effect.map(RoutingTable.size)),
      ping: (host, port) =>
        (allowed(host)
          ? Dns.lookup(host)
          : Effect.fail(new Dns.DnsError({ host, cause: "refused: loopback only" }))).pipe(
          Effect.mapError((e) => new DhtError({ reason: "network", node: `${host}:${port}`, detail: e.message })),
          Effect.flatMap((a) => query(a.address, port, { method: "ping" })),
          Effect.map((r) => r.id)
        ),
      findNode,
      lookup,
      announce,
      table: Ref.get(tableRef),
      snapshot: Ref.get(tableRef).pipe(Effect.map(RoutingTable.toJSON)),
      storedPeers: (infoHash) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => livePeers(infoHash, now)))
    } satisfies Node
  })

/** The node as a service, for the session to provide once. */
export class Dht extends Context.Tag("effect-torrent/Dht")<Dht, Node>() {}

export const layer = (options: Options = {}): Layer.Layer<Dht, Udp.UdpError> => Layer.scoped(Dht, make(options))
