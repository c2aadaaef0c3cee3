import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import { plaintext, Rc4 } from "../../src/wire/Rc4.ts"

const hex = (s: string): Uint8Array => Bytes.fromHex(s.replace(/\s+/g, ""))!
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))

const encrypt = (key: Uint8Array, data: Uint8Array): Uint8Array => {
  const out = data.slice()
  new Rc4(key).process(out)
  return out
}

describe("Rc4", () => {
  it("classic vectors (Key/Plaintext, Wiki/pedia, Secret/Attack at dawn)", () => {
    expect(Bytes.toHex(encrypt(ascii("Key"), ascii("Plaintext")))).toBe("bbf316e8d940af0ad3")
    expect(Bytes.toHex(encrypt(ascii("Wiki"), ascii("pedia")))).toBe("1021bf0420")
    expect(Bytes.toHex(encrypt(ascii("Secret"), ascii("Attack at dawn")))).toBe("45a01f645fc35b383552544b9bf5")
  })

  // RFC 6229 section 2, 40-bit key 0x0102030405: keystream at the given offsets.
  const rfc6229: ReadonlyArray<readonly [number, string]> = [
    [0x0000, "b2 39 63 05 f0 3d c0 27 cc c3 52 4a 0a 11 18 a8"],
    [0x0010, "69 82 94 4f 18 fc 82 d5 89 c4 03 a4 7a 0d 09 19"],
    [0x00f0, "28 cb 11 32 c9 6c e2 86 42 1d ca ad b8 b6 9e ae"],
    [0x0100, "1c fc f6 2b 03 ed db 64 1d 77 df cf 7f 8d 8c 93"],
    [0x01f0, "42 b7 d0 cd d9 18 a8 a3 3d d5 17 81 c8 1f 40 41"],
    [0x0200, "64 59 84 44 32 a7 da 92 3c fb 3e b4 98 06 61 f6"],
    [0x02f0, "ec 10 32 7b de 2b ee fd 18 f9 27 76 80 45 7e 22"],
    [0x0300, "eb 62 63 8d 4f 0b a1 fe 9f ca 20 e0 5b f8 ff 2b"],
    [0x03f0, "45 12 90 48 e6 a0 ed 0b 56 b4 90 33 8f 07 8d a5"],
    [0x0400, "30 ab bc c7 c2 0b 01 60 9f 23 ee 2d 5f 6b b7 df"],
    [0x05f0, "32 94 f7 44 d8 f9 79 05 07 e7 0f 62 e5 bb ce ea"],
    [0x0600, "d8 72 9d b4 18 82 25 9b ee 4f 82 53 25 f5 a1 30"],
    [0x07f0, "1e b1 4a 0c 13 b3 bf 47 fa 2a 0b a9 3a d4 5b 8b"],
    [0x0800, "cc 58 2f 8b a9 f2 65 e2 b1 be 91 12 e9 75 d2 d7"],
    [0x0bf0, "f2 e3 0f 9b d1 02 ec bf 75 aa ad e9 bc 35 c4 3c"],
    [0x0c00, "ec 0e 11 c4 79 dc 32 9d c8 da 79 68 fe 96 56 81"],
    [0x0ff0, "06 83 26 a2 11 84 16 d2 1f 9d 04 b2 cd 1c a0 50"],
    [0x1000, "ff 25 b5 89 95 99 67 07 e5 1f bd f0 8b 34 d8 75"]
  ]
  const key = hex("0102030405")

  it("RFC 6229 keystream for key 0x0102030405", () => {
    const stream = encrypt(key, new Uint8Array(0x1010))
    for (const [offset, expected] of rfc6229) {
      expect(Bytes.toHex(stream.subarray(offset, offset + 16))).toBe(expected.replace(/ /g, ""))
    }
  })

  it("discard(n) skips exactly n keystream bytes", () => {
    for (const [offset, expected] of rfc6229) {
      const r = new Rc4(key)
      r.discard(offset)
      const block = new Uint8Array(16)
      r.process(block)
      expect(Bytes.toHex(block)).toBe(expected.replace(/ /g, ""))
    }
  })

  it("processes a sub-range in place and leaves the rest alone", () => {
    const buf = new Uint8Array(40).fill(7)
    new Rc4(key).process(buf, 10, 16)
    expect(buf.subarray(0, 10).every((b) => b === 7)).toBe(true)
    expect(buf.subarray(26).every((b) => b === 7)).toBe(true)
    expect(Bytes.toHex(buf.subarray(10, 26).map((b) => b ^ 7))).toBe(rfc6229[0]![1].replace(/ /g, ""))
  })

  it("rejects empty and over-long keys", () => {
    expect(() => new Rc4(new Uint8Array(0))).toThrow(RangeError)
    expect(() => new Rc4(new Uint8Array(257))).toThrow(RangeError)
  })

  it("plaintext is the identity", () => {
    const buf = ascii("hello")
    plaintext.process(buf, 0, 5)
    expect(buf).toEqual(ascii("hello"))
  })

  it.prop(
    "the stream does not depend on how the data is split; decrypting restores the data",
    [
      FastCheck.uint8Array({ minLength: 1, maxLength: 64 }),
      FastCheck.uint8Array({ maxLength: 2000 }),
      FastCheck.array(FastCheck.integer({ min: 0, max: 2000 }), { maxLength: 8 })
    ],
    ([k, data, cuts]) => {
      const whole = encrypt(k, data)
      const parts = data.slice()
      const r = new Rc4(k)
      let at = 0
      for (const c of [...cuts.filter((c) => c <= data.length)].sort((a, b) => a - b)) {
        r.process(parts, at, c - at)
        at = c
      }
      r.process(parts, at)
      expect(parts).toEqual(whole)
      expect(encrypt(k, whole)).toEqual(data)
    }
  )

  /** The textbook byte loop over a Uint8Array state: the reference the word-at-a-time path must equal. */
  const reference = (k: Uint8Array, data: Uint8Array): Uint8Array => {
    const st = new Uint8Array(256).map((_, n) => n)
    let j = 0
    for (let n = 0; n < 256; n++) {
      j = (j + st[n]! + k[n % k.length]!) & 0xff
      const t = st[n]!
      st[n] = st[j]!
      st[j] = t
    }
    const out = data.slice()
    let i = 0
    j = 0
    for (let n = 0; n < out.length; n++) {
      i = (i + 1) & 0xff
      j = (j + st[i]!) & 0xff
      const t = st[i]!
      st[i] = st[j]!
      st[j] = t
      out[n] = out[n]! ^ st[(st[i]! + st[j]!) & 0xff]!
    }
    return out
  }

  it.prop(
    "views at any byte offset of their buffer (socket chunks are pool slices) match the byte-by-byte reference",
    [
      FastCheck.uint8Array({ minLength: 1, maxLength: 32 }),
      FastCheck.uint8Array({ maxLength: 3000 }),
      FastCheck.integer({ min: 0, max: 7 }),
      FastCheck.array(FastCheck.integer({ min: 0, max: 3000 }), { maxLength: 6 })
    ],
    ([k, data, shift, cuts]) => {
      const backing = new Uint8Array(data.length + 8)
      const view = backing.subarray(shift, shift + data.length)
      view.set(data)
      const r = new Rc4(k)
      let at = 0
      for (const c of [...cuts.filter((c) => c <= data.length)].sort((a, b) => a - b)) {
        r.process(view.subarray(at, c))
        at = c
      }
      r.process(view, at)
      expect(view).toEqual(reference(k, data))
      expect(backing.subarray(0, shift).every((b) => b === 0)).toBe(true)
      expect(backing.subarray(shift + data.length).every((b) => b === 0)).toBe(true)
    }
  )
})
