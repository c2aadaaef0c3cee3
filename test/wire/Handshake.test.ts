import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import type { WireError } from "../../src/wire/WireError.ts"
import { cuts, split } from "./arbitraries.ts"

const infoHash = Uint8Array.from({ length: 20 }, (_, i) => i) as InfoHashV1
const peerId = Bytes.encodeUtf8("-ET0001-abcdefghijkl") as PeerId
const reserved = Handshake.reserved({ extensionProtocol: true, fast: true })
const ours: Handshake.Handshake = { reserved, infoHash, peerId }

const handshake = FastCheck.record({
  reserved: FastCheck.uint8Array({ minLength: 8, maxLength: 8 }),
  infoHash: FastCheck.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => b as InfoHashV1),
  peerId: FastCheck.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => b as PeerId)
})

/** Feeds chunks to a reader; the handshake and everything after it, or the error. */
const read = (chunks: ReadonlyArray<Uint8Array>) => {
  const r = Handshake.reader()
  let done: Handshake.Handshake | undefined
  const rest: Array<Uint8Array> = []
  for (const c of chunks) {
    const p = r.push(c)
    if (p._tag === "WireError") return { error: p as WireError }
    if (p._tag === "Done") {
      done = p.handshake
      rest.push(p.rest)
    }
  }
  return { done, rest: Bytes.concat(rest) }
}

describe("Handshake", () => {
  it("encodes the 68-byte layout", () => {
    const bytes = Handshake.encode(ours)
    expect(bytes.length).toBe(68)
    expect(bytes[0]).toBe(19)
    expect(Bytes.decodeUtf8(bytes.subarray(1, 20))).toBe("BitTorrent protocol")
    expect(Bytes.toHex(bytes.subarray(20, 28))).toBe("0000000000100004")
    expect(bytes.subarray(28, 48)).toEqual(infoHash)
    expect(bytes.subarray(48)).toEqual(peerId)
  })

  it("sets and reads the reserved bits of BEP 10, BEP 6 and BEP 5", () => {
    expect(Bytes.toHex(Handshake.reserved({}))).toBe("0000000000000000")
    expect(Bytes.toHex(Handshake.reserved({ extensionProtocol: true }))).toBe("0000000000100000")
    expect(Bytes.toHex(Handshake.reserved({ fast: true }))).toBe("0000000000000004")
    expect(Bytes.toHex(Handshake.reserved({ dht: true }))).toBe("0000000000000001")
    const all = Handshake.reserved({ extensionProtocol: true, fast: true, dht: true })
    expect(Handshake.features(all)).toEqual({ extensionProtocol: true, fast: true, dht: true })
    expect(Handshake.supportsFast(Bytes.fromHex("ffffffffffffff00")!)).toBe(false)
    expect(Handshake.negotiated(all, Handshake.reserved({ fast: true }))).toEqual({
      extensionProtocol: false,
      fast: true,
      dht: false
    })
  })

  it("decode rejects a wrong protocol string and a wrong length", () => {
    const bytes = Handshake.encode(ours)
    const other = new Uint8Array(bytes)
    other[5] = 0x20
    expect(Handshake.decode(other)).toMatchObject({ left: { reason: "protocol-mismatch", offset: 5 } })
    other[0] = 0x13 + 1
    expect(Handshake.decode(other)).toMatchObject({ left: { reason: "protocol-mismatch", offset: 0 } })
    expect(Handshake.decode(bytes.subarray(0, 67))).toMatchObject({ left: { reason: "bad-handshake" } })
    expect(Handshake.decode(new Uint8Array(0))).toMatchObject({ left: { reason: "bad-handshake" } })
  })

  it("decode copies its fields out of a Node Buffer", () => {
    const buf = Buffer.from(Handshake.encode(ours))
    const r = Handshake.decode(buf)
    expect(r).toEqual(Either.right(ours))
    if (Either.isRight(r)) expect(r.right.peerId.buffer).not.toBe(buf.buffer)
  })

  it("the reader reports a wrong first byte at once (an encrypted or foreign connection)", () => {
    const r = Handshake.reader()
    expect(r.push(Uint8Array.of(0x8f))).toMatchObject({ reason: "protocol-mismatch", offset: 0 })
    expect(r.push(Handshake.encode(ours))._tag).toBe("WireError")
  })

  it("the reader gives the info-hash after 48 bytes, before the peer id", () => {
    const r = Handshake.reader()
    const bytes = Handshake.encode(ours)
    expect(r.push(bytes.subarray(0, 47))).toEqual({ _tag: "NeedMore", infoHash: undefined })
    expect(r.push(bytes.subarray(47, 48))).toEqual({ _tag: "NeedMore", infoHash })
    const done = r.push(bytes.subarray(48))
    expect(done).toEqual({ _tag: "Done", handshake: ours, rest: new Uint8Array(0) })
    expect(r.push(Uint8Array.of(1, 2))).toEqual({ _tag: "Done", handshake: ours, rest: Uint8Array.of(1, 2) })
  })

  it.prop("decode ∘ encode is the identity", [handshake], ([hs]) => {
    expect(Handshake.decode(Handshake.encode(hs))).toEqual(Either.right(hs))
  })

  it.prop(
    "the reader gets the handshake however it is split, and hands back the bytes merged after it",
    [handshake, FastCheck.uint8Array({ maxLength: 100 }), cuts],
    ([hs, after, at]) => {
      const bytes = Bytes.concat([Handshake.encode(hs), after])
      const got = read(split(bytes, at))
      expect(got).toEqual({ done: hs, rest: after })
    }
  )

  const noise = FastCheck.oneof(
    FastCheck.uint8Array({ maxLength: 100 }),
    FastCheck.tuple(handshake, FastCheck.nat(), FastCheck.nat(), FastCheck.nat({ max: 255 })).map(([hs, n, i, v]) => {
      const b = Handshake.encode(hs).subarray(0, n % 69)
      if (b.length > 0 && i % 3 === 0) b[i % b.length] = v
      return b
    })
  )

  it.prop("the reader never throws on arbitrary or damaged bytes", [noise, cuts], ([b, at]) => {
    const got = read(split(b, at))
    const valid = b.length >= 20 && Either.isRight(Handshake.decode(b.subarray(0, 68)))
    expect(got.done !== undefined).toBe(valid)
  })
})
