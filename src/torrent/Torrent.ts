/**
 * One torrent's runtime: Checking → Downloading → Complete | Failed. When every wanted piece is verified the
 * torrent flushes storage, publishes `Completed` and, unless `seed` is set, ends its sessions; with `seed` it keeps
 * serving (Uploader.ts: requests, choker, `upLimit`) and accepting inbound peers (`accept`) until its scope closes.
 *
 * Shape (ARCHITECTURE.md "How a download flows", THROUGHPUT.md design rules):
 * - It implements `TorrentHandle`: sessions call it synchronously from their socket handlers (one JS thread, so no
 *   locks). The `Picker` is the single owner of piece state. Blocks are copied by the session straight into pooled
 *   piece buffers (`blockBuffer`); a block is written by one session at a time.
 * - A completed piece crosses into Effect once, per piece (`Mailbox.unsafeOffer`), to `finishConcurrency`
 *   long-lived finisher fibers (the owner) that each take one, verify it (Hasher) and write it
 *   (`Storage.writePiece`), then `pieceVerified` + `have` to every session, or `pieceFailed` → strikes → ban (the
 *   peer is closed and never contacted again). A storage failure fails the torrent and no later piece is written.
 * - Backpressure: while more than `backlogBudget` bytes of pieces wait for hash/write, every session stops reading;
 *   they resume below half of it.
 * - Peers: the tracker announce stream, the given peers (`--peer`, magnet `x.pe`); a `FiberMap` of sessions keyed by
 *   address, at most `maxPeers`, fed from a queue of candidates. A banned peer, one with another info-hash, a
 *   protocol violator or ourselves is never dialled again. Any other peer whose session ends is retried after a
 *   backoff that grows with each failed attempt and restarts once a handshake succeeds: a peer never connected in
 *   this run follows `reconnect` (default 1 s doubling, 5 tries) and is then given up (a tracker may hand it out
 *   again); a peer that did connect once follows `reconnectKnown` (default 1 s doubling, capped at 60 s, forever),
 *   so when every peer goes away for a while (a network blip, seeders restarting) the download carries on by
 *   itself when they are back. With `EFFECT_TORRENT_LOOPBACK_ONLY` non-loopback peers are refused.
 * - Misbehaviour is logged once per peer address with the address as the `peer` annotation: bans (protocol
 *   violations, another info-hash, data failing hash checks) as warnings; stalling (handshake, introduction or
 *   request deadlines) and a peer answering with our own peer id as info. Ordinary session ends and repeats are
 *   debug lines.
 *
 * The no-peers rule: the torrent fails with reason "no-peers" when, for `noPeersTimeout` in a row since it started,
 * no peer has been connected (handshake done) and no tracker has answered an announce. It applies only until the
 * first peer connects or a tracker answers (even with no peers): from then on the torrent waits for peers as long as
 * it runs, retrying the peers it knows and re-announcing (while it has no peer at all, 5 minutes after the last
 * announce or the tracker's min interval, not a whole interval later), as trackers may hand out peers later.
 * Dialing and reconnect backoffs do not stop the clock.
 */
import * as Clock from "effect/Clock"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as FiberSet from "effect/FiberSet"
import * as Mailbox from "effect/Mailbox"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Bitfield from "../core/Bitfield.ts"
import type * as DhtNode from "../dht/Node.ts"
import type { PeerId } from "../core/InfoHash.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import * as Destination from "../net/Destination.ts"
import type * as Tcp from "../net/Tcp.ts"
import type { PeerError } from "../peer/PeerError.ts"
import * as PeerSession from "../peer/PeerSession.ts"
import * as PeerState from "../peer/PeerState.ts"
import type { BlockRef, PeerControl, PeerInfo, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import * as Picker from "../picker/Picker.ts"
import * as PiecePool from "../storage/PiecePool.ts"
import type * as ResumeRecord from "../storage/ResumeRecord.ts"
import type * as ResumeStore from "../storage/ResumeStore.ts"
import type * as Storage from "../storage/Storage.ts"
import * as Announcer from "../tracker/Announcer.ts"
import { Tracker } from "../tracker/Tracker.ts"
import { fromStorage, TorrentError } from "./TorrentError.ts"
import * as TorrentEvent from "./TorrentEvent.ts"
import * as DownLimit from "./DownLimit.ts"
import * as Extensions from "./Extensions.ts"
import * as Uploader from "./Uploader.ts"

export { TorrentError } from "./TorrentError.ts"

export interface Options {
  readonly metainfo: Metainfo.Metainfo
  readonly storage: Storage.StorageShape
  readonly peerId: PeerId
  /** The port announced to trackers: the listening port when there is one (default 6881). */
  readonly port?: number | undefined
  /** Peers to dial besides the trackers' (e.g. `--peer`, magnet `x.pe`). */
  readonly peers?: ReadonlyArray<Tcp.Address> | undefined
  /** Pieces to download (default: all); see FileSelection.ts. */
  readonly wanted?: Bitfield.Bitfield | undefined
  /** Connected or dialing peers at most (default 50). */
  readonly maxPeers?: number | undefined
  /** Announce to the metainfo's trackers (default true). */
  readonly trackers?: boolean | undefined
  /** See the no-peers rule above (default 60 s). */
  readonly noPeersTimeout?: Duration.DurationInput | undefined
  /** Bytes of pieces waiting for hash/write before sessions stop reading (default 48 MiB). */
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
  /** BEP 11 peer exchange with peers that support it (default true; never for a private torrent). */
  readonly pex?: boolean | undefined
  readonly resumeSave?: { readonly interval?: Duration.DurationInput; readonly bytes?: number } | undefined
  /**
   * Between checks that the files are still ours (`Storage.audit`: none deleted, replaced or cut short by something
   * else); default 5 s. Also run on completion and when a piece read for a peer fails its hash.
   */
  readonly auditInterval?: Duration.DurationInput | undefined
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

export interface Torrent {
  readonly events: PubSub.PubSub<TorrentEvent.TorrentEvent>
  /** Succeeds when every wanted piece is verified and flushed; fails when the torrent cannot finish. */
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
   * `release` runs when it ends. False (and nothing run) when the torrent is not running or at its peer limit.
   */
  readonly accept: (
    connection: Tcp.Connection,
    prefix: Uint8Array,
    release: Effect.Effect<void>,
    encryption?: PeerInfo["encryption"]
  ) => Effect.Effect<boolean>
}

/** A sliding event hub: slow subscribers lose old events, the torrent never waits for them. */
export const makeEvents = (capacity = 4096): Effect.Effect<PubSub.PubSub<TorrentEvent.TorrentEvent>> =>
  PubSub.sliding<TorrentEvent.TorrentEvent>(capacity)

/** Default reconnect backoff of a peer never connected: 1 s, 2 s, 4 s, 8 s, 16 s, then the peer is given up. */
export const defaultReconnect: Schedule.Schedule<unknown> = Schedule.exponential("1 second", 2).pipe(
  Schedule.intersect(Schedule.recurs(5))
)

/** Default reconnect backoff of a peer that connected before: 1 s, 2 s, 4 s … 60 s, then every 60 s, forever. */
export const defaultReconnectKnown: Schedule.Schedule<unknown> = Schedule.exponential("1 second", 2).pipe(
  Schedule.either(Schedule.spaced("60 seconds"))
)

const BLOCK = Picker.BLOCK

/** Per in-flight piece: its pooled buffer, which blocks are in, and which session is copying each block. */
interface Slot {
  readonly buf: Uint8Array
  readonly received: Uint8Array
  readonly writers: Array<PeerKey | undefined>
}

interface PeerRecord {
  readonly control: PeerControl
  /** The remote host (for DHT pings on a `port` message). */
  readonly host: string
  interested: boolean
}

interface Candidate {
  readonly host: string
  readonly port: number
  readonly addr: string
  queued: boolean
  active: boolean
  banned: boolean
  /** The current session completed its handshake. */
  connected: boolean
  /** Some session with this peer completed its handshake in this run. */
  known: boolean
  /** Waiting for the backoff before the next attempt. */
  waiting: boolean
  /** The backoff since the last successful handshake (its delays grow with each failed attempt). */
  backoff: Schedule.ScheduleDriver<unknown, unknown> | undefined
}

interface Completed {
  readonly index: number
  /** Ownership passes to `verifyPiece`, which may transfer (detach) it: read nothing from it afterwards. */
  readonly data: Uint8Array
  /** Bytes this piece added to the backlog (its length when queued: `data` may be detached by then). */
  readonly bytes: number
}

const formatAddress = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

/** Reasons after which a peer is never dialled again. */
const neverAgain = new Set<PeerError["reason"]>(["wrong-info-hash", "self-connection", "protocol"])
/** Session ends that say the peer stalls us on purpose or by neglect (logged once per peer, then retried). */
const stalling = new Set<PeerError["reason"]>(["handshake-timeout", "introduction-timeout", "choked-timeout", "snubbed"])

const storageFailure = fromStorage

/** The resume store's only failure, EBADF (ResumeStore.ts): a bug in the process, so the torrent stops. */
const resumeFailure = (e: ResumeRecord.ResumeError): TorrentError =>
  new TorrentError({
    reason: "storage",
    detail: `storage failed: a file descriptor was invalid (closed twice somewhere in the process?): ${e.message}`,
    cause: e
  })

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
    const maxPeers = Math.max(1, options.maxPeers ?? 50)
    const budget = options.backlogBudget ?? 48 * 1024 * 1024
    const noPeersMs = Duration.toMillis(options.noPeersTimeout ?? Duration.seconds(60))
    const pieceSize = (i: number) => Math.min(m.pieceLength, m.totalLength - i * m.pieceLength)
    const wanted = options.wanted ?? Bitfield.full(m.pieceCount)
    let total = 0
    for (let i = 0; i < m.pieceCount; i++) if (Bitfield.has(wanted, i)) total += pieceSize(i)

    // --- piece state (owned by the picker; mutated only from synchronous callbacks and the owner fiber) ---
    let picker: Picker.Picker | undefined
    const have = Bitfield.make(m.pieceCount)
    const slots = new Map<number, Slot>()
    // Idle piece buffers kept for reuse: 32 (of 1 MiB) cover the pieces in flight plus those waiting for hash/write at
    // full speed from a few peers; more only raises peak RSS (docs/PERFORMANCE.md). Bounded in bytes too, so big
    // pieces (4–16 MiB) keep at most 32 MiB idle, not 32 pieces.
    const pool = PiecePool.make({ maxFree: 32, maxFreeBytes: 32 * 1024 * 1024 })
    const peers = new Map<PeerKey, PeerRecord>()
    const verifyQueue = yield* Mailbox.make<Completed>()
    /** Completes when the download finishes here (not when it was complete from the start). */
    const downloadedNow = yield* Deferred.make<void>()
    let backlog = 0
    let paused = false
    let downloaded = 0
    /** Accepted payload bytes per peer key, kept after the peer left. */
    const downloadedBy = new Map<PeerKey, number>()
    let finished = false

    const bytesLeft = () => picker?.progress().bytesLeft ?? total
    const stats = (): Stats => {
      const p = picker?.progress()
      return {
        downloaded,
        uploaded: uploader.uploaded(),
        peers: peers.size,
        have: Bitfield.count(have),
        pieces: m.pieceCount,
        bytesLeft: p?.bytesLeft ?? total,
        total
      }
    }

    const kickAll = () => {
      for (const r of peers.values()) r.control.requestMore()
    }
    const updateInterest = () => {
      if (picker === undefined) return
      for (const [key, r] of peers) {
        const i = !finished && picker.isInteresting(key)
        if (i !== r.interested) {
          r.interested = i
          r.control.setInterested(i)
        }
      }
    }
    const sendCancels = (cancels: ReadonlyArray<Picker.PeerRequest>) => {
      for (const c of cancels) peers.get(c.peer)?.control.cancel([{ index: c.piece, begin: c.begin, length: c.length }])
    }
    const interesting = (peer: PeerKey): boolean => {
      const i = picker !== undefined && !finished && picker.isInteresting(peer)
      const r = peers.get(peer)
      if (r !== undefined) r.interested = i
      return i
    }
    const returnBlocks = (peer: PeerKey, blocks: ReadonlyArray<BlockRef>) => {
      if (picker === undefined) return
      for (const b of blocks) picker.requestRejected(peer, b.index, b.begin)
      if (blocks.length > 0) kickAll()
    }
    const setPaused = (p: boolean) => {
      paused = p
      for (const r of peers.values()) p ? r.control.pauseReading() : r.control.resumeReading()
    }

    const dht = m.private ? undefined : options.dht
    const ext = Extensions.make({
      metadata: () => m.rawInfo,
      isPrivate: m.private || options.pex === false,
      listenPort: options.listenPort,
      clientName: PeerState.config(options.peerConfig).clientName,
      reqq: PeerState.config(options.peerConfig).maxPipeline,
      onPeers: (_from, found) => {
        for (const p of found) addCandidate(p.ip, p.port)
      }
    }, nowMs)
    /** BEP 6 suggestions per peer (latest last, bounded). */
    const suggested = new Map<PeerKey, Array<number>>()
    const dhtPings = yield* Queue.dropping<{ readonly host: string; readonly port: number }>(64)

    const handle: TorrentHandle = {
      infoHash: m.infoHash,
      peerId: options.peerId,
      pieceCount: m.pieceCount,
      features: { fast: true, extensionProtocol: true, dht: dht !== undefined },
      bitfield: () => Bitfield.copy(have),
      extensionHandshake: ext.handshake,
      dhtPort: dht?.local.port,
      onExtended: ext.onExtended,
      onPeerPort: (peer, port) => {
        const host = peers.get(peer)?.host
        if (dht !== undefined && host !== undefined && host !== "") dhtPings.unsafeOffer({ host, port })
      },
      onSuggest: (peer, index) => {
        const list = suggested.get(peer) ?? []
        if (list.includes(index)) return
        list.push(index)
        if (list.length > 16) list.shift()
        suggested.set(peer, list)
      },
      onConnected: (peer, info, control) => {
        picker?.peerJoined(peer)
        peers.set(peer, { control, host: Extensions.normalizeHost(info.remote.host), interested: false })
        ext.connected(peer, info, control)
        const c = candidates.get(peer)
        if (c !== undefined) {
          c.connected = true
          c.known = true
        }
        everConnected = true
        lastPeerSeen = nowMs()
        if (paused) control.pauseReading()
        publish(TorrentEvent.PeerConnected({ addr: peer, encryption: info.encryption }))
      },
      onPeerBitfield: (peer, bf) => {
        picker?.peerBitfield(peer, bf)
        return interesting(peer)
      },
      onPeerHave: (peer, index) => {
        picker?.peerHave(peer, index)
        return interesting(peer)
      },
      onPeerHaveAll: (peer) => {
        picker?.peerHaveAll(peer)
        return interesting(peer)
      },
      onPeerHaveNone: (peer) => {
        picker?.peerHaveNone(peer)
        return interesting(peer)
      },
      nextRequests: (peer, max, only) => {
        if (picker === undefined || finished) return []
        const reqs = picker.nextRequests(peer, max, { only, prefer: suggested.get(peer) })
        return reqs.map((r) => ({ index: r.piece, begin: r.begin, length: r.length }))
      },
      blockBuffer: (peer, index, begin, length) => {
        if (picker === undefined || picker.pieceState(index) !== "InFlight" || begin % BLOCK !== 0) return undefined
        const size = pieceSize(index)
        if (length !== Math.min(BLOCK, size - begin)) return undefined
        let slot = slots.get(index)
        if (slot === undefined) {
          const blocks = Math.ceil(size / BLOCK)
          slot = { buf: pool.acquire(size), received: new Uint8Array(blocks), writers: new Array(blocks) }
          slots.set(index, slot)
        }
        const b = begin / BLOCK
        if (slot.received[b] === 1) return undefined
        const w = slot.writers[b]
        if (w !== undefined && w !== peer) return undefined
        slot.writers[b] = peer
        return slot.buf
      },
      onBlock: (peer, index, begin, length) => {
        if (picker === undefined) return false
        const slot = slots.get(index)
        const b = Math.floor(begin / BLOCK)
        if (slot === undefined || slot.writers[b] !== peer || begin % BLOCK !== 0) {
          // We did not give this session the buffer, so its bytes were not copied: never let the picker count the
          // block as received from it (another session may have been copying it and since left).
          if (slot !== undefined && slot.received[b] === 1) {
            sendCancels(picker.blockReceived(peer, index, begin, length).cancels)
          } else picker.requestRejected(peer, index, begin)
          return false
        }
        slot.writers[b] = undefined
        const r = picker.blockReceived(peer, index, begin, length)
        sendCancels(r.cancels)
        if (r.kind === "ignored") return false
        slot.received[b] = 1
        downloaded += length
        downloadedBy.set(peer, (downloadedBy.get(peer) ?? 0) + length)
        if (r.kind === "piece-complete") {
          slots.delete(index)
          backlog += slot.buf.length
          verifyQueue.unsafeOffer({ index, data: slot.buf, bytes: slot.buf.length })
          if (!paused && backlog > budget) setPaused(true)
        }
        return true
      },
      onChoked: returnBlocks,
      onUnchoked: () => {},
      onReturned: returnBlocks,
      onRequestTimeout: (peer, blocks) => {
        if (picker === undefined) return
        for (const b of blocks) picker.requestTimedOut(peer, b.index, b.begin)
        kickAll()
      },
      onClosed: (peer, error, _outstanding) => {
        if (!peers.has(peer)) return
        peers.delete(peer)
        ext.closed(peer)
        suggested.delete(peer)
        picker?.peerLeft(peer)
        for (const slot of slots.values()) {
          for (let i = 0; i < slot.writers.length; i++) if (slot.writers[i] === peer) slot.writers[i] = undefined
        }
        publish(TorrentEvent.PeerDisconnected({ addr: peer, reason: `${error.reason}: ${error.detail}` }))
        kickAll()
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
    /** File `f` is wanted and every piece it lies in is verified: the storage must hold all of it. */
    const fileComplete = (f: number): boolean => {
      const file = m.files[f]
      if (file === undefined || file.pad || file.length === 0) return false
      const last = Math.floor((file.offset + file.length - 1) / m.pieceLength)
      for (let i = Math.floor(file.offset / m.pieceLength); i <= last; i++) {
        if (!Bitfield.has(have, i) || !Bitfield.has(wanted, i)) return false
      }
      return true
    }
    const audit = Effect.catchAll(Effect.suspend(() => storage.audit(fileComplete)), failStorage)

    // A piece read for a peer failed its hash (its file changed on disk since it was checked): it is no longer had,
    // so it is neither served nor in the bitfield of peers that connect later, and every other piece of its files is
    // re-checked the same way. It is not fetched again in this run (the picker keeps it Have); the next start's check
    // finds it missing (the resume record is saved from `have`, and the file's size or mtime changed).
    const rechecking = new Set<number>()
    const lostPiece = (index: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (!Bitfield.has(have, index)) return
        Bitfield.clear(have, index)
        yield* Effect.logWarning(`piece ${index} no longer matches its hash on disk (a file changed?): not served`)
        const from = index * m.pieceLength
        const to = from + pieceSize(index)
        const files = m.files.flatMap((f, i) =>
          !f.pad && f.length > 0 && f.offset < to && f.offset + f.length > from && !rechecking.has(i) ? [i] : []
        )
        if (files.length === 0) return
        const skip = Bitfield.full(m.pieceCount)
        for (const f of files) {
          rechecking.add(f)
          const file = m.files[f]!
          const last = Math.floor((file.offset + file.length - 1) / m.pieceLength)
          for (let i = Math.floor(file.offset / m.pieceLength); i <= last; i++) {
            if (Bitfield.has(have, i)) Bitfield.clear(skip, i)
          }
        }
        const failed: Array<number> = []
        yield* storage.checkStreamExcept(skip).pipe(
          Stream.runForEach((p) =>
            Effect.sync(() => {
              if (!p.ok && Bitfield.has(have, p.index)) {
                Bitfield.clear(have, p.index)
                failed.push(p.index)
              }
            })
          ),
          Effect.catchAll((e) => Effect.logWarning(`re-check after a changed piece failed: ${e.message}`)),
          Effect.ensuring(Effect.sync(() => files.forEach((f) => rechecking.delete(f))))
        )
        if (failed.length > 0) {
          yield* Effect.logWarning(`re-check: ${failed.length} more piece(s) no longer match on disk, not served`)
        }
      })

    const uploader = yield* Uploader.make({
      storage,
      onCorrupt: (index) => Effect.zipRight(audit, lostPiece(index)),
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
      verified: options.verified,
      allowedFast: { infoHash: m.infoHash }
    })
    const served = (yield* DownLimit.make(options.downLimit ?? 0))(uploader.wrap(handle))
    const seed = options.seed === true

    // --- peer sources and connections ---
    const candidates = new Map<string, Candidate>()
    const queue: Array<Candidate> = []
    const wake = yield* Queue.sliding<void>(1)
    let active = 0
    let lastPeerSeen = nowMs()
    let trackerAnswered = false
    /** A peer completed a handshake in this run: the no-peers rule no longer applies. */
    let everConnected = false
    /** How the latest session ended (said when the no-peers rule fails the torrent: "EMFILE" explains a lot). */
    let lastAttempt: string | undefined
    /** Peers whose stalling was logged already. */
    const loggedStall = new Set<string>()
    const loopbackOnly = Destination.loopbackOnly()

    const addCandidate = (host: string, port: number) => {
      if (!Number.isInteger(port) || port <= 0 || port > 65535) return
      if (loopbackOnly && !Destination.isLoopbackHost(host)) return
      const addr = formatAddress(host, port)
      let c = candidates.get(addr)
      if (c === undefined) {
        c = {
          host,
          port,
          addr,
          queued: false,
          active: false,
          banned: false,
          connected: false,
          known: false,
          waiting: false,
          backoff: undefined
        }
        candidates.set(addr, c)
      }
      if (c.banned || c.queued || c.active || c.waiting) return
      c.queued = true
      queue.push(c)
      wake.unsafeOffer(undefined)
    }

    const ban = (addr: string, reason: string) =>
      Effect.gen(function*() {
        const c = candidates.get(addr)
        if (c?.banned === true) return
        if (c !== undefined) c.banned = true
        peers.get(addr)?.control.close(`banned: ${reason}`)
        publish(TorrentEvent.PeerBanned({ addr, reason }))
        yield* Effect.logWarning(`peer banned: ${reason}`).pipe(Effect.annotateLogs({ peer: addr }))
      })

    const retrySet = yield* FiberSet.make<void, never>()
    const reconnect = options.reconnect ?? defaultReconnect
    const reconnectKnown = options.reconnectKnown ?? defaultReconnectKnown

    const afterSession = (c: Candidate, error: PeerError) =>
      Effect.gen(function*() {
        const wasConnected = c.connected
        c.connected = false
        lastAttempt = `${c.addr}: ${error.message}`
        if (c.banned || (finished && !seed)) return
        if (neverAgain.has(error.reason)) {
          if (error.reason === "self-connection") {
            c.banned = true
            return yield* Effect.logInfo(`peer is ourselves (it sent our own peer id): not dialled again`).pipe(
              Effect.annotateLogs({ peer: c.addr })
            )
          }
          return yield* ban(c.addr, `${error.reason}: ${error.detail}`)
        }
        const log = stalling.has(error.reason) && !loggedStall.has(c.addr)
          ? Effect.logInfo(`peer stalls: ${error.reason}: ${error.detail}`)
          : Effect.logDebug(error.message)
        if (stalling.has(error.reason)) loggedStall.add(c.addr)
        yield* log.pipe(Effect.annotateLogs({ peer: c.addr }))
        // A handshake since the last failure restarts the backoff (on the known-peer schedule from then on).
        if (wasConnected || c.backoff === undefined) c.backoff = yield* Schedule.driver(c.known ? reconnectKnown : reconnect)
        const driver = c.backoff
        c.waiting = true
        yield* FiberSet.run(
          retrySet,
          driver.next(undefined).pipe(
            Effect.matchEffect({
              onFailure: () =>
                Effect.sync(() => {
                  // Schedule over: give the peer up (a tracker handing it out again starts afresh).
                  c.waiting = false
                  c.backoff = undefined
                }),
              onSuccess: () =>
                Effect.sync(() => {
                  c.waiting = false
                  addCandidate(c.host, c.port)
                })
            })
          )
        )
      })

    const session = (c: Candidate) =>
      PeerSession.connect({
        host: c.host,
        port: c.port,
        handle: served,
        config: options.peerConfig,
        dial: options.dial,
        encryption: options.encryption
      }).pipe(
        Effect.catchAll((error) => afterSession(c, error)),
        Effect.ensuring(Effect.sync(() => {
          c.active = false
          active--
          wake.unsafeOffer(undefined)
        }))
      )

    // --- the finishers (the owner): verify, write, announce `have`, or strike and ban ---
    const finishPiece = Effect.fnUntraced(function*(done: Completed) {
      const p = picker!
      const verified = yield* storage.verifyPiece(done.index, done.data)
      if (verified.ok) {
        yield* storage.writePiece(done.index, verified.data)
        pool.release(verified.data)
        p.pieceVerified(done.index)
        Bitfield.set(have, done.index)
        for (const r of peers.values()) r.control.sendHave(done.index)
        publish(TorrentEvent.PieceVerified({ index: done.index }))
      } else {
        pool.release(verified.data)
        const contributors = p.pieceFailed(done.index)
        publish(TorrentEvent.PieceFailed({ index: done.index, peers: contributors }))
        yield* Effect.logWarning(`piece ${done.index} failed its hash check`).pipe(
          Effect.annotateLogs({ peers: contributors.join(",") })
        )
        for (const peer of contributors) {
          if (p.shouldBan(peer)) yield* ban(peer, "sent data that failed hash checks")
        }
        kickAll()
      }
      // Not `done.data.length`: a piece over the hasher's inline limit (64 KiB) was transferred to a worker, which
      // detached `done.data` (length 0), so the backlog never shrank and reading stayed paused once it passed the
      // budget.
      backlog -= done.bytes
      if (paused && backlog < budget / 2) setPaused(false)
      updateInterest()
      if (p.isComplete() && !finished) {
        finished = true
        yield* storage.flush
        yield* storage.audit(fileComplete) // nothing deleted or cut short under us since it was written
        publish(TorrentEvent.Completed())
        yield* Deferred.succeed(downloadedNow, undefined)
        yield* Deferred.succeed(result, undefined)
      }
    })
    // Up to `finishConcurrency` pieces are verified and written at once: hashing one (in the worker) overlaps
    // writing another (libuv's threadpool). One at a time, hash then write, drained ~220 MB/s of 1 MiB pieces here,
    // below what one loopback seeder sends, so reading sat paused on the backlog half of a download. Long-lived
    // finishers pulling from the mailbox, not a fork and a semaphore per piece (THROUGHPUT.md rule 6): ~40 fewer
    // runtime ops per piece.
    const finishGuarded = (done: Completed) =>
      (storageFailed ? Effect.void : finishPiece(done)).pipe(
        Effect.catchTag("StorageError", failStorage),
        Effect.catchAll(() => Effect.void)
      )
    const finisher = Effect.gen(function*() {
      for (;;) yield* finishGuarded(yield* verifyQueue.take)
    }).pipe(Effect.catchAll(() => Effect.void))
    const owner = Effect.all(Array.from({ length: Math.max(1, options.finishConcurrency ?? 4) }, () => finisher), {
      concurrency: "unbounded",
      discard: true
    })

    const dialer = Queue.take(wake).pipe(
      Effect.andThen(Effect.gen(function*() {
        const map = sessions // set before the dialer starts
        while (map !== undefined && active < maxPeers && queue.length > 0 && (!finished || seed)) {
          const c = queue.shift()!
          c.queued = false
          if (c.banned) continue
          c.active = true
          active++
          yield* FiberMap.run(map, c.addr, session(c))
        }
      })),
      Effect.forever
    )

    const tracker = yield* Tracker
    const observed = Tracker.of({
      announce: (url, req) =>
        tracker.announce(url, req).pipe(
          Effect.tapError((e) => Effect.sync(() => publish(TorrentEvent.TrackerError({ url, message: e.message }))))
        ),
      scrape: tracker.scrape
    })
    const announces = Announcer.stream({
      tiers: m.trackers,
      infoHash: m.infoHash,
      peerId: options.peerId,
      port: options.port ?? 6881,
      crypto: options.encryption?.policy === "require"
        ? "required"
        : options.encryption?.policy === "prefer"
        ? "supported"
        : undefined,
      stats: {
        uploaded: Effect.sync(() => uploader.uploaded()),
        downloaded: Effect.sync(() => downloaded),
        left: Effect.sync(bytesLeft)
      },
      completed: Deferred.await(downloadedNow),
      // No peer connected: ask the trackers again early (Announcer `starving`).
      starving: Effect.suspend(() => {
        const starving = () => peers.size === 0 && !finished
        return starving() ? Effect.void : Effect.sleep(Duration.seconds(1)).pipe(Effect.repeat({ until: starving }))
      })
    }).pipe(
      Stream.runForEach((batch) =>
        Effect.sync(() => {
          trackerAnswered = true
          if (batch.warning !== undefined) {
            publish(TorrentEvent.TrackerWarning({ url: batch.url, message: batch.warning }))
          }
          for (const p of batch.peers) addCandidate(p.ip, p.port)
        })
      ),
      Effect.provideService(Tracker, observed)
    )

    const progressMs = Duration.toMillis(options.progressInterval ?? Duration.seconds(1))
    const ticker = Effect.gen(function*() {
      let lastBytes = downloaded
      let lastUp = uploader.uploaded()
      let lastAt = yield* Clock.currentTimeMillis
      const tickMs = Math.max(50, Math.min(progressMs, noPeersMs / 4))
      let sinceProgress = 0
      let sincePex = 0
      for (;;) {
        yield* Effect.sleep(Duration.millis(tickMs))
        const now = yield* Clock.currentTimeMillis
        sincePex += tickMs
        if (sincePex >= 5_000) {
          sincePex = 0
          ext.tick(nowMs())
        }
        if (peers.size > 0) lastPeerSeen = nowMs()
        else if (!finished && !everConnected && !trackerAnswered && nowMs() - lastPeerSeen >= noPeersMs) {
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
          publish(TorrentEvent.Progress({ ...s, downRate: Math.round(rate), upRate: Math.round(upRate) }))
        }
      }
    })

    // --- DHT: lookups feed the candidates, our port is announced, peers' `port` messages fill the table ---
    const dhtPinger = (node: DhtNode.Node) =>
      Queue.take(dhtPings).pipe(
        Effect.flatMap((p) => Effect.ignore(node.ping(p.host, p.port))),
        Effect.forever
      )
    const dhtSource = (node: DhtNode.Node) =>
      Effect.gen(function*() {
        for (;;) {
          // Peers announced to our own node (a lookup never asks ourselves), then an iterative get_peers.
          for (const a of yield* node.storedPeers(m.infoHash)) addCandidate(a.ip, a.port)
          yield* Stream.runForEach(node.lookup(m.infoHash), (a) => Effect.sync(() => addCandidate(a.ip, a.port)))
          if (options.listenPort !== undefined && options.listenPort > 0) {
            yield* node.announce(m.infoHash, options.listenPort)
          }
          const wait = options.dhtInterval ??
            (peers.size < maxPeers / 2 ? Duration.minutes(5) : Duration.minutes(15))
          yield* Effect.sleep(wait)
        }
      })

    const auditEvery = options.auditInterval ?? Duration.seconds(5)
    const auditor = Effect.forever(Effect.zipRight(Effect.sleep(auditEvery), audit))

    // --- fast resume: snapshot, flush, then write (never a record claiming unflushed data) ---
    let checkDone = false
    // A failed flush is a storage failure (the torrent ends; the record is not saved); a record that cannot be
    // written only costs re-hashing after a restart, and ResumeStore logs it.
    // The flush failing ends the torrent with that failure (said once, by whoever reports the torrent's end); only
    // the last save, as the torrent stops for another reason, has nobody to tell but the log.
    const saveResume = (store: ResumeStore.ResumeStore, last: boolean) =>
      Effect.suspend(() => {
        const snapshot = Bitfield.copy(have)
        return storage.flush.pipe(
          Effect.matchEffect({
            onFailure: (e) =>
              storageFailed
                ? Effect.void
                : last
                ? Effect.zipRight(Effect.logWarning(`resume record not saved: ${e.message}`), failStorage(e))
                : failStorage(e),
            onSuccess: () =>
              store.save(snapshot).pipe(Effect.catchAll((e) =>
                // EBADF (the store's only failure): a descriptor closed under us; never logged and carried on from.
                Effect.zipRight(Effect.logError(e.message), stop(resumeFailure(e)))
              ))
          })
        )
      })
    const saveEveryMs = Duration.toMillis(options.resumeSave?.interval ?? Duration.seconds(10))
    const saveEveryBytes = options.resumeSave?.bytes ?? 256 * 1024 * 1024
    const resumeSaver = (store: ResumeStore.ResumeStore) =>
      Effect.gen(function*() {
        let lastAt = nowMs()
        let lastCount = Bitfield.count(have)
        for (;;) {
          yield* Effect.sleep(Duration.millis(Math.max(10, Math.min(250, saveEveryMs))))
          const count = Bitfield.count(have)
          if (count === lastCount) continue
          if (finished || (count - lastCount) * m.pieceLength >= saveEveryBytes || nowMs() - lastAt >= saveEveryMs) {
            yield* saveResume(store, false)
            lastAt = nowMs()
            lastCount = count
          }
        }
      })
    if (options.resume !== undefined) {
      const store = options.resume
      // Added before the run fiber is forked, so it runs after that fiber has been interrupted.
      yield* Effect.addFinalizer(() =>
        checkDone
          // Interruptible: a finalizer runs uninterruptibly, where `timeout` cannot cut anything and used to wait
          // forever for a hung save. The record's write itself stays uninterruptible (AtomicFile), so it is never
          // cut in half; its failures are handled inside saveResume, and the bound is said, not dropped.
          ? Effect.interruptible(saveResume(store, true)).pipe(
            Effect.timeout(Duration.seconds(5)),
            Effect.catchAll(() => Effect.logWarning(`resume record not saved on exit: not done within 5 s`))
          )
          : Effect.void
      )
    }

    let sessions: FiberMap.FiberMap<string, void, never> | undefined

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
      picker = Picker.make({
        pieceCount: m.pieceCount,
        pieceLength: m.pieceLength,
        totalLength: m.totalLength,
        wanted,
        have
      })
      const p = picker
      publish(TorrentEvent.Started({ pieces: m.pieceCount, have: Bitfield.count(have), bytesLeft: bytesLeft() }))
      if (p.isComplete()) {
        finished = true
        yield* storage.flush
        publish(TorrentEvent.Completed())
        if (!seed) return
        yield* Deferred.succeed(result, undefined)
      }
      yield* Effect.scoped(Effect.gen(function*() {
        sessions = yield* FiberMap.make<string, void, never>()
        lastPeerSeen = nowMs()
        // A defect in a finisher (e.g. the hash worker died under a piece: Hasher.ts fails its job with a defect)
        // ends verifying for good: the torrent stops with it (it used to stall, downloading with nobody verifying).
        yield* Effect.forkScoped(owner.pipe(
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
        yield* Effect.forkScoped(dialer)
        yield* Effect.forkScoped(ticker)
        if (options.resume !== undefined) yield* Effect.forkScoped(resumeSaver(options.resume))
        yield* Effect.forkScoped(auditor)
        if (options.trackers !== false && m.trackers.length > 0) yield* Effect.forkScoped(announces)
        if (dht !== undefined) {
          yield* Effect.forkScoped(dhtPinger(dht))
          yield* Effect.forkScoped(dhtSource(dht))
        }
        for (const a of options.peers ?? []) addCandidate(a.host, a.port)
        yield* Deferred.await(result)
        if (seed) yield* Deferred.await(stopped) // serve until the scope closes, or a failure stops the torrent
      }))
    }).pipe(
      Effect.catchTag("StorageError", (e) => Effect.fail(storageFailure(e))),
      Effect.catchTag("ResumeError", (e) => Effect.fail(resumeFailure(e))),
      Effect.ensuring(Effect.sync(() => {
        finished = true
      }))
    )

    const fiber = yield* Effect.forkScoped(run.pipe(
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.zipRight(
          Deferred.done(result, exit),
          exit._tag === "Failure" ? Deferred.failCause(stopped, exit.cause) : Effect.void
        )
      )
    ))
    void fiber
    // An inbound peer's port is ephemeral, so its misbehaviour is logged once per host and reason (a peer that
    // reconnects to misbehave again is not logged again); it is not banned by address. Bounded.
    const loggedInbound = new Set<string>()
    // (Our own peer id and other info-hashes never get here: the listener refuses them before routing.)
    const inboundEnded = (connection: Tcp.Connection, error: PeerError) => {
      const key = `${connection.remote.host}|${error.reason}`
      const loud = (neverAgain.has(error.reason) || stalling.has(error.reason)) && !loggedInbound.has(key)
      if (loud) {
        if (loggedInbound.size >= 1024) loggedInbound.clear()
        loggedInbound.add(key)
      }
      const line = !loud
        ? Effect.logDebug(`inbound ${error.message}`)
        : stalling.has(error.reason)
        ? Effect.logInfo(`inbound peer stalls: ${error.reason}: ${error.detail}`)
        : Effect.logWarning(`inbound peer closed: ${error.reason}: ${error.detail}`)
      return line.pipe(Effect.annotateLogs({ peer: connection.remoteAddress }))
    }
    const accept = (
      connection: Tcp.Connection,
      prefix: Uint8Array,
      release: Effect.Effect<void>,
      encryption?: PeerInfo["encryption"]
    ) =>
      Effect.suspend(() => {
        // `sessions` exists once the check is over; inbound peers count against the same limit as outbound ones.
        if (sessions === undefined || (finished && !seed) || active >= maxPeers) return Effect.succeed(false)
        active++
        const key = `in:${connection.remoteAddress}`
        return FiberMap.run(
          sessions,
          key,
          PeerSession.accept({ connection, prefix, handle: served, config: options.peerConfig, encryption }).pipe(
            Effect.catchAll((error) => inboundEnded(connection, error)),
            Effect.ensuring(Effect.andThen(Effect.sync(() => void active--), release))
          ),
          { onlyIfMissing: true }
        ).pipe(Effect.as(true))
      })
    const downloadedFrom = () =>
      [...downloadedBy].map(([address, bytes]) => ({ address, bytes })).sort((a, b) => b.bytes - a.bytes)
    return {
      events,
      done: Deferred.await(result),
      failed: Deferred.await(stopped),
      stats,
      downloadedFrom,
      transfers: uploader.transfers,
      accept
    }
  })
