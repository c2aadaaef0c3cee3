import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Message from "../../src/wire/Message.ts"
import type { Reason } from "../../src/wire/WireError.ts"
import { cuts, decodeChunks, message, split } from "./arbitraries.ts"

const h = (hex: string): Uint8Array => Bytes.fromHex(hex.replace(/\s/g, ""))!

const one = (m: Message.Message, options?: FrameDecoder.Options) =>
  FrameDecoder.decodeAll(Message.encode(m), options)

const failsWith = (bytes: Uint8Array, reason: Reason, offset: number, options?: FrameDecoder.Options) => {
  const r = FrameDecoder.decodeAll(bytes, options)
  expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "WireError", reason, offset })
}

const options = FastCheck.record({
  pieceCount: FastCheck.option(FastCheck.integer({ min: 0, max: 200 }), { nil: undefined }),
  maxBlockLength: FastCheck.option(FastCheck.integer({ min: 0, max: 20000 }), { nil: undefined }),
  maxFrameLength: FastCheck.option(FastCheck.integer({ min: 0, max: 2000 }), { nil: undefined }),
  fast: FastCheck.option(FastCheck.boolean(), { nil: undefined }),
  extensionProtocol: FastCheck.option(FastCheck.boolean(), { nil: undefined }),
  v2: FastCheck.option(FastCheck.boolean(), { nil: undefined })
})

describe("FrameDecoder: each message", () => {
  const all: ReadonlyArray<Message.Message> = [
    Message.KeepAlive(),
    Message.Choke(),
    Message.Unchoke(),
    Message.Interested(),
    Message.NotInterested(),
    Message.Have({ index: 0xfffffffe }),
    Message.Bitfield({ bytes: Uint8Array.of(0xa5, 0xf0) }),
    Message.Request({ index: 1, begin: 16384, length: 16384 }),
    Message.Piece({ index: 4, begin: 32768, block: Uint8Array.of(1, 2, 3) }),
    Message.Piece({ index: 4, begin: 0, block: new Uint8Array(0) }),
    Message.Piece({ index: 4, begin: 0, block: new Uint8Array(16384).fill(7) }),
    Message.Cancel({ index: 1, begin: 16384, length: 16384 }),
    Message.Port({ port: 65535 }),
    Message.Suggest({ index: 9 }),
    Message.HaveAll(),
    Message.HaveNone(),
    Message.Reject({ index: 1, begin: 2, length: 3 }),
    Message.AllowedFast({ index: 10 }),
    Message.Extended({ id: 0, payload: Bytes.encodeUtf8("d1:md6:ut_pexi1eee") }),
    Message.Extended({ id: 7, payload: new Uint8Array(0) })
  ]
  for (const m of all) {
    it(`${m._tag} round-trips, whole and byte by byte`, () => {
      expect(one(m)).toEqual(Either.right([m]))
      const bytes = Message.encode(m)
      const byByte = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))
      expect(decodeChunks(byByte)).toEqual({ messages: [m], error: undefined, atBoundary: true })
    })
  }

  it("delivers a block inside one chunk as a single zero-copy view of that chunk", () => {
    const chunk = Buffer.from(Message.encode(Message.Piece({ index: 1, begin: 0, block: new Uint8Array(100) })))
    const parts: Array<Uint8Array> = []
    FrameDecoder.make({ onMessage: () => {}, onBlock: (_i, _b, _l, _o, data) => parts.push(data) }).push(chunk)
    expect(parts).toHaveLength(1)
    expect(parts[0]!.buffer).toBe(chunk.buffer)
    expect(parts[0]!.byteOffset).toBe(chunk.byteOffset + 13)
  })

  it("delivers a block spanning three chunks as three ordered parts", () => {
    const block = Uint8Array.from({ length: 30 }, (_, i) => i)
    const bytes = Message.encode(Message.Piece({ index: 1, begin: 5, block }))
    const calls: Array<[number, number, number, number, Array<number>]> = []
    const d = FrameDecoder.make({
      onMessage: () => {},
      onBlock: (i, b, l, o, data) => calls.push([i, b, l, o, Array.from(data)])
    })
    d.push(bytes.subarray(0, 20))
    d.push(bytes.subarray(20, 30))
    expect(d.atBoundary).toBe(false)
    d.push(bytes.subarray(30))
    expect(d.atBoundary).toBe(true)
    expect(calls.map(([i, b, l, o, data]) => [i, b, l, o, data.length])).toEqual([
      [1, 5, 30, 0, 7],
      [1, 5, 30, 7, 10],
      [1, 5, 30, 17, 13]
    ])
    expect(calls.flatMap((c) => c[4])).toEqual(Array.from({ length: 30 }, (_, i) => i))
  })

  it("hands out bitfield and extended payloads as owned copies, never views of the chunk", () => {
    const chunk = Buffer.from(Message.encodeBatch([
      Message.Bitfield({ bytes: Uint8Array.of(1, 2) }),
      Message.Extended({ id: 1, payload: Uint8Array.of(3) })
    ]))
    const got: Array<Message.Message> = []
    FrameDecoder.make({ onMessage: (m) => got.push(m), onBlock: () => {} }).push(chunk)
    for (const m of got) {
      const b = m._tag === "Bitfield" ? m.bytes : m._tag === "Extended" ? m.payload : undefined
      expect(b).toBeDefined()
      expect(b!.buffer).not.toBe(chunk.buffer)
      expect(Buffer.isBuffer(b)).toBe(false)
    }
  })

  it("skips unknown ids with their payload (BEP 3), also when split", () => {
    const bytes = Bytes.concat([h("00000004 15 aabbcc"), h("00000001 ff"), Message.encode(Message.Have({ index: 1 }))])
    expect(FrameDecoder.decodeAll(bytes)).toEqual(Either.right([Message.Have({ index: 1 })]))
    expect(decodeChunks(split(bytes, [0.1, 0.3, 0.5])).messages).toEqual([Message.Have({ index: 1 })])
  })

  it("checks the bitfield against a piece count set later (magnet links)", () => {
    const got: Array<Message.Message> = []
    const d = FrameDecoder.make({ onMessage: (m) => got.push(m), onBlock: () => {} })
    expect(d.push(Message.encode(Message.Bitfield({ bytes: Uint8Array.of(0xff) })))).toBeUndefined()
    d.setPieceCount(8)
    expect(d.push(Message.encode(Message.Have({ index: 7 })))).toBeUndefined()
    expect(d.push(Message.encode(Message.Have({ index: 8 })))?.reason).toBe("bad-index")
    expect(got).toHaveLength(2)
  })

  it("decodes a bitfield of exactly the right size, spare bits clear", () => {
    expect(FrameDecoder.decodeAll(h("00000003 05 fff0"), { pieceCount: 12 })).toEqual(
      Either.right([Message.Bitfield({ bytes: Uint8Array.of(0xff, 0xf0) })])
    )
  })

  it("reports position and atBoundary", () => {
    const d = FrameDecoder.make({ onMessage: () => {}, onBlock: () => {} })
    d.push(h("00000005 04 0000"))
    expect(d.position).toBe(7)
    expect(d.atBoundary).toBe(false)
    d.push(h("0001"))
    expect(d.position).toBe(9)
    expect(d.atBoundary).toBe(true)
  })
})

describe("FrameDecoder: errors", () => {
  it("rejects a piece frame over 16 KiB + 9 as soon as its header is in, without waiting for the payload", () => {
    const header = h("0000400a 07") // 16384 + 9 + 1
    const d = FrameDecoder.make({ onMessage: () => {}, onBlock: () => {} })
    expect(d.push(header)).toMatchObject({ reason: "frame-too-large", offset: 0 })
    failsWith(h("0000400a 07 00000000 00000000"), "frame-too-large", 0)
    expect(one(Message.Piece({ index: 0, begin: 0, block: new Uint8Array(16384) }))._tag).toBe("Right")
  })

  it("honours maxBlockLength and maxFrameLength", () => {
    const block = Message.encode(Message.Piece({ index: 0, begin: 0, block: new Uint8Array(100) }))
    failsWith(block, "frame-too-large", 0, { maxBlockLength: 99 })
    expect(FrameDecoder.decodeAll(block, { maxBlockLength: 100 })._tag).toBe("Right")
    const ext = Message.encode(Message.Extended({ id: 1, payload: new Uint8Array(99) }))
    failsWith(ext, "frame-too-large", 0, { maxFrameLength: 100 })
    expect(FrameDecoder.decodeAll(ext, { maxFrameLength: 101 })._tag).toBe("Right")
    failsWith(h("7fffffff 15"), "frame-too-large", 0) // unknown id: skipped only within the cap
    failsWith(h("00100001 05"), "frame-too-large", 0) // bitfield over 1 MiB with no piece count
  })

  it("rejects fixed-size messages of the wrong length", () => {
    failsWith(h("00000002 00 00"), "bad-length", 0)
    failsWith(h("00000004 04 000000"), "bad-length", 0)
    failsWith(h("00000006 04 0000000000"), "bad-length", 0)
    failsWith(h("0000000c 06" + "00".repeat(11)), "bad-length", 0)
    failsWith(h("0000000e 08" + "00".repeat(13)), "bad-length", 0)
    failsWith(h("00000008 07" + "00".repeat(7)), "bad-length", 0)
    failsWith(h("00000002 09 00"), "bad-length", 0)
    failsWith(h("00000002 0e 00"), "bad-length", 0)
    failsWith(h("00000004 11 000000"), "bad-length", 0)
    failsWith(h("0000000c 10" + "00".repeat(11)), "bad-length", 0)
    failsWith(h("00000001 14"), "bad-length", 0)
  })

  it("reports the offset of the offending frame in the stream", () => {
    failsWith(h("00000000 00000001 01 00000002 00 00"), "bad-length", 9)
    const d = FrameDecoder.make({ onMessage: () => {}, onBlock: () => {} })
    expect(d.push(h("0000000102 000000"))).toBeUndefined()
    expect(d.push(h("03 0300"))).toMatchObject({ reason: "bad-length", offset: 5 })
  })

  it("rejects a bitfield of the wrong size or with spare bits set", () => {
    failsWith(h("00000002 05 ff"), "bad-bitfield", 0, { pieceCount: 9 })
    failsWith(h("00000004 05 ffffff"), "bad-bitfield", 0, { pieceCount: 9 })
    failsWith(h("00000003 05 ffc0"), "bad-bitfield", 0, { pieceCount: 9 })
    expect(FrameDecoder.decodeAll(h("00000003 05 ff80"), { pieceCount: 9 })._tag).toBe("Right")
  })

  it("rejects indices past the piece count", () => {
    for (const m of [
      Message.Have({ index: 5 }),
      Message.Request({ index: 5, begin: 0, length: 1 }),
      Message.Piece({ index: 5, begin: 0, block: Uint8Array.of(1) }),
      Message.Cancel({ index: 5, begin: 0, length: 1 }),
      Message.Suggest({ index: 5 }),
      Message.Reject({ index: 5, begin: 0, length: 1 }),
      Message.AllowedFast({ index: 5 })
    ]) {
      failsWith(Message.encode(m), "bad-index", 0, { pieceCount: 5 })
      expect(one(m, { pieceCount: 6 })).toEqual(Either.right([m]))
    }
  })

  it("rejects a request for more than the max block length", () => {
    failsWith(Message.encode(Message.Request({ index: 0, begin: 0, length: 16385 })), "request-too-large", 0)
    failsWith(Message.encode(Message.Request({ index: 0, begin: 0, length: 33 })), "request-too-large", 0, {
      maxBlockLength: 32
    })
  })

  it("rejects fast-extension messages when BEP 6 was not negotiated, extended ones when BEP 10 was not", () => {
    for (const m of [
      Message.Suggest({ index: 1 }),
      Message.HaveAll(),
      Message.HaveNone(),
      Message.Reject({ index: 1, begin: 0, length: 1 }),
      Message.AllowedFast({ index: 1 })
    ]) {
      failsWith(Message.encode(m), "not-negotiated", 0, { fast: false })
      expect(one(m, { fast: true, extensionProtocol: false })._tag).toBe("Right")
    }
    const ext = Message.encode(Message.Extended({ id: 0, payload: Uint8Array.of(1) }))
    failsWith(ext, "not-negotiated", 0, { extensionProtocol: false })
    expect(FrameDecoder.decodeAll(ext, { fast: false })._tag).toBe("Right")
  })

  it("stops at the first error and keeps returning it", () => {
    const got: Array<Message.Message> = []
    const d = FrameDecoder.make({ onMessage: (m) => got.push(m), onBlock: () => {} })
    const e = d.push(h("0000000100 00000002 00 00 0000000101"))
    expect(e?.reason).toBe("bad-length")
    expect(d.error).toBe(e)
    expect(d.push(Message.encode(Message.Unchoke()))).toBe(e)
    expect(got).toEqual([Message.Choke()])
  })

  it("decodeAll reports input that ends inside a frame", () => {
    failsWith(h("00000005 04 00"), "truncated", 0)
    failsWith(h("000000"), "truncated", 0)
    failsWith(h("0000000100 0000000d 06 00"), "truncated", 5)
    failsWith(h("0000000100 00000004 15 00"), "truncated", 5)
  })
})

describe("FrameDecoder: properties", () => {
  it.prop(
    "encode → concatenate → split anywhere → decode is the identity, blocks byte-exact",
    [FastCheck.array(message, { maxLength: 25 }), cuts],
    ([messages, at]) => {
      const bytes = Message.encodeBatch(messages)
      expect(decodeChunks(split(bytes, at))).toEqual({ messages, error: undefined, atBoundary: true })
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "arbitrary bytes never throw, and the outcome does not depend on how they are split",
    [FastCheck.uint8Array({ maxLength: 600 }), cuts, options],
    ([bytes, at, opts]) => {
      const whole = decodeChunks([bytes], opts)
      const parts = decodeChunks(split(bytes, at), opts)
      expect(parts.messages).toEqual(whole.messages)
      expect(parts.error?.reason).toBe(whole.error?.reason)
      expect(parts.error?.offset).toBe(whole.error?.offset)
    },
    { fastCheck: { numRuns: 1000 } }
  )

  it.prop(
    "arbitrary frames (valid prefix, random id and body) never throw",
    [
      FastCheck.array(
        FastCheck.record({
          len: FastCheck.integer({ min: 0, max: 40 }),
          id: FastCheck.integer({ min: 0, max: 25 }),
          body: FastCheck.uint8Array({ maxLength: 40 })
        }),
        { maxLength: 20 }
      ),
      cuts,
      options
    ],
    ([frames, at, opts]) => {
      const bytes = Bytes.concat(frames.map(({ body, id, len }) => {
        const f = new Uint8Array(5 + body.length)
        new DataView(f.buffer).setUint32(0, len)
        f[4] = id
        f.set(body, 5)
        return f
      }))
      const whole = decodeChunks([bytes], opts)
      const parts = decodeChunks(split(bytes, at), opts)
      expect(parts.messages).toEqual(whole.messages)
      expect(parts.error).toEqual(whole.error)
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop(
    "random mutations of valid streams never throw",
    [
      FastCheck.array(message, { minLength: 1, maxLength: 10 }),
      FastCheck.array(
        FastCheck.record({
          at: FastCheck.double({ min: 0, max: 1, noNaN: true }),
          op: FastCheck.constantFrom("set", "insert", "delete"),
          byte: FastCheck.integer({ min: 0, max: 255 })
        }),
        { minLength: 1, maxLength: 8 }
      ),
      cuts,
      options
    ],
    ([messages, mutations, at, opts]) => {
      let bytes = Array.from(Message.encodeBatch(messages))
      for (const { at: f, byte, op } of mutations) {
        const i = Math.floor(f * bytes.length)
        if (op === "set") bytes[i] = byte
        else if (op === "insert") bytes.splice(i, 0, byte)
        else bytes.splice(i, 1)
      }
      bytes = bytes.filter((b) => b !== undefined)
      const data = Uint8Array.from(bytes)
      const whole = decodeChunks([data], opts)
      const parts = decodeChunks(split(data, at), opts)
      expect(parts.messages).toEqual(whole.messages)
      expect(parts.error).toEqual(whole.error)
    },
    { fastCheck: { numRuns: 500 } }
  )
})
