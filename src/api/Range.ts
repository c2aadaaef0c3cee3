/**
 * The `Range` request header (RFC 9110 §14.2), for one representation of `length` bytes. Pure; never throws.
 *
 * One range is served (206): `bytes=a-b` (b clamped to the end), `bytes=a-` (to the end), `bytes=-n` (the last n
 * bytes, all of them when n ≥ length). A range starting at or past the end, a zero-length suffix, or any range of
 * an empty file is unsatisfiable (416). Everything else is ignored and the whole file is served (200), as the RFC
 * allows: no header, another unit, a syntax error, `a-b` with b < a, and requests for several ranges (video players
 * ask for one; answering several needs `multipart/byteranges`).
 */

export type Result =
  | { readonly _tag: "Full" }
  /** `end` exclusive; 0 ≤ start < end ≤ length. */
  | { readonly _tag: "Partial"; readonly start: number; readonly end: number }
  | { readonly _tag: "Unsatisfiable" }

const full: Result = { _tag: "Full" }
const unsatisfiable: Result = { _tag: "Unsatisfiable" }

const SPECIFIER = /^[ \t]*bytes[ \t]*=(.*)$/is
const FIRST_LAST = /^(\d+)-(\d*)$/
const SUFFIX = /^-(\d+)$/

/** Digits to a number; very long ones become Infinity (never NaN). */
const digits = (s: string): number => (s.length > 16 ? Infinity : Number(s))

export const parse = (header: string | undefined, length: number): Result => {
  if (header === undefined) return full
  const m = SPECIFIER.exec(header)
  if (m === null) return full
  const specs = m[1]!.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  if (specs.length !== 1) return full
  const spec = specs[0]!
  const fl = FIRST_LAST.exec(spec)
  if (fl !== null) {
    const first = digits(fl[1]!)
    const last = fl[2] === "" ? Infinity : digits(fl[2]!)
    if (last < first) return full
    if (first >= length) return unsatisfiable
    return { _tag: "Partial", start: first, end: Math.min(last, length - 1) + 1 }
  }
  const sx = SUFFIX.exec(spec)
  if (sx !== null) {
    const n = digits(sx[1]!)
    if (n === 0 || length === 0) return unsatisfiable
    return { _tag: "Partial", start: Math.max(0, length - n), end: length }
  }
  return full
}

/** `Content-Range` of a 206: `bytes first-last/length`. */
export const contentRange = (start: number, end: number, length: number): string =>
  `bytes ${start}-${end - 1}/${length}`

/** `Content-Range` of a 416: `bytes *\/length`. */
export const unsatisfiedRange = (length: number): string => `bytes */${length}`
