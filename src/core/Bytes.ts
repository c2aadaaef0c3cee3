/**
 * Byte helpers shared by every layer: hex, equality, hashing, and text decoding that never throws.
 */
import { createHash } from "node:crypto"

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/** Lower-case hex of a byte array. */
export const toHex = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]!]!
  return out
}

/** Parses hex (either case); `undefined` when the text is not an even-length run of hex digits. */
export const fromHex = (hex: string): Uint8Array | undefined => {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

/** Byte-wise equality. */
export const equals = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Lexicographic byte order (the order bencode requires for dictionary keys). */
export const compare = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** SHA-1 digest (20 bytes). */
export const sha1 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash("sha1").update(data).digest())

/** SHA-256 digest (32 bytes). */
export const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(data).digest())

const utf8Fatal = new TextDecoder("utf-8", { fatal: true })
const utf8 = new TextEncoder()

/** UTF-8 text of the bytes, or `undefined` when they are not valid UTF-8. */
export const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8Fatal.decode(bytes)
  } catch {
    return undefined
  }
}

/** UTF-8 bytes of a string. */
export const encodeUtf8 = (text: string): Uint8Array => utf8.encode(text)

/** Latin-1 ("binary") string of bytes: one char per byte, lossless, used for bencode dictionary keys. */
export const toBinaryString = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + 4096)))
  }
  return out
}

/** Inverse of {@link toBinaryString}; chars above 0xff are truncated to their low byte. */
export const fromBinaryString = (text: string): Uint8Array => {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff
  return out
}

/** Concatenates byte arrays into one new array. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
