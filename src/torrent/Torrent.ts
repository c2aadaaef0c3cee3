/**
 * One torrent's runtime: Checking → Downloading → Complete | Failed. When every wanted piece is verified the
 * torrent flushes storage, publishes `Completed` and, unless `seed` is set, ends its sessions; with `seed` it keeps
 * serving (Uploader.ts: requests, choker, `upLimit`) and accepting inbound peers (`accept`) until its scope closes.
 *
 * This file is the lifecycle and the download side of the byte path; the rest lives in modules named for one
 * concept: `Swarm.ts` (peers: candidates, dialing, backoff, bans, sources, inbound accept), `Finisher.ts` (verify,
 * write, have, strikes and bans), `ResumeSaver.ts` (fast-resume records), `Uploader.ts` (serving, choker),
 * `DownLimit.ts` (download limit), `Extensions.ts` (BEP 10: ut_metadata, PEX).
 *
 * Shape (ARCHITECTURE.md "How a download flows", THROUGHPUT.md design rules):
 * - It implements `TorrentHandle`: sessions call it synchronously from their socket handlers (one JS thread, so no
 *   locks). The `Picker` is the single owner of piece state. Blocks are copied by the session straight into pooled
 *   piece buffers (`blockBuffer`); a block is written by one session at a time.
 * - A completed piece crosses into Effect once, per piece, to the finisher fibers (Finisher.ts). A storage failure
 *   fails the torrent and no later piece is written.
 * - Backpressure: while the pieces waiting for hash/write and those in flight hold more than `backlogBudget` bytes of
 *   buffers, every session stops reading; they resume below half of it (Finisher.ts). Idle buffers are kept up to
 *   the same budget, so the buffers of a download stay within it, reused, whatever the number of peers.
 * - Peers: Swarm.ts, fed by the tracker announce stream, the given peers (`--peer`, magnet `x.pe`), the DHT, PEX
 *   and inbound connections.
 *
 * The no-peers rule: the torrent fails with reason "no-peers" when, for `noPeersTimeout` in a row since it started,
 * no peer has been connected (handshake done) and no tracker has answered an announce. It applies only until the
 * first peer connects or a tracker answers (even with no peers): from then on the torrent waits for peers as long as
 * it runs, retrying the peers it knows and re-announcing (while it has no peer at all, 5 minutes after the last
 * announce or the tracker's min interval, not a whole interval later), as trackers may hand out peers later.
 * Dialing and reconnect backoffs do not stop the clock.
 *
 * While it runs (a daemon's needs):
 * - Introspection, synchronous and cheap: `peers()` (per connected peer: address, client, encryption, direction,
 *   rates over the last 5 s, this connection's bytes, its share of the pieces, choke and interest both ways),
 *   `trackers()` (Announcer's board), `have()`, `rates()` (those of the last `Progress` event).
 * - Control: `setLimits` (own up/down limits, at once), `setMaxPeers`, `setWanted` (the file selection, live),
 *   `setPriorities` (per piece, from file priorities), `prioritize(first, last)` (the streaming window),
 *   `whenVerified(index)`, `reannounce()`. Shared limits come in through `sharedUp`, `sharedDown` and
 *   `connections` (a ConnectionBudget), which the session changes at run time.
 * - Completion after a selection change. `Completed` is published every time the torrent becomes complete: at
 *   start (everything wanted was there), when the last wanted piece is verified, and when deselecting makes the
 *   pieces left unwanted. Selecting more pieces after that makes it incomplete again: `finished` is cleared,
 *   interest comes back, the choker leaves seeding mode, and it downloads (it must still be running, i.e. `seed`,
 *   since without `seed` its sessions end on completion). `done` settles once, the first time.
 */
import * as Clock from "effect/Clock"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Mailbox from "effect/Mailbox"
import * as PubSub from "effect/PubSub"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Bitfield from "../core/Bitfield.ts"
import type * as DhtNode from "../dht/Node.ts"
import type * as Lsd from "../net/Lsd.ts"
import * as InfoHash from "../core/InfoHash.ts"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"
import type * as Tcp from "../net/Tcp.ts"
import type * as PeerSession from "../peer/PeerSession.ts"
import * as PeerState from "../peer/PeerState.ts"
import type { PeerInfo } from "../peer/TorrentHandle.ts"
import * as Picker from "../picker/Picker.ts"
import type * as ResumeStore from "../storage/ResumeStore.ts"
import type * as Storage from "../storage/Storage.ts"
import * as Announcer from "../tracker/Announcer.ts"
import { Tracker } from "../tracker/Tracker.ts"
import type * as ConnectionBudget from "./ConnectionBudget.ts"
import * as DownLimit from "./DownLimit.ts"
import * as Extensions from "./Extensions.ts"
import * as Download from "./Download.ts"
import * as Finisher from "./Finisher.ts"
import * as FlushAhead from "./FlushAhead.ts"
import * as HashExchange from "./HashExchange.ts"
import * as LeafBlame from "./LeafBlame.ts"
import * as Integrity from "./Integrity.ts"
import type * as RateLimit from "./RateLimit.ts"
import * as PieceWaiters from "./PieceWaiters.ts"
import * as ResumeSaver from "./ResumeSaver.ts"
import type * as PeerSource from "./PeerSource.ts"
import * as Swarm from "./Swarm.ts"
import { fromStorage, TorrentError } from "./TorrentError.ts"
import * as TorrentEvent from "./TorrentEvent.ts"
import * as Uploader from "./Uploader.ts"
import * as WebSeed from "./WebSeed.ts"

export { TorrentError } from "./TorrentError.ts"

export interface Options {
  readonly metainfo: Metainfo.Metainfo
  readonly storage: Storage.StorageShape
  readonly peerId: PeerId
  /** The port announced to trackers: the listening port when there is one (default 6881). */
  readonly port?: number | undefined
  /** The port peers outside reach us on, when a port mapping says (announced instead of `port` while defined). */
  readonly externalPort?: (() => number | undefined) | undefined
  /** Peers to dial besides the trackers' (e.g. `--peer`, magnet `x.pe`). */
  readonly peers?: ReadonlyArray<PeerSource.Address> | undefined
  /** Pieces to download (default: all); see FileSelection.ts. */
  readonly wanted?: Bitfield.Bitfield | undefined
  /** Connected or dialing peers at most (default 50). */
  readonly maxPeers?: number | undefined
  /** Announce to the metainfo's trackers (default true). */
  readonly trackers?: boolean | undefined
  /** See the no-peers rule above (default 60 s). */
  readonly noPeersTimeout?: Duration.DurationInput | undefined
  /**
   * Bytes of piece buffers (pieces waiting for hash/write, and in flight) before sessions stop reading, and of idle
   * ones kept for reuse (default 28 MiB: one fast peer's ~4 MiB in flight and the 24 MiB backlog of before).
   */
  readonly backlogBudget?: number | undefined
  /** Completed pieces verified and written at the same time (default 4). */
  readonly finishConcurrency?: number | undefined
  /**
   * Waits between reconnects of a peer never connected in this run; the peer is given up when the schedule ends
   * (default 1 s doubling, 5 times).
   */
  readonly reconnect?: Schedule.Schedule<unknown> | undefined
  /** Waits between reconnects of a peer that did connect in this run (default 1 s doubling, at most 60 s, forever). */
  readonly reconnectKnown?: Schedule.Schedule<unknown> | undefined
  /** Interval of `Progress` events (default 1 s). */
  readonly progressInterval?: Duration.DurationInput | undefined
  readonly peerConfig?: Partial<PeerState.PeerConfig> | undefined
  /** Passed to every session (tests). */
  readonly dial?: PeerSession.ConnectOptions["dial"]
  /** Message stream encryption of outgoing connections (PeerSession.ts); default none (plain BitTorrent). */
  readonly encryption?: PeerSession.ConnectOptions["encryption"]
  /** Publish here instead of a fresh PubSub (so a caller can subscribe before anything happens). */
  readonly events?: PubSub.PubSub<TorrentEvent.TorrentEvent> | undefined
  /** Keep serving peers after completion until the scope closes (default false: sessions end on completion). */
  readonly seed?: boolean | undefined
  /** Upload limit, bytes/s (0 or absent: unlimited). */
  readonly upLimit?: number | undefined
  /** Download limit, bytes/s (0 or absent: unlimited): sessions stop reading while it is exceeded. */
  readonly downLimit?: number | undefined
  /** Pieces already verified (e.g. by the caller's own check): the resume check is skipped. */
  readonly have?: Bitfield.Bitfield | undefined
  /** The file versions (`Storage.pieceVersion`) those pieces were verified at: the uploader need not hash them again. */
  readonly verified?: ReadonlyMap<number, string> | undefined
  /**
   * Fast-resume record (ResumeStore.ts): on start, pieces it trusts are had without hashing and only the others are
   * checked; it is saved every `resumeSave.interval` (default 10 s) when pieces were verified since, as soon as
   * `resumeSave.bytes` (default 256 MiB: each save flushes the written files, which costs CPU and page-cache
   * memory on fast downloads; a crash only costs re-hashing what the last record did not vouch for) more were, on completion, and when the scope closes (bounded, 5 s). Each
   * save snapshots the verified pieces, flushes storage, then writes (ResumeRecord.ts "Saving").
   */
  readonly resume?: ResumeStore.ResumeStore | undefined
  /** Our listening port when we listen: the `p` of our BEP 10 handshake (PEX peers learn it). */
  readonly listenPort?: number | undefined
  /**
   * A DHT node (never used for a private torrent): get_peers lookups feed the candidates, our listening port is
   * announced, peers' BEP 5 `port` messages are pinged into its table, and the handshake sets the DHT bit.
   */
  readonly dht?: DhtNode.Node | undefined
  /** Between DHT lookups: default 5 min while below half the peer limit, 15 min otherwise. */
  readonly dhtInterval?: Duration.DurationInput | undefined
  /**
   * BEP 14 local service discovery (never for a private torrent): the torrent is announced on the LAN while it runs,
   * and peers announcing it there become candidates.
   */
  readonly lsd?: Lsd.Lsd | undefined
  /** BEP 11 peer exchange with peers that support it (default true; never for a private torrent). */
  readonly pex?: boolean | undefined
  readonly resumeSave?: { readonly interval?: Duration.DurationInput; readonly bytes?: number } | undefined
  /**
   * Bytes of verified pieces between background flushes of the written data (FlushAhead.ts; default 32 MiB), so
   * that completion's flush has only the rest to wait for; `Infinity` leaves it all to that flush.
   */
  readonly flushAhead?: number | undefined
  /**
   * Between checks that the files are still ours (`Storage.audit`: none deleted, replaced or cut short by something
   * else); default 5 s. Also run on completion and when a piece read for a peer fails its hash.
   */
  readonly auditInterval?: Duration.DurationInput | undefined
  /** The session's upload limit shared by all its torrents (charged besides `upLimit`). */
  readonly sharedUp?: RateLimit.Bucket | undefined
  /** The session's download limit shared by all its torrents (charged besides `downLimit`). */
  readonly sharedDown?: RateLimit.Bucket | undefined
  /** The session's connection cap shared by all its torrents (besides `maxPeers`). */
  readonly connections?: ConnectionBudget.ConnectionBudget | undefined
  /** Piece priorities at start (default all "normal"); see `setPriorities`. */
  readonly priorities?: ReadonlyArray<Picker.Priority> | undefined
  /**
   * BEP 19 web seeds to download from besides the peers (default the metainfo's `url-list`; empty: none). See
   * WebSeed.ts.
   */
  readonly webSeeds?: ReadonlyArray<string> | undefined
  /** Web seed tuning (tests): connections per server, backoff, idle timeout, redirects. */
  readonly webSeedConfig?: Omit<WebSeed.Options, "urls" | "metainfo" | "handle" | "finished" | "onState"> | undefined
}

/** See `Torrent.search`. */
export interface Search {
  /** Peer addresses known (from any source), banned ones left out. */
  readonly candidates: number
  /** Connections being set up (dialled or accepted, handshake not done). */
  readonly dialling: number
  /** How the latest connection attempt ended ("addr: message"). */
  readonly lastAttempt: string | undefined
  /** Looking in the DHT / on the local network. */
  readonly dht: boolean
  readonly lsd: boolean
}

export interface Stats {
  /** Payload bytes of accepted blocks. */
  readonly downloaded: number
  readonly uploaded: number
  readonly peers: number
  readonly have: number
  readonly pieces: number
  readonly bytesLeft: number
  /** Bytes of wanted pieces. */
  readonly total: number
}

/** One connected peer, as `peers()` shows it (Download.ts). */
export type PeerStatus = Download.PeerStatus

export interface Limits {
  /** Bytes/s, 0 unlimited; absent: unchanged. */
  readonly up?: number | undefined
  readonly down?: number | undefined
}

export interface Torrent {
  readonly events: PubSub.PubSub<TorrentEvent.TorrentEvent>
  /**
   * Succeeds when every wanted piece is verified and flushed (the first time: see "Completion after a selection
   * change"); fails when the torrent cannot finish.
   */
  readonly done: Effect.Effect<void, TorrentError>
  /**
   * Fails with the error that stopped the torrent, whenever that happens — also after completion, while seeding
   * (e.g. a file deleted under it); never succeeds. A seeder waits on this.
   */
  readonly failed: Effect.Effect<never, TorrentError>
  readonly stats: () => Stats
  /** Payload bytes exchanged with each peer (by peer id) so far, disconnected ones included. */
  readonly transfers: () => ReadonlyArray<Uploader.PeerTransfer>
  /**
   * Payload bytes of accepted blocks per peer address (`host:port` as dialled, or as an inbound peer connected from)
   * in this run, peers gone since included; most bytes first.
   */
  downloadedFrom(): ReadonlyArray<{ address: string; bytes: number }>
  /**
   * Runs an inbound session on `connection` (`prefix`: the handshake bytes already read) in the torrent's scope;
   * `release` runs when it ends. False (and nothing run) when the torrent is not running or at its peer limit (its
   * own or the shared one).
   */
  readonly accept: (
    connection: Tcp.Connection,
    prefix: Uint8Array,
    release: Effect.Effect<void>,
    encryption?: PeerInfo["encryption"]
  ) => Effect.Effect<boolean>

  // -- introspection (synchronous, cheap) --

  /** Every connected peer (handshake done). */
  readonly peers: () => ReadonlyArray<PeerStatus>
  /** Every web seed with its state (empty before the check is over, and without web seeds). */
  readonly webSeeds: () => ReadonlyArray<WebSeed.ServerStatus>
  /** Every tracker of the metainfo with its announce state (idle ones too); empty with `trackers: false`. */
  readonly trackers: () => ReadonlyArray<Announcer.TrackerState>
  /** What it does to find peers: for a "waiting for peers" line that says what is being tried. */
  readonly search: () => Search
  /** A copy of the verified pieces. */
  readonly have: () => Bitfield.Bitfield
  /** Bytes/s of the last `Progress` event (0 before the first). */
  readonly rates: () => { readonly downRate: number; readonly upRate: number }
  /** The pieces wanted now. A copy. */
  readonly wanted: () => Bitfield.Bitfield

  // -- control --

  /** The torrent's own limits, at once (the shared ones are the session's). */
  readonly setLimits: (limits: Limits) => Effect.Effect<void>
  readonly limits: () => { readonly up: number; readonly down: number }
  /** Connections at most for this torrent; lowering it closes nobody, it only stops new ones. */
  readonly setMaxPeers: (max: number) => Effect.Effect<void>
  /**
   * The file selection, live (`pieces`: one bit per piece). Deselected pieces are no longer requested and their
   * outstanding requests are cancelled (a partly received piece is dropped); newly wanted pieces become Missing;
   * interest is updated and completion re-evaluated (see the header). `recheck`: pieces to hash again from storage
   * if they are verified — those straddling a file that becomes wanted now, whose part in that file storage
   * dropped while it was unwanted (FileSelection.newlyWanted); a piece that fails is fetched again. Fails with
   * "invalid-selection" when a bitfield's size is not the piece count.
   */
  readonly setWanted: (
    pieces: Bitfield.Bitfield,
    options?: { readonly recheck?: Bitfield.Bitfield | undefined }
  ) => Effect.Effect<void, TorrentError>
  /**
   * Priority per piece (from file priorities: a piece takes its highest file's): new pieces start high first, then
   * normal, then low, rarest-first within a level. Fails with "invalid-selection" on a length that is not the piece
   * count.
   */
  readonly setPriorities: (priorities: ReadonlyArray<Picker.Priority>) => Effect.Effect<void, TorrentError>
  /**
   * Streaming: pieces `first..last` go before everything else, in order (the next few fetched in parallel by
   * several peers; the range is the caller's read-ahead). Replaces the previous window; `last < first` clears it.
   * Pieces not wanted are skipped (select them first).
   */
  readonly prioritize: (first: number, last: number) => Effect.Effect<void>
  /**
   * Completes when piece `index` is verified (at once if it is); fails with the torrent's error if it stops
   * failing, with "stopped" when its scope closes first, with "invalid-selection" for an index out of range.
   */
  readonly whenVerified: (index: number) => Effect.Effect<void, TorrentError>
  /** Announces to the trackers now (the wait for the next announce ends). */
  readonly reannounce: () => Effect.Effect<void>
}

/** A sliding event hub: slow subscribers lose old events, the torrent never waits for them. */
export const makeEvents = (capacity = 4096): Effect.Effect<PubSub.PubSub<TorrentEvent.TorrentEvent>> =>
  PubSub.sliding<TorrentEvent.TorrentEvent>(capacity)

/** Default reconnect backoff of a peer never connected: 1 s, 2 s, 4 s, 8 s, 16 s, then the peer is given up. */
export const defaultReconnect: Schedule.Schedule<unknown> = Swarm.defaultReconnect

/** Default reconnect backoff of a peer that connected before: 1 s, 2 s, 4 s … 60 s, then every 60 s, forever. */
export const defaultReconnectKnown: Schedule.Schedule<unknown> = Swarm.defaultReconnectKnown

const storageFailure = fromStorage

const invalid = (detail: string) => new TorrentError({ reason: "invalid-selection", detail })

/**
 * Starts the torrent in the current scope: resume check, then downloading. Closing the scope stops everything
 * (sessions closed, `stopped` announced with a bound); data verified so far stays on disk.
 */
export const start = (options: Options): Effect.Effect<Torrent, never, Scope.Scope | Tracker> =>
  Effect.gen(function*() {
    const m = options.metainfo
    const storage = options.storage
    const events = options.events ?? (yield* makeEvents())
    const result = yield* Deferred.make<void, TorrentError>()
    const stopped = yield* Deferred.make<never, TorrentError>()
    const clock = yield* Effect.clock
    const nowMs = () => clock.unsafeCurrentTimeMillis()
    const publish = (e: TorrentEvent.TorrentEvent) => {
      events.unsafeOffer(e)
    }
    const noPeersMs = Duration.toMillis(options.noPeersTimeout ?? Duration.seconds(60))
    const pieceSize = (i: number) => Math.min(m.pieceLength, m.totalLength - i * m.pieceLength)
    const wanted = options.wanted === undefined ? Bitfield.full(m.pieceCount) : Bitfield.copy(options.wanted)
    let total = 0
    const recountTotal = () => {
      total = 0
      for (let i = 0; i < m.pieceCount; i++) if (Bitfield.has(wanted, i)) total += pieceSize(i)
    }
    recountTotal()
    /** Priorities and the streaming window, kept for the picker made after the check. */
    const priorities: Array<Picker.Priority> = Array.from({ length: m.pieceCount }, (_, i) =>
      options.priorities?.[i] ?? "normal")
    let window: Picker.Window | undefined

    // --- piece state: the picker (Download.ts holds it; set after the check), verified pieces ---
    const have = Bitfield.make(m.pieceCount)
    /** Completes when the download finishes here (not when it was complete from the start). */
    const downloadedNow = yield* Deferred.make<void>()
    let finished = false
    /** The run is over (failed, stopped, or complete without `seed`): nothing downloads any more. */
    let ended = false
    let lastRates = { downRate: 0, upRate: 0 }

    const dht = m.private ? undefined : options.dht
    const ext = Extensions.make({
      metadata: () => m.rawInfo,
      isPrivate: m.private || options.pex === false,
      listenPort: options.listenPort,
      externalPort: options.externalPort,
      clientName: PeerState.config(options.peerConfig).clientName,
      // What the uploader queues per peer (not our own pipeline's depth, 250: advertised, it held a libtorrent leecher
      // to 250 requests in flight to us, against 500 to a libtorrent seeder)
      reqq: Uploader.MAX_QUEUED,
      onPeers: (_from, found) => {
        for (const p of found) swarm.add(p.ip, p.port, "pex")
      },
      onPunch: (_from, to) => swarm.punch(to.host, to.port),
      onHolepunchLog: (line) => void holepunchLog.unsafeOffer(line)
    }, nowMs)
    /** BEP 55 lines from the synchronous handlers, logged by a fiber (started with the swarm). */
    const holepunchLog = yield* Mailbox.make<string>({ capacity: 256, strategy: "dropping" })
    let lastPeerSeen = nowMs()
    // BEP 52 beyond the piece layers: leaf hashes answered from our data, and asked of peers to blame bad blocks
    const exchange = m.version === "v1" ? undefined : yield* HashExchange.make({
      metainfo: m,
      readPiece: storage.readPiece,
      have,
      peers: () => download.peers,
      hasPiece: (peer, index) => download.picker()?.peerHasPiece(peer, index) ?? false
    })
    const bufferBudget = options.backlogBudget ?? 28 * 1024 * 1024
    const download = Download.make({
      metainfo: m,
      idleBufferBytes: bufferBudget,
      peerId: options.peerId,
      have,
      ext,
      dhtPort: dht?.local.port,
      // v2 and hybrid torrents set the v2 bit and answer hash requests; a v2-capable peer may then use a hybrid's
      // truncated v2 hash in its handshake (libtorrent answers our v1 handshake with it), which is accepted
      v2Hashes: Metainfo.hashServer(m),
      v2InfoHash: m.version === "hybrid" && m.infoHashV2 !== undefined ? InfoHash.truncatedV2(m.infoHashV2) : undefined,
      v2HashesLater: exchange?.later,
      onHashes: exchange?.onHashes,
      finished: () => finished,
      onPiece: (index, data, senders) => finisher.offer(index, data, senders),
      paused: () => finisher.paused(),
      onConnected: (peer) => {
        swarm.connected(peer)
        lastPeerSeen = nowMs()
      },
      onPeerPort: (host, port) => swarm.pingDht(host, port),
      originOf: (peer) => swarm.origin(peer),
      publish
    })
    const peers = download.peers
    const picker = download.picker

    const bytesLeft = () => picker()?.progress().bytesLeft ?? total
    const stats = (): Stats => {
      const p = picker()?.progress()
      return {
        downloaded: download.downloaded(),
        uploaded: uploader.uploaded(),
        peers: peers.size,
        have: Bitfield.count(have),
        pieces: m.pieceCount,
        bytesLeft: p?.bytesLeft ?? total,
        total
      }
    }

    // --- storage failures: any of them ends the torrent (piece writes, flushes, reads for peers, audits) ---
    let storageFailed = false
    /** Ends the torrent with `error` (its `done` if not settled yet, and `failed`, also while seeding). */
    const stop = (error: TorrentError): Effect.Effect<void> =>
      Effect.asVoid(Effect.zipRight(Deferred.fail(result, error), Deferred.fail(stopped, error)))
    const failStorage = (e: Storage.StorageError): Effect.Effect<void> =>
      e.reason === "closed" ? Effect.void : Effect.suspend(() => {
        storageFailed = true
        return stop(storageFailure(e))
      })
    const integrity = Integrity.make({ metainfo: m, storage, have, wanted, failStorage })
    const audit = integrity.audit

    const uploader = yield* Uploader.make({
      storage,
      onCorrupt: (index) => Effect.zipRight(audit, integrity.lostPiece(index)),
      onReadError: failStorage,
      onBadDescriptor: (e) =>
        stop(
          new TorrentError({
            reason: "storage",
            detail: `storage failed: a file descriptor was invalid (closed twice somewhere in the process?): ${
              e instanceof Error ? e.message : String(e)
            }`,
            cause: e
          })
        ),
      pieceCount: m.pieceCount,
      pieceLength: m.pieceLength,
      totalLength: m.totalLength,
      has: (i) => Bitfield.has(have, i),
      seeding: () => finished,
      upLimit: options.upLimit,
      sharedUp: options.sharedUp,
      verified: options.verified,
      allowedFast: { infoHash: m.infoHash }
    })
    const downLimit = yield* DownLimit.makeAdjustable(options.downLimit ?? 0, options.sharedDown)
    const served = downLimit.wrap(uploader.wrap(download.handle))
    const seed = options.seed === true

    // --- peers ---
    const swarm = yield* Swarm.make({
      handle: served,
      // a hybrid's v2-swarm peers are dialled with its v2 hash (announced in both swarms below)
      v2Swarm: m.version === "hybrid" && m.infoHashV2 !== undefined ? InfoHash.truncatedV2(m.infoHashV2) : undefined,
      maxPeers: options.maxPeers ?? 50,
      peerConfig: options.peerConfig,
      dial: options.dial,
      encryption: options.encryption,
      reconnect: options.reconnect ?? defaultReconnect,
      reconnectKnown: options.reconnectKnown ?? defaultReconnectKnown,
      budget: options.connections,
      open: () => !finished || seed,
      seeding: () => finished,
      close: (peer, why) => peers.get(peer)?.control.close(why),
      onBanned: (addr, reason) => publish(TorrentEvent.PeerBanned({ addr, reason })),
      onDialFailed: (host, port) => void ext.dialFailed({ host, port })
    })

    let webSeeds: WebSeed.WebSeeds | undefined

    // --- whenVerified (PieceWaiters.ts) ---
    const waiters = PieceWaiters.make(Deferred.await(stopped))
    yield* Effect.addFinalizer(() => Effect.sync(waiters.close))

    // --- completion: when every wanted piece is verified (again, after a selection change) ---
    const completeIfDone = Effect.suspend(() => {
      const p = picker()
      if (p === undefined || !p.isComplete() || finished) return Effect.void
      finished = true
      return Effect.gen(function*() {
        yield* storage.flush
        yield* storage.audit(integrity.fileComplete) // nothing deleted or cut short under us since it was written
        // Seeding reads through the uploader's cache: the receive buffers would sit idle (32 MiB per torrent at
        // most; a daemon's 200 complete torrents held ~100 MiB of them, bench/daemon-scale.ts).
        download.pool.trim()
        publish(TorrentEvent.Completed())
        yield* Deferred.succeed(downloadedNow, undefined)
        yield* Deferred.succeed(result, undefined)
      })
    })

    // --- the finishers (the owner): verify, write, announce `have`, or strike and ban ---
    const flushAhead = yield* FlushAhead.make({
      flush: storage.flush,
      every: options.flushAhead,
      failStorage,
      storageFailed: () => storageFailed
    })
    const finisher = yield* Finisher.make({
      storage,
      picker: () => picker()!,
      have,
      pool: download.pool,
      budget: bufferBudget,
      inFlightBytes: download.inFlightBytes,
      concurrency: options.finishConcurrency ?? 4,
      publish,
      sendHave: (index) => {
        for (const r of peers.values()) r.control.sendHave(index)
      },
      ban: swarm.ban,
      kickAll: download.kickAll,
      onBacklog: download.setPaused,
      onVerified: (index) => {
        waiters.verified(index)
        flushAhead.verified(pieceSize(index))
      },
      after: Effect.zipRight(Effect.sync(download.updateInterest), completeIfDone),
      failStorage,
      storageFailed: () => storageFailed,
      repair: exchange === undefined ? undefined : (index, data, senders) => repairPiece(exchange, index, data, senders)
    })

    /**
     * BEP 52 per-block blame: the failed piece's leaf hashes (from a peer, verified) name its bad blocks; only their
     * senders are blamed (and banned: the hashes prove them wrong), the good blocks stay and the rest is fetched.
     */
    function repairPiece(
      ex: HashExchange.HashExchange,
      index: number,
      data: Uint8Array,
      senders: ReadonlyArray<string | undefined>
    ): Effect.Effect<boolean> {
      return Effect.gen(function*() {
        const p = Metainfo.v2Piece(m, index)
        const pk = picker()
        if (p === undefined || pk === undefined) return false
        const suspects = [...new Set(senders.filter((s): s is string => s !== undefined))]
        // one sender and nobody else to ask: it is blamed alone anyway (the usual way)
        if (suspects.length < 2 && !ex.canAsk(index, suspects)) return false
        const leaves = yield* ex.askLeaves(index, suspects)
        if (leaves === undefined) return false
        const bad = LeafBlame.badBlocks(data, p.dataLength, leaves)
        const blamed = [...new Set(bad.flatMap((b) => (senders[b] === undefined ? [] : [senders[b]!])))]
        if (bad.length === 0 || !pk.pieceFailedBlocks(index, bad, blamed)) return false
        const received = new Uint8Array(senders.length).fill(1)
        const kept = [...senders]
        for (const b of bad) {
          received[b] = 0
          kept[b] = undefined
        }
        if (bad.length < senders.length) download.restoreSlot(index, data, received, kept)
        else download.pool.release(data)
        publish(TorrentEvent.PieceFailed({ index, peers: blamed, blocks: bad }))
        yield* Effect.logWarning(`piece ${index}: blocks ${bad.join(", ")} failed their leaf hashes`).pipe(
          Effect.annotateLogs({ peers: blamed.join(",") })
        )
        for (const peer of blamed) yield* swarm.ban(peer, "sent a block that failed its BEP 52 leaf hash")
        download.kickAll()
        return true
      })
    }

    // --- trackers ---
    const board = yield* Announcer.makeBoard(options.trackers === false ? [] : m.trackers)
    const tracker = yield* Tracker
    const observed = Tracker.of({
      announce: (url, req) =>
        tracker.announce(url, req).pipe(
          Effect.tapError((e) => Effect.sync(() => publish(TorrentEvent.TrackerError({ url, message: e.message }))))
        ),
      scrape: tracker.scrape
    })
    // A hybrid is announced in its v2 swarm too (the truncated v2 hash, as libtorrent does): peers that know only its
    // v2 hash (a btmh magnet) find us. That stream has its own board (the trackers' states shown are the v1 ones).
    const v2Swarm = m.version === "hybrid" && m.infoHashV2 !== undefined ? InfoHash.truncatedV2(m.infoHashV2) : undefined
    const v2Board = v2Swarm === undefined || options.trackers === false ? undefined : yield* Announcer.makeBoard(m.trackers)
    const announcesOf = (infoHash: InfoHashV1, onBoard: Announcer.Board) => swarm.announce({
      tiers: m.trackers,
      infoHash,
      peerId: options.peerId,
      port: options.port ?? 6881,
      currentPort: options.externalPort,
      crypto: options.encryption?.policy === "require"
        ? "required"
        : options.encryption?.policy === "prefer"
        ? "supported"
        : undefined,
      stats: {
        uploaded: Effect.sync(() => uploader.uploaded()),
        downloaded: Effect.sync(download.downloaded),
        left: Effect.sync(bytesLeft)
      },
      completed: Deferred.await(downloadedNow),
      // No peer connected: ask the trackers again early (Announcer `starving`).
      starving: Effect.suspend(() => {
        const starving = () => peers.size === 0 && !finished
        return starving() ? Effect.void : Effect.sleep(Duration.seconds(1)).pipe(Effect.repeat({ until: starving }))
      }),
      board: onBoard
    }, (batch) => {
      if (batch.warning !== undefined) publish(TorrentEvent.TrackerWarning({ url: batch.url, message: batch.warning }))
    }).pipe(Effect.provideService(Tracker, observed))
    const announces = v2Swarm === undefined || v2Board === undefined
      ? announcesOf(m.infoHash, board)
      : Effect.all([announcesOf(m.infoHash, board), announcesOf(v2Swarm, v2Board)], { concurrency: 2, discard: true })

    const progressMs = Duration.toMillis(options.progressInterval ?? Duration.seconds(1))
    const ticker = Effect.gen(function*() {
      let lastBytes = download.downloaded()
      let lastUp = uploader.uploaded()
      let lastAt = yield* Clock.currentTimeMillis
      const tickMs = Math.max(50, Math.min(progressMs, noPeersMs / 4))
      let sinceProgress = 0
      let sincePex = 0
      let sinceSample = 1000
      for (;;) {
        yield* Effect.sleep(Duration.millis(tickMs))
        const now = yield* Clock.currentTimeMillis
        sincePex += tickMs
        if (sincePex >= 5_000) {
          sincePex = 0
          ext.tick(nowMs())
        }
        sinceSample += tickMs
        if (sinceSample >= 1000) {
          sinceSample = 0
          download.sampleRates(now, uploader.counters)
        }
        if (peers.size > 0) lastPeerSeen = nowMs()
        else if (
          !finished && !swarm.everConnected() && !swarm.trackerAnswered() && nowMs() - lastPeerSeen >= noPeersMs
        ) {
          const lastAttempt = swarm.lastAttempt()
          const detail = `no peers to download from within ${Duration.format(Duration.millis(noPeersMs))}` +
            (lastAttempt === undefined ? "" : ` (last attempt: ${lastAttempt})`)
          const error = new TorrentError({ reason: "no-peers", detail })
          yield* Deferred.fail(stopped, error)
          return yield* Deferred.fail(result, error)
        }
        sinceProgress += tickMs
        if (sinceProgress >= progressMs) {
          sinceProgress = 0
          const s = stats()
          const rate = now > lastAt ? ((s.downloaded - lastBytes) * 1000) / (now - lastAt) : 0
          const upRate = now > lastAt ? ((s.uploaded - lastUp) * 1000) / (now - lastAt) : 0
          lastBytes = s.downloaded
          lastUp = s.uploaded
          lastAt = now
          lastRates = { downRate: Math.round(rate), upRate: Math.round(upRate) }
          publish(TorrentEvent.Progress({ ...s, ...lastRates }))
        }
      }
    })

    const auditEvery = options.auditInterval ?? Duration.seconds(5)
    const auditor = Effect.forever(Effect.zipRight(Effect.sleep(auditEvery), audit))

    // --- fast resume (ResumeSaver.ts); its save on exit is added before the run fiber is forked, so it runs after
    // that fiber has been interrupted ---
    let checkDone = false
    const saver = options.resume === undefined ? undefined : yield* ResumeSaver.make({
      store: options.resume,
      storage,
      have,
      pieceLength: m.pieceLength,
      interval: options.resumeSave?.interval,
      bytes: options.resumeSave?.bytes,
      finished: () => finished,
      failStorage,
      storageFailed: () => storageFailed,
      stop,
      ready: () => checkDone,
      now: nowMs
    })

    const run = Effect.gen(function*() {
      // Checking: what is already in the output directory.
      const total0 = m.pieceCount
      let lastEmit = 0
      if (options.have !== undefined) {
        for (const i of Bitfield.indices(options.have)) Bitfield.set(have, i)
        publish(TorrentEvent.Checking({ checked: total0, total: total0 }))
      } else {
        let trusted: Bitfield.Bitfield | undefined
        if (options.resume !== undefined) {
          const loaded = yield* options.resume.load
          trusted = loaded.trusted
          for (const i of Bitfield.indices(trusted)) Bitfield.set(have, i)
          const n = Bitfield.count(trusted)
          const changed = loaded.changed.length > 0 ? `, ${loaded.changed.length} changed file(s)` : ""
          yield* Effect.logDebug(
            `resume: ${n} piece(s) trusted, ${total0 - n} re-checked (record ${loaded.status}${changed})`
          )
        }
        yield* (trusted === undefined ? storage.checkStream : storage.checkStreamExcept(trusted)).pipe(
          Stream.runForEachChunk((chunk) =>
            Effect.sync(() => {
              for (const p of chunk) {
                if (p.ok) Bitfield.set(have, p.index)
                const now = nowMs()
                if (p.checked === p.total || now - lastEmit >= 100) {
                  lastEmit = now
                  publish(TorrentEvent.Checking({ checked: p.checked, total: p.total }))
                }
              }
            })
          )
        )
      }
      if (total0 === 0) publish(TorrentEvent.Checking({ checked: 0, total: 0 }))
      checkDone = true
      const p = Picker.make({
        pieceCount: m.pieceCount,
        pieceLength: m.pieceLength,
        totalLength: m.totalLength,
        wanted,
        have
      })
      download.setPicker(p)
      priorities.forEach((level, i) => level !== "normal" && p.setPriority(i, level))
      p.setWindow(window)
      publish(TorrentEvent.Started({ pieces: m.pieceCount, have: Bitfield.count(have), bytesLeft: bytesLeft() }))
      if (p.isComplete()) {
        finished = true
        yield* storage.flush
        publish(TorrentEvent.Completed())
        if (!seed) return
        yield* Deferred.succeed(result, undefined)
      }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* swarm.start
        lastPeerSeen = nowMs()
        // A defect in a finisher (e.g. the hash worker died under a piece: Hasher.ts fails its job with a defect)
        // ends verifying for good: the torrent stops with it (it used to stall, downloading with nobody verifying).
        yield* Effect.forkScoped(finisher.run.pipe(
          Effect.catchAllCause((cause) => {
            if (Cause.isInterruptedOnly(cause)) return Effect.void
            const e = Cause.squash(cause)
            const detail = `verifying or writing a piece failed: ${e instanceof Error ? e.message : String(e)}`
            return Effect.zipRight(
              Effect.logError(detail, cause),
              stop(new TorrentError({ reason: "storage", detail, cause: e }))
            )
          })
        ))
        yield* Effect.forkScoped(ticker)
        yield* Effect.forkScoped(
          holepunchLog.take.pipe(Effect.flatMap((line) => Effect.logInfo(line)), Effect.forever, Effect.ignore)
        )
        if (saver !== undefined) yield* Effect.forkScoped(saver.run)
        yield* Effect.forkScoped(flushAhead.run)
        yield* Effect.forkScoped(auditor)
        if (options.trackers !== false && m.trackers.length > 0) yield* Effect.forkScoped(announces)
        if (dht !== undefined) {
          // a hybrid in both swarms, as with trackers
          for (const infoHash of v2Swarm === undefined ? [m.infoHash] : [m.infoHash, v2Swarm]) {
            yield* Effect.forkScoped(swarm.dht(dht, {
              infoHash,
              interval: () =>
                options.dhtInterval ?? (peers.size < swarm.maxPeers() / 2 ? Duration.minutes(5) : Duration.minutes(15)),
              announcePort: options.listenPort
            }))
          }
        }
        if (options.lsd !== undefined && !m.private) {
          const lsd = options.lsd
          // a hybrid is announced in both swarms, as libtorrent does (its v2 peers know only the truncated v2 hash)
          const hashes = m.version === "hybrid" && m.infoHashV2 !== undefined
            ? [m.infoHash, InfoHash.truncatedV2(m.infoHashV2)]
            : [m.infoHash]
          for (const h of hashes) yield* lsd.register(h, (host, port) => swarm.add(host, port, "lsd"))
        }
        for (const a of options.peers ?? []) swarm.add(a.host, a.port, a.source ?? "manual")
        const urls = options.webSeeds ?? m.webSeeds
        if (urls.length > 0) {
          webSeeds = yield* WebSeed.start({
            ...options.webSeedConfig,
            urls,
            metainfo: m,
            handle: served,
            finished: () => finished,
            onState: (url, state, error) => {
              // (a ban for bad pieces is published by the swarm)
              if (state._tag === "Dropped" && error !== undefined) {
                publish(TorrentEvent.PeerBanned({ addr: url, reason: state.reason }))
              }
            }
          })
        }
        yield* Deferred.await(result)
        if (seed) yield* Deferred.await(stopped) // serve until the scope closes, or a failure stops the torrent
      }))
    }).pipe(
      Effect.catchTag("StorageError", (e) => Effect.fail(storageFailure(e))),
      Effect.catchTag("ResumeError", (e) => Effect.fail(ResumeSaver.resumeFailure(e))),
      Effect.ensuring(Effect.sync(() => {
        finished = true
        ended = true
      }))
    )

    yield* Effect.forkScoped(run.pipe(
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.zipRight(
          Deferred.done(result, exit),
          exit._tag === "Failure" ? Deferred.failCause(stopped, exit.cause) : Effect.void
        )
      )
    ))

    // --- control ---
    const setWanted = (pieces: Bitfield.Bitfield, o?: { readonly recheck?: Bitfield.Bitfield | undefined }) =>
      Effect.suspend(() => {
        if (pieces.size !== m.pieceCount || (o?.recheck !== undefined && o.recheck.size !== m.pieceCount)) {
          return Effect.fail(invalid(`a selection of ${pieces.size} pieces for a torrent of ${m.pieceCount}`))
        }
        for (let i = 0; i < m.pieceCount; i++) Bitfield.has(pieces, i) ? Bitfield.set(wanted, i) : Bitfield.clear(wanted, i)
        recountTotal()
        const p = picker()
        if (p === undefined) return Effect.void // the picker is made from `wanted` after the check
        for (let i = 0; i < m.pieceCount; i++) {
          const w = Bitfield.has(pieces, i)
          if (p.isWanted(i) === w) continue
          download.sendCancels(p.setWanted(i, w))
          if (!w && p.pieceState(i) !== "InFlight") download.dropSlot(i)
        }
        const recheck = o?.recheck === undefined
          ? []
          : [...Bitfield.indices(o.recheck)].filter((i) => Bitfield.has(have, i) && Bitfield.has(wanted, i))
        return Effect.forEach(recheck, (i) =>
          storage.readPiece(i).pipe(
            Effect.flatMap((data) => storage.verifyPiece(i, data)),
            Effect.flatMap((v) =>
              Effect.sync(() => {
                download.pool.release(v.data)
                if (v.ok) return
                Bitfield.clear(have, i)
                p.pieceLost(i)
              })
            )
          ), { discard: true }).pipe(
            Effect.zipRight(reevaluate(p)),
            Effect.catchTag("StorageError", failStorage)
          )
      })
    /** After a selection change: completion either way, interest, requests. */
    const reevaluate = (p: Picker.Picker) =>
      Effect.suspend(() => {
        if (finished && !p.isComplete() && !ended) {
          // More to download: leave seeding, become interested again, dial again.
          finished = false
          swarm.wake()
        }
        download.updateInterest()
        download.kickAll()
        return completeIfDone
      })

    const setPriorities = (list: ReadonlyArray<Picker.Priority>) =>
      Effect.suspend(() => {
        if (list.length !== m.pieceCount) {
          return Effect.fail(invalid(`${list.length} priorities for a torrent of ${m.pieceCount} pieces`))
        }
        list.forEach((level, i) => {
          priorities[i] = level
          picker()?.setPriority(i, level)
        })
        download.kickAll()
        return Effect.void
      })

    const prioritize = (first: number, last: number) =>
      Effect.sync(() => {
        window = last < first ? undefined : { first, last }
        picker()?.setWindow(window)
        window = picker()?.window() ?? window
        download.kickAll()
      })

    const whenVerified = (index: number): Effect.Effect<void, TorrentError> =>
      Effect.suspend(() => {
        if (!Number.isInteger(index) || index < 0 || index >= m.pieceCount) {
          return Effect.fail(invalid(`piece ${index} is not in 0..${m.pieceCount - 1}`))
        }
        return Bitfield.has(have, index) ? Effect.void : waiters.wait(index)
      })

    return {
      events,
      done: Deferred.await(result),
      failed: Deferred.await(stopped),
      stats,
      downloadedFrom: download.downloadedFrom,
      transfers: uploader.transfers,
      accept: swarm.accept,
      peers: () => download.statuses(uploader.peer),
      trackers: board.trackers,
      search: () => ({
        candidates: swarm.addresses().length,
        dialling: swarm.active() - peers.size,
        lastAttempt: swarm.lastAttempt(),
        dht: dht !== undefined,
        lsd: options.lsd !== undefined && !m.private
      }),
      webSeeds: () => webSeeds?.servers() ?? [],
      have: () => Bitfield.copy(have),
      rates: () => lastRates,
      wanted: () => Bitfield.copy(wanted),
      setLimits: (limits) =>
        Effect.sync(() => {
          if (limits.up !== undefined) uploader.setUpLimit(limits.up)
          if (limits.down !== undefined) downLimit.setRate(limits.down)
        }),
      limits: () => ({ up: uploader.upLimit(), down: downLimit.rate() }),
      setMaxPeers: (max) => Effect.sync(() => swarm.setMaxPeers(max)),
      setWanted,
      setPriorities,
      prioritize,
      whenVerified,
      reannounce: () =>
        Effect.sync(() => {
          board.reannounce()
          v2Board?.reannounce()
        })
    }
  })
