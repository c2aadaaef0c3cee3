/**
 * BEP 52 on the wire: the v2 handshake bit and the `hash request` (21), `hashes` (22) and `hash reject` (23)
 * messages — their byte layout, round trips split anywhere, the size guards, that they stay skipped unless v2 was
 * negotiated, and that a `hashes` message carries what `core/Merkle.ts` proves and verifies.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import type { Reason } from "../../src/wire/WireError.ts"
import { cuts, decodeChunks, hashMessage, messageV2, split } from "./arbitraries.ts"

const h = (hex: string): Uint8Array => Bytes.fromHex(hex.replace(/\s/g, ""))!
const root = Uint8Array.from({ length: 32 }, (_, i) => i)
const v2 = { v2: true } as const

const failsWith = (bytes: Uint8Array, reason: Reason, detail?: RegExp, options: FrameDecoder.Options = v2) => {
  const r = FrameDecoder.decodeAll(bytes, options)
  expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "WireError", reason, offset: 0 })
  if (detail !== undefined && Either.isLeft(r)) expect(r.left.detail).toMatch(detail)
}

describe("Handshake: the BEP 52 v2 bit", () => {
  it("is bit 0x10 of the last reserved byte, beside the others", () => {
    expect(Bytes.toHex(Handshake.reserved({ v2: true }))).toBe("0000000000000010")
    const all = Handshake.reserved({ extensionProtocol: true, fast: true, dht: true, v2: true })
    expect(Bytes.toHex(all)).toBe("0000000000100015")
    expect(Handshake.supportsV2(all)).toBe(true)
    expect(Handshake.supportsV2(Handshake.reserved({ fast: true, dht: true }))).toBe(false)
    // the other features read as before
    expect(Handshake.features(all)).toEqual({ extensionProtocol: true, fast: true, dht: true })
    expect(Handshake.negotiatedV2(all, Handshake.reserved({ v2: true }))).toBe(true)
    expect(Handshake.negotiatedV2(all, Handshake.reserved({ fast: true }))).toBe(false)
  })
})

describe("BEP 52 messages", () => {
  const request = Message.HashRequest({ piecesRoot: root, base: 2, index: 512, length: 512, proofLayers: 11 })

  it("lay out as BEP 52 and libtorrent write them: root, base layer, index, length, proof layers", () => {
    expect(Bytes.toHex(Message.encode(request))).toBe(
      Bytes.toHex(h(`00000031 15 ${Bytes.toHex(root)} 00000002 00000200 00000200 0000000b`))
    )
    const reject = Message.HashReject({ piecesRoot: root, base: 0, index: 4, length: 2, proofLayers: 3 })
    expect(Bytes.toHex(Message.encode(reject).subarray(0, 5))).toBe("0000003117")
    const hashes = Message.Hashes({ piecesRoot: root, base: 0, index: 0, length: 2, proofLayers: 0, hashes: new Uint8Array(64).fill(9) })
    const bytes = Message.encode(hashes)
    expect(bytes.length).toBe(4 + 49 + 64)
    expect(Bytes.toHex(bytes.subarray(0, 5))).toBe("0000007116")
    expect(Message.encodedLength(hashes)).toBe(bytes.length)
  })

  it("round-trip with v2 negotiated, whole and byte by byte; fields are owned copies", () => {
    const hashes = Message.Hashes({ piecesRoot: root, base: 0, index: 8, length: 4, proofLayers: 5, hashes: new Uint8Array(32 * (4 + 4)).fill(3) })
    for (const m of [request, Message.HashReject({ ...request }), hashes]) {
      const bytes = Message.encode(m)
      expect(FrameDecoder.decodeAll(bytes, v2)).toEqual(Either.right([m]))
      const byByte = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))
      expect(decodeChunks(byByte, v2)).toEqual({ messages: [m], error: undefined, atBoundary: true })
      const chunk = Buffer.from(bytes)
      const got = FrameDecoder.decodeAll(chunk, v2)
      const decoded = Either.getOrThrow(got)[0] as { readonly piecesRoot: Uint8Array }
      expect(decoded.piecesRoot.buffer).not.toBe(chunk.buffer)
    }
  })

  it("are skipped like unknown ids unless v2 was negotiated (the default, as before)", () => {
    const have = Message.Have({ index: 1 })
    const bytes = Message.encodeBatch([request, have, Message.Hashes({ piecesRoot: root, base: 0, index: 0, length: 0, proofLayers: 0, hashes: new Uint8Array(0) })])
    expect(FrameDecoder.decodeAll(bytes)).toEqual(Either.right([have]))
    expect(FrameDecoder.decodeAll(bytes, { v2: false })).toEqual(Either.right([have]))
    // skipped even when malformed, within the frame bound
    expect(FrameDecoder.decodeAll(h("00000003 15 0102"))).toEqual(Either.right([]))
  })

  it("size guards: request and reject exactly 49 bytes; hashes 49 + 32k, within maxFrameLength, with the count its fields call for", () => {
    failsWith(h(`00000030 15 ${"00".repeat(47)}`), "bad-length", /expected 49/)
    failsWith(h(`00000032 17 ${"00".repeat(49)}`), "bad-length", /expected 49/)
    failsWith(h(`00000040 16 ${"00".repeat(63)}`), "bad-length", /49 \+ a multiple of 32/)
    failsWith(h(`00000010 16 ${"00".repeat(15)}`), "bad-length")
    // length 4 and 3 proof layers call for 4 + 2 hashes; 5 arrive
    const wrong = Message.encode(Message.Hashes({ piecesRoot: root, base: 0, index: 0, length: 4, proofLayers: 3, hashes: new Uint8Array(5 * 32) }))
    failsWith(wrong, "bad-length", /5 hashes, but length 4 and 3 proof layers call for 6/)
    // a huge hashes frame is refused on its header, before its payload arrives
    const huge = h("00100031 16")
    const d = FrameDecoder.make({ onMessage: () => {}, onBlock: () => {} }, v2)
    expect(d.push(huge)?.reason).toBe("frame-too-large")
    const limited = Message.encode(Message.Hashes({ piecesRoot: root, base: 0, index: 0, length: 64, proofLayers: 0, hashes: new Uint8Array(64 * 32) }))
    failsWith(limited, "frame-too-large", undefined, { v2: true, maxFrameLength: 1000 })
  })

  it("carry what Merkle proves: a proof sent as `hashes` decodes and verifies against the file root", () => {
    const blocks = 1000
    const leaves = new Uint8Array(blocks * 32).map((_, i) => (i * 7) & 0xff)
    const tree = Merkle.fromLeaves(leaves)
    const range = { base: 0, index: 512, length: 256, proofLayers: Merkle.proofLayersToRoot(0, blocks) }
    const sent = Message.Hashes({ piecesRoot: tree.root, ...range, hashes: Merkle.proof(tree, range)! })
    const [got] = Either.getOrThrow(FrameDecoder.decodeAll(Message.encode(sent), v2))
    expect(got?._tag).toBe("Hashes")
    const m = got as Extract<Message.Message, { _tag: "Hashes" }>
    expect(Merkle.verify(m.piecesRoot, blocks, m, m.hashes)).toBe(true)
    expect(Merkle.verify(m.piecesRoot, blocks, { ...m, index: 0 }, m.hashes)).toBe(false)
  })

  it.prop(
    "every message, BEP 52's included: encode → concatenate → split anywhere → decode is the identity",
    [FastCheck.array(messageV2, { maxLength: 20 }), cuts],
    ([messages, at]) => {
      const bytes = Message.encodeBatch(messages)
      expect(decodeChunks(split(bytes, at), v2)).toEqual({ messages, error: undefined, atBoundary: true })
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "mutated hash messages never throw, and the outcome does not depend on the split",
    [
      FastCheck.array(hashMessage, { minLength: 1, maxLength: 6 }),
      FastCheck.array(FastCheck.tuple(FastCheck.double({ min: 0, max: 1, noNaN: true }), FastCheck.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      cuts,
      FastCheck.boolean()
    ],
    ([messages, edits, at, on]) => {
      const data = Message.encodeBatch(messages)
      for (const [f, byte] of edits) data[Math.floor(f * data.length)] = byte
      const whole = decodeChunks([data], { v2: on })
      const parts = decodeChunks(split(data, at), { v2: on })
      expect(parts.messages).toEqual(whole.messages)
      expect(parts.error).toEqual(whole.error)
    },
    { fastCheck: { numRuns: 500 } }
  )
})
