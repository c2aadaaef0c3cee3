import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Message from "../../src/wire/Message.ts"
import { message } from "./arbitraries.ts"

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex")

describe("Message encoders", () => {
  it.each([
    [Message.KeepAlive(), "00000000"],
    [Message.Choke(), "0000000100"],
    [Message.Unchoke(), "0000000101"],
    [Message.Interested(), "0000000102"],
    [Message.NotInterested(), "0000000103"],
    [Message.Have({ index: 0x01020304 }), "000000050401020304"],
    [Message.Bitfield({ bytes: Uint8Array.of(0xff, 0x80) }), "0000000305ff80"],
    [Message.Request({ index: 1, begin: 0x4000, length: 0x4000 }), "0000000d06000000010000400000004000"],
    [Message.Piece({ index: 2, begin: 3, block: Uint8Array.of(9, 8) }), "0000000b07000000020000000309" + "08"],
    [Message.Cancel({ index: 0xffffffff, begin: 0, length: 1 }), "0000000d08ffffffff0000000000000001"],
    [Message.Port({ port: 6881 }), "00000003091ae1"],
    [Message.Suggest({ index: 7 }), "000000050d00000007"],
    [Message.HaveAll(), "000000010e"],
    [Message.HaveNone(), "000000010f"],
    [Message.Reject({ index: 1, begin: 2, length: 3 }), "0000000d10000000010000000200000003"],
    [Message.AllowedFast({ index: 5 }), "000000051100000005"],
    [Message.Extended({ id: 0, payload: Uint8Array.of(0x64, 0x65) }), "0000000414006465"],
    [Message.Extended({ id: 3, payload: new Uint8Array(0) }), "000000021403"]
  ] as const)("%s encodes as %s", (m, want) => {
    expect(hex(Message.encode(m))).toBe(want)
    expect(Message.encodedLength(m)).toBe(want.length / 2)
  })

  it("encodeInto writes at an offset and returns the offset after the message", () => {
    const buf = new Uint8Array(3 + 9 + 2)
    expect(Message.encodeInto(Message.Have({ index: 1 }), buf, 3)).toBe(12)
    expect(hex(buf)).toBe("000000" + "000000050400000001" + "0000")
  })

  it("writePieceHeader leaves room for the block right after the header", () => {
    const buf = new Uint8Array(Message.pieceHeaderLength + 2)
    const at = Message.writePieceHeader(buf, 0, 2, 3, 2)
    expect(at).toBe(Message.pieceHeaderLength)
    buf.set([9, 8], at)
    expect(buf).toEqual(Message.encode(Message.Piece({ index: 2, begin: 3, block: Uint8Array.of(9, 8) })))
  })

  it.prop("encodeBatch is the concatenation of encode", [FastCheck.array(message, { maxLength: 20 })], ([ms]) => {
    const batch = Message.encodeBatch(ms)
    expect(batch).toEqual(Bytes.concat(ms.map((m) => Message.encode(m))))
    expect(batch.length).toBe(ms.reduce((n, m) => n + Message.encodedLength(m), 0))
  })

  it("$is and $match work on decoded-style values", () => {
    const m: Message.Message = Message.Have({ index: 3 })
    expect(Message.$is("Have")(m)).toBe(true)
    expect(Message.$match(m, {
      KeepAlive: () => -1,
      Choke: () => -1,
      Unchoke: () => -1,
      Interested: () => -1,
      NotInterested: () => -1,
      Have: ({ index }) => index,
      Bitfield: () => -1,
      Request: () => -1,
      Piece: () => -1,
      Cancel: () => -1,
      Port: () => -1,
      Suggest: () => -1,
      HaveAll: () => -1,
      HaveNone: () => -1,
      Reject: () => -1,
      AllowedFast: () => -1,
      Extended: () => -1,
      HashRequest: () => -1,
      Hashes: () => -1,
      HashReject: () => -1
    })).toBe(3)
  })
})
