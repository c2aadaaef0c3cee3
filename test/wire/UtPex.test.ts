import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as UtPex from "../../src/wire/UtPex.ts"

const bin = (s: string): Uint8Array => Bytes.fromBinaryString(s)
const text = (b: Uint8Array): string => Bytes.toBinaryString(b)

const decodeRight = (payload: Uint8Array): UtPex.PexMessage => {
  const r = UtPex.decode(payload)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

const twoPeers = "\x01\x02\x03\x04\x1a\xe1" + "\x05\x06\x07\x08\x00\x50"
const example = `d5:added12:${twoPeers}7:added.f2:\x12\x017:dropped6:\x09\x09\x09\x09\x00\x01e`

describe("UtPex codec", () => {
  it("reads hand-written IPv4 added, flags and dropped", () => {
    expect(decodeRight(bin(example))).toEqual({
      added: [
        { ip: "1.2.3.4", port: 6881, flags: UtPex.Flags.Seed | UtPex.Flags.Reachable },
        { ip: "5.6.7.8", port: 80, flags: UtPex.Flags.PrefersEncryption }
      ],
      dropped: [{ ip: "9.9.9.9", port: 1 }]
    })
  })

  it("writes the same bytes", () => {
    expect(text(UtPex.encode(decodeRight(bin(example))))).toBe(example)
  })

  it("reads and writes IPv6 peers (RFC 5952 text)", () => {
    const one = "\x00".repeat(15) + "\x01\x00\x01"
    const doc = "\x20\x01\x0d\xb8" + "\x00".repeat(11) + "\x01\x1a\xe1"
    const payload = `d6:added636:${one}${doc}8:added6.f2:\x04\x008:dropped618:${doc}e`
    const m = decodeRight(bin(payload))
    expect(m).toEqual({
      added: [{ ip: "::1", port: 1, flags: UtPex.Flags.SupportsUtp }, { ip: "2001:db8::1", port: 6881, flags: 0 }],
      dropped: [{ ip: "2001:db8::1", port: 6881 }]
    })
    expect(text(UtPex.encode(m))).toBe(payload)
  })

  it("is tolerant: bad flags length, partial entries, port 0, wrong types", () => {
    const partial = "\x00".repeat(6)
    const m = decodeRight(bin(`d5:added14:${twoPeers}\x01\x027:added.f1:\x017:droppedi3e8:dropped66:${partial}e`))
    expect(m.added.map((p) => p.flags)).toEqual([0, 0])
    expect(m.dropped).toEqual([])
    const zero = decodeRight(bin(`d5:added12:\x01\x01\x01\x01\x00\x00\x02\x02\x02\x02\x00\x017:added.f2:\x05\x06e`))
    expect(zero.added).toEqual([{ ip: "2.2.2.2", port: 1, flags: 6 }])
  })

  it("keeps at most 50 added and 50 dropped", () => {
    const many = (n: number) =>
      Array.from({ length: n }, (_, i) => `\x0a\x00\x00${String.fromCharCode(i)}\x00\x01`).join("")
    const m = decodeRight(bin(`d5:added360:${many(60)}7:dropped360:${many(60)}e`))
    expect(m.added.length).toBe(50)
    expect(m.dropped.length).toBe(50)
    expect(m.added[49]!.ip).toBe("10.0.0.49")
  })

  it("fails only on bad bencode or a non-dict", () => {
    expect(Either.isLeft(UtPex.decode(bin("d5:added")))).toBe(true)
    expect(Either.isLeft(UtPex.decode(bin("le")))).toBe(true)
    expect(decodeRight(bin("de"))).toEqual({ added: [], dropped: [] })
  })

  it("encode skips bad addresses and ports", () => {
    const m = UtPex.encode({
      added: [
        { ip: "1.2.3", port: 1, flags: 0 },
        { ip: "1.2.3.4", port: 0, flags: 0 },
        { ip: "1::2::3", port: 1, flags: 0 }
      ],
      dropped: [{ ip: "256.1.1.1", port: 1 }]
    })
    expect(text(m)).toBe("de")
  })
})

const hex16 = (b: Uint8Array) =>
  Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(":")
/** Canonical IPv6 text by an independent implementation: the WHATWG URL host serializer. */
const canonical6 = (b: Uint8Array) => new URL(`http://[${hex16(b)}]/`).hostname.slice(1, -1)

const portArb = FastCheck.integer({ min: 1, max: 65535 })
const peer4 = FastCheck.tuple(FastCheck.uint8Array({ minLength: 4, maxLength: 4 }), portArb, FastCheck.nat(255))
  .map(([b, port, flags]) => ({ ip: b.join("."), port, flags }))
// Mostly-zero addresses so the "::" compression gets exercised.
const peer6 = FastCheck.tuple(FastCheck.array(FastCheck.oneof(FastCheck.constant(0), FastCheck.nat(255)), {
  minLength: 16,
  maxLength: 16
}), portArb, FastCheck.nat(255)).map(([b, port, flags]) => ({
  ip: hex16(Uint8Array.from(b)),
  canonical: canonical6(Uint8Array.from(b)),
  port,
  flags
}))

const mutate = (valid: FastCheck.Arbitrary<Uint8Array>): FastCheck.Arbitrary<Uint8Array> =>
  FastCheck.tuple(valid, FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.nat(255),
    FastCheck.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => {
    const b = [...bytes]
    for (const [at, value, kind] of edits) {
      const i = b.length === 0 ? 0 : at % b.length
      if (kind === 0 && b.length > 0) b[i] = value
      else if (kind === 1) b.splice(i, 0, value)
      else b.splice(i, 1)
    }
    return Uint8Array.from(b)
  })

const message = FastCheck.record({
  a4: FastCheck.array(peer4, { maxLength: 25 }),
  a6: FastCheck.array(peer6, { maxLength: 25 }),
  d4: FastCheck.array(peer4, { maxLength: 25 }),
  d6: FastCheck.array(peer6, { maxLength: 25 })
})

const checkDecoded = (m: UtPex.PexMessage) => {
  expect(m.added.length).toBeLessThanOrEqual(50)
  expect(m.dropped.length).toBeLessThanOrEqual(50)
  for (const p of [...m.added, ...m.dropped]) expect(UtPex.keyOf(p)).toBeDefined()
}

describe("UtPex codec properties", () => {
  it.prop("decode(encode(m)) gives the peers back, IPv4 first, IPv6 in canonical text", [message], ([g]) => {
    const strip = ({ ip, port }: { ip: string; port: number }) => ({ ip, port })
    const m = decodeRight(UtPex.encode({
      added: [...g.a6.map(({ ip, port, flags }) => ({ ip, port, flags })), ...g.a4],
      dropped: [...g.d6.map(strip), ...g.d4]
    }))
    expect(m).toEqual({
      added: [...g.a4, ...g.a6.map(({ canonical, port, flags }) => ({ ip: canonical, port, flags }))],
      dropped: [...g.d4.map(strip), ...g.d6.map(({ canonical, port }) => ({ ip: canonical, port }))]
    })
  })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 300 })], ([b]) => {
    const r = UtPex.decode(b)
    if (Either.isRight(r)) checkDecoded(r.right)
  })

  it.prop("never throws on mutated valid payloads", [mutate(message.map((g) =>
    UtPex.encode({ added: [...g.a4, ...g.a6], dropped: [...g.d4, ...g.d6] })))], ([b]) => {
    const r = UtPex.decode(b)
    if (Either.isRight(r)) checkDecoded(r.right)
  }, { fastCheck: { numRuns: 300 } })
})

const pool = Array.from({ length: 120 }, (_, i) => ({ ip: `10.0.${i >> 8}.${i & 0xff}`, port: 6881, flags: 0 }))

describe("UtPex.PexState", () => {
  it("sends up to 50 at first, then at most once a minute, then drops", () => {
    let s = UtPex.make()
    let m: UtPex.PexMessage | undefined
    ;[s, m] = UtPex.tick(s, 0, pool.slice(0, 70), false)
    expect(m?.added.length).toBe(50)
    expect(m?.dropped).toEqual([])
    ;[s, m] = UtPex.tick(s, 59_999, pool.slice(0, 70), false)
    expect(m).toBeUndefined()
    ;[s, m] = UtPex.tick(s, 60_000, pool.slice(1, 70), false)
    expect(m?.added).toEqual(pool.slice(50, 70))
    expect(m?.dropped).toEqual([{ ip: "10.0.0.0", port: 6881, flags: 0 }])
    ;[s, m] = UtPex.tick(s, 200_000, pool.slice(1, 70), false)
    expect(m).toBeUndefined()
    expect(s.lastSentAt).toBe(60_000)
  })

  it("never sends for a private torrent", () => {
    expect(UtPex.tick(UtPex.make(), 0, pool, true)[1]).toBeUndefined()
  })

  it.prop(
    "never more than once a minute, never a peer both added and dropped, consistent with what was told",
    [FastCheck.array(FastCheck.tuple(FastCheck.integer({ min: 0, max: 90_000 }),
      FastCheck.uniqueArray(FastCheck.nat(119), { maxLength: 120 })), { maxLength: 40 }), FastCheck.boolean()],
    ([ticks, isPrivate]) => {
      let s = UtPex.make()
      let now = 0
      let last: number | undefined
      const told = new Set<string>()
      for (const [dt, ids] of ticks) {
        now += dt
        const connected = ids.map((i) => pool[i]!)
        const current = new Set(connected.map((p) => UtPex.keyOf(p)!))
        const [next, m] = UtPex.tick(s, now, connected, isPrivate)
        s = next
        if (m === undefined) continue
        expect(isPrivate).toBe(false)
        if (last !== undefined) expect(now - last).toBeGreaterThanOrEqual(60_000)
        last = now
        expect(m.added.length + m.dropped.length).toBeGreaterThan(0)
        expect(m.added.length).toBeLessThanOrEqual(50)
        expect(m.dropped.length).toBeLessThanOrEqual(50)
        const added = m.added.map((p) => UtPex.keyOf(p)!)
        const dropped = m.dropped.map((p) => UtPex.keyOf(p)!)
        for (const k of added) {
          expect(dropped).not.toContain(k)
          expect(told.has(k)).toBe(false)
          expect(current.has(k)).toBe(true)
          told.add(k)
        }
        for (const k of dropped) {
          expect(told.has(k)).toBe(true)
          expect(current.has(k)).toBe(false)
          told.delete(k)
        }
        expect(new Set(s.told.keys())).toEqual(told)
      }
    }
  )
})
