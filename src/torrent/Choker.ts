/**
 * The choker (BEP 3 "choking and optimistic unchoking"), as a pure function of one rechoke round.
 *
 * The torrent calls {@link rechoke} every {@link ROUND_INTERVAL} (10 s) and when a peer that holds or wants a slot
 * connects, disconnects or changes interest, then sends Choke/Unchoke for `decision.choke` / `decision.unchoke`.
 * Interest both ways lives in the peer state machine; the choker reads only `peerInterested`.
 *
 * Rules:
 * - Regular slots (`slots`, default 4) go to interested peers ranked by their rate *to us* while downloading (tit
 *   for tat) and by our rate *to them* while seeding. Ties break by the rotation order below, so equal peers (all
 *   at zero at start-up) take turns instead of the same keys always winning.
 * - Seeding uses libtorrent's "fastest upload" rather than its "round robin": it needs no per-peer quota state, it
 *   spreads pieces fastest to the peers that can take (and re-share) them, and the optimistic slot already rotates
 *   every interested peer through. It is also BitTorrent mainline's seeding choker.
 * - Snubbed peers (a request unanswered for 20 s) get no regular slot while downloading; they can still be the
 *   optimistic one, which is how they get a chance to recover.
 * - Peers that have every piece (`isSeed`) are never unchoked, in either mode: they need nothing from us.
 * - Peers that are not interested are never unchoked (and are choked if they were): at most `slots + 1` peers are
 *   unchoked after any round. Mainline also unchokes uninterested peers ahead of the optimistic one; we don't, so
 *   the bound is strict (a peer that becomes interested gets a slot at the next event-driven rechoke).
 * - One optimistic unchoke, rotated every {@link OPTIMISTIC_EVERY} rounds (30 s), and replaced at once when the
 *   current one leaves, loses interest, becomes a seed or wins a regular slot.
 *
 * Optimistic rotation is mainline's: the state keeps every known peer in a rotation order whose head is the
 * optimistic peer. A rotation moves the head to the next eligible peer (interested, not a seed, not holding a
 * regular slot), so with a stable swarm every interested peer is unchoked within `3 × (peers + 1)` rounds. A peer
 * seen for the first time is inserted at a random position, the next-in-line position weighted ×3 ("newly
 * connected peers are three times as likely to start as the optimistic unchoke"). Mainline may insert it *before*
 * the head, making it optimistic at once; we insert it after, so each optimistic peer keeps its full 30 s.
 *
 * Randomness is the caller's `random` (uniform in [0, 1)): the same state, input and random sequence always give
 * the same decision.
 */
import * as Duration from "effect/Duration"

/** How often the torrent calls {@link rechoke}. */
export const ROUND_INTERVAL: Duration.Duration = Duration.seconds(10)
/** The optimistic unchoke rotates every this many rounds (30 s). */
export const OPTIMISTIC_EVERY = 3
/** Regular upload slots unless configured. */
export const DEFAULT_SLOTS = 4
/** Weight of the next-in-line position when a new peer is inserted into the rotation (others weigh 1). */
export const NEW_PEER_WEIGHT = 3

export type Mode = "downloading" | "seeding"

/** What the choker needs to know about one connected peer. */
export interface Peer {
  /** Unique per connected peer (e.g. its address). */
  readonly key: string
  /** We are choking it right now. */
  readonly amChoking: boolean
  readonly peerInterested: boolean
  /** Bytes/s it sends us. */
  readonly downloadRate: number
  /** Bytes/s we send it. */
  readonly uploadRate: number
  /** When it connected (ms); orders peers first seen in the same round, oldest first. */
  readonly connectedAt: number
  readonly snubbed: boolean
  /** It has every piece. */
  readonly isSeed: boolean
}

/** What the choker carries from one round to the next; start from {@link initial}. */
export interface State {
  /** Rounds done so far; the round with `round % OPTIMISTIC_EVERY === 0` rotates the optimistic peer. */
  readonly round: number
  readonly optimistic: string | undefined
  /** Every known peer, head first; the head is the optimistic peer when there is one. */
  readonly order: ReadonlyArray<string>
}

export const initial: State = { round: 0, optimistic: undefined, order: [] }

export interface Input {
  readonly state: State
  readonly peers: ReadonlyArray<Peer>
  readonly mode: Mode
  /** Regular slots; default {@link DEFAULT_SLOTS}. The optimistic slot comes on top. */
  readonly slots?: number | undefined
  /** Uniform in [0, 1). */
  readonly random: () => number
}

export interface Decision {
  /** Every peer unchoked after this round: `regular` plus `optimistic`. */
  readonly unchoked: ReadonlySet<string>
  /** Holders of regular slots, best first. */
  readonly regular: ReadonlyArray<string>
  readonly optimistic: string | undefined
  /** Peers to send Unchoke (choked now, unchoked by this decision), in input order. */
  readonly unchoke: ReadonlyArray<string>
  /** Peers to send Choke (unchoked now, choked by this decision), in input order. */
  readonly choke: ReadonlyArray<string>
  readonly state: State
}

/** A random integer in [0, n) from a [0, 1) source, clamped against sources that return 1 or junk. */
const pick = (random: () => number, n: number): number => {
  const r = random()
  const i = Math.floor((Number.isFinite(r) ? r : 0) * n)
  return i < 0 ? 0 : i >= n ? n - 1 : i
}

/** Inserts `key` after the head: the next-in-line slot weighs {@link NEW_PEER_WEIGHT}, every later slot 1. */
const insertNew = (order: Array<string>, key: string, random: () => number): void => {
  if (order.length === 0) {
    order.push(key)
    return
  }
  // Insertion points 1..length; point 1 repeated NEW_PEER_WEIGHT times.
  const r = pick(random, order.length + NEW_PEER_WEIGHT - 1)
  order.splice(r < NEW_PEER_WEIGHT ? 1 : r - NEW_PEER_WEIGHT + 2, 0, key)
}

/** One rechoke round. Pure: reads `input`, returns the decision and the next state. */
export const rechoke = (input: Input): Decision => {
  const { state, mode, random } = input
  const slots = Math.max(0, Math.floor(input.slots ?? DEFAULT_SLOTS))
  const byKey = new Map<string, Peer>()
  for (const p of input.peers) if (!byKey.has(p.key)) byKey.set(p.key, p)

  // Rotation order: drop departed peers, insert new ones (oldest connection first).
  const order = state.order.filter((k) => byKey.has(k))
  const known = new Set(order)
  const fresh = [...byKey.values()].filter((p) => !known.has(p.key))
  fresh.sort((a, b) => a.connectedAt - b.connectedAt || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  for (const p of fresh) insertNew(order, p.key, random)
  const position = new Map<string, number>()
  order.forEach((k, i) => position.set(k, i))

  // Regular slots.
  const downloading = mode === "downloading"
  const rate = (p: Peer): number => (downloading ? p.downloadRate : p.uploadRate)
  const candidates = order
    .map((k) => byKey.get(k)!)
    .filter((p) => p.peerInterested && !p.isSeed && !(downloading && p.snubbed))
  candidates.sort((a, b) => rate(b) - rate(a) || position.get(a.key)! - position.get(b.key)!)
  const regular = candidates.slice(0, slots).map((p) => p.key)
  const regularSet = new Set(regular)

  // Optimistic slot: keep the head while it is eligible, except on rotation rounds; else the next eligible peer.
  const eligible = (k: string): boolean => {
    const p = byKey.get(k)!
    return p.peerInterested && !p.isSeed && !regularSet.has(k)
  }
  const rotate = state.round % OPTIMISTIC_EVERY === 0
  const headIsCurrent = order.length > 0 && order[0] === state.optimistic
  const start = rotate && headIsCurrent ? 1 : 0
  let optimistic: string | undefined
  let nextOrder: ReadonlyArray<string> = order
  for (let j = 0; j < order.length; j++) {
    const i = (start + j) % order.length
    if (eligible(order[i]!)) {
      optimistic = order[i]!
      nextOrder = i === 0 ? order : [...order.slice(i), ...order.slice(0, i)]
      break
    }
  }

  const unchoked = new Set(regular)
  if (optimistic !== undefined) unchoked.add(optimistic)
  const unchoke: Array<string> = []
  const choke: Array<string> = []
  for (const p of byKey.values()) {
    const on = unchoked.has(p.key)
    if (on && p.amChoking) unchoke.push(p.key)
    else if (!on && !p.amChoking) choke.push(p.key)
  }
  return {
    unchoked,
    regular,
    optimistic,
    unchoke,
    choke,
    state: { round: state.round + 1, optimistic, order: nextOrder }
  }
}
