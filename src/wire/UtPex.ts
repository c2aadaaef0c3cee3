/**
 * BEP 11 `ut_pex`: peer exchange messages and the per-connection state that decides what to send and when.
 *
 * A message is a bencoded dict of compact peer strings (6 bytes per IPv4 peer, 18 per IPv6 peer, as trackers
 * send them): `added`/`added6` with one flag byte per peer in `added.f`/`added6.f`, and `dropped`/`dropped6`.
 * Peers are `{ ip, port }` with text addresses, the shape tracker peers have, so PEX peers join the same sources.
 * The compact codec is local (wire/ may not import tracker/, and it is a few lines); IPv6 text is RFC 5952.
 *
 * Bounds: BEP 11 limits a message to 50 added and 50 dropped peers (libtorrent sends up to 100 added); `decode`
 * keeps the first 50 added (IPv4 first) and the first 50 dropped and ignores the rest, and `PexState` never sends
 * more. Decoding is tolerant like the extension handshake: a field of the wrong type is dropped, a compact string
 * whose length is not a whole number of entries loses the partial entry, a flags string of the wrong length is
 * ignored (flags 0), and peers with port 0 are skipped. Only non-bencode and non-dict payloads are errors.
 */
import * as Either from "effect/Either"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bytes from "../core/Bytes.ts"
import { ExtensionError } from "./ExtensionHandshake.ts"

/** `added.f` flag bits. */
export const Flags = {
  PrefersEncryption: 0x01,
  /** A seed, or upload only. */
  Seed: 0x02,
  SupportsUtp: 0x04,
  /** Supports the ut_holepunch extension (BEP 55). */
  Holepunch: 0x08,
  /** We connected to it (it is reachable), as opposed to it connecting to us. */
  Reachable: 0x10
} as const

/** BEP 11: at most this many added and this many dropped peers in one message. */
export const maxPeers = 50

/** BEP 11: send at most once a minute. */
export const interval = 60_000

export interface Endpoint {
  readonly ip: string
  readonly port: number
}

export interface PexPeer extends Endpoint {
  /** {@link Flags} bits. */
  readonly flags: number
}

export interface PexMessage {
  readonly added: ReadonlyArray<PexPeer>
  readonly dropped: ReadonlyArray<Endpoint>
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses

const parseIpv4 = (ip: string): Array<number> | undefined => {
  const parts = ip.split(".")
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined
  return parts.map(Number)
}

const parseIpv6 = (ip: string): Array<number> | undefined => {
  const halves = ip.split("::")
  if (halves.length > 2) return undefined
  const groups = (s: string) => (s === "" ? [] : s.split(":"))
  const head = groups(halves[0]!)
  const tail = halves.length === 2 ? groups(halves[1]!) : []
  const fill = 8 - head.length - tail.length
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...tail]
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined
  return all.flatMap((g) => {
    const n = parseInt(g, 16)
    return [n >> 8, n & 0xff]
  })
}

const ipv6Text = (b: Uint8Array): string => {
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16))
  // RFC 5952: the longest run of two or more zero groups (the first on a tie) becomes "::".
  let at = -1
  let len = 1
  for (let i = 0; i < 8; i++) {
    let j = i
    while (j < 8 && groups[j] === "0") j++
    if (j - i > len) {
      at = i
      len = j - i
    }
  }
  return at < 0 ? groups.join(":") : `${groups.slice(0, at).join(":")}::${groups.slice(at + len).join(":")}`
}

/** The compact form of a peer: 4 or 16 address bytes and the port, or `undefined` for a bad address or port. */
export const compact = (p: Endpoint): Uint8Array | undefined => {
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return undefined
  const ip = p.ip.includes(":") ? parseIpv6(p.ip) : parseIpv4(p.ip)
  return ip === undefined ? undefined : Uint8Array.from([...ip, p.port >> 8, p.port & 0xff])
}

/** A canonical key for a peer (its compact bytes in hex), or `undefined` for a bad address or port. */
export const keyOf = (p: Endpoint): string | undefined => {
  const c = compact(p)
  return c === undefined ? undefined : Bytes.toHex(c)
}

/** A peer from its compact form (6 or 18 bytes), or `undefined` for another length or port 0. */
export const fromCompact = (b: Uint8Array): Endpoint | undefined =>
  b.length === 6 || b.length === 18 ? readCompact(b, b.length, 1)[0] : undefined

const readCompact = (b: Uint8Array, size: 6 | 18, limit: number): Array<Endpoint> => {
  const out: Array<Endpoint> = []
  for (let off = 0; off + size <= b.length && out.length < limit; off += size) {
    const port = (b[off + size - 2]! << 8) | b[off + size - 1]!
    if (port === 0) continue
    const ip = size === 6 ? `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}` : ipv6Text(b.subarray(off, off + 16))
    out.push({ ip, port })
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Codec

/**
 * The message's payload. Peers with a bad address or port are skipped; the caller keeps within {@link maxPeers}
 * (`PexState` does). Empty fields are omitted.
 */
export const encode = (m: PexMessage): Uint8Array => {
  const added: Record<4 | 6, Array<Uint8Array>> = { 4: [], 6: [] }
  const flags: Record<4 | 6, Array<number>> = { 4: [], 6: [] }
  for (const p of m.added) {
    const c = compact(p)
    if (c === undefined) continue
    const family = c.length === 6 ? 4 : 6
    added[family].push(c)
    flags[family].push(p.flags & 0xff)
  }
  const dropped: Record<4 | 6, Array<Uint8Array>> = { 4: [], 6: [] }
  for (const p of m.dropped) {
    const c = compact(p)
    if (c !== undefined) dropped[c.length === 6 ? 4 : 6].push(c)
  }
  const field = (parts: Array<Uint8Array>) => (parts.length === 0 ? undefined : Bytes.concat(parts))
  const flagField = (f: Array<number>) => (f.length === 0 ? undefined : Uint8Array.from(f))
  return Bencode.encode({
    added: field(added[4]),
    "added.f": flagField(flags[4]),
    added6: field(added[6]),
    "added6.f": flagField(flags[6]),
    dropped: field(dropped[4]),
    dropped6: field(dropped[6])
  })
}

/** Decodes a ut_pex payload. Never throws. */
export const decode = (payload: Uint8Array): Either.Either<PexMessage, ExtensionError> => {
  const decoded = Bencode.decode(payload)
  if (Either.isLeft(decoded)) {
    return Either.left(new ExtensionError({ reason: "bad-bencode", detail: decoded.left.message }))
  }
  const d = decoded.right
  if (!Bencode.isDict(d)) return Either.left(new ExtensionError({ reason: "not-a-dict", detail: "ut_pex message" }))
  const bytes = (key: string): Uint8Array => {
    const v = d.get(key)
    return Bencode.isBytes(v) ? v : new Uint8Array(0)
  }
  const added: Array<PexPeer> = []
  for (const [key, size] of [["added", 6], ["added6", 18]] as const) {
    const b = bytes(key)
    const f = bytes(`${key}.f`)
    const whole = f.length === Math.floor(b.length / size)
    // Read entry by entry (not readCompact) so flags stay aligned when port-0 entries are skipped.
    for (let i = 0, off = 0; off + size <= b.length && added.length < maxPeers; i++, off += size) {
      const [peer] = readCompact(b.subarray(off, off + size), size, 1)
      if (peer !== undefined) added.push({ ...peer, flags: whole ? f[i]! : 0 })
    }
  }
  const dropped = readCompact(bytes("dropped"), 6, maxPeers)
  dropped.push(...readCompact(bytes("dropped6"), 18, maxPeers - dropped.length))
  return Either.right({ added, dropped })
}

// ---------------------------------------------------------------------------------------------------------------
// Per-connection state

export interface PexState {
  /** What the remote peer has heard from us: key → peer (added and not since dropped). */
  readonly told: ReadonlyMap<string, Endpoint>
  readonly lastSentAt: number | undefined
}

export const make = (): PexState => ({ told: new Map(), lastSentAt: undefined })

/**
 * One tick for one connection: `connected` is our current peer set (the caller leaves out the recipient itself
 * and peers whose listening port is unknown). Returns the message to send, if any: never for a private torrent
 * (BEP 27), at most once per {@link interval}, never empty, at most {@link maxPeers} added and dropped (the rest
 * waits for the next message). A peer is never both added and dropped: added are connected peers the recipient
 * has not heard of, dropped are peers it has heard of that are no longer connected.
 */
export const tick = (
  s: PexState,
  now: number,
  connected: ReadonlyArray<PexPeer>,
  isPrivate: boolean
): readonly [PexState, PexMessage | undefined] => {
  if (isPrivate) return [s, undefined]
  if (s.lastSentAt !== undefined && now - s.lastSentAt < interval) return [s, undefined]
  const current = new Map<string, PexPeer>()
  for (const p of connected) {
    const k = keyOf(p)
    if (k !== undefined && !current.has(k)) current.set(k, p)
  }
  const told = new Map(s.told)
  const added: Array<PexPeer> = []
  for (const [k, p] of current) {
    if (added.length >= maxPeers) break
    if (told.has(k)) continue
    added.push(p)
    told.set(k, p)
  }
  const dropped: Array<Endpoint> = []
  for (const [k, p] of s.told) {
    if (dropped.length >= maxPeers) break
    if (current.has(k)) continue
    dropped.push(p)
    told.delete(k)
  }
  if (added.length === 0 && dropped.length === 0) return [s, undefined]
  return [{ told, lastSentAt: now }, { added, dropped }]
}
