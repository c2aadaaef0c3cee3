/**
 * BEP 14 announces: random announces round-trip; decoding never throws on arbitrary bytes nor on mutated announces;
 * libtorrent's exact datagram is read; leniency where libtorrent is lenient (case, `\n`, a bad info-hash skipped),
 * typed errors where it refuses (no port, a port out of range, not BT-SEARCH).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as LsdMessage from "../../src/net/LsdMessage.ts"

const hash = FastCheck.uint8Array({ minLength: 20, maxLength: 20 }).filter((h) => h.some((b) => b !== 0))
const announce = FastCheck.record({
  port: FastCheck.integer({ min: 1, max: 65535 }),
  infoHashes: FastCheck.array(hash, { minLength: 0, maxLength: 20 }),
  cookie: FastCheck.option(FastCheck.integer({ min: 1, max: 0x7fffffff }).map((n) => n.toString(16)), { nil: undefined })
})

describe("LsdMessage", () => {
  it("round-trips announces, IPv4 and IPv6 groups", () => {
    FastCheck.assert(FastCheck.property(announce, FastCheck.constantFrom(4 as const, 6 as const), (a, family) => {
      const decoded = LsdMessage.decode(LsdMessage.encode(a, family))
      expect(Either.isRight(decoded)).toBe(true)
      const d = Either.getOrThrow(decoded)
      expect(d.port).toBe(a.port)
      expect(d.infoHashes.map(Bytes.toHex)).toEqual(a.infoHashes.map(Bytes.toHex))
      expect(d.cookie).toBe(a.cookie)
    }))
  })

  it("never throws on arbitrary bytes or on mutated announces", () => {
    FastCheck.assert(FastCheck.property(FastCheck.uint8Array({ maxLength: 3000 }), (b) => {
      LsdMessage.decode(b)
    }))
    FastCheck.assert(FastCheck.property(
      announce,
      FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      (a, edits) => {
        const bytes = LsdMessage.encode(a)
        for (const [at, v] of edits) bytes[at % bytes.length] = v
        const d = LsdMessage.decode(bytes)
        if (Either.isRight(d)) {
          expect(d.right.port).toBeGreaterThanOrEqual(1)
          expect(d.right.port).toBeLessThanOrEqual(65535)
          for (const h of d.right.infoHashes) expect(h.length).toBe(20)
        }
      }
    ))
  })

  it("a full datagram of hashes stays within one MTU", () => {
    const n = LsdMessage.capacity(65535, "7fffffff", 6)
    const hashes = Array.from({ length: n }, (_, i) => new Uint8Array(20).fill(i + 1))
    expect(LsdMessage.encode({ port: 65535, infoHashes: hashes, cookie: "7fffffff" }, 6).length)
      .toBeLessThanOrEqual(LsdMessage.MAX_SIZE)
    expect(n).toBeGreaterThan(20)
  })

  it("reads libtorrent's datagram (lsd.cpp's format) and is as lenient as its parser", () => {
    const ih = "0123456789abcdef0123456789abcdef01234567"
    const libtorrent = `BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: ${ih}\r\ncookie: 2a\r\n\r\n\r\n`
    expect(LsdMessage.decode(Bytes.encodeUtf8(libtorrent))).toEqual(
      Either.right({ port: 6881, infoHashes: [Bytes.fromHex(ih)], cookie: "2a" })
    )
    const loose = `bt-search * HTTP/1.1\nHOST: x\nport:  51413 \nINFOHASH: ${ih.toUpperCase()}\ninfohash: nothex\n` +
      `Infohash: ${"0".repeat(40)}\nX-Other: 1\n\n`
    expect(LsdMessage.decode(Bytes.encodeUtf8(loose))).toEqual(
      Either.right({ port: 51413, infoHashes: [Bytes.fromHex(ih)] })
    )
  })

  it("refuses what libtorrent refuses, with a reason", () => {
    const reason = (text: string) => {
      const d = LsdMessage.decode(Bytes.encodeUtf8(text))
      return Either.isLeft(d) ? d.left.message : "accepted"
    }
    expect(reason("M-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n")).toBe("LSD announce: not a BT-SEARCH request")
    expect(reason("BT-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("LSD announce: no Port header")
    expect(reason("BT-SEARCH * HTTP/1.1\r\nPort: 70000\r\n\r\n")).toBe("LSD announce: port 70000 out of range")
    expect(reason("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\n\r\n")).toBe("LSD announce: port 0 out of range")
    expect(reason("BT-SEARCH * HTTP/1.1\r\nPort: -5\r\n\r\n")).toBe("LSD announce: port \"-5\" is not a number")
    expect(reason("BT-SEARCH * HTTP/1.1\r\nPort: 5\r\n")).toBe("LSD announce: headers not terminated")
  })
})
