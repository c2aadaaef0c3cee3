/**
 * 160-bit DHT node ids (plain 20-byte `Uint8Array`s): XOR distance, ordering by distance, common prefix length
 * (the routing table's bucket index), random ids inside a bucket's range, and BEP 42 ids derived from an IPv4
 * address (CRC32-C of the masked address and a 3-bit random, in the first 21 bits; the random in the last byte).
 *
 * Randomness comes from a `random(n)` argument defaulting to node:crypto, so callers and tests can make it
 * deterministic.
 */
import { randomBytes } from "node:crypto"

export const LENGTH = 20
export const BITS = 160

export type Random = (n: number) => Uint8Array

const defaultRandom: Random = (n) => new Uint8Array(randomBytes(n))

export const random = (rand: Random = defaultRandom): Uint8Array => rand(LENGTH).slice(0, LENGTH)

export const distance = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(LENGTH)
  for (let i = 0; i < LENGTH; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0)
  return out
}

/** Negative when `a` is closer to `target` than `b`, positive when farther, 0 when equal. */
export const compareDistance = (target: Uint8Array, a: Uint8Array, b: Uint8Array): number => {
  for (let i = 0; i < LENGTH; i++) {
    const da = (a[i] ?? 0) ^ (target[i] ?? 0)
    const db = (b[i] ?? 0) ^ (target[i] ?? 0)
    if (da !== db) return da - db
  }
  return 0
}

export const equals = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Number of leading bits `a` and `b` share (160 when equal). */
export const commonPrefixLength = (a: Uint8Array, b: Uint8Array): number => {
  for (let i = 0; i < LENGTH; i++) {
    const x = (a[i] ?? 0) ^ (b[i] ?? 0)
    if (x !== 0) return i * 8 + Math.clz32(x) - 24
  }
  return BITS
}

/** The bit at position `bit` (0 = most significant). */
export const bitAt = (id: Uint8Array, bit: number): number => ((id[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1

/**
 * A random id sharing exactly `prefix` leading bits with `own` (bit `prefix` flipped, the rest random); with
 * `atLeast`, sharing at least `prefix` bits (the range of the routing table's last bucket).
 */
export const randomWithPrefix = (
  own: Uint8Array,
  prefix: number,
  options?: { readonly atLeast?: boolean | undefined; readonly random?: Random | undefined }
): Uint8Array => {
  const out = random(options?.random)
  const p = Math.max(0, Math.min(prefix, BITS))
  for (let bit = 0; bit < p; bit++) {
    const byte = bit >> 3
    const mask = 0x80 >> (bit & 7)
    out[byte] = (out[byte]! & ~mask) | (own[byte]! & mask)
  }
  if (p < BITS && options?.atLeast !== true) {
    const byte = p >> 3
    const mask = 0x80 >> (p & 7)
    out[byte] = (out[byte]! & ~mask) | (~own[byte]! & mask)
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// BEP 42

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

/** CRC32-C (Castagnoli), as BEP 42 uses it. */
export const crc32c = (data: Uint8Array): number => {
  let c = 0xffffffff
  for (const b of data) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const parseIpv4 = (ip: string): Array<number> | undefined => {
  const text = ip.startsWith("::ffff:") ? ip.slice(7) : ip
  const parts = text.split(".")
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined
  return parts.map(Number)
}

/** Addresses BEP 42 exempts (loopback, private, link-local): any id is acceptable from them. */
export const isBep42Exempt = (ip: string): boolean => {
  const a = parseIpv4(ip)
  if (a === undefined) return ip === "::1" // IPv6 ids are not checked here (see isBep42Valid)
  const [x, y] = [a[0]!, a[1]!]
  return x === 10 || x === 127 || (x === 172 && y >= 16 && y < 32) || (x === 192 && y === 168) ||
    (x === 169 && y === 254)
}

const bep42Crc = (ip: ReadonlyArray<number>, r: number): number => {
  const masked = new Uint8Array([ip[0]! & 0x03, ip[1]! & 0x0f, ip[2]! & 0x3f, ip[3]! & 0xff])
  masked[0] = masked[0]! | ((r & 0x07) << 5)
  return crc32c(masked)
}

/** A BEP 42 id for an external IPv4 address, or `undefined` when `ip` is not IPv4 text. */
export const bep42 = (ip: string, rand: Random = defaultRandom): Uint8Array | undefined => {
  const a = parseIpv4(ip)
  if (a === undefined) return undefined
  const id = random(rand)
  const r = id[19]!
  const crc = bep42Crc(a, r)
  id[0] = (crc >>> 24) & 0xff
  id[1] = (crc >>> 16) & 0xff
  id[2] = ((crc >>> 8) & 0xf8) | (id[2]! & 0x07)
  return id
}

/**
 * Whether `id` is a valid BEP 42 id for `ip`. Exempt (local) addresses, and IPv6 addresses, are always valid:
 * this check is for preferring nodes in the routing table, never for rejecting them.
 */
export const isBep42Valid = (id: Uint8Array, ip: string): boolean => {
  if (isBep42Exempt(ip)) return true
  const a = parseIpv4(ip)
  if (a === undefined) return true
  if (id.length !== LENGTH) return false
  const crc = bep42Crc(a, id[19]!)
  return id[0] === ((crc >>> 24) & 0xff) && id[1] === ((crc >>> 16) & 0xff) &&
    (id[2]! & 0xf8) === ((crc >>> 8) & 0xf8)
}
