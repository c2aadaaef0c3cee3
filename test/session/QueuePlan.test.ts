import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as QueuePlan from "../../src/session/QueuePlan.ts"

const candidateArb = FastCheck.uniqueArray(
  FastCheck.record({
    id: FastCheck.nat(50),
    queuePosition: FastCheck.nat(20),
    complete: FastCheck.boolean(),
    stopped: FastCheck.boolean(),
    forced: FastCheck.boolean()
  }),
  { selector: (c) => c.id, maxLength: 30 }
)
const limitsArb = FastCheck.record({ maxDownloads: FastCheck.nat(6), maxSeeds: FastCheck.nat(6) })

describe("QueuePlan.plan", () => {
  it("runs the first downloads and seeds in queue order, forced ones past the limits, never stopped ones", () => {
    const c = (id: number, queuePosition: number, complete: boolean, extra: Partial<QueuePlan.Candidate> = {}) => ({
      id,
      queuePosition,
      complete,
      stopped: false,
      forced: false,
      ...extra
    })
    const run = QueuePlan.plan(
      [c(1, 3, false), c(2, 0, false), c(3, 1, false, { stopped: true }), c(4, 2, false), c(5, 5, true), c(6, 4, true),
        c(7, 9, false, { forced: true })],
      { maxDownloads: 2, maxSeeds: 1 }
    )
    expect([...run].sort()).toEqual([2, 4, 6, 7])
  })

  it("property: limits hold (forced aside), no stopped torrent runs, and a waiting one has only earlier ones ahead", () => {
    FastCheck.assert(
      FastCheck.property(candidateArb, limitsArb, (cs, limits) => {
        const run = QueuePlan.plan(cs, limits)
        const running = cs.filter((c) => run.has(c.id))
        expect(running.every((c) => !c.stopped)).toBe(true)
        expect(running.filter((c) => !c.forced && !c.complete).length).toBeLessThanOrEqual(limits.maxDownloads)
        expect(running.filter((c) => !c.forced && c.complete).length).toBeLessThanOrEqual(limits.maxSeeds)
        for (const c of cs) {
          if (c.stopped || run.has(c.id)) continue
          // Waiting: its kind's slots are all taken by torrents ahead of it.
          const ahead = running.filter((r) =>
            !r.forced && r.complete === c.complete &&
            (r.queuePosition < c.queuePosition || (r.queuePosition === c.queuePosition && r.id < c.id))
          )
          expect(ahead.length).toBe(c.complete ? limits.maxSeeds : limits.maxDownloads)
        }
        expect(QueuePlan.plan([...cs].reverse(), limits)).toEqual(run) // input order does not matter
      })
    )
  })
})

describe("QueuePlan.move", () => {
  it("property: a permutation of 0..n-1 that keeps the others' relative order", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.uniqueArray(FastCheck.record({ id: FastCheck.nat(40), queuePosition: FastCheck.nat(40) }), {
          selector: (c) => c.id,
          minLength: 1,
          maxLength: 20
        }),
        FastCheck.nat(19),
        FastCheck.constantFrom("top" as const, "up" as const, "down" as const, "bottom" as const),
        (order, k, to) => {
          const id = order[k % order.length]!.id
          const moved = QueuePlan.move(order, id, to)
          expect([...moved.values()].sort((a, b) => a - b)).toEqual(order.map((_, i) => i))
          const before = [...order].sort((a, b) => a.queuePosition - b.queuePosition || a.id - b.id).map((c) => c.id)
          const after = [...moved.entries()].sort((a, b) => a[1] - b[1]).map(([x]) => x)
          expect(after.filter((x) => x !== id)).toEqual(before.filter((x) => x !== id))
          const was = before.indexOf(id)
          const now = after.indexOf(id)
          const want = to === "top"
            ? 0
            : to === "bottom"
            ? order.length - 1
            : to === "up"
            ? Math.max(0, was - 1)
            : Math.min(order.length - 1, was + 1)
          expect(now).toBe(want)
        }
      )
    )
  })
})
