/**
 * Writing a small whole file (a resume record, a state file, a `.torrent`) so that a crash or a failure never leaves
 * a half-written one under the final name, and every descriptor it opens is closed exactly once.
 *
 * {@link write}, replacing (the default): a temp file in the same directory (`.<name>.<pid>.<random>.tmp`, created
 * `O_EXCL`), all bytes written, fsync, close, rename over the target, then an fsync of the directory so the rename
 * itself is durable. The target is always either the old or the new complete file.
 *
 * {@link write} with `exclusive` (never replace: `create` without `--force`): the target itself is created `O_EXCL`
 * (`EEXIST` if it exists, decided atomically by the kernel), written, fsynced and closed, then the directory is
 * fsynced; on any failure the file we created is removed. A reader may see it while it is being written; nobody
 * ever finds a partial one after we return.
 *
 * Descriptors: the file's descriptor is the platform FileSystem's (`fs.open`, scoped): closed once when the write
 * step's scope closes, on success and failure; the whole write is uninterruptible, so an interruption waits for it
 * instead of cutting it (and the descriptor) in half. The platform turns a failed close into a defect; it is turned
 * back into a typed {@link AtomicWriteError} (step "close"). The directory's descriptor is opened and closed the same
 * way, after the rename.
 *
 * Errors are never dropped: the write's own failure is the result; a temp (or created) file that cannot be removed
 * after a failure is logged with its path (the failure is still the result); a directory fsync that fails is
 * logged (the file is in place, only the durability of its name is in doubt), except EBADF, which is a failure: a
 * descriptor of ours closed under us means another part of the process closed a descriptor number twice.
 */
import * as Crypto from "node:crypto"
import * as Path from "node:path"
import * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

export type Step = "make-directory" | "open" | "write" | "sync" | "close" | "rename" | "sync-directory"

export class AtomicWriteError extends Data.TaggedError("AtomicWriteError")<{
  readonly path: string
  readonly step: Step
  /** The errno code (`ENOSPC`, `EEXIST`, `EBADF`...), when there is one. */
  readonly code: string | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${this.path}: ${this.step}: ${this.code ?? detail}`
  }
  /** A descriptor of ours was not valid: a bug somewhere in the process (a descriptor number closed twice). */
  get badDescriptor(): boolean {
    return this.code === "EBADF"
  }
}

export interface Options {
  /** Mode of a new file (the umask applies). Default 0o666. */
  readonly mode?: number | undefined
  /** When given, the parent directory is created (recursively) with this mode if missing. */
  readonly directoryMode?: number | undefined
  /** Never replace an existing target: fail with code `EEXIST` instead (see the module comment). */
  readonly exclusive?: boolean | undefined
}

/** The errno code of a platform SystemError (or a Node error). */
export const errnoCode = (e: unknown): string | undefined => {
  const direct = (e as { readonly code?: unknown } | undefined)?.code
  if (typeof direct === "string") return direct
  const inner = (e as { readonly cause?: { readonly code?: unknown } } | undefined)?.cause?.code
  return typeof inner === "string" ? inner : undefined
}

const failWith = (path: string, step: Step) => (cause: unknown) =>
  new AtomicWriteError({ path, step, code: errnoCode(cause), cause })

/**
 * Runs a scoped use of a platform `File`: a failure of the use is the result; a defect from the scope's close (the
 * platform's `orDie` around close) becomes a typed "close" error, and is logged when the use failed first.
 */
const withFile = <A>(
  path: string,
  use: Effect.Effect<A, AtomicWriteError, FileSystem.FileSystem | Scope.Scope>
): Effect.Effect<A, AtomicWriteError, FileSystem.FileSystem> =>
  Effect.scoped(use).pipe(
    Effect.catchAllCause((cause) => {
      const closeDefect = Chunk.findFirst(Cause.defects(cause), PlatformError.isPlatformError)
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        return Option.isSome(closeDefect)
          ? Effect.zipRight(
            Effect.logWarning(`${path}: close failed too: ${failWith(path, "close")(closeDefect.value).message}`),
            Effect.fail(failure.value)
          )
          : Effect.failCause(cause)
      }
      return Option.isSome(closeDefect) ? Effect.fail(failWith(path, "close")(closeDefect.value)) : Effect.failCause(cause)
    })
  )

/** Writes `bytes` to a new file at `path` (`wx`): all of them, fsynced; the descriptor closed when done. */
const writeNew = (fs: FileSystem.FileSystem, path: string, bytes: Uint8Array, mode: number) =>
  withFile(
    path,
    Effect.gen(function*() {
      const file = yield* fs.open(path, { flag: "wx", mode }).pipe(Effect.mapError(failWith(path, "open")))
      yield* file.writeAll(bytes).pipe(Effect.mapError(failWith(path, "write")))
      yield* file.sync.pipe(Effect.mapError(failWith(path, "sync")))
    })
  )

/** Removes a file we created, after a failure: a failure to do so is logged, never dropped. */
const removeAfterFailure = (fs: FileSystem.FileSystem, path: string) =>
  fs.remove(path).pipe(
    Effect.catchAll((e) => Effect.logWarning(`could not remove ${path} after a failed write: ${e.message}`))
  )

/** fsync of `dir`, so a rename or create in it is durable. See the module comment for what fails and what is logged. */
const syncDirectory = (fs: FileSystem.FileSystem, dir: string) =>
  withFile(
    dir,
    Effect.flatMap(
      fs.open(dir, { flag: "r" }).pipe(Effect.mapError(failWith(dir, "sync-directory"))),
      (d) => d.sync.pipe(Effect.mapError(failWith(dir, "sync-directory")))
    )
  ).pipe(
    Effect.catchAll((e) =>
      e.badDescriptor
        ? Effect.fail(e)
        : Effect.logWarning(`the directory fsync after writing in ${dir} failed (the file is in place): ${e.message}`)
    )
  )

/** Writes `bytes` as the whole content of `path` (see the module comment). Uninterruptible. */
export const write = (
  path: string,
  bytes: Uint8Array,
  options: Options = {}
): Effect.Effect<void, AtomicWriteError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = Path.dirname(path)
    const mode = options.mode ?? 0o666
    if (options.directoryMode !== undefined) {
      yield* fs.makeDirectory(dir, { recursive: true, mode: options.directoryMode }).pipe(
        Effect.mapError(failWith(dir, "make-directory"))
      )
    }
    if (options.exclusive === true) {
      yield* writeNew(fs, path, bytes, mode).pipe(
        // Only a file this call created is removed (not one that existed: that is the EEXIST case).
        Effect.tapError((e) => (e.step === "open" ? Effect.void : removeAfterFailure(fs, path)))
      )
    } else {
      const tmp = Path.join(dir, `.${Path.basename(path)}.${process.pid}.${Crypto.randomBytes(6).toString("hex")}.tmp`)
      yield* writeNew(fs, tmp, bytes, mode).pipe(
        Effect.zipRight(fs.rename(tmp, path).pipe(Effect.mapError(failWith(path, "rename")))),
        Effect.tapError((e) => (e.step === "open" ? Effect.void : removeAfterFailure(fs, tmp)))
      )
    }
    yield* syncDirectory(fs, dir)
  }).pipe(Effect.uninterruptible)
