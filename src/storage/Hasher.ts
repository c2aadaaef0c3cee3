/**
 * The `Hasher` port: SHA-1 of piece data, inline or in a `worker_threads` pool (THROUGHPUT.md rule 7); and for
 * BEP 52, a piece's Merkle root over its 16 KiB SHA-256 leaves (optionally with the SHA-1 of the same buffer, as a
 * hybrid's v1 piece), through the same pool ({@link v2Piece}).
 *
 * Ownership: `sha1(data)` takes `data`; the bytes come back in `HashResult.data`. The pool transfers the
 * ArrayBuffer to a worker and back (never SharedArrayBuffer, rule 8), so when `data` is a whole ArrayBuffer
 * (`byteOffset` 0, same length as its buffer, as PiecePool hands out) the caller's view is detached meanwhile and
 * `HashResult.data` is a new view over the same memory. A view into a larger buffer (a socket chunk, Node's pool
 * slab) is copied once into a fresh buffer instead and handed back unchanged. Inline hashing returns `data` itself.
 *
 * The worker's source is a string constant run with `new Worker(code, { eval: true })`: it needs no file next to
 * the module, so it works the same from TS sources (vitest, tsx) and from the esbuild single-file bundle.
 *
 * Lifecycle (docs/RELIABILITY.md, descriptors and other OS resources): workers start on demand and are terminated
 * when the pool's scope closes. A job ends exactly once: with its digest, or with a defect when its worker fails
 * (an "error", an exit, or a reply that cannot be deserialized: that worker is then terminated) or is terminated
 * under it by the scope's close. A job's memory is the worker's while it runs; a caller interrupted meanwhile
 * simply never gets it back. After the scope closes, hashing still answers, inline.
 */
import { createHash } from "node:crypto"
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Merkle from "../core/Merkle.ts"

export interface HashResult {
  /** 20 bytes. */
  readonly digest: Uint8Array
  /** The hashed bytes: `data` itself, or a new view over its (transferred and returned) memory. */
  readonly data: Uint8Array
}

/** A BEP 52 piece to hash: the Merkle root of its leaves, and for a hybrid the SHA-1 of the whole buffer. */
export interface V2Job {
  /** Bytes at the start of the buffer that are file data; the rest (a hybrid's v1 pad) is zeros and not leaves. */
  readonly dataLength: number
  /**
   * Leaves the piece's subtree spans (a power of two): `pieceLength / 16 KiB` for a file longer than a piece, the
   * file's own padded leaf count for a shorter one (`Merkle.pieceRoot`'s rule).
   */
  readonly width: number
  /** Also the SHA-1 of the whole buffer (a hybrid's v1 piece: the data, then zeros to the piece length). */
  readonly sha1: boolean
}

export interface V2Result {
  /** 32 bytes: `Merkle.pieceRoot` of the piece's data. */
  readonly root: Uint8Array
  /** 20 bytes, when asked for. */
  readonly sha1: Uint8Array | undefined
  /** The hashed bytes, as for {@link HashResult.data}. */
  readonly data: Uint8Array
}

export interface HasherShape {
  readonly sha1: (data: Uint8Array) => Effect.Effect<HashResult>
  /** BEP 52 hashing; optional, so older implementations stay valid ({@link v2Piece} falls back to inline). */
  readonly v2?: ((data: Uint8Array, job: V2Job) => Effect.Effect<V2Result>) | undefined
  /**
   * Hashing starts soon: get ready now. Optional. The pool starts its first worker here, so that the worker (0.1–0.15 s
   * to come up on this machine) is running by the time the first piece completes, not started by it (a 512 MiB
   * download: 0.94 × the CPU, peak RSS 117 against 130 MiB; docs/PERFORMANCE.md).
   */
  readonly warm?: Effect.Effect<void> | undefined
}

export class Hasher extends Context.Tag("effect-torrent/Hasher")<Hasher, HasherShape>() {}

const sha1Sync = (data: Uint8Array): Uint8Array => new Uint8Array(createHash("sha1").update(data).digest())

const v2Sync = (data: Uint8Array, job: V2Job): V2Result => ({
  root: Merkle.rootOf(Merkle.leafHashes(data.subarray(0, job.dataLength)), 0, job.width),
  sha1: job.sha1 ? sha1Sync(data) : undefined,
  data
})

/** Hashes on the calling thread: about 0.5–0.9 ms per MiB here, so fine for pieces up to ~1 MiB. */
export const inline: HasherShape = {
  sha1: (data) => Effect.sync(() => ({ digest: sha1Sync(data), data })),
  v2: (data, job) => Effect.sync(() => v2Sync(data, job))
}

/** A v2 piece through `hasher`: its own `v2` when it has one (the pool: workers), else inline. */
export const v2Piece = (hasher: HasherShape, data: Uint8Array, job: V2Job): Effect.Effect<V2Result> =>
  hasher.v2 !== undefined ? hasher.v2(data, job) : Effect.sync(() => v2Sync(data, job))

export const layerInline: Layer.Layer<Hasher> = Layer.succeed(Hasher, inline)

export interface PoolOptions {
  /** Worker threads, started on demand. Default: available parallelism - 1, between 1 and 4. */
  readonly workers?: number
  /** Data of at most this many bytes is hashed inline (a worker round trip costs more). Default 64 KiB. */
  readonly inlineMax?: number
}

export interface PoolHasher extends HasherShape {
  /** Worker threads currently alive (for tests and metrics). */
  readonly liveWorkers: () => number
}

/**
 * Default `inlineMax`: a round trip to a worker costs tens of microseconds, SHA-1 of 64 KiB about as much. Pieces
 * (256 KiB and up) go to the workers: hashing 1 MiB inline took 1.35 ms of the event loop on this machine's Xeon
 * (1.2 s per GiB on the thread that also parses every block), and on 2 cores a worker runs it beside that thread.
 */
export const DEFAULT_INLINE_MAX = 64 * 1024

// The worker computes a v2 piece's root the way core/Merkle.ts does (tested equal in test/storage/Hasher.test.ts):
// SHA-256 of each 16 KiB leaf, then pairs up to one node, a subtree past the data standing as its pad hash.
const WORKER_SOURCE = `"use strict"
const { parentPort } = require("node:worker_threads")
const { createHash } = require("node:crypto")
const sha256 = (b) => createHash("sha256").update(b).digest()
const pads = [Buffer.alloc(32)]
const pad = (k) => {
  while (pads.length <= k) pads.push(sha256(Buffer.concat([pads[pads.length - 1], pads[pads.length - 1]])))
  return pads[k]
}
const pieceRoot = (data, width) => {
  let level = []
  for (let o = 0; o < data.length; o += 16384) level.push(sha256(data.subarray(o, o + 16384)))
  if (level.length === 0) level.push(pad(0))
  let k = 0
  for (let w = width; w > 1; w /= 2, k++) {
    const next = []
    for (let i = 0; i < level.length; i += 2) next.push(sha256(Buffer.concat([level[i], level[i + 1] ?? pad(k)])))
    level = next
  }
  return new Uint8Array(level[0])
}
parentPort.on("message", (m) => {
  const data = new Uint8Array(m.buffer, m.offset, m.length)
  if (m.v2 === undefined) {
    const digest = new Uint8Array(createHash("sha1").update(data).digest())
    parentPort.postMessage({ id: m.id, digest, buffer: m.buffer }, [m.buffer])
    return
  }
  const root = pieceRoot(data.subarray(0, m.v2.dataLength), m.v2.width)
  const digest = m.v2.sha1 ? new Uint8Array(createHash("sha1").update(data).digest()) : undefined
  parentPort.postMessage({ id: m.id, digest, root, buffer: m.buffer }, [m.buffer])
})
`

/** A worker's answer: the SHA-1 (sha1 jobs, v2 jobs asking for it) and the root (v2 jobs). */
interface Reply {
  readonly digest: Uint8Array | undefined
  readonly root: Uint8Array | undefined
  readonly data: Uint8Array
}

interface Job {
  readonly resume: (r: Effect.Effect<Reply>) => void
  readonly offset: number
  readonly length: number
  /** The caller's view when the pool hashed a copy; returned as is. */
  readonly original: Uint8Array | undefined
}

interface Slot {
  readonly worker: Worker
  readonly jobs: Map<number, Job>
  alive: boolean
}

const isWholeBuffer = (data: Uint8Array): boolean =>
  data.buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength

/** A pool of SHA-1 workers; they are terminated when the scope closes. */
export const makePool = (options: PoolOptions = {}): Effect.Effect<PoolHasher, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new Pool(options)),
      (pool) => Effect.promise(() => pool.terminate())
    ),
    (pool): PoolHasher => ({
      sha1: (data) =>
        data.byteLength <= pool.inlineMax
          ? inline.sha1(data)
          : Effect.map(
            Effect.async<Reply>((resume) => pool.submit(data, resume, undefined)),
            (r): HashResult => ({ digest: r.digest!, data: r.data })
          ),
      v2: (data, job) =>
        data.byteLength <= pool.inlineMax
          ? Effect.sync(() => v2Sync(data, job))
          : Effect.map(
            Effect.async<Reply>((resume) => pool.submit(data, resume, job)),
            (r): V2Result => ({ root: r.root!, sha1: r.digest, data: r.data })
          ),
      warm: Effect.sync(() => pool.prestart()),
      liveWorkers: () => pool.live
    })
  )

export const layerPool = (options: PoolOptions = {}): Layer.Layer<Hasher> => Layer.scoped(Hasher, makePool(options))

/** The default: inline up to 64 KiB, a pool (workers started on demand) above. */
export const layer: Layer.Layer<Hasher> = layerPool()

class Pool {
  readonly size: number
  readonly inlineMax: number
  readonly slots: Array<Slot>
  nextId: number
  closed: boolean
  live: number

  constructor(options: PoolOptions) {
    this.size = Math.max(1, Math.floor(options.workers ?? Math.min(4, Math.max(1, availableParallelism() - 1))))
    this.inlineMax = options.inlineMax ?? DEFAULT_INLINE_MAX
    this.slots = []
    this.nextId = 0
    this.closed = false
    this.live = 0
  }

  submit(data: Uint8Array, resume: (r: Effect.Effect<Reply>) => void, v2: V2Job | undefined): void {
    if (this.closed) {
      resume(Effect.sync(() => {
        if (v2 === undefined) return { digest: sha1Sync(data), root: undefined, data }
        const r = v2Sync(data, v2)
        return { digest: r.sha1, root: r.root, data }
      }))
      return
    }
    const slot = this.pick()
    const id = this.nextId++
    const whole = isWholeBuffer(data)
    // A view into a larger buffer is copied, so the worker never receives (or detaches) memory it does not own.
    const buffer = (whole ? data.buffer : data.slice().buffer) as ArrayBuffer
    const original = whole ? undefined : data
    slot.jobs.set(id, { resume, offset: 0, length: data.byteLength, original })
    if (slot.jobs.size === 1) slot.worker.ref()
    const message = { id, buffer, offset: 0, length: data.byteLength }
    slot.worker.postMessage(v2 === undefined ? message : { ...message, v2 }, [buffer])
  }

  /** Starts the first worker ahead of the first job (none when one runs or the pool is closed). */
  prestart(): void {
    if (!this.closed && this.live === 0) this.spawn()
  }

  /** The least busy live worker, starting a new one while fewer than `size` run and all are busy. */
  private pick(): Slot {
    let best: Slot | undefined
    for (const s of this.slots) if (s.alive && (best === undefined || s.jobs.size < best.jobs.size)) best = s
    if (best !== undefined && (best.jobs.size === 0 || this.live >= this.size)) return best
    return this.spawn()
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true })
    const slot: Slot = { worker, jobs: new Map(), alive: true }
    this.live++
    this.slots.push(slot)
    worker.unref() // only pending jobs keep the process alive
    worker.on("message", (m: { id: number; digest?: Uint8Array; root?: Uint8Array; buffer: ArrayBuffer }) => {
      const job = slot.jobs.get(m.id)
      if (job === undefined) return
      slot.jobs.delete(m.id)
      if (slot.jobs.size === 0) worker.unref()
      const data = job.original ?? new Uint8Array(m.buffer, job.offset, job.length)
      job.resume(Effect.succeed({ digest: m.digest, root: m.root, data }))
    })
    const fail = (cause: unknown) => {
      if (!slot.alive) return
      slot.alive = false
      this.live--
      const at = this.slots.indexOf(slot)
      if (at >= 0) this.slots.splice(at, 1)
      for (const job of slot.jobs.values()) job.resume(Effect.die(cause))
      slot.jobs.clear()
    }
    worker.on("error", fail)
    worker.on("exit", (code) => fail(new Error(`hash worker exited with code ${code}`)))
    // A reply that cannot be deserialized belongs to a job we cannot name: every job of this worker fails (they
    // used to wait forever, the worker referenced, so the process never exited) and the worker is stopped.
    worker.on("messageerror", (cause) => {
      fail(cause)
      void worker.terminate()
    })
    return slot
  }

  terminate(): Promise<void> {
    this.closed = true
    const slots = this.slots.splice(0)
    return Promise.all(slots.map((s) => s.worker.terminate())).then(() => undefined)
  }
}
