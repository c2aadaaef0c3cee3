/** The pieces bar's arithmetic: Detail's base64 bitfield (high bit of byte 0 = piece 0) read and folded to columns. */

export const decode = (base64: string): Uint8Array => {
  const text = atob(base64)
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i)
  return out
}

export const has = (bits: Uint8Array, index: number): boolean => ((bits[index >> 3] ?? 0) & (0x80 >> (index & 7))) !== 0

export const set = (bits: Uint8Array, index: number): void => {
  if (index >> 3 < bits.length) bits[index >> 3]! |= 0x80 >> (index & 7)
}

export const count = (bits: Uint8Array, pieces: number): number => {
  let n = 0
  for (let i = 0; i < pieces; i++) if (has(bits, i)) n++
  return n
}

/**
 * For a bar `width` columns wide, the share of verified pieces under each column (0..1). With more columns than
 * pieces a piece spans several columns; with fewer, a column averages the pieces it covers.
 */
export const columns = (bits: Uint8Array, pieces: number, width: number): Float64Array => {
  const out = new Float64Array(Math.max(0, width))
  if (pieces <= 0) return out
  for (let c = 0; c < width; c++) {
    const from = Math.floor((c * pieces) / width)
    const to = Math.max(from + 1, Math.floor(((c + 1) * pieces) / width))
    let n = 0
    for (let i = from; i < to; i++) if (has(bits, i)) n++
    out[c] = n / (to - from)
  }
  return out
}
