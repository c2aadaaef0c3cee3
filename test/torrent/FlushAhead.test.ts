/**
 * FlushAhead: a background flush after every `every` bytes of verified pieces, one at a time, failures handed to
 * `failStorage`, nothing once the storage failed. The fake flush records how many bytes had been verified when it
 * began, which says what triggered it without timing anything.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Storage from "../../src/storage/Storage.ts"
import * as FlushAhead from "../../src/torrent/FlushAhead.ts"

interface Fake {
  /** Bytes verified so far (the test's own count, updated before each `verified`). */
  total: number
  /** The total seen by each flush as it began. */
  readonly seen: Array<number>
  /** Completed as flush number `n` (0-based) begins. */
  readonly began: Array<Deferred.Deferred<void>>
  /** Flush `n` ends when `gates[n]` is completed (when there is one). */
  readonly gates: Map<number, Deferred.Deferred<void>>
}

const fake = (n: number) =>
  Effect.gen(function*() {
    const began = yield* Effect.forEach(Array.from({ length: n }), () => Deferred.make<void>())
    const f: Fake = { total: 0, seen: [], began, gates: new Map() }
    const flush = Effect.suspend(() => {
      const i = f.seen.length
      f.seen.push(f.total)
      const gate = f.gates.get(i)
      return Effect.zipRight(Deferred.succeed(began[i]!, undefined), gate === undefined ? Effect.void : Deferred.await(gate))
    })
    return { f, flush }
  })

describe("FlushAhead", () => {
  it.scoped("flushes once `every` bytes are verified, not before", () =>
    Effect.gen(function*() {
      const { f, flush } = yield* fake(2)
      const fa = yield* FlushAhead.make({ flush, every: 32, failStorage: () => Effect.void, storageFailed: () => false })
      yield* Effect.forkScoped(fa.run)
      const verify = (bytes: number) => {
        f.total += bytes
        fa.verified(bytes)
      }
      for (let i = 0; i < 3; i++) verify(10)
      verify(10) // 40 ≥ 32
      yield* Deferred.await(f.began[0]!)
      verify(31)
      verify(1) // 32 more
      yield* Deferred.await(f.began[1]!)
      expect(f.seen).toEqual([40, 72])
    }))

  it.scoped("one flush at a time; what was verified meanwhile gets exactly one more", () =>
    Effect.gen(function*() {
      const { f, flush } = yield* fake(3)
      const gate = yield* Deferred.make<void>()
      f.gates.set(0, gate)
      const fa = yield* FlushAhead.make({ flush, every: 40, failStorage: () => Effect.void, storageFailed: () => false })
      yield* Effect.forkScoped(fa.run)
      const verify = (bytes: number) => {
        f.total += bytes
        fa.verified(bytes)
      }
      verify(40)
      yield* Deferred.await(f.began[0]!)
      verify(40) // three crossings while the first flush runs
      verify(40)
      verify(40)
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(f.began[1]!)
      verify(40)
      yield* Deferred.await(f.began[2]!)
      // A second pending wake-up from the crossings would have begun flush 3 at 160, before the last 40.
      expect(f.seen).toEqual([40, 160, 200])
    }))

  it.scoped("a failed flush goes to failStorage", () =>
    Effect.gen(function*() {
      const error = new Storage.StorageError({ reason: "write", path: "a", detail: "EIO: i/o error, fdatasync" })
      const failed = yield* Deferred.make<Storage.StorageError>()
      const fa = yield* FlushAhead.make({
        flush: Effect.fail(error),
        every: 1,
        failStorage: (e) => Deferred.succeed(failed, e),
        storageFailed: () => false
      })
      yield* Effect.forkScoped(fa.run)
      fa.verified(1)
      expect(yield* Deferred.await(failed)).toBe(error)
    }))

  it.scoped("flushes nothing once the storage has failed", () =>
    Effect.gen(function*() {
      let flushes = 0
      const asked = yield* Deferred.make<void>()
      const fa = yield* FlushAhead.make({
        flush: Effect.sync(() => void flushes++),
        every: 1,
        failStorage: () => Effect.void,
        storageFailed: () => {
          Deferred.unsafeDone(asked, Effect.void)
          return true
        }
      })
      const fiber = yield* Effect.forkScoped(fa.run)
      fa.verified(5)
      yield* Deferred.await(asked)
      expect(flushes).toBe(0)
      yield* Fiber.interrupt(fiber)
      expect(flushes).toBe(0)
    }))

  it.scoped("Infinity never flushes ahead", () =>
    Effect.gen(function*() {
      let flushes = 0
      const fa = yield* FlushAhead.make({
        flush: Effect.sync(() => void flushes++),
        every: Infinity,
        failStorage: () => Effect.void,
        storageFailed: () => false
      })
      const fiber = yield* Effect.forkScoped(fa.run)
      for (let i = 0; i < 100; i++) fa.verified(1 << 30)
      // The fiber waits for a wake-up that `verified` never offered: interrupting it finds it there.
      yield* Fiber.interrupt(fiber)
      expect(flushes).toBe(0)
    }))
})
