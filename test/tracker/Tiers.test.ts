/**
 * BEP 12 tier state machine: invariants under random operation sequences, plus the shuffle.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Tiers from "../../src/tracker/Tiers.ts"

const url = FastCheck.integer({ min: 0, max: 30 }).map((n) => `udp://t${n}:1`)
const tiersArb = FastCheck.array(FastCheck.array(url, { maxLength: 5 }), { maxLength: 5 })
const ops = FastCheck.array(FastCheck.constantFrom("ok" as const, "fail" as const), { maxLength: 40 })

const tierSets = (t: Tiers.Tiers) => t.tiers.map((tier) => [...tier].sort())

describe("Tiers", () => {
  it("make drops blanks, duplicates (first wins) and empty tiers", () => {
    const t = Tiers.make([[" ", "a"], [], ["a", "b", "b"], [""]])
    expect(t.tiers).toEqual([["a"], ["b"]])
    expect(Tiers.current(t)).toEqual({ url: "a", tier: 0 })
  })

  it.prop("random sequences keep every URL in its tier, tier order fixed, cursor on a URL", [tiersArb, ops], ([raw, seq]) => {
    let t = Tiers.make(raw)
    const sets = tierSets(t)
    const n = Tiers.size(t)
    let sinceReset = 0
    for (const op of seq) {
      const before = Tiers.current(t)
      if (op === "ok") {
        t = Tiers.succeeded(t)
        sinceReset = 0
        if (before !== undefined) expect(t.tiers[before.tier]![0]).toBe(before.url)
      } else {
        const r = Tiers.failed(t)
        t = r.tiers
        sinceReset++
        // A round is exhausted exactly after trying every tracker once since the last reset.
        expect(r.exhausted).toBe(n === 0 || sinceReset === n)
        if (r.exhausted) sinceReset = 0
      }
      expect(tierSets(t)).toEqual(sets)
      expect(Tiers.size(t)).toBe(n)
      if (n > 0) expect(Tiers.current(t)).toBeDefined()
      else expect(Tiers.current(t)).toBeUndefined()
    }
  })

  it.prop("a failed round visits every tracker once, tier by tier", [tiersArb], ([raw]) => {
    let t = Tiers.make(raw)
    const visited: Array<Tiers.Entry> = []
    for (let i = 0; i < Tiers.size(t); i++) {
      visited.push(Tiers.current(t)!)
      t = Tiers.failed(t).tiers
    }
    expect(visited).toEqual(Tiers.entries(t))
    expect(visited.map((e) => e.tier)).toEqual([...visited.map((e) => e.tier)].sort((a, b) => a - b))
  })

  it.prop("succeeded moves the answering tracker to the front, others keep their relative order", [tiersArb, FastCheck.nat(20)], ([raw, k]) => {
    let t = Tiers.make(raw)
    const n = Tiers.size(t)
    if (n === 0) return
    for (let i = 0; i < k % n; i++) t = Tiers.failed(t).tiers
    const { url: winner, tier } = Tiers.current(t)!
    const before = t.tiers[tier]!
    const after = Tiers.succeeded(t)
    expect(after.tiers[tier]).toEqual([winner, ...before.filter((u) => u !== winner)])
    expect(after.cursor).toEqual({ tier: 0, index: 0 })
    after.tiers.forEach((row, i) => {
      if (i !== tier) expect(row).toEqual(t.tiers[i])
    })
  })

  it.prop("shuffle permutes within tiers only", [tiersArb, FastCheck.array(FastCheck.double({ min: 0, max: 0.9999 }), { minLength: 1 })], ([raw, rs]) => {
    let i = 0
    const shuffled = Tiers.shuffle(raw, () => rs[i++ % rs.length]!)
    expect(shuffled.length).toBe(raw.length)
    shuffled.forEach((tier, j) => expect([...tier].sort()).toEqual([...raw[j]!].sort()))
  })

  it("shuffle reaches every order of a tier", () => {
    const seen = new Set<string>()
    for (let i = 0; i < 300; i++) seen.add(Tiers.shuffle([["a", "b", "c"]], Math.random)[0]!.join(""))
    expect(seen.size).toBe(6)
  })
})
