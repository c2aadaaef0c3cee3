import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as PiecePool from "../../src/storage/PiecePool.ts"
import { randomBytes } from "./support.ts"

describe("Hasher.inline", () => {
  it.effect("is node:crypto SHA-1 and hands back the same array", () =>
    Effect.gen(function*() {
      const data = Bytes.encodeUtf8("abc")
      const r = yield* Hasher.inline.sha1(data)
      expect(Bytes.toHex(r.digest)).toBe("a9993e364706816aba3e25717850c26c9cd0d89d")
      expect(r.data).toBe(data)
    }))
})

describe("Hasher pool", () => {
  it.live("agrees with inline on random data: whole buffers (transferred) and views (copied)", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* Hasher.makePool({ workers: 2, inlineMax: 64 })
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(
            FastCheck.integer({ min: 0, max: 300_000 }),
            FastCheck.integer({ min: 0, max: 100 }),
            FastCheck.boolean(),
            async (size, pad, asView) => {
              const bytes = randomBytes(size + pad, size + 1)
              const want = Bytes.sha1(bytes.subarray(pad))
              const data = asView ? bytes.subarray(pad) : bytes.slice(pad)
              const copy = data.slice()
              const r = await Effect.runPromise(pool.sha1(data))
              expect(Bytes.toHex(r.digest)).toBe(Bytes.toHex(want))
              expect(Bytes.equals(r.data, copy)).toBe(true)
              // A view into a larger buffer is never detached: the caller's array stays usable.
              if (asView && pad > 0) expect(r.data === data).toBe(true)
            }
          ),
          { numRuns: 60 }
        )
      )
    })))

  it.live("transfers a whole buffer and returns its memory; many concurrent jobs each get their own answer", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* Hasher.makePool({ workers: 2, inlineMax: 1024 })
      const one = new Uint8Array(1 << 20)
      one.set(randomBytes(1 << 20, 5))
      const want = Bytes.sha1(one)
      const r = yield* pool.sha1(one)
      expect(one.byteLength).toBe(0) // detached while in the worker
      expect(r.data.byteLength).toBe(1 << 20)
      expect(Bytes.equals(r.digest, want)).toBe(true)
      expect(Bytes.equals(Bytes.sha1(r.data), want)).toBe(true)

      const inputs = Array.from({ length: 40 }, (_, i) => randomBytes(20_000 + i * 997, i + 3))
      const wants = inputs.map((d) => Bytes.toHex(Bytes.sha1(d)))
      const results = yield* Effect.forEach(inputs, (d) => pool.sha1(d), { concurrency: "unbounded" })
      expect(results.map((x) => Bytes.toHex(x.digest))).toEqual(wants)
      expect(pool.liveWorkers()).toBe(2)
    })))

  it.live("starts workers on demand and terminates them all when the scope closes", () =>
    Effect.gen(function*() {
      let pool: Hasher.PoolHasher | undefined
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* Hasher.makePool({ workers: 3, inlineMax: 0 })
        pool = p
        expect(p.liveWorkers()).toBe(0)
        yield* Effect.forEach(Array.from({ length: 9 }, (_, i) => randomBytes(50_000, i + 1)), p.sha1, {
          concurrency: "unbounded"
        })
        expect(p.liveWorkers()).toBe(3)
      }))
      expect(pool!.liveWorkers()).toBe(0)
      // After close, hashing still answers (inline), it never hangs.
      const r = yield* pool!.sha1(Bytes.encodeUtf8("abc"))
      expect(Bytes.toHex(r.digest)).toBe("a9993e364706816aba3e25717850c26c9cd0d89d")
    }))

  it.live("warm starts one worker ahead of the first job, and the jobs use it; nothing after close", () =>
    Effect.gen(function*() {
      let pool: Hasher.PoolHasher | undefined
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* Hasher.makePool({ workers: 2, inlineMax: 0 })
        pool = p
        expect(p.liveWorkers()).toBe(0)
        yield* p.warm!
        expect(p.liveWorkers()).toBe(1)
        yield* p.warm!
        expect(p.liveWorkers()).toBe(1) // one worker is enough to be ready; more start under load
        const data = randomBytes(100_000, 7)
        const want = Bytes.toHex(Bytes.sha1(data))
        const r = yield* p.sha1(data)
        expect(Bytes.toHex(r.digest)).toBe(want)
        expect(p.liveWorkers()).toBe(1) // the idle, warmed worker took the job
      }))
      expect(pool!.liveWorkers()).toBe(0)
      yield* pool!.warm!
      expect(pool!.liveWorkers()).toBe(0)
    }))

  it.live("works with PiecePool buffers: release after hashing puts the returned memory back", () =>
    Effect.scoped(Effect.gen(function*() {
      const hasher = yield* Hasher.makePool({ workers: 1, inlineMax: 0 })
      const pieces = PiecePool.make({ maxFree: 4 })
      const a = pieces.acquire(100_000)
      a.set(randomBytes(100_000, 1))
      const r = yield* hasher.sha1(a)
      pieces.release(a) // detached: dropped
      expect(pieces.free()).toBe(0)
      pieces.release(r.data)
      expect(pieces.free()).toBe(1)
      expect(pieces.acquire(100_000)).toBe(r.data)
    })))
})

describe("Hasher layers", () => {
  it.live("layerPool provides a Hasher that agrees with inline", () =>
    Effect.gen(function*() {
      const h = yield* Hasher.Hasher
      const data = randomBytes(2 << 20, 9)
      const want = Bytes.sha1(data)
      expect(Bytes.equals((yield* h.sha1(data)).digest, want)).toBe(true)
    }).pipe(Effect.provide(Hasher.layerPool({ workers: 1 }))))
})

describe("Hasher v2 (BEP 52 piece roots)", () => {
  /** The reference: core/Merkle over the piece's own leaves, padded to `width` leaves. */
  const reference = (data: Uint8Array, job: Hasher.V2Job) =>
    Merkle.rootOf(Merkle.leafHashes(data.subarray(0, job.dataLength)), 0, job.width)

  it.live("workers, inline and the pool's inline path agree with core/Merkle; the SHA-1 covers the whole buffer", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* Hasher.makePool({ workers: 2, inlineMax: 20_000 })
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(
            FastCheck.integer({ min: 0, max: 4 }), // log2 of the piece's leaves
            FastCheck.integer({ min: 1, max: 1 << 16 }),
            FastCheck.boolean(),
            async (k, cut, sha1) => {
              const width = 2 ** k
              const size = width * Merkle.BLOCK_SIZE
              const dataLength = 1 + (cut % size)
              const bytes = new Uint8Array(size)
              bytes.set(randomBytes(dataLength, cut))
              const job: Hasher.V2Job = { dataLength, width, sha1 }
              const want = Bytes.toHex(reference(bytes, job))
              for (const h of [Hasher.inline, pool]) {
                const r = await Effect.runPromise(Hasher.v2Piece(h, bytes.slice(), job))
                expect(Bytes.toHex(r.root)).toBe(want)
                expect(r.sha1 === undefined ? undefined : Bytes.toHex(r.sha1)).toBe(sha1 ? Bytes.toHex(Bytes.sha1(bytes)) : undefined)
                expect(Bytes.equals(r.data, bytes)).toBe(true)
              }
            }
          ),
          { numRuns: 60 }
        )
      )
    })))

  it.effect("a hasher without v2 (an older implementation) falls back to inline", () =>
    Effect.gen(function*() {
      const data = randomBytes(40_000, 3)
      const job: Hasher.V2Job = { dataLength: 40_000, width: 4, sha1: false }
      const r = yield* Hasher.v2Piece({ sha1: Hasher.inline.sha1 }, data, job)
      expect(Bytes.toHex(r.root)).toBe(Bytes.toHex(reference(data, job)))
    }))
})
