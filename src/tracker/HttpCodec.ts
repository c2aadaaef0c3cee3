/**
 * The HTTP tracker protocol as pure functions: announce and scrape URLs (BEP 3, BEP 48) and response decoding
 * (BEP 3 dictionary-model peers, BEP 23 compact `peers`, BEP 7 `peers6`). Decoders never throw.
 *
 * Responses are decoded in bencode's *lenient* mode: trackers in the wild (PHP and hand-rolled ones) send
 * dictionaries with unsorted keys, and refusing a peer list over key order would help nobody. Truncation, trailing
 * bytes and malformed integers are still rejected.
 */
import * as Either from "effect/Either"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bytes from "../core/Bytes.ts"
import * as CompactPeers from "./CompactPeers.ts"
import type { AnnounceRequest, AnnounceResponse, Peer, ScrapeEntry, ScrapeResponse } from "./Tracker.ts"

const HEX = "0123456789ABCDEF"

/** `%XX` for every byte: raw info-hashes and peer ids are binary, never text (STACK.md gotcha 6). */
export const percentEncode = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < bytes.length; i++) out += "%" + HEX[bytes[i]! >> 4] + HEX[bytes[i]! & 15]
  return out
}

/** Appends query parameters to a URL that may already carry a query (a private tracker's passkey). */
export const withQuery = (url: string, query: string): string => {
  const hash = url.indexOf("#")
  const base = hash >= 0 ? url.slice(0, hash) : url
  if (query === "") return base
  if (!base.includes("?")) return `${base}?${query}`
  return base.endsWith("?") || base.endsWith("&") ? base + query : `${base}&${query}`
}

const intParam = (n: number): string => String(Math.max(0, Math.trunc(n)))

/** The full announce URL: the tracker's URL plus our parameters, `info_hash`/`peer_id` percent-encoded per byte. */
export const announceUrl = (url: string, r: AnnounceRequest): string => {
  const params = [
    `info_hash=${percentEncode(r.infoHash)}`,
    `peer_id=${percentEncode(r.peerId)}`,
    `port=${intParam(r.port)}`,
    `uploaded=${intParam(r.uploaded)}`,
    `downloaded=${intParam(r.downloaded)}`,
    `left=${intParam(r.left)}`,
    "compact=1"
  ]
  if (r.event !== "none") params.push(`event=${r.event}`)
  if (r.numwant !== undefined) params.push(`numwant=${intParam(r.numwant)}`)
  if (r.key !== undefined) params.push(`key=${(r.key >>> 0).toString(16).padStart(8, "0")}`)
  if (r.trackerId !== undefined) params.push(`trackerid=${percentEncode(Bytes.encodeUtf8(r.trackerId))}`)
  if (r.crypto !== undefined) params.push("supportcrypto=1")
  if (r.crypto === "required") params.push("requirecrypto=1")
  return withQuery(url, params.join("&"))
}

/**
 * The scrape URL by the BEP 48 convention: the last path segment must start with `announce`, which becomes
 * `scrape` (the rest of the segment and the query stay). `undefined` when the convention does not apply.
 */
export const scrapeUrlOf = (announce: string): string | undefined => {
  const hash = announce.indexOf("#")
  const noHash = hash >= 0 ? announce.slice(0, hash) : announce
  const q = noHash.indexOf("?")
  const path = q >= 0 ? noHash.slice(0, q) : noHash
  const query = q >= 0 ? noHash.slice(q) : ""
  const slash = path.lastIndexOf("/")
  const schemeEnd = path.indexOf("://")
  if (slash < 0 || slash <= schemeEnd + 2) return undefined
  const segment = path.slice(slash + 1)
  if (!segment.startsWith("announce")) return undefined
  return `${path.slice(0, slash + 1)}scrape${segment.slice("announce".length)}${query}`
}

/** The scrape URL with one `info_hash` parameter per info-hash. */
export const scrapeRequestUrl = (scrapeUrl: string, infoHashes: ReadonlyArray<Uint8Array>): string =>
  withQuery(scrapeUrl, infoHashes.map((h) => `info_hash=${percentEncode(h)}`).join("&"))

/** Why a body could not be used: the tracker's own refusal, or a body we cannot read. */
export interface DecodeFailure {
  readonly reason: "failure" | "bad-response"
  readonly detail: string
}

const bad = (detail: string): Either.Either<never, DecodeFailure> => Either.left({ reason: "bad-response", detail })

/** Text of a byte string; invalid UTF-8 falls back to latin-1 so a tracker's message is never lost. */
const text = (b: Uint8Array): string => Bytes.decodeUtf8(b) ?? Bytes.toBinaryString(b)

const nonNegative = (v: Bencode.BValue | undefined): number | undefined =>
  typeof v === "number" && v >= 0 ? v : typeof v === "bigint" && v >= 0n ? Number.MAX_SAFE_INTEGER : undefined

const preview = (body: Uint8Array): string => {
  const s = Bytes.toBinaryString(body.subarray(0, 40)).replace(/[^\x20-\x7e]/g, ".")
  return body.length > 40 ? `${s}…` : s
}

const decodeBody = (body: Uint8Array): Either.Either<Bencode.BDict, DecodeFailure> => {
  const decoded = Bencode.decode(body, { mode: "lenient", maxDepth: 16 })
  if (Either.isLeft(decoded)) return bad(`response is not bencode (${decoded.left.detail}): "${preview(body)}"`)
  const v = decoded.right
  return Bencode.isDict(v) ? Either.right(v) : bad("response is not a bencoded dictionary")
}

const failureOf = (d: Bencode.BDict): DecodeFailure | undefined => {
  const f = d.get("failure reason")
  if (f === undefined) return undefined
  return { reason: "failure", detail: Bencode.isBytes(f) ? text(f) : "(failure reason is not a string)" }
}

const dictPeers = (list: Bencode.BList): Either.Either<Array<Peer>, DecodeFailure> => {
  const peers: Array<Peer> = []
  for (const item of list) {
    if (!Bencode.isDict(item)) return bad("a peer in the peer list is not a dictionary")
    const ip = item.get("ip")
    const port = item.get("port")
    const id = item.get("peer id")
    if (!Bencode.isBytes(ip) || typeof port !== "number" || port < 0 || port > 65535) {
      return bad("a peer in the peer list lacks a valid ip or port")
    }
    if (port === 0) continue
    peers.push({ ip: text(ip), port, ...(Bencode.isBytes(id) ? { peerId: new Uint8Array(id) } : {}) })
  }
  return Either.right(peers)
}

/** Decodes an announce response body. */
export const decodeAnnounce = (body: Uint8Array): Either.Either<AnnounceResponse, DecodeFailure> =>
  Either.flatMap(decodeBody(body), (d): Either.Either<AnnounceResponse, DecodeFailure> => {
    const failure = failureOf(d)
    if (failure !== undefined) return Either.left(failure)
    const interval = nonNegative(d.get("interval"))
    if (interval === undefined) return bad("response has no valid interval")
    const peers: Array<Peer> = []
    const p4 = d.get("peers")
    if (Bencode.isBytes(p4)) {
      const r = CompactPeers.decode(p4, 4)
      if (Either.isLeft(r)) return bad(r.left)
      peers.push(...r.right)
    } else if (Bencode.isList(p4)) {
      const r = dictPeers(p4)
      if (Either.isLeft(r)) return Either.left(r.left)
      peers.push(...r.right)
    } else if (p4 !== undefined) {
      return bad("peers is neither a string nor a list")
    }
    const p6 = d.get("peers6")
    if (Bencode.isBytes(p6)) {
      const r = CompactPeers.decode(p6, 6)
      if (Either.isLeft(r)) return bad(r.left)
      peers.push(...r.right)
    }
    const minInterval = nonNegative(d.get("min interval"))
    const trackerId = d.get("tracker id")
    const complete = nonNegative(d.get("complete"))
    const incomplete = nonNegative(d.get("incomplete"))
    const warning = d.get("warning message")
    return Either.right({
      interval,
      peers,
      ...(minInterval !== undefined ? { minInterval } : {}),
      ...(Bencode.isBytes(trackerId) ? { trackerId: text(trackerId) } : {}),
      ...(complete !== undefined ? { complete } : {}),
      ...(incomplete !== undefined ? { incomplete } : {}),
      ...(Bencode.isBytes(warning) ? { warning: text(warning) } : {})
    })
  })

/**
 * The info-hash of a `files` key, in hex. Some trackers (the npm bittorrent-tracker server among them) write the
 * binary info-hash as a latin-1 JS string through a UTF-8 encoder, so a 20-byte key arrives as 20 UTF-8 characters
 * below U+0100; accept that form too.
 */
const scrapeKey = (key: string): string | undefined => {
  if (key.length === 20) return Bytes.toHex(Bytes.fromBinaryString(key))
  const chars = Bytes.decodeUtf8(Bytes.fromBinaryString(key))
  if (chars === undefined || chars.length !== 20 || /[^\u0000-\u00ff]/.test(chars)) return undefined
  return Bytes.toHex(Bytes.fromBinaryString(chars))
}

/** Decodes a scrape response body; entries that lack counters are skipped. */
export const decodeScrape = (body: Uint8Array): Either.Either<ScrapeResponse, DecodeFailure> =>
  Either.flatMap(decodeBody(body), (d): Either.Either<ScrapeResponse, DecodeFailure> => {
    const failure = failureOf(d)
    if (failure !== undefined) return Either.left(failure)
    const files = d.get("files")
    if (!Bencode.isDict(files)) return bad("scrape response has no files dictionary")
    const out = new Map<string, ScrapeEntry>()
    for (const [key, v] of files) {
      const hash = scrapeKey(key)
      if (hash === undefined || !Bencode.isDict(v)) continue
      out.set(hash, {
        seeders: nonNegative(v.get("complete")) ?? 0,
        completed: nonNegative(v.get("downloaded")) ?? 0,
        leechers: nonNegative(v.get("incomplete")) ?? 0
      })
    }
    return Either.right(out)
  })

/** Encodes an announce response the way a tracker would (compact peers): for fakes and round-trip tests. */
export const encodeAnnounce = (r: AnnounceResponse): Uint8Array =>
  Bencode.encode({
    interval: r.interval,
    "min interval": r.minInterval,
    "tracker id": r.trackerId,
    complete: r.complete,
    incomplete: r.incomplete,
    "warning message": r.warning,
    peers: CompactPeers.encode(r.peers, 4),
    peers6: CompactPeers.encode(r.peers, 6)
  })

/** Encodes a scrape response (keys are info-hashes in hex): for fakes and round-trip tests. */
export const encodeScrape = (r: ScrapeResponse): Uint8Array =>
  Bencode.encode({
    files: new Map(
      [...r].map(([hex, e]) => [
        Bytes.toBinaryString(Bytes.fromHex(hex) ?? new Uint8Array()),
        new Map<string, Bencode.Encodable>([
          ["complete", e.seeders],
          ["downloaded", e.completed],
          ["incomplete", e.leechers]
        ])
      ])
    )
  })
