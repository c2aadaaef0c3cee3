/**
 * The per-peer download state machine of ARCHITECTURE.md as a pure function: `step(state, event, now)` returns the
 * next state and the commands to carry out (send, ask the torrent for requests, tell the torrent, close). No I/O, no
 * clock: `now` (ms) comes with each event, deadlines are absolute times kept in the state, and a periodic `Tick`
 * evaluates them, so tests drive time by choosing `now` (or with TestClock through the session).
 *
 * Phases: Connecting → Handshaking → Introducing → Choked ⇄ Downloading, and Closed from anywhere.
 * `Choked` means "not downloading": the peer chokes us or we are not interested. `Downloading` holds exactly when
 * the peer unchokes us and we are interested.
 *
 * Deadlines (PeerConfig, ms): connect, handshake and introduction each close the connection when they pass; an
 * optional choked deadline does the same for a peer that never unchokes us; a request unanswered for
 * `requestTimeout` marks the peer snubbed (its requests are reported so the torrent can re-request them elsewhere,
 * the pipeline drops to 1) and `dropSnubbedAfter` such deadlines in a row close it; after `keepAliveInterval` of our
 * silence a keep-alive goes out; after `idleTimeout` of the peer's silence it is dropped.
 *
 * Pipelining: the target number of requests in flight starts at `minPipeline`, grows by one per block received
 * (slow start) until the measured rate stops growing, then follows rate × `targetLatency` / 16 KiB, clamped to
 * `minPipeline`..min(`maxPipeline`, the peer's `reqq`).
 *
 * Top-ups go in batches (`topUpBatch`: up to 16 requests once that much room is free), so a deep pipeline costs one
 * ask of the torrent and one socket write per batch, not per block.
 *
 * Immutable: every step returns a new state object (arrays are copied, never mutated), so property tests can keep
 * and compare states. A step copies the state object at most once (its first change; later changes patch that copy).
 * The session, which keeps only the latest state, uses `stepOwned`: the same transitions, but the per-block events
 * change the state and its `outstanding` array in place.
 */
import * as Data from "effect/Data"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bitfield from "../core/Bitfield.ts"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import * as Handshake from "../wire/Handshake.ts"
import * as Message from "../wire/Message.ts"
import type { WireError } from "../wire/WireError.ts"
import { PeerError, type Reason } from "./PeerError.ts"

/** Timings in milliseconds and limits. Every field has a default ({@link defaults}). */
export interface PeerConfig {
  readonly connectTimeout: number
  readonly handshakeTimeout: number
  readonly introductionTimeout: number
  /** Close a peer that keeps us choked this long while we are interested; `undefined`: never. */
  readonly chokedTimeout: number | undefined
  readonly requestTimeout: number
  /** Consecutive request deadlines without a block before the peer is dropped as "snubbed". */
  readonly dropSnubbedAfter: number
  readonly keepAliveInterval: number
  readonly idleTimeout: number
  /** How often the session evaluates deadlines (the `Tick` event). */
  readonly tickInterval: number
  readonly minPipeline: number
  readonly maxPipeline: number
  /** The pipeline aims at this much data in flight, in ms at the measured rate. */
  readonly targetLatency: number
  /** Requests the peer may send while we choke it before it is a protocol violation. */
  readonly maxRequestsWhileChoked: number
  /** Blocks we never asked for (and did not recently drop) before it is a protocol violation. */
  readonly maxUnsolicited: number
  /**
   * Bytes we wrote that the peer has not read, beyond which it is a protocol violation (a peer that keeps requesting
   * without reading would otherwise make us buffer without bound). An honest peer's unread data is at most its
   * requests in flight, which the uploader caps at 500 blocks (8 MiB); the session enforces it (PeerSession.ts).
   */
  readonly maxWriteBacklog: number
  /** Client name in our extension handshake. */
  readonly clientName: string
}

export const defaults: PeerConfig = {
  connectTimeout: 5_000,
  handshakeTimeout: 10_000,
  introductionTimeout: 10_000,
  chokedTimeout: undefined,
  requestTimeout: 20_000,
  dropSnubbedAfter: 3,
  keepAliveInterval: 90_000,
  idleTimeout: 180_000,
  tickInterval: 1_000,
  minPipeline: 4,
  maxPipeline: 250,
  targetLatency: 1_000,
  maxRequestsWhileChoked: 64,
  maxUnsolicited: 8,
  maxWriteBacklog: 16 * 1024 * 1024,
  clientName: "effect-torrent 0.1"
}

/** `defaults` with some fields replaced. */
export const config = (overrides: Partial<PeerConfig> = {}): PeerConfig => ({ ...defaults, ...overrides })

/** One block request: piece `index`, byte `begin` in the piece, `length` bytes. */
export interface BlockRef {
  readonly index: number
  readonly begin: number
  readonly length: number
}

export interface Outstanding extends BlockRef {
  readonly sentAt: number
}

export type Phase = "Connecting" | "Handshaking" | "Introducing" | "Choked" | "Downloading" | "Closed"

export interface PeerState {
  readonly config: PeerConfig
  /** `host:port`, for errors. */
  readonly address: string
  readonly direction: "outbound" | "inbound"
  readonly infoHash: InfoHashV1
  /**
   * BEP 52, a hybrid torrent: its truncated v2 info-hash. A peer may use it in its handshake (libtorrent answers our
   * v1 handshake with it when we set the v2 bit: the upgrade to the v2 swarm); `infoHash` then becomes it.
   */
  readonly v2InfoHash: InfoHashV1 | undefined
  readonly peerId: PeerId
  /** Our reserved handshake bytes (the features the torrent allows). */
  readonly reserved: Uint8Array
  readonly pieceCount: number
  /**
   * A session that only fetches metadata (BEP 9, a magnet link): the piece count is unknown, so the peer's
   * bitfield / have / have-all / have-none are accepted unchecked and ignored, and we are never interested.
   */
  readonly metadataOnly: boolean
  readonly phase: Phase
  readonly amInterested: boolean
  readonly peerInterested: boolean
  readonly amChoking: boolean
  readonly peerChoking: boolean
  /** Negotiated by both handshakes (BEP 6 / BEP 10). */
  readonly fast: boolean
  readonly extensionProtocol: boolean
  /** Both set the DHT bit (BEP 5): a `port` message is exchanged. */
  readonly dht: boolean
  /** BEP 6: pieces the peer lets us request while it chokes us (bounded, in arrival order). */
  readonly allowedFast: ReadonlyArray<number>
  /** BEP 6: pieces we told the peer it may request while we choke it. */
  readonly grantedFast: ReadonlyArray<number>
  /** The remote peer id, once its handshake arrived. */
  readonly remotePeerId: PeerId | undefined
  readonly snubbed: boolean
  /** Request deadlines passed in a row without a block. */
  readonly snubCount: number
  /**
   * No core message but the extension handshake and `port` yet (the introduction). A bitfield / have-all / have-none
   * after it is accepted too, as an update (see `onMessage`).
   */
  readonly bitfieldAllowed: boolean
  /** Our requests in flight, oldest first. */
  readonly outstanding: ReadonlyArray<Outstanding>
  /** Requests given up recently (cancelled, dropped by a choke): their blocks may still arrive without penalty. */
  readonly dropped: ReadonlyArray<BlockRef>
  /** Target number of requests in flight (before the snub / reqq caps). */
  readonly pipeline: number
  readonly slowStart: boolean
  /** The peer's `reqq` from its extension handshake. */
  readonly peerReqq: number | undefined
  /** Block bytes per second, smoothed over ticks. */
  readonly rate: number
  readonly lastSample: number
  /** Block bytes since the last tick. */
  readonly tickBytes: number
  readonly lastTickAt: number
  /** The torrent had nothing to request last time; do not ask again until something changes. */
  readonly starved: boolean
  /** Deadline of the current phase (connect, handshake, introduction, optional choked). */
  readonly phaseDeadline: number | undefined
  /** Deadline for the next block while requests are in flight. */
  readonly requestDeadline: number | undefined
  readonly lastSentAt: number
  readonly lastReceivedAt: number
  readonly unsolicited: number
  readonly requestsWhileChoked: number
  /** `have` messages received: an honest peer announces each piece once, so far more than pieces is a flood. */
  readonly haves: number
  /** Set once Closed. */
  readonly error: PeerError | undefined
}

/** Something the torrent is told (the session maps each to a `TorrentHandle` call). */
export type Upward = Data.TaggedEnum<{
  Connected: { readonly peerId: PeerId; readonly fast: boolean; readonly extensionProtocol: boolean }
  Bitfield: { readonly bitfield: Bitfield.Bitfield }
  Have: { readonly index: number }
  HaveAll: {}
  HaveNone: {}
  /** The peer choked us; `returned` are requests that will not be answered (all of them without BEP 6). */
  Choked: { readonly returned: ReadonlyArray<BlockRef> }
  Unchoked: {}
  /** Requests that will not be answered (rejected, or more than we could send). */
  Returned: { readonly blocks: ReadonlyArray<BlockRef> }
  /** A request deadline passed: these are still in flight here but worth requesting elsewhere. */
  RequestTimeout: { readonly blocks: ReadonlyArray<BlockRef> }
  PeerInterest: { readonly interested: boolean }
  PeerRequest: BlockRef
  /** The peer cancelled one of its requests. */
  PeerCancel: BlockRef
  Extended: { readonly id: number; readonly payload: Uint8Array }
  /** The peer's DHT port (BEP 5 `port` message). */
  Port: { readonly port: number }
  /** BEP 6 suggest-piece. */
  Suggest: { readonly index: number }
  /** BEP 6 allowed-fast: the peer lets us request this piece while it chokes us. */
  AllowedFast: { readonly index: number }
}>
export const Upward = Data.taggedEnum<Upward>()

export type Command = Data.TaggedEnum<{
  SendHandshake: { readonly handshake: Handshake.Handshake }
  Send: { readonly message: Message.Message }
  /**
   * Ask the torrent for up to `max` blocks to request; answer with a `RequestsChosen` event. `only` is set while
   * the peer chokes us: then only blocks of those (allowed-fast) pieces may be requested.
   */
  WantRequests: { readonly max: number; readonly only?: ReadonlyArray<number> | undefined }
  Emit: { readonly event: Upward }
  /** Close the connection; emitted exactly once, as the last command of a state. */
  Close: { readonly error: PeerError }
}>
export const Command = Data.taggedEnum<Command>()

export type Event = Data.TaggedEnum<{
  /** TCP connected (outbound). */
  Connected: {}
  /**
   * The peer's complete handshake; `ours` is our bitfield now, for the introduction; `extensions` our BEP 10
   * handshake payload (default {@link extensionHandshake}); `dhtPort` our DHT node's port, sent in a `port` message
   * when both sides set the DHT bit.
   */
  HandshakeReceived: {
    readonly handshake: Handshake.Handshake
    readonly ours: Bitfield.Bitfield
    readonly extensions?: Uint8Array | undefined
    readonly dhtPort?: number | undefined
  }
  /** A control message (every message but `piece`). */
  MessageReceived: { readonly message: Message.Control }
  /** A whole block arrived; `accepted`: the torrent kept it. */
  BlockReceived: BlockRef & { readonly accepted: boolean }
  /** Periodic: evaluates deadlines. `received`: bytes read since the last tick; `paused`: reading is paused. */
  Tick: { readonly received: number; readonly paused: boolean }
  /** The torrent's decision: we want (or no longer want) something this peer has. */
  SetInterested: { readonly interested: boolean }
  /** The torrent's answer to `WantRequests` (empty: nothing to request now). */
  RequestsChosen: { readonly blocks: ReadonlyArray<BlockRef> }
  /** The torrent has new work: ask again even if it had nothing last time. */
  RequestMore: {}
  ChokePeer: {}
  UnchokePeer: {}
  SendHave: { readonly index: number }
  /** A BEP 10 extended message (`id` is the peer's id for the extension); dropped without the extension protocol. */
  SendExtended: { readonly id: number; readonly payload: Uint8Array }
  /** BEP 6: let the peer request these pieces while we choke it (sent once each; needs the fast extension). */
  AllowFast: { readonly indices: ReadonlyArray<number> }
  /** Endgame: these requests are no longer needed. */
  Cancel: { readonly blocks: ReadonlyArray<BlockRef> }
  DecodeFailed: { readonly error: WireError }
  RemoteClosed: { readonly detail: string }
  CloseLocal: { readonly reason: Reason; readonly detail: string }
}>
export const Event = Data.taggedEnum<Event>()

// A `Data.taggedEnum` object is a Proxy that makes a new constructor on every property read (a trap and a closure per
// call): the constructors used per block or per request are taken once.
const SendCommand = Command.Send
const EmitCommand = Command.Emit
const WantRequestsCommand = Command.WantRequests
const PeerRequestUpward = Upward.PeerRequest
const PeerCancelUpward = Upward.PeerCancel

export interface InitOptions {
  readonly config: PeerConfig
  readonly address: string
  readonly direction: "outbound" | "inbound"
  readonly infoHash: InfoHashV1
  /** See {@link PeerState} `v2InfoHash`. */
  readonly v2InfoHash?: InfoHashV1 | undefined
  readonly peerId: PeerId
  readonly reserved: Uint8Array
  readonly pieceCount: number
  readonly metadataOnly?: boolean | undefined
}

/** The state before anything happened: Connecting (outbound) or Handshaking (inbound, already connected). */
export const initial = (options: InitOptions, now: number): PeerState => {
  const c = options.config
  const outbound = options.direction === "outbound"
  return {
    config: c,
    address: options.address,
    direction: options.direction,
    infoHash: options.infoHash,
    v2InfoHash: options.v2InfoHash,
    peerId: options.peerId,
    reserved: options.reserved,
    pieceCount: options.pieceCount,
    metadataOnly: options.metadataOnly === true,
    phase: outbound ? "Connecting" : "Handshaking",
    amInterested: false,
    peerInterested: false,
    amChoking: true,
    peerChoking: true,
    fast: false,
    extensionProtocol: false,
    dht: false,
    allowedFast: [],
    grantedFast: [],
    remotePeerId: undefined,
    snubbed: false,
    snubCount: 0,
    bitfieldAllowed: true,
    outstanding: [],
    dropped: [],
    pipeline: c.minPipeline,
    slowStart: true,
    peerReqq: undefined,
    rate: 0,
    lastSample: 0,
    tickBytes: 0,
    lastTickAt: now,
    starved: false,
    phaseDeadline: now + (outbound ? c.connectTimeout : c.handshakeTimeout),
    requestDeadline: undefined,
    lastSentAt: now,
    lastReceivedAt: now,
    unsolicited: 0,
    requestsWhileChoked: 0,
    haves: 0,
    error: undefined
  }
}

/**
 * While the peer chokes us but lets us request allowed-fast pieces (BEP 6) and we are interested: those pieces;
 * otherwise `undefined` (nothing may be requested while choked).
 */
export const chokedAllowance = (s: PeerState): ReadonlyArray<number> | undefined =>
  s.phase === "Choked" && s.peerChoking && s.amInterested && s.fast && s.allowedFast.length > 0
    ? s.allowedFast
    : undefined

/** Most allowed-fast pieces kept per peer (BEP 6 suggests 10; libtorrent sends 5 by default). */
export const maxAllowedFast = 32

/** Requests in flight may not exceed this now: 1 when snubbed, else the pipeline within its bounds. */
export const pipelineLimit = (s: PeerState): number => {
  if (s.snubbed) return 1
  const cap = Math.min(s.config.maxPipeline, s.peerReqq ?? Infinity)
  return Math.max(1, Math.min(cap, Math.max(s.config.minPipeline, s.pipeline)))
}

/**
 * The smallest top-up: a quarter of the pipeline limit, at most 16 and at least 1. An empty pipeline always has room
 * for it, so a peer is never left idle; a deep pipeline (e.g. 250) refills 16 requests at a time.
 */
export const topUpBatch = (limit: number): number => Math.max(1, Math.min(16, Math.floor(limit / 4)))

const sameBlock = (a: BlockRef, index: number, begin: number, length: number): boolean =>
  a.index === index && a.begin === begin && a.length === length

const findBlock = (list: ReadonlyArray<BlockRef>, index: number, begin: number, length: number, from = 0): number => {
  for (let i = from; i < list.length; i++) if (sameBlock(list[i]!, index, begin, length)) return i
  return -1
}

/**
 * Which of `blocks` are already in `inFlight` (`undefined`: none), in one pass over `inFlight` instead of one per
 * block (a 250-deep pipeline topped up 16 at a time cost 250 comparisons per block). The blocks are taken as runs of
 * one piece (a batch is one or two such runs); only an entry inside a run's piece and offsets is compared one by one.
 */
const duplicates = (
  inFlight: ReadonlyArray<BlockRef>,
  blocks: ReadonlyArray<BlockRef>
): Array<boolean> | undefined => {
  // runs: [index, minBegin, maxBegin, first, end) per stretch of blocks of one piece
  const runs: Array<number> = []
  for (let j = 0; j < blocks.length; j++) {
    const b = blocks[j]!
    const r = runs.length - 5
    if (r >= 0 && runs[r] === b.index) {
      if (b.begin < runs[r + 1]!) runs[r + 1] = b.begin
      if (b.begin > runs[r + 2]!) runs[r + 2] = b.begin
      runs[r + 4] = j + 1
    } else runs.push(b.index, b.begin, b.begin, j, j + 1)
  }
  let dup: Array<boolean> | undefined
  for (let k = 0; k < inFlight.length; k++) {
    const o = inFlight[k]!
    for (let r = 0; r < runs.length; r += 5) {
      if (o.index !== runs[r] || o.begin < runs[r + 1]! || o.begin > runs[r + 2]!) continue
      for (let j = runs[r + 3]!; j < runs[r + 4]!; j++) {
        const b = blocks[j]!
        if (sameBlock(o, b.index, b.begin, b.length)) (dup ??= new Array<boolean>(blocks.length).fill(false))[j] = true
      }
    }
  }
  return dup
}

/**
 * Whether a block now arriving was asked for (in flight, or recently dropped but still welcome): the session
 * copies its bytes only then. Allocation-free.
 */
export const expects = (s: PeerState, index: number, begin: number, length: number): boolean =>
  s.phase !== "Closed" &&
  (findBlock(s.outstanding, index, begin, length) >= 0 || findBlock(s.dropped, index, begin, length) >= 0)

const without = <A>(list: ReadonlyArray<A>, i: number): ReadonlyArray<A> => {
  if (i === 0) return list.slice(1)
  const out = list.slice()
  out.splice(i, 1)
  return out
}

const blockRef = (b: BlockRef): BlockRef => ({ index: b.index, begin: b.begin, length: b.length })

/** The extension handshake we send (BEP 10): no extensions yet, our name, how many requests we queue. */
export const extensionHandshake = (c: PeerConfig): Uint8Array =>
  Bencode.encode({ m: new Map(), v: c.clientName, reqq: c.maxPipeline })

/** `reqq` from a peer's extension handshake, when it is a positive integer. */
export const parseReqq = (payload: Uint8Array): number | undefined => {
  const d = Bencode.decode(payload, { mode: "lenient" })
  if (d._tag === "Left" || !Bencode.isDict(d.right)) return undefined
  const reqq = d.right.get("reqq")
  return typeof reqq === "number" && reqq > 0 ? reqq : undefined
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/**
 * A copy of the state with every field listed, so V8 builds it with one fixed shape (a spread of this many fields
 * took the generic slow clone, ~7 µs per block in profiles).
 */
const clone = (s: PeerState): Mutable<PeerState> => ({
  config: s.config,
  address: s.address,
  direction: s.direction,
  infoHash: s.infoHash,
  v2InfoHash: s.v2InfoHash,
  peerId: s.peerId,
  reserved: s.reserved,
  pieceCount: s.pieceCount,
  metadataOnly: s.metadataOnly,
  phase: s.phase,
  amInterested: s.amInterested,
  peerInterested: s.peerInterested,
  amChoking: s.amChoking,
  peerChoking: s.peerChoking,
  fast: s.fast,
  extensionProtocol: s.extensionProtocol,
  dht: s.dht,
  allowedFast: s.allowedFast,
  grantedFast: s.grantedFast,
  remotePeerId: s.remotePeerId,
  snubbed: s.snubbed,
  snubCount: s.snubCount,
  bitfieldAllowed: s.bitfieldAllowed,
  outstanding: s.outstanding,
  dropped: s.dropped,
  pipeline: s.pipeline,
  slowStart: s.slowStart,
  peerReqq: s.peerReqq,
  rate: s.rate,
  lastSample: s.lastSample,
  tickBytes: s.tickBytes,
  lastTickAt: s.lastTickAt,
  starved: s.starved,
  phaseDeadline: s.phaseDeadline,
  requestDeadline: s.requestDeadline,
  lastSentAt: s.lastSentAt,
  lastReceivedAt: s.lastReceivedAt,
  unsolicited: s.unsolicited,
  requestsWhileChoked: s.requestsWhileChoked,
  haves: s.haves,
  error: s.error
})

/** Accumulates one step's changes and commands; `step` is pure from the outside. */
class Step {
  s: PeerState
  readonly now: number
  readonly out: Array<Command> = []
  /** `s` and its `outstanding` array belong to the caller, who keeps only the result ({@link stepOwned}). */
  readonly inPlace: boolean
  constructor(s: PeerState, now: number, inPlace: boolean) {
    this.s = s
    this.now = now
    this.inPlace = inPlace
    this.owned = inPlace
  }
  /** Whether `s` may be written (this step's own copy, made by the first `set`, or the caller's in place). */
  private owned: boolean
  /** Copies the state once per step (the caller's state is never touched), then patches the copy in place. */
  set(patch: Partial<PeerState>): void {
    if (!this.owned) {
      this.s = clone(this.s)
      this.owned = true
    }
    Object.assign(this.s, patch)
  }
  /** This step's own copy of the state, to change fields directly on the per-block path. */
  own(): Mutable<PeerState> {
    if (!this.owned) {
      this.s = clone(this.s)
      this.owned = true
    }
    return this.s as Mutable<PeerState>
  }
  /** Removes `outstanding[i]`: from a copy of the array, or in place. */
  removeOutstanding(i: number): void {
    const o = this.own()
    if (!this.inPlace) o.outstanding = without(o.outstanding, i)
    else if (i === 0) (o.outstanding as Array<Outstanding>).shift()
    else (o.outstanding as Array<Outstanding>).splice(i, 1)
  }
  /** `outstanding` to append to: a copy, or the array itself in place (then `set` it back; a no-op in place). */
  appendableOutstanding(): Array<Outstanding> {
    return this.inPlace ? this.s.outstanding as Array<Outstanding> : this.s.outstanding.slice()
  }
  send(message: Message.Message): void {
    this.out.push(SendCommand({ message }))
    if (this.s.lastSentAt !== this.now) this.set({ lastSentAt: this.now })
  }
  emit(event: Upward): void {
    this.out.push(EmitCommand({ event }))
  }
  close(reason: Reason, detail: string): void {
    if (this.s.phase === "Closed") return
    const error = new PeerError({ reason, address: this.s.address, detail })
    this.set({ phase: "Closed", error, phaseDeadline: undefined, requestDeadline: undefined })
    this.out.push(Command.Close({ error }))
  }
  get closed(): boolean {
    return this.s.phase === "Closed"
  }
  get connected(): boolean {
    const p = this.s.phase
    return p === "Introducing" || p === "Choked" || p === "Downloading"
  }
  /** Choked ⇄ Downloading from the flags, with the optional choked deadline. */
  settle(): void {
    const s = this.s
    if (s.phase !== "Choked" && s.phase !== "Downloading") return
    const phase = !s.peerChoking && s.amInterested ? "Downloading" : "Choked"
    const timed = phase === "Choked" && s.amInterested && s.config.chokedTimeout !== undefined
    const phaseDeadline = timed ? (s.phase === "Choked" && s.phaseDeadline !== undefined
      ? s.phaseDeadline
      : this.now + s.config.chokedTimeout!) : undefined
    if (phase !== s.phase || phaseDeadline !== s.phaseDeadline) this.set({ phase, phaseDeadline })
  }
  leaveIntroduction(): void {
    if (this.s.phase !== "Introducing") return
    this.set({ phase: "Choked", phaseDeadline: undefined })
    this.settle()
  }
  /**
   * Asks the torrent for more requests when there is room for a batch in the pipeline ({@link topUpBatch}): one
   * ask, one `RequestsChosen` and one write per batch instead of per block.
   */
  topUp(): void {
    const s = this.s
    if (s.starved) return
    const only = s.phase === "Downloading" ? undefined : chokedAllowance(s)
    if (s.phase !== "Downloading" && only === undefined) return
    const limit = pipelineLimit(s)
    const room = limit - s.outstanding.length
    if (room > 0 && room >= topUpBatch(limit)) this.out.push(WantRequestsCommand({ max: room, only }))
  }
  requestDeadlineAfterChange(): void {
    const s = this.s
    if (s.outstanding.length === 0) {
      if (s.requestDeadline !== undefined) this.set({ requestDeadline: undefined })
    } else if (s.requestDeadline === undefined) this.set({ requestDeadline: this.now + s.config.requestTimeout })
  }
  drop(blocks: ReadonlyArray<BlockRef>): void {
    if (blocks.length === 0) return
    const max = 2 * this.s.config.maxPipeline
    const dropped = this.s.dropped.concat(blocks.map(blockRef))
    this.set({ dropped: dropped.length > max ? dropped.slice(dropped.length - max) : dropped })
  }
}

/** One transition. Never throws; once Closed, every event is ignored. */
export const step = (state: PeerState, event: Event, now: number): readonly [PeerState, ReadonlyArray<Command>] =>
  run(state, event, now, false)

/**
 * `step` for a caller that owns `state` and keeps only the result (the session): the per-block events
 * (`BlockReceived`, `RequestsChosen`) change `state` and its `outstanding` array in place instead of copying both
 * (35 fields and up to 250 requests per block). Every other event is a `step`. The states and commands are those
 * `step` gives (a property test runs both side by side).
 */
export const stepOwned = (state: PeerState, event: Event, now: number): readonly [PeerState, ReadonlyArray<Command>] =>
  run(state, event, now, event._tag === "BlockReceived" || event._tag === "RequestsChosen")

const run = (
  state: PeerState,
  event: Event,
  now: number,
  inPlace: boolean
): readonly [PeerState, ReadonlyArray<Command>] => {
  if (state.phase === "Closed") return [state, []]
  const t = new Step(state, now, inPlace)
  switch (event._tag) {
    case "Connected":
      if (state.phase !== "Connecting") break
      t.out.push(Command.SendHandshake({ handshake: ourHandshake(state) }))
      t.set({
        phase: "Handshaking",
        phaseDeadline: now + state.config.handshakeTimeout,
        lastSentAt: now,
        lastReceivedAt: now
      })
      break
    case "HandshakeReceived":
      onHandshake(t, event.handshake, event.ours, event.extensions, event.dhtPort)
      break
    case "MessageReceived":
      onMessage(t, event.message)
      break
    case "BlockReceived":
      onBlock(t, event)
      break
    case "Tick":
      onTick(t, event.received, event.paused)
      break
    case "SetInterested": {
      if (!t.connected || state.amInterested === event.interested) break
      t.send(event.interested ? Message.Interested() : Message.NotInterested())
      t.set({ amInterested: event.interested, starved: false })
      t.settle()
      t.topUp()
      break
    }
    case "RequestsChosen":
      onRequestsChosen(t, event.blocks)
      break
    case "RequestMore":
      t.set({ starved: false })
      t.topUp()
      break
    case "ChokePeer":
    case "UnchokePeer": {
      const choke = event._tag === "ChokePeer"
      if (!t.connected || state.amChoking === choke) break
      t.send(choke ? Message.Choke() : Message.Unchoke())
      t.set({ amChoking: choke, requestsWhileChoked: 0 })
      break
    }
    case "SendHave":
      if (t.connected && !state.metadataOnly && event.index >= 0 && event.index < state.pieceCount) {
        t.send(Message.Have({ index: event.index }))
      }
      break
    case "SendExtended":
      if (t.connected && state.extensionProtocol && event.id > 0 && event.id <= 255) {
        t.send(Message.Extended({ id: event.id, payload: event.payload }))
      }
      break
    case "AllowFast": {
      if (!t.connected || !state.fast || state.metadataOnly) break
      const fresh = event.indices.filter((i, k) =>
        Number.isInteger(i) && i >= 0 && i < state.pieceCount && !state.grantedFast.includes(i) &&
        event.indices.indexOf(i) === k
      ).slice(0, Math.max(0, maxAllowedFast - state.grantedFast.length))
      if (fresh.length === 0) break
      for (const index of fresh) t.send(Message.AllowedFast({ index }))
      t.set({ grantedFast: state.grantedFast.concat(fresh) })
      break
    }
    case "Cancel": {
      let outstanding = state.outstanding
      const cancelled: Array<BlockRef> = []
      for (const b of event.blocks) {
        const i = findBlock(outstanding, b.index, b.begin, b.length)
        if (i < 0) continue
        outstanding = without(outstanding, i)
        cancelled.push(blockRef(b))
        t.send(Message.Cancel(blockRef(b)))
      }
      if (cancelled.length === 0) break
      t.set({ outstanding })
      t.drop(cancelled)
      t.requestDeadlineAfterChange()
      t.topUp()
      break
    }
    case "DecodeFailed":
      t.close("protocol", event.error.message)
      break
    case "RemoteClosed":
      t.close("closed", event.detail)
      break
    case "CloseLocal":
      t.close(event.reason, event.detail)
      break
  }
  return [t.s, t.out]
}

const ourHandshake = (s: PeerState): Handshake.Handshake => ({
  reserved: s.reserved,
  infoHash: s.infoHash,
  peerId: s.peerId
})

const onHandshake = (
  t: Step,
  theirs: Handshake.Handshake,
  ours: Bitfield.Bitfield,
  extensions: Uint8Array | undefined,
  dhtPort: number | undefined
): void => {
  const s = t.s
  if (s.phase !== "Handshaking") {
    t.close("protocol", `handshake received while ${s.phase.toLowerCase()}`)
    return
  }
  // (libtorrent 2.0.8 upgrades to it when we set the v2 bit, though its own reserved bytes do not show the bit)
  const upgraded = s.v2InfoHash !== undefined && Bytes.equals(theirs.infoHash, s.v2InfoHash)
  if (!Bytes.equals(theirs.infoHash, s.infoHash) && !upgraded) {
    t.close("wrong-info-hash", `peer asked for info-hash ${Bytes.toHex(theirs.infoHash)}`)
    return
  }
  // the hybrid's v2 swarm: an inbound peer gets the hash it asked for back
  if (upgraded) t.set({ infoHash: s.v2InfoHash })
  if (Bytes.equals(theirs.peerId, s.peerId)) {
    t.close("self-connection", "the peer's id is our own")
    return
  }
  const n = Handshake.negotiated(s.reserved, theirs.reserved)
  if (s.direction === "inbound") t.out.push(Command.SendHandshake({ handshake: ourHandshake(t.s) }))
  t.set({
    phase: "Introducing",
    phaseDeadline: t.now + s.config.introductionTimeout,
    fast: n.fast,
    extensionProtocol: n.extensionProtocol,
    dht: n.dht,
    remotePeerId: theirs.peerId,
    lastReceivedAt: t.now,
    lastSentAt: t.now
  })
  // Introduction: what we have, then our extension handshake.
  const have = ours.size === s.pieceCount ? Bitfield.count(ours) : 0
  if (n.fast && have === s.pieceCount && have > 0) t.send(Message.HaveAll())
  else if (n.fast && have === 0) t.send(Message.HaveNone())
  else if (have > 0) t.send(Message.Bitfield({ bytes: new Uint8Array(ours.bytes) }))
  if (n.extensionProtocol) {
    t.send(Message.Extended({ id: 0, payload: extensions ?? extensionHandshake(s.config) }))
  }
  if (n.dht && dhtPort !== undefined && dhtPort > 0 && dhtPort < 65536) t.send(Message.Port({ port: dhtPort }))
  t.emit(Upward.Connected({ peerId: theirs.peerId, fast: n.fast, extensionProtocol: n.extensionProtocol }))
}

const onMessage = (t: Step, m: Message.Control): void => {
  const s = t.s
  if (!t.connected) {
    t.close("protocol", `${m._tag} message before the handshake`)
    return
  }
  t.set({ lastReceivedAt: t.now })
  if (m._tag === "KeepAlive") return
  const introductory = m._tag === "Bitfield" || m._tag === "HaveAll" || m._tag === "HaveNone"
  // A late bitfield, have-all or have-none is taken as an update that replaces what the peer has (as libtorrent
  // does): aria2 1.36 sends a bitfield in place of a batch of `have` messages, and `have all` instead once it is
  // complete. The torrent replaces the peer's piece set, so pieces it announced before are not counted twice.
  if (m._tag !== "Extended" && m._tag !== "Port" && s.bitfieldAllowed) t.set({ bitfieldAllowed: false })
  t.leaveIntroduction()
  // Without metadata the piece count is unknown: what the peer has is not checked, nor needed.
  if (s.metadataOnly && (introductory || m._tag === "Have" || m._tag === "Suggest" || m._tag === "AllowedFast")) return
  switch (m._tag) {
    case "Bitfield": {
      const bitfield = Bitfield.fromBytes(m.bytes, s.pieceCount)
      if (bitfield === undefined) {
        t.close("protocol", `bitfield of ${m.bytes.length} bytes does not fit ${s.pieceCount} pieces`)
        return
      }
      t.emit(Upward.Bitfield({ bitfield }))
      return
    }
    case "HaveAll":
    case "HaveNone":
      if (!s.fast) {
        t.close("protocol", `${m._tag} without the fast extension`)
        return
      }
      t.emit(m._tag === "HaveAll" ? Upward.HaveAll() : Upward.HaveNone())
      return
    case "Have":
      if (m.index >= s.pieceCount) {
        t.close("protocol", `have ${m.index}, the torrent has ${s.pieceCount} pieces`)
        return
      }
      if (s.haves >= maxHaves(s.pieceCount)) {
        t.close("protocol", `more than ${maxHaves(s.pieceCount)} have messages for ${s.pieceCount} pieces (a flood)`)
        return
      }
      t.own().haves = s.haves + 1
      t.emit(Upward.Have({ index: m.index }))
      if (t.s.starved) {
        t.set({ starved: false })
        t.topUp()
      }
      return
    case "Choke": {
      if (s.peerChoking) return
      // Without BEP 6 a choke discards every pending request; with it, each is rejected or served explicitly.
      const returned = s.fast ? [] : s.outstanding.map(blockRef)
      t.set({ peerChoking: true, ...(s.fast ? {} : { outstanding: [] }) })
      t.drop(returned)
      t.requestDeadlineAfterChange()
      t.emit(Upward.Choked({ returned }))
      t.settle()
      t.topUp() // allowed-fast pieces may still be requested
      return
    }
    case "Unchoke":
      if (!s.peerChoking) return
      t.set({ peerChoking: false, starved: false })
      t.emit(Upward.Unchoked())
      t.settle()
      t.topUp()
      return
    case "Interested":
    case "NotInterested": {
      const interested = m._tag === "Interested"
      if (s.peerInterested === interested) return
      t.set({ peerInterested: interested })
      t.emit(Upward.PeerInterest({ interested }))
      return
    }
    case "Request": {
      if (!s.amChoking) {
        t.emit(PeerRequestUpward({ index: m.index, begin: m.begin, length: m.length }))
        return
      }
      if (s.fast && s.grantedFast.includes(m.index)) {
        // An allowed-fast piece (BEP 6): served although we choke the peer.
        t.emit(PeerRequestUpward({ index: m.index, begin: m.begin, length: m.length }))
        return
      }
      const count = s.requestsWhileChoked + 1
      if (count > s.config.maxRequestsWhileChoked) {
        t.close("protocol", `${count} requests while choked`)
        return
      }
      t.set({ requestsWhileChoked: count })
      if (s.fast) t.send(Message.Reject({ index: m.index, begin: m.begin, length: m.length }))
      return
    }
    case "Reject": {
      const i = findBlock(s.outstanding, m.index, m.begin, m.length)
      if (i >= 0) {
        t.set({ outstanding: without(s.outstanding, i), starved: false })
        t.requestDeadlineAfterChange()
        t.emit(Upward.Returned({ blocks: [{ index: m.index, begin: m.begin, length: m.length }] }))
        t.topUp()
        return
      }
      const d = findBlock(s.dropped, m.index, m.begin, m.length)
      if (d >= 0) t.set({ dropped: without(s.dropped, d) })
      else unsolicited(t, `reject of a block never requested (piece ${m.index} at ${m.begin})`)
      return
    }
    case "Extended":
      if (m.id === 0) {
        const reqq = parseReqq(m.payload)
        if (reqq !== undefined) t.set({ peerReqq: reqq })
      }
      t.emit(Upward.Extended({ id: m.id, payload: m.payload }))
      return
    case "Cancel":
      if (!s.amChoking || s.grantedFast.includes(m.index)) {
        t.emit(PeerCancelUpward({ index: m.index, begin: m.begin, length: m.length }))
      }
      return
    case "Port":
      if (m.port > 0) t.emit(Upward.Port({ port: m.port }))
      return
    case "Suggest":
      if (s.fast && m.index < s.pieceCount) t.emit(Upward.Suggest({ index: m.index }))
      return
    case "AllowedFast": {
      // Tolerated without the fast bit or beyond our bound (ignored): some clients send a few regardless.
      if (!s.fast || m.index >= s.pieceCount || s.allowedFast.includes(m.index)) return
      if (s.allowedFast.length >= maxAllowedFast) return
      t.set({ allowedFast: s.allowedFast.concat([m.index]), starved: false })
      t.emit(Upward.AllowedFast({ index: m.index }))
      t.topUp()
      return
    }
  }
}

/**
 * `have` messages accepted from one peer: each piece is announced once by an honest peer (repeats are ignored
 * upstream, like libtorrent does), so twice the piece count plus some slack only a flood reaches.
 */
export const maxHaves = (pieceCount: number): number => 2 * pieceCount + 64

const unsolicited = (t: Step, detail: string): void => {
  const n = t.s.unsolicited + 1
  if (n > t.s.config.maxUnsolicited) t.close("protocol", `${n} unsolicited messages, the last: ${detail}`)
  else t.set({ unsolicited: n })
}

const onBlock = (t: Step, b: BlockRef): void => {
  const s = t.s
  if (!t.connected) {
    t.close("protocol", "piece message before the handshake")
    return
  }
  t.own().lastReceivedAt = t.now
  t.leaveIntroduction()
  const i = findBlock(s.outstanding, b.index, b.begin, b.length)
  if (i < 0) {
    const d = findBlock(s.dropped, b.index, b.begin, b.length)
    if (d >= 0) t.set({ dropped: without(s.dropped, d) })
    else {
      // The right place with the wrong length is no stray block: the peer answers our request with bad data.
      const asked = s.outstanding.find((o) => o.index === b.index && o.begin === b.begin)
      if (asked !== undefined) {
        t.close("protocol", `block of ${b.length} bytes for a request of ${asked.length} (piece ${b.index} at ${b.begin})`)
      } else unsolicited(t, `block never requested (piece ${b.index} at ${b.begin}, ${b.length} bytes)`)
    }
    return
  }
  // (read before the changes: in place, `s` is the state being changed)
  const cap = Math.min(s.config.maxPipeline, s.peerReqq ?? Infinity)
  const more = s.outstanding.length > 1
  const tickBytes = s.tickBytes + b.length
  const pipeline = s.slowStart ? Math.min(cap, s.pipeline + 1) : s.pipeline
  t.removeOutstanding(i)
  const o = t.own()
  o.snubbed = false
  o.snubCount = 0
  o.starved = false
  o.tickBytes = tickBytes
  o.pipeline = pipeline
  o.requestDeadline = more ? t.now + s.config.requestTimeout : undefined
  t.topUp()
}

const onRequestsChosen = (t: Step, blocks: ReadonlyArray<BlockRef>): void => {
  const s = t.s
  const allowance = s.phase === "Downloading" ? undefined : chokedAllowance(s)
  const requesting = s.phase === "Downloading" || allowance !== undefined
  if (blocks.length === 0) {
    if (requesting) t.set({ starved: true })
    return
  }
  const room = requesting ? pipelineLimit(s) - s.outstanding.length : 0
  const inFlight = s.outstanding.length
  const dup = duplicates(s.outstanding, blocks)
  const outstanding = t.appendableOutstanding()
  const returned: Array<BlockRef> = []
  for (let j = 0; j < blocks.length; j++) {
    const b = blocks[j]!
    const refused = allowance !== undefined && !allowance.includes(b.index)
    if (
      refused || outstanding.length - inFlight >= room || (dup !== undefined && dup[j] === true) ||
      findBlock(outstanding, b.index, b.begin, b.length, inFlight) >= 0
    ) {
      returned.push(blockRef(b))
      continue
    }
    outstanding.push({ index: b.index, begin: b.begin, length: b.length, sentAt: t.now })
    t.send(Message.Request(blockRef(b)))
  }
  if (outstanding.length !== inFlight) {
    t.set({ outstanding })
    t.requestDeadlineAfterChange()
  }
  if (returned.length > 0) t.emit(Upward.Returned({ blocks: returned }))
}

const phaseReason = (p: Phase): Reason =>
  p === "Connecting"
    ? "connect-timeout"
    : p === "Handshaking"
    ? "handshake-timeout"
    : p === "Introducing"
    ? "introduction-timeout"
    : "choked-timeout"

const onTick = (t: Step, received: number, paused: boolean): void => {
  const s = t.s
  const c = s.config
  const now = t.now
  if (s.phaseDeadline !== undefined && now >= s.phaseDeadline) {
    t.close(phaseReason(s.phase), `no progress while ${s.phase.toLowerCase()} for ${deadlineLength(s)} ms`)
    return
  }
  // While we do not read, the peer's silence and unanswered requests are our doing.
  if (received > 0 || paused) {
    t.set({
      lastReceivedAt: now,
      ...(paused && s.requestDeadline !== undefined ? { requestDeadline: now + c.requestTimeout } : {})
    })
  }
  if (!t.connected) return
  if (now - t.s.lastReceivedAt >= c.idleTimeout) {
    t.close("idle", `nothing received for ${now - t.s.lastReceivedAt} ms`)
    return
  }
  if (t.s.requestDeadline !== undefined && now >= t.s.requestDeadline) {
    const snubCount = t.s.snubCount + 1
    if (snubCount >= c.dropSnubbedAfter) {
      t.close("snubbed", `${snubCount} request deadlines of ${c.requestTimeout} ms passed without a block`)
      return
    }
    t.set({
      snubbed: true,
      snubCount,
      slowStart: false,
      pipeline: c.minPipeline,
      requestDeadline: now + c.requestTimeout
    })
    t.emit(Upward.RequestTimeout({ blocks: t.s.outstanding.map(blockRef) }))
  }
  // Rate and pipeline.
  const elapsed = now - t.s.lastTickAt
  if (elapsed > 0) {
    const sample = (t.s.tickBytes * 1000) / elapsed
    const rate = t.s.rate === 0 ? sample : t.s.rate * 0.6 + sample * 0.4
    const slowStart = t.s.slowStart && !(sample > 0 && sample <= t.s.lastSample)
    const cap = Math.min(c.maxPipeline, t.s.peerReqq ?? Infinity)
    const pipeline = slowStart
      ? t.s.pipeline
      : Math.max(c.minPipeline, Math.min(cap, Math.ceil((rate * c.targetLatency) / 1000 / Message.blockLength)))
    t.set({ rate, lastSample: sample, slowStart, pipeline, tickBytes: 0, lastTickAt: now })
  }
  if (now - t.s.lastSentAt >= c.keepAliveInterval) t.send(Message.KeepAlive())
  if (t.s.starved) t.set({ starved: false })
  t.topUp()
}

const deadlineLength = (s: PeerState): number => {
  const c = s.config
  switch (s.phase) {
    case "Connecting":
      return c.connectTimeout
    case "Handshaking":
      return c.handshakeTimeout
    case "Introducing":
      return c.introductionTimeout
    default:
      return c.chokedTimeout ?? 0
  }
}
