/**
 * The DHT node on loopback: several of our nodes in one process bootstrap from one, a peer announced through one
 * is found by a lookup from another; queries are answered (and hostile ones refused) as BEP 5 says; the routing
 * table survives a restart through its snapshot; timeouts and the query rate limit run on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Krpc from "../../src/dht/Krpc.ts"
import * as Node from "../../src/dht/Node.ts"
import * as NodeId from "../../src/dht/NodeId.ts"
import * as RoutingTable from "../../src/dht/RoutingTable.ts"
import * as Udp from "../../src/net/Udp.ts"

const host = "127.0.0.1"
const fast = { address: host, queryTimeout: "1 second", queriesPerSecond: 1000, burst: 100 } as const

const swarm = (n: number) =>
  Effect.gen(function*() {
    const first = yield* Node.make(fast)
    const rest = yield* Effect.forEach(
      Array.from({ length: n - 1 }),
      () => Node.make({ ...fast, bootstrap: [{ host, port: first.local.port }] })
    )
    // Twice: the first nodes to bootstrap learn of the later ones on the second pass.
    for (let pass = 0; pass < 2; pass++) yield* Effect.forEach(rest, (node) => node.bootstrap, { discard: true })
    return [first, ...rest]
  })

/** A raw socket that sends one datagram to `port` and returns the first answer. */
const exchange = (port: number, datagram: Uint8Array) =>
  Effect.gen(function*() {
    const sock = yield* Udp.make({ family: "udp4", address: host })
    const answer = yield* Deferred.make<Uint8Array>()
    sock.onMessage((d) => Deferred.unsafeDone(answer, Effect.succeed(new Uint8Array(d.data))))
    yield* sock.send(datagram, port, host)
    const bytes = yield* Deferred.await(answer).pipe(Effect.timeout("2 seconds"))
    return Either.getOrThrow(Krpc.decode(bytes))
  })

/** A signal for conditions on state that callbacks change: `beat` after each change, `until` waits for `cond`. */
const pulse = () => {
  let next = Deferred.unsafeMake<void>(FiberId.none)
  const until = (cond: () => boolean): Effect.Effect<void> =>
    Effect.suspend(() => (cond() ? Effect.void : Effect.zipRight(Deferred.await(next), until(cond))))
  return {
    beat: () => {
      const done = next
      next = Deferred.unsafeMake<void>(FiberId.none)
      Deferred.unsafeDone(done, Exit.void)
    },
    until
  }
}

/**
 * Markers for "the node sent nothing more": `roundTrip` sends a read-only ping (BEP 43: the node leaves its table
 * alone) from `sock` to the node and waits for the answer, which the node sends straight from its socket, after
 * anything it had already sent. Datagrams from one socket to another on loopback arrive in order, so once the answer
 * is in, so is every datagram the node had sent `sock` before it. The socket's handler passes what it receives to
 * `answered`, which picks out the marker answers.
 */
const markers = () => {
  const waiting = new Map<string, Deferred.Deferred<void>>()
  let n = 0
  return {
    roundTrip: (sock: Udp.Socket, port: number) =>
      Effect.gen(function*() {
        const t = `mark${n++}`
        const done = yield* Deferred.make<void>()
        waiting.set(t, done)
        const ping = Bencode.encode({ t, y: "q", q: "ping", ro: 1, a: { id: new Uint8Array(20).fill(5) } })
        yield* sock.send(ping, port, host)
        yield* Deferred.await(done)
      }).pipe(Effect.orDie),
    answered: (m: Krpc.Message): boolean => {
      const t = Bytes.decodeUtf8(m.t) ?? ""
      const done = m._tag === "Response" ? waiting.get(t) : undefined
      if (done === undefined) return false
      waiting.delete(t)
      Deferred.unsafeDone(done, Exit.void)
      return true
    }
  }
}

/**
 * A scripted node on a raw socket: answers every query with its id (unless `silent`), and counts queries;
 * `quiet(port)` returns once every query the node at `port` had sent it so far has arrived (a marker round trip).
 */
const fakeNode = Effect.gen(function*() {
  const sock = yield* Udp.make({ family: "udp4", address: host })
  const id = NodeId.random()
  const state = { silent: false, queries: [] as Array<string> }
  const marks = markers()
  const changed = pulse()
  sock.onMessage((d) => {
    const m = Krpc.decode(d.data)
    if (Either.isLeft(m) || marks.answered(m.right) || m.right._tag !== "Query") return
    state.queries.push(m.right.method)
    changed.beat()
    if (state.silent) return
    const reply = Krpc.encode({ _tag: "Response", t: m.right.t, id, nodes: [] })
    Effect.runFork(sock.send(reply, d.port, d.address))
  })
  return {
    port: sock.local.port,
    id,
    state,
    quiet: (port: number) => marks.roundTrip(sock, port),
    until: changed.until
  }
})

/** Lets real I/O happen while the TestClock stands still. */
const realWait = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))

describe("Node", () => {
  it.scopedLive("finds a peer announced by another node of a loopback swarm", () =>
    Effect.gen(function*() {
      const nodes = yield* swarm(8)
      for (const node of nodes) expect(RoutingTable.size(yield* node.table)).toBeGreaterThanOrEqual(3)
      const infoHash = NodeId.random()
      const accepted = yield* nodes[3]!.announce(infoHash, 7001)
      expect(accepted).toBeGreaterThanOrEqual(3)
      const found = yield* nodes[6]!.lookup(infoHash).pipe(Stream.runCollect)
      expect(Chunk.toReadonlyArray(found)).toContainEqual({ ip: host, port: 7001 })
      // Nobody stored an unrelated torrent.
      expect(Chunk.size(yield* nodes[5]!.lookup(NodeId.random()).pipe(Stream.runCollect))).toBe(0)
    }))

  it.scopedLive("answers ping, find_node, get_peers and announce_peer; refuses bad tokens, unknown methods, junk", () =>
    Effect.gen(function*() {
      const node = yield* Node.make(fast)
      const port = node.local.port
      const me = new Uint8Array(20).fill(9)
      const q = (t: string, method: string, a: Record<string, Bencode.Encodable>) =>
        Bencode.encode({ t, y: "q", q: method, a: { id: me, ...a } })

      const pong = yield* exchange(port, q("p1", "ping", {}))
      expect(pong).toMatchObject({ _tag: "Response", id: node.id, t: Bytes.encodeUtf8("p1") })
      expect((pong as Krpc.Response).ip?.ip).toBe(host)

      const infoHash = NodeId.random()
      const peers = yield* exchange(port, q("g1", "get_peers", { info_hash: infoHash }))
      const token = (peers as Krpc.Response).token!
      expect(token.length).toBeGreaterThan(0)
      expect((peers as Krpc.Response).values).toBeUndefined()

      const bad = yield* exchange(port, q("a0", "announce_peer", { info_hash: infoHash, port: 6000, token: "nope" }))
      expect(bad).toMatchObject({ _tag: "Error", code: 203 })
      const ok = yield* exchange(port, q("a1", "announce_peer", { info_hash: infoHash, port: 6000, token }))
      expect(ok._tag).toBe("Response")
      const implied = yield* exchange(port, q("a2", "announce_peer", { info_hash: infoHash, implied_port: 1, token }))
      expect(implied._tag).toBe("Response")
      const stored = yield* node.storedPeers(infoHash)
      expect(stored).toContainEqual({ ip: host, port: 6000 })
      expect(stored.length).toBe(2)

      const again = yield* exchange(port, q("g2", "get_peers", { info_hash: infoHash }))
      expect((again as Krpc.Response).values).toContainEqual({ ip: host, port: 6000 })

      const found = yield* exchange(port, q("f1", "find_node", { target: NodeId.random() }))
      expect(found._tag).toBe("Response")

      expect(yield* exchange(port, q("u1", "vote", {}))).toMatchObject({ _tag: "Error", code: 204 })
      expect(yield* exchange(port, q("m1", "find_node", {}))).toMatchObject({ _tag: "Error", code: 203 })
      // The querier was added to the table (it is not read-only).
      expect(RoutingTable.find(yield* node.table, me)).toBeDefined()
      // Junk gets no answer (none has come by the time a marker sent after it is answered), and the node keeps working.
      const sock = yield* Udp.make({ family: "udp4", address: host })
      const marks = markers()
      const answers: Array<Uint8Array> = []
      sock.onMessage((d) => {
        const m = Krpc.decode(d.data)
        if (Either.isLeft(m) || !marks.answered(m.right)) answers.push(new Uint8Array(d.data))
      })
      yield* sock.send(Bytes.encodeUtf8("d1:xi1e"), port, host)
      yield* sock.send(new Uint8Array(3000).fill(0x64), port, host)
      yield* marks.roundTrip(sock, port)
      expect(answers).toEqual([])
      expect((yield* exchange(port, q("p2", "ping", {})))._tag).toBe("Response")
    }))

  it.scopedLive("restarts from a saved routing table without bootstrap nodes", () =>
    Effect.gen(function*() {
      const nodes = yield* swarm(5)
      const snapshot = JSON.parse(JSON.stringify(yield* nodes[2]!.snapshot)) as RoutingTable.Snapshot
      expect(snapshot.nodes.length).toBeGreaterThanOrEqual(3)
      const revived = yield* Node.make({ ...fast, snapshot })
      expect(revived.id).toEqual(nodes[2]!.id)
      expect(yield* revived.bootstrap).toBeGreaterThanOrEqual(3)
      const t = yield* revived.table
      expect(RoutingTable.entries(t).some((e) => RoutingTable.stateOf(e, Date.now()) === "good")).toBe(true)
    }))

  it.scoped("times out a silent node and rate-limits outgoing queries (TestClock)", () =>
    Effect.gen(function*() {
      const silent = yield* Udp.make({ family: "udp4", address: host })
      let received = 0
      const marks = markers()
      const changed = pulse()
      silent.onMessage((d) => {
        const m = Krpc.decode(d.data)
        if (Either.isRight(m) && marks.answered(m.right)) return
        received++
        changed.beat()
      })
      const node = yield* Node.make({ address: host, queryTimeout: "2 seconds", queriesPerSecond: 1, burst: 1 })
      const ping = Effect.either(node.ping(host, silent.local.port))
      const pings = yield* Effect.forEach([1, 2, 3], () => Effect.fork(ping))
      // Real I/O while the TestClock stands still: wait for the n-th ping, then for a marker the node answers from
      // the same socket; a ping sent before the marker's answer has arrived before it.
      const arrived = (n: number) =>
        Effect.gen(function*() {
          yield* changed.until(() => received >= n)
          yield* marks.roundTrip(silent, node.local.port)
          return received
        })
      expect(yield* arrived(1)).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(yield* arrived(2)).toBe(2)
      yield* TestClock.adjust("1 second")
      expect(yield* arrived(3)).toBe(3)
      const first = yield* Fiber.join(pings[0]!)
      expect(Either.isLeft(first) && first.left.reason).toBe("timeout")
      yield* TestClock.adjust("2 seconds")
      const results = yield* Effect.forEach(pings, Fiber.join)
      expect(results.every((r) => Either.isLeft(r) && r.left.reason === "timeout")).toBe(true)
    }))

  it.scoped("refreshes idle buckets and marks silent nodes bad (TestClock)", () =>
    Effect.gen(function*() {
      const fake = yield* fakeNode
      const node = yield* Node.make({ address: host, queryTimeout: "2 seconds", maintenanceInterval: "1 minute" })
      expect(yield* node.ping(host, fake.port)).toEqual(fake.id)
      const entry = () => Effect.map(node.table, (t) => RoutingTable.find(t, fake.id))
      expect(RoutingTable.stateOf((yield* entry())!, 0)).toBe("good")
      // Nothing to refresh for 15 minutes; then a find_node for a random id in the idle bucket.
      yield* TestClock.adjust("14 minutes")
      yield* fake.quiet(node.local.port)
      expect(fake.state.queries).toEqual(["ping"])
      yield* TestClock.adjust("2 minutes")
      yield* fake.until(() => fake.state.queries.includes("find_node"))
      expect(fake.state.queries).toContain("find_node")
      // Two unanswered queries make it bad: it is no longer offered to anyone.
      fake.state.silent = true
      for (let round = 0; round < 2; round++) {
        const lookup = yield* Effect.fork(node.findNode(NodeId.random()))
        // Move the clock until the lookup gives up, however late its timer starts under load.
        for (let i = 0; i < 200 && Option.isNone(yield* Fiber.poll(lookup)); i++) {
          yield* realWait(10)
          yield* TestClock.adjust("500 millis")
        }
        yield* Fiber.join(lookup)
      }
      const now = yield* TestClock.currentTimeMillis
      expect(RoutingTable.stateOf((yield* entry())!, now)).toBe("bad")
      expect(RoutingTable.closest(yield* node.table, fake.id, 8)).toEqual([])
    }))
})
