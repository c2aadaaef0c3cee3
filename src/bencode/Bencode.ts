/**
 * Bencode (BEP 3): a strict decoder that never throws and remembers where each dict and list came from in the
 * input, and an encoder that writes canonical (sorted-key) output.
 *
 * Value model ({@link BValue}):
 * - integers are `number` when within ±(2^53 − 1), `bigint` beyond that up to the signed 64-bit range (the range
 *   libtorrent accepts); anything wider is rejected (`integer-overflow`). Callers needing a size or count reject
 *   bigints with an error that names the field.
 * - byte strings are `Uint8Array` **views** into the input (no copy; pass `copy: true` to detach them).
 * - lists are arrays; dictionaries are `ReadonlyMap`s whose keys are the key bytes as a latin-1 ("binary")
 *   string: lossless for any bytes, and plain ASCII keys read as themselves (`dict.get("info")`).
 *
 * Strict mode (the default: wire, tracker, DHT data) rejects unsorted and duplicate keys and leading zeros in
 * string lengths. Lenient mode (metainfo, as libtorrent reads it) accepts unsorted keys, keeps the *first* of
 * duplicate keys (libtorrent's lookup does the same) and accepts zero-padded string lengths. Both modes reject
 * truncation, trailing bytes, `i03e`, `i-0e`, and nesting deeper than `maxDepth` (default 100, libtorrent's).
 */
import * as Either from "effect/Either"
import * as Bytes from "../core/Bytes.ts"
import { BencodeError, type Reason } from "./BencodeError.ts"

export { BencodeError } from "./BencodeError.ts"

export type BValue = number | bigint | Uint8Array | BList | BDict
export interface BList extends ReadonlyArray<BValue> {}
export interface BDict extends ReadonlyMap<string, BValue> {}

/** Byte range `[start, end)` of a value in the decoded input. */
export interface Span {
  readonly start: number
  readonly end: number
}

export interface DecodeOptions {
  readonly mode?: "strict" | "lenient" | undefined
  readonly maxDepth?: number | undefined
  /** Copy byte strings out of the input instead of returning views into it. */
  readonly copy?: boolean | undefined
}

const spans = new WeakMap<object, Span>()

/** Where a dict or list decoded by this module lies in its input (`undefined` for values built by hand). */
export const spanOf = (value: BValue): Span | undefined =>
  typeof value === "object" && !(value instanceof Uint8Array) ? spans.get(value) : undefined

/** The original bytes of a decoded dict or list: a view into `input`. */
export const rawOf = (input: Uint8Array, value: BValue): Uint8Array | undefined => {
  const s = spanOf(value)
  return s === undefined ? undefined : input.subarray(s.start, s.end)
}

const MAX_I64 = 9223372036854775807n
const MIN_I64 = -9223372036854775808n

class Fail {
  readonly reason: Reason
  readonly offset: number
  readonly detail: string
  constructor(reason: Reason, offset: number, detail: string) {
    this.reason = reason
    this.offset = offset
    this.detail = detail
  }
}

class Decoder {
  pos = 0
  readonly buf: Uint8Array
  readonly strict: boolean
  readonly maxDepth: number
  readonly copy: boolean
  constructor(buf: Uint8Array, strict: boolean, maxDepth: number, copy: boolean) {
    this.buf = buf
    this.strict = strict
    this.maxDepth = maxDepth
    this.copy = copy
  }

  fail(reason: Reason, offset: number, detail: string): never {
    throw new Fail(reason, offset, detail)
  }

  value(depth: number): BValue {
    const b = this.buf
    if (this.pos >= b.length) this.fail("truncated", this.pos, "input ended where a value was expected")
    const c = b[this.pos]!
    if (c === 0x69) return this.integer()
    if (c >= 0x30 && c <= 0x39) return this.string()
    if (c === 0x6c || c === 0x64) {
      if (depth >= this.maxDepth) this.fail("depth-exceeded", this.pos, `nesting deeper than ${this.maxDepth}`)
      return c === 0x6c ? this.list(depth + 1) : this.dict(depth + 1)
    }
    return this.fail("unexpected-byte", this.pos, `byte 0x${c.toString(16).padStart(2, "0")} cannot start a value`)
  }

  integer(): number | bigint {
    const b = this.buf
    const start = this.pos
    let p = start + 1
    const neg = b[p] === 0x2d
    if (neg) p++
    const digitsStart = p
    while (p < b.length && b[p]! >= 0x30 && b[p]! <= 0x39) p++
    if (p >= b.length) this.fail("truncated", p, "input ended inside an integer")
    if (b[p] !== 0x65) this.fail("invalid-integer", p, "an integer may hold only digits and a leading '-'")
    const nDigits = p - digitsStart
    if (nDigits === 0) this.fail("invalid-integer", start, "an integer needs at least one digit")
    if (b[digitsStart] === 0x30 && nDigits > 1) this.fail("leading-zero", start, "integers may not have leading zeros")
    if (neg && b[digitsStart] === 0x30) this.fail("negative-zero", start, "-0 is not a valid integer")
    this.pos = p + 1
    if (nDigits <= 15) {
      let n = 0
      for (let i = digitsStart; i < p; i++) n = n * 10 + (b[i]! - 0x30)
      return neg ? -n : n
    }
    if (nDigits > 19) this.fail("integer-overflow", start, "integer outside the signed 64-bit range")
    let big = 0n
    for (let i = digitsStart; i < p; i++) big = big * 10n + BigInt(b[i]! - 0x30)
    if (neg) big = -big
    if (big > MAX_I64 || big < MIN_I64) this.fail("integer-overflow", start, "integer outside the signed 64-bit range")
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
  }

  string(): Uint8Array {
    const b = this.buf
    const start = this.pos
    let p = start
    let len = 0
    while (p < b.length && b[p]! >= 0x30 && b[p]! <= 0x39) {
      len = len * 10 + (b[p]! - 0x30)
      p++
      if (p - start > 15) this.fail("invalid-length", start, "string length has too many digits")
    }
    if (p >= b.length) this.fail("truncated", p, "input ended inside a string length")
    if (b[p] !== 0x3a) this.fail("invalid-length", p, "a string length must be digits followed by ':'")
    if (this.strict && b[start] === 0x30 && p - start > 1) {
      this.fail("leading-zero", start, "string lengths may not have leading zeros")
    }
    const dataStart = p + 1
    if (len > b.length - dataStart) {
      this.fail("truncated", start, `string of ${len} bytes runs past the end of the input`)
    }
    this.pos = dataStart + len
    const view = b.subarray(dataStart, dataStart + len)
    return this.copy ? new Uint8Array(view) : view
  }

  list(depth: number): BList {
    const b = this.buf
    const start = this.pos
    this.pos++
    const out: Array<BValue> = []
    for (;;) {
      if (this.pos >= b.length) this.fail("truncated", this.pos, "input ended inside a list")
      if (b[this.pos] === 0x65) break
      out.push(this.value(depth))
    }
    this.pos++
    spans.set(out, { start, end: this.pos })
    return out
  }

  dict(depth: number): BDict {
    const b = this.buf
    const start = this.pos
    this.pos++
    const out = new Map<string, BValue>()
    let prev: string | undefined
    for (;;) {
      if (this.pos >= b.length) this.fail("truncated", this.pos, "input ended inside a dictionary")
      if (b[this.pos] === 0x65) break
      const keyAt = this.pos
      const c = b[keyAt]!
      if (c < 0x30 || c > 0x39) {
        if (c === 0x69 || c === 0x6c || c === 0x64) this.fail("non-string-key", keyAt, "dictionary keys must be strings")
        this.fail("unexpected-byte", keyAt, `byte 0x${c.toString(16).padStart(2, "0")} cannot start a key`)
      }
      const key = Bytes.toBinaryString(this.string())
      if (this.strict) {
        if (out.has(key)) this.fail("duplicate-key", keyAt, `duplicate key ${JSON.stringify(key)}`)
        if (prev !== undefined && key < prev) this.fail("unsorted-keys", keyAt, `key ${JSON.stringify(key)} is out of order`)
      }
      if (this.pos >= b.length) this.fail("truncated", this.pos, `input ended before the value of key ${JSON.stringify(key)}`)
      const v = this.value(depth)
      if (!out.has(key)) out.set(key, v)
      prev = key
    }
    this.pos++
    spans.set(out, { start, end: this.pos })
    return out
  }
}

const run = <A>(input: Uint8Array, options: DecodeOptions | undefined, f: (d: Decoder) => A): Either.Either<A, BencodeError> => {
  const d = new Decoder(input, options?.mode !== "lenient", options?.maxDepth ?? 100, options?.copy ?? false)
  try {
    return Either.right(f(d))
  } catch (e) {
    if (e instanceof Fail) return Either.left(new BencodeError({ reason: e.reason, offset: e.offset, detail: e.detail }))
    // RangeError (call stack) cannot happen with the depth limit, but never let anything escape as a throw.
    return Either.left(new BencodeError({ reason: "depth-exceeded", offset: d.pos, detail: String(e) }))
  }
}

/** Decodes exactly one value that spans the whole input. Never throws. */
export const decode = (input: Uint8Array, options?: DecodeOptions): Either.Either<BValue, BencodeError> =>
  run(input, options, (d) => {
    const v = d.value(0)
    if (d.pos !== input.length) d.fail("trailing-bytes", d.pos, `${input.length - d.pos} bytes after the value`)
    return v
  })

/**
 * Decodes one value at the start of `input` and reports where it ended; the rest is the caller's (BEP 9 metadata
 * pieces carry raw data after their bencoded header). Never throws.
 */
export const decodePrefix = (
  input: Uint8Array,
  options?: DecodeOptions
): Either.Either<{ readonly value: BValue; readonly end: number }, BencodeError> =>
  run(input, options, (d) => ({ value: d.value(0), end: d.pos }))

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/**
 * What the encoder accepts: decoded values plus conveniences: JS strings (written as UTF-8) and plain objects
 * (keys written as UTF-8). Map keys are binary strings, exactly as the decoder produces them.
 */
export type Encodable =
  | number
  | bigint
  | string
  | Uint8Array
  | ReadonlyArray<Encodable>
  | ReadonlyMap<string, Encodable>
  | { readonly [key: string]: Encodable | undefined }

const enc = new TextEncoder()

class Writer {
  chunks: Array<Uint8Array> = []
  size = 0
  ascii(s: string) {
    this.bytes(Bytes.fromBinaryString(s))
  }
  bytes(b: Uint8Array) {
    this.chunks.push(b)
    this.size += b.length
  }
  str(b: Uint8Array) {
    this.ascii(`${b.length}:`)
    this.bytes(b)
  }
}

const write = (w: Writer, v: Encodable): void => {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new RangeError(`bencode integers must be safe integers, got ${v}`)
    w.ascii(`i${v}e`)
  } else if (typeof v === "bigint") {
    // The decoder rejects integers outside int64, so never write one.
    if (v > MAX_I64 || v < MIN_I64) throw new RangeError(`bencode integers must fit in 64 bits, got ${v}`)
    w.ascii(`i${v}e`)
  } else if (typeof v === "string") {
    w.str(enc.encode(v))
  } else if (v instanceof Uint8Array) {
    w.str(v)
  } else if (Array.isArray(v)) {
    w.ascii("l")
    for (const x of v as ReadonlyArray<Encodable>) write(w, x)
    w.ascii("e")
  } else if (v instanceof Map) {
    const m = v as ReadonlyMap<string, Encodable>
    w.ascii("d")
    for (const k of [...m.keys()].sort()) {
      // A char above 0xff would be truncated to its low byte: wrong key, possibly unsorted or duplicate output.
      if (/[^\x00-\xff]/.test(k)) throw new RangeError(`Map keys must be binary strings, got ${JSON.stringify(k)}`)
      w.str(Bytes.fromBinaryString(k))
      write(w, m.get(k)!)
    }
    w.ascii("e")
  } else {
    const o = v as { readonly [key: string]: Encodable | undefined }
    const entries = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .map((k) => [enc.encode(k), o[k]!] as const)
      .sort((a, b) => Bytes.compare(a[0], b[0]))
    w.ascii("d")
    for (const [k, x] of entries) {
      w.str(k)
      write(w, x)
    }
    w.ascii("e")
  }
}

/**
 * Canonical bencode of a value: dictionary keys sorted by their bytes. Throws `RangeError` for what bencode (or our
 * decoder) cannot hold: non-safe-integer numbers, bigints outside int64, Map keys with chars above 0xff.
 */
export const encode = (value: Encodable): Uint8Array => {
  const w = new Writer()
  write(w, value)
  return Bytes.concat(w.chunks)
}

// ---------------------------------------------------------------------------------------------------------------
// Reading helpers for callers that walk decoded values.

export const isDict = (v: BValue | undefined): v is BDict => v instanceof Map
export const isList = (v: BValue | undefined): v is BList => Array.isArray(v)
export const isBytes = (v: BValue | undefined): v is Uint8Array => v instanceof Uint8Array
export const isInt = (v: BValue | undefined): v is number | bigint => typeof v === "number" || typeof v === "bigint"
