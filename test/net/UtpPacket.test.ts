/**
 * uTP packet codec: random packets round-trip both ways; parsing never throws on arbitrary bytes (nor on mutated
 * valid packets); bad versions, unknown types, truncated extension chains and bad selective acks are typed errors;
 * 16-bit sequence arithmetic wraps.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as UtpPacket from "../../src/net/UtpPacket.ts"

const u16 = FastCheck.integer({ min: 0, max: 0xffff })
const u32 = FastCheck.integer({ min: 0, max: 0xffffffff })
const type = FastCheck.constantFrom(0, 1, 2, 3, 4) as FastCheck.Arbitrary<UtpPacket.Type>
const otherExtension = FastCheck.record({
  type: FastCheck.integer({ min: 2, max: 255 }),
  data: FastCheck.uint8Array({ maxLength: 40 })
})
const sack = FastCheck.record({
  type: FastCheck.constant(1),
  data: FastCheck.uint8Array({ minLength: 1, maxLength: 32 })
})
const extensions = FastCheck.tuple(
  FastCheck.array(otherExtension, { maxLength: 3 }),
  FastCheck.option(sack, { nil: undefined }),
  FastCheck.nat()
).map(([others, s, at]) => {
  const all = [...others]
  if (s !== undefined) all.splice(at % (all.length + 1), 0, s)
  return all
})

const packet: FastCheck.Arbitrary<UtpPacket.Packet> = FastCheck.record({
  type,
  connectionId: u16,
  timestamp: u32,
  timestampDiff: u32,
  windowSize: u32,
  seqNr: u16,
  ackNr: u16,
  extensions,
  payload: FastCheck.uint8Array({ maxLength: 1400 })
}).map((fields) => UtpPacket.make(fields))

const isError = (x: unknown): x is UtpPacket.UtpPacketError => x instanceof UtpPacket.UtpPacketError

describe("UtpPacket", () => {
  it.prop("round-trips random packets (decode ∘ encode = id)", [packet], ([p]) => {
    const bytes = UtpPacket.encode(p)
    expect(bytes.length).toBe(UtpPacket.encodedLength(p))
    const back = UtpPacket.parse(bytes)
    if (isError(back)) throw back
    expect(back.type).toBe(p.type)
    expect(back.connectionId).toBe(p.connectionId)
    expect(back.timestamp).toBe(p.timestamp)
    expect(back.timestampDiff).toBe(p.timestampDiff)
    expect(back.windowSize).toBe(p.windowSize)
    expect(back.seqNr).toBe(p.seqNr)
    expect(back.ackNr).toBe(p.ackNr)
    expect(back.extensions.map((e) => [e.type, [...e.data]])).toEqual(p.extensions.map((e) => [e.type, [...e.data]]))
    expect(back.selectiveAck === undefined ? undefined : [...back.selectiveAck]).toEqual(
      p.selectiveAck === undefined ? undefined : [...p.selectiveAck]
    )
    expect([...back.payload]).toEqual([...p.payload])
  }, { fastCheck: { numRuns: 500 } })

  it.prop("re-encodes every datagram it accepts byte for byte (encode ∘ decode = id)", [
    FastCheck.uint8Array({ minLength: 20, maxLength: 120 })
  ], ([raw]) => {
    // Make the first byte plausible so that many inputs are accepted.
    const bytes = Uint8Array.from(raw)
    bytes[0] = ((bytes[0]! % 5) << 4) | 1
    const p = UtpPacket.parse(bytes)
    if (!isError(p)) expect([...UtpPacket.encode(p)]).toEqual([...bytes])
  }, { fastCheck: { numRuns: 3000 } })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 200 })], ([bytes]) => {
    const p = UtpPacket.parse(bytes)
    expect(isError(p) || typeof p.seqNr === "number").toBe(true)
    expect(Either.isEither(UtpPacket.decode(bytes))).toBe(true)
  }, { fastCheck: { numRuns: 5000 } })

  it.prop("never throws on mutated valid packets", [
    packet,
    FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.integer({ min: 0, max: 255 })), { maxLength: 6 }),
    FastCheck.nat()
  ], ([p, edits, cut]) => {
    const bytes = UtpPacket.encode(p)
    for (const [at, v] of edits) if (bytes.length > 0) bytes[at % bytes.length] = v
    const truncated = bytes.subarray(0, cut % (bytes.length + 1))
    const r = UtpPacket.parse(truncated)
    if (!isError(r)) expect(UtpPacket.encode(r).length).toBe(truncated.length)
  }, { fastCheck: { numRuns: 3000 } })

  it.prop("rejects any version but 1 with a typed error", [
    packet,
    FastCheck.integer({ min: 0, max: 15 }).filter((v) => v !== 1)
  ], ([p, version]) => {
    const bytes = UtpPacket.encode(p)
    bytes[0] = (bytes[0]! & 0xf0) | version
    const r = UtpPacket.parse(bytes)
    expect(isError(r) && r.reason).toBe("bad-version")
    expect(UtpPacket.looksLikeUtp(bytes)).toBe(false)
  })

  it.prop("rejects extension chains that run past the datagram", [packet, FastCheck.integer({ min: 1, max: 255 })], (
    [p, extra]
  ) => {
    // Announce one more extension than there is room for: its header or body is cut off.
    const withExt = UtpPacket.make({ ...p, extensions: [...p.extensions, { type: 7, data: new Uint8Array(0) }] })
    const bytes = UtpPacket.encode({ ...withExt, payload: new Uint8Array(0) })
    const lenAt = bytes.length - 1
    bytes[lenAt] = extra // the last extension now claims `extra` bytes that are not there
    const r = UtpPacket.parse(bytes)
    expect(isError(r) && r.reason).toBe("truncated-extension")
    // A header that names an extension in a 20-byte datagram.
    const bare = UtpPacket.encode(UtpPacket.make({ type: UtpPacket.Type.State }))
    bare[1] = 1
    const r2 = UtpPacket.parse(bare)
    expect(isError(r2) && r2.reason).toBe("truncated-extension")
  })

  it("rejects short datagrams, unknown types and bad selective acks", () => {
    const short = UtpPacket.parse(new Uint8Array(19).fill(0x21))
    expect(isError(short) && short.reason).toBe("too-short")
    const bytes = UtpPacket.encode(UtpPacket.make({ type: UtpPacket.Type.Data, payload: Uint8Array.of(1) }))
    bytes[0] = (5 << 4) | 1
    const badType = UtpPacket.parse(bytes)
    expect(isError(badType) && badType.reason).toBe("bad-type")
    const empty = UtpPacket.encode(UtpPacket.make({
      type: UtpPacket.Type.State,
      extensions: [{ type: 1, data: new Uint8Array(0) }]
    }))
    const e1 = UtpPacket.parse(empty)
    expect(isError(e1) && e1.reason).toBe("bad-selective-ack")
    const twice = UtpPacket.encode(UtpPacket.make({
      type: UtpPacket.Type.State,
      extensions: [{ type: 1, data: new Uint8Array(4) }, { type: 1, data: new Uint8Array(4) }]
    }))
    const e2 = UtpPacket.parse(twice)
    expect(isError(e2) && e2.reason).toBe("bad-selective-ack")
    expect(Either.isLeft(UtpPacket.decode(twice))).toBe(true)
  })

  it("decodes a libtorrent-style header and tells uTP from KRPC by the first byte", () => {
    // ST_SYN, version 1, no extension, connection id 0x1234, seq 0xfffe.
    const syn = Uint8Array.from([
      0x41, 0, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0
    ])
    const p = UtpPacket.parse(syn)
    if (isError(p)) throw p
    expect(p.type).toBe(UtpPacket.Type.Syn)
    expect(p.connectionId).toBe(0x1234)
    expect(p.seqNr).toBe(0xfffe)
    expect(UtpPacket.looksLikeUtp(syn)).toBe(true)
    const krpc = new TextEncoder().encode("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
    expect(UtpPacket.looksLikeUtp(krpc)).toBe(false)
  })

  it.prop("sequence arithmetic wraps at 16 bits", [u16, FastCheck.integer({ min: 1, max: 32767 })], ([a, d]) => {
    const b = (a + d) & 0xffff
    expect(UtpPacket.seqDiff(b, a)).toBe(d)
    expect(UtpPacket.seqDiff(a, b)).toBe(-d)
    expect(UtpPacket.seqLess(a, b)).toBe(true)
    expect(UtpPacket.seqLess(b, a)).toBe(false)
  })
})
