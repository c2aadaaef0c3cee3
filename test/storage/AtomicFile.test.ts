/**
 * AtomicFile (and ResumeRecord.writeAtomic over it): descriptors closed once on every path, failures typed or
 * logged, never dropped. Faults are injected through the FileSystem service: a close that fails (the platform
 * turns it into a defect from the file's scope), a write or an fsync that fails, a temp file that cannot be removed.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as AtomicFile from "../../src/storage/AtomicFile.ts"
import * as Resume from "../../src/storage/ResumeRecord.ts"

const tmpDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "atomic-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const systemError = (method: string, path: string, code: string) =>
  new PlatformError.SystemError({
    reason: code === "ENOENT" ? "NotFound" : "Unknown",
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    description: `${code}: injected`,
    cause: Object.assign(new Error(`${code}: injected`), { code })
  })

/** A File like `file` but with some members replaced (the platform's File keeps its methods on the prototype). */
const fileWith = (file: FileSystem.File, members: Partial<Record<"sync" | "writeAll", unknown>>): FileSystem.File => {
  const out = Object.create(file) as FileSystem.File
  for (const [k, v] of Object.entries(members)) Object.defineProperty(out, k, { value: v })
  return out
}

interface Faults {
  /** Paths whose scoped close dies the way the platform's does (`orDie` around a failed close). */
  readonly closeDies?: (path: string) => string | undefined
  readonly writeFails?: (path: string) => string | undefined
  readonly syncFails?: (path: string) => string | undefined
  readonly renameFails?: string | undefined
  readonly removeFails?: string | undefined
}

/** NodeFileSystem with faults injected. */
const faulty = (faults: Faults) =>
  Layer.effect(
    FileSystem.FileSystem,
    Effect.map(FileSystem.FileSystem, (fs): FileSystem.FileSystem => ({
      ...fs,
      open: (path, options) =>
        Effect.gen(function*() {
          const file = yield* fs.open(path, options)
          const closeCode = faults.closeDies?.(path)
          // Added after the real close's finalizer, so it runs first; the real close still happens.
          if (closeCode !== undefined) yield* Effect.addFinalizer(() => Effect.die(systemError("open", path, closeCode)))
          const writeCode = faults.writeFails?.(path)
          const syncCode = faults.syncFails?.(path)
          return fileWith(file, {
            ...(writeCode === undefined ? {} : { writeAll: () => Effect.fail(systemError("writeAll", path, writeCode)) }),
            ...(syncCode === undefined ? {} : { sync: Effect.fail(systemError("sync", path, syncCode)) })
          })
        }),
      rename: (from, to) =>
        faults.renameFails === undefined ? fs.rename(from, to) : Effect.fail(systemError("rename", to, faults.renameFails)),
      remove: (path, options) =>
        faults.removeFails === undefined ? fs.remove(path, options) : Effect.fail(systemError("remove", path, faults.removeFails))
    }))
  ).pipe(Layer.provide(NodeFileSystem.layer))

/** Runs `effect` with warnings and errors collected. */
const logged = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
    const exit = yield* Effect.exit(effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
    return { exit, lines }
  })

const isTempName = (name: string) => name.endsWith(".tmp")

describe("ResumeRecord.writeAtomic (AtomicFile): descriptors and errors", () => {
  it.scoped("a close of the temp file that fails is a typed write error (EBADF told apart), the old record stays", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "r.resume")
      Fs.writeFileSync(path, "old")
      const { exit } = yield* logged(
        Resume.writeAtomic(path, new Uint8Array([1, 2, 3])).pipe(
          Effect.provide(faulty({ closeDies: (p) => (isTempName(p) ? "EBADF" : undefined) }))
        )
      )
      // Before: the platform's defect escaped writeAtomic (no ResumeError: ResumeStore's catchAll never saw it).
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)._tag).toBe("Some")
      const err = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
      const e = err?._tag === "Some" ? err.value : undefined
      expect(e?.reason).toBe("write")
      expect(e !== undefined && Resume.isBadDescriptor(e)).toBe(true)
      expect(e?.detail).toContain("close: EBADF")
      expect(Fs.readFileSync(path, "utf8")).toBe("old")
      expect(Fs.readdirSync(dir)).toEqual(["r.resume"])
    }))

  it.scoped("a directory fsync failing with EBADF is a typed error; any other failure is logged, the write stands", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "d.resume")
      const bad = yield* logged(
        Resume.writeAtomic(path, new Uint8Array([7])).pipe(
          Effect.provide(faulty({ syncFails: (p) => (p === dir ? "EBADF" : undefined) }))
        )
      )
      expect(Exit.isFailure(bad.exit)).toBe(true)
      const err = Exit.isFailure(bad.exit) ? Cause.failureOption(bad.exit.cause) : undefined
      expect(err?._tag === "Some" && Resume.isBadDescriptor(err.value)).toBe(true)

      const eio = yield* logged(
        Resume.writeAtomic(path, new Uint8Array([8])).pipe(
          Effect.provide(faulty({ syncFails: (p) => (p === dir ? "EIO" : undefined) }))
        )
      )
      expect(Exit.isSuccess(eio.exit)).toBe(true)
      expect(eio.lines.filter((l) => l.startsWith("WARN") && l.includes("directory fsync") && l.includes(dir)))
        .toHaveLength(1)
      expect(new Uint8Array(Fs.readFileSync(path))).toEqual(new Uint8Array([8]))
    }))

  it.scoped("a temp file that cannot be removed after a failure is logged with its path; the failure is the result", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "t.resume")
      const { exit, lines } = yield* logged(
        Resume.writeAtomic(path, new Uint8Array([1])).pipe(
          Effect.provide(faulty({ renameFails: "EXDEV", removeFails: "EACCES" }))
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const temps = Fs.readdirSync(dir).filter(isTempName)
      expect(temps).toHaveLength(1)
      expect(lines.filter((l) => l.startsWith("WARN") && l.includes(temps[0]!) && l.includes("EACCES"))).toHaveLength(1)
    }))

  it.scoped("a failed write removes the temp file; every descriptor opened is closed (none left in /proc/self/fd)", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "w.resume")
      const fds = () => Fs.readdirSync("/proc/self/fd").length
      const before = fds()
      for (let i = 0; i < 20; i++) {
        const { exit } = yield* logged(
          Resume.writeAtomic(path, new Uint8Array([i])).pipe(
            Effect.provide(faulty({ writeFails: (p) => (isTempName(p) && i % 2 === 0 ? "ENOSPC" : undefined) }))
          )
        )
        expect(Exit.isSuccess(exit)).toBe(i % 2 === 1)
      }
      expect(fds()).toBe(before)
      expect(Fs.readdirSync(dir)).toEqual(["w.resume"])
      expect(new Uint8Array(Fs.readFileSync(path))).toEqual(new Uint8Array([19]))
    }))
})

describe("AtomicFile.write exclusive (create without --force)", () => {
  it.scoped("never replaces: EEXIST leaves the existing file as it was; otherwise the file is created whole", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "a.torrent")
      yield* AtomicFile.write(path, new Uint8Array([1, 2]), { exclusive: true })
      expect(new Uint8Array(Fs.readFileSync(path))).toEqual(new Uint8Array([1, 2]))
      const e = yield* Effect.flip(AtomicFile.write(path, new Uint8Array([3]), { exclusive: true }))
      expect(e.code).toBe("EEXIST")
      expect(e.step).toBe("open")
      expect(new Uint8Array(Fs.readFileSync(path))).toEqual(new Uint8Array([1, 2]))
      expect(Fs.readdirSync(dir)).toEqual(["a.torrent"])
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("a failed write (disk full) removes the file it created", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "b.torrent")
      const e = yield* Effect.flip(AtomicFile.write(path, new Uint8Array([1]), { exclusive: true })).pipe(
        Effect.provide(faulty({ writeFails: (p) => (p === path ? "ENOSPC" : undefined) }))
      )
      expect(e.code).toBe("ENOSPC")
      expect(e.message).toBe(`${path}: write: ENOSPC`)
      expect(Fs.readdirSync(dir)).toEqual([])
    }))

  it.scoped("replacing keeps the file mode given (umask applied) and leaves no temp file", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "c.torrent")
      Fs.writeFileSync(path, "old")
      yield* AtomicFile.write(path, new Uint8Array([9]), { mode: 0o640 })
      expect(Fs.statSync(path).mode & 0o777).toBe(0o640 & ~process.umask())
      expect(Fs.readdirSync(dir)).toEqual(["c.torrent"])
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})
