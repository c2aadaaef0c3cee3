/**
 * Checks a torrent's data in a directory, read-only: what `effect-torrent verify` runs, as a library call.
 *
 * 1. Looks at every file's path with `lstat` (never following a symlink below the directory, never creating
 *    anything): a regular file and its size, or nothing usable and why.
 * 2. Hashes, through a {@link FileStorage} and the {@link Hasher} in context (off the event loop with the pool),
 *    every piece touching a selected file whose files are all there and long enough — `checkStreamExcept` with the
 *    other pieces skipped, so a missing file or a directory in a file's place is never opened.
 * 3. Attributes the results to files (VerifyReport.ts).
 *
 * Nothing in the directory is written, created or truncated: FileStorage only creates or truncates on writes (its
 * reads open `O_RDONLY` and see missing files and directories as empty), and this storage wants no file, so even a
 * write could not land. A missing directory is every file missing, not an error.
 */
import * as Fs from "node:fs"
import * as Fsp from "node:fs/promises"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Bitfield from "../core/Bitfield.ts"
import * as InfoHash from "../core/InfoHash.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"
import * as FileStorage from "./FileStorage.ts"
import type { Hasher } from "./Hasher.ts"
import * as Storage from "./Storage.ts"
import * as VerifyReport from "./VerifyReport.ts"

export interface Options {
  /** The directory holding the torrent's data (where `download -o` put it). */
  readonly dir: string
  /** Files to check and report, torrent order (pads ignored); default every file. Pieces touching none are not read. */
  readonly selected?: ReadonlyArray<boolean> | undefined
  /** Called after each piece read and hashed; `total` counts the pieces that will be read. */
  readonly onProgress?: ((checked: number, total: number) => void) | undefined
  /** Pieces read and hashed at once (memory: this many piece buffers). Default 2 (FileStorage's). */
  readonly checkConcurrency?: number | undefined
}

const codeOf = (err: unknown): string =>
  typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : ""

const readError = (path: string, err: unknown) =>
  new Storage.StorageError({
    reason: "read",
    path,
    detail: err instanceof Error ? err.message.split("\n")[0]! : String(err),
    cause: err
  })

/** `lstat`, or undefined when nothing is there (ENOTDIR: a file sits where a directory of the path should be). */
const lstatIfAny = (path: string): Promise<Fs.Stats | undefined> =>
  Fsp.lstat(path).then(
    (s) => s,
    (e) => (codeOf(e) === "ENOENT" || codeOf(e) === "ENOTDIR" ? undefined : Promise.reject(e))
  )

/** Whether `root` is a directory (following a symlink: the user named it); false when it does not exist. */
const rootExists = (root: string): Effect.Effect<boolean, Storage.StorageError> =>
  Effect.tryPromise({
    try: () =>
      Fsp.stat(root).then(
        (s) => (s.isDirectory() ? true : "not-dir" as const),
        (e) => (codeOf(e) === "ENOENT" || codeOf(e) === "ENOTDIR" ? false : Promise.reject(e))
      ),
    catch: (e) => readError(root, e)
  }).pipe(
    Effect.filterOrFail(
      (r): r is boolean => r !== "not-dir",
      () => new Storage.StorageError({ reason: "path-conflict", path: root, detail: "not a directory" })
    )
  )

type DirState = { readonly ok: true } | { readonly ok: false; readonly problem?: string }

/** What is at each file's path under `root` (which exists), torrent order; pads are {@link VerifyReport.absent}. */
const scan = (
  root: string,
  files: ReadonlyArray<Metainfo.FileEntry>
): Effect.Effect<Array<VerifyReport.Found>, Storage.StorageError> =>
  Effect.gen(function*() {
    const paths: Array<string> = []
    for (const f of files) paths.push(f.pad ? "" : yield* FileStorage.resolvePath(root, f.path))
    const shown = (p: string) => Path.relative(root, p).split(Path.sep).join("/")
    // One lstat per directory, shared by the files below it (a promise, so concurrent lookups share it too).
    const dirs = new Map<string, Promise<DirState>>([[root, Promise.resolve({ ok: true })]])
    const dirState = (dir: string): Promise<DirState> => {
      let state = dirs.get(dir)
      if (state === undefined) {
        state = dirState(Path.dirname(dir)).then(async (parent): Promise<DirState> => {
          if (!parent.ok) return parent
          const st = await lstatIfAny(dir)
          if (st === undefined) return { ok: false }
          if (st.isSymbolicLink()) return { ok: false, problem: `${shown(dir)} is a symlink (not followed)` }
          if (!st.isDirectory()) return { ok: false, problem: `${shown(dir)} is not a directory` }
          return { ok: true }
        })
        dirs.set(dir, state)
      }
      return state
    }
    const one = async (f: number): Promise<VerifyReport.Found> => {
      const entry = files[f]!
      if (entry.pad) return VerifyReport.absent
      const path = paths[f]!
      const parent = await dirState(Path.dirname(path))
      if (!parent.ok) return parent.problem === undefined ? VerifyReport.absent : { size: -1, problem: parent.problem }
      const st = await lstatIfAny(path)
      if (st === undefined) return VerifyReport.absent
      if (st.isFile()) return { size: st.size }
      // A BEP 47 symlink entry (length 0) may be a link on disk; other links are not followed (FileStorage refuses
      // them too).
      if (st.isSymbolicLink()) {
        return entry.attributes.symlink !== undefined
          ? { size: 0 }
          : { size: -1, problem: "a symlink is in its place (not followed)" }
      }
      return { size: -1, problem: st.isDirectory() ? "a directory is in its place" : "not a regular file" }
    }
    const out: Array<VerifyReport.Found> = []
    const batch = 64
    for (let i = 0; i < files.length; i += batch) {
      const indices = Array.from({ length: Math.min(batch, files.length - i) }, (_, k) => i + k)
      const found = yield* Effect.tryPromise({
        try: () => Promise.all(indices.map(one)),
        catch: (e) => readError(typeof e === "object" && e !== null && "path" in e ? String(e.path) : root, e)
      })
      out.push(...found)
    }
    return out
  })

/** Checks `metainfo`'s data in `options.dir` (v1 piece hashes; a hybrid through its v1 half) and reports per file. */
export const verify = (
  metainfo: Metainfo.Metainfo,
  options: Options
): Effect.Effect<VerifyReport.Report, Storage.StorageError, Hasher> =>
  Effect.gen(function*() {
    const root = Path.resolve(options.dir)
    const files = metainfo.files.map((f): Storage.StorageFile => ({ path: f.path, length: f.length, pad: f.pad }))
    const layout = yield* Storage.layoutOf(files, metainfo.pieceLength)
    const selected = options.selected ?? metainfo.files.map((f) => !f.pad)
    const exists = yield* rootExists(root)
    const found = exists ? yield* scan(root, metainfo.files) : metainfo.files.map(() => VerifyReport.absent)

    const toRead = VerifyReport.piecesInScope(layout, selected).filter((p) => VerifyReport.readable(layout, found, p))
    const skip = Bitfield.full(layout.lengths.pieceCount)
    for (const p of toRead) Bitfield.clear(skip, p)
    const verified = Bitfield.make(layout.lengths.pieceCount)
    if (toRead.length > 0) {
      yield* Effect.scoped(Effect.gen(function*() {
        const storage = yield* FileStorage.make({
          outputDir: root,
          files,
          pieceLength: metainfo.pieceLength,
          ...Metainfo.pieceVerification(metainfo),
          wanted: () => false,
          ...(options.checkConcurrency === undefined ? {} : { checkConcurrency: options.checkConcurrency })
        })
        // A piece the storage skips after all (a file shrank meanwhile) is not `ok`: it counts as failed.
        yield* Stream.runForEach(storage.checkStreamExcept(skip), (p) =>
          Effect.sync(() => {
            if (p.ok) Bitfield.set(verified, p.index)
            options.onProgress?.(p.checked, p.total)
          }))
      }))
    }

    const attributed = VerifyReport.attribute({
      layout,
      paths: metainfo.files.map((f) => f.path.join("/")),
      found,
      selected,
      verified: (p) => Bitfield.has(verified, p)
    })
    return {
      name: metainfo.name,
      infoHash: InfoHash.toHex(metainfo.infoHash),
      dir: root,
      dirExists: exists,
      pieceLength: metainfo.pieceLength,
      ...attributed
    }
  })
