import { describe, expect, it } from "@effect/vitest"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Picker from "../../src/picker/Picker.ts"
import { rng } from "./sim.ts"

const B = Picker.BLOCK

const bits = (size: number, on: ReadonlyArray<number>): Bitfield.Bitfield => {
  const bf = Bitfield.make(size)
  for (const i of on) Bitfield.set(bf, i)
  return bf
}

/** `pieces` pieces of `blocks` blocks each; the last piece has `lastBlocks` blocks and a short tail. */
const make = (pieces: number, blocks: number, extra: Partial<Picker.Options> = {}): Picker.Picker =>
  Picker.make({
    pieceCount: pieces,
    pieceLength: blocks * B,
    totalLength: pieces * blocks * B,
    random: rng(1),
    randomFirst: 0,
    ...extra
  })

const seed = (p: Picker.Picker, id: string): void => {
  p.peerJoined(id)
  p.peerHaveAll(id)
}

const firstVerifying = (p: Picker.Picker): number => {
  for (let i = 0; i < p.pieceCount; i++) if (p.pieceState(i) === "Verifying") return i
  return -1
}

const deliver = (p: Picker.Picker, peer: string, reqs: ReadonlyArray<Picker.BlockRequest>): Array<Picker.BlockResult> =>
  reqs.map((r) => p.blockReceived(peer, r.piece, r.begin, r.length))

describe("Picker geometry", () => {
  it("rejects inconsistent geometry", () => {
    expect(() => Picker.make({ pieceCount: 3, pieceLength: B, totalLength: 2 * B })).toThrow(RangeError)
    expect(() => Picker.make({ pieceCount: 0, pieceLength: B, totalLength: 0 })).toThrow(RangeError)
    expect(() => Picker.make({ pieceCount: 1, pieceLength: 0, totalLength: 1 })).toThrow(RangeError)
    expect(() => Picker.make({ pieceCount: 2, pieceLength: B, totalLength: 2 * B, wanted: Bitfield.make(3) }))
      .toThrow(RangeError)
  })

  it("requests the short last piece with a short last block", () => {
    const p = Picker.make({ pieceCount: 2, pieceLength: 2 * B, totalLength: 3 * B + 100, randomFirst: 0 })
    seed(p, "a")
    const reqs = p.nextRequests("a", 10)
    expect([...reqs].sort((x, y) => x.piece - y.piece || x.begin - y.begin)).toEqual([
      { piece: 0, begin: 0, length: B },
      { piece: 0, begin: B, length: B },
      { piece: 1, begin: 0, length: B },
      { piece: 1, begin: B, length: 100 }
    ])
    Picker.assertInvariants(p)
  })

  it("handles piece lengths that are not a multiple of the block size", () => {
    const p = Picker.make({ pieceCount: 3, pieceLength: B + 5, totalLength: 2 * (B + 5) + 3 })
    seed(p, "a")
    const reqs = p.nextRequests("a", 10)
    expect(reqs.map((r) => r.length).sort((x, y) => x - y)).toEqual([3, 5, 5, B, B])
    for (const r of deliver(p, "a", reqs)) expect(r.kind).not.toBe("ignored")
    expect(p.progress().verifying).toBe(3)
  })
})

describe("Picker normal flow", () => {
  it("Missing → InFlight → Verifying → Have", () => {
    const p = make(2, 2)
    seed(p, "a")
    expect(p.isInteresting("a")).toBe(true)
    const reqs = p.nextRequests("a", 2)
    expect(reqs).toHaveLength(2)
    const piece = reqs[0]!.piece
    expect(reqs.every((r) => r.piece === piece)).toBe(true)
    expect(p.pieceState(piece)).toBe("InFlight")
    expect(p.blockReceived("a", piece, 0, B)).toEqual({ kind: "accepted", cancels: [] })
    expect(p.blockReceived("a", piece, B, B)).toEqual({ kind: "piece-complete", piece, cancels: [] })
    expect(p.pieceState(piece)).toBe("Verifying")
    expect(p.progress()).toMatchObject({ verifying: 1, missing: 1, bytesLeft: 4 * B })
    expect(p.pieceVerified(piece)).toBe(true)
    expect(p.pieceVerified(piece)).toBe(false)
    expect(p.pieceState(piece)).toBe("Have")
    expect(p.progress()).toMatchObject({ have: 1, bytesLeft: 2 * B })
    Picker.assertInvariants(p)
  })

  it("finishes partial pieces first (strict priority), whoever asks", () => {
    const p = make(4, 4)
    seed(p, "a")
    seed(p, "b")
    const first = p.nextRequests("a", 2)
    const piece = first[0]!.piece
    const second = p.nextRequests("b", 3)
    expect(second.slice(0, 2).every((r) => r.piece === piece)).toBe(true)
    expect(second[2]!.piece).not.toBe(piece)
    Picker.assertInvariants(p)
  })

  it("a late have-all or have-none replaces the peer's set: pieces announced before are not counted twice", () => {
    const p = make(8, 2)
    p.peerJoined("aria2")
    p.peerHaveNone("aria2")
    p.peerHave("aria2", 3)
    p.peerHave("aria2", 5)
    p.peerBitfield("aria2", bits(8, [1, 3, 5]))
    p.peerJoined("other")
    p.peerBitfield("other", bits(8, [3]))
    const before = p.nextRequests("aria2", 2) // a request in flight for a piece it keeps
    expect(before).toHaveLength(2)
    p.peerHaveAll("aria2")
    for (let i = 0; i < 8; i++) expect(p.availability(i)).toBe(i === 3 ? 2 : 1)
    expect(p.requestsOf("aria2").map((r) => r.piece)).toEqual(before.map((r) => r.piece))
    p.peerHaveAll("aria2") // a repeat changes nothing
    for (let i = 0; i < 8; i++) expect(p.availability(i)).toBe(i === 3 ? 2 : 1)
    Picker.assertInvariants(p)
    p.peerHaveNone("aria2") // a late have-none: its pieces and requests are gone
    for (let i = 0; i < 8; i++) expect(p.availability(i)).toBe(i === 3 ? 1 : 0)
    expect(p.requestsOf("aria2")).toEqual([])
    Picker.assertInvariants(p)
  })

  it("picks the rarest piece, with a random tie-break", () => {
    const seen = new Set<number>()
    for (let s = 0; s < 40; s++) {
      const p = make(8, 1, { random: rng(s) })
      seed(p, "a")
      p.peerJoined("b")
      p.peerBitfield("b", bits(8, [0, 1, 2, 3, 4]))
      p.peerJoined("c")
      p.peerBitfield("c", bits(8, [0, 1, 2, 3]))
      // availability: 0-3 → 3, 4 → 2, 5-7 → 1
      const [r] = p.nextRequests("a", 1)
      expect(r!.piece).toBeGreaterThanOrEqual(5)
      seen.add(r!.piece)
      const [q] = p.nextRequests("b", 1)
      expect(q!.piece).toBe(4)
    }
    expect(seen.size).toBe(3)
  })

  it("picks the first pieces at random rather than rarest", () => {
    const picks = new Set<number>()
    for (let s = 0; s < 40; s++) {
      const p = make(8, 1, { random: rng(s), randomFirst: 4 })
      seed(p, "a")
      p.peerJoined("b")
      p.peerBitfield("b", bits(8, [0, 1, 2, 3, 4, 5, 6]))
      picks.add(p.nextRequests("a", 1)[0]!.piece)
    }
    // rarest is piece 7 alone; random-first reaches others
    expect(picks.size).toBeGreaterThan(3)
  })

  it("never requests a block held by another peer outside endgame", () => {
    const p = make(3, 2)
    p.peerJoined("a")
    p.peerBitfield("a", bits(3, [0]))
    p.peerJoined("b")
    p.peerBitfield("b", bits(3, [0]))
    p.peerJoined("c")
    p.peerBitfield("c", bits(3, [1, 2]))
    expect(p.nextRequests("a", 10)).toHaveLength(2)
    expect(p.isEndgame()).toBe(false)
    expect(p.nextRequests("b", 10)).toEqual([])
    Picker.assertInvariants(p)
  })

  it("respects wanted: NotWanted pieces are never requested, deselecting cancels, reselecting re-queues", () => {
    const p = make(3, 2, { wanted: bits(3, [0, 2]) })
    seed(p, "a")
    expect(p.pieceState(1)).toBe("NotWanted")
    const reqs = p.nextRequests("a", 100)
    expect(reqs.map((r) => r.piece).sort()).toEqual([0, 0, 2, 2])
    deliver(p, "a", reqs.filter((r) => r.piece === 0 && r.begin === 0))
    const cancels = p.setWanted(0, false)
    expect(cancels).toEqual([{ peer: "a", piece: 0, begin: B, length: B }])
    expect(p.pieceState(0)).toBe("NotWanted")
    expect(p.requestsOf("a").map((r) => r.piece)).toEqual([2, 2])
    expect(p.blockReceived("a", 0, B, B)).toMatchObject({ kind: "ignored", reason: "not-in-flight" })
    p.setWanted(1, true)
    expect(p.pieceState(1)).toBe("Missing")
    expect(p.nextRequests("a", 100).map((r) => r.piece)).toEqual([1, 1])
    Picker.assertInvariants(p)
  })

  it("counts have and wanted at start, and completes only on wanted pieces", () => {
    const p = make(3, 1, { have: bits(3, [0]), wanted: bits(3, [0, 1]) })
    expect(p.progress()).toMatchObject({ have: 1, missing: 1, notWanted: 1, bytesLeft: B })
    seed(p, "a")
    const reqs = p.nextRequests("a", 10)
    expect(reqs).toEqual([{ piece: 1, begin: 0, length: B }])
    deliver(p, "a", reqs)
    expect(p.isComplete()).toBe(false)
    p.pieceVerified(1)
    expect(p.isComplete()).toBe(true)
    expect(p.isInteresting("a")).toBe(false)
    expect(p.nextRequests("a", 10)).toEqual([])
  })

  it("tracks interest as pieces are had", () => {
    const p = make(2, 1)
    p.peerJoined("a")
    expect(p.isInteresting("a")).toBe(false)
    expect(p.peerHave("a", 1)).toBe(true)
    expect(p.isInteresting("a")).toBe(true)
    expect(p.availability(1)).toBe(1)
    deliver(p, "a", p.nextRequests("a", 5))
    p.pieceVerified(1)
    expect(p.isInteresting("a")).toBe(false)
    expect(p.peerHave("a", 1)).toBe(false)
    Picker.assertInvariants(p)
  })
})

describe("Picker unsolicited data", () => {
  it("ignores and classifies blocks it did not ask for", () => {
    const p = make(2, 2)
    seed(p, "a")
    seed(p, "b")
    const [r] = p.nextRequests("a", 1)
    expect(p.blockReceived("zz", r!.piece, r!.begin, r!.length)).toMatchObject({ reason: "unknown-peer" })
    expect(p.blockReceived("a", r!.piece, r!.begin + 1, r!.length)).toMatchObject({ reason: "bad-block" })
    expect(p.blockReceived("a", r!.piece, r!.begin, r!.length - 1)).toMatchObject({ reason: "bad-block" })
    expect(p.blockReceived("a", 99, 0, B)).toMatchObject({ reason: "bad-block" })
    expect(p.blockReceived("b", r!.piece, r!.begin, r!.length)).toMatchObject({ reason: "not-requested" })
    expect(p.blockReceived("a", 1 - r!.piece, 0, B)).toMatchObject({ reason: "not-in-flight" })
    expect(p.blockReceived("a", r!.piece, r!.begin, r!.length).kind).toBe("accepted")
    expect(p.blockReceived("a", r!.piece, r!.begin, r!.length)).toMatchObject({ reason: "duplicate" })
    Picker.assertInvariants(p)
  })
})

describe("Picker peer death, choke, reject", () => {
  it("a departing peer returns its blocks; untouched pieces go back to Missing", () => {
    const p = make(2, 2)
    seed(p, "a")
    seed(p, "b")
    const reqs = p.nextRequests("a", 4)
    deliver(p, "a", reqs.slice(0, 1))
    const dropped = p.peerLeft("a")
    expect(dropped).toHaveLength(3)
    expect(p.requestsOf("a")).toEqual([])
    expect(p.availability(0)).toBe(1)
    expect(p.progress()).toMatchObject({ inFlight: 1, missing: 1 })
    const again = p.nextRequests("b", 4)
    expect(again).toHaveLength(3)
    expect(again[0]!.piece).toBe(reqs[0]!.piece)
    Picker.assertInvariants(p)
  })

  it("choke drops every outstanding request; reject drops one", () => {
    const p = make(1, 4, { endgameDuplicates: 1 })
    seed(p, "a")
    seed(p, "b")
    expect(p.nextRequests("a", 4)).toHaveLength(4)
    expect(p.requestRejected("a", 0, 2 * B)).toBe(true)
    expect(p.requestRejected("a", 0, 2 * B)).toBe(false)
    expect(p.nextRequests("b", 4)).toEqual([{ piece: 0, begin: 2 * B, length: B }])
    expect(p.peerChoked("a")).toHaveLength(3)
    expect(p.requestsOf("a")).toEqual([])
    expect(p.nextRequests("b", 4)).toHaveLength(3)
    Picker.assertInvariants(p)
  })
})

describe("Picker slow peers", () => {
  it("a timed-out block is re-requested elsewhere; the first copy wins and the other holder is cancelled", () => {
    const p = make(1, 2, { endgameDuplicates: 1 })
    seed(p, "slow")
    seed(p, "fast")
    p.nextRequests("slow", 2)
    expect(p.nextRequests("fast", 2)).toEqual([])
    expect(p.requestTimedOut("slow", 0, 0)).toBe(true)
    expect(p.requestsOf("slow")).toContainEqual({ piece: 0, begin: 0, length: B, stale: true })
    expect(p.nextRequests("fast", 2)).toEqual([{ piece: 0, begin: 0, length: B }])
    Picker.assertInvariants(p)
    // the slow peer still delivers first: accepted, the fast one is cancelled
    expect(p.blockReceived("slow", 0, 0, B)).toEqual({
      kind: "accepted",
      cancels: [{ peer: "fast", piece: 0, begin: 0, length: B }]
    })
    expect(p.blockReceived("fast", 0, 0, B)).toMatchObject({ kind: "ignored", reason: "duplicate" })
    Picker.assertInvariants(p)
  })

  it("a snubbed peer's blocks go to others, and it gets one probe request until it delivers", () => {
    const p = make(2, 4)
    seed(p, "slow")
    seed(p, "fast")
    const held = p.nextRequests("slow", 4)
    expect(p.peerSnubbed("slow")).toBe(4)
    expect(p.nextRequests("slow", 10)).toEqual([])
    const taken = p.nextRequests("fast", 4)
    expect(taken).toEqual(held)
    const res = deliver(p, "fast", taken)
    expect(res.at(-1)).toMatchObject({ kind: "piece-complete" })
    expect(res.flatMap((r) => r.cancels).map((c) => c.peer)).toEqual(["slow", "slow", "slow", "slow"])
    expect(p.requestsOf("slow")).toEqual([])
    const probe = p.nextRequests("slow", 10)
    expect(probe).toHaveLength(1)
    expect(p.nextRequests("slow", 10)).toEqual([])
    deliver(p, "slow", probe)
    expect(p.nextRequests("slow", 10).length).toBeGreaterThan(1)
    Picker.assertInvariants(p)
  })
})

describe("Picker endgame", () => {
  it("duplicates held blocks once nothing new is pickable, bounded per block, and cancels the losers", () => {
    const p = make(2, 2, { endgameDuplicates: 2 })
    seed(p, "a")
    seed(p, "b")
    seed(p, "c")
    const a = p.nextRequests("a", 100)
    expect(a).toHaveLength(4)
    expect(p.isEndgame()).toBe(true)
    const b = p.nextRequests("b", 100)
    expect(b).toHaveLength(4)
    expect(p.nextRequests("c", 100)).toEqual([])
    Picker.assertInvariants(p)
    const res = deliver(p, "b", b)
    expect(res.flatMap((r) => r.cancels).every((c) => c.peer === "a")).toBe(true)
    expect(res.flatMap((r) => r.cancels)).toHaveLength(4)
    expect(p.requestsOf("a")).toEqual([])
    expect(p.progress().verifying).toBe(2)
    expect(p.isEndgame()).toBe(false)
    Picker.assertInvariants(p)
  })

  it("leaving endgame demotes duplicates to stale", () => {
    const p = make(3, 1)
    seed(p, "a")
    p.peerJoined("b")
    p.peerBitfield("b", bits(3, [0, 1]))
    expect(p.nextRequests("a", 2)).toHaveLength(2)
    // piece 2 can still be started: no endgame yet
    expect(p.isEndgame()).toBe(false)
    expect(p.nextRequests("a", 1)).toHaveLength(1)
    expect(p.isEndgame()).toBe(true)
    expect(p.nextRequests("b", 5)).toHaveLength(2)
    Picker.assertInvariants(p)
    // piece 2 fails verification and becomes pickable again: endgame ends, one live holder per block remains
    deliver(p, "a", [{ piece: 2, begin: 0, length: B }])
    expect(p.isEndgame()).toBe(true)
    expect(p.pieceFailed(2)).toEqual(["a"])
    expect(p.isEndgame()).toBe(false)
    Picker.assertInvariants(p)
    expect(p.requestsOf("b")).toHaveLength(2)
    expect(p.requestsOf("b").every((r) => r.stale)).toBe(true)
    expect(p.requestsOf("a").every((r) => !r.stale)).toBe(true)
  })
})

describe("Picker hash failures and bans", () => {
  it("a failed piece returns to Missing, names its contributors, and is fetched again", () => {
    const p = make(1, 2)
    seed(p, "a")
    seed(p, "b")
    const [r1, r2] = p.nextRequests("a", 2)
    p.blockReceived("a", r1!.piece, r1!.begin, r1!.length)
    p.requestRejected("a", r2!.piece, r2!.begin)
    deliver(p, "b", p.nextRequests("b", 2))
    expect(p.pieceState(0)).toBe("Verifying")
    expect([...p.pieceFailed(0)].sort()).toEqual(["a", "b"])
    expect(p.pieceState(0)).toBe("Missing")
    expect(p.strikes("a")).toEqual({ strikes: 1, sole: 0, good: 0 })
    expect(p.nextRequests("a", 2)).toHaveLength(2)
    Picker.assertInvariants(p)
  })

  it("bans after two failed pieces supplied alone, or one and three failures in all", () => {
    const p = make(6, 1)
    seed(p, "bad")
    seed(p, "x")
    for (let k = 0; k < 2; k++) {
      const [r] = p.nextRequests("bad", 1)
      deliver(p, "bad", [r!])
      expect(p.shouldBan("bad")).toBe(false)
      expect(p.pieceFailed(r!.piece)).toEqual(["bad"])
    }
    expect(p.shouldBan("bad")).toBe(true)
    expect(p.shouldBan("x")).toBe(false)
    // shared failures alone never ban (they blame every contributor equally); one sole failure plus three in all does
    const q = make(8, 2)
    seed(q, "a")
    seed(q, "b")
    const shared = (): number => {
      const [r] = q.nextRequests("a", 1)
      deliver(q, "a", [r!])
      deliver(q, "b", q.nextRequests("b", 1))
      expect(q.pieceState(r!.piece)).toBe("Verifying")
      return r!.piece
    }
    for (let k = 0; k < 3; k++) {
      const piece = shared()
      expect(q.pieceFailed(piece)).toHaveLength(2)
      q.setWanted(piece, false) // keep the parole piece out of the way
    }
    expect(q.strikes("a")).toEqual({ strikes: 3, sole: 0, good: 0 })
    expect(q.shouldBan("a")).toBe(false)
    expect(q.shouldBan("b")).toBe(false)
    const [r] = q.nextRequests("a", 2)
    deliver(q, "a", q.requestsOf("a"))
    expect(q.pieceFailed(r!.piece)).toEqual(["a"])
    expect(q.strikes("a")).toEqual({ strikes: 4, sole: 1, good: 0 })
    expect(q.shouldBan("a")).toBe(true)
    expect(q.shouldBan("b")).toBe(false)
    // verified pieces are credited
    deliver(q, "b", q.nextRequests("b", 2))
    expect(q.pieceVerified(q.requestsOf("b").length === 0 ? firstVerifying(q) : -1)).toBe(true)
    expect(q.strikes("b")).toEqual({ strikes: 3, sole: 0, good: 1 })
    // strikes outlive the connection
    q.peerLeft("a")
    expect(q.shouldBan("a")).toBe(true)
  })

  it("a failed piece is on parole: its next download is served by one peer while that peer behaves", () => {
    const p = make(2, 4)
    seed(p, "a")
    seed(p, "b")
    const reqs = p.nextRequests("a", 2)
    const piece = reqs[0]!.piece
    deliver(p, "a", reqs)
    deliver(p, "b", p.nextRequests("b", 2))
    expect(p.pieceFailed(piece)).toHaveLength(2)
    p.setWanted(1 - piece, false)
    expect(p.nextRequests("a", 1)).toEqual([{ piece, begin: 0, length: B }])
    // b may not join a's parole piece, not even in endgame
    expect(p.isEndgame()).toBe(true)
    expect(p.nextRequests("b", 4)).toEqual([])
    expect(p.nextRequests("a", 4)).toHaveLength(3)
    // once a is snubbed, b takes over its stale blocks
    p.peerSnubbed("a")
    expect(p.nextRequests("b", 4)).toHaveLength(4)
    Picker.assertInvariants(p)
    // a chokes: b may continue freely
    p.peerChoked("a")
    p.peerChoked("b")
    expect(p.nextRequests("b", 4)).toHaveLength(4)
    deliver(p, "b", p.requestsOf("b"))
    expect(p.pieceState(piece)).toBe("Verifying")
    expect(p.pieceFailed(piece)).toEqual(["b"])
    expect(p.strikes("b")).toMatchObject({ sole: 1 })
    Picker.assertInvariants(p)
  })

  it("a deselected piece that fails verification becomes NotWanted", () => {
    const p = make(2, 1)
    seed(p, "a")
    deliver(p, "a", p.nextRequests("a", 2))
    p.setWanted(0, false)
    expect(p.pieceState(0)).toBe("Verifying")
    p.pieceFailed(0)
    expect(p.pieceState(0)).toBe("NotWanted")
    p.pieceVerified(1)
    expect(p.isComplete()).toBe(true)
    Picker.assertInvariants(p)
  })
})

describe("Picker priorities, streaming window, live selection", () => {
  /** Pieces in the order one peer's requests start them (one block per piece, one request per call). */
  const startOrder = (p: Picker.Picker, peer: string): Array<number> => {
    const out: Array<number> = []
    for (;;) {
      const r = p.nextRequests(peer, 1)
      if (r.length === 0) return out
      out.push(r[0]!.piece)
      deliver(p, peer, r)
      p.pieceVerified(r[0]!.piece)
    }
  }

  it("starts high before normal before low, rarest first within a level", () => {
    const p = make(8, 1)
    p.setPriority(6, "high")
    p.setPriority(2, "high")
    p.setPriority(0, "low")
    p.setPriority(1, "low")
    // piece 2 is rarer than 6 (one more peer has 6), 3 rarer than the other normal pieces
    seed(p, "a")
    p.peerJoined("b")
    p.peerBitfield("b", bits(8, [0, 4, 5, 6, 7]))
    Picker.assertInvariants(p)
    const order = startOrder(p, "a")
    expect(order.slice(0, 2)).toEqual([2, 6])
    expect(order.slice(2, 3)).toEqual([3])
    expect(new Set(order.slice(2, 6))).toEqual(new Set([3, 4, 5, 7]))
    expect(new Set(order.slice(6))).toEqual(new Set([0, 1]))
    expect(order.slice(6)).toEqual([1, 0]) // 1 is rarer (b has 0)
    Picker.assertInvariants(p)
  })

  it("a priority change moves a Missing piece between levels at once", () => {
    const p = make(4, 1)
    seed(p, "a")
    p.setPriority(3, "high")
    p.setPriority(3, "low")
    p.setPriority(0, "high")
    expect(p.priority(0)).toBe("high")
    expect(p.priority(3)).toBe("low")
    expect(startOrder(p, "a")[0]).toBe(0)
    Picker.assertInvariants(p)
  })

  it("the streaming window goes before partial pieces and priorities, in index order", () => {
    const p = make(10, 4)
    seed(p, "a")
    seed(p, "b")
    p.setPriority(9, "high")
    // a has started a piece
    const first = p.nextRequests("a", 1)
    expect(first[0]!.piece).toBe(9)
    p.setWindow({ first: 4, last: 6 })
    const reqs = p.nextRequests("b", 6)
    expect(reqs.map((r) => r.piece)).toEqual([4, 4, 4, 4, 5, 5])
    // another peer joins the next pieces of the window in parallel: open blocks of 5, then 6
    expect(p.nextRequests("a", 4).map((r) => r.piece)).toEqual([5, 5, 6, 6])
    Picker.assertInvariants(p)
    p.setWindow(undefined)
    expect(p.window()).toBeUndefined()
    // without the window, the partial pieces come first again
    expect(p.nextRequests("b", 2).map((r) => r.piece)).toEqual([9, 9])
  })

  it("the window is clamped to the torrent and skips what is had or not wanted", () => {
    const p = make(5, 1)
    seed(p, "a")
    p.setWanted(3, false)
    p.setWindow({ first: 2, last: 99 })
    expect(p.window()).toEqual({ first: 2, last: 4 })
    expect(startOrder(p, "a").slice(0, 2)).toEqual([2, 4])
    p.setWindow({ first: 7, last: 9 })
    expect(p.window()).toBeUndefined()
  })

  it("deselecting cancels the piece's requests, reselecting makes it Missing; completion follows", () => {
    const p = make(3, 2)
    seed(p, "a")
    const reqs = p.nextRequests("a", 6)
    expect(reqs).toHaveLength(6)
    deliver(p, "a", reqs.filter((r) => r.piece !== 1))
    for (const i of [0, 2]) p.pieceVerified(i)
    expect(p.isComplete()).toBe(false)
    const cancels = p.setWanted(1, false)
    expect(cancels.map((c) => [c.peer, c.piece])).toEqual([["a", 1], ["a", 1]])
    expect(p.requestsOf("a")).toEqual([])
    expect(p.isComplete()).toBe(true)
    expect(p.isInteresting("a")).toBe(false)
    p.setWanted(1, true)
    expect(p.pieceState(1)).toBe("Missing")
    expect(p.isComplete()).toBe(false)
    expect(p.isInteresting("a")).toBe(true)
    Picker.assertInvariants(p)
  })

  it("pieceLost: Have goes back to Missing (NotWanted when deselected) and is fetched again", () => {
    const p = make(2, 1)
    seed(p, "a")
    deliver(p, "a", p.nextRequests("a", 2))
    p.pieceVerified(0)
    p.pieceVerified(1)
    expect(p.isComplete()).toBe(true)
    expect(p.pieceLost(0)).toBe(true)
    expect(p.pieceLost(0)).toBe(false)
    expect(p.pieceState(0)).toBe("Missing")
    expect(p.isComplete()).toBe(false)
    expect(p.nextRequests("a", 2).map((r) => r.piece)).toEqual([0])
    p.setWanted(1, false)
    expect(p.pieceLost(1)).toBe(true)
    expect(p.pieceState(1)).toBe("NotWanted")
    Picker.assertInvariants(p)
  })
})
