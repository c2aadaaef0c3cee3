/**
 * FileStorage's inline-I/O policy (src/storage/internal/InlineIo.ts) as a pure state machine: under any sequence of
 * calls and pauses it is inline exactly when no `slowCallsToPool` slow calls within `slowWindowMs` ended within the
 * last `backoffMs` and no window of the quick calls that ended within the last `costlyBackoffMs` cost more than
 * `costlyNsPerByte`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as InlineIo from "../../src/storage/internal/InlineIo.ts"

type Step =
  | { readonly _tag: "call"; readonly ms: number; readonly bytes: number }
  | { readonly _tag: "wait"; readonly ms: number }

const stepArb: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  FastCheck.record({
    _tag: FastCheck.constant("call" as const),
    ms: FastCheck.oneof(FastCheck.nat(12), FastCheck.nat(200), FastCheck.double({ min: 0, max: 1, noNaN: true })),
    bytes: FastCheck.oneof(FastCheck.nat(64 * 1024), FastCheck.constant(128 * 1024), FastCheck.constant(0))
  }),
  FastCheck.record({ _tag: FastCheck.constant("wait" as const), ms: FastCheck.nat(40_000) })
)

describe("InlineIo", () => {
  it("inline exactly when neither enough slow calls nor a costly window ended within its back-off", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(stepArb, { maxLength: 80 }),
        FastCheck.integer({ min: 1, max: 50 }),
        FastCheck.integer({ min: 0, max: 60_000 }),
        FastCheck.record({
          minBytes: FastCheck.integer({ min: 0, max: 64 * 1024 }),
          windowBytes: FastCheck.integer({ min: 1, max: 512 * 1024 }),
          nsPerByte: FastCheck.double({ min: 0, max: 50, noNaN: true }),
          backoffMs: FastCheck.integer({ min: 0, max: 20_000 })
        }),
        FastCheck.integer({ min: 1, max: 3 }),
        FastCheck.integer({ min: 0, max: 3_000 }),
        (steps, slowMs, backoffMs, c, slowCallsToPool, slowWindowMs) => {
          let clock = 1_000
          const io = InlineIo.make({
            now: () => clock,
            slowMs,
            slowCallsToPool,
            slowWindowMs,
            backoffMs,
            costlyMinBytes: c.minBytes,
            costlyWindowBytes: c.windowBytes,
            costlyNsPerByte: c.nsPerByte,
            costlyBackoffMs: c.backoffMs
          })
          // The model: the slow calls not yet counted toward a switch, the ends of the last switch for slow calls and
          // of the last costly window, and the open window.
          let pending: Array<number> = []
          let lastSlowEnd: number | undefined
          let lastCostlyEnd: number | undefined
          let slow = 0
          let costly = 0
          let wBytes = 0
          let wMs = 0
          for (const s of steps) {
            if (s._tag === "wait") clock += s.ms
            else {
              const started = io.now()
              clock += s.ms
              io.done(started, s.bytes)
              const ms = clock - started // as the clock measures it (a tiny `s.ms` may not move it)
              if (ms >= slowMs) {
                slow++
                pending = [...pending.filter((t) => clock - t < slowWindowMs), clock]
                if (pending.length >= slowCallsToPool) {
                  lastSlowEnd = clock
                  pending = []
                }
              }
              if (s.bytes >= c.minBytes && ms < slowMs) {
                wBytes += s.bytes
                wMs += ms
                if (wBytes >= c.windowBytes) {
                  if ((wMs * 1e6) / wBytes > c.nsPerByte) {
                    lastCostlyEnd = clock
                    costly++
                  }
                  wBytes = 0
                  wMs = 0
                }
              }
            }
            const expected = (lastSlowEnd === undefined || clock >= lastSlowEnd + backoffMs) &&
              (lastCostlyEnd === undefined || clock >= lastCostlyEnd + c.backoffMs)
            expect(io.inline()).toBe(expected)
            expect(io.slowCalls()).toBe(slow)
            expect(io.costlyWindows()).toBe(costly)
          }
        }
      ),
      { numRuns: 500 }
    )
  })

  it("disabled: never inline", () => {
    const io = InlineIo.make({ enabled: false, now: () => 0 })
    expect(io.inline()).toBe(false)
  })

  it("defaults: 10 ms makes a call slow; one alone changes nothing, two within a second mean 30 s of pool", () => {
    let clock = 0
    const io = InlineIo.make({ now: () => clock })
    io.done(clock, 0)
    clock += 9
    io.done(0, 0)
    expect(io.inline()).toBe(true)
    const slowCall = () => {
      const t = clock
      clock += 10
      io.done(t, 0)
    }
    slowCall()
    expect(io.inline()).toBe(true)
    clock += 1_000 // the next is more than a second later: still one in the window
    slowCall()
    expect(io.inline()).toBe(true)
    clock += 979
    slowCall()
    expect(io.slowCalls()).toBe(3)
    expect(io.inline()).toBe(false)
    clock += 29_999
    expect(io.inline()).toBe(false)
    clock += 1
    expect(io.inline()).toBe(true)
  })

  it("defaults: 8 MiB of 16 KiB writes at 100 µs each (~6 ns per byte) send I/O to the pool for 5 s; at 20 µs (this VM's costly pages) they stay inline", () => {
    for (const [us, inline] of [[7, true], [20, true], [100, false]] as const) {
      let clock = 0
      const io = InlineIo.make({ now: () => clock })
      for (let i = 0; i < 512; i++) {
        const started = clock
        clock += us / 1000
        io.done(started, 16 * 1024)
      }
      expect(io.inline()).toBe(inline)
      expect(io.costlyWindows()).toBe(inline ? 0 : 1)
      clock += 4_999
      expect(io.inline()).toBe(inline)
      clock += 1
      expect(io.inline()).toBe(true)
    }
  })

  it("defaults: one 15 ms call among quick ones changes nothing (neither rule)", () => {
    let clock = 0
    const io = InlineIo.make({ now: () => clock })
    for (let i = 0; i < 64; i++) {
      const started = clock
      clock += i === 30 ? 15 : 0.04
      io.done(started, 128 * 1024)
    }
    expect(io.slowCalls()).toBe(1)
    expect(io.costlyWindows()).toBe(0)
    expect(io.inline()).toBe(true)
  })
})
