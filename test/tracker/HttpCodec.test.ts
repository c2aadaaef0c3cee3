/**
 * HTTP tracker codec: URL building (percent-encoding, existing queries, BEP 48 scrape URLs) and response decoding,
 * with round trips through the encoder and never-throw on arbitrary bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as CompactPeers from "../../src/tracker/CompactPeers.ts"
import * as HttpCodec from "../../src/tracker/HttpCodec.ts"
import type { AnnounceResponse, Peer } from "../../src/tracker/Tracker.ts"

const enc = (s: string) => Bytes.encodeUtf8(s)
const bytes20 = FastCheck.uint8Array({ minLength: 20, maxLength: 20 })
const port = FastCheck.integer({ min: 1, max: 65535 })
const peer4 = FastCheck.tuple(FastCheck.ipV4(), port).map(([ip, p]): Peer => ({ ip, port: p }))
const peer6 = FastCheck.tuple(FastCheck.uint8Array({ minLength: 16, maxLength: 16 }), port).map(([b, p]): Peer => {
  // Canonical text through the decoder itself, so the comparison is about bytes, not spelling.
  const row = Bytes.concat([b, Uint8Array.of(p >> 8, p & 0xff)])
  return Either.getOrThrow(CompactPeers.decode(row, 6))[0]!
})
const count = FastCheck.integer({ min: 0, max: 1_000_000 })

describe("HttpCodec URLs", () => {
  it("percent-encodes every byte of info_hash and peer_id", () => {
    const infoHash = Uint8Array.from({ length: 20 }, (_, i) => (i * 13 + 0xc8) & 0xff)
    const url = HttpCodec.announceUrl("http://t/announce", {
      infoHash,
      peerId: enc("-ET0001-abcdefghijkl"),
      port: 6881,
      uploaded: 1,
      downloaded: 2,
      left: 3,
      event: "started",
      numwant: 50,
      key: 0xdeadbeef,
      trackerId: "a b"
    })
    expect(url).toBe(
      "http://t/announce?info_hash=" + [...infoHash].map((b) => "%" + b.toString(16).toUpperCase().padStart(2, "0")).join("") +
        "&peer_id=%2D%45%54%30%30%30%31%2D%61%62%63%64%65%66%67%68%69%6A%6B%6C&port=6881&uploaded=1&downloaded=2" +
        "&left=3&compact=1&event=started&numwant=50&key=deadbeef&trackerid=%61%20%62"
    )
  })

  it("joins a private tracker's existing query with &, drops a fragment, and omits event none", () => {
    const r = { infoHash: new Uint8Array(20), peerId: new Uint8Array(20), port: 1, uploaded: 0, downloaded: 0, left: 0 }
    expect(HttpCodec.announceUrl("https://t/announce?passkey=abc#x", { ...r, event: "none" })).toMatch(
      /^https:\/\/t\/announce\?passkey=abc&info_hash=(%00){20}&peer_id=(%00){20}&port=1&uploaded=0&downloaded=0&left=0&compact=1$/
    )
    expect(HttpCodec.withQuery("http://t/a?", "x=1")).toBe("http://t/a?x=1")
    expect(HttpCodec.withQuery("http://t/a?k=v&", "x=1")).toBe("http://t/a?k=v&x=1")
  })

  it("tells the tracker our encryption: supportcrypto, and requirecrypto when required", () => {
    const r = { infoHash: new Uint8Array(20), peerId: new Uint8Array(20), port: 1, uploaded: 0, downloaded: 0, left: 0 }
    const url = (crypto: "supported" | "required" | undefined) =>
      HttpCodec.announceUrl("http://t/announce", { ...r, event: "none", crypto })
    expect(url(undefined)).not.toMatch(/crypto/)
    expect(url("supported")).toMatch(/&compact=1&supportcrypto=1$/)
    expect(url("required")).toMatch(/&compact=1&supportcrypto=1&requirecrypto=1$/)
  })

  it.prop("percent-encoding decodes back to the same bytes", [FastCheck.uint8Array({ maxLength: 64 })], ([b]) => {
    const decoded = Bytes.fromBinaryString(unescape(HttpCodec.percentEncode(b)))
    expect(decoded).toEqual(b)
  })

  it("scrape URLs follow BEP 48", () => {
    expect(HttpCodec.scrapeUrlOf("http://example.com/announce")).toBe("http://example.com/scrape")
    expect(HttpCodec.scrapeUrlOf("http://example.com/x/announce")).toBe("http://example.com/x/scrape")
    expect(HttpCodec.scrapeUrlOf("http://example.com/announce.php")).toBe("http://example.com/scrape.php")
    expect(HttpCodec.scrapeUrlOf("http://example.com/announce?x2%0644")).toBe("http://example.com/scrape?x2%0644")
    expect(HttpCodec.scrapeUrlOf("http://example.com/a")).toBeUndefined()
    expect(HttpCodec.scrapeUrlOf("http://example.com/announce?x=2/4")).toBe("http://example.com/scrape?x=2/4")
    expect(HttpCodec.scrapeUrlOf("http://example.com/x%064announce")).toBeUndefined()
    expect(HttpCodec.scrapeUrlOf("http://example.com/")).toBeUndefined()
    expect(HttpCodec.scrapeUrlOf("http://example.com")).toBeUndefined()
    expect(HttpCodec.scrapeRequestUrl("http://t/scrape?pk=1", [new Uint8Array(20).fill(0xab)])).toBe(
      `http://t/scrape?pk=1&info_hash=${"%AB".repeat(20)}`
    )
  })
})

describe("HttpCodec responses", () => {
  it.prop(
    "announce responses round-trip (compact IPv4 + peers6)",
    [FastCheck.array(peer4, { maxLength: 20 }), FastCheck.array(peer6, { maxLength: 20 }), count, count, count,
      FastCheck.option(FastCheck.string({ maxLength: 20 }), { nil: undefined })],
    ([p4, p6, interval, complete, incomplete, warning]) => {
      const r: AnnounceResponse = {
        interval,
        minInterval: Math.floor(interval / 2),
        trackerId: "tid",
        peers: [...p4, ...p6],
        complete,
        incomplete,
        ...(warning !== undefined ? { warning } : {})
      }
      expect(HttpCodec.decodeAnnounce(HttpCodec.encodeAnnounce(r))).toEqual(Either.right(r))
    }
  )

  it("reads dictionary-model peers and unsorted keys (lenient), and drops port-0 peers", () => {
    const body = enc("d8:intervali900e5:peersld2:ip8:10.0.0.17:peer id20:ABCDEFGHIJKLMNOPQRST4:porti6881eed2:ip3:::14:porti0eeee")
    const r = HttpCodec.decodeAnnounce(body)
    expect(Either.getOrThrow(r).peers).toEqual([{ ip: "10.0.0.1", port: 6881, peerId: enc("ABCDEFGHIJKLMNOPQRST") }])
    const unsorted = enc("d5:peers0:8:intervali60ee")
    expect(Either.getOrThrow(HttpCodec.decodeAnnounce(unsorted)).interval).toBe(60)
  })

  it("surfaces the tracker's failure reason verbatim, as a failure, not a bad response", () => {
    expect(HttpCodec.decodeAnnounce(enc("d14:failure reason17:torrent not founde"))).toEqual(
      Either.left({ reason: "failure", detail: "torrent not found" })
    )
    expect(HttpCodec.decodeScrape(enc("d14:failure reason6:no waye"))).toEqual(
      Either.left({ reason: "failure", detail: "no way" })
    )
  })

  it("rejects garbage, HTML, truncation, bad peer lists and missing intervals as bad responses", () => {
    const bad = [
      "<html>502 Bad Gateway</html>",
      "d8:intervali60e5:peers6:abce",
      "d8:intervali60e5:peers5:abcdee",
      "d5:peers0:e",
      "li1ee",
      "d8:intervali-5e5:peers0:e",
      "d8:intervali60e5:peersi3ee",
      ""
    ]
    for (const b of bad) {
      const r = HttpCodec.decodeAnnounce(enc(b))
      expect(Either.isLeft(r) && r.left.reason).toBe("bad-response")
    }
  })

  it.prop(
    "scrape responses round-trip",
    [FastCheck.array(FastCheck.tuple(bytes20, count, count, count), { maxLength: 10 })],
    ([rows]) => {
      const m = new Map(rows.map(([h, s, c, l]) => [Bytes.toHex(h), { seeders: s, completed: c, leechers: l }]))
      expect(HttpCodec.decodeScrape(HttpCodec.encodeScrape(m))).toEqual(Either.right(m))
    }
  )

  it("accepts scrape keys that were UTF-8-encoded latin-1 strings (npm bittorrent-tracker)", () => {
    const hash = Uint8Array.from({ length: 20 }, (_, i) => 0x80 + i)
    const key = Buffer.from(Bytes.toBinaryString(hash), "utf8") // 40 bytes
    const body = Bytes.concat([enc("d5:filesd40:"), key, enc("d8:completei2e10:downloadedi5e10:incompletei1eeee")])
    expect(Either.getOrThrow(HttpCodec.decodeScrape(body)).get(Bytes.toHex(hash))).toEqual({
      seeders: 2,
      completed: 5,
      leechers: 1
    })
  })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 300 })], ([b]) => {
    expect(Either.isEither(HttpCodec.decodeAnnounce(b))).toBe(true)
    expect(Either.isEither(HttpCodec.decodeScrape(b))).toBe(true)
  })

  it.prop(
    "never throws on arbitrary bencoded dictionaries with tracker keys",
    [FastCheck.dictionary(
      FastCheck.constantFrom("interval", "min interval", "peers", "peers6", "failure reason", "complete", "files", "tracker id"),
      FastCheck.oneof(
        FastCheck.integer(),
        FastCheck.uint8Array({ maxLength: 40 }),
        FastCheck.array(FastCheck.dictionary(FastCheck.constantFrom("ip", "port", "peer id"), FastCheck.oneof(FastCheck.integer(), FastCheck.uint8Array({ maxLength: 20 }))), { maxLength: 3 })
      )
    )],
    ([d]) => {
      const body = Bencode.encode(d as Bencode.Encodable)
      expect(Either.isEither(HttpCodec.decodeAnnounce(body))).toBe(true)
      expect(Either.isEither(HttpCodec.decodeScrape(body))).toBe(true)
    }
  )
})
