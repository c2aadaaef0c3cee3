/**
 * `Torrent.whenVerified`: those waiting for a piece to be verified (a stream blocked on the next bytes of a file).
 * A wait completes when the finisher verifies the piece (`verified`), fails with the torrent's error when it stops
 * failing (`stopped`), and with reason "stopped" when the torrent's scope closes first (`close`). A waiter that is
 * interrupted leaves no trace.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { TorrentError } from "./TorrentError.ts"

export interface PieceWaiters {
  /** Waits for `index` (the caller has checked it is not verified yet). */
  readonly wait: (index: number) => Effect.Effect<void, TorrentError>
  /** Piece `index` is verified: its waiters go on. */
  readonly verified: (index: number) => void
  /** The torrent's scope closes: every waiter, and every later one, fails with "stopped". */
  readonly close: () => void
  readonly closed: () => boolean
}

export const stoppedError = new TorrentError({ reason: "stopped", detail: "the torrent was stopped" })

export const make = (stopped: Effect.Effect<never, TorrentError>): PieceWaiters => {
  const waiters = new Map<number, Set<Deferred.Deferred<void, TorrentError>>>()
  let closed = false
  return {
    wait: (index) =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(stoppedError)
        return Effect.flatMap(Deferred.make<void, TorrentError>(), (d) => {
          let set = waiters.get(index)
          if (set === undefined) {
            set = new Set()
            waiters.set(index, set)
          }
          set.add(d)
          return Effect.raceFirst(Deferred.await(d), stopped).pipe(
            Effect.ensuring(Effect.sync(() => {
              const s = waiters.get(index)
              s?.delete(d)
              if (s?.size === 0) waiters.delete(index)
            }))
          )
        })
      }),
    verified: (index) => {
      const set = waiters.get(index)
      if (set === undefined) return
      waiters.delete(index)
      for (const d of set) Deferred.unsafeDone(d, Exit.void)
    },
    close: () => {
      closed = true
      for (const set of waiters.values()) for (const d of set) Deferred.unsafeDone(d, Exit.fail(stoppedError))
      waiters.clear()
    },
    closed: () => closed
  }
}
