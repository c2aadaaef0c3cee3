/**
 * A tiny swarm simulator driving a Picker the way the torrent owner fiber will: ask for requests, deliver blocks
 * in random order, verify completed pieces, and inject chokes, departures, timeouts, snubs and rejects.
 */
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Picker from "../../src/picker/Picker.ts"

/** mulberry32: a seeded uniform [0, 1) generator. */
export const rng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface SimPeer {
  readonly id: string
  readonly bits: Bitfield.Bitfield
  /** Sends garbage for every block. */
  readonly corrupt?: boolean
  /** Never delivers anything. */
  readonly silent?: boolean
}

export interface SimOptions {
  readonly random: () => number
  readonly maxRounds?: number
  /** Inject chokes, reconnects, timeouts, snubs and rejects. */
  readonly chaos?: boolean
  /** Check every invariant after each round. */
  readonly checkEachRound?: boolean
  /** Largest batch a peer asks for at once. */
  readonly maxBatch?: number
  /** Called at the start of every round (live changes: selection, priorities, streaming window). */
  readonly onRound?: (round: number) => void
}

export interface SimResult {
  readonly rounds: number
  readonly complete: boolean
  readonly cancels: number
  readonly endgameSeen: boolean
  readonly banned: ReadonlyArray<string>
  readonly failed: number
  readonly ignored: Record<string, number>
  /** Pieces in the order they were verified. */
  readonly verified: ReadonlyArray<number>
}

interface Conn {
  readonly peer: SimPeer
  /** Requests sent on the wire that the remote still intends to answer, with the round they were sent in. */
  queue: Array<{ readonly req: Picker.BlockRequest; readonly round: number; timedOut: boolean }>
  chokedUntil: number
}

const keyOf = (r: Picker.BlockRequest): string => `${r.piece}:${r.begin}`

export const simulate = (picker: Picker.Picker, peers: ReadonlyArray<SimPeer>, o: SimOptions): SimResult => {
  const rand = o.random
  const maxRounds = o.maxRounds ?? 5000
  const maxBatch = o.maxBatch ?? 12
  const conns = new Map<string, Conn>()
  const tainted = new Set<number>()
  const banned: Array<string> = []
  const ignored: Record<string, number> = {}
  let cancels = 0
  let endgameSeen = false
  let failed = 0
  const verified: Array<number> = []

  const connect = (p: SimPeer): void => {
    picker.peerJoined(p.id)
    if (Bitfield.isComplete(p.bits) && rand() < 0.5) picker.peerHaveAll(p.id)
    else picker.peerBitfield(p.id, p.bits)
    conns.set(p.id, { peer: p, queue: [], chokedUntil: 0 })
  }
  for (const p of peers) connect(p)

  const applyCancels = (list: ReadonlyArray<Picker.PeerRequest>): void => {
    for (const c of list) {
      cancels++
      const conn = conns.get(c.peer)
      // a cancel usually beats the block, sometimes the block is already on the wire
      if (conn !== undefined && rand() < 0.8) conn.queue = conn.queue.filter((q) => keyOf(q.req) !== keyOf(c))
    }
  }

  let round = 0
  for (; round < maxRounds && !picker.isComplete(); round++) {
    o.onRound?.(round)
    const order = [...conns.values()].sort(() => rand() - 0.5)
    for (const conn of order) {
      const id = conn.peer.id
      if (!conns.has(id)) continue
      if (o.chaos === true) {
        const x = rand()
        if (x < 0.03) {
          picker.peerChoked(id)
          conn.queue = []
          conn.chokedUntil = round + 1 + Math.floor(rand() * 3)
        } else if (x < 0.05) {
          picker.peerLeft(id)
          conns.delete(id)
          connect(conn.peer)
          continue
        } else if (x < 0.07) {
          picker.peerSnubbed(id)
        } else if (x < 0.09 && conn.queue.length > 0) {
          const q = conn.queue.splice(Math.floor(rand() * conn.queue.length), 1)[0]!
          picker.requestRejected(id, q.req.piece, q.req.begin)
        }
      }
      // stale-request accounting: a request unanswered for 3 rounds times out; for 8 rounds it is written off
      for (const q of conn.queue) {
        if (!q.timedOut && round - q.round >= 3) {
          q.timedOut = true
          picker.requestTimedOut(id, q.req.piece, q.req.begin)
        }
      }
      const lost = conn.queue.filter((q) => round - q.round >= 8)
      if (lost.length > 0) {
        for (const q of lost) picker.requestRejected(id, q.req.piece, q.req.begin)
        conn.queue = conn.queue.filter((q) => round - q.round < 8)
      }
      if (conn.chokedUntil > round) continue
      const reqs = picker.nextRequests(id, 1 + Math.floor(rand() * maxBatch))
      for (const req of reqs) conn.queue.push({ req, round, timedOut: false })
      if (picker.isEndgame()) endgameSeen = true
    }
    // deliveries
    for (const conn of [...conns.values()].sort(() => rand() - 0.5)) {
      const id = conn.peer.id
      if (!conns.has(id) || conn.peer.silent === true) continue
      const k = Math.floor(rand() * (conn.queue.length + 1))
      const sent = conn.queue.splice(0, Math.max(k, conn.queue.length > 0 ? 1 : 0))
      for (const { req } of sent) {
        if (!conns.has(id)) break
        const res = picker.blockReceived(id, req.piece, req.begin, req.length)
        applyCancels(res.cancels)
        if (res.kind === "ignored") {
          ignored[res.reason] = (ignored[res.reason] ?? 0) + 1
          continue
        }
        if (conn.peer.corrupt === true) tainted.add(req.piece)
        if (res.kind !== "piece-complete") continue
        if (!tainted.has(req.piece)) {
          picker.pieceVerified(req.piece)
          verified.push(req.piece)
          continue
        }
        tainted.delete(req.piece)
        failed++
        for (const c of picker.pieceFailed(req.piece)) {
          if (picker.shouldBan(c) && conns.has(c)) {
            banned.push(c)
            picker.peerLeft(c)
            conns.delete(c)
          }
        }
      }
    }
    if (o.checkEachRound === true) Picker.assertInvariants(picker)
  }
  return { rounds: round, complete: picker.isComplete(), cancels, endgameSeen, banned, failed, ignored, verified }
}
