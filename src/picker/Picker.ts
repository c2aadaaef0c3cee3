/**
 * The piece picker: which blocks to request from which peer, piece states, availability, endgame, strikes.
 *
 * A single-owner, synchronous state machine (the torrent's owner fiber holds it; it is called per block, so no
 * Effect here). Pure: no I/O, no timers; randomness comes in through `Options.random`. The rules it keeps are in
 * `PIECES.md` next to this file, and `check` verifies them.
 */
import * as Either from "effect/Either"
import * as Bitfield from "../core/Bitfield.ts"
import * as Lengths from "../core/Lengths.ts"
import * as Availability from "./Availability.ts"

/** Block size every request uses (`Lengths.BLOCK`); the last block of a piece may be shorter. */
export const BLOCK = Lengths.BLOCK

/** @category models */
export type PieceState = "NotWanted" | "Missing" | "InFlight" | "Verifying" | "Have"

/** A piece's priority (from its files' priorities): new pieces are started high first, then normal, then low. */
export type Priority = "low" | "normal" | "high"

/** The streaming window: pieces `first..last` (inclusive) go before every other piece, in index order. */
export interface Window {
  readonly first: number
  readonly last: number
}

/** @category models */
export interface BlockRequest {
  readonly piece: number
  readonly begin: number
  readonly length: number
}

/** A request held by a named peer (what a `cancel` must be sent for). @category models */
export interface PeerRequest extends BlockRequest {
  readonly peer: string
}

/** A request a peer still owes us; `stale` once it timed out or the peer was snubbed. @category models */
export interface Outstanding extends BlockRequest {
  readonly stale: boolean
}

/**
 * Why a block was ignored. `bad-block` (geometry that no request could have) and `not-requested` are the peer's
 * fault; `duplicate` and `not-in-flight` also happen innocently after a cancel crossed the block on the wire.
 * @category models
 */
export type IgnoredReason = "unknown-peer" | "bad-block" | "not-in-flight" | "duplicate" | "not-requested"

/** @category models */
export type BlockResult =
  | { readonly kind: "accepted"; readonly cancels: ReadonlyArray<PeerRequest> }
  | { readonly kind: "piece-complete"; readonly piece: number; readonly cancels: ReadonlyArray<PeerRequest> }
  | { readonly kind: "ignored"; readonly reason: IgnoredReason; readonly cancels: ReadonlyArray<PeerRequest> }

/** @category models */
/** Per-call restrictions and preferences for {@link Picker.nextRequests}. */
export interface RequestHints {
  readonly only?: ReadonlyArray<number> | undefined
  readonly prefer?: ReadonlyArray<number> | undefined
  /** No endgame duplicates (a web seed: its requests are whole ranges, a duplicate would fetch them twice). */
  readonly noDuplicates?: boolean | undefined
}

export interface Progress {
  readonly pieces: number
  readonly have: number
  readonly verifying: number
  readonly inFlight: number
  readonly missing: number
  readonly notWanted: number
  /** Bytes of wanted pieces not yet `Have` (what a tracker's `left` means). */
  readonly bytesLeft: number
  readonly endgame: boolean
  readonly peers: number
}

/** @category models */
export interface Options {
  readonly pieceCount: number
  readonly pieceLength: number
  readonly totalLength: number
  /** Pieces to download (default: all). */
  readonly wanted?: Bitfield.Bitfield | undefined
  /** Pieces already verified on disk (default: none). */
  readonly have?: Bitfield.Bitfield | undefined
  /** Uniform in [0, 1); default `Math.random`. Inject a seeded one in tests. */
  readonly random?: (() => number) | undefined
  /** While fewer pieces than this are `Have`, new pieces are picked at random instead of rarest (default 4). */
  readonly randomFirst?: number | undefined
  /** In endgame, how many peers may hold a request for the same block at once (default 2). */
  readonly endgameDuplicates?: number | undefined
  /** Ban after this many failed pieces the peer contributed to, at least one of them alone (default 3). */
  readonly strikesToBan?: number | undefined
  /** Ban after this many failed pieces the peer alone supplied (default 2). */
  readonly soleStrikesToBan?: number | undefined
}

/**
 * The picker. Every method is O(1) or O(blocks of one piece) unless noted; peer ids are the caller's keys (unique
 * per live connection). Methods given an unknown peer do nothing and return an empty result.
 * @category models
 */
export interface Picker {
  readonly pieceCount: number
  readonly pieceLength: number
  readonly totalLength: number

  /** Registers a connection with no pieces. `false` if the id is already connected. */
  peerJoined(peer: string): boolean
  /**
   * Replaces the peer's piece set (requests for pieces it no longer claims are dropped). O(pieces). Throws
   * `RangeError` on a size mismatch (validate on the wire).
   */
  peerBitfield(peer: string, bitfield: Bitfield.Bitfield): void
  /** `true` when the piece is one we still need (send `interested`). Repeats are ignored. */
  peerHave(peer: string, piece: number): boolean
  peerHaveAll(peer: string): void
  peerHaveNone(peer: string): void
  /** The peer is gone: its requests return to the pool (returned so the caller can drop any bookkeeping). */
  peerLeft(peer: string): ReadonlyArray<BlockRequest>

  /**
   * Up to `max` new block requests for this peer, recorded as outstanding. Order of preference: the streaming
   * window in index order (`setWindow`), open blocks of pieces already in flight, then new pieces by priority level
   * (within a level random while fewer than `randomFirst` are `Have`, else rarest-first with random tie-break), then
   * in endgame duplicates of blocks other peers hold. A snubbed peer gets at most one
   * outstanding request; a piece on parole (it failed verification) is served only by the peer that started it.
   * `hints.only` restricts the choice to those pieces (BEP 6 allowed-fast pieces while the peer chokes us: no
   * endgame duplicates then); `hints.prefer` (BEP 6 suggestions) are started before rarest-first picks;
   * `hints.noDuplicates` leaves out endgame duplicates.
   */
  nextRequests(peer: string, max: number, hints?: RequestHints): ReadonlyArray<BlockRequest>
  /** A `piece` message arrived. The first copy of a block wins; `cancels` lists the other holders to cancel. */
  blockReceived(peer: string, piece: number, begin: number, length: number): BlockResult
  /** The request is stale: others may take the block, but the slow peer's copy still counts if it comes first. */
  requestTimedOut(peer: string, piece: number, begin: number): boolean
  /** All the peer's requests become stale and it gets at most one request until it delivers a block. */
  peerSnubbed(peer: string): number
  /** Choked without the fast extension: the peer discards our requests, so we drop them. */
  peerChoked(peer: string): ReadonlyArray<BlockRequest>
  /** BEP 6 reject (or a request the caller decided the peer lost): dropped, the block is open again. */
  requestRejected(peer: string, piece: number, begin: number): boolean

  /** Verifying → Have. `false` if the piece was not Verifying. */
  pieceVerified(piece: number): boolean
  /**
   * Verifying → Missing (or NotWanted); returns the peers that contributed blocks and strikes each of them. The
   * piece goes on parole: its next download is served by a single peer, so a second failure names the culprit.
   */
  pieceFailed(piece: number): ReadonlyArray<string>
  /**
   * BEP 52 per-block blame: Verifying → InFlight with only the `bad` blocks (indices in the piece) open again, the
   * others kept as received (→ Missing when every block is bad). `blamed` (their senders) each get a strike supplied alone; nobody else is struck and
   * the piece is not put on parole. Returns `false`, changing nothing, when the piece is not Verifying, not wanted,
   * or `bad` is empty or names no block of it.
   */
  pieceFailedBlocks(piece: number, bad: ReadonlyArray<number>, blamed: ReadonlyArray<string>): boolean
  /** Whether `peer` has announced `piece`. */
  peerHasPiece(peer: string, piece: number): boolean
  /**
   * The ban rule: `soleStrikesToBan` failed pieces this peer supplied alone, or one such piece and `strikesToBan`
   * failed pieces in all. A failure shared by several peers blames them all equally, so shared failures alone never
   * ban (an honest peer that shared pieces with a liar would be banned with it); parole turns the liar's next
   * failure into a sole one. Strikes outlive the connection.
   */
  shouldBan(peer: string): boolean
  /** Failed pieces it contributed to, those it supplied alone, and verified pieces it contributed to. */
  strikes(peer: string): { readonly strikes: number; readonly sole: number; readonly good: number }

  /** File selection. Deselecting an InFlight piece discards its partial data; the returned requests need `cancel`. */
  setWanted(piece: number, wanted: boolean): ReadonlyArray<PeerRequest>
  isWanted(piece: number): boolean
  /**
   * The piece's priority (default "normal"). New pieces are started from the highest level that has one the peer
   * can give, rarest-first (or random while fewer than `randomFirst` are Have) within the level. O(peers) for a
   * Missing piece (it moves between the levels' indices), O(1) otherwise.
   */
  setPriority(piece: number, priority: Priority): void
  priority(piece: number): Priority
  /**
   * Streaming: pieces `first..last` go before everything else, in index order (their open blocks first, then the
   * next one to start), so several peers work on the next few pieces of the window at once; `undefined` clears it.
   * Clamped to the torrent. Costs O(window) per `nextRequests`, so keep it to a read-ahead, not a whole file.
   */
  setWindow(window: Window | undefined): void
  window(): Window | undefined
  /**
   * A verified piece is gone (its data changed on disk, or part of it was never stored): Have → Missing (NotWanted
   * when not wanted), to be fetched again. `false` if the piece was not Have.
   */
  pieceLost(piece: number): boolean

  pieceState(piece: number): PieceState
  availability(piece: number): number
  /** Does the peer have a piece we still need (Missing or InFlight)? O(1). */
  isInteresting(peer: string): boolean
  isEndgame(): boolean
  /** Every wanted piece is Have. */
  isComplete(): boolean
  requestsOf(peer: string): ReadonlyArray<Outstanding>
  /** O(pieces). */
  progress(): Progress
  /** Violations of the invariants of PIECES.md (empty when sound). O(pieces × peers); for tests and debugging. */
  check(): Array<string>
}

/** Creates a picker. Throws `RangeError` when the geometry is inconsistent. @category constructors */
export const make = (options: Options): Picker => new PickerImpl(options)

/** Throws with every violation listed; for tests. @category guards */
export const assertInvariants = (picker: Picker): void => {
  const v = picker.check()
  if (v.length > 0) throw new Error(`picker invariants violated:\n  ${v.slice(0, 20).join("\n  ")}`)
}

// ---------------------------------------------------------------------------------------------------------------

const NOT_WANTED = 0
const MISSING = 1
const IN_FLIGHT = 2
const VERIFYING = 3
const HAVE = 4
const NAMES: ReadonlyArray<PieceState> = ["NotWanted", "Missing", "InFlight", "Verifying", "Have"]
const LOW = 0
const NORMAL = 1
const HIGH = 2
const PRIORITIES: ReadonlyArray<Priority> = ["low", "normal", "high"]
const levelOf = (p: Priority): number => (p === "high" ? HIGH : p === "low" ? LOW : NORMAL)

/** Pieces a peer can make us interested in. */
const needed = (s: number): number => (s === MISSING || s === IN_FLIGHT ? 1 : 0)

interface Peer {
  readonly id: string
  bits: Bitfield.Bitfield
  haveCount: number
  /** Pieces it has that are Missing (members of the availability index). */
  candidates: number
  /** Pieces it has that are Missing or InFlight. */
  interesting: number
  /** Outstanding requests by global block key. */
  readonly requests: Map<number, Req>
  snubbed: boolean
}

interface Strikes {
  strikes: number
  sole: number
  good: number
}

interface Req {
  readonly peer: Peer
  readonly piece: number
  readonly block: number
  stale: boolean
}

/** An InFlight piece. */
interface InFlightPiece {
  readonly piece: number
  readonly blocks: number
  readonly received: Uint8Array
  receivedCount: number
  /** Blocks neither received nor held by a live request. */
  open: number
  /** Request entries (live and stale) over all blocks. */
  requests: number
  readonly holders: Array<Array<Req> | undefined>
  readonly contributors: Set<string>
  /** Set for a piece on parole (it failed before): only this peer may request its blocks, unless it is snubbed. */
  owner: Peer | undefined
}

const live = (list: ReadonlyArray<Req> | undefined): number => {
  if (list === undefined) return 0
  let n = 0
  for (const r of list) if (!r.stale) n++
  return n
}

const holds = (list: ReadonlyArray<Req> | undefined, peer: Peer): boolean => {
  if (list === undefined) return false
  for (const r of list) if (r.peer === peer) return true
  return false
}

const positiveInt = (n: number | undefined, fallback: number, name: string): number => {
  if (n === undefined) return fallback
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`)
  return n
}

class PickerImpl implements Picker {
  readonly pieceCount: number
  readonly pieceLength: number
  readonly totalLength: number
  private readonly lastLength: number
  private readonly perPiece: number
  private readonly random: () => number
  private readonly randomFirst: number
  private readonly dup: number
  private readonly strikesToBan: number
  private readonly soleToBan: number

  private readonly state: Uint8Array
  private readonly wanted: Uint8Array
  private readonly counts: Array<number> = [0, 0, 0, 0, 0]
  /** Peers having each piece, shared by the three indices below. */
  private readonly availCount: Int32Array
  /** The Missing pieces by priority level (LOW, NORMAL, HIGH), each bucketed by availability. */
  private readonly avails: ReadonlyArray<Availability.Availability>
  /** Priority level per piece. */
  private readonly prio: Uint8Array
  private win: Window | undefined = undefined
  private readonly partials = new Map<number, InFlightPiece>()
  private readonly verifying = new Map<number, Set<string>>()
  private readonly peers = new Map<string, Peer>()
  private readonly strikeBook = new Map<string, Strikes>()
  /** Pieces that failed verification and have not passed since: re-fetched from a single peer. */
  private readonly parole: Uint8Array
  private endgame = false

  constructor(o: Options) {
    const { pieceCount: n, pieceLength: pl, totalLength: total } = o
    const geo = Lengths.make(total, pl)
    if (Either.isLeft(geo)) throw new RangeError(geo.left.message)
    if (n !== geo.right.pieceCount) throw new RangeError(`pieceCount ${n} != ceil(${total} / ${pl})`)
    if (n === 0) throw new RangeError("a torrent with no pieces has nothing to pick")
    if (o.wanted !== undefined && o.wanted.size !== n) throw new RangeError("wanted bitfield size != pieceCount")
    if (o.have !== undefined && o.have.size !== n) throw new RangeError("have bitfield size != pieceCount")
    this.pieceCount = n
    this.pieceLength = pl
    this.totalLength = total
    this.lastLength = geo.right.lastPieceSize
    this.perPiece = geo.right.blocksPerPiece
    this.random = o.random ?? Math.random
    this.randomFirst = positiveInt(o.randomFirst, 4, "randomFirst")
    this.dup = Math.max(1, positiveInt(o.endgameDuplicates, 2, "endgameDuplicates"))
    this.strikesToBan = Math.max(1, positiveInt(o.strikesToBan, 3, "strikesToBan"))
    this.soleToBan = Math.max(1, positiveInt(o.soleStrikesToBan, 2, "soleStrikesToBan"))
    this.state = new Uint8Array(n)
    this.wanted = new Uint8Array(n)
    this.parole = new Uint8Array(n)
    this.availCount = new Int32Array(n)
    this.avails = [LOW, NORMAL, HIGH].map(() => Availability.make(n, this.availCount))
    this.prio = new Uint8Array(n).fill(NORMAL)
    for (let i = 0; i < n; i++) {
      const w = o.wanted === undefined || Bitfield.has(o.wanted, i)
      this.wanted[i] = w ? 1 : 0
      const s = o.have !== undefined && Bitfield.has(o.have, i) ? HAVE : w ? MISSING : NOT_WANTED
      this.state[i] = s
      this.counts[s]!++
      if (s === MISSING) Availability.add(this.av(i), i)
    }
  }

  /** The index piece i belongs to (when Missing) and whose counts it moves in: its priority level's. */
  private av(i: number): Availability.Availability {
    return this.avails[this.prio[i]!]!
  }

  private pickable(): number {
    return Availability.pickable(this.avails[0]!) + Availability.pickable(this.avails[1]!) +
      Availability.pickable(this.avails[2]!)
  }

  // -- geometry: sizes from core/Lengths, validated once in the constructor; plain arithmetic on the per-block path --

  private pieceSize(i: number): number {
    return i === this.pieceCount - 1 ? this.lastLength : this.pieceLength
  }

  private blocksIn(i: number): number {
    return Math.ceil(this.pieceSize(i) / BLOCK)
  }

  private blockLength(i: number, b: number): number {
    return Math.min(BLOCK, this.pieceSize(i) - b * BLOCK)
  }

  private key(piece: number, block: number): number {
    return piece * this.perPiece + block
  }

  private validPiece(i: number): boolean {
    return Number.isInteger(i) && i >= 0 && i < this.pieceCount
  }

  private exactBlock(piece: number, begin: number, length: number): boolean {
    if (!this.validPiece(piece) || !Number.isInteger(begin) || begin < 0 || begin % BLOCK !== 0) return false
    const b = begin / BLOCK
    return b < this.blocksIn(piece) && length === this.blockLength(piece, b)
  }

  // -- state transitions: every change of `state` goes through here --

  private setState(i: number, next: number): void {
    const prev = this.state[i]!
    if (prev === next) return
    this.state[i] = next
    this.counts[prev]!--
    this.counts[next]!++
    if (prev === MISSING) Availability.remove(this.av(i), i)
    if (next === MISSING) Availability.add(this.av(i), i)
    const dc = (next === MISSING ? 1 : 0) - (prev === MISSING ? 1 : 0)
    const di = needed(next) - needed(prev)
    if ((dc !== 0 || di !== 0) && this.availCount[i]! > 0) {
      for (const p of this.peers.values()) {
        if (Bitfield.has(p.bits, i)) {
          p.candidates += dc
          p.interesting += di
        }
      }
    }
  }

  private computeEndgame(): boolean {
    return this.counts[IN_FLIGHT]! > 0 && this.pickable() === 0
  }

  /** Called after anything that can change the endgame condition; leaving endgame demotes duplicates to stale. */
  private reconcileEndgame(): void {
    const now = this.computeEndgame()
    if (this.endgame && !now) {
      for (const part of this.partials.values()) {
        for (const list of part.holders) {
          if (list === undefined) continue
          let seen = false
          for (const r of list) {
            if (r.stale) continue
            if (seen) r.stale = true
            seen = true
          }
        }
      }
    }
    this.endgame = now
  }

  private startPiece(i: number, peer: Peer): InFlightPiece {
    const blocks = this.blocksIn(i)
    const part: InFlightPiece = {
      piece: i,
      blocks,
      received: new Uint8Array(blocks),
      receivedCount: 0,
      open: blocks,
      requests: 0,
      holders: new Array<Array<Req> | undefined>(blocks).fill(undefined),
      contributors: new Set(),
      owner: this.parole[i] === 1 ? peer : undefined
    }
    this.partials.set(i, part)
    this.setState(i, IN_FLIGHT)
    return part
  }

  /** An InFlight piece with nothing received and nobody asked goes back to Missing (so it is picked by rarity). */
  private maybeRelease(part: InFlightPiece): void {
    if (part.receivedCount === 0 && part.requests === 0 && this.partials.get(part.piece) === part) {
      this.partials.delete(part.piece)
      this.setState(part.piece, MISSING)
    }
  }

  private addRequest(part: InFlightPiece, b: number, peer: Peer, out: Array<BlockRequest>): void {
    const req: Req = { peer, piece: part.piece, block: b, stale: false }
    let list = part.holders[b]
    if (list === undefined) {
      list = []
      part.holders[b] = list
    }
    if (live(list) === 0) part.open--
    list.push(req)
    part.requests++
    peer.requests.set(this.key(part.piece, b), req)
    out.push({ piece: part.piece, begin: b * BLOCK, length: this.blockLength(part.piece, b) })
  }

  /** Removes one request entry everywhere; does not release the piece (callers do, once done iterating). */
  private unlink(req: Req): void {
    const part = this.partials.get(req.piece)
    req.peer.requests.delete(this.key(req.piece, req.block))
    if (part === undefined) return
    const list = part.holders[req.block]
    if (list === undefined) return
    const k = list.indexOf(req)
    if (k < 0) return
    list.splice(k, 1)
    part.requests--
    if (list.length === 0) part.holders[req.block] = undefined
    if (!req.stale && live(list) === 0 && part.received[req.block] === 0) part.open++
  }

  private stale(req: Req): void {
    if (req.stale) return
    req.stale = true
    const part = this.partials.get(req.piece)
    if (part !== undefined && live(part.holders[req.block]) === 0 && part.received[req.block] === 0) part.open++
  }

  private toRequest(r: Req): BlockRequest {
    return { piece: r.piece, begin: r.block * BLOCK, length: this.blockLength(r.piece, r.block) }
  }

  /** Drops every request of a peer; returns them. */
  private dropAll(peer: Peer): Array<BlockRequest> {
    const reqs = [...peer.requests.values()]
    const touched = new Set<InFlightPiece>()
    for (const r of reqs) {
      const part = this.partials.get(r.piece)
      if (part !== undefined) touched.add(part)
      this.unlink(r)
    }
    for (const part of touched) this.maybeRelease(part)
    return reqs.map((r) => this.toRequest(r))
  }

  /** Parole pieces are served by their owner alone while it is connected, unchoked and not snubbed. */
  private mayTake(part: InFlightPiece, peer: Peer): boolean {
    return part.owner === undefined || part.owner === peer || part.owner.snubbed
  }

  private disown(peer: Peer): void {
    for (const part of this.partials.values()) if (part.owner === peer) part.owner = undefined
  }

  private takeOpen(part: InFlightPiece, peer: Peer, max: number, out: Array<BlockRequest>): void {
    for (let b = 0; b < part.blocks && out.length < max && part.open > 0; b++) {
      if (part.received[b] === 1) continue
      const list = part.holders[b]
      if (live(list) > 0 || holds(list, peer)) continue
      this.addRequest(part, b, peer, out)
    }
  }

  // -- peers --

  peerJoined(id: string): boolean {
    if (this.peers.has(id)) return false
    this.peers.set(id, {
      id,
      bits: Bitfield.make(this.pieceCount),
      haveCount: 0,
      candidates: 0,
      interesting: 0,
      requests: new Map(),
      snubbed: false
    })
    return true
  }

  private addPiece(peer: Peer, i: number): void {
    Bitfield.set(peer.bits, i)
    peer.haveCount++
    Availability.increment(this.av(i), i)
    const s = this.state[i]!
    if (s === MISSING) peer.candidates++
    peer.interesting += needed(s)
  }

  private removeAll(peer: Peer): void {
    const bytes = peer.bits.bytes
    for (let k = 0; k < bytes.length; k++) {
      const byte = bytes[k]!
      if (byte === 0) continue
      for (let bit = 0; bit < 8; bit++) {
        if ((byte & (0x80 >> bit)) !== 0) {
          const i = k * 8 + bit
          Availability.decrement(this.av(i), i)
        }
      }
    }
    peer.bits = Bitfield.make(this.pieceCount)
    peer.haveCount = 0
    peer.candidates = 0
    peer.interesting = 0
  }

  peerBitfield(id: string, bf: Bitfield.Bitfield): void {
    const peer = this.peers.get(id)
    if (peer === undefined) return
    if (bf.size !== this.pieceCount) {
      throw new RangeError(`bitfield of ${bf.size} pieces, torrent has ${this.pieceCount}`)
    }
    // a peer cannot un-have pieces under BEP 3, but if it says so, requests for what it lacks now are void
    const touched = new Set<InFlightPiece>()
    for (const r of [...peer.requests.values()]) {
      if (Bitfield.has(bf, r.piece)) continue
      const part = this.partials.get(r.piece)
      if (part !== undefined) touched.add(part)
      this.unlink(r)
    }
    for (const part of touched) this.maybeRelease(part)
    for (const part of this.partials.values()) {
      if (part.owner === peer && !Bitfield.has(bf, part.piece)) part.owner = undefined
    }
    this.removeAll(peer)
    const bytes = bf.bytes
    for (let k = 0; k < bytes.length; k++) {
      const byte = bytes[k]!
      if (byte === 0) continue
      for (let bit = 0; bit < 8; bit++) {
        const i = k * 8 + bit
        if ((byte & (0x80 >> bit)) !== 0 && i < this.pieceCount) this.addPiece(peer, i)
      }
    }
    this.reconcileEndgame()
  }

  peerHave(id: string, piece: number): boolean {
    const peer = this.peers.get(id)
    if (peer === undefined || !this.validPiece(piece)) return false
    if (!Bitfield.has(peer.bits, piece)) {
      this.addPiece(peer, piece)
      this.reconcileEndgame()
    }
    return needed(this.state[piece]!) === 1
  }

  peerHaveAll(id: string): void {
    this.peerBitfield(id, Bitfield.full(this.pieceCount))
  }

  peerHaveNone(id: string): void {
    this.peerBitfield(id, Bitfield.make(this.pieceCount))
  }

  peerLeft(id: string): ReadonlyArray<BlockRequest> {
    const peer = this.peers.get(id)
    if (peer === undefined) return []
    const dropped = this.dropAll(peer)
    this.disown(peer)
    this.removeAll(peer)
    this.peers.delete(id)
    this.reconcileEndgame()
    return dropped
  }

  // -- requests --

  nextRequests(id: string, maxRequests: number, hints?: RequestHints): ReadonlyArray<BlockRequest> {
    const peer = this.peers.get(id)
    if (peer === undefined || peer.interesting === 0) return []
    const max = peer.snubbed ? Math.min(maxRequests, 1 - peer.requests.size) : maxRequests
    const out: Array<BlockRequest> = []
    if (max <= 0) return out
    const only = hints?.only
    if (only !== undefined) return this.onlyRequests(peer, only, max, out)
    // 0. the streaming window, in order: its open blocks, then its next piece to start
    const win = this.win
    if (win !== undefined) {
      let begun = false
      for (let i = win.first; i <= win.last && out.length < max; i++) {
        const s = this.state[i]
        if ((s !== MISSING && s !== IN_FLIGHT) || !Bitfield.has(peer.bits, i)) continue
        if (s === MISSING) {
          this.takeOpen(this.startPiece(i, peer), peer, max, out)
          begun = true
        } else {
          const part = this.partials.get(i)!
          if (part.open > 0 && this.mayTake(part, peer)) this.takeOpen(part, peer, max, out)
        }
      }
      if (begun) this.reconcileEndgame()
    }
    // 1. strict priority: finish pieces already in flight
    for (const part of this.partials.values()) {
      if (out.length >= max) break
      if (part.open > 0 && Bitfield.has(peer.bits, part.piece) && this.mayTake(part, peer)) {
        this.takeOpen(part, peer, max, out)
      }
    }
    // 2a. pieces the peer suggested (BEP 6), when they are still to start
    let started = false
    for (const i of hints?.prefer ?? []) {
      if (out.length >= max || peer.candidates === 0) break
      if (this.validPiece(i) && this.state[i] === MISSING && Bitfield.has(peer.bits, i)) {
        this.takeOpen(this.startPiece(i, peer), peer, max, out)
        started = true
      }
    }
    if (started) this.reconcileEndgame()
    // 2. start new pieces, highest priority level first: random first, then rarest-first with random tie-break
    if (out.length < max && peer.candidates > 0) {
      const accept = (i: number): boolean => Bitfield.has(peer.bits, i)
      const randomly = this.counts[HAVE]! < this.randomFirst
      for (let level = HIGH; level >= LOW && out.length < max && peer.candidates > 0; level--) {
        const a = this.avails[level]!
        while (out.length < max && peer.candidates > 0 && Availability.pickable(a) > 0) {
          const i = randomly ? Availability.random(a, accept, this.random) : Availability.rarest(a, accept, this.random)
          if (i < 0) break
          this.takeOpen(this.startPiece(i, peer), peer, max, out)
        }
      }
      this.reconcileEndgame()
    }
    // 3. endgame: duplicate blocks other peers hold, least-duplicated first
    if (out.length < max && this.endgame && hints?.noDuplicates !== true) {
      for (let level = 1; level < this.dup && out.length < max; level++) {
        for (const part of this.partials.values()) {
          if (out.length >= max) break
          if (!Bitfield.has(peer.bits, part.piece) || !this.mayTake(part, peer)) continue
          for (let b = 0; b < part.blocks && out.length < max; b++) {
            if (part.received[b] === 1) continue
            const list = part.holders[b]
            if (live(list) === level && !holds(list, peer)) this.addRequest(part, b, peer, out)
          }
        }
      }
    }
    return out
  }

  /** Requests within `only` (allowed-fast pieces): open blocks of those in flight, then those still to start. */
  private onlyRequests(
    peer: Peer,
    only: ReadonlyArray<number>,
    max: number,
    out: Array<BlockRequest>
  ): ReadonlyArray<BlockRequest> {
    for (const i of only) {
      if (out.length >= max) break
      if (!this.validPiece(i) || !Bitfield.has(peer.bits, i)) continue
      const part = this.partials.get(i)
      if (part !== undefined) {
        if (part.open > 0 && this.mayTake(part, peer)) this.takeOpen(part, peer, max, out)
      } else if (this.state[i] === MISSING) this.takeOpen(this.startPiece(i, peer), peer, max, out)
    }
    if (out.length > 0) this.reconcileEndgame()
    return out
  }

  blockReceived(id: string, piece: number, begin: number, length: number): BlockResult {
    const peer = this.peers.get(id)
    if (peer === undefined) return ignored("unknown-peer")
    if (!this.exactBlock(piece, begin, length)) return ignored("bad-block")
    const part = this.partials.get(piece)
    if (part === undefined) return ignored("not-in-flight")
    const b = begin / BLOCK
    if (part.received[b] === 1) return ignored("duplicate")
    const key = this.key(piece, b)
    const mine = peer.requests.get(key)
    if (mine === undefined) return ignored("not-requested")
    const list = part.holders[b]!
    const cancels: Array<PeerRequest> = []
    if (live(list) === 0) part.open--
    for (const r of list) {
      r.peer.requests.delete(key)
      if (r !== mine) cancels.push({ peer: r.peer.id, piece, begin, length })
    }
    part.requests -= list.length
    part.holders[b] = undefined
    part.received[b] = 1
    part.receivedCount++
    part.contributors.add(peer.id)
    peer.snubbed = false
    if (part.receivedCount < part.blocks) return { kind: "accepted", cancels }
    this.partials.delete(piece)
    this.verifying.set(piece, part.contributors)
    this.setState(piece, VERIFYING)
    this.reconcileEndgame()
    return { kind: "piece-complete", piece, cancels }
  }

  private findReq(id: string, piece: number, begin: number): Req | undefined {
    const peer = this.peers.get(id)
    if (peer === undefined || !this.validPiece(piece) || !Number.isInteger(begin) || begin % BLOCK !== 0) return
    return peer.requests.get(this.key(piece, begin / BLOCK))
  }

  requestTimedOut(id: string, piece: number, begin: number): boolean {
    const req = this.findReq(id, piece, begin)
    if (req === undefined) return false
    this.stale(req)
    return true
  }

  peerSnubbed(id: string): number {
    const peer = this.peers.get(id)
    if (peer === undefined) return 0
    peer.snubbed = true
    for (const r of peer.requests.values()) this.stale(r)
    return peer.requests.size
  }

  peerChoked(id: string): ReadonlyArray<BlockRequest> {
    const peer = this.peers.get(id)
    if (peer === undefined) return []
    const dropped = this.dropAll(peer)
    this.disown(peer)
    this.reconcileEndgame()
    return dropped
  }

  requestRejected(id: string, piece: number, begin: number): boolean {
    const req = this.findReq(id, piece, begin)
    if (req === undefined) return false
    this.unlink(req)
    const part = this.partials.get(piece)
    if (part !== undefined) this.maybeRelease(part)
    this.reconcileEndgame()
    return true
  }

  // -- verification and strikes --

  pieceVerified(piece: number): boolean {
    if (!this.validPiece(piece) || this.state[piece] !== VERIFYING) return false
    for (const c of this.verifying.get(piece) ?? []) this.book(c).good++
    this.verifying.delete(piece)
    this.parole[piece] = 0
    this.setState(piece, HAVE)
    return true
  }

  pieceLost(piece: number): boolean {
    if (!this.validPiece(piece) || this.state[piece] !== HAVE) return false
    this.setState(piece, this.wanted[piece] === 1 ? MISSING : NOT_WANTED)
    this.reconcileEndgame()
    return true
  }

  pieceFailed(piece: number): ReadonlyArray<string> {
    if (!this.validPiece(piece) || this.state[piece] !== VERIFYING) return []
    const contributors = [...(this.verifying.get(piece) ?? [])]
    this.verifying.delete(piece)
    for (const c of contributors) {
      const s = this.book(c)
      s.strikes++
      if (contributors.length === 1) s.sole++
    }
    this.parole[piece] = 1
    this.setState(piece, this.wanted[piece] === 1 ? MISSING : NOT_WANTED)
    this.reconcileEndgame()
    return contributors
  }

  pieceFailedBlocks(piece: number, bad: ReadonlyArray<number>, blamed: ReadonlyArray<string>): boolean {
    if (!this.validPiece(piece) || this.state[piece] !== VERIFYING || this.wanted[piece] !== 1) return false
    const blocks = this.blocksIn(piece)
    const open = [...new Set(bad)].filter((b) => Number.isInteger(b) && b >= 0 && b < blocks)
    if (open.length === 0) return false
    const contributors = this.verifying.get(piece) ?? new Set<string>()
    this.verifying.delete(piece)
    for (const c of new Set(blamed)) {
      const s = this.book(c)
      s.strikes++
      s.sole++
    }
    if (open.length === blocks) {
      // every block bad: nothing kept, the piece is Missing again (picked by rarity)
      this.setState(piece, MISSING)
      this.reconcileEndgame()
      return true
    }
    const received = new Uint8Array(blocks).fill(1)
    for (const b of open) received[b] = 0
    const part: InFlightPiece = {
      piece,
      blocks,
      received,
      receivedCount: blocks - open.length,
      open: open.length,
      requests: 0,
      holders: new Array<Array<Req> | undefined>(blocks).fill(undefined),
      contributors: new Set([...contributors].filter((c) => !blamed.includes(c))),
      owner: undefined
    }
    this.partials.set(piece, part)
    this.setState(piece, IN_FLIGHT)
    this.reconcileEndgame()
    return true
  }

  peerHasPiece(id: string, piece: number): boolean {
    const peer = this.peers.get(id)
    return peer !== undefined && this.validPiece(piece) && Bitfield.has(peer.bits, piece)
  }

  private book(id: string): Strikes {
    let s = this.strikeBook.get(id)
    if (s === undefined) {
      s = { strikes: 0, sole: 0, good: 0 }
      this.strikeBook.set(id, s)
    }
    return s
  }

  shouldBan(id: string): boolean {
    const s = this.strikeBook.get(id)
    return s !== undefined && (s.sole >= this.soleToBan || (s.sole >= 1 && s.strikes >= this.strikesToBan))
  }

  strikes(id: string): { readonly strikes: number; readonly sole: number; readonly good: number } {
    const s = this.strikeBook.get(id)
    return { strikes: s?.strikes ?? 0, sole: s?.sole ?? 0, good: s?.good ?? 0 }
  }

  // -- selection --

  setWanted(piece: number, wanted: boolean): ReadonlyArray<PeerRequest> {
    if (!this.validPiece(piece)) return []
    this.wanted[piece] = wanted ? 1 : 0
    const s = this.state[piece]!
    const cancels: Array<PeerRequest> = []
    if (wanted && s === NOT_WANTED) this.setState(piece, MISSING)
    else if (!wanted && s === MISSING) this.setState(piece, NOT_WANTED)
    else if (!wanted && s === IN_FLIGHT) {
      const part = this.partials.get(piece)!
      for (const list of part.holders) {
        if (list === undefined) continue
        for (const r of [...list]) {
          cancels.push({ peer: r.peer.id, ...this.toRequest(r) })
          this.unlink(r)
        }
      }
      this.partials.delete(piece)
      this.setState(piece, NOT_WANTED)
    }
    this.reconcileEndgame()
    return cancels
  }

  isWanted(piece: number): boolean {
    return this.validPiece(piece) && this.wanted[piece] === 1
  }

  setPriority(piece: number, priority: Priority): void {
    if (!this.validPiece(piece)) return
    const level = levelOf(priority)
    if (this.prio[piece] === level) return
    const member = this.state[piece] === MISSING
    if (member) Availability.remove(this.av(piece), piece)
    this.prio[piece] = level
    if (member) Availability.add(this.av(piece), piece)
  }

  priority(piece: number): Priority {
    return this.validPiece(piece) ? PRIORITIES[this.prio[piece]!]! : "normal"
  }

  setWindow(window: Window | undefined): void {
    if (window === undefined) {
      this.win = undefined
      return
    }
    const first = Math.max(0, Math.floor(window.first))
    const last = Math.min(this.pieceCount - 1, Math.floor(window.last))
    this.win = Number.isFinite(first) && Number.isFinite(last) && first <= last ? { first, last } : undefined
  }

  window(): Window | undefined {
    return this.win
  }

  // -- queries --

  pieceState(piece: number): PieceState {
    if (!this.validPiece(piece)) throw new RangeError(`piece ${piece} out of range 0..${this.pieceCount - 1}`)
    return NAMES[this.state[piece]!]!
  }

  availability(piece: number): number {
    return this.validPiece(piece) ? this.availCount[piece]! : 0
  }

  isInteresting(id: string): boolean {
    return (this.peers.get(id)?.interesting ?? 0) > 0
  }

  isEndgame(): boolean {
    return this.endgame
  }

  isComplete(): boolean {
    return this.counts[MISSING] === 0 && this.counts[IN_FLIGHT] === 0 && this.counts[VERIFYING] === 0
  }

  requestsOf(id: string): ReadonlyArray<Outstanding> {
    const peer = this.peers.get(id)
    if (peer === undefined) return []
    return [...peer.requests.values()].map((r) => ({ ...this.toRequest(r), stale: r.stale }))
  }

  progress(): Progress {
    let bytesLeft = 0
    for (let i = 0; i < this.pieceCount; i++) {
      if (this.wanted[i] === 1 && this.state[i] !== HAVE) bytesLeft += this.pieceSize(i)
    }
    return {
      pieces: this.pieceCount,
      have: this.counts[HAVE]!,
      verifying: this.counts[VERIFYING]!,
      inFlight: this.counts[IN_FLIGHT]!,
      missing: this.counts[MISSING]!,
      notWanted: this.counts[NOT_WANTED]!,
      bytesLeft,
      endgame: this.endgame,
      peers: this.peers.size
    }
  }

  check(): Array<string> {
    const out: Array<string> = this.avails.flatMap((a, level) => Availability.check(a).map((v) => `level ${level}: ${v}`))
    const n = this.pieceCount
    // piece states
    const counts = [0, 0, 0, 0, 0]
    for (let i = 0; i < n; i++) {
      const s = this.state[i]!
      if (s > HAVE) {
        out.push(`piece ${i}: invalid state ${s}`)
        continue
      }
      counts[s]!++
      const w = this.wanted[i] === 1
      if (s === NOT_WANTED && w) out.push(`piece ${i}: NotWanted but wanted`)
      if ((s === MISSING || s === IN_FLIGHT) && !w) out.push(`piece ${i}: ${NAMES[s]} but not wanted`)
      if ((s === IN_FLIGHT) !== this.partials.has(i)) out.push(`piece ${i}: ${NAMES[s]} vs partial record`)
      if ((s === VERIFYING) !== this.verifying.has(i)) out.push(`piece ${i}: ${NAMES[s]} vs verifying record`)
      if (this.prio[i]! > HIGH) out.push(`piece ${i}: invalid priority ${this.prio[i]}`)
      if ((s === MISSING) !== Availability.isMember(this.av(i), i)) out.push(`piece ${i}: ${NAMES[s]} vs index`)
      for (let level = LOW; level <= HIGH; level++) {
        if (level !== this.prio[i] && Availability.isMember(this.avails[level]!, i)) {
          out.push(`piece ${i}: in the index of level ${level}, its priority is ${this.prio[i]}`)
        }
      }
    }
    for (let s = 0; s <= HAVE; s++) if (counts[s] !== this.counts[s]) out.push(`count of ${NAMES[s]} is off`)
    // availability and per-peer counters
    const have = new Int32Array(n)
    for (const p of this.peers.values()) {
      let hc = 0
      let cand = 0
      let inter = 0
      for (let i = 0; i < n; i++) {
        if (!Bitfield.has(p.bits, i)) continue
        have[i]!++
        hc++
        if (this.state[i] === MISSING) cand++
        inter += needed(this.state[i]!)
      }
      if (hc !== p.haveCount) out.push(`peer ${p.id}: haveCount ${p.haveCount} != ${hc}`)
      if (cand !== p.candidates) out.push(`peer ${p.id}: candidates ${p.candidates} != ${cand}`)
      if (inter !== p.interesting) out.push(`peer ${p.id}: interesting ${p.interesting} != ${inter}`)
      if (p.snubbed && [...p.requests.values()].filter((r) => !r.stale).length > 1) {
        out.push(`peer ${p.id}: snubbed with more than its one probe request live`)
      }
      for (const [k, r] of p.requests) {
        if (r.peer !== p) out.push(`peer ${p.id}: request owned by ${r.peer.id}`)
        if (k !== this.key(r.piece, r.block)) out.push(`peer ${p.id}: request filed under the wrong key`)
        if (this.state[r.piece] !== IN_FLIGHT) out.push(`peer ${p.id}: request in ${NAMES[this.state[r.piece]!]} piece`)
        if (!Bitfield.has(p.bits, r.piece)) out.push(`peer ${p.id}: request for piece ${r.piece} it lacks`)
        const list = this.partials.get(r.piece)?.holders[r.block]
        if (list === undefined || !list.includes(r)) out.push(`peer ${p.id}: request ${r.piece}/${r.block} unlinked`)
      }
    }
    for (let i = 0; i < n; i++) {
      if (have[i] !== this.availCount[i]) out.push(`piece ${i}: availability off`)
    }
    // in-flight pieces and their blocks
    const maxLive = this.endgame ? this.dup : 1
    for (const [i, part] of this.partials) {
      if (part.piece !== i || part.blocks !== this.blocksIn(i)) out.push(`partial ${i}: wrong geometry`)
      let rc = 0
      let open = 0
      let reqs = 0
      let bytes = 0
      for (let b = 0; b < part.blocks; b++) {
        const list = part.holders[b]
        const l = live(list)
        if (part.received[b] === 1) {
          rc++
          bytes += this.blockLength(i, b)
          if (list !== undefined) out.push(`block ${i}/${b}: received yet still requested`)
        } else if (l === 0) open++
        if (l > maxLive) out.push(`block ${i}/${b}: ${l} live requests (limit ${maxLive})`)
        if (list === undefined) continue
        if (list.length === 0) out.push(`block ${i}/${b}: empty holder list kept`)
        reqs += list.length
        const ids = new Set(list.map((r) => r.peer.id))
        if (ids.size !== list.length) out.push(`block ${i}/${b}: a peer holds it twice`)
        for (const r of list) {
          if (this.peers.get(r.peer.id) !== r.peer) out.push(`block ${i}/${b}: held by departed peer ${r.peer.id}`)
          if (r.peer.requests.get(this.key(i, b)) !== r) out.push(`block ${i}/${b}: holder ${r.peer.id} unaware`)
        }
      }
      if (rc !== part.receivedCount) out.push(`partial ${i}: receivedCount ${part.receivedCount} != ${rc}`)
      if (rc >= part.blocks) out.push(`partial ${i}: complete but still InFlight`)
      if (bytes > this.pieceSize(i)) out.push(`partial ${i}: ${bytes} bytes received > piece size`)
      if (open !== part.open) out.push(`partial ${i}: open ${part.open} != ${open}`)
      if (reqs !== part.requests) out.push(`partial ${i}: requests ${part.requests} != ${reqs}`)
      if (rc === 0 && reqs === 0) out.push(`partial ${i}: nothing received or requested yet InFlight`)
      if (part.owner !== undefined && this.peers.get(part.owner.id) !== part.owner) {
        out.push(`partial ${i}: owned by departed peer ${part.owner.id}`)
      }
      if (part.owner !== undefined && this.parole[i] !== 1) out.push(`partial ${i}: owner without parole`)
    }
    if (this.endgame !== this.computeEndgame()) out.push(`endgame flag ${this.endgame} is stale`)
    const w = this.win
    if (w !== undefined && !(w.first >= 0 && w.first <= w.last && w.last < n)) out.push(`window ${w.first}..${w.last} out of range`)
    return out
  }
}

const NO_CANCELS: ReadonlyArray<PeerRequest> = []

const ignored = (reason: IgnoredReason): BlockResult => ({ kind: "ignored", reason, cancels: NO_CANCELS })
