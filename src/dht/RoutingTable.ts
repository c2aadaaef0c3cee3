/**
 * The BEP 5 routing table, pure and immutable (one owner holds it in a Ref): every function takes the table and
 * the current time in ms and returns a new table. No I/O: when the insert policy wants a node pinged it says so
 * in its result, and the node service does the ping and reports back (`insert` on reply, `markFailed` on timeout).
 *
 * Layout: a flat array of buckets indexed by the common prefix length with our own id, as libtorrent keeps it;
 * the same semantics as BEP 5's binary tree. Bucket `i < last` holds ids sharing exactly `i` leading bits with our
 * id; the last bucket holds everything sharing at least `last` bits, i.e. the range containing our own id. Only
 * that bucket splits when full (into "exactly `last` bits" and a new last bucket), up to 160 buckets, so far
 * ranges hold at most k nodes and the table stays O(k · log n).
 *
 * Node states (BEP 5): *good* — it has answered one of our queries and we heard from it in the last 15 minutes;
 * *bad* — it failed to answer `MAX_FAILURES` queries in a row; *questionable* — anything else (including nodes
 * loaded from a saved table and never yet contacted).
 *
 * Insert policy for a full bucket: replace a bad node; else split if this is our own bucket; else ask for a
 * questionable node to be pinged (result `PingFirst`: one whose id BEP 42 rejects for its address first, then the
 * least recently seen); else (all good) drop the newcomer, so long-lived nodes stay. A known id seen at a
 * different address is ignored (no update), as is a new id at an address a live node already uses.
 */
import * as Either from "effect/Either"
import * as Bytes from "../core/Bytes.ts"
import * as NodeId from "./NodeId.ts"

export const K = 8
export const GOOD_FOR_MS = 15 * 60_000
export const REFRESH_AFTER_MS = 15 * 60_000
export const MAX_FAILURES = 2

export interface Contact {
  readonly id: Uint8Array
  readonly ip: string
  readonly port: number
}

export interface Entry extends Contact {
  readonly firstSeen: number
  /** Last time any message came from it (0 when never). */
  readonly lastSeen: number
  /** Last time it answered one of our queries. */
  readonly lastReplied: number | undefined
  /** Queries in a row it did not answer. */
  readonly failures: number
}

export interface Bucket {
  readonly nodes: ReadonlyArray<Entry>
  /** Last time a node was added, replaced, or answered us, or a lookup targeted this range. */
  readonly lastChanged: number
}

export interface RoutingTable {
  readonly own: Uint8Array
  readonly k: number
  readonly buckets: ReadonlyArray<Bucket>
}

export type State = "good" | "questionable" | "bad"

/**
 * How we heard of a node: it sent us a query, it answered ours, or we were only told about it (a saved table, a
 * `nodes` list): unverified contacts never cause pings or evictions.
 */
export type Observation = "query" | "response" | "unverified"

export type InsertResult =
  | { readonly _tag: "Added" }
  | { readonly _tag: "Updated" }
  | { readonly _tag: "Replaced"; readonly evicted: Entry }
  | { readonly _tag: "PingFirst"; readonly questionable: Entry }
  | { readonly _tag: "Dropped" }
  | { readonly _tag: "Ignored"; readonly reason: "own-id" | "bad-id" | "address-mismatch" | "address-in-use" }

export const empty = (own: Uint8Array, now: number, k: number = K): RoutingTable => ({
  own: own.slice(),
  k,
  buckets: [{ nodes: [], lastChanged: now }]
})

export const stateOf = (e: Entry, now: number): State =>
  e.failures >= MAX_FAILURES
    ? "bad"
    : e.lastReplied !== undefined && now - e.lastSeen < GOOD_FOR_MS
    ? "good"
    : "questionable"

/** The bucket an id belongs in. */
export const bucketIndex = (table: RoutingTable, id: Uint8Array): number =>
  Math.min(NodeId.commonPrefixLength(table.own, id), table.buckets.length - 1)

export const entries = (table: RoutingTable): Array<Entry> => table.buckets.flatMap((b) => b.nodes)

export const size = (table: RoutingTable): number => table.buckets.reduce((n, b) => n + b.nodes.length, 0)

export const find = (table: RoutingTable, id: Uint8Array): Entry | undefined =>
  table.buckets[bucketIndex(table, id)]!.nodes.find((e) => NodeId.equals(e.id, id))

const sameAddress = (a: Contact, b: Contact) => a.port === b.port && a.ip === b.ip

const withBucket = (table: RoutingTable, i: number, bucket: Bucket): RoutingTable => {
  const buckets = table.buckets.slice()
  buckets[i] = bucket
  return { ...table, buckets }
}

const split = (table: RoutingTable): RoutingTable => {
  const last = table.buckets.length - 1
  const b = table.buckets[last]!
  const stay = b.nodes.filter((e) => NodeId.commonPrefixLength(table.own, e.id) === last)
  const move = b.nodes.filter((e) => NodeId.commonPrefixLength(table.own, e.id) > last)
  const buckets = table.buckets.slice(0, last)
  buckets.push({ nodes: stay, lastChanged: b.lastChanged }, { nodes: move, lastChanged: b.lastChanged })
  return { ...table, buckets }
}

const removeAt = (table: RoutingTable, i: number, id: Uint8Array): RoutingTable => {
  const b = table.buckets[i]!
  return withBucket(table, i, { ...b, nodes: b.nodes.filter((e) => !NodeId.equals(e.id, id)) })
}

/** Records that we heard from (or of) a node and applies the insert policy. */
export const insert = (
  table: RoutingTable,
  contact: Contact,
  now: number,
  seen: Observation
): { readonly table: RoutingTable; readonly result: InsertResult } => {
  if (contact.id.length !== NodeId.LENGTH || contact.port < 1 || contact.port > 65535) {
    return { table, result: { _tag: "Ignored", reason: "bad-id" } }
  }
  if (NodeId.equals(contact.id, table.own)) return { table, result: { _tag: "Ignored", reason: "own-id" } }
  let t = table
  const known = find(t, contact.id)
  if (known !== undefined) {
    if (!sameAddress(known, contact)) return { table, result: { _tag: "Ignored", reason: "address-mismatch" } }
    if (seen === "unverified") return { table, result: { _tag: "Updated" } }
    const i = bucketIndex(t, contact.id)
    const b = t.buckets[i]!
    const updated: Entry = seen === "response"
      ? { ...known, lastSeen: now, lastReplied: now, failures: 0 }
      : { ...known, lastSeen: now }
    const nodes = b.nodes.map((e) => (e === known ? updated : e))
    t = withBucket(t, i, { nodes, lastChanged: seen === "response" ? now : b.lastChanged })
    return { table: t, result: { _tag: "Updated" } }
  }
  // One live node per address: a host cannot fill the table by changing ids.
  for (const e of entries(t)) {
    if (!sameAddress(e, contact)) continue
    if (stateOf(e, now) !== "bad") return { table, result: { _tag: "Ignored", reason: "address-in-use" } }
    t = removeAt(t, bucketIndex(t, e.id), e.id)
  }
  const entry: Entry = {
    id: contact.id.slice(),
    ip: contact.ip,
    port: contact.port,
    firstSeen: now,
    lastSeen: seen === "unverified" ? 0 : now,
    lastReplied: seen === "response" ? now : undefined,
    failures: 0
  }
  for (;;) {
    const i = bucketIndex(t, entry.id)
    const b = t.buckets[i]!
    if (b.nodes.length < t.k) {
      return { table: withBucket(t, i, { nodes: [...b.nodes, entry], lastChanged: now }), result: { _tag: "Added" } }
    }
    const bad = b.nodes.find((e) => stateOf(e, now) === "bad")
    if (bad !== undefined) {
      const nodes = b.nodes.map((e) => (e === bad ? entry : e))
      return { table: withBucket(t, i, { nodes, lastChanged: now }), result: { _tag: "Replaced", evicted: bad } }
    }
    if (i === t.buckets.length - 1 && t.buckets.length < NodeId.BITS) {
      t = split(t)
      continue
    }
    if (seen === "unverified") return { table: t, result: { _tag: "Dropped" } }
    // BEP 42: nodes whose id does not match their address are pinged (and so replaced) first.
    const bep42 = (e: Entry) => (NodeId.isBep42Valid(e.id, e.ip) ? 1 : 0)
    const questionable = b.nodes
      .filter((e) => stateOf(e, now) === "questionable")
      .sort((x, y) => bep42(x) - bep42(y) || x.lastSeen - y.lastSeen)[0]
    // Splits done so far are kept: they are valid on their own.
    return questionable === undefined
      ? { table: t, result: { _tag: "Dropped" } }
      : { table: t, result: { _tag: "PingFirst", questionable } }
  }
}

/** One more unanswered query; after `MAX_FAILURES` in a row the node is bad and the next newcomer replaces it. */
export const markFailed = (table: RoutingTable, id: Uint8Array): RoutingTable => {
  const i = bucketIndex(table, id)
  const b = table.buckets[i]!
  if (!b.nodes.some((e) => NodeId.equals(e.id, id))) return table
  const nodes = b.nodes.map((e) => (NodeId.equals(e.id, id) ? { ...e, failures: e.failures + 1 } : e))
  return withBucket(table, i, { ...b, nodes })
}

export const remove = (table: RoutingTable, id: Uint8Array): RoutingTable => removeAt(table, bucketIndex(table, id), id)

/** Marks the bucket covering `target` as fresh (a lookup for an id in its range was started). */
export const touch = (table: RoutingTable, target: Uint8Array, now: number): RoutingTable => {
  const i = bucketIndex(table, target)
  return withBucket(table, i, { ...table.buckets[i]!, lastChanged: now })
}

/** The `n` non-bad nodes closest to `target` by XOR distance, closest first. */
export const closest = (table: RoutingTable, target: Uint8Array, n: number): Array<Entry> =>
  entries(table)
    .filter((e) => e.failures < MAX_FAILURES)
    .sort((a, b) => NodeId.compareDistance(target, a.id, b.id))
    .slice(0, n)

/** Indices of buckets nobody has touched for `REFRESH_AFTER_MS`: look up a random id in each (`randomIdIn`). */
export const refreshCandidates = (table: RoutingTable, now: number): Array<number> =>
  table.buckets.flatMap((b, i) => (now - b.lastChanged >= REFRESH_AFTER_MS ? [i] : []))

/** A random id in bucket `index`'s range. */
export const randomIdIn = (table: RoutingTable, index: number, random?: NodeId.Random): Uint8Array =>
  NodeId.randomWithPrefix(table.own, index, { atLeast: index === table.buckets.length - 1, random })

/** Nodes that need a ping to stay good: questionable ones, least recently seen first. */
export const questionable = (table: RoutingTable, now: number): Array<Entry> =>
  entries(table).filter((e) => stateOf(e, now) === "questionable").sort((a, b) => a.lastSeen - b.lastSeen)

// ---------------------------------------------------------------------------------------------------------------
// Snapshot: our id and the non-bad contacts, as plain JSON, to save between runs.

export interface Snapshot {
  readonly id: string
  readonly nodes: ReadonlyArray<{ readonly id: string; readonly ip: string; readonly port: number }>
}

export const toJSON = (table: RoutingTable): Snapshot => ({
  id: Bytes.toHex(table.own),
  nodes: entries(table)
    .filter((e) => e.failures < MAX_FAILURES)
    .map((e) => ({ id: Bytes.toHex(e.id), ip: e.ip, port: e.port }))
})

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/**
 * Rebuilds a table from a snapshot (already `JSON.parse`d). Contacts come back unverified (questionable) for the
 * node to ping; malformed entries are skipped, a malformed snapshot is an error.
 */
export const fromJSON = (json: unknown, now: number, k: number = K): Either.Either<RoutingTable, string> => {
  if (!isRecord(json) || typeof json.id !== "string" || !Array.isArray(json.nodes)) {
    return Either.left("routing table snapshot must be { id, nodes: [] }")
  }
  const own = Bytes.fromHex(json.id)
  if (own === undefined || own.length !== NodeId.LENGTH) return Either.left("snapshot id is not 40 hex digits")
  let table = empty(own, now, k)
  for (const n of json.nodes as ReadonlyArray<unknown>) {
    if (!isRecord(n) || typeof n.id !== "string" || typeof n.ip !== "string" || typeof n.port !== "number") continue
    const id = Bytes.fromHex(n.id)
    if (id === undefined || !Number.isInteger(n.port)) continue
    table = insert(table, { id, ip: n.ip, port: n.port }, now, "unverified").table
  }
  return Either.right(table)
}
