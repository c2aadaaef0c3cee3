/**
 * `create`'s file handles (Creator.hashPieces): each opened file is closed exactly once on success, failure and
 * interruption, a failed close is reported, and a read still in flight when hashing is interrupted never writes into
 * a buffer handed out again. `node:fs/promises` is wrapped (only `open`) so a test can hold an open or a read back,
 * or make a close fail, at a chosen moment.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Fs from "node:fs"
import type * as FsPromises from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { vi } from "vitest"
import * as Creator from "../../src/storage/Creator.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as PiecePool from "../../src/storage/PiecePool.ts"
import { randomBytes } from "./support.ts"

type Open = typeof FsPromises.open

const hooks = vi.hoisted(() => ({
  /** Replaces `open` while set; gets the real one. */
  open: undefined as undefined | ((real: Open, ...args: Parameters<Open>) => ReturnType<Open>),
  /** Every handle opened through the wrapper. */
  opened: [] as Array<FsPromises.FileHandle>
}))

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>()
  const open = (async (...args: Parameters<Open>) => {
    const fh = await (hooks.open !== undefined ? hooks.open(real.open, ...args) : real.open(...args))
    hooks.opened.push(fh)
    return fh
  }) as Open
  return { ...real, open, default: { ...real, open } }
})

const dirs: Array<string> = []
afterAll(() => dirs.forEach((d) => Fs.rmSync(d, { recursive: true, force: true })))

/** Three files of 40,000 bytes; 16 KiB pieces span them. */
const scanned = Effect.suspend(() => {
  const root = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-create-fd-")), "in")
  dirs.push(Path.dirname(root))
  for (const [i, name] of ["a", "b", "c"].entries()) {
    Fs.mkdirSync(root, { recursive: true })
    Fs.writeFileSync(Path.join(root, name), randomBytes(40_000, i + 1))
  }
  return Creator.scan(root)
})

/** A handle whose methods behave as `fh`'s, except those given. */
const override = (fh: FsPromises.FileHandle, methods: Partial<Record<"close" | "read", (...args: Array<any>) => any>>) =>
  new Proxy(fh, {
    get: (target, key) => {
      const own = (methods as Record<PropertyKey, unknown>)[key]
      if (own !== undefined) return own
      const v = Reflect.get(target, key, target)
      return typeof v === "function" ? v.bind(target) : v
    }
  })

const isClosed = (fh: FsPromises.FileHandle) => fh.fd === -1

const reset = () => {
  hooks.open = undefined
  hooks.opened.length = 0
}

describe("Creator file handles", () => {
  it.live("every file opened is closed exactly once when hashing succeeds", () =>
    Effect.gen(function*() {
      reset()
      const s = yield* scanned
      const closes = new Map<FsPromises.FileHandle, number>()
      hooks.open = async (real, ...args) => {
        const fh = await real(...args)
        return override(fh, {
          close: () => {
            closes.set(fh, (closes.get(fh) ?? 0) + 1)
            return fh.close()
          }
        })
      }
      yield* Creator.hashPieces(s.files, { pieceLength: 16384, concurrency: 3 })
      // Concurrent pieces may reopen a file (one is open at a time), so at least one open per file.
      expect(hooks.opened.length).toBeGreaterThanOrEqual(3)
      expect(hooks.opened.every(isClosed)).toBe(true)
      expect([...closes.values()].every((n) => n === 1)).toBe(true)
      expect(closes.size).toBe(hooks.opened.length)
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.live("a failed close is a `read` error naming the file (EBADF is never dropped), not a success", () =>
    Effect.gen(function*() {
      reset()
      const s = yield* scanned
      hooks.open = async (real, ...args) => {
        const fh = await real(...args)
        return override(fh, {
          close: async () => {
            await fh.close()
            throw Object.assign(new Error("EBADF: bad file descriptor, close"), { code: "EBADF" })
          }
        })
      }
      const r = yield* Effect.either(Creator.hashPieces(s.files, { pieceLength: 16384 }))
      expect(Either.isLeft(r)).toBe(true)
      const err = Either.flip(r).pipe(Either.getOrThrow)
      expect(err.reason).toBe("read")
      expect(err.detail).toContain("EBADF")
      expect(err.path).toBe(s.files[0]!.source.toString())
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.live("interrupted while a file is being opened: the handle is still closed once the open completes", () =>
    Effect.gen(function*() {
      reset()
      const s = yield* scanned
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      hooks.open = async (real, ...args) => {
        Effect.runSync(Deferred.succeed(started, undefined))
        await Effect.runPromise(Deferred.await(gate))
        return real(...args)
      }
      const fiber = yield* Effect.fork(Creator.hashPieces(s.files, { pieceLength: 16384 }))
      yield* Deferred.await(started)
      yield* Fiber.interruptFork(fiber)
      yield* Effect.sleep("20 millis")
      yield* Deferred.succeed(gate, undefined)
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* Effect.sleep("20 millis") // an abandoned open would land by now
      expect(hooks.opened.length).toBe(1)
      expect(isClosed(hooks.opened[0]!)).toBe(true)
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.live("interrupted while a read is in flight: the file is closed once, the read's buffer is never reused", () =>
    Effect.gen(function*() {
      reset()
      const s = yield* scanned
      const pool = PiecePool.make({ maxFree: 8 })
      const reading = yield* Deferred.make<Uint8Array>()
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      hooks.open = async (real, ...args) => {
        const fh = await real(...args)
        return override(fh, {
          read: async (buf: Uint8Array, ...rest: Array<any>) => {
            // The real read is in flight (the handle counts it: a close waits for it); its answer is held back.
            const r = (fh.read as (...a: Array<any>) => Promise<FsPromises.FileReadResult<Uint8Array>>)(buf, ...rest)
            Effect.runSync(Deferred.succeed(reading, buf))
            await Effect.runPromise(Deferred.await(gate))
            return r
          },
          close: async () => {
            order.push("close")
            return fh.close()
          }
        })
      }
      const fiber = yield* Effect.fork(Creator.hashPieces(s.files, { pieceLength: 16384, concurrency: 2, pool }))
      const buf = yield* Deferred.await(reading)
      yield* Fiber.interruptFork(fiber)
      yield* Effect.sleep("20 millis")
      yield* Deferred.succeed(gate, undefined)
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* Effect.sleep("20 millis")
      expect(hooks.opened.every(isClosed)).toBe(true)
      // The buffer the abandoned read filled was not handed back to the pool.
      for (let i = 0; i < pool.free(); i++) expect(pool.acquire(buf.length).buffer).not.toBe(buf.buffer)
      expect(order.filter((o) => o === "close")).toHaveLength(1)
    }).pipe(Effect.provide(Hasher.layerInline)))
})
