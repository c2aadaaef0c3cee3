import { describe, expect, it } from "@effect/vitest"
import bencode from "bencode"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bencode from "../../src/bencode/Bencode.ts"
import type { Reason } from "../../src/bencode/BencodeError.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as InfoHash from "../../src/core/InfoHash.ts"

const b = (s: string): Uint8Array => Bytes.fromBinaryString(s)
const s = (u: Uint8Array): string => Bytes.toBinaryString(u)

const ok = (input: string, options?: Bencode.DecodeOptions): Bencode.BValue => {
  const r = Bencode.decode(b(input), options)
  if (Either.isLeft(r)) throw new Error(`expected ${JSON.stringify(input)} to decode, got ${r.left.message}`)
  return r.right
}

const err = (input: string | Uint8Array, options?: Bencode.DecodeOptions): { reason: Reason; offset: number } => {
  const r = Bencode.decode(typeof input === "string" ? b(input) : input, options)
  if (Either.isRight(r)) throw new Error(`expected ${JSON.stringify(input)} to fail`)
  expect(r.left._tag).toBe("BencodeError")
  expect(r.left.message).toContain(`at byte ${r.left.offset}`)
  return { reason: r.left.reason, offset: r.left.offset }
}

/** A structural, order-insensitive-for-maps view of a value, for `toEqual`. */
type Canon =
  | number
  | string
  | { readonly big: string }
  | ReadonlyArray<Canon>
  | { readonly dict: ReadonlyArray<[string, Canon]> }
const canon = (v: Bencode.BValue): Canon => {
  if (typeof v === "number") return v
  if (typeof v === "bigint") return { big: v.toString() }
  if (v instanceof Uint8Array) return `bytes:${Bytes.toHex(v)}`
  if (Bencode.isList(v)) return v.map(canon)
  return { dict: [...v.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([k, x]) => [k, canon(x)]) }
}

// Every reason, with inputs and the expected offset. `satisfies Record<Reason, …>` keeps this exhaustive.
const cases = {
  truncated: [
    ["", 0],
    ["i", 1],
    ["i12", 3],
    ["i-", 2],
    ["12", 2],
    ["5:ab", 0],
    ["l5:abe", 1],
    ["l", 1],
    ["li1e", 4],
    ["d", 1],
    ["d1:a", 4],
    ["d1:ai1e", 7],
    ["d1:", 1]
  ],
  "trailing-bytes": [
    ["i1eXYZ", 3],
    ["dee", 2],
    ["0:0:", 2]
  ],
  "unexpected-byte": [
    ["x", 0],
    ["e", 0],
    ["l#e", 1],
    ["d#e", 1],
    ["d1:a#e", 4]
  ],
  "leading-zero": [
    ["i03e", 0],
    ["i00e", 0],
    ["i-03e", 0],
    ["03:abc", 0],
    ["l03:abce", 1],
    ["d02:abi1ee", 1]
  ],
  "negative-zero": [
    ["i-0e", 0],
    ["li-0ee", 1]
  ],
  "invalid-integer": [
    ["ie", 0],
    ["i-e", 0],
    ["i1.5e", 2],
    ["i1ae", 2],
    ["i+1e", 1],
    ["i--1e", 2],
    ["li e", 2]
  ],
  "integer-overflow": [
    ["i9223372036854775808e", 0],
    ["i-9223372036854775809e", 0],
    ["i99999999999999999999e", 0],
    ["li100000000000000000000ee", 1]
  ],
  "invalid-length": [
    ["3x:abc", 1],
    ["1234567890123456:", 0],
    ["d3x:abce", 2],
    ["l1-:ae", 2]
  ],
  "unsorted-keys": [
    ["d1:bi1e1:ai2ee", 7],
    ["d2:abi1e1:ai2ee", 8],
    ["d1:\xffi1e1:\x80i2ee", 7]
  ],
  "duplicate-key": [
    ["d1:ai1e1:ai2ee", 7],
    ["d0:i1e0:i2ee", 6]
  ],
  "non-string-key": [
    ["di1ei2ee", 1],
    ["dlei1ee", 1],
    ["ddei1ee", 1],
    ["d1:ai1ei2ei3ee", 7]
  ],
  "depth-exceeded": [
    ["l".repeat(101) + "e".repeat(101), 100],
    ["d1:a".repeat(101) + "i1e" + "e".repeat(101), 400],
    ["l".repeat(100_000), 100]
  ]
} satisfies Record<Reason, ReadonlyArray<readonly [string, number]>>

describe("Bencode.decode: errors", () => {
  for (const [reason, inputs] of Object.entries(cases)) {
    it(`${reason}: reason and offset`, () => {
      for (const [input, offset] of inputs) {
        expect({ input: input.slice(0, 40), ...err(input) }).toEqual({ input: input.slice(0, 40), reason, offset })
      }
    })
  }

  it("lenient mode accepts zero-padded string lengths but not leading zeros in integers", () => {
    expect(canon(ok("03:abc", { mode: "lenient" }))).toEqual(canon(b("abc")))
    expect(canon(ok("d02:abi1ee", { mode: "lenient" }))).toEqual(canon(new Map([["ab", 1]])))
    expect(err("i03e", { mode: "lenient" })).toEqual({ reason: "leading-zero", offset: 0 })
    expect(err("i-0e", { mode: "lenient" })).toEqual({ reason: "negative-zero", offset: 0 })
    expect(err("i1eX", { mode: "lenient" })).toEqual({ reason: "trailing-bytes", offset: 3 })
    expect(err("5:ab", { mode: "lenient" })).toEqual({ reason: "truncated", offset: 0 })
  })

  it("lenient mode accepts unsorted keys in input order and keeps the first of duplicate keys", () => {
    const unsorted = ok("d1:bi1e1:ai2ee", { mode: "lenient" })
    expect(Bencode.isDict(unsorted) && [...unsorted.entries()]).toEqual([["b", 1], ["a", 2]])
    const dup = ok("d1:ai1e1:bi3e1:ai2ee", { mode: "lenient" })
    expect(Bencode.isDict(dup) && [...dup.entries()]).toEqual([["a", 1], ["b", 3]])
    // the discarded duplicate value is still checked
    expect(err("d1:ai1e1:ai-0ee", { mode: "lenient" })).toEqual({ reason: "negative-zero", offset: 10 })
  })

  it("lenient mode still rejects non-string keys and the depth limit", () => {
    expect(err("di1ei2ee", { mode: "lenient" })).toEqual({ reason: "non-string-key", offset: 1 })
    expect(err("lllleeee", { mode: "lenient", maxDepth: 3 })).toEqual({ reason: "depth-exceeded", offset: 3 })
  })

  it("depth limit: maxDepth levels are fine, one more is not", () => {
    expect(Either.isRight(Bencode.decode(b("l".repeat(100) + "e".repeat(100))))).toBe(true)
    expect(Either.isRight(Bencode.decode(b("llleee"), { maxDepth: 3 }))).toBe(true)
    expect(err("llleee", { maxDepth: 2 })).toEqual({ reason: "depth-exceeded", offset: 2 })
    expect(err("d1:ad1:ad1:aleeee", { maxDepth: 3 })).toEqual({ reason: "depth-exceeded", offset: 12 })
    expect(err("le", { maxDepth: 0 })).toEqual({ reason: "depth-exceeded", offset: 0 })
    expect(ok("i1e", { maxDepth: 0 })).toBe(1)
  })
})

describe("Bencode.decode: values", () => {
  it("integers: numbers within the safe range, bigints beyond it up to int64", () => {
    expect(ok("i0e")).toBe(0)
    expect(ok("i-1e")).toBe(-1)
    expect(ok("i1000000000000000e")).toBe(1e15)
    expect(ok("i9007199254740991e")).toBe(Number.MAX_SAFE_INTEGER)
    expect(ok("i-9007199254740991e")).toBe(Number.MIN_SAFE_INTEGER)
    expect(ok("i9007199254740992e")).toBe(2n ** 53n)
    expect(ok("i9007199254740993e")).toBe(2n ** 53n + 1n)
    expect(ok("i-9007199254740993e")).toBe(-(2n ** 53n) - 1n)
    expect(ok("i1234567890123456789e")).toBe(1234567890123456789n)
    expect(ok("i9223372036854775807e")).toBe(2n ** 63n - 1n)
    expect(ok("i-9223372036854775808e")).toBe(-(2n ** 63n))
  })

  it("strings are views into the input by default; copy: true detaches them", () => {
    const input = b("l3:abce")
    const view = ok(s(input))
    const viewed = Bencode.decode(input)
    const copied = Bencode.decode(input, { copy: true })
    expect(Either.isRight(viewed) && Either.isRight(copied)).toBe(true)
    const v = (Either.getOrThrow(viewed) as Bencode.BList)[0] as Uint8Array
    const c = (Either.getOrThrow(copied) as Bencode.BList)[0] as Uint8Array
    expect(v.buffer).toBe(input.buffer)
    expect(c.buffer).not.toBe(input.buffer)
    input[3] = 0x58 // 'X'
    expect(s(v)).toBe("Xbc")
    expect(s(c)).toBe("abc")
    expect(canon(view)).toEqual([canon(b("abc"))])
  })

  it("dict keys are binary strings; empty containers and empty strings decode", () => {
    const d = ok("d0:0:2:\xc3\xa9le1:\xffi1ee")
    expect(Bencode.isDict(d) && [...d.keys()]).toEqual(["", "\xc3\xa9", "\xff"])
    expect(canon(ok("le"))).toEqual([])
    expect(canon(ok("de"))).toEqual({ dict: [] })
    expect(canon(ok("0:"))).toEqual("bytes:")
  })

  it("type guards", () => {
    expect(Bencode.isDict(new Map())).toBe(true)
    expect(Bencode.isList([])).toBe(true)
    expect(Bencode.isBytes(new Uint8Array())).toBe(true)
    expect(Bencode.isInt(1n) && Bencode.isInt(1)).toBe(true)
    expect(Bencode.isDict(undefined) || Bencode.isList(undefined) || Bencode.isBytes(undefined)).toBe(false)
  })
})

describe("Bencode.decodePrefix", () => {
  it("decodes one value and reports where it ended, leaving the rest", () => {
    const input = b("d8:msg_typei1e5:piecei0eeRAWDATA")
    const r = Either.getOrThrow(Bencode.decodePrefix(input))
    expect(r.end).toBe(input.length - 7)
    expect(s(input.subarray(r.end))).toBe("RAWDATA")
    expect(canon(r.value)).toEqual({ dict: [["msg_type", 1], ["piece", 0]] })
    expect(Either.getOrThrow(Bencode.decodePrefix(b("i1e")))).toEqual({ value: 1, end: 3 })
  })

  it("reports the same errors as decode, with offsets", () => {
    const l = Bencode.decodePrefix(b("d1:bi1e1:ai2eeXX"))
    expect(Either.isLeft(l) && [l.left.reason, l.left.offset]).toEqual(["unsorted-keys", 7])
    const t = Bencode.decodePrefix(b("d1:ai1e"))
    expect(Either.isLeft(t) && [t.left.reason, t.left.offset]).toEqual(["truncated", 7])
    const e = Bencode.decodePrefix(new Uint8Array())
    expect(Either.isLeft(e) && [e.left.reason, e.left.offset]).toEqual(["truncated", 0])
  })
})

describe("Bencode spans", () => {
  it("spanOf / rawOf give the exact original bytes of nested dicts and lists", () => {
    const text = "d8:announce3:url4:infod5:filesld6:lengthi1e4:pathl1:aeee4:name1:xee"
    const input = b(text)
    const top = ok(text) as Bencode.BDict
    expect(Bencode.spanOf(top)).toEqual({ start: 0, end: input.length })
    const info = top.get("info")!
    const infoText = "d5:filesld6:lengthi1e4:pathl1:aeee4:name1:xe"
    const at = text.indexOf(infoText)
    expect(Bencode.spanOf(info)).toEqual({ start: at, end: at + infoText.length })
    // rawOf needs the same input the value was decoded from
    const top2 = Either.getOrThrow(Bencode.decode(input)) as Bencode.BDict
    const info2 = top2.get("info") as Bencode.BDict
    expect(s(Bencode.rawOf(input, info2)!)).toBe(infoText)
    const files = info2.get("files") as Bencode.BList
    expect(s(Bencode.rawOf(input, files)!)).toBe("ld6:lengthi1e4:pathl1:aeee")
    expect(s(Bencode.rawOf(input, files[0]!)!)).toBe("d6:lengthi1e4:pathl1:aee")
    expect(s(Bencode.rawOf(input, (files[0] as Bencode.BDict).get("path")!)!)).toBe("l1:ae")
    expect(Bencode.rawOf(input, info2)!.buffer).toBe(input.buffer)
  })

  it("a non-canonical info dict keeps its original bytes (and info-hash) though re-encoding differs", () => {
    const rawInfo = "d4:name1:x6:lengthi5e4:name1:ye"
    const input = b(`d4:info${rawInfo}e`)
    const top = Either.getOrThrow(Bencode.decode(input, { mode: "lenient" })) as Bencode.BDict
    const info = top.get("info") as Bencode.BDict
    const raw = Bencode.rawOf(input, info)!
    expect(s(raw)).toBe(rawInfo)
    expect(s(Bencode.encode(info))).toBe("d6:lengthi5e4:name1:xe")
    expect(Bytes.toHex(InfoHash.v1Of(raw))).toBe(Bytes.toHex(Bytes.sha1(b(rawInfo))))
    expect(Bytes.equals(InfoHash.v1Of(raw), InfoHash.v1Of(Bencode.encode(info)))).toBe(false)
  })

  it("values that did not come from decode have no span", () => {
    expect(Bencode.spanOf(new Map())).toBeUndefined()
    expect(Bencode.spanOf([])).toBeUndefined()
    expect(Bencode.spanOf(1)).toBeUndefined()
    expect(Bencode.spanOf(1n)).toBeUndefined()
    expect(Bencode.spanOf(new Uint8Array(1))).toBeUndefined()
    expect(Bencode.rawOf(new Uint8Array(), new Map())).toBeUndefined()
  })
})

describe("Bencode.encode", () => {
  it("sorts Map keys by their bytes, including non-ASCII binary keys", () => {
    const m = new Map<string, Bencode.Encodable>([
      ["\xff", 1],
      ["a", 2],
      ["\x80", 3],
      ["B", 4],
      ["", 5],
      ["ab", 6],
      ["\xf0\x9f\x98\x80", 7],
      ["\xef\xbf\xbd", 8]
    ])
    expect(s(Bencode.encode(m))).toBe(
      "d0:i5e1:Bi4e1:ai2e2:abi6e1:\x80i3e3:\xef\xbf\xbdi8e4:\xf0\x9f\x98\x80i7e1:\xffi1ee"
    )
  })

  it("sorts plain-object keys by their UTF-8 bytes, not UTF-16 order, and skips undefined", () => {
    // UTF-16 order would put U+1F600 (a surrogate pair, 0xD83D…) before U+FFFD; UTF-8 order puts it after
    const out = Bencode.encode({ z: 1, "é": 2, "\u{1F600}": 3, "\uFFFD": 4, gone: undefined })
    expect(s(out)).toBe("d1:zi1e2:\xc3\xa9i2e3:\xef\xbf\xbdi4e4:\xf0\x9f\x98\x80i3ee")
  })

  it("writes strings as UTF-8, integers, bigints and nested values", () => {
    expect(s(Bencode.encode("é"))).toBe("2:\xc3\xa9")
    expect(s(Bencode.encode(-0))).toBe("i0e")
    expect(s(Bencode.encode(-42))).toBe("i-42e")
    expect(s(Bencode.encode(2n ** 63n - 1n))).toBe("i9223372036854775807e")
    expect(s(Bencode.encode([1, [new Uint8Array([0, 255])], new Map()]))).toBe("li1el2:\x00\xffedee")
  })

  it("refuses values bencode cannot represent exactly", () => {
    expect(() => Bencode.encode(1.5)).toThrow(RangeError)
    expect(() => Bencode.encode(2 ** 53)).toThrow(RangeError)
    expect(() => Bencode.encode(Number.NaN)).toThrow(RangeError)
    // Map keys are binary strings: a char above 0xff would be silently truncated, so it is refused
    expect(() => Bencode.encode(new Map([["\u0100", 1]]))).toThrow(RangeError)
    expect(() => Bencode.encode(new Map([["\xff\u0100", 1]]))).toThrow(RangeError)
    // the decoder rejects integers outside int64, so the encoder does not write them
    expect(() => Bencode.encode(2n ** 63n)).toThrow(RangeError)
    expect(() => Bencode.encode(-(2n ** 63n) - 1n)).toThrow(RangeError)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Properties

const MIN_I64 = -(2n ** 63n)
const MAX_I64 = 2n ** 63n - 1n
const toBValueInt = (n: bigint): number | bigint =>
  n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n

const intArb: FastCheck.Arbitrary<number | bigint> = FastCheck.oneof(
  FastCheck.integer({ min: -1000, max: 1000 }),
  FastCheck.maxSafeInteger(),
  FastCheck.bigInt({ min: MIN_I64, max: MAX_I64 }).map(toBValueInt),
  FastCheck.constantFrom(MIN_I64, MAX_I64, 2n ** 53n, -(2n ** 53n), Number.MAX_SAFE_INTEGER, 0)
)

const valueArb = (key: FastCheck.Arbitrary<string>, int: FastCheck.Arbitrary<number | bigint>) =>
  FastCheck.letrec<{ value: Bencode.BValue }>((tie) => ({
    value: FastCheck.oneof(
      { depthSize: "small", maxDepth: 5, withCrossShrink: true },
      int,
      FastCheck.uint8Array({ maxLength: 24 }),
      FastCheck.array(tie("value"), { maxLength: 5 }),
      FastCheck.array(FastCheck.tuple(key, tie("value")), { maxLength: 5 }).map((es) => new Map(es))
    )
  })).value

const binaryKey = FastCheck.uint8Array({ maxLength: 8 }).map(Bytes.toBinaryString)
const anyValue = valueArb(binaryKey, intArb)

const RUNS = { numRuns: 400 }

describe("Bencode properties", () => {
  it("encode → decode round trip (strict and lenient) for arbitrary values", () => {
    FastCheck.assert(
      FastCheck.property(anyValue, (v) => {
        const bytes = Bencode.encode(v)
        const strict = Bencode.decode(bytes)
        const lenient = Bencode.decode(bytes, { mode: "lenient" })
        expect(canon(Either.getOrThrow(strict))).toEqual(canon(v))
        expect(canon(Either.getOrThrow(lenient))).toEqual(canon(v))
        // canonical output re-encodes to itself
        expect(Bytes.equals(Bencode.encode(Either.getOrThrow(strict)), bytes)).toBe(true)
      }),
      RUNS
    )
  })

  const REASONS = new Set(Object.keys(cases))
  const checkNeverThrows = (input: Uint8Array) => {
    for (const options of [undefined, { mode: "lenient" as const }, { copy: true, maxDepth: 3 }]) {
      const r = Bencode.decode(input, options)
      if (Either.isLeft(r)) {
        expect(r.left).toBeInstanceOf(Bencode.BencodeError)
        expect(REASONS.has(r.left.reason)).toBe(true)
        expect(r.left.offset).toBeGreaterThanOrEqual(0)
        expect(r.left.offset).toBeLessThanOrEqual(input.length)
      }
      const p = Bencode.decodePrefix(input, options)
      if (Either.isRight(p)) expect(p.right.end).toBeLessThanOrEqual(input.length)
      else expect(p.left.offset).toBeLessThanOrEqual(input.length)
    }
  }

  // Mostly bencode's own alphabet, so inputs get past the first byte
  const bencodeish = FastCheck.array(
    FastCheck.oneof(
      FastCheck.constantFrom(..."ilde0123456789:-".split("").map((c) => c.charCodeAt(0))),
      FastCheck.integer({ min: 0, max: 255 })
    ),
    { maxLength: 64 }
  ).map((xs) => Uint8Array.from(xs))

  it("decode never throws on arbitrary bytes; failures carry an offset within the input", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.oneof(FastCheck.uint8Array({ maxLength: 64 }), bencodeish), checkNeverThrows),
      { numRuns: 1000 }
    )
  })

  it("decode never throws on mutated valid encodings (flip / insert / delete bytes)", () => {
    const mutation = FastCheck.tuple(
      FastCheck.constantFrom("flip", "insert", "delete"),
      FastCheck.nat(),
      FastCheck.integer({ min: 0, max: 255 })
    )
    FastCheck.assert(
      FastCheck.property(anyValue, FastCheck.array(mutation, { minLength: 1, maxLength: 4 }), (v, ms) => {
        const bytes = Array.from(Bencode.encode(v))
        for (const [kind, at, byte] of ms) {
          const i = bytes.length === 0 ? 0 : at % bytes.length
          if (kind === "flip") bytes[i] = (bytes[i] ?? 0) ^ (1 << (byte % 8))
          else if (kind === "insert") bytes.splice(i, 0, byte)
          else bytes.splice(i, 1)
        }
        checkNeverThrows(Uint8Array.from(bytes))
      }),
      RUNS
    )
  })

  // The npm package decodes dict keys as UTF-8 text (hex when not UTF-8) and integers as doubles, and its encoder
  // sorts object keys by UTF-16 units: generate what it can represent (safe integers, keys of code points below the
  // surrogates, so UTF-16 and UTF-8 orders agree; no "__proto__").
  const belowSurrogates = FastCheck.integer({ min: 0, max: 0xd7ff }).map((c) => String.fromCodePoint(c))
  const textKey = FastCheck.string({ unit: belowSurrogates, maxLength: 6 })
    .filter((k) => k !== "__proto__")
    .map((k) => Bytes.toBinaryString(Bytes.encodeUtf8(k)))
  const npmValue = valueArb(textKey, FastCheck.maxSafeInteger())

  type Npm = number | Uint8Array | ReadonlyArray<Npm> | { readonly [k: string]: Npm }
  const toNpm = (v: Bencode.BValue): Npm => {
    if (typeof v === "bigint") throw new Error("not generated")
    if (typeof v === "number" || v instanceof Uint8Array) return v
    if (Bencode.isList(v)) return v.map(toNpm)
    const o: { [k: string]: Npm } = {}
    for (const [k, x] of v) o[Bytes.decodeUtf8(Bytes.fromBinaryString(k))!] = toNpm(x)
    return o
  }
  const canonNpm = (x: unknown): Canon => {
    if (typeof x === "number") return x
    if (x instanceof Uint8Array) return `bytes:${Bytes.toHex(x)}`
    if (Array.isArray(x)) return x.map(canonNpm)
    const o = x as { readonly [k: string]: unknown }
    return {
      dict: Object.keys(o)
        .map((k) => Bytes.toBinaryString(Bytes.encodeUtf8(k)))
        .sort((p, q) => (p < q ? -1 : p > q ? 1 : 0))
        .map((bk) => [bk, canonNpm(o[Bytes.decodeUtf8(Bytes.fromBinaryString(bk))!])])
    }
  }

  it("differential vs npm bencode: both decode canonical encodings alike, and its encoder agrees with ours", () => {
    FastCheck.assert(
      FastCheck.property(npmValue, (v) => {
        const ours = Bencode.encode(v)
        expect(canonNpm(bencode.decode(ours))).toEqual(canon(Either.getOrThrow(Bencode.decode(ours))))
        expect(Bytes.toHex(bencode.encode(toNpm(v)))).toBe(Bytes.toHex(ours))
      }),
      RUNS
    )
  })
})
