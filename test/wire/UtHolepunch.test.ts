import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as UtHolepunch from "../../src/wire/UtHolepunch.ts"

const hex = (b: Uint8Array | undefined) => (b === undefined ? "undefined" : Bytes.toHex(b))
const decodeRight = (b: Uint8Array) => Either.getOrThrow(UtHolepunch.decode(b))

describe("UtHolepunch codec", () => {
  it("writes BEP 55's layout: type, addr_type, address, port, err_code (0 outside errors)", () => {
    expect(hex(UtHolepunch.encode(UtHolepunch.rendezvous({ ip: "1.2.3.4", port: 6881 })))).toBe(
      "00" + "00" + "01020304" + "1ae1" + "00000000"
    )
    expect(hex(UtHolepunch.encode(UtHolepunch.connect({ ip: "2001:db8::1", port: 80 })))).toBe(
      "01" + "01" + "20010db8000000000000000000000001" + "0050" + "00000000"
    )
    expect(hex(UtHolepunch.encode(UtHolepunch.error({ ip: "10.0.0.1", port: 1 }, UtHolepunch.ErrorCode.NoSupport))))
      .toBe("02" + "00" + "0a000001" + "0001" + "00000003")
  })

  it("reads libtorrent's short form (no err_code outside errors) and ignores trailing bytes", () => {
    expect(decodeRight(Bytes.fromHex("0100050607081ae1")!)).toEqual({
      _tag: "Connect",
      ip: "5.6.7.8",
      port: 6881,
      error: 0
    })
    expect(decodeRight(Bytes.fromHex("0200050607081ae100000002ffff")!)).toMatchObject({ _tag: "Error", error: 2 })
    // an error without its code reads as 0
    expect(decodeRight(Bytes.fromHex("020005060708 1ae1".replace(" ", ""))!).error).toBe(0)
  })

  it("refuses unknown types, unknown address types, short messages and port 0", () => {
    for (const h of ["", "00", "0300050607081ae1", "0002050607081ae1", "0000050607", "000105060708090a0b0c0d0e0f101112131415", "000005060708" + "0000"]) {
      const r = UtHolepunch.decode(Bytes.fromHex(h)!)
      expect(Either.isLeft(r) && r.left.reason).toBe("bad-message")
    }
  })

  it("encode refuses what is no endpoint", () => {
    expect(UtHolepunch.encode(UtHolepunch.connect({ ip: "1.2.3", port: 1 }))).toBeUndefined()
    expect(UtHolepunch.encode(UtHolepunch.connect({ ip: "1.2.3.4", port: 0 }))).toBeUndefined()
    expect(UtHolepunch.errorName(UtHolepunch.ErrorCode.NoSelf)).toBe("NoSelf")
    expect(UtHolepunch.errorName(99)).toBe("code 99")
  })
})

const hex16 = (b: ReadonlyArray<number>) =>
  Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(":")
const canonical6 = (b: ReadonlyArray<number>) => new URL(`http://[${hex16(b)}]/`).hostname.slice(1, -1)

const endpoint = FastCheck.oneof(
  FastCheck.tuple(FastCheck.array(FastCheck.nat(255), { minLength: 4, maxLength: 4 }), FastCheck.integer({ min: 1, max: 65535 }))
    .map(([b, port]) => ({ ip: b.join("."), canonical: b.join("."), port })),
  FastCheck.tuple(
    FastCheck.array(FastCheck.oneof(FastCheck.constant(0), FastCheck.nat(255)), { minLength: 16, maxLength: 16 }),
    FastCheck.integer({ min: 1, max: 65535 })
  ).map(([b, port]) => ({ ip: hex16(b), canonical: canonical6(b), port }))
)
const msg = FastCheck.tuple(
  FastCheck.constantFrom("Rendezvous", "Connect", "Error") as FastCheck.Arbitrary<UtHolepunch.MsgType>,
  endpoint,
  FastCheck.nat()
)

describe("UtHolepunch codec properties", () => {
  it.prop("decode(encode(m)) = m (canonical IPv6 text; err_code only in errors)", [msg], ([[tag, e, code]]) => {
    const m: UtHolepunch.Message = { _tag: tag, ip: e.ip, port: e.port, error: tag === "Error" ? code : 0 }
    const bytes = UtHolepunch.encode(m)!
    expect(bytes.length).toBe(e.ip.includes(":") ? 24 : 12)
    expect(decodeRight(bytes)).toEqual({ ...m, ip: e.canonical })
  })

  it.prop("never throws on arbitrary bytes; whatever decodes re-encodes to its prefix", [
    FastCheck.uint8Array({ maxLength: 40 })
  ], ([b]) => {
    const r = UtHolepunch.decode(b)
    if (Either.isLeft(r)) return
    const again = UtHolepunch.encode(r.right)!
    const used = Math.min(b.length, again.length)
    // the bytes read agree with the input (err_code is re-written as 0 outside errors)
    expect(Bytes.toHex(again.subarray(0, again.length - 4))).toBe(Bytes.toHex(b.subarray(0, again.length - 4)))
    expect(used).toBeGreaterThanOrEqual(again.length - 4)
  })
})
