/**
 * Serving peers: answers their requests from verified pieces, and runs the choker.
 *
 * `wrap(handle)` returns a `TorrentHandle` that sees every session event first (connections, interest, requests,
 * cancels, blocks received for per-peer download rates) and passes the download ones on to the torrent's handle.
 *
 * Serving rules:
 * - A request is answered only for a piece we have verified, while we are not choking the peer, when it lies inside
 *   the piece and asks for 1..16 KiB. Anything else is rejected (BEP 6; silently dropped without it).
 * - Per peer, requests wait in a FIFO of at most `maxQueued` (more are rejected); a `cancel` removes a request
 *   not yet sent. Choking a peer forgets (and BEP 6-rejects) what it had queued.
 * - Reads are whole pieces, positional (`Storage.readPieceInto`, into piece buffers recycled from evicted cache
 *   entries: `sendBlock` copies what it sends), async, at most `readConcurrency` at once, at most one waited on
 *   per peer; pieces stay in a LRU cache of at most `cacheBytes` (at least one piece) and blocks are sliced from
 *   it synchronously. One pump sends at most `BATCH` blocks before yielding to the event loop.
 * - Data that fails its hash is never served: with `storage.verifyPiece`, a piece read from disk is hashed before
 *   it enters the cache (the files may have changed since they were checked); one that fails is handed to
 *   `onCorrupt` (the torrent stops claiming it) and the requests waiting for it are refused. With
 *   `storage.pieceVersion` (FileStorage: inode, size, mtime and ctime of its files) a piece is hashed once per
 *   version of its files: a read whose version, taken before and after it, equals the one last verified is served
 *   without hashing again (SHA-1 is ~1 CPU s per GiB here, a third of the seeder's CPU). What that cannot see is a
 *   change that leaves all four alone (e.g. bit rot below the file system).
 * - `upLimit` (bytes/s, 0 = unlimited) is a token bucket charged per block before it is sent. When it runs dry,
 *   the peers waiting for it are served round-robin, one block each per pass, once it refills. `setUpLimit`
 *   changes it at once; `sharedUp` (a session's limit for all its torrents) is charged too, and a wait for it is
 *   re-checked at least every 250 ms (its rate may change under us).
 *
 * Per-peer totals (`transfers`): payload bytes sent to and accepted from each peer, keyed by its peer id and
 * kept after it disconnects (a reconnection adds to the same entry), so a caller can tell whom it got data from.
 *
 * Choker (Choker.ts): a round every `Choker.ROUND_INTERVAL` (10 s; the optimistic slot rotates every third), plus
 * an event-driven round (which does not advance the rotation) when a peer's interest changes or an unchoked peer
 * leaves. Mode "seeding" once `seeding()` says so. Rates are bytes per second over the last round.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Bitfield from "../core/Bitfield.ts"
import type { PeerId } from "../core/InfoHash.ts"
import * as Bytes from "../core/Bytes.ts"
import type { BlockRef, PeerControl, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import * as AtomicFile from "../storage/AtomicFile.ts"
import * as PiecePool from "../storage/PiecePool.ts"
import type * as Storage from "../storage/Storage.ts"
import { StorageError } from "../storage/Storage.ts"
import * as AllowedFast from "../wire/AllowedFast.ts"
import * as Choker from "./Choker.ts"
import * as RateLimit from "./RateLimit.ts"

export interface Options {
  /**
   * With `verifyPiece`, pieces read are verified before they are served (see above); with `readPieceInto`, read
   * into recycled buffers.
   */
  readonly storage:
    & Pick<Storage.StorageShape, "readPiece">
    & Partial<Pick<Storage.StorageShape, "verifyPiece" | "readPieceInto" | "pieceVersion">>
  /** Pieces already verified at a version of their files (`Storage.pieceVersion`), e.g. by the start-up check. */
  readonly verified?: ReadonlyMap<number, string> | undefined
  /** A piece read from disk failed its hash check (run before its waiting requests are refused). */
  readonly onCorrupt?: ((index: number) => Effect.Effect<void>) | undefined
  /**
   * Reading a piece failed (an I/O error, a file deleted or cut short, a descriptor bug): the waiting requests are
   * refused, and the torrent decides what that means (it stops: a storage that fails reads is not served from).
   */
  readonly onReadError?: ((error: Storage.StorageError) => Effect.Effect<void>) | undefined
  /**
   * A read failed with EBADF: a descriptor of the storage's was invalid, i.e. some part of the process closed a
   * descriptor number twice (docs/RELIABILITY.md, descriptors). Also logged as an error. The torrent stops on it.
   */
  readonly onBadDescriptor?: ((error: unknown) => Effect.Effect<void>) | undefined
  readonly pieceCount: number
  readonly pieceLength: number
  readonly totalLength: number
  /** Whether we have verified piece `index`. */
  readonly has: (index: number) => boolean
  /** Choker mode: true once we have every wanted piece. */
  readonly seeding: () => boolean
  /** Bytes/s, 0 (default) unlimited. */
  readonly upLimit?: number | undefined
  /** A bucket shared with other torrents (the session's upload limit), charged as well. */
  readonly sharedUp?: RateLimit.Bucket | undefined
  /** Default 16 MiB (32 MiB only raised the seeder's peak RSS, 149 against 136 MiB, at the same wall and CPU). */
  readonly cacheBytes?: number | undefined
  /** Queued requests per peer (default `MAX_QUEUED`). */
  readonly maxQueued?: number | undefined
  /** Piece reads in flight at once (default 4). */
  readonly readConcurrency?: number | undefined
  /** Regular unchoke slots (default Choker.DEFAULT_SLOTS). */
  readonly slots?: number | undefined
  /**
   * BEP 6: the info-hash, to grant each fast-extension peer the canonical allowed-fast set (AllowedFast.ts) of
   * pieces we have, served while we choke it. Absent: nothing granted.
   */
  readonly allowedFast?: { readonly infoHash: Uint8Array; readonly size?: number | undefined } | undefined
  readonly random?: (() => number) | undefined
}

/** Payload bytes exchanged with one peer (by peer id) over the torrent's life. */
export interface PeerTransfer {
  readonly peerId: PeerId
  /** `host:port` of its latest connection (for an inbound peer the port is not its listening port). */
  readonly address: string
  /** Payload bytes of blocks it sent us that we kept. */
  readonly downloaded: number
  /** Payload bytes we sent it. */
  readonly uploaded: number
  /** Connected now. */
  readonly connected: boolean
}

/** What the uploader knows of one connected peer (Torrent.peers). */
export interface PeerView {
  readonly peerId: PeerId
  /** We choke it. */
  readonly amChoking: boolean
  /** It is interested in us. */
  readonly interested: boolean
  /** Payload bytes of this connection: received (kept) and sent. */
  readonly downloaded: number
  readonly uploaded: number
  /** Pieces it has announced. */
  readonly pieces: number
}

export interface Uploader {
  /** The handle sessions should use: serves uploads and feeds the choker, then calls `inner`. */
  readonly wrap: (inner: TorrentHandle) => TorrentHandle
  /** Payload bytes sent. */
  readonly uploaded: () => number
  /** Per-peer totals, one entry per peer id ever connected (a snapshot). */
  readonly transfers: () => ReadonlyArray<PeerTransfer>
  /** Runs one choker round now (as the 10 s timer does). */
  readonly rechoke: () => void
  /** Whether we are unchoking `peer` now. */
  readonly isUnchoked: (peer: PeerKey) => boolean
  /** A connected peer's state and this connection's totals. */
  readonly peer: (peer: PeerKey) => PeerView | undefined
  /** This connection's payload totals only (cheaper than `peer`, for sampling rates). */
  readonly counters: (peer: PeerKey) => { readonly downloaded: number; readonly uploaded: number } | undefined
  /** The torrent's own upload limit, bytes/s (0: none); takes effect at once. */
  readonly setUpLimit: (rate: number) => void
  readonly upLimit: () => number
}

export const BLOCK_MAX = 16 * 1024
/**
 * Requests queued per peer by default: also the `reqq` we advertise (Extensions.ts), the number of requests a peer
 * keeps in flight to us. 500 blocks are 8 MiB, half the write backlog a peer may leave unread (PeerState
 * `maxWriteBacklog`), so a peer that asks for all of them and reads slowly is not taken for one that never reads.
 */
export const MAX_QUEUED = 500
const BATCH = 64

interface Peer {
  readonly key: PeerKey
  readonly control: PeerControl
  readonly peerId: PeerId
  readonly connectedAt: number
  readonly fast: boolean
  /** BEP 6 allowed-fast pieces granted to this peer: served while we choke it. */
  readonly granted: ReadonlySet<number>
  interested: boolean
  amChoking: boolean
  queue: Array<BlockRef>
  /** Waiting for this piece to be read. */
  waiting: number | undefined
  pieces: Bitfield.Bitfield
  haveAll: boolean
  downBytes: number
  upBytes: number
  /** This connection's totals. */
  down: number
  up: number
  downRate: number
  upRate: number
  /** A request of ours timed out and no block came since (no regular slot while downloading). */
  snubbed: boolean
  closed: boolean
  readonly totals: Totals
}

/** Mutable per-peer-id totals behind {@link PeerTransfer}. */
interface Totals {
  readonly peerId: PeerId
  address: string
  downloaded: number
  uploaded: number
  connections: number
}

export const make = (options: Options): Effect.Effect<Uploader, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const storage = options.storage
    const cacheBytes = Math.max(options.cacheBytes ?? 16 * 1024 * 1024, options.pieceLength)
    const maxQueued = options.maxQueued ?? MAX_QUEUED
    const readConcurrency = Math.max(1, options.readConcurrency ?? 4)
    const own = RateLimit.makeAdjustable(options.upLimit ?? 0, { now: now() })
    const buckets = options.sharedUp === undefined ? [own] : [own, options.sharedUp]
    const random = options.random ?? Math.random
    const pieceSize = (i: number) => Math.min(options.pieceLength, options.totalLength - i * options.pieceLength)

    const peers = new Map<PeerKey, Peer>()
    /** By peer id (hex). */
    const totals = new Map<string, Totals>()
    const cache = new Map<number, Uint8Array>()
    let cached = 0
    /** Piece reads in flight → peers waiting on them. */
    const reading = new Map<number, Set<Peer>>()
    const readQueue: Array<number> = []
    let uploaded = 0
    let chokerState = Choker.initial
    let lastRound = now()
    let wakeScheduled = false

    const cacheGet = (index: number): Uint8Array | undefined => {
      const data = cache.get(index)
      if (data !== undefined) {
        cache.delete(index)
        cache.set(index, data)
      }
      return data
    }
    // Evicted pieces' buffers, for the next reads (nothing else holds them: sendBlock copies what it sends).
    const buffers = PiecePool.make({ maxFree: readConcurrency + 2 })
    const cachePut = (index: number, data: Uint8Array) => {
      if (cache.has(index)) return buffers.release(data)
      cache.set(index, data)
      cached += data.length
      for (const [k, v] of cache) {
        if (cached <= cacheBytes || k === index) break
        cache.delete(k)
        cached -= v.length
        buffers.release(v)
      }
    }

    const valid = (b: BlockRef): boolean =>
      Number.isInteger(b.index) && b.index >= 0 && b.index < options.pieceCount && options.has(b.index) &&
      Number.isInteger(b.begin) && b.begin >= 0 && Number.isInteger(b.length) && b.length > 0 &&
      b.length <= BLOCK_MAX && b.begin + b.length <= pieceSize(b.index)

    const verify = storage.verifyPiece
    const readInto = storage.readPieceInto
    const versionOf = storage.pieceVersion
    /** Pieces hashed since their files last changed: the version they were read and verified at. */
    const verifiedAt = new Map<number, string>(options.verified ?? [])
    const readOne = (index: number) =>
      readInto === undefined
        ? storage.readPiece(index)
        : Effect.suspend(() => readInto(index, buffers.acquire(pieceSize(index))))
    const hashed = (
      check: NonNullable<typeof verify>,
      index: number,
      data: Uint8Array,
      version: string | undefined
    ) =>
      check(index, data).pipe(
        Effect.flatMap((v) => {
          if (v.ok) {
            if (version !== undefined) verifiedAt.set(index, version)
            return Effect.succeed(v.data)
          }
          verifiedAt.delete(index)
          return Effect.zipRight(options.onCorrupt?.(index) ?? Effect.void, Effect.fail("corrupt"))
        })
      )
    const readVerified = (index: number) => {
      if (verify === undefined) return readOne(index)
      if (versionOf === undefined) return Effect.flatMap(readOne(index), (data) => hashed(verify, index, data, undefined))
      // The files' version before and after the read: equal and already verified, the bytes are those hashed
      // before; otherwise (or unknown) hash them.
      return Effect.flatMap(versionOf(index), (before) =>
        Effect.flatMap(readOne(index), (data) =>
          Effect.flatMap(versionOf(index), (after) => {
            const same = before !== undefined && before === after
            if (same && verifiedAt.get(index) === before) return Effect.succeed(data)
            return hashed(verify, index, data, same ? before : undefined)
          })))
    }
    /**
     * A read that failed is never dropped: its requests are refused (below) and the failure logged, a warning the
     * first time for each piece and message, then at debug level; a corrupt piece is `onCorrupt`'s (the torrent logs
     * it). EBADF is an error and goes to `onBadDescriptor`.
     */
    const reported = new Set<string>()
    const reportFailure = (index: number, cause: Cause.Cause<unknown>): Effect.Effect<void> => {
      if (Cause.isInterruptedOnly(cause)) return Effect.void
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure) && failure.value === "corrupt") return Effect.void
      const e = Option.isSome(failure) ? failure.value : Cause.squash(cause)
      // A storage failure the torrent acts on (it stops, and says why once): not logged here as well.
      if (e instanceof StorageError && options.onReadError !== undefined) {
        return e.reason === "closed" ? Effect.void : options.onReadError(e)
      }
      const message = `piece ${index} could not be read for upload: ${e instanceof Error ? e.message : String(e)}`
      if (isBadDescriptor(e)) return Effect.zipRight(Effect.logError(message), options.onBadDescriptor?.(e) ?? Effect.void)
      const first = !reported.has(message)
      reported.add(message)
      return first ? Effect.logWarning(`${message} (its requests are refused)`) : Effect.logDebug(message)
    }
    const startRead = (index: number) => {
      run(
        readVerified(index).pipe(
          Effect.exit,
          Effect.tap((exit) => (exit._tag === "Failure" ? reportFailure(index, exit.cause) : Effect.void)),
          Effect.flatMap((exit) =>
            Effect.sync(() => {
              const waiters = reading.get(index) ?? new Set<Peer>()
              reading.delete(index)
              if (exit._tag === "Success") cachePut(index, exit.value)
              for (const p of waiters) {
                p.waiting = undefined
                if (exit._tag === "Failure") {
                  // Unreadable: refuse what this peer asked of that piece.
                  const [bad, rest] = partition(p.queue, (b) => b.index === index)
                  p.queue = rest
                  for (const b of bad) p.control.reject(b)
                }
              }
              nextRead()
              for (const p of waiters) pump(p)
            })
          )
        )
      )
    }
    const nextRead = () => {
      while (reading.size < readConcurrency && readQueue.length > 0) {
        const index = readQueue.shift()!
        if (reading.has(index)) continue
        reading.set(index, pendingWaiters.get(index) ?? new Set())
        pendingWaiters.delete(index)
        startRead(index)
      }
    }
    /** Peers waiting on a piece whose read has not started yet. */
    const pendingWaiters = new Map<number, Set<Peer>>()
    const waitFor = (p: Peer, index: number) => {
      p.waiting = index
      const inFlight = reading.get(index)
      if (inFlight !== undefined) return void inFlight.add(p)
      let w = pendingWaiters.get(index)
      if (w === undefined) {
        w = new Set()
        pendingWaiters.set(index, w)
        readQueue.push(index)
      }
      w.add(p)
      nextRead()
    }

    /** Warms the cache with the next pieces this peer asked for, within the read budget. */
    const prefetch = (p: Peer) => {
      let budget = readConcurrency - reading.size - readQueue.length
      for (let i = 1; i < p.queue.length && budget > 0; i++) {
        const index = p.queue[i]!.index
        if (cache.has(index) || reading.has(index) || pendingWaiters.has(index)) continue
        reading.set(index, new Set())
        startRead(index)
        budget--
      }
    }

    let wakeTurn = 0
    const scheduleWake = (ms: number) => {
      if (wakeScheduled) return
      wakeScheduled = true
      run(Effect.sleep(Duration.millis(Math.max(1, ms))).pipe(Effect.andThen(Effect.sync(wake))))
    }
    /**
     * The bucket refilled: serve the waiting peers one block each per pass, starting from a different peer each
     * time, so a limited upload is shared among them instead of drained by whichever peer comes first.
     */
    const wake = () => {
      wakeScheduled = false
      const list = Array.from(peers.values())
      if (list.length === 0) return
      const first = wakeTurn++ % list.length
      for (let progress = true; progress;) {
        progress = false
        for (let i = 0; i < list.length; i++) if (pump(list[(first + i) % list.length]!, 1) > 0) progress = true
      }
    }

    /**
     * Sends what can be sent from the cache, at most `max` blocks (BATCH: then it yields to the event loop and
     * goes on); starts the read the head waits for. Returns the blocks sent.
     */
    const pump = (p: Peer, max = BATCH): number => {
      if (p.closed || p.waiting !== undefined) return 0
      let sent = 0
      while (p.queue.length > 0) {
        if (p.amChoking) {
          p.queue = p.queue.filter((b) => p.granted.has(b.index))
          if (p.queue.length === 0) return sent
        }
        const b = p.queue[0]!
        const data = cacheGet(b.index)
        if (data === undefined) {
          waitFor(p, b.index)
          prefetch(p)
          return sent
        }
        if (sent >= max) {
          if (max === BATCH) run(Effect.yieldNow().pipe(Effect.andThen(Effect.sync(() => pump(p)))))
          return sent
        }
        const t = now()
        if (RateLimit.availableAll(buckets, t) < b.length) {
          scheduleWake(Math.min(250, RateLimit.delayForAll(buckets, b.length, t)))
          return sent
        }
        p.queue.shift()
        if (!p.control.sendBlock(b.index, b.begin, data.subarray(b.begin, b.begin + b.length))) {
          p.queue = []
          return sent
        }
        RateLimit.tryTakeAll(buckets, b.length, t)
        uploaded += b.length
        p.upBytes += b.length
        p.up += b.length
        p.totals.uploaded += b.length
        sent++
      }
      return sent
    }

    const isSeed = (p: Peer) => p.haveAll || Bitfield.count(p.pieces) === options.pieceCount

    const rechoke = (advance: boolean) => {
      const t = now()
      const elapsed = t - lastRound
      if (advance) {
        lastRound = t
        for (const p of peers.values()) {
          p.downRate = elapsed > 0 ? (p.downBytes * 1000) / elapsed : 0
          p.upRate = elapsed > 0 ? (p.upBytes * 1000) / elapsed : 0
          p.downBytes = 0
          p.upBytes = 0
        }
      }
      const decision = Choker.rechoke({
        state: chokerState,
        peers: [...peers.values()].map((p) => ({
          key: p.key,
          amChoking: p.amChoking,
          peerInterested: p.interested,
          downloadRate: p.downRate,
          uploadRate: p.upRate,
          connectedAt: p.connectedAt,
          snubbed: p.snubbed,
          isSeed: isSeed(p)
        })),
        mode: options.seeding() ? "seeding" : "downloading",
        slots: options.slots,
        random
      })
      chokerState = advance ? decision.state : { ...decision.state, round: chokerState.round }
      for (const key of decision.choke) {
        const p = peers.get(key)
        if (p === undefined) continue
        p.amChoking = true
        // BEP 6: a choke must reject every pending request explicitly (allowed-fast ones stay).
        const [kept, dropped] = partition(p.queue, (b) => p.granted.has(b.index))
        for (const b of dropped) p.control.reject(b)
        p.queue = kept
        p.control.choke()
      }
      for (const key of decision.unchoke) {
        const p = peers.get(key)
        if (p === undefined) continue
        p.amChoking = false
        p.control.unchoke()
      }
    }

    yield* Effect.forkScoped(
      Effect.sleep(Choker.ROUND_INTERVAL).pipe(Effect.andThen(Effect.sync(() => rechoke(true))), Effect.forever)
    )

    const wrap = (inner: TorrentHandle): TorrentHandle => ({
      ...inner,
      onConnected: (peer, info, control) => {
        for (const other of peers.values()) {
          if (Bytes.equals(other.peerId, info.peerId)) {
            control.close("duplicate connection to the same peer")
            return
          }
        }
        const af = options.allowedFast
        const granted = af === undefined || !info.fast
          ? []
          : AllowedFast.canonicalSet(info.remote.host, af.infoHash, options.pieceCount, af.size).filter(options.has)
        const id = Bytes.toHex(info.peerId)
        let t = totals.get(id)
        if (t === undefined) {
          t = { peerId: info.peerId, address: peer, downloaded: 0, uploaded: 0, connections: 0 }
          totals.set(id, t)
        }
        t.address = peer
        t.connections++
        peers.set(peer, {
          key: peer,
          control,
          peerId: info.peerId,
          connectedAt: now(),
          fast: info.fast,
          granted: new Set(granted),
          interested: false,
          amChoking: true,
          queue: [],
          waiting: undefined,
          pieces: Bitfield.make(options.pieceCount),
          haveAll: false,
          downBytes: 0,
          upBytes: 0,
          down: 0,
          up: 0,
          downRate: 0,
          upRate: 0,
          snubbed: false,
          closed: false,
          totals: t
        })
        inner.onConnected(peer, info, control)
        if (granted.length > 0) control.allowFast(granted)
      },
      // A bitfield, have-all or have-none replaces what the peer has (a late one too: aria2 sends them).
      onPeerBitfield: (peer, bf) => {
        const p = peers.get(peer)
        if (p !== undefined) {
          p.pieces = Bitfield.copy(bf)
          p.haveAll = false
        }
        return inner.onPeerBitfield(peer, bf)
      },
      onPeerHave: (peer, index) => {
        const p = peers.get(peer)
        if (p !== undefined && index >= 0 && index < options.pieceCount) Bitfield.set(p.pieces, index)
        return inner.onPeerHave(peer, index)
      },
      onPeerHaveAll: (peer) => {
        const p = peers.get(peer)
        if (p !== undefined) p.haveAll = true
        return inner.onPeerHaveAll(peer)
      },
      onPeerHaveNone: (peer) => {
        const p = peers.get(peer)
        if (p !== undefined) {
          p.pieces = Bitfield.make(options.pieceCount)
          p.haveAll = false
        }
        return inner.onPeerHaveNone(peer)
      },
      onBlock: (peer, index, begin, length) => {
        const kept = inner.onBlock(peer, index, begin, length)
        const p = peers.get(peer)
        if (kept && p !== undefined) {
          p.downBytes += length
          p.down += length
          p.totals.downloaded += length
          p.snubbed = false
        }
        return kept
      },
      onRequestTimeout: (peer, blocks) => {
        const p = peers.get(peer)
        if (p !== undefined) p.snubbed = true
        inner.onRequestTimeout(peer, blocks)
      },
      onClosed: (peer, error, outstanding) => {
        const p = peers.get(peer)
        if (p !== undefined) {
          p.closed = true
          p.queue = []
          p.totals.connections--
          peers.delete(peer)
          for (const w of reading.values()) w.delete(p)
          for (const w of pendingWaiters.values()) w.delete(p)
          if (!p.amChoking) rechoke(false)
        }
        inner.onClosed(peer, error, outstanding)
      },
      onPeerInterest: (peer, interested) => {
        const p = peers.get(peer)
        if (p !== undefined && p.interested !== interested) {
          p.interested = interested
          rechoke(false)
        }
        inner.onPeerInterest?.(peer, interested)
      },
      onPeerRequest: (peer, block) => {
        const p = peers.get(peer)
        if (p === undefined || (p.amChoking && !p.granted.has(block.index))) return
        if (!valid(block) || p.queue.length >= maxQueued) return p.control.reject(block)
        if (p.queue.some((b) => sameBlock(b, block))) return
        p.queue.push({ index: block.index, begin: block.begin, length: block.length })
        pump(p)
      },
      onPeerCancel: (peer, block) => {
        const p = peers.get(peer)
        if (p === undefined) return
        const i = p.queue.findIndex((b) => sameBlock(b, block))
        if (i >= 0) p.queue.splice(i, 1)
      }
    })

    return {
      wrap,
      uploaded: () => uploaded,
      transfers: () =>
        Array.from(totals.values(), (t) => ({
          peerId: t.peerId,
          address: t.address,
          downloaded: t.downloaded,
          uploaded: t.uploaded,
          connected: t.connections > 0
        })),
      rechoke: () => rechoke(true),
      isUnchoked: (peer) => peers.get(peer)?.amChoking === false,
      peer: (key) => {
        const p = peers.get(key)
        if (p === undefined) return undefined
        return {
          peerId: p.peerId,
          amChoking: p.amChoking,
          interested: p.interested,
          downloaded: p.down,
          uploaded: p.up,
          pieces: p.haveAll ? options.pieceCount : Bitfield.count(p.pieces)
        }
      },
      counters: (key) => {
        const p = peers.get(key)
        return p === undefined ? undefined : { downloaded: p.down, uploaded: p.up }
      },
      setUpLimit: (rate) => {
        RateLimit.setRate(own, rate, now())
        wake()
      },
      upLimit: () => own.rate
    }
  })

/** A storage failure caused by EBADF (the errno code on its cause, or named in its detail). */
const isBadDescriptor = (e: unknown): boolean => {
  if (AtomicFile.errnoCode(e) === "EBADF") return true
  const { cause, detail } = e as { readonly cause?: unknown; readonly detail?: unknown }
  return AtomicFile.errnoCode(cause) === "EBADF" || (typeof detail === "string" && /\bEBADF\b/.test(detail))
}

const sameBlock = (a: BlockRef, b: BlockRef): boolean =>
  a.index === b.index && a.begin === b.begin && a.length === b.length

const partition = <A>(xs: ReadonlyArray<A>, f: (a: A) => boolean): [Array<A>, Array<A>] => {
  const yes: Array<A> = []
  const no: Array<A> = []
  for (const x of xs) (f(x) ? yes : no).push(x)
  return [yes, no]
}
