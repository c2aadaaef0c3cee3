/**
 * The piece finisher (the torrent's owner fibers): a completed piece crosses into Effect once, per piece
 * (`Mailbox.unsafeOffer` from the session's `onBlock`), to `concurrency` long-lived fibers that each take one,
 * verify it (Hasher) and write it (`Storage.writePiece`), then `pieceVerified` + `have` to every session — or
 * `pieceFailed` → strikes → ban (the peer is closed and never contacted again).
 *
 * - Up to `concurrency` pieces are verified and written at once: hashing one (in the worker) overlaps writing
 *   another (libuv's threadpool). One at a time, hash then write, drained ~220 MB/s of 1 MiB pieces here, below
 *   what one loopback seeder sends, so reading sat paused on the backlog half of a download. Long-lived finishers
 *   pulling from the mailbox, not a fork and a semaphore per piece (THROUGHPUT.md rule 6): ~40 fewer runtime ops
 *   per piece.
 * - Backpressure: while the pieces waiting for hash/write and those in flight (`inFlightBytes`, partly received) hold
 *   more than `budget` bytes of buffers, `onBacklog(true)` (every session stops reading); below half of it, or once
 *   nothing waits (pieces in flight complete only while reading goes on), `onBacklog(false)`. Counting the pieces in
 *   flight bounds the buffers whatever the number of peers: each fast peer keeps a few pieces in flight of its own.
 * - A storage failure goes to `failStorage` (the torrent fails) and no later piece is written. A defect (e.g. the
 *   hash worker died under a piece) ends `run` with it: the caller stops the torrent.
 */
import * as Effect from "effect/Effect"
import * as Mailbox from "effect/Mailbox"
import type * as Scope from "effect/Scope"
import * as Bitfield from "../core/Bitfield.ts"
import type * as Picker from "../picker/Picker.ts"
import type * as PiecePool from "../storage/PiecePool.ts"
import type * as Storage from "../storage/Storage.ts"
import * as TorrentEvent from "./TorrentEvent.ts"

export interface Options {
  readonly storage: Pick<Storage.StorageShape, "verifyPiece" | "writePiece">
  /** The picker (it exists once pieces can complete). */
  readonly picker: () => Picker.Picker
  /** Verified pieces: set here when a piece passes. */
  readonly have: Bitfield.Bitfield
  /** Where piece buffers go back after their write. */
  readonly pool: PiecePool.PiecePool
  /** Bytes of piece buffers (waiting for hash/write, and in flight) before reading pauses. */
  readonly budget: number
  /** Bytes of the buffers of pieces in flight (default none). */
  readonly inFlightBytes?: (() => number) | undefined
  /** Verified and written pieces at once (at least 1). */
  readonly concurrency: number
  readonly publish: (event: TorrentEvent.TorrentEvent) => void
  /** Tells every session we have the piece. */
  readonly sendHave: (index: number) => void
  /** Bans a peer that supplied bad data (the Swarm's). */
  readonly ban: (peer: string, reason: string) => Effect.Effect<void>
  /** Sessions should ask for more (a failed piece's blocks are open again). */
  readonly kickAll: () => void
  /** The backlog crossed the budget (true: pause reading) or fell below half of it (false: resume). */
  readonly onBacklog: (paused: boolean) => void
  /** A piece passed (after `have`, before `after`): e.g. wake those waiting for it. */
  readonly onVerified: (index: number) => void
  /** After each piece, passed or failed: interest, completion. */
  readonly after: Effect.Effect<void, Storage.StorageError>
  readonly failStorage: (e: Storage.StorageError) => Effect.Effect<void>
  /** Storage failed already: pieces are dropped, not written. */
  readonly storageFailed: () => boolean
  /**
   * BEP 52 per-block blame of a failed piece (run in its own fiber, the piece staying Verifying meanwhile): `true` when it found the bad blocks, blamed their senders and put the piece back
   * in flight with the good blocks kept (it owns `data` then); `false` to fail the piece as usual.
   */
  readonly repair?: ((
    index: number,
    data: Uint8Array,
    senders: ReadonlyArray<string | undefined>
  ) => Effect.Effect<boolean>) | undefined
}

interface Completed {
  readonly index: number
  /** Ownership passes to `verifyPiece`, which may transfer (detach) it: read nothing from it afterwards. */
  readonly data: Uint8Array
  /** Bytes this piece added to the backlog (its length when queued: `data` may be detached by then). */
  readonly bytes: number
  /** Who sent each block (when known). */
  readonly senders: ReadonlyArray<string | undefined> | undefined
}

export interface Finisher {
  /** A piece is complete in `data` (synchronous: from `onBlock`); `senders[b]` sent block `b`. */
  readonly offer: (index: number, data: Uint8Array, senders?: ReadonlyArray<string | undefined>) => void
  /** Bytes of pieces waiting for hash/write. */
  readonly backlog: () => number
  /** Whether the backlog holds reading now. */
  readonly paused: () => boolean
  /** The finisher fibers; run them for the torrent's life (they end only with a defect). */
  readonly run: Effect.Effect<void>
}

export const make = (options: Options): Effect.Effect<Finisher, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Mailbox.make<Completed>()
    const scope = yield* Effect.scope
    const budget = options.budget
    const inFlight = options.inFlightBytes ?? (() => 0)
    const pool = options.pool
    let backlog = 0
    let paused = false

    const setPaused = (p: boolean) => {
      paused = p
      options.onBacklog(p)
    }

    /** The piece failed: its contributors struck (and banned by the picker's rule), its blocks open again. */
    const failed = Effect.fnUntraced(function*(index: number, data: Uint8Array) {
      const p = options.picker()
      pool.release(data)
      const contributors = p.pieceFailed(index)
      options.publish(TorrentEvent.PieceFailed({ index, peers: contributors }))
      yield* Effect.logWarning(`piece ${index} failed its hash check`).pipe(
        Effect.annotateLogs({ peers: contributors.join(",") })
      )
      for (const peer of contributors) {
        if (p.shouldBan(peer)) yield* options.ban(peer, "sent data that failed hash checks")
      }
      options.kickAll()
    })

    const finishPiece = Effect.fnUntraced(function*(done: Completed) {
      const p = options.picker()
      const verified = yield* options.storage.verifyPiece(done.index, done.data)
      if (verified.ok) {
        yield* options.storage.writePiece(done.index, verified.data)
        pool.release(verified.data)
        p.pieceVerified(done.index)
        Bitfield.set(options.have, done.index)
        options.sendHave(done.index)
        options.publish(TorrentEvent.PieceVerified({ index: done.index }))
        options.onVerified(done.index)
      } else {
        const senders = new Set(done.senders?.filter((s) => s !== undefined))
        const repair = options.repair
        if (repair !== undefined && senders.size > 0) {
          // asking a peer for the leaf hashes takes a round trip: not in this finisher's way
          yield* Effect.forkIn(
            Effect.flatMap(repair(done.index, verified.data, done.senders!), (handled) =>
              handled
                ? Effect.catchAll(options.after, () => Effect.void)
                : Effect.zipRight(failed(done.index, verified.data), Effect.catchAll(options.after, () => Effect.void))),
            scope
          )
        } else yield* failed(done.index, verified.data)
      }
      // Not `done.data.length`: a piece over the hasher's inline limit (64 KiB) was transferred to a worker, which
      // detached `done.data` (length 0), so the backlog never shrank and reading stayed paused once it passed the
      // budget.
      backlog -= done.bytes
      if (paused && (backlog === 0 || backlog + inFlight() < budget / 2)) setPaused(false)
      yield* options.after
    })
    const finishGuarded = (done: Completed) =>
      (options.storageFailed() ? Effect.void : finishPiece(done)).pipe(
        Effect.catchTag("StorageError", options.failStorage),
        Effect.catchAll(() => Effect.void)
      )
    const finisher = Effect.gen(function*() {
      for (;;) yield* finishGuarded(yield* queue.take)
    }).pipe(Effect.catchAll(() => Effect.void))

    return {
      offer: (index, data, senders) => {
        backlog += data.length
        queue.unsafeOffer({ index, data, bytes: data.length, senders })
        if (!paused && backlog + inFlight() > budget) setPaused(true)
      },
      backlog: () => backlog,
      paused: () => paused,
      run: Effect.all(Array.from({ length: Math.max(1, options.concurrency) }, () => finisher), {
        concurrency: "unbounded",
        discard: true
      })
    }
  })
