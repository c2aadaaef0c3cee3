/**
 * FileStorage under failing system calls and foreign changes, on the model kernel (modelKernel.ts) with injected
 * faults: I/O errors that poison the storage (EIO on write or fdatasync, EBADF), ones that fail only their write
 * (ENOSPC), running out of descriptors (EMFILE: shed and retry, then a typed error), files deleted or cut short by
 * another process, and closing with work in flight. Every call completes in order (FIFO): the interleavings are
 * the concurrency test's business.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as FileStorage from "../../src/storage/FileStorage.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import { StorageError } from "../../src/storage/Storage.ts"
import type * as Storage from "../../src/storage/Storage.ts"
import { drive, type Kernel, makeKernel } from "./modelKernel.ts"
import { pieceOf, torrent } from "./support.ts"

// Four files of 1000 bytes, 500-byte pieces: pieces 2k and 2k+1 are file k.
const t = torrent(Array.from({ length: 4 }, (_, i) => ({ length: 1000, path: [`f${i}.bin`] })), 500)

const run = <A, E>(
  kernel: Kernel,
  body: (s: FileStorage.FileStorage) => Effect.Effect<A, E>,
  maxOpenFiles = 4,
  more: Pick<FileStorage.Options, "writeChunk" | "writesInFlight" | "inlineIo"> = {}
): Promise<Exit.Exit<A, E | Storage.StorageError>> => {
  kernel.mkdirp("/out")
  return drive(
    Effect.scoped(
      Effect.flatMap(
        FileStorage.make({
          outputDir: "/out",
          files: t.files,
          pieceLength: t.pieceLength,
          pieceHashes: t.hashes,
          maxOpenFiles,
          syscalls: kernel.syscalls,
          ...more
        }).pipe(Effect.provide(Hasher.layerInline)),
        body
      )
    ),
    kernel,
    () => 0
  )
}

const write = (s: FileStorage.FileStorage, i: number) => s.writePiece(i, pieceOf(t, i))
const errorOf = <A, E>(exit: Exit.Exit<A, E>): Storage.StorageError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const e = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (!(e instanceof StorageError)) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return e
}
const valueOf = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isFailure(exit)) throw new Error(`expected a success, got ${String(exit.cause)}`)
  return exit.value
}
const clean = (kernel: Kernel) => {
  expect(kernel.violations).toEqual([])
  expect(kernel.openCount()).toBe(0)
}

describe("FileStorage: failures that poison the storage", () => {
  it("EIO on one call of a write with others in flight: the write fails once every call has returned", async () => {
    const kernel = makeKernel()
    let calls = 0
    kernel.faults.push({ when: (call) => call === "write" && ++calls === 2, code: "EIO" })
    const pendingWrites = () => kernel.pending.filter((p) => p.label.startsWith("write")).map((p) => p.label)
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        // 500 bytes in calls of 50, 4 at once: calls 1–4 go out together, call 2 fails. In FIFO order call 5 goes
        // out as call 1 returns, before call 2's failure is back; none of calls 6–10 after it.
        const e = yield* Effect.flip(write(s, 0))
        return { e, pendingAtFailure: pendingWrites() }
      }), 4, { writeChunk: 50, writesInFlight: 4, inlineIo: { enabled: false } })
    const { e, pendingAtFailure } = valueOf(exit)
    expect(e.reason).toBe("write")
    expect(e.message).toMatch(/EIO/)
    expect(pendingAtFailure).toEqual([]) // the caller's buffer is no longer read by anyone
    expect(calls).toBe(5)
    clean(kernel)
  })

  it("EIO on a write fails it, and every later operation, with the same typed error", async () => {
    const kernel = makeKernel()
    kernel.faults.push({ when: (call, path) => call === "write" && path === "/out/f1.bin", code: "EIO" })
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 0)
        const first = yield* Effect.flip(write(s, 2))
        const later = yield* Effect.flip(write(s, 4)) // another file
        const flush = yield* Effect.flip(s.flush)
        return { first, later, flush }
      }))
    expect(Exit.isSuccess(exit)).toBe(true)
    const { first, flush, later } = valueOf(exit)
    expect(first.reason).toBe("write")
    expect(first.message).toMatch(/^storage write: \/out\/f1\.bin: write: EIO/)
    expect(later).toBe(first)
    expect(flush).toBe(first)
    expect(kernel.contents("/out/f2.bin")).toBeUndefined() // nothing issued after the failure
    clean(kernel)
  })

  it("EIO on fdatasync fails the flush and poisons the storage (a retried sync could lie)", async () => {
    const kernel = makeKernel()
    kernel.faults.push({ when: (call) => call === "fdatasync", code: "EIO" })
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 0)
        const flush = yield* Effect.flip(s.flush)
        const again = yield* Effect.flip(s.flush)
        const next = yield* Effect.flip(write(s, 1))
        return [flush, again, next] as const
      }))
    const [flush, again, next] = valueOf(exit)
    expect(flush!.message).toMatch(/f0\.bin: write: EIO/)
    expect(again).toBe(flush)
    expect(next).toBe(flush)
    clean(kernel)
  })

  it("EBADF is reported as a bug (reason internal), loudly, and poisons the storage", async () => {
    const kernel = makeKernel()
    kernel.faults.push({ when: (call) => call === "read", code: "EBADF" })
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 0)
        const read = yield* Effect.flip(s.readPiece(0))
        const next = yield* Effect.flip(write(s, 1))
        return [read, next] as const
      }))
    const [read, next] = valueOf(exit)
    expect(read!.reason).toBe("internal")
    expect(read!.message).toMatch(/EBADF.*a bug in effect-torrent/)
    expect(next).toBe(read)
    clean(kernel)
  })
})

describe("FileStorage: failures of one write only", () => {
  it("ENOSPC fails that write; a flush still makes the earlier writes durable", async () => {
    const kernel = makeKernel()
    let full = false
    kernel.faults.push({ when: (call) => call === "write" && full, code: "ENOSPC" })
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 0)
        full = true
        const e = yield* Effect.flip(write(s, 2))
        yield* s.flush
        return e
      }))
    expect(Exit.isSuccess(exit) && exit.value.reason).toBe("no-space")
    expect(kernel.durable("/out/f0.bin")?.subarray(0, 500)).toEqual(pieceOf(t, 0))
    clean(kernel)
  })
})

describe("FileStorage: out of descriptors", () => {
  it("EMFILE on an open with idle descriptors cached: they are closed, the open retried, fewer kept from then on", async () => {
    const kernel = makeKernel()
    let refuse = 0
    kernel.faults.push({ when: (call) => call === "open" && refuse-- > 0, code: "EMFILE" })
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 0)
        yield* write(s, 2)
        yield* write(s, 4)
        refuse = 1 // the process is out of descriptors once
        yield* write(s, 6)
        const after = s.openFiles()
        for (let i = 0; i < 8; i += 2) yield* write(s, i + 1)
        return { after, peak: s.openFiles() }
      }))
    expect(Exit.isSuccess(exit)).toBe(true)
    const { after } = valueOf(exit)
    expect(after).toBe(1) // the three idle ones were closed to make room
    expect(kernel.peakOpen()).toBeLessThanOrEqual(4)
    for (let f = 0; f < 4; f++) expect(kernel.contents(`/out/f${f}.bin`)).toEqual(t.payload.subarray(f * 1000, f * 1000 + 1000))
    clean(kernel)
  })

  it("EMFILE that persists: one typed too-many-files error naming the file and the remedy", async () => {
    const kernel = makeKernel()
    kernel.faults.push({ when: (call, path) => call === "open" && path === "/out/f1.bin", code: "EMFILE" })
    const exit = await run(kernel, (s) => Effect.zipRight(write(s, 0), write(s, 2)))
    const e = errorOf(exit)
    expect(e.reason).toBe("too-many-files")
    expect(e.message).toBe("storage too-many-files: /out/f1.bin: open: EMFILE: open /out/f1.bin (raise the limit: ulimit -n)")
    clean(kernel)
  })
})

describe("FileStorage: files changed by another process", () => {
  it("a file deleted after we wrote it: the next write to it fails 'changed', not recreated", async () => {
    const kernel = makeKernel()
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 0)
        kernel.unlink("/out/f0.bin")
        return yield* Effect.flip(write(s, 1))
      }))
    expect(Exit.isSuccess(exit) && exit.value.message).toBe(
      "storage changed: /out/f0.bin: deleted by something else while in use"
    )
    expect(kernel.contents("/out/f0.bin")).toBeUndefined()
    clean(kernel)
  })

  it("a deleted file whose descriptor was evicted is not recreated either", async () => {
    const kernel = makeKernel()
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 0)
        yield* write(s, 2) // maxOpenFiles 1: f0's descriptor is closed
        kernel.unlink("/out/f0.bin")
        return yield* Effect.flip(write(s, 1))
      }), 1)
    expect(Exit.isSuccess(exit) && exit.value.message).toMatch(/f0\.bin: deleted by something else/)
    expect(kernel.contents("/out/f0.bin")).toBeUndefined()
    clean(kernel)
  })

  it("a file cut short between our writes: 'changed' (truncated)", async () => {
    const kernel = makeKernel()
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        yield* write(s, 1) // bytes 500..999 of f0
        kernel.truncate("/out/f0.bin", 100)
        return yield* Effect.flip(write(s, 0))
      }))
    expect(Exit.isSuccess(exit) && exit.value.message).toBe(
      "storage changed: /out/f0.bin: truncated from 1000 to 100 bytes by something else while in use"
    )
    clean(kernel)
  })

  it("audit: a file deleted, or a complete file cut short, is reported; untouched files pass", async () => {
    const kernel = makeKernel()
    const exit = await run(kernel, (s) =>
      Effect.gen(function*() {
        for (let i = 0; i < 8; i++) yield* write(s, i)
        yield* s.audit(() => true)
        kernel.truncate("/out/f3.bin", 999)
        const cut = yield* Effect.flip(s.audit(() => true))
        return cut
      }))
    expect(Exit.isSuccess(exit) && exit.value.message).toMatch(/f3\.bin: truncated from 1000 to 999 bytes/)
    clean(kernel)
  })
})

describe("FileStorage: closing", () => {
  it("waits for writes in flight, refuses what comes after, and leaves nothing open", async () => {
    const kernel = makeKernel()
    kernel.mkdirp("/out")
    const exit = await drive(
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const s = yield* FileStorage.make({
          outputDir: "/out",
          files: t.files,
          pieceLength: t.pieceLength,
          pieceHashes: t.hashes,
          syscalls: kernel.syscalls
        }).pipe(Effect.provide(Hasher.layerInline), Scope.extend(scope))
        const writes = yield* Effect.fork(Effect.all([write(s, 0), write(s, 1), write(s, 2)], { concurrency: 3 }))
        yield* Effect.yieldNow()
        yield* Scope.close(scope, Exit.void)
        const results = yield* Effect.either(writes.await)
        const after = yield* Effect.flip(write(s, 3))
        return { results, after }
      }),
      kernel,
      () => 0
    )
    expect(Exit.isSuccess(exit)).toBe(true)
    const { after } = valueOf(exit)
    expect(after.reason).toBe("closed")
    clean(kernel)
  })
})
