/**
 * Byte-rate limits (`--up-limit`, `--down-limit`): a token bucket for the synchronous byte path, an Effect wrapper
 * for fibers, and the parser for rate text.
 *
 * The bucket is plain mutable data driven by a caller-supplied `now` (ms), so the socket writer can call
 * {@link tryTake} per chunk without entering Effect (ARCHITECTURE.md, performance rules); `effect/RateLimiter` is
 * Effect-only and charges whole operations. {@link take} sleeps through `Effect.sleep` and reads `Clock`, so
 * `TestClock` drives it.
 *
 * Arithmetic is exact: tokens are kept in thousandths of a byte and refilled by `rate × elapsed ms`, all integers
 * below 2^53 (rates are whole bytes/s up to {@link MAX_RATE}; integer `now` keeps it exact). Tokens accrue from
 * elapsed time, not from sleeps, so rounding a sleep up to a whole ms never loses throughput: in T seconds at most
 * `burst + rate × T` bytes pass, and a busy taker gets all of them.
 *
 * Unlimited (rate 0) is the {@link unlimited} bucket: `tryTake` returns `n` on its first line and `take` is
 * `Effect.void`.
 *
 * Limits that change at run time (`Torrent.setLimits`, the session's shared limits) use a bucket of their own from
 * {@link makeAdjustable} (rate 0 allowed) and {@link setRate}. Several buckets may govern the same bytes (a torrent's
 * own limit and a limit shared by all torrents): {@link availableAll}, {@link tryTakeAll} and {@link delayForAll}
 * treat them as one, granting only what every one of them has.
 *
 * Rate text ({@link parseRate}): a decimal number of bytes/s with an optional unit and optional "/s". Single
 * letters `k`/`K`, `m`/`M`, `g`/`G`, `t`/`T` are binary (1K = 1024), as in aria2's `--max-download-limit` (and curl's
 * and wget's `--limit-rate`); `KiB`/`MiB`/`GiB`/`TiB` are binary too, and the explicit SI forms `kB`/`KB`/`MB`/
 * `GB`/`TB` are decimal (1 MB = 1 000 000, Transmission's display units). A lowercase `b` means bits elsewhere, so
 * `Mb`, `kb` are refused rather than guessed. `0` (with any unit) is unlimited; a non-zero rate that rounds below
 * 1 byte/s is refused instead of silently becoming unlimited.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"

/** Largest accepted rate: 1 TiB/s (keeps the bucket's integer arithmetic exact). */
export const MAX_RATE = 2 ** 40
/** Smallest default burst: one 16 KiB block message fits in a full bucket. */
export const MIN_BURST = 16 * 1024 + 13

export interface Bucket {
  /** Bytes per second; 0 for unlimited. Changed only through {@link setRate}. */
  rate: number
  /** Capacity in bytes: the most that passes at once after a pause. */
  burst: number
  /** Tokens in thousandths of a byte (internal). */
  milli: number
  /** Time of the last refill, ms (internal). */
  last: number
}

/** The no-op bucket. */
export const unlimited: Bucket = { rate: 0, burst: Number.POSITIVE_INFINITY, milli: 0, last: 0 }

export const isUnlimited = (bucket: Bucket): boolean => bucket.rate === 0

export interface MakeOptions {
  /** Current time, ms. */
  readonly now: number
  /** Capacity in bytes; default `max(rate, MIN_BURST)`. */
  readonly burst?: number | undefined
}

/**
 * A full bucket for `rate` bytes/s, or {@link unlimited} for 0. Rates and bursts must be whole numbers in
 * 0..MAX_RATE (parse user text with {@link parseRate}); anything else is a programming error and throws RangeError.
 */
export const make = (rate: number, options: MakeOptions): Bucket => {
  if (!Number.isSafeInteger(rate) || rate < 0 || rate > MAX_RATE) throw new RangeError(`invalid rate ${rate}`)
  if (rate === 0) return unlimited
  const burst = options.burst ?? Math.max(rate, MIN_BURST)
  if (!Number.isSafeInteger(burst) || burst < 1 || burst > MAX_RATE) throw new RangeError(`invalid burst ${burst}`)
  return { rate, burst, milli: burst * 1000, last: options.now }
}

/** A bucket of its own for `rate` (0: unlimited for now), whose rate {@link setRate} may change later. */
export const makeAdjustable = (rate: number, options: MakeOptions): Bucket => {
  if (rate !== 0) return make(rate, options)
  return { rate: 0, burst: Number.POSITIVE_INFINITY, milli: 0, last: options.now }
}

/**
 * Changes the rate (0: unlimited) at once; the burst becomes `max(rate, MIN_BURST)`. Tokens saved so far are kept
 * up to the new burst; a bucket that was unlimited starts full. Throws RangeError for the shared {@link unlimited}
 * bucket (make one with {@link makeAdjustable}) and for invalid rates.
 */
export const setRate = (bucket: Bucket, rate: number, now: number): void => {
  if (bucket === unlimited) throw new RangeError("the shared unlimited bucket cannot change: use makeAdjustable")
  if (!Number.isSafeInteger(rate) || rate < 0 || rate > MAX_RATE) throw new RangeError(`invalid rate ${rate}`)
  if (bucket.rate !== 0) refill(bucket, now)
  const wasUnlimited = bucket.rate === 0
  bucket.rate = rate
  bucket.last = now
  if (rate === 0) {
    bucket.burst = Number.POSITIVE_INFINITY
    bucket.milli = 0
    return
  }
  bucket.burst = Math.max(rate, MIN_BURST)
  const cap = bucket.burst * 1000
  bucket.milli = wasUnlimited || bucket.milli > cap ? cap : bucket.milli
}

/** Whole bytes every bucket has now (the smallest). */
export const availableAll = (buckets: ReadonlyArray<Bucket>, now: number): number => {
  let n = Number.POSITIVE_INFINITY
  for (const b of buckets) {
    const a = available(b, now)
    if (a < n) n = a
  }
  return n
}

/** Takes up to `n` bytes from every bucket alike: what the emptiest one grants. */
export const tryTakeAll = (buckets: ReadonlyArray<Bucket>, n: number, now: number): number => {
  const a = availableAll(buckets, now)
  const granted = n < a ? n : a
  if (granted > 0) for (const b of buckets) tryTake(b, granted, now)
  return granted
}

/** Whole ms until every bucket has `min(n, its burst)` bytes (the longest wait). */
export const delayForAll = (buckets: ReadonlyArray<Bucket>, n: number, now: number): number => {
  let ms = 0
  for (const b of buckets) {
    const d = delayFor(b, n, now)
    if (d > ms) ms = d
  }
  return ms
}

/** {@link make} at the current `Clock` time (ms). */
export const makeNow = (rate: number, burst?: number): Effect.Effect<Bucket> =>
  Effect.map(nowMillis, (now) => make(rate, { now, burst }))

const refill = (b: Bucket, now: number): void => {
  const dt = now - b.last
  // A clock that goes backwards only resynchronises; it never adds tokens.
  b.last = now
  if (!(dt > 0)) return
  const cap = b.burst * 1000
  const room = cap - b.milli
  const add = dt * b.rate
  b.milli = add >= room ? cap : b.milli + add
}

/** Whole bytes available now. */
export const available = (bucket: Bucket, now: number): number => {
  if (bucket.rate === 0) return Number.POSITIVE_INFINITY
  refill(bucket, now)
  return Math.floor(bucket.milli / 1000)
}

/** Takes up to `n` bytes; returns how many were granted (0..n). Never blocks, never goes into debt. */
export const tryTake = (bucket: Bucket, n: number, now: number): number => {
  if (bucket.rate === 0) return n
  refill(bucket, now)
  const avail = Math.floor(bucket.milli / 1000)
  const granted = n < avail ? n : avail
  if (granted > 0) bucket.milli -= granted * 1000
  return granted
}

/** ceil(a / b) for non-negative integers, exactly. */
const ceilDiv = (a: number, b: number): number => {
  let q = Math.floor(a / b)
  while (q * b < a) q++
  while (q > 0 && (q - 1) * b >= a) q--
  return q
}

/**
 * Whole ms until `min(n, burst)` bytes are available (0 when they are now). Waiting that long and calling
 * {@link tryTake} grants them, unless someone else takes first.
 */
export const delayFor = (bucket: Bucket, n: number, now: number): number => {
  if (bucket.rate === 0) return 0
  refill(bucket, now)
  const want = (n < bucket.burst ? n : bucket.burst) * 1000
  return bucket.milli >= want ? 0 : ceilDiv(want - bucket.milli, bucket.rate)
}

const nowMillis: Effect.Effect<number> = Effect.map(Clock.currentTimeNanos, (ns) => Number(ns / 1_000_000n))

const takeLimited = Effect.fnUntraced(function*(bucket: Bucket, n: number) {
  let left = n
  for (;;) {
    const now = yield* nowMillis
    left -= tryTake(bucket, left, now)
    if (left <= 0) return
    yield* Effect.sleep(Duration.millis(delayFor(bucket, left, now)))
  }
})

/**
 * Waits until `n` bytes have been taken, in pieces of at most `burst` (so `n` may exceed the burst). Sleeps with
 * `Effect.sleep`; time comes from `Clock`. Concurrent takers share the bucket in no particular order.
 */
export const take = (bucket: Bucket, n: number): Effect.Effect<void> =>
  bucket.rate === 0 || n <= 0 ? Effect.void : takeLimited(bucket, n)

// ---------------------------------------------------------------------------------------------------------------
// Rate text

export class RateError extends Data.TaggedError("RateError")<{
  readonly reason:
    | "invalid-number" // empty, negative, not a decimal number
    | "unknown-unit" // a suffix that is not one of the units above (including bit units like "Mb")
    | "out-of-range" // above MAX_RATE, or non-zero but below 1 byte/s
  readonly input: string
  readonly detail: string
}> {
  override get message(): string {
    return `invalid rate ${JSON.stringify(this.input)}: ${this.detail}`
  }
}

const K = 1024
const UNITS: ReadonlyMap<string, number> = new Map<string, number>([
  ["k", K],
  ["m", K ** 2],
  ["g", K ** 3],
  ["t", K ** 4],
  ["kib", K],
  ["mib", K ** 2],
  ["gib", K ** 3],
  ["tib", K ** 4],
  ["kB", 1e3],
  ["mB", 1e6],
  ["gB", 1e9],
  ["tB", 1e12]
])

/** The unit's multiplier. Prefix letter and "i" are case-free; a trailing byte sign must be "B". */
const unitOf = (suffix: string): number | undefined => {
  if (suffix === "" || suffix === "B") return 1
  const prefix = suffix[0]!.toLowerCase()
  const rest = suffix.slice(1)
  if (rest === "") return UNITS.get(prefix)
  if (rest === "B") return UNITS.get(prefix + "B")
  if (rest.length === 2 && rest[0]!.toLowerCase() === "i" && rest[1] === "B") return UNITS.get(prefix + "ib")
  return undefined
}

/** Bytes/s of rate text such as `500K`, `1.5M`, `2MiB/s`, `10MB`; 0 means unlimited. Never throws. */
export const parseRate = (text: string): Either.Either<number, RateError> => {
  const fail = (reason: RateError["reason"], detail: string) =>
    Either.left(new RateError({ reason, input: text, detail }))
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)(\/s)?\s*$/.exec(text)
  if (m === null) return fail("invalid-number", "expected a non-negative decimal number and an optional unit")
  const value = Number(m[1]!)
  const mult = unitOf(m[2]!)
  if (mult === undefined) {
    return fail("unknown-unit", `unknown unit ${JSON.stringify(m[2]!)} (use K, M, G, KiB, MiB, GiB, kB, MB, GB; bytes)`)
  }
  if (value === 0) return Either.right(0)
  const rate = Math.round(value * mult)
  if (!(rate <= MAX_RATE)) return fail("out-of-range", `above the maximum of ${MAX_RATE} bytes/s`)
  if (rate < 1) return fail("out-of-range", "below 1 byte/s (use 0 for unlimited)")
  return Either.right(rate)
}
