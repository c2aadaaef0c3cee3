import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as FastCheck from "effect/FastCheck"
import { existsSync, readFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Magnet from "../../src/metainfo/Magnet.ts"

const H1 = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
const H2 = "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
const XT = `xt=urn:btih:${H1}`

const ok = (uri: string, options?: Magnet.ParseOptions): Magnet.Magnet => {
  const r = Magnet.parse(uri, options)
  if (Either.isLeft(r)) throw new Error(`expected ${uri} to parse, got ${r.left.message}`)
  return r.right
}
const lenient = (uri: string): Magnet.Magnet => ok(uri, { mode: "lenient" })
const reason = (uri: string, options?: Magnet.ParseOptions): Magnet.Reason | "ok" => {
  const r = Magnet.parse(uri, options)
  if (Either.isRight(r)) return "ok"
  expect(r.left._tag).toBe("MagnetError")
  expect(r.left.message).toMatch(/^invalid magnet URI: [^\n]+$/)
  return r.left.reason
}
const hex = (m: Magnet.Magnet) => ({
  v1: m.infoHashes.v1 === undefined ? undefined : Bytes.toHex(m.infoHashes.v1),
  v2: m.infoHashes.v2 === undefined ? undefined : Bytes.toHex(m.infoHashes.v2)
})

describe("Magnet.parse: info-hashes", () => {
  it("btih as 40 hex chars in either case", () => {
    expect(hex(ok(`magnet:?${XT}`))).toEqual({ v1: H1, v2: undefined })
    expect(hex(ok(`magnet:?xt=urn:btih:${H1.toUpperCase()}`)).v1).toBe(H1)
    const plain = { infoHashes: { v1: Bytes.fromHex(H1) }, trackers: [], webSeeds: [], peers: [] }
    expect(ok(`magnet:?${XT}`)).toEqual(plain)
  })

  it("btih as 32 base32 chars (RFC 4648) in either case", () => {
    expect(hex(ok("magnet:?xt=urn:btih:MFRGCYTBMJQWEYLCMFRGCYTBMJQWEYLC")).v1).toBe("61626162".repeat(5))
    expect(hex(ok("magnet:?xt=urn:btih:2i2uaefdzjfn4w3ue65qsotcuoez744b")).v1).toBe(
      "d2354010a3ca4ade5b7427bb093a62a3899ff381"
    )
    expect(reason("magnet:?xt=urn:btih:0I2UAEFDZJFN4W3UE65QSOTCUOEZ744B")).toBe("invalid-info-hash")
    expect(reason("magnet:?xt=urn:btih:MFRGCYTBMJQWEYLCMFRGCYTBMJQWEYL=")).toBe("invalid-info-hash")
  })

  it("btmh: multihash 0x12 0x20 (SHA-256) + 64 hex → v2; other codes and lengths are invalid", () => {
    expect(hex(ok(`magnet:?xt=urn:btmh:1220${H2}`))).toEqual({ v1: undefined, v2: H2 })
    expect(reason(`magnet:?xt=urn:btmh:1114${H1}`)).toBe("invalid-info-hash")
    expect(reason(`magnet:?xt=urn:btmh:1220${H2}00`)).toBe("invalid-info-hash")
    expect(reason(`magnet:?xt=urn:btmh:${H2}`)).toBe("invalid-info-hash")
  })

  it("hybrid: both hashes, in either order", () => {
    const both = { v1: H1, v2: H2 }
    expect(hex(ok(`magnet:?${XT}&xt=urn:btmh:1220${H2}`))).toEqual(both)
    expect(hex(ok(`magnet:?xt=urn:btmh:1220${H2}&${XT}`))).toEqual(both)
    expect(hex(ok(`magnet:?xt.1=urn:btmh:1220${H2}&xt.2=urn:btih:${H1}`))).toEqual(both)
  })

  it("multiple xt: the same hash repeated (any case, hex or base32) is fine", () => {
    expect(hex(ok(`magnet:?${XT}&xt=urn:btih:${H1.toUpperCase()}`)).v1).toBe(H1)
    const d = "d2354010a3ca4ade5b7427bb093a62a3899ff381"
    expect(hex(ok(`magnet:?xt=urn:btih:${d}&xt=urn:btih:2I2UAEFDZJFN4W3UE65QSOTCUOEZ744B`)).v1).toBe(d)
    expect(hex(ok(`magnet:?xt=urn:btmh:1220${H2}&xt.2=urn:btmh:1220${H2.toUpperCase()}`)).v2).toBe(H2)
  })

  it("a different hash of the same version conflicts (in both modes); other URNs are ignored", () => {
    const other = "ab".repeat(20)
    expect(reason(`magnet:?${XT}&xt=urn:btih:${other}`)).toBe("conflicting-info-hash")
    expect(reason(`magnet:?${XT}&xt=urn:btih:${other}`, { mode: "lenient" })).toBe("conflicting-info-hash")
    expect(reason(`magnet:?xt=urn:btmh:1220${H2}&xt=urn:btmh:1220${"ab".repeat(32)}`)).toBe("conflicting-info-hash")
    expect(hex(ok(`magnet:?xt=urn:ed2k:31D6CFE0D16AE931B73C59D7E0C089C0&${XT}&xt=urn:sha1:YNCKHTQC`)).v1).toBe(H1)
  })

  it("percent-escaped xt and case-insensitive names and URN prefixes", () => {
    expect(hex(ok(`magnet:?xt=urn%3Abtih%3A${H1}`)).v1).toBe(H1)
    expect(hex(ok(`magnet:?xt=urn:btih:${H1.slice(0, 39)}%64`)).v1).toBe(H1)
    expect(hex(ok(`magnet:?XT=URN:BTIH:${H1}`)).v1).toBe(H1)
    expect(hex(ok(`MAGNET:?Xt=urn:BtMh:1220${H2}`)).v2).toBe(H2)
  })

  it("missing and invalid hashes", () => {
    expect(reason("magnet:?dn=foo")).toBe("missing-info-hash")
    expect(reason("magnet:?xt=blah")).toBe("missing-info-hash")
    expect(reason("magnet:?")).toBe("missing-info-hash")
    expect(reason("magnet:?xt=urn:btih:abababab")).toBe("invalid-info-hash")
    expect(reason("magnet:?xt=urn:btih:" + "z".repeat(40))).toBe("invalid-info-hash")
    expect(reason("magnet:?xt=urn:btih:this hash is really broken")).toBe("invalid-info-hash")
    expect(reason("magnet:?xt=urn:btih:")).toBe("invalid-info-hash")
    expect(reason("magnet:?xt=urn%%3A")).toBe("invalid-encoding")
    expect(reason("magnet:?xt=urn%%3A", { mode: "lenient" })).toBe("invalid-encoding")
  })
})

describe("Magnet.parse: the rest", () => {
  it("not a magnet", () => {
    for (const uri of ["", "http://example.com/?xt=urn:btih:" + H1, "magnet:", "magnet:xt=urn:btih:" + H1]) {
      expect(reason(uri)).toBe("not-a-magnet")
    }
    expect(reason(`magnet:///?${XT}`)).toBe("not-a-magnet")
    expect(hex(ok(`  magnet:?${XT}\n`)).v1).toBe(H1)
  })

  it("dn: percent-decoded UTF-8, '+' is a space, %2B a plus; the last non-empty dn wins", () => {
    expect(ok(`magnet:?${XT}&dn=Ubuntu+11.04+%28Final%29`).name).toBe("Ubuntu 11.04 (Final)")
    expect(ok(`magnet:?${XT}&dn=a%2Bb%20c`).name).toBe("a+b c")
    expect(ok(`magnet:?${XT}&dn=%D0%92%D0%BE%D0%B9%D0%BD%D0%B0`).name).toBe("Война")
    expect(ok(`magnet:?${XT}&dn=Война`).name).toBe("Война")
    expect(ok(`magnet:?${XT}&dn=a&dn=b`).name).toBe("b")
    expect(ok(`magnet:?${XT}&dn=`).name).toBeUndefined()
    expect("name" in ok(`magnet:?${XT}`)).toBe(false)
  })

  it("bad escapes and invalid UTF-8: strict fails, lenient drops the value (or replaces bad UTF-8)", () => {
    expect(reason(`magnet:?${XT}&dn=a%G1`)).toBe("invalid-encoding")
    expect(reason(`magnet:?${XT}&dn=a%2`)).toBe("invalid-encoding")
    expect(reason(`magnet:?${XT}&tr=%FF`)).toBe("invalid-encoding")
    expect(lenient(`magnet:?${XT}&dn=ok&dn=a%G1`).name).toBe("ok")
    expect(lenient(`magnet:?${XT}&tr=a%G1&tr=b`).trackers).toEqual(["b"])
    expect(lenient(`magnet:?${XT}&dn=a%FFb`).name).toBe("a\uFFFDb")
  })

  it("tr, tr.N: in URI order, duplicates kept, empty dropped; tr.<non-digits> is another parameter", () => {
    const m = ok(`magnet:?tr.0=udp://1&tr.1=http://2&tr=http://3&${XT}&tr=http://3&tr=&tr.a=udp://x`)
    expect(m.trackers).toEqual(["udp://1", "http://2", "http://3", "http://3"])
    expect(ok(`magnet:?${XT}&tr=udp%3A%2F%2Ftracker.example%3A80%2Fa%3Fb%3Dc%26d`).trackers).toEqual([
      "udp://tracker.example:80/a?b=c&d"
    ])
  })

  it("ws web seeds", () => {
    expect(ok(`magnet:?${XT}&ws=http://foo.com/bar&Ws=http%3A%2F%2Fbar.com%2Ffoo`).webSeeds).toEqual([
      "http://foo.com/bar",
      "http://bar.com/foo"
    ])
  })

  it("x.pe peers: IPv4, [IPv6], host names, percent-encoded", () => {
    const peers = "x.pe=127.0.0.1:43&x.pe=[::1]:45&x.pe=peer.example.org:6881&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A1"
    const m = ok(`magnet:?${XT}&${peers}`)
    expect(m.peers).toEqual([
      { host: "127.0.0.1", port: 43 },
      { host: "::1", port: 45 },
      { host: "peer.example.org", port: 6881 },
      { host: "2001:db8::1", port: 1 }
    ])
  })

  it("x.pe: malformed peers fail in strict mode and are dropped in lenient mode", () => {
    const bad = [
      "<invalid1>",
      "<invalid2>:100",
      "127.0.0.1",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "127.0.0.1:-1",
      "127.0.0.1:",
      ":80",
      "::1:80",
      "[::1]80",
      "[::1",
      "[not-v6]:80",
      "1.2.3:80",
      "256.1.1.1:80",
      "-host.example:80",
      "a..b:80",
      "host:port"
    ]
    for (const p of bad) {
      expect([p, reason(`magnet:?${XT}&x.pe=${encodeURIComponent(p)}`)]).toEqual([p, "invalid-peer"])
      expect(lenient(`magnet:?${XT}&x.pe=${encodeURIComponent(p)}&x.pe=1.2.3.4:5`).peers).toEqual([
        { host: "1.2.3.4", port: 5 }
      ])
    }
  })

  it("so: indices and ranges, sorted, overlapping and adjacent ones merged, several so united", () => {
    expect(ok(`magnet:?${XT}&so=0,2,4,6-8`).selectOnly).toEqual([
      { first: 0, last: 0 },
      { first: 2, last: 2 },
      { first: 4, last: 4 },
      { first: 6, last: 8 }
    ])
    expect(ok(`magnet:?${XT}&so=0,2-4,3-5`).selectOnly).toEqual([
      { first: 0, last: 0 },
      { first: 2, last: 5 }
    ])
    expect(ok(`magnet:?${XT}&so=2-4&so=1`).selectOnly).toEqual([{ first: 1, last: 4 }])
    expect(ok(`magnet:?${XT}&so=9,3`).selectOnly).toEqual([
      { first: 3, last: 3 },
      { first: 9, last: 9 }
    ])
    expect(ok(`magnet:?${XT}&so=0%2C1`).selectOnly).toEqual([{ first: 0, last: 1 }])
    expect(ok(`magnet:?${XT}&so=2147483647`).selectOnly).toEqual([{ first: 2147483647, last: 2147483647 }])
    expect("selectOnly" in ok(`magnet:?${XT}`)).toBe(false)
  })

  it("so: malformed values fail in strict mode; lenient mode skips bad items as libtorrent does", () => {
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<Magnet.SelectRange> | undefined]> = [
      ["so=7-4,100000000000&so=10", [{ first: 10, last: 10 }]],
      ["so=-4&so=1", [{ first: 1, last: 1 }]],
      ["so=3-&so=1", [{ first: 1, last: 1 }]],
      ["so=a&so=1", [{ first: 1, last: 1 }]],
      ["so=&so=,,1", [{ first: 1, last: 1 }]],
      ['so="1,2"', undefined],
      ["so=1,a", undefined], // libtorrent skips a value with any other character whole
      ["so=1-2-3,5", [{ first: 5, last: 5 }]],
      ["so=2147483648", undefined]
    ]
    for (const [so, expected] of cases) {
      expect([so, reason(`magnet:?${XT}&${so}`)]).toEqual([so, "invalid-select-only"])
      expect([so, lenient(`magnet:?${XT}&${so}`).selectOnly]).toEqual([so, expected])
    }
  })

  it("xl exact length", () => {
    expect(ok(`magnet:?${XT}&xl=10826029`).exactLength).toBe(10826029)
    expect(ok(`magnet:?${XT}&xl=0`).exactLength).toBe(0)
    for (const xl of ["-1", "1.5", "", "9007199254740992", "abc"]) {
      expect([xl, reason(`magnet:?${XT}&xl=${xl}`)]).toEqual([xl, "invalid-length"])
      expect("exactLength" in lenient(`magnet:?${XT}&xl=${xl}`)).toBe(false)
    }
  })

  it("unknown, valueless and nameless parameters are ignored", () => {
    const m = ok(`magnet:?"foo=bar&empty&&=x&${XT}&kt=a+b&x.foo=1&dht=127.0.0.1:43&xt.x=garbage&tr.1x=y`)
    expect(m).toEqual({ infoHashes: { v1: Bytes.fromHex(H1) }, trackers: [], webSeeds: [], peers: [] })
  })
})

describe("Magnet.format", () => {
  it("writes xt (v1, v2), dn, xl, tr, ws, x.pe, so with values percent-encoded as UTF-8", () => {
    const m = ok(
      `magnet:?xt=urn:btmh:1220${H2}&${XT}&dn=A+%26+B%3D%2B%25%23+é&tr=udp://t:1/a?b&x.pe=[::1]:2&x.pe=h.example:3` +
        `&so=4-6,1&ws=http://w/&xl=7`
    )
    expect(Magnet.format(m)).toBe(
      `magnet:?xt=urn:btih:${H1}&xt=urn:btmh:1220${H2}&dn=A%20%26%20B%3D%2B%25%23%20%C3%A9&xl=7` +
        `&tr=udp://t:1/a?b&ws=http://w/&x.pe=%5B::1%5D:2&x.pe=h.example:3&so=1,4-6`
    )
    expect(Magnet.parse(Magnet.format(m))).toEqual(Either.right(m))
  })

  it("never throws, even on lone surrogates (written as U+FFFD)", () => {
    const m: Magnet.Magnet = { ...ok(`magnet:?${XT}`), name: "a\uD800b" }
    expect(ok(Magnet.format(m)).name).toBe("a\uFFFDb")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Properties

const text = FastCheck.string({ unit: "binary", minLength: 1, maxLength: 12 })
const peerArb: FastCheck.Arbitrary<Magnet.Peer> = FastCheck.record({
  host: FastCheck.oneof(FastCheck.ipV4(), FastCheck.ipV6(), FastCheck.domain()),
  port: FastCheck.integer({ min: 1, max: 65535 })
})
// sorted, disjoint, non-adjacent: what parse produces
const rangesArb = FastCheck.array(FastCheck.tuple(FastCheck.nat(5), FastCheck.nat(3)), { minLength: 1, maxLength: 5 })
  .map((steps) => {
    const out: Array<Magnet.SelectRange> = []
    let next = 0
    for (const [gap, len] of steps) {
      const first = next + gap
      out.push({ first, last: first + len })
      next = first + len + 2
    }
    return out
  })
const infoHashesArb: FastCheck.Arbitrary<Magnet.InfoHashes> = FastCheck.oneof(
  FastCheck.record({ v1: FastCheck.uint8Array({ minLength: 20, maxLength: 20 }) }),
  FastCheck.record({ v2: FastCheck.uint8Array({ minLength: 32, maxLength: 32 }) }),
  FastCheck.record({
    v1: FastCheck.uint8Array({ minLength: 20, maxLength: 20 }),
    v2: FastCheck.uint8Array({ minLength: 32, maxLength: 32 })
  })
) as FastCheck.Arbitrary<Magnet.InfoHashes>
const magnetArb: FastCheck.Arbitrary<Magnet.Magnet> = FastCheck.record(
  {
    infoHashes: infoHashesArb,
    name: text,
    trackers: FastCheck.array(text, { maxLength: 3 }),
    webSeeds: FastCheck.array(text, { maxLength: 2 }),
    peers: FastCheck.array(peerArb, { maxLength: 3 }),
    selectOnly: rangesArb,
    exactLength: FastCheck.maxSafeNat()
  },
  { requiredKeys: ["infoHashes", "trackers", "webSeeds", "peers"] }
)

// URIs made of magnet-ish pieces, so that fuzzing gets past the prefix and into every parameter's parser
const fragment = FastCheck.oneof(
  FastCheck.constantFrom("xt=urn:btih:", "xt=urn:btmh:1220", "dn=", "tr=", "tr.1=", "ws=", "x.pe=", "so=", "xl=", "&"),
  FastCheck.constantFrom(H1, H2, "MFRGCYTBMJQWEYLCMFRGCYTBMJQWEYLC", "%", "%2", "%FF", "%3A", "+", "=", ":", "[", "]"),
  FastCheck.constantFrom("::1", "1.2.3.4", "-", ",", "65535", "0", "9999999999999999999", "\uD800", "\u0000"),
  FastCheck.string({ unit: "binary", maxLength: 4 })
)
const magnetish = FastCheck.array(fragment, { maxLength: 16 }).map((xs) => `magnet:?${xs.join("")}`)

const REASONS: ReadonlySet<string> = new Set<Magnet.Reason>([
  "not-a-magnet",
  "missing-info-hash",
  "invalid-info-hash",
  "conflicting-info-hash",
  "invalid-encoding",
  "invalid-peer",
  "invalid-select-only",
  "invalid-length"
])

describe("Magnet properties", () => {
  it("parse(format(m)) == m for arbitrary magnets, in both modes", () => {
    FastCheck.assert(
      FastCheck.property(magnetArb, (m) => {
        const uri = Magnet.format(m)
        expect(Magnet.parse(uri)).toEqual(Either.right(m))
        expect(Magnet.parse(uri, { mode: "lenient" })).toEqual(Either.right(m))
      }),
      { numRuns: 300 }
    )
  })

  it("never throws on arbitrary strings; errors are MagnetErrors with a known reason and a one-line message", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.oneof(FastCheck.string({ unit: "binary" }), magnetish), (uri) => {
        for (const mode of ["strict", "lenient"] as const) {
          const r = Magnet.parse(uri, { mode })
          if (Either.isLeft(r)) {
            expect(r.left).toBeInstanceOf(Magnet.MagnetError)
            expect(REASONS.has(r.left.reason)).toBe(true)
            expect(r.left.message).not.toMatch(/[\r\n]/)
          } else {
            // whatever parses is a fixpoint of format → parse
            expect(Magnet.parse(Magnet.format(r.right), { mode })).toEqual(r)
          }
        }
      }),
      { numRuns: 1000 }
    )
  })

  it("strict accepts only what lenient accepts, and then the same value", () => {
    FastCheck.assert(
      FastCheck.property(magnetish, (uri) => {
        const strict = Magnet.parse(uri)
        if (Either.isRight(strict)) expect(Magnet.parse(uri, { mode: "lenient" })).toEqual(strict)
      }),
      { numRuns: 500 }
    )
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Conformance with libtorrent 2.0.8 over ../shared/fixtures/magnets.txt

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const fixturePath = resolve(repoRoot, "../shared/fixtures/magnets.txt")
const haveFixtures = existsSync(fixturePath)
if (!haveFixtures) {
  if (process.env["CI"]) throw new Error(`magnet fixtures missing at ${fixturePath} (required in CI)`)
  console.warn(`\n*** SKIPPING magnet conformance tests: ${fixturePath} not found ***\n`)
}

interface Expected {
  readonly line: number
  readonly uri: string
  readonly comment: string
  readonly libtorrent:
    | { readonly ok: false; readonly error: string }
    | {
        readonly ok: true
        readonly v1: string | undefined
        readonly v2: string | undefined
        readonly name: string | undefined
        readonly trackers: number
        readonly webSeeds: number
      }
}

const OK_RE = /^v1=(\S+) v2=(\S+)(?: dn='(.*)')? trackers=(\d+) web_seeds=(\d+)$/
const readFixtures = (): ReadonlyArray<Expected> => {
  const lines = readFileSync(fixturePath, "utf8").split("\n")
  const out: Array<Expected> = []
  lines.forEach((uri, i) => {
    if (!uri.startsWith("magnet:")) return
    const comment = lines[i - 1] ?? ""
    const m = /=> libtorrent 2\.0\.8: (?:ok (.*)|error: (.*))$/.exec(comment)
    if (m === null) throw new Error(`line ${i + 1}: no libtorrent result in ${JSON.stringify(comment)}`)
    if (m[2] !== undefined) {
      out.push({ line: i + 1, uri, comment, libtorrent: { ok: false, error: m[2] } })
      return
    }
    const f = OK_RE.exec(m[1]!)
    if (f === null) throw new Error(`line ${i}: cannot read ${JSON.stringify(m[2])}`)
    const none = (h: string) => (h === "none" ? undefined : h)
    out.push({
      line: i + 1,
      uri,
      comment,
      libtorrent: {
        ok: true,
        v1: none(f[1]!),
        v2: none(f[2]!),
        name: f[3],
        trackers: Number(f[4]),
        webSeeds: Number(f[5])
      }
    })
  })
  return out
}

// libtorrent's error messages and our reasons
const LIBTORRENT_ERRORS: Record<string, Magnet.Reason> = {
  "unsupported URL protocol": "not-a-magnet",
  "missing info-hash from URI": "missing-info-hash",
  "invalid info-hash": "invalid-info-hash",
  "invalid escaped string": "invalid-encoding"
}

type Outcome =
  | { readonly ok: false; readonly error: string }
  | {
      readonly ok: true
      readonly v1: string | undefined
      readonly v2: string | undefined
      readonly name: string | undefined
      readonly trackers: number
      readonly webSeeds: number
    }

// transmission's test magnet
const D = "d2354010a3ca4ade5b7427bb093a62a3899ff381"
const D_XT = `magnet:?xt=urn:btih:${D}`
const D_TR1 = "tr=http%3A%2F%2Ftracker.openbittorrent.com%2Fannounce"
const D_TR2 = "tr=http%3A%2F%2Ftracker.opentracker.org%2Fannounce"
const D_WS = "ws=http%3A%2F%2Fserver.webseed.org%2Fpath%2Fto%2Ffile"

/** Where lenient mode deliberately differs from libtorrent 2.0.8: our outcome and why (checked exactly both ways). */
const DIFFERENCES: ReadonlyArray<{ readonly uri: string; readonly ours: Outcome; readonly reason: string }> = [
  {
    uri: `magnet:?xt=urn:btih:${"z".repeat(40)}`,
    ours: { ok: false, error: "invalid-info-hash" },
    reason: "libtorrent's from_hex fails silently and it goes on with an all-zero v1 hash; we reject non-hex digits"
  },
  {
    uri: `magnet:?xt=urn:btmh:1220${"z".repeat(64)}`,
    ours: { ok: false, error: "invalid-info-hash" },
    reason: "the same for the v2 hash"
  },
  {
    uri: `${D_XT}&empty&dn=Display%20Name&${D_TR1}&${D_TR2}&${D_WS}`,
    ours: { ok: true, v1: D, v2: undefined, name: "Display Name", trackers: 2, webSeeds: 1 },
    reason: "libtorrent splits on '=' before '&': a valueless '&empty' swallows the next name ('empty&dn'), dn is lost"
  },
  {
    uri: `${D_XT}&empty&empty_again&dn=Display%20Name&${D_TR1}&empty_again&=&${D_WS}&${D_TR2}`,
    ours: { ok: true, v1: D, v2: undefined, name: "Display Name", trackers: 2, webSeeds: 1 },
    reason: "the same: 'empty&empty_again&dn' swallows dn in libtorrent"
  }
]

/** What strict mode (the default) rejects although lenient mode, like libtorrent, reads it. */
const STRICT_REJECTS: ReadonlyArray<{ readonly uri: string; readonly ours: Magnet.Reason }> = [
  {
    uri: `magnet:?xt=urn:btih:${H1}&dn=foo&x.pe=127.0.0.1:43&x.pe=<invalid1>&x.pe=<invalid2>:100&x.pe=[::1]:45`,
    ours: "invalid-peer"
  },
  { uri: `magnet:?xt=urn:btih:${H1}&dn=foo&so=7-4,100000000&dht=10.0.0.1:1337&so=10`, ours: "invalid-select-only" },
  { uri: `magnet:?xt=urn:btih:${H1}&dn=foo&so=-4&so=1`, ours: "invalid-select-only" },
  { uri: `magnet:?xt=urn:btih:${H1}&dn=foo&so=3-&so=1`, ours: "invalid-select-only" },
  { uri: `magnet:?xt=urn:btih:${H1}&dn=foo&so=a&so=1`, ours: "invalid-select-only" },
  { uri: `magnet:?xt=urn:btih:${H1}&dn=foo&so=&dht=10.0.0.1:1337&so=,,1`, ours: "invalid-select-only" },
  { uri: `magnet:?xt=urn:btih:${H1}&dn=foo&so="1,2"`, ours: "invalid-select-only" }
]

describe.skipIf(!haveFixtures)("Magnet conformance: libtorrent 2.0.8 over shared/fixtures/magnets.txt", () => {
  const fixtures = haveFixtures ? readFixtures() : []

  it("reads every URI and its libtorrent result from the fixture file", () => {
    expect(fixtures.length).toBe(72)
    expect(fixtures.filter((f) => !f.libtorrent.ok).length).toBeGreaterThan(10)
  })

  it("lenient mode agrees with libtorrent on every URI except the listed differences", () => {
    const mismatches: Array<{ line: number; uri: string; ours: Outcome; libtorrent: Outcome }> = []
    for (const f of fixtures) {
      const r = Magnet.parse(f.uri, { mode: "lenient" })
      const ours: Outcome = Either.isLeft(r)
        ? { ok: false, error: r.left.reason }
        : {
            ok: true,
            ...hex(r.right),
            name: r.right.name,
            trackers: r.right.trackers.length,
            webSeeds: r.right.webSeeds.length
          }
      const lt = f.libtorrent
      const libtorrent: Outcome = lt.ok
        ? lt
        : { ok: false, error: LIBTORRENT_ERRORS[lt.error] ?? `unmapped: ${lt.error}` }
      if (!Equal.equals(Data.struct(ours), Data.struct(libtorrent))) {
        mismatches.push({ line: f.line, uri: f.uri, ours, libtorrent })
      }
    }
    const pick = ({ uri, ours }: { uri: string; ours: Outcome }) => ({ uri, ours })
    expect(mismatches.map(pick)).toEqual(DIFFERENCES.map(pick))
  })

  it("strict mode gives the lenient result except on the listed URIs, which it rejects with the listed reason", () => {
    const rejected: Array<string> = []
    for (const f of fixtures) {
      const strict = Magnet.parse(f.uri)
      const loose = Magnet.parse(f.uri, { mode: "lenient" })
      const listed = STRICT_REJECTS.find((s) => s.uri === f.uri)
      if (listed !== undefined) {
        expect(Either.isRight(loose), `line ${f.line}`).toBe(true)
        expect(Either.isLeft(strict) && strict.left.reason, `line ${f.line}`).toBe(listed.ours)
        rejected.push(f.uri)
      } else {
        expect(strict, `line ${f.line}: ${f.uri}`).toEqual(loose)
      }
    }
    expect(rejected.sort()).toEqual(STRICT_REJECTS.map((s) => s.uri).sort())
  })

  it("peers, select-only and names of particular fixture lines", () => {
    const byUri = (needle: string) => fixtures.find((f) => f.uri.includes(needle))!.uri
    expect(lenient(byUri("x.pe=<invalid1>")).peers).toEqual([
      { host: "127.0.0.1", port: 43 },
      { host: "::1", port: 45 }
    ])
    expect(ok(byUri("x.pe=127.0.0.1:6881&x.pe=1.2.3.4:1234")).peers).toEqual([
      { host: "127.0.0.1", port: 6881 },
      { host: "1.2.3.4", port: 1234 }
    ])
    expect(ok(byUri("so=0-1,3-5")).selectOnly).toEqual([
      { first: 0, last: 1 },
      { first: 3, last: 5 }
    ])
    expect(lenient(byUri("so=7-4")).selectOnly).toEqual([
      { first: 10, last: 10 },
      { first: 100000000, last: 100000000 }
    ])
  })

  it("every parsed fixture survives format → parse unchanged", () => {
    for (const f of fixtures) {
      const r = Magnet.parse(f.uri, { mode: "lenient" })
      if (Either.isRight(r)) expect(Magnet.parse(Magnet.format(r.right), { mode: "lenient" })).toEqual(r)
    }
  })
})
