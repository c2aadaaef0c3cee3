/**
 * Property tests: random event sequences against the invariants of PIECES.md, and simulated swarms that must
 * complete (no stall at 99 %), reach endgame with cancels, and ban a corrupting peer.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Picker from "../../src/picker/Picker.ts"
import { rng, type SimPeer, simulate } from "./sim.ts"

const B = Picker.BLOCK

/** Small geometries, including short last pieces and piece lengths that are not block multiples. */
const geometryUpTo = (maxPieces: number) =>
  FastCheck.tuple(
    FastCheck.oneof(
      FastCheck.integer({ min: 1, max: 4 }).map((k) => k * B),
      FastCheck.integer({ min: 1, max: 3 * B + 7 })
    ),
    FastCheck.integer({ min: 1, max: maxPieces }),
    FastCheck.double({ min: 0, max: 1, noNaN: true })
  ).map(([pieceLength, pieceCount, frac]) => ({
    pieceLength,
    pieceCount,
    totalLength: (pieceCount - 1) * pieceLength + Math.max(1, Math.ceil(frac * pieceLength))
  }))
const geometry = geometryUpTo(14)

const randomBits = (size: number, random: () => number, p: number): Bitfield.Bitfield => {
  const bf = Bitfield.make(size)
  for (let i = 0; i < size; i++) if (random() < p) Bitfield.set(bf, i)
  return bf
}

/**
 * Event kinds (0 join … 16 setWanted, 17 setPriority, 18 setWindow, 19 pieceLost, 20 a live change of the whole
 * selection), weighted towards the per-block traffic.
 */
const KINDS = [
  0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 8, 8, 9, 9, 9, 10, 10, 10, 11, 12, 12, 13, 14, 15, 15, 15, 16, 16, 17, 17, 18, 19, 20
]
const LEVELS: ReadonlyArray<Picker.Priority> = ["low", "normal", "high"]
const rank = (p: Picker.Priority): number => LEVELS.indexOf(p)

const event = FastCheck.tuple(
  FastCheck.integer({ min: 0, max: KINDS.length - 1 }).map((k) => KINDS[k]!),
  FastCheck.integer({ min: 0, max: 2 }),
  FastCheck.nat(1000),
  FastCheck.nat(1000)
)

/** `PICKER_PROP_SCALE=20 npx vitest run test/picker` for a long soak. */
const scale = Number(process.env["PICKER_PROP_SCALE"] ?? "1")
const runs = (n: number) => ({ fastCheck: { numRuns: Math.round(n * scale) } })

describe("Picker invariants under random events", () => {
  it.prop(
    "every event keeps PIECES.md's invariants and the promises of each method",
    [
      geometry,
      FastCheck.array(event, { minLength: 20, maxLength: 150 }),
      FastCheck.nat(),
      FastCheck.integer({ min: 1, max: 3 })
    ],
    ([g, events, seed, dup]) => {
      const random = rng(seed)
      const p = Picker.make({ ...g, random, randomFirst: seed % 3, endgameDuplicates: dup })
      const n = g.pieceCount
      const blocksOf = (i: number): number =>
        Math.ceil((i === n - 1 ? g.totalLength - (n - 1) * g.pieceLength : g.pieceLength) / B)
      const connected = new Set<string>()
      /** What each connected peer announced (mirrors the picker's view). */
      const bits = new Map<string, Bitfield.Bitfield>()
      const peerHas = (id: string, i: number) => {
        const b = bits.get(id)
        return b !== undefined && Bitfield.has(b, i)
      }
      for (const [kind, pi, x, y] of events) {
        const peer = `p${pi}`
        const piece = x % n
        // an event for a peer that is not connected connects it first (with a random bitfield)
        if (kind !== 0 && kind !== 5 && !connected.has(peer)) {
          p.peerJoined(peer)
          const bf = randomBits(n, random, 0.3 + random() * 0.7)
          p.peerBitfield(peer, bf)
          bits.set(peer, Bitfield.copy(bf))
          connected.add(peer)
          Picker.assertInvariants(p)
        }
        if (kind === 0 && !connected.has(peer)) bits.set(peer, Bitfield.make(n))
        if (kind === 0) connected.add(peer)
        if (kind === 5) connected.delete(peer)
        switch (kind) {
          case 0:
            p.peerJoined(peer)
            break
          case 1: {
            const bf = randomBits(n, random, (y % 10) / 10)
            p.peerBitfield(peer, bf)
            bits.set(peer, Bitfield.copy(bf))
            break
          }
          case 2:
            p.peerHave(peer, piece)
            Bitfield.set(bits.get(peer)!, piece)
            break
          case 3:
            p.peerHaveAll(peer)
            bits.set(peer, Bitfield.full(n))
            break
          case 4:
            p.peerHaveNone(peer)
            bits.set(peer, Bitfield.make(n))
            break
          case 5:
            bits.delete(peer)
            p.peerLeft(peer)
            expect(p.requestsOf(peer)).toEqual([])
            expect(p.isInteresting(peer)).toBe(false)
            break
          case 6:
            p.peerChoked(peer)
            expect(p.requestsOf(peer)).toEqual([])
            break
          case 7:
          case 8: {
            const before = new Set(p.requestsOf(peer).map((r) => `${r.piece}:${r.begin}`))
            const statesBefore = Array.from({ length: n }, (_, i) => p.pieceState(i))
            const max = 1 + (y % 20)
            // Kind 8 passes BEP 6 hints: allowed-fast pieces only, or suggested pieces first.
            const list = [x % n, (x + y) % n, (x * 7 + 3) % n]
            const hints = kind === 8 ? (y % 2 === 0 ? { only: list } : { prefer: list }) : undefined
            const reqs = p.nextRequests(peer, max, hints)
            expect(reqs.length).toBeLessThanOrEqual(max)
            if (hints?.only !== undefined) for (const r of reqs) expect(list).toContain(r.piece)
            const keys = new Set(reqs.map((r) => `${r.piece}:${r.begin}`))
            expect(keys.size).toBe(reqs.length)
            for (const r of reqs) {
              expect(before.has(`${r.piece}:${r.begin}`)).toBe(false)
              expect(p.pieceState(r.piece)).toBe("InFlight")
              expect(r.begin % B).toBe(0)
              expect(r.length).toBeGreaterThan(0)
              expect(r.length).toBeLessThanOrEqual(B)
            }
            if (hints === undefined) {
              // What the peer has, from its requests' point of view: availability counts the pieces it announced.
              const has = (i: number) => peerHas(peer, i)
              const win = p.window()
              const inWin = (i: number) => win !== undefined && i >= win.first && i <= win.last
              // The streaming window goes first, in order: a request outside it means no window piece it has is
              // still Missing.
              if (win !== undefined && reqs.some((r) => !inWin(r.piece))) {
                for (let i = win.first; i <= win.last; i++) if (has(i)) expect(p.pieceState(i)).not.toBe("Missing")
              }
              // Priority levels: a new piece (Missing before) started outside the window at level L means no piece
              // of a higher level that the peer has is still Missing.
              const started = reqs.filter((r) => statesBefore[r.piece] === "Missing" && !inWin(r.piece))
              for (const r of started) {
                const level = rank(p.priority(r.piece))
                for (let i = 0; i < n; i++) {
                  if (has(i) && rank(p.priority(i)) > level) expect(p.pieceState(i)).not.toBe("Missing")
                }
              }
            }
            break
          }
          case 9:
          case 10: {
            const out = p.requestsOf(peer)
            const r = out[y % Math.max(1, out.length)]
            if (r === undefined) break
            const res = p.blockReceived(peer, r.piece, r.begin, r.length)
            expect(res.kind).not.toBe("ignored")
            expect(p.requestsOf(peer).some((q) => q.piece === r.piece && q.begin === r.begin)).toBe(false)
            for (const c of res.cancels) {
              expect(c.peer).not.toBe(peer)
              expect(p.requestsOf(c.peer).some((q) => q.piece === r.piece && q.begin === r.begin)).toBe(false)
            }
            break
          }
          case 11: {
            // arbitrary (often unsolicited or duplicate) block
            const b = y % (blocksOf(piece) + 1)
            const res = p.blockReceived(peer, piece, b * B, B)
            if (res.kind !== "ignored") expect(p.pieceState(piece)).not.toBe("Missing")
            break
          }
          case 12: {
            const out = p.requestsOf(peer)
            const r = out[y % Math.max(1, out.length)]
            if (r !== undefined) expect(p.requestTimedOut(peer, r.piece, r.begin)).toBe(true)
            break
          }
          case 13:
            p.peerSnubbed(peer)
            break
          case 14: {
            const out = p.requestsOf(peer)
            const r = out[y % Math.max(1, out.length)]
            if (r !== undefined) expect(p.requestRejected(peer, r.piece, r.begin)).toBe(true)
            break
          }
          case 15: {
            const verifying = Array.from({ length: n }, (_, i) => i).filter((i) => p.pieceState(i) === "Verifying")
            const v = verifying[y % Math.max(1, verifying.length)]
            if (v === undefined) break
            if (x % 2 === 0) {
              expect(p.pieceVerified(v)).toBe(true)
              expect(p.pieceState(v)).toBe("Have")
            } else if (x % 3 === 0 && p.isWanted(v)) {
              // BEP 52 per-block blame: only the bad blocks open again, the others kept
              const bad = [y % blocksOf(v)]
              expect(p.pieceFailedBlocks(v, bad, [peer])).toBe(true)
              expect(p.pieceState(v)).toBe(blocksOf(v) === 1 ? "Missing" : "InFlight")
              expect(p.strikes(peer).sole).toBeGreaterThan(0)
            } else {
              expect(p.pieceFailed(v).length).toBeGreaterThan(0)
              expect(["Missing", "NotWanted"]).toContain(p.pieceState(v))
            }
            break
          }
          case 16: {
            const before = p.pieceState(piece)
            const cancels = p.setWanted(piece, y % 3 !== 0)
            if (before !== "InFlight") expect(cancels).toEqual([])
            if (y % 3 === 0 && before !== "Have" && before !== "Verifying") {
              expect(p.pieceState(piece)).toBe("NotWanted")
            }
            break
          }
          case 17: {
            const level = LEVELS[y % 3]!
            const before = p.pieceState(piece)
            p.setPriority(piece, level)
            expect(p.priority(piece)).toBe(level)
            expect(p.pieceState(piece)).toBe(before)
            break
          }
          case 18: {
            if (y % 4 === 0) p.setWindow(undefined)
            else p.setWindow({ first: piece, last: piece + (y % 5) })
            const w = p.window()
            if (y % 4 === 0) expect(w).toBeUndefined()
            else expect(w).toEqual({ first: piece, last: Math.min(n - 1, piece + (y % 5)) })
            break
          }
          case 19: {
            const before = p.pieceState(piece)
            expect(p.pieceLost(piece)).toBe(before === "Have")
            if (before === "Have") expect(p.pieceState(piece)).toBe(p.isWanted(piece) ? "Missing" : "NotWanted")
            break
          }
          case 20: {
            // A live change of the file selection: every piece at once, as Torrent.setWanted does.
            const wanted = randomBits(n, random, (y % 10) / 10)
            const held = new Map<string, Set<string>>()
            for (const c of connected) held.set(c, new Set(p.requestsOf(c).map((r) => `${r.piece}:${r.begin}`)))
            const cancels: Array<Picker.PeerRequest> = []
            for (let i = 0; i < n; i++) {
              if (p.isWanted(i) !== Bitfield.has(wanted, i)) cancels.push(...p.setWanted(i, Bitfield.has(wanted, i)))
            }
            for (const c of cancels) {
              expect(Bitfield.has(wanted, c.piece)).toBe(false)
              expect(held.get(c.peer)?.has(`${c.piece}:${c.begin}`)).toBe(true)
            }
            for (let i = 0; i < n; i++) {
              const s = p.pieceState(i)
              if (Bitfield.has(wanted, i)) expect(s).not.toBe("NotWanted")
              else expect(["NotWanted", "Verifying", "Have"]).toContain(s)
            }
            for (const c of connected) {
              for (const r of p.requestsOf(c)) expect(Bitfield.has(wanted, r.piece)).toBe(true)
            }
            // Complete: every wanted piece Have, and no result pending (a deselected piece may still be Verifying).
            expect(p.isComplete()).toBe(
              Array.from({ length: n }, (_, i) => p.pieceState(i)).every((s, i) =>
                s === "Have" || (s === "NotWanted" && !Bitfield.has(wanted, i))
              )
            )
            break
          }
        }
        Picker.assertInvariants(p)
      }
      const pr = p.progress()
      expect(pr.have + pr.verifying + pr.inFlight + pr.missing + pr.notWanted).toBe(n)
    },
    runs(300)
  )
})

/** Peers whose union covers every piece: `honest` random subsets plus one seed-ish peer per uncovered piece. */
const swarm = (n: number, random: () => number, honest: number): Array<SimPeer> => {
  const peers: Array<SimPeer> = []
  const cover = Bitfield.make(n)
  for (let k = 0; k < honest; k++) {
    const bits = random() < 0.3 ? Bitfield.full(n) : randomBits(n, random, 0.2 + random() * 0.7)
    for (let i = 0; i < n; i++) if (Bitfield.has(bits, i)) Bitfield.set(cover, i)
    peers.push({ id: `h${k}`, bits })
  }
  const gaps = Bitfield.make(n)
  for (let i = 0; i < n; i++) if (!Bitfield.has(cover, i)) Bitfield.set(gaps, i)
  if (!Bitfield.isEmpty(gaps)) peers.push({ id: "gapfiller", bits: gaps })
  return peers
}

describe("Picker in simulated swarms", () => {
  it.prop(
    "honest swarms always complete, through chokes, reconnects, timeouts, snubs, rejects and a silent peer",
    [geometryUpTo(60), FastCheck.nat(), FastCheck.integer({ min: 1, max: 5 }), FastCheck.boolean()],
    ([g, seed, honest, deselect]) => {
      const random = rng(seed)
      const p = Picker.make({ ...g, random, randomFirst: 2 })
      if (deselect) for (let i = 0; i < g.pieceCount; i++) if (random() < 0.3) p.setWanted(i, false)
      const silent: SimPeer = { id: "silent", bits: Bitfield.full(g.pieceCount), silent: true }
      const peers = [...swarm(g.pieceCount, random, honest), silent]
      const res = simulate(p, peers, { random, chaos: true, checkEachRound: true, maxRounds: 1000, maxBatch: 4 })
      expect(res.complete).toBe(true)
      Picker.assertInvariants(p)
      expect(p.progress().bytesLeft).toBe(0)
    },
    runs(150)
  )

  it.prop(
    "swarms complete through live selection changes, random priorities and a moving streaming window",
    [geometryUpTo(40), FastCheck.nat(), FastCheck.integer({ min: 1, max: 4 })],
    ([g, seed, honest]) => {
      const random = rng(seed)
      const n = g.pieceCount
      const p = Picker.make({ ...g, random, randomFirst: 2 })
      const peers = swarm(n, random, honest)
      let cursor = 0
      const res = simulate(p, peers, {
        random,
        chaos: true,
        checkEachRound: true,
        maxRounds: 1500,
        maxBatch: 6,
        onRound: (round) => {
          // every few rounds: deselect or reselect some pieces, change some priorities, move the window on
          if (round % 3 === 0) {
            for (let k = 0; k < 3; k++) {
              const i = Math.floor(random() * n)
              const c = p.setWanted(i, round > 60 || random() < 0.6) // after round 60 everything ends up wanted
              for (const r of c) expect(p.isWanted(r.piece)).toBe(false)
            }
            p.setPriority(Math.floor(random() * n), (["low", "normal", "high"] as const)[Math.floor(random() * 3)]!)
          }
          if (round % 4 === 0) {
            cursor = (cursor + 1) % n
            p.setWindow(random() < 0.2 ? undefined : { first: cursor, last: cursor + 2 })
          }
          if (round === 61) for (let i = 0; i < n; i++) p.setWanted(i, true)
          Picker.assertInvariants(p)
        }
      })
      expect(res.complete).toBe(true)
      for (let i = 0; i < n; i++) expect(p.isWanted(i) ? ["Have"] : ["Have", "NotWanted"]).toContain(p.pieceState(i))
      // Complete with pieces deselected: select everything again, and the same swarm finishes the rest.
      for (let i = 0; i < n; i++) p.setWanted(i, true)
      expect(p.isComplete()).toBe(p.progress().have === n)
      const again = simulate(p, peers, { random, chaos: true, checkEachRound: true, maxRounds: 1500, maxBatch: 6 })
      expect(again.complete).toBe(true)
      for (let i = 0; i < n; i++) expect(p.pieceState(i)).toBe("Have")
    },
    runs(100)
  )

  it.prop(
    "with several seeds, endgame is reached and the losing duplicates are cancelled",
    [geometry, FastCheck.nat(), FastCheck.integer({ min: 2, max: 4 })],
    ([g, seed, seeds]) => {
      const random = rng(seed)
      const p = Picker.make({ ...g, random, endgameDuplicates: 2 })
      const peers = Array.from({ length: seeds }, (_, k) => ({ id: `s${k}`, bits: Bitfield.full(g.pieceCount) }))
      // large batches: the last pieces get requested while others still ask, so duplicates must happen
      const res = simulate(p, peers, { random, maxBatch: 400, checkEachRound: true })
      expect(res.complete).toBe(true)
      expect(res.endgameSeen).toBe(true)
      expect(res.cancels).toBeGreaterThan(0)
    },
    runs(100)
  )

  it.prop(
    "a peer sending corrupt data is banned and the download still completes; honest peers are not banned",
    [FastCheck.integer({ min: 8, max: 60 }), FastCheck.nat(), FastCheck.integer({ min: 1, max: 4 })],
    ([pieces, seed, honest]) => {
      const random = rng(seed)
      const g = { pieceCount: pieces, pieceLength: 2 * B, totalLength: pieces * 2 * B - 1000 }
      const p = Picker.make({ ...g, random })
      const peers: Array<SimPeer> = [
        { id: "evil", bits: Bitfield.full(pieces), corrupt: true },
        ...swarm(pieces, random, honest)
      ]
      const res = simulate(p, peers, { random, chaos: true, checkEachRound: true, maxRounds: 600 })
      expect(res.complete).toBe(true)
      expect(res.banned.filter((id) => id !== "evil")).toEqual([])
      // banned as soon as it has supplied two failing pieces alone (it may finish first, sharing every failure)
      expect(p.strikes("evil").sole < 2 || res.banned.includes("evil")).toBe(true)
    },
    runs(100)
  )

  it("the corrupting peer is banned in the large majority of swarms", () => {
    let banned = 0
    const swarms = 60
    for (let s = 0; s < swarms; s++) {
      const random = rng(1000 + s)
      const pieces = 20 + s
      const p = Picker.make({ pieceCount: pieces, pieceLength: 2 * B, totalLength: pieces * 2 * B, random })
      const peers: Array<SimPeer> = [
        { id: "evil", bits: Bitfield.full(pieces), corrupt: true },
        { id: "h0", bits: Bitfield.full(pieces) },
        { id: "h1", bits: Bitfield.full(pieces) }
      ]
      const res = simulate(p, peers, { random, chaos: true, maxRounds: 600 })
      expect(res.complete).toBe(true)
      expect(res.banned.filter((id) => id !== "evil")).toEqual([])
      if (res.banned.includes("evil")) banned++
    }
    expect(banned / swarms).toBeGreaterThan(0.8)
  })
})
