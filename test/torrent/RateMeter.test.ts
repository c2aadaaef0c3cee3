import { describe, expect, it } from "@effect/vitest"
import * as RateMeter from "../../src/torrent/RateMeter.ts"

describe("RateMeter", () => {
  it("bytes/s over the last window of samples; 0 before two samples", () => {
    const m = RateMeter.make(5_000)
    expect(RateMeter.rate(m)).toBe(0)
    RateMeter.sample(m, 0, 0)
    expect(RateMeter.rate(m)).toBe(0)
    for (let t = 1; t <= 10; t++) RateMeter.sample(m, t * 1000, t * 1000 * (t <= 5 ? 1 : 3))
    // the window covers the last 5 s (the sample at its start is kept): totals 5000 at 5 s, 30000 at 10 s
    expect(m.times[0]).toBe(5000)
    expect(RateMeter.rate(m)).toBe(5000)
    for (let t = 11; t <= 16; t++) RateMeter.sample(m, t * 1000, 30000)
    expect(RateMeter.rate(m)).toBe(0) // idle for the whole window
    expect(m.times.length).toBeLessThanOrEqual(7)
  })
})
