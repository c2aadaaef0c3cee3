/**
 * Routing table: invariants under random inserts, failures and time (no bucket over k, every node in its bucket,
 * no duplicate ids or addresses, own id never present, closest() equals a brute-force model), the insert policy,
 * node states, refresh candidates and the snapshot round trip.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as NodeId from "../../src/dht/NodeId.ts"
import * as RoutingTable from "../../src/dht/RoutingTable.ts"

const bytes20 = FastCheck.uint8Array({ minLength: 20, maxLength: 20 })
const fixed = (bytes: Uint8Array): NodeId.Random => (n) => bytes.slice(0, n)
const MIN = 60_000

type Op =
  | {
    readonly _tag: "insert"
    readonly prefix: number
    readonly bytes: Uint8Array
    readonly host: number
    readonly seen: RoutingTable.Observation
  }
  | { readonly _tag: "fail"; readonly pick: number }
  | { readonly _tag: "wait"; readonly minutes: number }
  | { readonly _tag: "own" }

const op: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.record({
    _tag: FastCheck.constant("insert" as const),
    // Small prefixes are common, long ones exercise splitting of our own bucket.
    prefix: FastCheck.oneof(FastCheck.integer({ min: 0, max: 4 }), FastCheck.integer({ min: 0, max: 30 })),
    bytes: bytes20,
    host: FastCheck.integer({ min: 1, max: 400 }),
    seen: FastCheck.constantFrom("query" as const, "response" as const, "unverified" as const)
  }) },
  { weight: 2, arbitrary: FastCheck.record({ _tag: FastCheck.constant("fail" as const), pick: FastCheck.nat() }) },
  { weight: 1, arbitrary: FastCheck.record({
    _tag: FastCheck.constant("wait" as const),
    minutes: FastCheck.integer({ min: 0, max: 20 })
  }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "own" as const }) }
)

const checkInvariants = (table: RoutingTable.RoutingTable, target: Uint8Array) => {
  const all = RoutingTable.entries(table)
  table.buckets.forEach((b, i) => {
    expect(b.nodes.length).toBeLessThanOrEqual(table.k)
    for (const e of b.nodes) expect(RoutingTable.bucketIndex(table, e.id)).toBe(i)
  })
  expect(table.buckets.length).toBeLessThanOrEqual(160)
  expect(new Set(all.map((e) => Bytes.toHex(e.id))).size).toBe(all.length)
  expect(new Set(all.map((e) => `${e.ip}:${e.port}`)).size).toBe(all.length)
  expect(all.some((e) => NodeId.equals(e.id, table.own))).toBe(false)
  // closest() against a brute-force model: every non-bad node, sorted by distance as big-endian integers.
  const model = all
    .filter((e) => e.failures < RoutingTable.MAX_FAILURES)
    .map((e) => ({ e, d: BigInt(`0x${Bytes.toHex(NodeId.distance(e.id, target))}`) }))
    .sort((a, b) => (a.d < b.d ? -1 : a.d > b.d ? 1 : 0))
    .map((x) => x.e)
  for (const n of [1, 8, 20]) expect(RoutingTable.closest(table, target, n)).toEqual(model.slice(0, n))
}

describe("RoutingTable", () => {
  it.prop("keeps its invariants under random inserts, failures and time", [
    bytes20,
    bytes20,
    FastCheck.array(op, { maxLength: 300 })
  ], ([own, target, ops]) => {
    let now = 1_000_000
    let table = RoutingTable.empty(own, now)
    for (const o of ops) {
      switch (o._tag) {
        case "insert": {
          const id = NodeId.randomWithPrefix(own, o.prefix, { random: fixed(o.bytes) })
          const contact = { id, ip: `10.0.${o.host >> 8}.${o.host & 0xff}`, port: 6881 }
          table = RoutingTable.insert(table, contact, now, o.seen).table
          break
        }
        case "fail": {
          const all = RoutingTable.entries(table)
          const e = all[o.pick % Math.max(1, all.length)]
          if (e !== undefined) table = RoutingTable.markFailed(table, e.id)
          break
        }
        case "wait":
          now += o.minutes * MIN
          break
        case "own": {
          const r = RoutingTable.insert(table, { id: own, ip: "10.9.9.9", port: 1 }, now, "response")
          expect(r.result).toEqual({ _tag: "Ignored", reason: "own-id" })
          break
        }
      }
    }
    checkInvariants(table, target)
    checkInvariants(table, own)
  }, { fastCheck: { numRuns: 200 } })

  const own = new Uint8Array(20)
  // Ids sharing exactly 0 bits with `own` (first bit set) all land in bucket 0 once our bucket has split.
  const far = (n: number) => {
    const id = new Uint8Array(20).fill(n)
    id[0] = 0x80 | n
    return { id, ip: "10.0.0.1", port: 1000 + n }
  }

  const full = (now: number, seen: RoutingTable.Observation) => {
    let t = RoutingTable.empty(own, now)
    for (let i = 0; i < 8; i++) t = RoutingTable.insert(t, far(i), now, seen).table
    // One near node forces the first split, so bucket 0 is the "far half" and can no longer split.
    return RoutingTable.insert(t, { id: new Uint8Array(20).fill(1), ip: "10.0.0.2", port: 1 }, now, seen).table
  }

  it("node states follow replies, silence and failures", () => {
    let t = RoutingTable.insert(RoutingTable.empty(own, 0), far(1), 0, "query").table
    const state = (now: number) => RoutingTable.stateOf(RoutingTable.find(t, far(1).id)!, now)
    expect(state(0)).toBe("questionable") // never answered us
    t = RoutingTable.insert(t, far(1), 1, "response").table
    expect(state(1)).toBe("good")
    expect(state(1 + 15 * MIN)).toBe("questionable")
    t = RoutingTable.insert(t, far(1), 20 * MIN, "query").table
    expect(state(20 * MIN)).toBe("good") // has answered before, queried us recently
    t = RoutingTable.markFailed(t, far(1).id)
    expect(state(20 * MIN)).toBe("good")
    t = RoutingTable.markFailed(t, far(1).id)
    expect(state(20 * MIN)).toBe("bad")
    expect(RoutingTable.closest(t, far(1).id, 8)).toEqual([])
    t = RoutingTable.insert(t, far(1), 21 * MIN, "response").table
    expect(state(21 * MIN)).toBe("good")
  })

  it("full bucket: keeps good nodes, asks to ping the stalest questionable one, replaces a bad one", () => {
    const t = full(0, "response")
    expect(t.buckets.length).toBe(2)
    const newcomer = far(100)
    expect(RoutingTable.insert(t, newcomer, 1, "query").result).toEqual({ _tag: "Dropped" })
    // 15 minutes later all are questionable: ping the least recently seen (refreshed nodes are seen later).
    let later = RoutingTable.insert(t, far(0), 5 * MIN, "response").table
    const r = RoutingTable.insert(later, newcomer, 16 * MIN, "query")
    expect(r.result._tag).toBe("PingFirst")
    const stale = (r.result as { readonly questionable: RoutingTable.Entry }).questionable
    expect(stale.id).toEqual(far(1).id)
    // Unverified contacts never ask for pings.
    expect(RoutingTable.insert(later, newcomer, 16 * MIN, "unverified").result).toEqual({ _tag: "Dropped" })
    later = RoutingTable.markFailed(RoutingTable.markFailed(later, stale.id), stale.id)
    const replaced = RoutingTable.insert(later, newcomer, 16 * MIN, "query")
    expect(replaced.result).toMatchObject({ _tag: "Replaced", evicted: { id: stale.id } })
    expect(RoutingTable.find(replaced.table, newcomer.id)).toBeDefined()
    expect(RoutingTable.find(replaced.table, stale.id)).toBeUndefined()
  })

  it("ignores a known id at another address and a new id at a live node's address", () => {
    const t = RoutingTable.insert(RoutingTable.empty(own, 0), far(1), 0, "response").table
    expect(RoutingTable.insert(t, { ...far(1), port: 9 }, 1, "response").result).toEqual({
      _tag: "Ignored",
      reason: "address-mismatch"
    })
    expect(RoutingTable.insert(t, { ...far(2), port: far(1).port }, 1, "response").result).toEqual({
      _tag: "Ignored",
      reason: "address-in-use"
    })
    const dead = RoutingTable.markFailed(RoutingTable.markFailed(t, far(1).id), far(1).id)
    const moved = RoutingTable.insert(dead, { ...far(2), port: far(1).port }, 1, "response")
    expect(moved.result._tag).toBe("Added")
    expect(RoutingTable.size(moved.table)).toBe(1)
  })

  it("reports buckets idle for 15 minutes and produces ids in their range", () => {
    let t = full(0, "response")
    expect(RoutingTable.refreshCandidates(t, 14 * MIN)).toEqual([])
    t = RoutingTable.touch(t, new Uint8Array(20).fill(3), 10 * MIN)
    expect(RoutingTable.refreshCandidates(t, 15 * MIN)).toEqual([0])
    for (const i of [0, 1]) {
      const id = RoutingTable.randomIdIn(t, i)
      expect(RoutingTable.bucketIndex(t, id)).toBe(i)
    }
  })

  it("splits only our own bucket as random nodes arrive", () => {
    let t = RoutingTable.empty(own, 0)
    for (let i = 0; i < 5000; i++) {
      const contact = { id: NodeId.random(), ip: `10.${i >> 8}.${i & 0xff}.1`, port: 1 }
      t = RoutingTable.insert(t, contact, 0, "response").table
    }
    // ~log2(5000/8) splits; the far ranges (thousands of candidates each) are full at k.
    expect(t.buckets.length).toBeGreaterThan(6)
    expect(t.buckets.slice(0, 6).every((b) => b.nodes.length === 8)).toBe(true)
    checkInvariants(t, NodeId.random())
  })

  it("saves and reloads through JSON", () => {
    const t = full(0, "response")
    const snapshot = JSON.parse(JSON.stringify(RoutingTable.toJSON(t)))
    const back = RoutingTable.fromJSON(snapshot, 5)
    expect(Either.isRight(back)).toBe(true)
    const table = Either.getOrThrow(back)
    expect(table.own).toEqual(own)
    expect(RoutingTable.entries(table).map((e) => Bytes.toHex(e.id)).sort()).toEqual(
      RoutingTable.entries(t).map((e) => Bytes.toHex(e.id)).sort()
    )
    expect(RoutingTable.entries(table).every((e) => RoutingTable.stateOf(e, 5) === "questionable")).toBe(true)
    expect(Either.isLeft(RoutingTable.fromJSON({ id: "zz", nodes: [] }, 0))).toBe(true)
    expect(Either.isLeft(RoutingTable.fromJSON(null, 0))).toBe(true)
    const bad = [{ id: 1 }, { id: "ab", ip: "x", port: 1 }]
    const skipped = RoutingTable.fromJSON({ id: "00".repeat(20), nodes: bad }, 0)
    expect(Either.map(skipped, RoutingTable.size)).toEqual(Either.right(0))
  })
})

describe("RoutingTable BEP 42 preference", () => {
  it("asks to ping a questionable node with a non-BEP 42 id before older valid ones", () => {
    const own = new Uint8Array(20)
    const ip = (i: number) => `8.8.${i}.1`
    // Valid BEP 42 ids that fall in bucket 0 (first bit set): generate until one does.
    const validFar = (i: number) => {
      for (;;) {
        const id = NodeId.bep42(ip(i))!
        if (id[0]! >= 0x80) return id
      }
    }
    let t = RoutingTable.empty(own, 0)
    t = RoutingTable.insert(t, { id: new Uint8Array(20).fill(1), ip: "10.0.0.2", port: 1 }, 0, "response").table
    for (let i = 0; i < 7; i++) t = RoutingTable.insert(t, { id: validFar(i), ip: ip(i), port: 1 }, i, "response").table
    const invalid = new Uint8Array(20).fill(0xee)
    expect(NodeId.isBep42Valid(invalid, ip(7))).toBe(false)
    t = RoutingTable.insert(t, { id: invalid, ip: ip(7), port: 1 }, 100, "response").table
    expect(t.buckets[0]!.nodes.length).toBe(8)
    const r = RoutingTable.insert(t, { id: new Uint8Array(20).fill(0xf0), ip: ip(9), port: 1 }, 20 * MIN, "query")
    expect(r.result).toMatchObject({ _tag: "PingFirst", questionable: { id: invalid } })
  })
})
