import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Backoff from "../../src/torrent/WebSeedBackoff.ts"

const event = FastCheck.oneof(
  FastCheck.record({ _tag: FastCheck.constant("fail" as const), after: FastCheck.integer({ min: 0, max: 5_000 }), retryAfter: FastCheck.option(FastCheck.integer({ min: 0, max: 1_000 }), { nil: undefined }) }),
  FastCheck.record({ _tag: FastCheck.constant("ok" as const), after: FastCheck.integer({ min: 0, max: 5_000 }) }),
  FastCheck.record({ _tag: FastCheck.constant("wake" as const), after: FastCheck.integer({ min: 0, max: 100_000 }) }),
  FastCheck.record({ _tag: FastCheck.constant("bad" as const), after: FastCheck.constant(0) })
)

describe("WebSeedBackoff", () => {
  const policy: Backoff.Policy = { base: 100, max: 10_000 }

  it("doubles from base to max, and a success resets it", () => {
    let s = Backoff.initial
    const waits: Array<number> = []
    for (let i = 0; i < 10; i++) {
      s = Backoff.failed(s, 0, policy)
      waits.push(Backoff.waitFor(s, 0)!)
    }
    expect(waits).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000])
    s = Backoff.succeeded(Backoff.wake(s, 10_000))
    expect(Backoff.waitFor(Backoff.failed(s, 0, policy), 0)).toBe(100)
  })

  it("a Retry-After lengthens the wait, capped at max", () => {
    expect(Backoff.waitFor(Backoff.failed(Backoff.initial, 0, policy, 5), 0)).toBe(5_000)
    expect(Backoff.waitFor(Backoff.failed(Backoff.initial, 0, policy, 3600), 0)).toBe(10_000)
  })

  it.prop("random histories: waits within [base, max], doubling per error in a row, dropped is final", [
    FastCheck.array(event, { maxLength: 40 })
  ], ([events]) => {
    let s = Backoff.initial
    let now = 0
    let inARow = 0
    let dropped = false
    for (const e of events) {
      now += e.after
      const wait = Backoff.waitFor(s, now)
      if (e._tag === "fail") {
        // a request only goes out once the wait is over
        if (wait !== undefined && wait > 0) continue
        s = Backoff.failed(Backoff.wake(s, now), now, policy, e.retryAfter)
        if (dropped) {
          expect(s._tag).toBe("Dropped")
          continue
        }
        inARow++
        const w = Backoff.waitFor(s, now)!
        const expected = Math.min(policy.max, policy.base * 2 ** (inARow - 1))
        const asked = e.retryAfter === undefined ? 0 : Math.min(policy.max, e.retryAfter * 1000)
        expect(w).toBe(Math.max(expected, asked))
        expect(w).toBeGreaterThanOrEqual(policy.base)
        expect(w).toBeLessThanOrEqual(policy.max)
      } else if (e._tag === "ok") {
        if (wait !== undefined && wait > 0) continue
        s = Backoff.succeeded(s)
        if (!dropped) {
          inARow = 0
          expect(s).toEqual(Backoff.initial)
        }
      } else if (e._tag === "wake") {
        s = Backoff.wake(s, now)
        if (s._tag === "Waiting") expect(s.until).toBeGreaterThan(now)
      } else {
        s = Backoff.dropped(s, "bad data")
        dropped = true
      }
      if (dropped) expect(Backoff.waitFor(s, now)).toBeUndefined()
    }
  })
})
