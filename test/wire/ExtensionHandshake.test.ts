import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as ExtensionHandshake from "../../src/wire/ExtensionHandshake.ts"

const bin = (s: string): Uint8Array => Bytes.fromBinaryString(s)
const text = (b: Uint8Array): string => Bytes.toBinaryString(b)

const decodeRight = (payload: string | Uint8Array, lenient = false): ExtensionHandshake.ExtensionHandshake => {
  const r = ExtensionHandshake.decode(typeof payload === "string" ? bin(payload) : payload, { lenient })
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

const reasonOf = (payload: string | Uint8Array): string | undefined => {
  const r = ExtensionHandshake.decode(typeof payload === "string" ? bin(payload) : payload)
  return Either.isLeft(r) ? r.left.reason : undefined
}

describe("ExtensionHandshake.decode", () => {
  it("reads the BEP 10 example (binary extension names, port, client name)", () => {
    const h = decodeRight("d1:md11:LT_metadatai1e7:\xc2\xb5T_PEXi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e")
    expect(h.m).toEqual(new Map([["LT_metadata", 1], ["\xc2\xb5T_PEX", 2]]))
    expect(h.p).toBe(6881)
    expect(h.v).toBe("µTorrent 1.2")
    expect(h.reqq).toBeUndefined()
  })

  it("reads the BEP 9 example (ut_metadata id and metadata_size)", () => {
    const h = decodeRight("d1:md11:ut_metadatai3ee13:metadata_sizei31235ee")
    expect(h.m.get("ut_metadata")).toBe(3)
    expect(h.metadataSize).toBe(31235)
  })

  it("reads addresses, reqq and upload_only", () => {
    const h = decodeRight(
      "d4:ipv44:\x01\x02\x03\x04" + "4:ipv616:" + "\xfe\x80" + "\x00".repeat(13) + "\x01" + "1:mde" +
        "4:reqqi500e11:upload_onlyi1e6:yourip4:\x0a\x00\x00\x01e"
    )
    expect(h.ipv4).toEqual(Uint8Array.of(1, 2, 3, 4))
    expect(h.ipv6?.length).toBe(16)
    expect(h.reqq).toBe(500)
    expect(h.uploadOnly).toBe(true)
    expect(h.yourip).toEqual(Uint8Array.of(10, 0, 0, 1))
  })

  it("ignores unknown keys and drops optional keys of the wrong type or range", () => {
    const h = decodeRight(
      "d1:ei1e4:ipv43:abc" + "1:md1:ai300e1:bi-1e1:c1:x1:di0e1:fi7ee" + "13:metadata_sizei16777217e" +
        "1:p5:68811" + "4:reqqi-5e" + "11:upload_only1:y" + "1:vi3e" + "6:yourip5:abcdee"
    )
    expect(h).toEqual({ m: new Map([["d", 0], ["f", 7]]) })
  })

  it("drops a v that is not UTF-8 or too long, and a port out of range", () => {
    expect(decodeRight("d1:pi0e1:v2:\xff\xfee")).toEqual({ m: new Map() })
    expect(decodeRight(`d1:pi65536e1:v257:${"a".repeat(257)}e`)).toEqual({ m: new Map() })
  })

  it("clamps a huge reqq, bigint included", () => {
    expect(decodeRight("d4:reqqi100000ee").reqq).toBe(65535)
    expect(decodeRight("d4:reqqi9223372036854775807ee").reqq).toBe(65535)
  })

  it("treats a missing or non-dict m as no extensions", () => {
    expect(decodeRight("de").m.size).toBe(0)
    expect(decodeRight("d1:mli1eee").m.size).toBe(0)
  })

  it("drops extension names longer than 64 bytes", () => {
    const long = "x".repeat(65)
    expect(decodeRight(`d1:md2:oki2e65:${long}i1eee`).m).toEqual(new Map([["ok", 2]]))
  })

  it("fails on bad bencode, a non-dict, unsorted keys (strict) and too many extensions", () => {
    expect(reasonOf("d1:m")).toBe("bad-bencode")
    expect(reasonOf("le")).toBe("not-a-dict")
    expect(reasonOf("d1:pi1e1:mdee")).toBe("bad-bencode")
    expect(decodeRight("d1:pi1e1:mdee", true).p).toBe(1)
    const entries = Array.from({ length: 65 }, (_, i) => `e${String(i).padStart(2, "0")}`).sort()
    expect(reasonOf(`d1:md${entries.map((n) => `3:${n}i1e`).join("")}ee`)).toBe("too-many-extensions")
    expect(reasonOf(`d1:md${entries.slice(0, 64).map((n) => `3:${n}i1e`).join("")}ee`)).toBeUndefined()
  })
})

describe("ExtensionHandshake.encode", () => {
  it("writes canonical bencode", () => {
    const r = ExtensionHandshake.defaultRegistry()
    const h = ExtensionHandshake.ours(r, {
      v: "effect-torrent 0.1.0",
      p: 6881,
      reqq: 250,
      metadataSize: 1000,
      uploadOnly: true
    })
    expect(text(ExtensionHandshake.encode(h))).toBe(
      "d1:md12:ut_holepunchi3e11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei1000e1:pi6881e4:reqqi250e11:upload_onlyi1e" +
        "1:v20:effect-torrent 0.1.0e"
    )
  })

  it("refuses ids outside 0..255", () => {
    expect(() => ExtensionHandshake.encode({ m: new Map([["x", 256]]) })).toThrow(RangeError)
  })
})

describe("ExtensionHandshake.Registry", () => {
  it("numbers our extensions and tracks the peer's ids across re-handshakes", () => {
    let r = ExtensionHandshake.defaultRegistry()
    expect(ExtensionHandshake.ourId(r, "ut_metadata")).toBe(1)
    expect(ExtensionHandshake.ourId(r, "ut_pex")).toBe(2)
    expect(ExtensionHandshake.nameOf(r, 2)).toBe("ut_pex")
    expect(ExtensionHandshake.nameOf(r, 9)).toBeUndefined()
    expect(ExtensionHandshake.theirId(r, "ut_metadata")).toBeUndefined()

    r = ExtensionHandshake.withPeer(r, decodeRight("d1:md11:lt_donthavei7e11:ut_metadatai3e6:ut_pexi1eee"))
    expect(ExtensionHandshake.theirId(r, "ut_metadata")).toBe(3)
    expect(ExtensionHandshake.theirId(r, "ut_pex")).toBe(1)
    expect(r.theirs.has("lt_donthave")).toBe(false)

    // A later handshake disables ut_pex (id 0) and leaves ut_metadata as it was.
    r = ExtensionHandshake.withPeer(r, decodeRight("d1:md6:ut_pexi0eee"))
    expect(ExtensionHandshake.theirId(r, "ut_pex")).toBeUndefined()
    expect(ExtensionHandshake.theirId(r, "ut_metadata")).toBe(3)
  })

  it("rejects duplicate names", () => {
    expect(() => ExtensionHandshake.makeRegistry(["a", "a"])).toThrow(RangeError)
  })
})

const name = FastCheck.string({ minLength: 1, maxLength: 20 })
const optional = <A>(arb: FastCheck.Arbitrary<A>) => FastCheck.option(arb, { nil: undefined })

const handshake: FastCheck.Arbitrary<ExtensionHandshake.ExtensionHandshake> = FastCheck.record({
  m: FastCheck.uniqueArray(FastCheck.tuple(name, FastCheck.integer({ min: 0, max: 255 })), {
    maxLength: 10,
    selector: ([n]) => n
  }).map((entries) => new Map(entries)),
  v: optional(FastCheck.string({ maxLength: 60 })),
  p: optional(FastCheck.integer({ min: 1, max: 65535 })),
  reqq: optional(FastCheck.integer({ min: 1, max: 65535 })),
  yourip: optional(FastCheck.oneof(FastCheck.uint8Array({ minLength: 4, maxLength: 4 }),
    FastCheck.uint8Array({ minLength: 16, maxLength: 16 }))),
  ipv4: optional(FastCheck.uint8Array({ minLength: 4, maxLength: 4 })),
  ipv6: optional(FastCheck.uint8Array({ minLength: 16, maxLength: 16 })),
  metadataSize: optional(FastCheck.integer({ min: 1, max: ExtensionHandshake.maxMetadataSize })),
  uploadOnly: optional(FastCheck.boolean())
}).map((h) => {
  // exactOptionalPropertyTypes: absent, not undefined.
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = v
  return out as unknown as ExtensionHandshake.ExtensionHandshake
})

/** A valid payload with a few bytes flipped, inserted or removed. */
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

const checkInvariants = (h: ExtensionHandshake.ExtensionHandshake): void => {
  expect(h.m.size).toBeLessThanOrEqual(ExtensionHandshake.maxExtensions)
  for (const [n, id] of h.m) {
    expect(n.length).toBeGreaterThan(0)
    expect(n.length).toBeLessThanOrEqual(ExtensionHandshake.maxNameLength)
    expect(id >= 0 && id <= 255).toBe(true)
  }
  if (h.reqq !== undefined) expect(h.reqq >= 1 && h.reqq <= ExtensionHandshake.maxReqq).toBe(true)
  if (h.metadataSize !== undefined) expect(h.metadataSize <= ExtensionHandshake.maxMetadataSize).toBe(true)
  if (h.p !== undefined) expect(h.p >= 1 && h.p <= 65535).toBe(true)
}

describe("ExtensionHandshake properties", () => {
  it.prop("decode(encode(h)) is h", [handshake], ([h]) => {
    expect(decodeRight(ExtensionHandshake.encode(h))).toEqual(h)
  })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 300 })], ([b]) => {
    const r = ExtensionHandshake.decode(b)
    if (Either.isRight(r)) checkInvariants(r.right)
  })

  it.prop(
    "never throws on mutated valid payloads, and what it returns is within bounds",
    [mutate(handshake.map(ExtensionHandshake.encode))],
    ([b]) => {
      for (const lenient of [false, true]) {
        const r = ExtensionHandshake.decode(b, { lenient })
        if (Either.isRight(r)) checkInvariants(r.right)
      }
    },
    { fastCheck: { numRuns: 500 } }
  )
})
