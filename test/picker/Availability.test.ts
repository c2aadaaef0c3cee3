import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Availability from "../../src/picker/Availability.ts"
import { rng } from "./sim.ts"

const op = FastCheck.tuple(FastCheck.integer({ min: 0, max: 3 }), FastCheck.nat(63))

describe("Availability", () => {
  it.prop(
    "matches a naive model under random increments, decrements, adds and removes",
    [FastCheck.integer({ min: 1, max: 64 }), FastCheck.array(op, { maxLength: 400 }), FastCheck.nat()],
    ([size, ops, seed]) => {
      const a = Availability.make(size)
      const counts = new Array<number>(size).fill(0)
      const members = new Set<number>()
      const random = rng(seed)
      for (const [kind, x] of ops) {
        const i = x % size
        if (kind === 0) {
          Availability.increment(a, i)
          counts[i]!++
        } else if (kind === 1 && counts[i]! > 0) {
          Availability.decrement(a, i)
          counts[i]!--
        } else if (kind === 2) {
          Availability.add(a, i)
          members.add(i)
        } else if (kind === 3) {
          Availability.remove(a, i)
          members.delete(i)
        }
        expect(Availability.check(a)).toEqual([])
      }
      for (let i = 0; i < size; i++) {
        expect(Availability.count(a, i)).toBe(counts[i])
        expect(Availability.isMember(a, i)).toBe(members.has(i))
      }
      const live = [...members].filter((i) => counts[i]! > 0)
      expect(Availability.pickable(a)).toBe(live.length)
      // rarest returns a member of minimal non-zero availability among the accepted ones
      const even = (i: number): boolean => i % 2 === 0
      const accepted = live.filter(even)
      const r = Availability.rarest(a, even, random)
      if (accepted.length === 0) expect(r).toBe(-1)
      else expect(counts[r]).toBe(Math.min(...accepted.map((i) => counts[i]!)))
      const q = Availability.random(a, even, random)
      if (accepted.length === 0) expect(q).toBe(-1)
      else expect(accepted).toContain(q)
    }
  )

  it("breaks ties at random", () => {
    const a = Availability.make(16)
    for (let i = 0; i < 16; i++) {
      Availability.add(a, i)
      Availability.increment(a, i)
    }
    const random = rng(7)
    const seen = new Set<number>()
    for (let k = 0; k < 200; k++) seen.add(Availability.rarest(a, () => true, random))
    expect(seen.size).toBe(16)
  })
})
