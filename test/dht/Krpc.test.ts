/**
 * KRPC codec: random messages round-trip; decode never throws on arbitrary bytes or mutated valid datagrams;
 * hostile inputs are rejected with the right reason; unknown methods are typed.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Krpc from "../../src/dht/Krpc.ts"

const id = FastCheck.uint8Array({ minLength: 20, maxLength: 20 })
const tid = FastCheck.uint8Array({ minLength: 0, maxLength: Krpc.MAX_TRANSACTION_ID })
const version = FastCheck.option(FastCheck.uint8Array({ minLength: 0, maxLength: 4 }), { nil: undefined })
const port = FastCheck.integer({ min: 1, max: 65535 })
const ipv4 = FastCheck.ipV4()
const ipv6 = FastCheck.array(FastCheck.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((g) =>
  g.map((x) => x.toString(16)).join(":")
)
const node4 = FastCheck.record({ id, ip: ipv4, port })
const node6 = FastCheck.record({ id, ip: ipv6, port })
const address = FastCheck.record({ ip: FastCheck.oneof(ipv4, ipv6), port })
const want = FastCheck.option(FastCheck.subarray(["n4", "n6"] as Array<Krpc.Want>), { nil: undefined })
const ro = FastCheck.option(FastCheck.constant(true), { nil: undefined })

const envelope = { t: tid, v: version }
const queryBase = { ...envelope, _tag: FastCheck.constant("Query" as const), id, ro }

const message: FastCheck.Arbitrary<Krpc.Message> = FastCheck.oneof(
  FastCheck.record({ ...queryBase, method: FastCheck.constant("ping" as const) }, {
    requiredKeys: ["_tag", "t", "id", "method"]
  }),
  FastCheck.record({ ...queryBase, method: FastCheck.constant("find_node" as const), target: id, want }, {
    requiredKeys: ["_tag", "t", "id", "method", "target"]
  }),
  FastCheck.record({ ...queryBase, method: FastCheck.constant("get_peers" as const), infoHash: id, want }, {
    requiredKeys: ["_tag", "t", "id", "method", "infoHash"]
  }),
  FastCheck.boolean().chain((impliedPort) =>
    FastCheck.record({
      ...queryBase,
      method: FastCheck.constant("announce_peer" as const),
      infoHash: id,
      token: FastCheck.uint8Array({ minLength: 1, maxLength: Krpc.MAX_TOKEN }),
      port: impliedPort ? FastCheck.integer({ min: 0, max: 65535 }) : port,
      impliedPort: FastCheck.constant(impliedPort)
    }, { requiredKeys: ["_tag", "t", "id", "method", "infoHash", "token", "port", "impliedPort"] })
  ),
  FastCheck.record({
    ...queryBase,
    method: FastCheck.constant("unknown" as const),
    name: FastCheck.string({ minLength: 1, maxLength: 20 }).filter((s) =>
      !["ping", "find_node", "get_peers", "announce_peer"].includes(s)
    )
  }, { requiredKeys: ["_tag", "t", "id", "method", "name"] }),
  FastCheck.record({
    ...envelope,
    _tag: FastCheck.constant("Response" as const),
    id,
    nodes: FastCheck.array(node4, { maxLength: 8 }),
    nodes6: FastCheck.array(node6, { maxLength: 8 }),
    values: FastCheck.array(address, { maxLength: 20 }),
    token: FastCheck.uint8Array({ minLength: 0, maxLength: Krpc.MAX_TOKEN }),
    ip: address
  }, { requiredKeys: ["_tag", "t", "id"] }),
  FastCheck.record({
    ...envelope,
    _tag: FastCheck.constant("Error" as const),
    code: FastCheck.integer({ min: -1000, max: 1000 }),
    message: FastCheck.string({ maxLength: 40 })
  }, { requiredKeys: ["_tag", "t", "code", "message"] })
)

// Text forms differ (e.g. "0:0:..." vs "::"); compare messages with addresses normalised through the codec.
const normalise = (m: Krpc.Message): unknown => JSON.parse(JSON.stringify(m, (_k, v) =>
  v instanceof Uint8Array ? Bytes.toHex(v) : v
))

const decodeRight = (bytes: Uint8Array): Krpc.Message => {
  const r = Krpc.decode(bytes)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

describe("Krpc", () => {
  it.prop("round-trips random messages", [message], ([m]) => {
    const once = decodeRight(Krpc.encode(m))
    // Second pass is exact (addresses are now in canonical text form).
    expect(normalise(decodeRight(Krpc.encode(once)))).toEqual(normalise(once))
    // Everything but IPv6 text survives the first pass as-is.
    const strip = (x: Krpc.Message) => {
      const o = normalise(x) as Record<string, unknown>
      delete o.nodes6
      delete o.values
      delete o.ip
      return o
    }
    expect(strip(once)).toEqual(strip(m))
    if (m._tag === "Response") {
      const r = once as Krpc.Response
      expect(r.nodes6?.length).toEqual(m.nodes6?.length)
      expect(r.values?.length).toEqual(m.values?.length)
      expect(r.ip?.port).toEqual(m.ip?.port)
    }
  }, { fastCheck: { numRuns: 500 } })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 300 })], ([bytes]) => {
    expect(Either.isEither(Krpc.decode(bytes))).toBe(true)
  }, { fastCheck: { numRuns: 2000 } })

  it.prop(
    "never throws on mutated valid datagrams",
    [
      message,
      FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.nat(255)), { minLength: 1, maxLength: 6 }),
      FastCheck.nat(400)
    ],
    ([m, edits, cut]) => {
      const bytes = Krpc.encode(m).slice()
      for (const [at, value] of edits) bytes[at % bytes.length] = value
      expect(Either.isEither(Krpc.decode(bytes))).toBe(true)
      expect(Either.isEither(Krpc.decode(bytes.subarray(0, cut % (bytes.length + 1))))).toBe(true)
    },
    { fastCheck: { numRuns: 2000 } }
  )

  it.prop("never throws on structurally plausible dictionaries", [
    FastCheck.dictionary(
      FastCheck.constantFrom("t", "y", "q", "a", "r", "e", "v", "ro", "ip"),
      FastCheck.oneof(
        FastCheck.constantFrom("q", "r", "e", "ping", "find_node", "get_peers", "announce_peer"),
        FastCheck.integer(),
        FastCheck.uint8Array({ maxLength: 40 }),
        FastCheck.dictionary(
          FastCheck.constantFrom(
            "id", "target", "info_hash", "port", "token", "implied_port", "nodes", "values", "want"
          ),
          FastCheck.oneof(FastCheck.integer(), FastCheck.uint8Array({ maxLength: 60 }),
            FastCheck.array(FastCheck.uint8Array({ maxLength: 20 }), { maxLength: 3 }))
        ),
        FastCheck.array(FastCheck.oneof(FastCheck.integer(), FastCheck.string()), { maxLength: 3 })
      )
    )
  ], ([dict]) => {
    expect(Either.isEither(Krpc.decode(Bencode.encode(dict)))).toBe(true)
  }, { fastCheck: { numRuns: 2000 } })

  const enc = (v: Bencode.Encodable) => Bencode.encode(v)
  const reasonOf = (bytes: Uint8Array) => {
    const r = Krpc.decode(bytes)
    return Either.isLeft(r) ? r.left.reason : "ok"
  }
  const goodId = new Uint8Array(20).fill(7)

  it("decodes the BEP 5 example ping", () => {
    const m = decodeRight(Bytes.encodeUtf8("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
    expect(m).toMatchObject({ _tag: "Query", method: "ping", t: Bytes.encodeUtf8("aa") })
    expect(Krpc.encode(m)).toEqual(Bytes.encodeUtf8("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
  })

  it("rejects hostile fields with a typed reason", () => {
    expect(reasonOf(new Uint8Array(Krpc.MAX_DATAGRAM + 1))).toBe("too-large")
    expect(reasonOf(Bytes.encodeUtf8("d1:t2:aa1:y1:qe1:x"))).toBe("bencode")
    // unsorted keys are not strict bencode
    expect(reasonOf(Bytes.encodeUtf8("d1:y1:q1:t2:aae"))).toBe("bencode")
    expect(reasonOf(enc([1]))).toBe("not-a-dict")
    expect(reasonOf(enc({ y: "q", q: "ping", a: { id: goodId } }))).toBe("missing-field")
    expect(reasonOf(enc({ t: new Uint8Array(17), y: "q", q: "ping", a: { id: goodId } }))).toBe("invalid-field")
    expect(reasonOf(enc({ t: "aa", y: "q", q: "ping", a: { id: new Uint8Array(19) } }))).toBe("invalid-field")
    expect(reasonOf(enc({ t: "aa", y: "r", r: { id: goodId, nodes: new Uint8Array(27) } }))).toBe("invalid-field")
    expect(reasonOf(enc({ t: "aa", y: "r", r: { id: goodId, token: new Uint8Array(65) } }))).toBe("invalid-field")
    expect(reasonOf(enc({ t: "aa", y: "r", r: { id: goodId, values: [new Uint8Array(5)] } }))).toBe("invalid-field")
    expect(reasonOf(enc({ t: "aa", y: "x" }))).toBe("invalid-field")
    expect(reasonOf(enc({ t: "aa", y: "e", e: [201] }))).toBe("invalid-field")
    const announce = (a: Record<string, Bencode.Encodable>) =>
      reasonOf(enc({ t: "aa", y: "q", q: "announce_peer", a: { id: goodId, info_hash: goodId, token: "tk", ...a } }))
    expect(announce({ port: 0 })).toBe("invalid-field")
    expect(announce({ port: 70000 })).toBe("invalid-field")
    expect(announce({})).toBe("missing-field")
    expect(announce({ implied_port: 1 })).toBe("ok")
    expect(announce({ port: 6881, implied_port: 2 })).toBe("invalid-field")
  })

  it("keeps the transaction id of a malformed query so the node can answer 203", () => {
    const r = Krpc.decode(enc({ t: "xy", y: "q", q: "find_node", a: { id: goodId } }))
    expect(Either.isLeft(r) && r.left.isQuery && r.left.transactionId).toEqual(Bytes.encodeUtf8("xy"))
  })

  it("types unknown methods, ignores extra keys, keeps v and ro, drops port-0 nodes", () => {
    const m = decodeRight(enc({ t: "aa", y: "q", q: "vote", a: { id: goodId, extra: 1 }, v: "LT01", ro: 1, z: 0 }))
    expect(m).toMatchObject({ method: "unknown", name: "vote", ro: true, v: Bytes.encodeUtf8("LT01") })
    const nodes = new Uint8Array(52)
    nodes.set([127, 0, 0, 1, 0x1a, 0xe1], 20)
    nodes.set([127, 0, 0, 1, 0, 0], 46)
    const r = decodeRight(enc({ t: "aa", y: "r", r: { id: goodId, nodes } }))
    expect(r).toMatchObject({ _tag: "Response", nodes: [{ ip: "127.0.0.1", port: 6881 }] })
  })
})
