/**
 * A fixed-size set of piece indices, stored as the wire's bitfield bytes (BEP 3: high bit of byte 0 is piece 0).
 * Mutable on purpose: it sits on hot paths (have messages, picker); owners keep it private and share copies.
 */

export interface Bitfield {
  readonly size: number
  readonly bytes: Uint8Array
}

/** An empty bitfield for `size` pieces. */
export const make = (size: number): Bitfield => ({ size, bytes: new Uint8Array(Math.ceil(size / 8)) })

/** A bitfield with every piece set. */
export const full = (size: number): Bitfield => {
  const bf = make(size)
  bf.bytes.fill(0xff)
  clearSpare(bf)
  return bf
}

/** Number of bytes a bitfield message for `size` pieces carries. */
export const byteLength = (size: number): number => Math.ceil(size / 8)

/**
 * Reads wire bytes for a torrent of `size` pieces. `undefined` when the length is wrong or a spare bit (past the
 * last piece) is set, both of which BEP 3 says should drop the connection.
 */
export const fromBytes = (bytes: Uint8Array, size: number): Bitfield | undefined => {
  if (bytes.length !== byteLength(size)) return undefined
  const spare = bytes.length * 8 - size
  if (spare > 0 && (bytes[bytes.length - 1]! & ((1 << spare) - 1)) !== 0) return undefined
  return { size, bytes: new Uint8Array(bytes) }
}

export const has = (bf: Bitfield, index: number): boolean =>
  index >= 0 && index < bf.size && (bf.bytes[index >> 3]! & (0x80 >> (index & 7))) !== 0

export const set = (bf: Bitfield, index: number): void => {
  if (index < 0 || index >= bf.size) throw new RangeError(`piece ${index} out of range 0..${bf.size - 1}`)
  bf.bytes[index >> 3] = bf.bytes[index >> 3]! | (0x80 >> (index & 7))
}

export const clear = (bf: Bitfield, index: number): void => {
  if (index < 0 || index >= bf.size) throw new RangeError(`piece ${index} out of range 0..${bf.size - 1}`)
  bf.bytes[index >> 3] = bf.bytes[index >> 3]! & ~(0x80 >> (index & 7))
}

const POP = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0
  for (let b = i; b !== 0; b >>= 1) n += b & 1
  return n
})

/** Number of pieces set. */
export const count = (bf: Bitfield): number => {
  let n = 0
  for (let i = 0; i < bf.bytes.length; i++) n += POP[bf.bytes[i]!]!
  return n
}

export const isComplete = (bf: Bitfield): boolean => count(bf) === bf.size

export const isEmpty = (bf: Bitfield): boolean => bf.bytes.every((b) => b === 0)

/** A copy that shares nothing with the original. */
export const copy = (bf: Bitfield): Bitfield => ({ size: bf.size, bytes: new Uint8Array(bf.bytes) })

/** Indices of set pieces, ascending. */
export const indices = (bf: Bitfield): Array<number> => {
  const out: Array<number> = []
  for (let i = 0; i < bf.size; i++) if (has(bf, i)) out.push(i)
  return out
}

const clearSpare = (bf: Bitfield): void => {
  const spare = bf.bytes.length * 8 - bf.size
  if (spare > 0) bf.bytes[bf.bytes.length - 1] = bf.bytes[bf.bytes.length - 1]! & (0xff << spare) & 0xff
}
