/**
 * Magnet URIs (BEP 9, BEP 53 `so`, BEP 52 hybrid `xt`): a parser that never throws and a formatter whose output
 * parses back to the same value.
 *
 * What is read (parameter names case-insensitively, a `.<digits>` suffix stripped, as libtorrent does):
 * - `xt=urn:btih:` 40 hex or 32 base32 chars (RFC 4648, either case) → v1 info-hash; `xt=urn:btmh:1220` + 64 hex
 *   (multihash SHA-256) → v2. Both may be present (hybrid). The same hash repeated is fine; a *different* second
 *   hash of the same version is `conflicting-info-hash` (libtorrent silently keeps the last one). Other URNs
 *   (`ed2k`, `sha1`, …) are ignored; without a btih or btmh the URI is `missing-info-hash`.
 * - `dn` display name (the last one wins; empty means none), `tr`/`tr.N` trackers and `ws` web seeds in URI order
 *   (duplicates kept, empty values dropped), `x.pe` peers as `host:port` (IPv4, `[IPv6]`, host name),
 *   `so` select-only file indices (`0,2,4-6`; several `so` are united), `xl` exact length.
 * - Values are percent-decoded to UTF-8, with `+` as a space (libtorrent's unescaping). Unknown parameters and
 *   parameters without `=` are ignored.
 *
 * Modes: `strict` (the default) rejects a malformed optional parameter (`x.pe`, `so`, `xl`, a bad `%` escape or
 * invalid UTF-8 in any known value). `lenient` reads what libtorrent 2.0.8 reads: it drops malformed peers, `so`
 * items, lengths and undecodable `dn`/`tr`/`ws` values, and keeps the rest. Info-hash problems fail in both modes.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { isIPv4, isIPv6 } from "node:net"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1, InfoHashV2 } from "../core/InfoHash.ts"
import type { Metainfo } from "./Metainfo.ts"

export type Reason =
  | "not-a-magnet" // does not start with `magnet:?`
  | "missing-info-hash" // no `urn:btih` / `urn:btmh` exact topic
  | "invalid-info-hash" // a btih/btmh of the wrong length, alphabet or multihash code
  | "conflicting-info-hash" // two different v1 (or two different v2) hashes
  | "invalid-encoding" // a bad `%` escape, or (strict) a value that is not UTF-8
  | "invalid-peer" // (strict) an `x.pe` that is not host:port
  | "invalid-select-only" // (strict) an `so` that is not a list of indices and ascending ranges
  | "invalid-length" // (strict) an `xl` that is not a non-negative safe integer

export class MagnetError extends Data.TaggedError("MagnetError")<{
  readonly reason: Reason
  readonly detail: string
}> {
  override get message(): string {
    return `invalid magnet URI: ${this.detail}`
  }
}

/** A peer address from `x.pe`; IPv6 hosts are stored without brackets. */
export interface Peer {
  readonly host: string
  readonly port: number
}

/** Inclusive range of file indices `first..last` from `so`. */
export interface SelectRange {
  readonly first: number
  readonly last: number
}

/** At least one of the two info-hashes. */
export type InfoHashes =
  | { readonly v1: InfoHashV1; readonly v2?: InfoHashV2 }
  | { readonly v1?: InfoHashV1; readonly v2: InfoHashV2 }

export interface Magnet {
  readonly infoHashes: InfoHashes
  readonly name?: string
  readonly trackers: ReadonlyArray<string>
  readonly webSeeds: ReadonlyArray<string>
  readonly peers: ReadonlyArray<Peer>
  /** Files to download (BEP 53), sorted, disjoint and non-adjacent ranges; absent means all files. */
  readonly selectOnly?: ReadonlyArray<SelectRange>
  /** `xl`: the exact length of the content in bytes. */
  readonly exactLength?: number
}

export interface ParseOptions {
  readonly mode?: "strict" | "lenient" | undefined
}

// File indices are int32 in libtorrent (which also ignores indices above 10000 to bound memory; ranges cost nothing).
const MAX_FILE_INDEX = 2 ** 31 - 1

// ---------------------------------------------------------------------------------------------------------------
// Parsing

const fail = (reason: Reason, detail: string): never => {
  throw new MagnetError({ reason, detail })
}

const short = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s)

/** Percent-decodes to bytes (`+` is a space; other characters are taken as UTF-8); `undefined` on a bad escape. */
const percentDecode = (value: string): Uint8Array | undefined => {
  const out: Array<number> = []
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 0x25) {
      const h = value.slice(i + 1, i + 3)
      if (!/^[0-9a-fA-F]{2}$/.test(h)) return undefined
      out.push(parseInt(h, 16))
      i += 2
    } else if (c === 0x2b) {
      out.push(0x20)
    } else if (c < 0x80) {
      out.push(c)
    } else {
      const cp = value.codePointAt(i)!
      if (cp > 0xffff) i++
      for (const x of Bytes.encodeUtf8(String.fromCodePoint(cp))) out.push(x)
    }
  }
  return Uint8Array.from(out)
}

const utf8Lossy = new TextDecoder("utf-8")

/** The text of a value, or `undefined` when it cannot be decoded (bad escape; strict: not UTF-8). */
const text = (value: string, strict: boolean): string | undefined => {
  const bytes = percentDecode(value)
  if (bytes === undefined) return undefined
  return strict ? Bytes.decodeUtf8(bytes) : utf8Lossy.decode(bytes)
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

/** RFC 4648 base32 without padding, either case; `undefined` on any other character. */
const fromBase32 = (s: string): Uint8Array | undefined => {
  const out = new Uint8Array(Math.floor((s.length * 5) / 8))
  let bits = 0
  let acc = 0
  let o = 0
  for (const ch of s.toUpperCase()) {
    const v = BASE32.indexOf(ch)
    if (v < 0) return undefined
    acc = ((acc << 5) | v) & 0xffff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  return out
}

const btih = (hash: string): InfoHashV1 => {
  const bytes = hash.length === 40 ? Bytes.fromHex(hash) : hash.length === 32 ? fromBase32(hash) : undefined
  if (bytes === undefined) {
    return fail("invalid-info-hash", `urn:btih needs 40 hex or 32 base32 chars, got ${short(hash)}`)
  }
  return bytes as InfoHashV1
}

const btmh = (multihash: string): InfoHashV2 => {
  if (!/^1220[0-9a-fA-F]{64}$/.test(multihash)) {
    return fail("invalid-info-hash", `urn:btmh needs "1220" and 64 hex chars (SHA-256), got ${short(multihash)}`)
  }
  return Bytes.fromHex(multihash.slice(4))! as InfoHashV2
}

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/
const isHostname = (host: string): boolean => {
  const labels = host.split(".")
  // an all-digit last label is a mistyped IPv4 address, not a name
  return host.length <= 253 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]!)
}

/** `host:port`, `[v6]:port`; `undefined` when malformed. */
const parsePeer = (s: string): Peer | undefined => {
  let host: string
  let port: string
  if (s.startsWith("[")) {
    const close = s.indexOf("]")
    if (close < 0 || s[close + 1] !== ":") return undefined
    host = s.slice(1, close)
    port = s.slice(close + 2)
    if (!isIPv6(host)) return undefined
  } else {
    const colon = s.lastIndexOf(":")
    if (colon < 0) return undefined
    host = s.slice(0, colon)
    port = s.slice(colon + 1)
    if (!isIPv4(host) && !isHostname(host)) return undefined
  }
  if (!/^\d{1,5}$/.test(port)) return undefined
  const n = Number(port)
  return n >= 1 && n <= 65535 ? { host, port: n } : undefined
}

/** The ranges of one `so` value; in lenient mode bad items are skipped (and, like libtorrent, a value with any
 * character other than digits, `-` and `,` is skipped whole). */
const selectOnly = (s: string, strict: boolean): Array<SelectRange> => {
  const bad = (why: string): Array<SelectRange> =>
    strict ? fail("invalid-select-only", `so=${short(s)}: ${why}`) : []
  if (!/^[0-9,-]*$/.test(s)) return bad("only digits, ',' and '-' are allowed")
  const out: Array<SelectRange> = []
  const index = (d: string): number | undefined => {
    if (!/^\d{1,10}$/.test(d)) return undefined
    const n = Number(d)
    return n <= MAX_FILE_INDEX ? n : undefined
  }
  for (const item of s.split(",")) {
    const dash = item.indexOf("-")
    const first = index(dash < 0 ? item : item.slice(0, dash))
    const last = dash < 0 ? first : index(item.slice(dash + 1))
    if (first === undefined || last === undefined || first > last) {
      if (strict) bad(`${short(item)} is not an index or an ascending range`)
      continue
    }
    out.push({ first, last })
  }
  return out
}

/** Sorts ranges and merges overlapping and adjacent ones. */
const normalizeRanges = (ranges: ReadonlyArray<SelectRange>): Array<SelectRange> => {
  const sorted = [...ranges].sort((a, b) => a.first - b.first || a.last - b.last)
  const out: Array<{ first: number; last: number }> = []
  for (const r of sorted) {
    const prev = out[out.length - 1]
    if (prev !== undefined && r.first <= prev.last + 1) prev.last = Math.max(prev.last, r.last)
    else out.push({ first: r.first, last: r.last })
  }
  return out
}

const parseUnsafe = (uri: string, strict: boolean): Magnet => {
  const trimmed = uri.trim()
  if (!/^magnet:\?/i.test(trimmed)) return fail("not-a-magnet", `expected "magnet:?" at the start of ${short(trimmed)}`)

  let v1: InfoHashV1 | undefined
  let v2: InfoHashV2 | undefined
  let name: string | undefined
  let exactLength: number | undefined
  const ranges: Array<SelectRange> = []
  const trackers: Array<string> = []
  const webSeeds: Array<string> = []
  const peers: Array<Peer> = []

  // A value that cannot be decoded fails in strict mode and is skipped in lenient mode.
  const decoded = (param: string, value: string): string | undefined => {
    const t = text(value, strict)
    if (t === undefined && strict) {
      fail("invalid-encoding", `${param}=${short(value)} is not valid percent-encoded UTF-8`)
    }
    return t
  }

  for (const part of trimmed.slice(8).split("&")) {
    const eq = part.indexOf("=")
    if (eq <= 0) continue
    let key = part.slice(0, eq).toLowerCase()
    const value = part.slice(eq + 1)
    const dot = key.indexOf(".")
    if (dot >= 0 && /^\d*$/.test(key.slice(dot + 1))) key = key.slice(0, dot)

    switch (key) {
      case "xt": {
        const bytes = percentDecode(value)
        if (bytes === undefined) return fail("invalid-encoding", `xt=${short(value)} has a bad percent escape`)
        const urn = utf8Lossy.decode(bytes)
        const nid = urn.slice(0, 9).toLowerCase()
        if (nid === "urn:btih:") {
          const h = btih(urn.slice(9))
          if (v1 !== undefined && !Bytes.equals(v1, h)) {
            fail("conflicting-info-hash", `two different v1 info-hashes: ${Bytes.toHex(v1)} and ${Bytes.toHex(h)}`)
          }
          v1 = h
        } else if (nid === "urn:btmh:") {
          const h = btmh(urn.slice(9))
          if (v2 !== undefined && !Bytes.equals(v2, h)) {
            fail("conflicting-info-hash", `two different v2 info-hashes: ${Bytes.toHex(v2)} and ${Bytes.toHex(h)}`)
          }
          v2 = h
        }
        break
      }
      case "dn": {
        const t = decoded(key, value)
        if (t !== undefined) name = t
        break
      }
      case "tr":
      case "ws": {
        const t = decoded(key, value)
        if (t !== undefined && t !== "") (key === "tr" ? trackers : webSeeds).push(t)
        break
      }
      case "x.pe": {
        const t = decoded(key, value)
        const peer = t === undefined ? undefined : parsePeer(t)
        if (peer !== undefined) peers.push(peer)
        else if (strict) fail("invalid-peer", `x.pe=${short(value)} is not host:port`)
        break
      }
      case "so": {
        const t = decoded(key, value)
        if (t !== undefined) for (const r of selectOnly(t, strict)) ranges.push(r)
        break
      }
      case "xl": {
        const t = decoded(key, value)
        if (t !== undefined && /^\d{1,16}$/.test(t) && Number.isSafeInteger(Number(t))) exactLength = Number(t)
        else if (strict) fail("invalid-length", `xl=${short(value)} is not a byte count`)
        break
      }
    }
  }

  const infoHashes: InfoHashes | undefined =
    v1 !== undefined ? (v2 !== undefined ? { v1, v2 } : { v1 }) : v2 !== undefined ? { v2 } : undefined
  if (infoHashes === undefined) return fail("missing-info-hash", "no xt=urn:btih or xt=urn:btmh info-hash")
  return {
    infoHashes,
    ...(name !== undefined && name !== "" ? { name } : {}),
    trackers,
    webSeeds,
    peers,
    ...(ranges.length > 0 ? { selectOnly: normalizeRanges(ranges) } : {}),
    ...(exactLength !== undefined ? { exactLength } : {})
  }
}

/** Parses a magnet URI. Never throws. */
export const parse = (uri: string, options?: ParseOptions): Either.Either<Magnet, MagnetError> => {
  try {
    return Either.right(parseUnsafe(uri, options?.mode !== "lenient"))
  } catch (e) {
    if (e instanceof MagnetError) return Either.left(e)
    // Not reachable by design; never let anything escape as a throw.
    return Either.left(new MagnetError({ reason: "invalid-encoding", detail: String(e) }))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

// Left as is in values: RFC 3986 unreserved characters plus a few that are safe in a query value.
const SAFE = /[A-Za-z0-9\-._~:/@!$'()*,?]/

const percentEncode = (value: string): string => {
  let out = ""
  for (const b of Bytes.encodeUtf8(value)) {
    const ch = String.fromCharCode(b)
    out += b < 0x80 && SAFE.test(ch) ? ch : `%${b.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return out
}

const formatPeer = (p: Peer): string => (p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)

const formatRanges = (rs: ReadonlyArray<SelectRange>): string =>
  rs.map((r) => (r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`)).join(",")

/**
 * The magnet URI of `magnet`: `xt` (v1 then v2), `dn`, `xl`, `tr`, `ws`, `x.pe`, `so`, values percent-encoded as
 * UTF-8. `parse(format(m))` gives back `m` for any parsed magnet (select-only ranges come back normalized; empty
 * names, trackers and web seeds are dropped). Never throws.
 */
export const format = (magnet: Magnet): string => {
  const parts: Array<string> = []
  const { v1, v2 } = magnet.infoHashes
  if (v1 !== undefined) parts.push(`xt=urn:btih:${Bytes.toHex(v1)}`)
  if (v2 !== undefined) parts.push(`xt=urn:btmh:1220${Bytes.toHex(v2)}`)
  if (magnet.name !== undefined && magnet.name !== "") parts.push(`dn=${percentEncode(magnet.name)}`)
  if (magnet.exactLength !== undefined) parts.push(`xl=${magnet.exactLength}`)
  for (const t of magnet.trackers) parts.push(`tr=${percentEncode(t)}`)
  for (const w of magnet.webSeeds) parts.push(`ws=${percentEncode(w)}`)
  for (const p of magnet.peers) parts.push(`x.pe=${percentEncode(formatPeer(p))}`)
  if (magnet.selectOnly !== undefined && magnet.selectOnly.length > 0) {
    parts.push(`so=${formatRanges(magnet.selectOnly)}`)
  }
  return `magnet:?${parts.join("&")}`
}

/**
 * The magnet of a decoded torrent, as libtorrent's `make_magnet_uri` writes it: `btih` (SHA-1) for v1, `btmh`
 * (SHA-256 multihash) for v2-only, both for a hybrid; its name, every tracker in tier order, its web seeds.
 */
export const fromMetainfo = (m: Metainfo): Magnet => {
  const infoHashes: InfoHashes = m.version === "v2"
    ? { v2: m.infoHashV2! }
    : m.version === "hybrid" && m.infoHashV2 !== undefined
    ? { v1: m.infoHash, v2: m.infoHashV2 }
    : { v1: m.infoHash }
  return { infoHashes, name: m.name, trackers: m.trackers.flat(), webSeeds: [...m.webSeeds], peers: [] }
}
