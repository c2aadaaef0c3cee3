/**
 * Compact peer lists (BEP 23 for IPv4: 6 bytes per peer; BEP 7 for IPv6: 18 bytes per peer), shared by the HTTP
 * and UDP tracker codecs. Decoding never throws; peers with port 0 are dropped (nobody can connect to them).
 */
import * as Either from "effect/Either"
import type { Peer } from "./Tracker.ts"

export type Family = 4 | 6

const entrySize = (family: Family): number => (family === 4 ? 6 : 18)

const ipv6Text = (b: Uint8Array, off: number): string => {
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16))
  // Shorten the longest run of two or more zero groups to "::" (RFC 5952).
  let bestAt = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === "0") j++
    if (j - i > bestLen) {
      bestAt = i
      bestLen = j - i
    }
    i = j
  }
  if (bestAt < 0) return groups.join(":")
  return `${groups.slice(0, bestAt).join(":")}::${groups.slice(bestAt + bestLen).join(":")}`
}

/** Decodes a compact list; fails when its length is not a multiple of the entry size. */
export const decode = (bytes: Uint8Array, family: Family): Either.Either<Array<Peer>, string> => {
  const size = entrySize(family)
  if (bytes.length % size !== 0) {
    return Either.left(`compact IPv${family} peer list of ${bytes.length} bytes is not a multiple of ${size}`)
  }
  const peers: Array<Peer> = []
  for (let off = 0; off < bytes.length; off += size) {
    const port = (bytes[off + size - 2]! << 8) | bytes[off + size - 1]!
    if (port === 0) continue
    const ip = family === 4
      ? `${bytes[off]}.${bytes[off + 1]}.${bytes[off + 2]}.${bytes[off + 3]}`
      : ipv6Text(bytes, off)
    peers.push({ ip, port })
  }
  return Either.right(peers)
}

const parseIpv4 = (ip: string): Array<number> | undefined => {
  const parts = ip.split(".")
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined
  return parts.map(Number)
}

const parseIpv6 = (ip: string): Array<number> | undefined => {
  const halves = ip.split("::")
  if (halves.length > 2) return undefined
  const groups = (s: string) => (s === "" ? [] : s.split(":"))
  const head = groups(halves[0]!)
  const tail = halves.length === 2 ? groups(halves[1]!) : []
  const fill = 8 - head.length - tail.length
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)) return undefined
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...tail]
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined
  return all.flatMap((g) => {
    const n = parseInt(g, 16)
    return [n >> 8, n & 0xff]
  })
}

/** Encodes peers of one family (trackers and tests use this); peers of the other family or bad text are skipped. */
export const encode = (peers: ReadonlyArray<Peer>, family: Family): Uint8Array => {
  const size = entrySize(family)
  const rows = peers.flatMap((p) => {
    const ip = family === 4 ? parseIpv4(p.ip) : parseIpv6(p.ip)
    return ip === undefined ? [] : [[...ip, (p.port >> 8) & 0xff, p.port & 0xff]]
  })
  const out = new Uint8Array(rows.length * size)
  rows.forEach((row, i) => out.set(row, i * size))
  return out
}
