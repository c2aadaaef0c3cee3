import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Choker from "../../src/torrent/Choker.ts"

/** Deterministic [0, 1) source (mulberry32). */
const prng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const peer = (key: string, over: Partial<Choker.Peer> = {}): Choker.Peer => ({
  key,
  amChoking: true,
  peerInterested: true,
  downloadRate: 0,
  uploadRate: 0,
  connectedAt: 0,
  snubbed: false,
  isSeed: false,
  ...over
})

const zero = () => 0

/** Runs rounds, feeding back each decision's state and unchoked set as the peers' `amChoking`. */
const run = (
  rounds: ReadonlyArray<ReadonlyArray<Choker.Peer>>,
  mode: Choker.Mode,
  slots: number,
  random: () => number
): Array<Choker.Decision> => {
  let state = Choker.initial
  let unchoked: ReadonlySet<string> = new Set()
  const out: Array<Choker.Decision> = []
  for (const peers of rounds) {
    const d = Choker.rechoke({
      state,
      peers: peers.map((p) => ({ ...p, amChoking: !unchoked.has(p.key) })),
      mode,
      slots,
      random
    })
    out.push(d)
    state = d.state
    unchoked = d.unchoked
  }
  return out
}

describe("Choker (unit)", () => {
  it("gives regular slots to the interested peers that send us the most while downloading", () => {
    const peers = [
      peer("a", { downloadRate: 10 }),
      peer("b", { downloadRate: 50 }),
      peer("c", { downloadRate: 40, peerInterested: false }),
      peer("d", { downloadRate: 30 }),
      peer("e", { downloadRate: 20 })
    ]
    const d = Choker.rechoke({ state: Choker.initial, peers, mode: "downloading", slots: 2, random: zero })
    expect(d.regular).toEqual(["b", "d"])
    expect(d.optimistic).toBeDefined()
    expect(["a", "e"]).toContain(d.optimistic)
    expect(d.unchoked.has("c")).toBe(false)
    expect(d.unchoked.size).toBe(3)
  })

  it("ranks by our upload rate to them while seeding, and snubbed peers compete there", () => {
    const peers = [
      peer("a", { uploadRate: 10, downloadRate: 99 }),
      peer("b", { uploadRate: 50, snubbed: true }),
      peer("c", { uploadRate: 40 })
    ]
    const d = Choker.rechoke({ state: Choker.initial, peers, mode: "seeding", slots: 2, random: zero })
    expect(d.regular).toEqual(["b", "c"])
    expect(d.optimistic).toBe("a")
  })

  it("gives snubbed peers no regular slot while downloading, but they may be the optimistic one", () => {
    const peers = [peer("s", { downloadRate: 1000, snubbed: true }), peer("a", { downloadRate: 1 })]
    const d = Choker.rechoke({ state: Choker.initial, peers, mode: "downloading", slots: 4, random: zero })
    expect(d.regular).toEqual(["a"])
    expect(d.optimistic).toBe("s")
  })

  it("never unchokes seeds, even interested ones", () => {
    const peers = [peer("seed", { isSeed: true, downloadRate: 1e6 }), peer("x")]
    for (const mode of ["downloading", "seeding"] as const) {
      const d = Choker.rechoke({ state: Choker.initial, peers, mode, slots: 4, random: zero })
      expect([...d.unchoked]).toEqual(["x"])
    }
  })

  it("reports only the changes as choke/unchoke", () => {
    const peers = [
      peer("keep", { amChoking: false, downloadRate: 9 }),
      peer("new", { amChoking: true, downloadRate: 8 }),
      peer("drop", { amChoking: false, peerInterested: false })
    ]
    const d = Choker.rechoke({ state: Choker.initial, peers, mode: "downloading", slots: 2, random: zero })
    expect(d.unchoke).toEqual(["new"])
    expect(d.choke).toEqual(["drop"])
  })

  it("rotates the optimistic peer every third round, in rotation order", () => {
    const peers = ["a", "b", "c", "d"].map((k, i) => peer(k, { connectedAt: i }))
    // A source near 1 appends each new peer: the rotation order is a, b, c, d.
    const ds = run(Array.from({ length: 10 }, () => peers), "downloading", 0, () => 0.999)
    expect(ds.map((d) => d.optimistic)).toEqual(["a", "a", "a", "b", "b", "b", "c", "c", "c", "d"])
  })

  it("replaces the optimistic peer at once when it loses interest or leaves", () => {
    const peers = ["a", "b", "c"].map((k, i) => peer(k, { connectedAt: i }))
    const last = () => 0.999
    const first = Choker.rechoke({ state: Choker.initial, peers, mode: "downloading", slots: 0, random: last })
    expect(first.optimistic).toBe("a")
    const bored = peers.map((p) => (p.key === "a" ? { ...p, peerInterested: false } : p))
    const second = Choker.rechoke({ state: first.state, peers: bored, mode: "downloading", slots: 0, random: last })
    expect(second.optimistic).toBe("b")
    const gone = peers.filter((p) => p.key !== "b")
    const third = Choker.rechoke({ state: second.state, peers: gone, mode: "downloading", slots: 0, random: last })
    expect(third.optimistic).toBe("c")
  })

  it("inserts a new peer next in line three times as often as at any other position", () => {
    const state: Choker.State = { round: 1, optimistic: "h", order: ["h", "p", "q", "r"] }
    const peers = [...state.order.map((k) => peer(k)), peer("new", { connectedAt: 5 })]
    // Evenly spaced random values: exact counts per insertion point (1..4, point 1 weighted 3).
    const counts = new Map<number, number>()
    const steps = 600
    for (let i = 0; i < steps; i++) {
      const d = Choker.rechoke({ state, peers, mode: "downloading", slots: 0, random: () => (i + 0.5) / steps })
      const at = d.state.order.indexOf("new")
      counts.set(at, (counts.get(at) ?? 0) + 1)
      expect(d.state.order[0]).toBe("h")
    }
    expect(Object.fromEntries(counts)).toEqual({ 1: 300, 2: 100, 3: 100, 4: 100 })
  })

  it("ties at equal rates rotate with the order rather than always favouring the same keys", () => {
    const peers = ["a", "b", "c", "d", "e", "f"].map((k, i) => peer(k, { connectedAt: i }))
    const ds = run(Array.from({ length: 18 }, () => peers), "downloading", 2, zero)
    const ever = new Set(ds.flatMap((d) => d.regular))
    expect(ever.size).toBe(6)
  })

  it("tolerates a random source that returns 1, NaN or negatives", () => {
    for (const r of [1, Number.NaN, -3, 7]) {
      const ds = run([[peer("a")], [peer("a"), peer("b"), peer("c")]], "downloading", 1, () => r)
      expect(new Set(ds[1]!.state.order)).toEqual(new Set(["a", "b", "c"]))
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Properties over random swarms and rounds

const KEYS = Array.from({ length: 14 }, (_, i) => `p${i}`)

const peerArb = (key: string): FastCheck.Arbitrary<Choker.Peer> =>
  FastCheck.record({
    key: FastCheck.constant(key),
    amChoking: FastCheck.boolean(),
    peerInterested: FastCheck.boolean(),
    downloadRate: FastCheck.oneof(FastCheck.constant(0), FastCheck.integer({ min: 0, max: 1 << 20 })),
    uploadRate: FastCheck.oneof(FastCheck.constant(0), FastCheck.integer({ min: 0, max: 1 << 20 })),
    connectedAt: FastCheck.integer({ min: 0, max: 1000 }),
    snubbed: FastCheck.boolean(),
    isSeed: FastCheck.integer({ min: 0, max: 5 }).map((n) => n === 0)
  })

/** A round: a random subset of the key pool with random attributes. */
const roundArb: FastCheck.Arbitrary<ReadonlyArray<Choker.Peer>> = FastCheck.subarray(KEYS).chain((keys) =>
  FastCheck.tuple(...keys.map(peerArb))
)

const scenarioArb = FastCheck.record({
  rounds: FastCheck.array(roundArb, { minLength: 1, maxLength: 25 }),
  mode: FastCheck.constantFrom("downloading" as const, "seeding" as const),
  slots: FastCheck.integer({ min: 0, max: 6 }),
  seed: FastCheck.integer()
})

describe("Choker (properties)", () => {
  it.prop("bounds and eligibility hold in every round", [scenarioArb], ([{ mode, rounds, seed, slots }]) => {
    const ds = run(rounds, mode, slots, prng(seed))
    ds.forEach((d, r) => {
      const peers = new Map(rounds[r]!.map((p) => [p.key, p]))
      expect(d.unchoked.size).toBeLessThanOrEqual(slots + 1)
      expect(d.regular.length).toBeLessThanOrEqual(slots)
      for (const k of d.unchoked) {
        const p = peers.get(k)!
        expect(p.peerInterested).toBe(true)
        expect(p.isSeed).toBe(false)
      }
      if (mode === "downloading") for (const k of d.regular) expect(peers.get(k)!.snubbed).toBe(false)
      if (d.optimistic !== undefined) expect(d.regular).not.toContain(d.optimistic)
      // Regular slots are the best-ranked: no eligible peer left out is strictly faster than one let in.
      const rate = (p: { downloadRate: number; uploadRate: number }) =>
        mode === "downloading" ? p.downloadRate : p.uploadRate
      const eligible = [...peers.values()].filter(
        (p) => p.peerInterested && !p.isSeed && !(mode === "downloading" && p.snubbed)
      )
      const inRates = d.regular.map((k) => rate(peers.get(k)!))
      const outRates = eligible.filter((p) => !d.regular.includes(p.key)).map(rate)
      if (outRates.length > 0) {
        expect(d.regular.length).toBe(slots)
        if (inRates.length > 0) expect(Math.min(...inRates)).toBeGreaterThanOrEqual(Math.max(...outRates))
      } else expect(d.regular.length).toBe(Math.min(slots, eligible.length))
      // The optimistic slot is filled whenever someone is eligible for it.
      const wanting = [...peers.values()].filter((p) => p.peerInterested && !p.isSeed && !d.regular.includes(p.key))
      expect(d.optimistic !== undefined).toBe(wanting.length > 0)
      // choke/unchoke are exactly the transitions.
      for (const p of rounds[r]!) {
        const before = r === 0 ? false : ds[r - 1]!.unchoked.has(p.key)
        const after = d.unchoked.has(p.key)
        expect(d.unchoke.includes(p.key)).toBe(!before && after)
        expect(d.choke.includes(p.key)).toBe(before && !after)
      }
      expect(new Set(d.state.order)).toEqual(new Set(peers.keys()))
      expect(d.state.order.length).toBe(peers.size)
    })
  }, { fastCheck: { numRuns: 60 } })

  it.prop("the optimistic peer changes only on rotation rounds or when it stops being eligible", [scenarioArb], ([
    s
  ]) => {
    const ds = run(s.rounds, s.mode, s.slots, prng(s.seed))
    for (let r = 1; r < ds.length; r++) {
      const prev = ds[r - 1]!.optimistic
      const cur = ds[r]!.optimistic
      if (prev === undefined || cur === prev || r % Choker.OPTIMISTIC_EVERY === 0) continue
      const p = s.rounds[r]!.find((x) => x.key === prev)
      const stillEligible = p !== undefined && p.peerInterested && !p.isSeed && !ds[r]!.regular.includes(prev)
      expect(stillEligible).toBe(false)
    }
  })

  it.prop("is deterministic given the same random source", [scenarioArb], ([s]) => {
    const strip = (ds: Array<Choker.Decision>) => ds.map((d) => ({ ...d, unchoked: [...d.unchoked].sort() }))
    expect(strip(run(s.rounds, s.mode, s.slots, prng(s.seed)))).toEqual(
      strip(run(s.rounds, s.mode, s.slots, prng(s.seed)))
    )
  })

  // Fairness: a stable swarm whose rates change every round; every interested non-seed peer gets unchoked
  // (regular or optimistic) within 3 × (peers + 1) rounds, however the rates fall.
  const fairArb = FastCheck.integer({ min: 1, max: 12 }).chain((n) =>
    FastCheck.record({
      base: FastCheck.tuple(...KEYS.slice(0, n).map(peerArb)),
      rates: FastCheck.array(
        FastCheck.array(FastCheck.integer({ min: 0, max: 1000 }), { minLength: n, maxLength: n }),
        { minLength: 3 * (n + 1), maxLength: 3 * (n + 1) }
      ),
      snubs: FastCheck.array(FastCheck.array(FastCheck.boolean(), { minLength: n, maxLength: n }), {
        minLength: 3 * (n + 1),
        maxLength: 3 * (n + 1)
      }),
      mode: FastCheck.constantFrom("downloading" as const, "seeding" as const),
      slots: FastCheck.integer({ min: 0, max: 3 }),
      seed: FastCheck.integer()
    })
  )

  it.prop("every interested peer is eventually unchoked (fairness)", [fairArb], ([s]) => {
    const rounds = s.rates.map((rs, r) =>
      s.base.map((p, i) => ({ ...p, downloadRate: rs[i]!, uploadRate: 1000 - rs[i]!, snubbed: s.snubs[r]![i]! }))
    )
    const ds = run(rounds, s.mode, s.slots, prng(s.seed))
    const ever = new Set(ds.flatMap((d) => [...d.unchoked]))
    for (const p of s.base) if (p.peerInterested && !p.isSeed) expect(ever.has(p.key)).toBe(true)
  }, { fastCheck: { numRuns: 200 } })
})
