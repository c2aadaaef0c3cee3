import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as RateLimit from "../../src/torrent/RateLimit.ts"

const MiB = 1024 * 1024

const parsed = (text: string): number => Either.getOrThrow(RateLimit.parseRate(text))
const reason = (text: string): string | undefined =>
  Either.match(RateLimit.parseRate(text), { onLeft: (e) => e.reason, onRight: () => undefined })

describe("parseRate", () => {
  it("reads plain bytes, binary single letters (aria2), IEC and SI units", () => {
    expect(parsed("0")).toBe(0)
    expect(parsed("0K")).toBe(0)
    expect(parsed("0.0MiB")).toBe(0)
    expect(parsed("100")).toBe(100)
    expect(parsed("100B")).toBe(100)
    expect(parsed("1k")).toBe(1024)
    expect(parsed("1K")).toBe(1024)
    expect(parsed("1.5M")).toBe(1572864)
    expect(parsed("1.5m")).toBe(1572864)
    expect(parsed("2G")).toBe(2 * 1024 ** 3)
    expect(parsed("1T")).toBe(1024 ** 4)
    expect(parsed("1KiB")).toBe(1024)
    expect(parsed("1kiB")).toBe(1024)
    expect(parsed("3MiB")).toBe(3 * MiB)
    expect(parsed("1GiB")).toBe(1024 ** 3)
    expect(parsed("1kB")).toBe(1000)
    expect(parsed("1KB")).toBe(1000)
    expect(parsed("1.5MB")).toBe(1_500_000)
    expect(parsed("2GB")).toBe(2e9)
    expect(parsed(" 500 K/s ")).toBe(512_000)
    expect(parsed("1MiB/s")).toBe(MiB)
    expect(parsed(".5K")).toBe(512)
    expect(parsed("1.")).toBe(1)
    expect(parsed("0.1K")).toBe(102)
  })

  it("refuses bad text with a typed reason", () => {
    expect(reason("")).toBe("invalid-number")
    expect(reason("abc")).toBe("invalid-number")
    expect(reason("-1")).toBe("invalid-number")
    expect(reason("1e3")).toBe("invalid-number")
    expect(reason("1,5M")).toBe("invalid-number")
    expect(reason("1x")).toBe("unknown-unit")
    expect(reason("1Mb")).toBe("unknown-unit")
    expect(reason("1kb")).toBe("unknown-unit")
    expect(reason("1b")).toBe("unknown-unit")
    expect(reason("1MiBs")).toBe("unknown-unit")
    expect(reason("2000T")).toBe("out-of-range")
    expect(reason("9".repeat(400))).toBe("out-of-range")
    expect(reason("0.0001K")).toBe("out-of-range")
    expect(RateLimit.parseRate("1Q").pipe(Either.flip, Either.getOrThrow).message).toContain("\"1Q\"")
  })

  it.prop("n<unit> is n times the unit's multiplier", [
    FastCheck.integer({ min: 0, max: 1000 }),
    FastCheck.constantFrom(
      ["", 1],
      ["K", 1024],
      ["MiB", MiB],
      ["MB", 1e6],
      ["g", 1024 ** 3],
      ["kB", 1000]
    ) as FastCheck.Arbitrary<readonly [string, number]>
  ], ([n, [unit, mult]]) => {
    expect(parsed(`${n}${unit}`)).toBe(n * mult)
  })

  it.prop("never throws on arbitrary text", [FastCheck.string({ maxLength: 12 })], ([s]) => {
    const r = RateLimit.parseRate(s)
    if (Either.isRight(r)) {
      expect(Number.isSafeInteger(r.right) && r.right >= 0 && r.right <= RateLimit.MAX_RATE).toBe(true)
    }
  })
})

describe("token bucket (synchronous)", () => {
  it("starts full, grants partially, never goes into debt", () => {
    const b = RateLimit.make(1000, { now: 0, burst: 500 })
    expect(RateLimit.tryTake(b, 300, 0)).toBe(300)
    expect(RateLimit.tryTake(b, 300, 0)).toBe(200)
    expect(RateLimit.tryTake(b, 300, 0)).toBe(0)
    expect(RateLimit.available(b, 0)).toBe(0)
  })

  it("refills at the rate, exactly, up to the burst", () => {
    const b = RateLimit.make(1000, { now: 0, burst: 500 })
    RateLimit.tryTake(b, 500, 0)
    expect(RateLimit.available(b, 1)).toBe(1)
    expect(RateLimit.available(b, 250)).toBe(250)
    expect(RateLimit.available(b, 10_000)).toBe(500)
  })

  it("delayFor is the exact whole-ms wait, capped at the burst", () => {
    const b = RateLimit.make(3, { now: 0, burst: 10 }) // 3 bytes/s: fractional tokens per ms
    RateLimit.tryTake(b, 10, 0)
    expect(RateLimit.delayFor(b, 1, 0)).toBe(334) // 1000/3 ms, rounded up
    expect(RateLimit.tryTake(b, 1, 333)).toBe(0)
    expect(RateLimit.delayFor(b, 1, 333)).toBe(1)
    expect(RateLimit.tryTake(b, 1, 334)).toBe(1)
    expect(RateLimit.delayFor(b, 100, 334)).toBe(RateLimit.delayFor(b, 10, 334))
    expect(RateLimit.delayFor(b, 0, 334)).toBe(0)
  })

  it("a backwards clock adds nothing", () => {
    const b = RateLimit.make(1000, { now: 1000, burst: 100 })
    RateLimit.tryTake(b, 100, 1000)
    expect(RateLimit.available(b, 500)).toBe(0)
    expect(RateLimit.available(b, 550)).toBe(50)
  })

  it("defaults the burst to one second, at least one block message", () => {
    expect(RateLimit.make(MiB, { now: 0 }).burst).toBe(MiB)
    expect(RateLimit.make(100, { now: 0 }).burst).toBe(RateLimit.MIN_BURST)
    expect(() => RateLimit.make(1.5, { now: 0 })).toThrow(RangeError)
    expect(() => RateLimit.make(-1, { now: 0 })).toThrow(RangeError)
  })

  it("unlimited is a no-op", () => {
    const b = RateLimit.make(0, { now: 0 })
    expect(b).toBe(RateLimit.unlimited)
    expect(RateLimit.isUnlimited(b)).toBe(true)
    expect(RateLimit.tryTake(b, 1e12, 0)).toBe(1e12)
    expect(RateLimit.delayFor(b, 1e12, 0)).toBe(0)
    expect(RateLimit.take(b, 1e12)).toBe(Effect.void)
  })

  // Any sequence of takes at non-decreasing times: granted ≤ burst + rate × elapsed, and waiting delayFor always
  // suffices.
  it.prop("never grants more than burst + rate × time; delayFor is sufficient and tight", [
    FastCheck.integer({ min: 1, max: 5_000_000 }),
    FastCheck.integer({ min: 1, max: 100_000 }),
    FastCheck.array(
      FastCheck.tuple(FastCheck.integer({ min: 0, max: 200 }), FastCheck.integer({ min: 0, max: 300_000 })),
      { maxLength: 60 }
    )
  ], ([rate, burst, ops]) => {
    const b = RateLimit.make(rate, { now: 0, burst })
    let now = 0
    let granted = 0
    for (const [dt, n] of ops) {
      now += dt
      const d = RateLimit.delayFor(b, n, now)
      const want = Math.min(n, burst)
      // Tight: one ms earlier is not enough (probed on a copy, the bucket is plain data).
      if (d > 0) expect(RateLimit.available({ ...b }, now + d - 1)).toBeLessThan(want)
      now += d
      const g = RateLimit.tryTake(b, n, now)
      expect(g).toBe(want)
      granted += g
      expect(granted * 1000).toBeLessThanOrEqual(burst * 1000 + rate * now)
    }
  })
})

describe("take (TestClock)", () => {
  // A busy writer taking 128 KiB chunks (few sleeps keep the test fast) from a 1 MiB/s bucket (1 MiB burst) for
  // T simulated seconds gets exactly burst + T MiB: tokens accrue from elapsed time, so whole-ms sleeps lose nothing.
  it.effect("a 1 MiB/s bucket lets exactly 1 MiB + T MiB through in T seconds", () =>
    Effect.gen(function*() {
      const bucket = yield* RateLimit.makeNow(MiB)
      let sent = 0
      const writer = yield* Effect.fork(
        Effect.forever(Effect.zipRight(RateLimit.take(bucket, 131072), Effect.sync(() => void (sent += 131072))))
      )
      yield* TestClock.adjust("10 seconds")
      expect(sent).toBe(MiB + 10 * MiB)
      yield* TestClock.adjust("500 millis")
      expect(sent).toBe(MiB + 10.5 * MiB)
      yield* Fiber.interrupt(writer)
    }))

  it.effect("takes larger than the burst proceed in burst-sized steps", () =>
    Effect.gen(function*() {
      const bucket = yield* RateLimit.makeNow(1000, 1000)
      const f = yield* Effect.fork(RateLimit.take(bucket, 5500))
      yield* TestClock.adjust("4499 millis")
      expect(f.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(f.unsafePoll()).not.toBeNull()
    }))

  it.effect("concurrent takers share the rate: combined bytes are bounded and the bucket stays busy", () =>
    Effect.gen(function*() {
      const rate = 1_500_000 // 1.5 MB/s, 1500 bytes per ms
      const bucket = yield* RateLimit.makeNow(rate, 200_000)
      let sent = 0
      const worker = (n: number) =>
        Effect.fork(Effect.forever(Effect.zipRight(RateLimit.take(bucket, n), Effect.sync(() => void (sent += n)))))
      const a = yield* worker(160_001)
      const b = yield* worker(70_000)
      yield* TestClock.adjust("3 seconds")
      const cap = 200_000 + 3 * rate
      expect(sent).toBeLessThanOrEqual(cap)
      // Uncounted: each worker's partial take, and what accrued while both slept (less than one chunk).
      expect(sent).toBeGreaterThan(cap - 2 * (160_001 + 70_000))
      yield* Fiber.interrupt(a)
      yield* Fiber.interrupt(b)
    }))
})

describe("adjustable and shared buckets", () => {
  it("setRate: unlimited ⇄ limited at once; tokens kept up to the new burst; the shared unlimited bucket refuses", () => {
    const b = RateLimit.makeAdjustable(0, { now: 0 })
    expect(b).not.toBe(RateLimit.unlimited)
    expect(RateLimit.tryTake(b, 10 ** 9, 0)).toBe(10 ** 9)
    RateLimit.setRate(b, 100_000, 0)
    // starts full: one burst, then the rate
    expect(RateLimit.tryTake(b, 10 ** 9, 0)).toBe(100_000)
    expect(RateLimit.tryTake(b, 10 ** 9, 500)).toBe(50_000)
    // a lower rate keeps the tokens saved, up to its burst
    expect(RateLimit.tryTake(b, 0, 1000)).toBe(0)
    RateLimit.setRate(b, 20_000, 1000)
    expect(RateLimit.available(b, 1000)).toBe(20_000)
    RateLimit.setRate(b, 0, 1000)
    expect(RateLimit.available(b, 1000)).toBe(Number.POSITIVE_INFINITY)
    expect(() => RateLimit.setRate(RateLimit.unlimited, 5, 0)).toThrow(RangeError)
    expect(() => RateLimit.setRate(b, -1, 0)).toThrow(RangeError)
  })

  it.prop(
    "several buckets charged as one never grant more than the emptiest allows, and charge each alike",
    [
      FastCheck.array(FastCheck.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 3 }),
      FastCheck.array(FastCheck.tuple(FastCheck.integer({ min: 0, max: 300 }), FastCheck.integer({ min: 0, max: 70_000 })), {
        maxLength: 40
      })
    ],
    ([rates, steps]) => {
      const buckets = rates.map((r) => RateLimit.makeAdjustable(r, { now: 0 }))
      const limited = buckets.filter((b) => b.rate > 0)
      let now = 0
      let taken = 0
      for (const [dt, n] of steps) {
        now += dt
        const before = RateLimit.availableAll(buckets, now)
        const got = RateLimit.tryTakeAll(buckets, n, now)
        expect(got).toBe(Math.min(n, before))
        taken += got
        const wait = RateLimit.delayForAll(buckets, n, now)
        for (const b of limited) expect(wait).toBeGreaterThanOrEqual(RateLimit.delayFor(b, n, now))
      }
      // every limited bucket bounds the total: burst + rate × elapsed
      for (const b of limited) expect(taken).toBeLessThanOrEqual(b.burst + Math.floor((b.rate * now) / 1000))
    }
  )
})
