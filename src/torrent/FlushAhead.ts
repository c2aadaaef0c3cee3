/**
 * Flushing written pieces ahead of completion: after every `every` bytes of verified pieces, one `Storage.flush`
 * (fdatasync of the files written since the last flush) runs in the background, so that the flush a torrent owes
 * on completion ("Completed" means on disk) waits only for the last ≤ `every` bytes.
 *
 * Why: the kernel starts writing dirty pages back only past 10 % of RAM or after 30 s, so a download's whole payload
 * was still in memory at completion, and the completion flush wrote it back while the user waited (~0.2 s per
 * 256 MiB here; the resume record, saved every 256 MiB, flushed some of it). The fdatasync itself costs the process
 * almost no CPU (0.02 s per 512 MiB: the writeback is the kernel's work) and runs on libuv's pool, beside the
 * download. Measured in docs/PERFORMANCE.md.
 *
 * Nothing is flushed twice: a flush covers what was written before it began (the storage's dirty set), and one
 * runs at a time (the storage's flush lock also orders it with the resume saver's). A flush that fails is a storage
 * failure, handed to `failStorage` (the torrent ends; FileStorage keeps the failure sticky). Event-driven: no timer
 * wakes a torrent that downloads nothing.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Storage from "../storage/Storage.ts"

/** Default: bytes of verified pieces between two flushes. */
export const DEFAULT_EVERY = 32 * 1024 * 1024

export interface Options {
  readonly flush: Effect.Effect<void, Storage.StorageError>
  /** Bytes between flushes (default {@link DEFAULT_EVERY}); `Infinity` never flushes ahead. */
  readonly every?: number | undefined
  readonly failStorage: (e: Storage.StorageError) => Effect.Effect<void>
  readonly storageFailed: () => boolean
}

export interface FlushAhead {
  /** A piece of `bytes` was verified and written (synchronous: from the finisher). */
  readonly verified: (bytes: number) => void
  /** The flushing fiber; run it for the torrent's life. */
  readonly run: Effect.Effect<never>
}

export const make = (options: Options): Effect.Effect<FlushAhead> =>
  Effect.gen(function*() {
    const every = options.every ?? DEFAULT_EVERY
    // One pending wake-up at most: bytes verified while a flush runs are covered by the next one.
    const wake = yield* Queue.sliding<void>(1)
    let pending = 0
    const verified = (bytes: number) => {
      pending += bytes
      if (pending < every) return
      pending = 0
      wake.unsafeOffer(undefined)
    }
    const flushOnce = Effect.suspend(() =>
      options.storageFailed() ? Effect.void : options.flush.pipe(Effect.catchAll(options.failStorage))
    )
    return { verified, run: Effect.forever(Effect.zipRight(wake.take, flushOnce)) }
  })
