/**
 * Fast-resume saving (ResumeStore.ts) for a running torrent: a record is saved every `interval` (default 10 s) when
 * pieces were verified since, as soon as `bytes` (default 256 MiB: each save flushes the written files, which costs
 * CPU and page-cache memory on fast downloads; a crash only costs re-hashing what the last record did not vouch
 * for) more were, on completion, and when the torrent's scope closes (bounded, 5 s).
 *
 * Each save snapshots the verified pieces, flushes storage, then writes (ResumeRecord.ts "Saving"): never a record
 * claiming unflushed data. A failed flush is a storage failure (the torrent ends; the record is not saved); a
 * record that cannot be written only costs re-hashing after a restart, and ResumeStore logs it. The flush failing
 * ends the torrent with that failure (said once, by whoever reports the torrent's end); only the last save, as the
 * torrent stops for another reason, has nobody to tell but the log.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Bitfield from "../core/Bitfield.ts"
import type * as ResumeRecord from "../storage/ResumeRecord.ts"
import type * as ResumeStore from "../storage/ResumeStore.ts"
import type * as Storage from "../storage/Storage.ts"
import { TorrentError } from "./TorrentError.ts"

export interface Options {
  readonly store: ResumeStore.ResumeStore
  readonly storage: Pick<Storage.StorageShape, "flush">
  /** The verified pieces (read at each save). */
  readonly have: Bitfield.Bitfield
  readonly pieceLength: number
  readonly interval?: Duration.DurationInput | undefined
  readonly bytes?: number | undefined
  /** Every wanted piece is verified: save at once. */
  readonly finished: () => boolean
  readonly failStorage: (e: Storage.StorageError) => Effect.Effect<void>
  readonly storageFailed: () => boolean
  /** Stops the torrent (a descriptor closed under us). */
  readonly stop: (e: TorrentError) => Effect.Effect<void>
  /** The start-up check is over: before that, `have` is not worth a record (nothing is saved on exit). */
  readonly ready: () => boolean
  readonly now: () => number
}

export interface ResumeSaver {
  /** Saves now (`last`: the save on exit). */
  readonly save: (last: boolean) => Effect.Effect<void>
  /** The periodic saves; run it for the download's life. */
  readonly run: Effect.Effect<never>
}

/** The resume store's only failure, EBADF (ResumeStore.ts): a bug in the process, so the torrent stops. */
export const resumeFailure = (e: ResumeRecord.ResumeError): TorrentError =>
  new TorrentError({
    reason: "storage",
    detail: `storage failed: a file descriptor was invalid (closed twice somewhere in the process?): ${e.message}`,
    cause: e
  })

/**
 * Makes the saver and registers the save on exit in the current scope: add it before the fibers that change
 * `have` are forked, so it runs after they were interrupted.
 */
export const make = (options: Options): Effect.Effect<ResumeSaver, never, Scope.Scope> =>
  Effect.gen(function*() {
    const store = options.store
    const save = (last: boolean) =>
      Effect.suspend(() => {
        const snapshot = Bitfield.copy(options.have)
        return options.storage.flush.pipe(
          Effect.matchEffect({
            onFailure: (e) =>
              options.storageFailed()
                ? Effect.void
                : last
                ? Effect.zipRight(Effect.logWarning(`resume record not saved: ${e.message}`), options.failStorage(e))
                : options.failStorage(e),
            onSuccess: () =>
              store.save(snapshot).pipe(Effect.catchAll((e) =>
                // EBADF (the store's only failure): a descriptor closed under us; never logged and carried on from.
                Effect.zipRight(Effect.logError(e.message), options.stop(resumeFailure(e)))
              ))
          })
        )
      })
    const everyMs = Duration.toMillis(options.interval ?? Duration.seconds(10))
    const everyBytes = options.bytes ?? 256 * 1024 * 1024
    const run = Effect.gen(function*() {
      let lastAt = options.now()
      let lastCount = Bitfield.count(options.have)
      for (;;) {
        // A complete torrent verifies nothing until its selection grows: a daemon's 200 seeds polled 800 times a
        // second otherwise (bench/daemon-scale.ts). The save on completion is asked for by `finished` below.
        const idle = options.finished() && Bitfield.count(options.have) === lastCount
        yield* Effect.sleep(Duration.millis(idle ? 5_000 : Math.max(10, Math.min(250, everyMs))))
        const count = Bitfield.count(options.have)
        if (count === lastCount) continue
        if (
          options.finished() || (count - lastCount) * options.pieceLength >= everyBytes ||
          options.now() - lastAt >= everyMs
        ) {
          yield* save(false)
          lastAt = options.now()
          lastCount = count
        }
      }
    })
    yield* Effect.addFinalizer(() =>
      options.ready()
        // Interruptible: a finalizer runs uninterruptibly, where `timeout` cannot cut anything and used to wait
        // forever for a hung save. The record's write itself stays uninterruptible (AtomicFile), so it is never
        // cut in half; its failures are handled inside `save`, and the bound is said, not dropped.
        ? Effect.interruptible(save(true)).pipe(
          Effect.timeout(Duration.seconds(5)),
          Effect.catchAll(() => Effect.logWarning(`resume record not saved on exit: not done within 5 s`))
        )
        : Effect.void
    )
    return { save, run }
  })
