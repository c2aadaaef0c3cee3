/**
 * The hash worker pool's lifecycle: workers, the ArrayBuffers transferred to them, and jobs in flight when a worker
 * dies, a reply cannot be read, or the pool's scope closes. Every job ends exactly once (its digest, or a defect
 * naming why), none hangs, and no worker outlives the scope.
 *
 * `node:worker_threads` is wrapped: with `hooks.fake` set, `Worker` is an in-process fake whose replies, crashes and
 * exits are delivered when fast-check's scheduler says, so the model-based test explores their interleavings with
 * submissions and the scope's close; otherwise the real Worker is used and each instance recorded.
 */
import { createHash } from "node:crypto"
import { EventEmitter } from "node:events"
import type * as WorkerThreads from "node:worker_threads"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import { vi } from "vitest"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Hasher from "../../src/storage/Hasher.ts"

interface Fake extends EventEmitter {
  terminated: boolean
  /** Its next reply arrives as a "messageerror". */
  garbled: boolean
  refs: number
}

const hooks = vi.hoisted(() => ({
  /** When set, workers are fakes created by this function. */
  fake: undefined as undefined | ((self: unknown) => void),
  workers: [] as Array<unknown>
}))

vi.mock("node:worker_threads", async (importOriginal) => {
  const real = await importOriginal<typeof WorkerThreads>()
  const Worker = function(this: unknown, ...args: Array<unknown>) {
    if (hooks.fake !== undefined) {
      const w = new EventEmitter() as EventEmitter & Record<string, unknown>
      hooks.fake(w)
      hooks.workers.push(w)
      return w
    }
    const w = new (real.Worker as unknown as new(...a: Array<unknown>) => WorkerThreads.Worker)(...args)
    hooks.workers.push(w)
    return w
  } as unknown as typeof real.Worker
  return { ...real, Worker, default: { ...real, Worker } }
})

const sha1Hex = (bytes: Uint8Array) => Bytes.toHex(createHash("sha1").update(bytes).digest())

/** A whole buffer of `n` bytes with a recognisable pattern. */
const piece = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff)

describe("Hasher pool (real workers): jobs in flight", () => {
  it.live("a worker killed under a job: the job fails with a defect at once, the next job gets a new worker", () =>
    Effect.scoped(Effect.gen(function*() {
      hooks.fake = undefined
      hooks.workers.length = 0
      const pool = yield* Hasher.makePool({ workers: 1, inlineMax: 0 })
      yield* pool.sha1(piece(1 << 16, 1)) // starts the worker
      const w = hooks.workers[0] as WorkerThreads.Worker
      const job = yield* Effect.fork(pool.sha1(piece(8 << 20, 2)))
      yield* Effect.promise(() => w.terminate())
      const exit = yield* Fiber.await(job).pipe(Effect.timeout("2 seconds"))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(pool.liveWorkers()).toBe(0)
      const data = piece(1 << 16, 3)
      const want = sha1Hex(data)
      const r = yield* pool.sha1(data)
      expect(Bytes.toHex(r.digest)).toBe(want)
      expect(pool.liveWorkers()).toBe(1)
    })))

  it.live("a reply that cannot be read fails the worker's jobs (they used to hang) and stops that worker", () =>
    Effect.scoped(Effect.gen(function*() {
      hooks.fake = undefined
      hooks.workers.length = 0
      const pool = yield* Hasher.makePool({ workers: 1, inlineMax: 0 })
      yield* pool.sha1(piece(1 << 16, 1))
      const w = hooks.workers[0] as WorkerThreads.Worker
      const exited = new Promise<number>((resolve) => w.once("exit", resolve))
      const job = yield* Effect.fork(pool.sha1(piece(8 << 20, 2)))
      yield* Effect.yieldNow()
      w.emit("messageerror", new Error("could not deserialize"))
      const exit = yield* Fiber.await(job).pipe(Effect.timeout("2 seconds"))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      yield* Effect.promise(() => exited).pipe(Effect.timeout("2 seconds"))
      expect(pool.liveWorkers()).toBe(0)
    })))

  it.live("the scope closes with a job in flight: the job ends (a defect), never hangs; no worker is left", () =>
    Effect.gen(function*() {
      hooks.fake = undefined
      hooks.workers.length = 0
      const scope = yield* Scope.make()
      const pool = yield* Scope.extend(Hasher.makePool({ workers: 2, inlineMax: 0 }), scope)
      const data = piece(16 << 20, 4)
      const job = yield* Effect.fork(pool.sha1(data))
      yield* Effect.yieldNow()
      expect(data.byteLength).toBe(0) // transferred: the caller no longer holds it
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(job).pipe(Effect.timeout("2 seconds"))
      // Either the worker answered before it was stopped, or the job died with it: never a hang.
      expect(Exit.isSuccess(exit) || Cause.isDie(exit.cause)).toBe(true)
      expect(pool.liveWorkers()).toBe(0)
      expect((hooks.workers as Array<WorkerThreads.Worker>).every((w) => w.threadId === -1)).toBe(true)
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// Model-based: a fake worker whose every event is scheduled by fast-check

type Step =
  | { readonly op: "submit"; readonly size: number; readonly view: boolean }
  | { readonly op: "crash"; readonly worker: number }
  | { readonly op: "garble"; readonly worker: number }
  | { readonly op: "close" }

const stepArb: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.record({ op: FastCheck.constant("submit" as const), size: FastCheck.integer({ min: 1, max: 300 }), view: FastCheck.boolean() }) },
  { weight: 1, arbitrary: FastCheck.record({ op: FastCheck.constant("crash" as const), worker: FastCheck.nat(5) }) },
  { weight: 1, arbitrary: FastCheck.record({ op: FastCheck.constant("garble" as const), worker: FastCheck.nat(5) }) },
  { weight: 1, arbitrary: FastCheck.record({ op: FastCheck.constant("close" as const) }) }
)

describe("Hasher pool (model, fast-check scheduler)", () => {
  it("every job ends exactly once with the right digest and its own bytes, or a defect; none hangs; none outlives close", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(FastCheck.scheduler(), FastCheck.array(stepArb, { minLength: 1, maxLength: 25 }), async (s, steps) => {
        hooks.workers.length = 0
        const fakes: Array<Fake> = []
        hooks.fake = (self) => {
          const w = self as Fake & Record<string, unknown>
          w.terminated = false
          w.garbled = false
          w.refs = 0
          w["ref"] = () => void w.refs++
          w["unref"] = () => void (w.refs = 0)
          // A reply computed now (the bytes as they are when posted), delivered when the scheduler says.
          w["postMessage"] = (m: { id: number; buffer: ArrayBuffer; offset: number; length: number }, transfer: Array<ArrayBuffer>) => {
            const moved = structuredClone(m.buffer, { transfer }) // detaches the sender's buffer, like a real transfer
            const digest = new Uint8Array(createHash("sha1").update(new Uint8Array(moved, m.offset, m.length)).digest())
            void s.schedule(Promise.resolve(), `reply ${m.id}`).then(() => {
              if (w.terminated) return
              // A garbled worker's next reply cannot be deserialized: Node emits "messageerror" instead.
              if (w.garbled) {
                w.garbled = false
                w.emit("messageerror", new Error("garbled reply"))
              } else w.emit("message", { id: m.id, digest, buffer: moved })
            })
          }
          w["terminate"] = () => {
            const done = s.schedule(Promise.resolve(), "exit").then(() => {
              if (w.terminated) return 1
              w.terminated = true
              w.emit("exit", 1)
              return 1
            })
            return done
          }
          fakes.push(w)
        }
        const scope = Effect.runSync(Scope.make())
        const pool = Effect.runSync(Scope.extend(Hasher.makePool({ workers: 3, inlineMax: 0 }), scope))
        const jobs: Array<{ want: string; copy: Uint8Array; settled: number }> = []
        const wrong: Array<string> = []
        let closed = false
        let closing = false
        const close = () => {
          closing = true
          void Effect.runPromise(Scope.close(scope, Exit.void)).then(() => void (closed = true))
        }
        for (const step of steps) {
          if (step.op === "submit") {
            const bytes = piece(step.size + 8, jobs.length)
            const data = step.view ? bytes.subarray(4, 4 + step.size) : bytes.slice(4, 4 + step.size)
            const copy = data.slice()
            const job = { want: sha1Hex(copy), copy, settled: 0 }
            void Effect.runPromiseExit(pool.sha1(data)).then((exit) => {
              job.settled++
              if (Exit.isSuccess(exit)) {
                if (Bytes.toHex(exit.value.digest) !== job.want) wrong.push(`job ${jobs.indexOf(job)}: wrong digest`)
                if (!Bytes.equals(exit.value.data, job.copy)) wrong.push(`job ${jobs.indexOf(job)}: wrong bytes back`)
              } else if (!Cause.isDie(exit.cause)) wrong.push(`job ${jobs.indexOf(job)}: ${Cause.pretty(exit.cause)}`)
            })
            jobs.push(job)
          } else if (step.op === "crash" || step.op === "garble") {
            const w = fakes[step.worker % Math.max(1, fakes.length)]
            if (w !== undefined && !w.terminated) {
              const event = step.op
              void s.schedule(Promise.resolve(), `${event} a worker`).then(() => {
                if (w.terminated) return
                if (event === "crash") {
                  w.emit("error", new Error("worker crashed"))
                  w.terminated = true
                  w.emit("exit", 1)
                } else w.garbled = true
              })
            }
          } else if (!closing) close()
        }
        // Runs every scheduled event (in the order fast-check picks), letting fibers resume in between.
        const drain = async (done: () => boolean) => {
          for (let i = 0; i < 50 && !(s.count() === 0 && done()); i++) {
            await s.waitAll()
            await new Promise((resolve) => setTimeout(resolve, 0))
          }
        }
        if (!closing) {
          // No close in this run: every job must end while the pool is open (a lost reply must not wait for it).
          await drain(() => jobs.every((j) => j.settled > 0))
          expect(jobs.filter((j) => j.settled === 0).length).toBe(0)
          close()
        }
        await drain(() => closed && jobs.every((j) => j.settled > 0))
        expect(wrong).toEqual([])
        expect(jobs.map((j) => j.settled)).toEqual(jobs.map(() => 1)) // none hangs, none ends twice
        expect(closed).toBe(true)
        expect(pool.liveWorkers()).toBe(0)
        expect(fakes.every((w) => w.terminated)).toBe(true)
      }),
      { numRuns: 150 }
    )
    hooks.fake = undefined
  })
})
