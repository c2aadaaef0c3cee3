/**
 * The narrow interface a peer session talks upward through (rqbit's `PeerConnectionHandler`, ANCHORS.md (b)): the
 * session owns the socket, framing, timers and the per-peer state machine; the torrent behind this handle owns
 * piece state, the picker and storage, and decides.
 *
 * Every method is synchronous plain JavaScript, called from the session's socket data handler or timer (one JS
 * thread, so calls never interleave). The byte path stays synchronous (THROUGHPUT.md rules 1–2): `blockBuffer` and
 * `onBlock` run per 16 KiB block and must not allocate much; a torrent crosses into Effect per *piece*, e.g. with
 * `Mailbox.unsafeOffer` to its owner fiber when `onBlock` completes a piece.
 *
 * `peer` is the session's key (its `host:port`) in every call.
 */
import type * as Bitfield from "../core/Bitfield.ts"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import type { Features } from "../wire/Handshake.ts"
import type { PeerError } from "./PeerError.ts"
import type { BlockRef } from "./PeerState.ts"

export { PeerError } from "./PeerError.ts"
export type { Reason } from "./PeerError.ts"
export type { BlockRef } from "./PeerState.ts"

export type PeerKey = string

/** What the torrent learns about a peer once its handshake checked out. */
export interface PeerInfo {
  readonly peerId: PeerId
  /** Negotiated by both handshakes. */
  readonly fast: boolean
  readonly extensionProtocol: boolean
  /** Both set the DHT bit. */
  readonly dht: boolean
  readonly direction: "outbound" | "inbound"
  /** Message stream encryption of the connection: "rc4", "plaintext" (an MSE handshake, then plain), or "none". */
  readonly encryption: "rc4" | "plaintext" | "none"
  /** The remote end of the connection (for an inbound peer its port is not its listening port). */
  readonly remote: { readonly host: string; readonly port: number }
  /** What carries the connection: TCP or uTP (BEP 29); absent: TCP (a web seed's HTTP too). */
  readonly transport?: "tcp" | "utp" | undefined
  /** A BEP 19 web seed (an HTTP server, torrent/WebSeed.ts), not a wire session. */
  readonly webSeed?: boolean | undefined
}

/**
 * The torrent's levers on one connected session (given in `onConnected`). Synchronous; each feeds the session's
 * state machine, whose messages leave in the next socket write. Calls after the session closed do nothing.
 */
export interface PeerControl {
  /** Tell the peer we now have piece `index`. */
  readonly sendHave: (index: number) => void
  /** Our interest changed (e.g. we completed everything this peer has, or it announced a piece we need). */
  readonly setInterested: (interested: boolean) => void
  /** The torrent has new blocks to hand out (a peer left, a piece failed): ask `nextRequests` again. */
  readonly requestMore: () => void
  /** Endgame: these requests were answered by someone else. */
  readonly cancel: (blocks: ReadonlyArray<BlockRef>) => void
  /** The choker's decisions. Choking drops nothing the torrent queued: it must forget that peer's requests. */
  readonly choke: () => void
  readonly unchoke: () => void
  /**
   * Answers a request with a piece message (queued with the next write). `data` is copied before it returns, so
   * the caller may reuse its memory at once. Returns false, sending nothing, when the session is closed or we are
   * choking the peer.
   */
  readonly sendBlock: (index: number, begin: number, data: Uint8Array) => boolean
  /** BEP 6 reject of one of the peer's requests (nothing without the fast extension). */
  readonly reject: (block: BlockRef) => void
  /** A BEP 10 extended message with the peer's id for the extension (nothing without the extension protocol). */
  readonly sendExtended: (id: number, payload: Uint8Array) => void
  /** BEP 6 allowed-fast: the peer may request these pieces while we choke it (nothing without the fast extension). */
  readonly allowFast: (indices: ReadonlyArray<number>) => void
  /** Backpressure: stop reading from this peer while the hash/write backlog is over budget. */
  readonly pauseReading: () => void
  readonly resumeReading: () => void
  /** Drop the peer; the session ends with `PeerError` reason "local". */
  readonly close: (detail: string) => void
  /**
   * BEP 52: asks the peer for hashes (a `hash request`; the answer comes to `onHashes`). Only sessions whose
   * handshake set the v2 bit (the handle has `v2Hashes`) decode the answers. Absent where there is no wire.
   */
  readonly requestHashes?: ((request: Metainfo.HashRequest) => void) | undefined
}

/** BEP 52: a peer's answer to one of our `hash request`s. */
export type HashAnswer =
  | (Metainfo.HashRequest & { readonly _tag: "Hashes"; readonly hashes: Uint8Array })
  | (Metainfo.HashRequest & { readonly _tag: "HashReject" })

export interface TorrentHandle {
  readonly infoHash: InfoHashV1
  /** A hybrid's truncated v2 info-hash: peers that negotiate v2 may handshake with it (PeerState `v2InfoHash`). */
  readonly v2InfoHash?: InfoHashV1 | undefined
  readonly peerId: PeerId
  readonly pieceCount: number
  /** Extensions to announce in our handshake (e.g. no `dht` for a private torrent). */
  readonly features: Partial<Features>
  /**
   * Only fetching metadata (BEP 9): `pieceCount` is unknown (0), the peer's pieces are not checked and nothing is
   * requested; extended messages carry the work.
   */
  readonly metadataOnly?: boolean | undefined
  /** Our BEP 10 extension handshake payload for this peer (default: PeerState's minimal one). */
  readonly extensionHandshake?: ((peer: PeerKey, remote: { readonly host: string; readonly port: number }) => Uint8Array) | undefined
  /**
   * BEP 52 (v2 and hybrid torrents): the hashes answering a peer's `hash request` (base hashes then uncles), or
   * `undefined` to reject it. With it, our handshake sets the v2 bit and `hash request`s are decoded and answered.
   */
  readonly v2Hashes?: ((request: Metainfo.HashRequest) => Uint8Array | undefined) | undefined
  /**
   * BEP 52: a request `v2Hashes` did not answer that can be answered later (leaf hashes, from the data on disk):
   * returns `true` and calls `answer` once (with `undefined` to reject), or `false` to reject now.
   */
  readonly v2HashesLater?:
    | ((request: Metainfo.HashRequest, answer: (hashes: Uint8Array | undefined) => void) => boolean)
    | undefined
  /** Our DHT node's UDP port, sent in a BEP 5 `port` message to peers that set the DHT bit. */
  readonly dhtPort?: number | undefined
  /** Our pieces now, for the introduction (bitfield, have-all or have-none). */
  readonly bitfield: () => Bitfield.Bitfield

  /** The handshake checked out; keep `control` to drive this session. */
  readonly onConnected: (peer: PeerKey, info: PeerInfo, control: PeerControl) => void
  /** The peer's pieces. Each returns whether we are interested in this peer now. */
  readonly onPeerBitfield: (peer: PeerKey, bitfield: Bitfield.Bitfield) => boolean
  readonly onPeerHave: (peer: PeerKey, index: number) => boolean
  readonly onPeerHaveAll: (peer: PeerKey) => boolean
  readonly onPeerHaveNone: (peer: PeerKey) => boolean

  /**
   * Up to `max` blocks to request from this peer now (block-aligned, as `Lengths` cuts them); they count as
   * requested from this peer until they arrive or come back through `onChoked`, `onReturned` or `onClosed`.
   * Empty: nothing to request (the session asks again after the next block, tick, `have` or `requestMore`).
   * `only`: the peer chokes us; only blocks of these allowed-fast pieces (BEP 6) may be chosen.
   */
  readonly nextRequests: (peer: PeerKey, max: number, only?: ReadonlyArray<number>) => ReadonlyArray<BlockRef>
  /**
   * Where a requested block arriving now goes: the piece buffer of piece `index` (the session copies the block to
   * byte `begin` of it, in parts as they arrive), or `undefined` to discard the bytes. The buffer must stay valid and
   * unread by others until `onBlock` for this block returns.
   */
  readonly blockBuffer: (peer: PeerKey, index: number, begin: number, length: number) => Uint8Array | undefined
  /**
   * The block is in the buffer `blockBuffer` gave (or was discarded). Returns whether it was kept. The torrent
   * notices a complete piece here and hashes/writes it (in Effect, per piece).
   */
  readonly onBlock: (peer: PeerKey, index: number, begin: number, length: number) => boolean

  /** The peer choked us; `returned` will not be answered (all in-flight requests when BEP 6 is off). */
  readonly onChoked: (peer: PeerKey, returned: ReadonlyArray<BlockRef>) => void
  readonly onUnchoked: (peer: PeerKey) => void
  /** Requests that will not be answered: rejected (BEP 6), or more than the pipeline could take. */
  readonly onReturned: (peer: PeerKey, blocks: ReadonlyArray<BlockRef>) => void
  /** A request deadline passed (the peer is snubbed): these are still in flight here, worth asking elsewhere. */
  readonly onRequestTimeout: (peer: PeerKey, blocks: ReadonlyArray<BlockRef>) => void
  /**
   * The session ended (called exactly once per session, whatever the exit, interruption included):
   * `outstanding` are the requests still in flight, now the torrent's again.
   */
  readonly onClosed: (peer: PeerKey, error: PeerError, outstanding: ReadonlyArray<BlockRef>) => void

  /** Optional: the peer's interest in us (for a choker). */
  readonly onPeerInterest?: ((peer: PeerKey, interested: boolean) => void) | undefined
  /** Optional: a request from a peer we unchoked. Without it they are ignored. */
  readonly onPeerRequest?: ((peer: PeerKey, block: BlockRef) => void) | undefined
  /** Optional: the peer cancelled a request (only while we are not choking it). */
  readonly onPeerCancel?: ((peer: PeerKey, block: BlockRef) => void) | undefined
  /** Optional: BEP 10 messages (id 0 is the extension handshake; others carry our ids). */
  readonly onExtended?: ((peer: PeerKey, id: number, payload: Uint8Array) => void) | undefined
  /** Optional: BEP 52 `hashes` / `hash reject` answering our `hash request`s (`PeerControl.requestHashes`). */
  readonly onHashes?: ((peer: PeerKey, answer: HashAnswer) => void) | undefined
  /** Optional: the peer's DHT port (BEP 5 `port` message). */
  readonly onPeerPort?: ((peer: PeerKey, port: number) => void) | undefined
  /** Optional: BEP 6 suggest-piece. */
  readonly onSuggest?: ((peer: PeerKey, index: number) => void) | undefined
  /** Optional: BEP 6 allowed-fast (the session already requests those pieces while choked when interested). */
  readonly onAllowedFast?: ((peer: PeerKey, index: number) => void) | undefined
}
