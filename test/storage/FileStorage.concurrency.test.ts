/**
 * Model-based concurrency test of FileStorage's descriptor cache (issue 13): several fibers write, read, flush,
 * check and stat a many-file torrent through a cache of 1–4 descriptors, on the model kernel of modelKernel.ts,
 * while fast-check chooses the order in which every pending call completes and, sometimes, the moment the
 * storage's scope closes. Invariants: every byte lands in its own file at its own offset, no descriptor is used
 * after close or closed twice or closed under a pending call, flushed data is durable, reads see what was
 * written, no deadlock, nothing left open, never more than maxOpenFiles descriptors, and our own writes are never
 * mistaken for a change by another process (no "changed" error, from writes or from `audit`). A piece's write goes
 * out in 1, 2 or 8 calls at once, the kernel sometimes writes half of each call, and the caller scribbles over its
 * buffer as soon as the write returns: a call still pending then would put the scribble on disk.
 */
import { describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Path from "node:path"
import type * as Lengths from "../../src/core/Lengths.ts"
import * as FileLayout from "../../src/metainfo/FileLayout.ts"
import * as FileStorage from "../../src/storage/FileStorage.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import type * as Storage from "../../src/storage/Storage.ts"
import { drive, makeKernel } from "./modelKernel.ts"
import { pieceOf, torrent } from "./support.ts"

const ROOT = "/out"

type Op =
  | { readonly _tag: "write"; readonly piece: number }
  | { readonly _tag: "read"; readonly piece: number }
  | { readonly _tag: "version"; readonly piece: number }
  | { readonly _tag: "flush" }
  | { readonly _tag: "check" }
  | { readonly _tag: "audit" }

interface Case {
  readonly files: ReadonlyArray<{ readonly length: number; readonly depth: number; readonly dir: number }>
  readonly pieceLength: number
  readonly maxOpen: number
  /** Piece write order, split among `writers` fibers (each piece written once, as a torrent does). */
  readonly order: ReadonlyArray<number>
  readonly writers: number
  /** Other fibers: readers, flushers, checkers; op pieces are taken modulo the piece count. */
  readonly others: ReadonlyArray<ReadonlyArray<Op>>
  /** Close the storage's scope after this many completed calls (undefined: after every fiber is done). */
  readonly closeAfter: number | undefined
  readonly rootExists: boolean
  /** Bytes per write call: a piece's extent written in several calls, other fibers running between them. */
  readonly writeChunk: number | undefined
  /** Calls of one write issued at once. */
  readonly writesInFlight: number
  /** The kernel writes half of what each call asks (the storage must loop). */
  readonly shortWrites: boolean
  /**
   * Inline writes (internal/InlineIo.ts): never, always, or with every third inline call slow, so that writes move
   * between the calling thread and the pool mid-run (the clock moves one ms per driver step).
   */
  readonly inline: "off" | "on" | "flaky"
  readonly choices: ReadonlyArray<number>
}

const opArb: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("read" as const), piece: FastCheck.nat(64) }), weight: 2 },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("version" as const), piece: FastCheck.nat(64) }), weight: 1 },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("flush" as const) }), weight: 3 },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("check" as const) }), weight: 1 },
  { arbitrary: FastCheck.record({ _tag: FastCheck.constant("audit" as const) }), weight: 1 }
)

const caseArb: FastCheck.Arbitrary<Case> = FastCheck.record({
  files: FastCheck.array(
    FastCheck.record({
      length: FastCheck.oneof(FastCheck.constant(0), FastCheck.integer({ min: 1, max: 2500 })),
      depth: FastCheck.nat(2),
      dir: FastCheck.nat(2)
    }),
    { minLength: 2, maxLength: 12 }
  ).filter((fs) => fs.some((f) => f.length > 0)),
  pieceLength: FastCheck.constantFrom(256, 512, 1024),
  maxOpen: FastCheck.integer({ min: 1, max: 4 }),
  order: FastCheck.constant([]),
  writers: FastCheck.integer({ min: 1, max: 4 }),
  others: FastCheck.array(FastCheck.array(opArb, { maxLength: 8 }), { maxLength: 3 }),
  closeAfter: FastCheck.option(FastCheck.nat(120), { nil: undefined, freq: 3 }),
  rootExists: FastCheck.boolean(),
  writeChunk: FastCheck.option(FastCheck.constantFrom(37, 100, 300), { nil: undefined }),
  writesInFlight: FastCheck.constantFrom(1, 2, 8),
  shortWrites: FastCheck.boolean(),
  inline: FastCheck.constantFrom("off" as const, "on" as const, "flaky" as const),
  choices: FastCheck.array(FastCheck.nat(), { maxLength: 400 })
}).chain((c) => {
  const total = c.files.reduce((n, f) => n + f.length, 0)
  const pieces = Math.ceil(total / c.pieceLength)
  return FastCheck.shuffledSubarray(Array.from({ length: pieces }, (_, i) => i), {
    minLength: pieces,
    maxLength: pieces
  }).map((order) => ({ ...c, order }))
})

const pathOf = (f: number, spec: Case["files"][number]) => [
  ...Array.from({ length: spec.depth }, (_, d) => `d${(spec.dir + d) % 3}`),
  `f${f}.bin`
]

/** Runs one case; returns the problems found (empty: all invariants hold). */
const runCase = async (c: Case): Promise<Array<string>> => {
  const t = torrent(c.files.map((f, i) => ({ length: f.length, path: pathOf(i, f) })), c.pieceLength, 11)
  const layout = Either.getOrThrow(FileLayout.make(t.files, t.pieceLength))
  const kernel = makeKernel()
  kernel.shortWrites = c.shortWrites
  let clock = 0
  let inlineCalls = 0
  kernel.onInline = () => {
    if (c.inline === "flaky" && ++inlineCalls % 3 === 0) clock += 20
  }
  kernel.mkdirp(c.rootExists ? ROOT : "/")
  const problems: Array<string> = []
  const state: Array<"unwritten" | "writing" | "written"> = Array.from({ length: t.pieceCount }, () => "unwritten")
  let closing = false
  let steps = 0
  let trigger: (() => void) | undefined
  const extentsOf = (i: number) => FileLayout.pieceDataExtents(layout, i as Lengths.PieceIndex)
  const filePath = (f: number) => Path.join(ROOT, ...t.files[f]!.path)
  /** The bytes of piece `i` as `view` (the kernel's page cache or its durable copy) holds them. */
  const pieceIn = (i: number, view: (path: string) => Uint8Array | undefined) => {
    const out = new Uint8Array(pieceOf(t, i).length)
    for (const e of extentsOf(i)) {
      const bytes = view(filePath(e.file))
      if (bytes !== undefined) out.set(bytes.subarray(e.fileOffset, e.fileOffset + e.length), e.bufferOffset)
    }
    return out
  }
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, k) => x === b[k])
  const isZero = (a: Uint8Array) => a.every((x) => x === 0)

  const guarded = (what: string, op: Effect.Effect<void, Storage.StorageError>) =>
    Effect.catchAll(op, (e) =>
      Effect.sync(() => {
        if (!(closing && e.reason === "closed")) problems.push(`${what}: unexpected ${e.message}`)
      }).pipe(Effect.zipRight(Effect.fail(e))))

  const run = (s: FileStorage.FileStorage, op: Op): Effect.Effect<void, Storage.StorageError> => {
    const piece = "piece" in op ? op.piece % t.pieceCount : 0
    switch (op._tag) {
      case "write":
        return guarded(
          `write ${piece}`,
          Effect.suspend(() => {
            state[piece] = "writing"
            const data = pieceOf(t, piece)
            return Effect.tap(s.writePiece(piece, data), () => {
              state[piece] = "written"
            }).pipe(
              // The buffer is ours again once the write returned (the pool reuses it): a call of the write still
              // pending would put these bytes on disk.
              Effect.ensuring(Effect.sync(() => data.fill(0xee)))
            )
          })
        )
      case "read":
        return guarded(
          `read ${piece}`,
          Effect.suspend(() => {
            const before = state[piece]
            return Effect.map(s.readPiece(piece), (got) => {
              if (before === "written" && !same(got, pieceOf(t, piece))) {
                problems.push(`read of piece ${piece} after its write returned other bytes`)
              }
              if (before === "unwritten" && state[piece] === "unwritten" && !isZero(got)) {
                problems.push(`read of unwritten piece ${piece} returned non-zero bytes (another file's?)`)
              }
            })
          })
        )
      case "version":
        return guarded(`version ${piece}`, Effect.asVoid(s.pieceVersion(piece)))
      case "flush":
        return guarded(
          "flush",
          Effect.suspend(() => {
            const written = state.flatMap((st, i) => (st === "written" ? [i] : []))
            return Effect.tap(s.flush, () => {
              for (const i of written) {
                if (!same(pieceIn(i, kernel.durable), pieceOf(t, i))) {
                  problems.push(`piece ${i}, written before a flush, is not durable after it`)
                }
              }
            })
          })
        )
      case "check":
        return guarded("check", Effect.asVoid(s.check))
      case "audit":
        // Nothing else touches the files: our own writes, in any interleaving, are never taken for a foreign change.
        return guarded("audit", s.audit(() => false))
    }
  }

  const program = Effect.gen(function*() {
    const scope = yield* Scope.make()
    const s = yield* FileStorage.make({
      outputDir: ROOT,
      files: t.files,
      pieceLength: t.pieceLength,
      pieceHashes: t.hashes,
      maxOpenFiles: c.maxOpen,
      syscalls: kernel.syscalls,
      writeChunk: c.writeChunk,
      writesInFlight: c.writesInFlight,
      inlineIo: c.inline === "off" ? { enabled: false } : { now: () => clock, slowMs: 10, slowCallsToPool: 1, backoffMs: 5 }
    }).pipe(Effect.provide(Hasher.layerInline), Scope.extend(scope))
    const closeNow = yield* Deferred.make<void>()
    trigger = () => Deferred.unsafeDone(closeNow, Exit.void)
    const lists: Array<ReadonlyArray<Op>> = Array.from({ length: c.writers }, (_, w) =>
      c.order.filter((_, k) => k % c.writers === w).map((piece): Op => ({ _tag: "write", piece })))
    lists.push(...c.others)
    const fibers = yield* Effect.forEach(lists, (ops) =>
      Effect.fork(Effect.ignore(Effect.forEach(ops, (op) => run(s, op), { discard: true }))))
    yield* Effect.race(Fiber.joinAll(fibers), Deferred.await(closeNow))
    closing = true
    yield* Scope.close(scope, Exit.void)
    yield* Fiber.joinAll(fibers)
    // Anything asked of a closed storage fails with "closed", and opens nothing.
    const after = yield* Effect.either(s.writePiece(0, pieceOf(t, 0)))
    if (after._tag !== "Left" || after.left.reason !== "closed") problems.push(`a write after close did not fail "closed": ${after._tag === "Left" ? after.left.message : "it succeeded"}`)
  })

  let k = 0
  const exit = await drive(program, kernel, () => c.choices[k++] ?? 0, (n) => {
    steps = n
    clock++
    if (c.closeAfter !== undefined && steps === c.closeAfter) trigger?.()
  })
  if (Exit.isFailure(exit)) problems.push(`program failed: ${String(exit.cause)}`)
  problems.push(...kernel.violations)
  if (kernel.openCount() !== 0) problems.push(`${kernel.openCount()} descriptor(s) left open`)
  if (kernel.peakOpen() > c.maxOpen) problems.push(`${kernel.peakOpen()} descriptors open at once (max ${c.maxOpen})`)
  // Every byte in its own file at its own offset: written pieces hold their bytes, the rest zeros; no file longer
  // than the torrent says.
  t.files.forEach((f, i) => {
    const bytes = kernel.contents(filePath(i))
    if (bytes !== undefined && bytes.length > f.length) problems.push(`${filePath(i)} has ${bytes.length} bytes, not ${f.length}`)
  })
  for (let i = 0; i < t.pieceCount; i++) {
    const got = pieceIn(i, kernel.contents)
    if (state[i] === "written" && !same(got, pieceOf(t, i))) problems.push(`piece ${i} is wrong on disk`)
    if (state[i] === "unwritten" && !isZero(got)) problems.push(`never-written piece ${i} has bytes on disk`)
  }
  if (c.closeAfter === undefined && state.some((st) => st !== "written")) problems.push("a write did not complete")
  return problems
}

describe("FileStorage descriptor cache under every interleaving (model kernel)", () => {
  it("every byte lands in its own file; no descriptor used after close, closed twice or leaked; flush is durable", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(caseArb, async (c) => {
        const problems = await runCase(c)
        if (problems.length > 0) throw new Error(problems.join("\n"))
      }),
      { numRuns: Number(process.env["MODEL_RUNS"] ?? 400), seed: Number(process.env["MODEL_SEED"] ?? 20261204), endOnFailure: false }
    )
  }, 240_000)
})
