/**
 * BEP 15 codec: requests and responses round-trip; decoding never throws on arbitrary bytes; compact peers.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as CompactPeers from "../../src/tracker/CompactPeers.ts"
import * as UdpCodec from "../../src/tracker/UdpCodec.ts"

const u32 = FastCheck.integer({ min: 0, max: 0xffffffff })
const u64 = FastCheck.bigInt({ min: 0n, max: 0xffffffffffffffffn })
const bytes20 = FastCheck.uint8Array({ minLength: 20, maxLength: 20 })
const port = FastCheck.integer({ min: 1, max: 65535 })
const event = FastCheck.constantFrom("none" as const, "started" as const, "completed" as const, "stopped" as const)
const count = FastCheck.integer({ min: 0, max: 0xffffffff })

const request: FastCheck.Arbitrary<UdpCodec.Request> = FastCheck.oneof(
  u32.map((transactionId) => ({ _tag: "Connect" as const, transactionId })),
  FastCheck.record({
    _tag: FastCheck.constant("Announce" as const),
    connectionId: u64,
    transactionId: u32,
    infoHash: bytes20,
    peerId: bytes20,
    downloaded: u64,
    left: u64,
    uploaded: u64,
    event,
    key: u32,
    numwant: FastCheck.integer({ min: -1, max: 200 }),
    port: FastCheck.integer({ min: 0, max: 65535 })
  }),
  FastCheck.record({
    _tag: FastCheck.constant("Scrape" as const),
    connectionId: u64,
    transactionId: u32,
    infoHashes: FastCheck.array(bytes20, { maxLength: UdpCodec.MAX_SCRAPE })
  })
)

const response = (family: 4 | 6): FastCheck.Arbitrary<UdpCodec.Response> =>
  FastCheck.oneof(
    FastCheck.record({ _tag: FastCheck.constant("Connect" as const), transactionId: u32, connectionId: u64 }),
    FastCheck.record({
      _tag: FastCheck.constant("Announce" as const),
      transactionId: u32,
      interval: count,
      leechers: count,
      seeders: count,
      peers: (family === 4
        ? FastCheck.array(FastCheck.tuple(FastCheck.uint8Array({ minLength: 4, maxLength: 4 }), port), { maxLength: 30 })
        : FastCheck.array(FastCheck.tuple(FastCheck.uint8Array({ minLength: 16, maxLength: 16 }), port), { maxLength: 30 }))
        .map((rows) =>
          Either.getOrThrow(
            CompactPeers.decode(Uint8Array.from(rows.flatMap(([ip, p]) => [...ip, p >> 8, p & 0xff])), family)
          )
        )
    }),
    FastCheck.record({
      _tag: FastCheck.constant("Scrape" as const),
      transactionId: u32,
      entries: FastCheck.array(FastCheck.record({ seeders: count, completed: count, leechers: count }), { maxLength: 74 })
    }),
    FastCheck.record({ _tag: FastCheck.constant("Error" as const), transactionId: u32, message: FastCheck.string() })
  )

describe("UdpCodec", () => {
  it.prop("requests round-trip", [request], ([r]) => {
    expect(UdpCodec.decodeRequest(UdpCodec.encodeRequest(r))).toEqual(Either.right(r))
  })

  it.prop("IPv4 responses round-trip", [response(4)], ([r]) => {
    expect(UdpCodec.decodeResponse(UdpCodec.encodeResponse(r, 4), 4)).toEqual(Either.right(r))
  })

  it.prop("IPv6 responses round-trip (18-byte peers)", [response(6)], ([r]) => {
    expect(UdpCodec.decodeResponse(UdpCodec.encodeResponse(r, 6), 6)).toEqual(Either.right(r))
  })

  it("the announce request layout is BEP 15's", () => {
    const b = UdpCodec.encodeRequest({
      _tag: "Announce",
      connectionId: 0x0102030405060708n,
      transactionId: 0xaabbccdd,
      infoHash: new Uint8Array(20).fill(1),
      peerId: new Uint8Array(20).fill(2),
      downloaded: 3n,
      left: 4n,
      uploaded: 5n,
      event: "started",
      key: 6,
      numwant: -1,
      port: 6881
    })
    expect(b.length).toBe(98)
    const v = new DataView(b.buffer)
    expect([v.getUint32(8), v.getUint32(12), v.getUint32(80), v.getInt32(92), v.getUint16(96)]).toEqual([
      1, 0xaabbccdd, 2, -1, 6881
    ])
    expect(Array.from(UdpCodec.encodeRequest({ _tag: "Connect", transactionId: 7 }).subarray(0, 12))).toEqual([
      0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0
    ])
  })

  it("rejects short, truncated and unknown replies with a reason", () => {
    for (const b of [[], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1, 9], [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3], [0, 0, 0, 9, 0, 0, 0, 1]]) {
      expect(Either.isLeft(UdpCodec.decodeResponse(Uint8Array.from(b), 4))).toBe(true)
    }
  })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 200 })], ([b]) => {
    expect(Either.isEither(UdpCodec.decodeResponse(b, 4))).toBe(true)
    expect(Either.isEither(UdpCodec.decodeResponse(b, 6))).toBe(true)
    expect(Either.isEither(UdpCodec.decodeRequest(b))).toBe(true)
  })

  it.prop("never throws on arbitrary bytes behind a valid action", [FastCheck.integer({ min: 0, max: 4 }), FastCheck.uint8Array({ maxLength: 100 })], ([action, rest]) => {
    const b = new Uint8Array(8 + rest.length)
    new DataView(b.buffer).setUint32(0, action)
    b.set(rest, 8)
    expect(Either.isEither(UdpCodec.decodeResponse(b, 4))).toBe(true)
  })
})

describe("CompactPeers", () => {
  it("decodes IPv4 and IPv6 entries and shortens IPv6 zero runs", () => {
    expect(CompactPeers.decode(Uint8Array.of(127, 0, 0, 1, 0x1a, 0xe1), 4)).toEqual(Either.right([{ ip: "127.0.0.1", port: 6881 }]))
    const v6 = new Uint8Array(18)
    v6[15] = 1
    v6[17] = 80
    expect(CompactPeers.decode(v6, 6)).toEqual(Either.right([{ ip: "::1", port: 80 }]))
    expect(Either.isLeft(CompactPeers.decode(new Uint8Array(7), 4))).toBe(true)
  })

  it.prop("encode ∘ decode is the identity on well-formed lists without port 0", [FastCheck.array(FastCheck.tuple(FastCheck.uint8Array({ minLength: 16, maxLength: 16 }), FastCheck.integer({ min: 1, max: 65535 })), { maxLength: 10 })], ([rows]) => {
    const bytes = Uint8Array.from(rows.flatMap(([ip, p]) => [...ip, p >> 8, p & 0xff]))
    expect(CompactPeers.encode(Either.getOrThrow(CompactPeers.decode(bytes, 6)), 6)).toEqual(bytes)
  })
})
