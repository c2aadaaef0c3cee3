/**
 * FileStorage's inline-I/O policy (src/storage/internal/InlineIo.ts) as a pure state machine: under any sequence of
 * calls and pauses it is inline exactly when no inline call that ended within the last `backoffMs` was slow.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as InlineIo from "../../src/storage/internal/InlineIo.ts"

type Step = { readonly _tag: "call"; readonly ms: number } | { readonly _tag: "wait"; readonly ms: number }

const stepArb: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  FastCheck.record({ _tag: FastCheck.constant("call" as const), ms: FastCheck.oneof(FastCheck.nat(12), FastCheck.nat(200)) }),
  FastCheck.record({ _tag: FastCheck.constant("wait" as const), ms: FastCheck.nat(40_000) })
)

describe("InlineIo", () => {
  it("inline exactly when no slow call ended within the back-off", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(stepArb, { maxLength: 60 }),
        FastCheck.integer({ min: 1, max: 50 }),
        FastCheck.integer({ min: 0, max: 60_000 }),
        (steps, slowMs, backoffMs) => {
          let clock = 1_000
          const io = InlineIo.make({ now: () => clock, slowMs, backoffMs })
          let lastSlowEnd: number | undefined
          let slow = 0
          for (const s of steps) {
            if (s._tag === "wait") clock += s.ms
            else {
              const started = io.now()
              clock += s.ms
              io.done(started)
              if (s.ms >= slowMs) {
                lastSlowEnd = clock
                slow++
              }
            }
            const expected = lastSlowEnd === undefined || clock >= lastSlowEnd + backoffMs
            expect(io.inline()).toBe(expected)
            expect(io.slowCalls()).toBe(slow)
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

  it("defaults: 10 ms makes a call slow, 30 s of pool after it", () => {
    let clock = 0
    const io = InlineIo.make({ now: () => clock })
    io.done(clock)
    clock += 9
    io.done(0)
    expect(io.inline()).toBe(true)
    const t = clock
    clock += 10
    io.done(t)
    expect(io.inline()).toBe(false)
    clock += 29_999
    expect(io.inline()).toBe(false)
    clock += 1
    expect(io.inline()).toBe(true)
  })
})
