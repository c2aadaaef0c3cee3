/**
 * The I/O half of `effect-torrent create`: walks the input, reads it piece by piece and hashes the pieces through
 * the {@link Hasher} port; `metainfo/Create.ts` builds the torrent from the result. Decisions (docs/CREATE.md):
 *
 * - a file input makes a single-file torrent, a directory a multi-file one (even with one file inside);
 * - everything under the directory is included, hidden files too (as mktorrent and libtorrent do); empty
 *   directories add nothing; names are read as bytes and must be UTF-8;
 * - a symlink to a regular file inside the input is included as a regular file (its content, under the link's
 *   name); a symlink leading out of the input, a dangling one, a symlink to a directory, and anything that is
 *   neither file nor directory (fifo, socket, device) is skipped **and reported** in {@link Scan.skipped};
 * - reads are positional and serialized (one file open at a time, mostly in order), into pooled buffers of one
 *   piece each (a piece may span files); up to `concurrency` pieces are in flight, so a worker hashes while the
 *   next piece is read; memory is bounded by that, never by the input size.
 */
import { Buffer } from "node:buffer"
import type { Stats } from "node:fs"
import * as Fsp from "node:fs/promises"
import * as NodePath from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Bytes from "../core/Bytes.ts"
import * as Create from "../metainfo/Create.ts"
import { CreateError } from "../metainfo/Create.ts"
import { Hasher } from "./Hasher.ts"
import * as PiecePool from "./PiecePool.ts"

export { CreateError } from "../metainfo/Create.ts"

/** A file found in the input: its torrent path, length, and where to read it (a path as bytes). */
export interface SourceFile extends Create.InputFile {
  readonly source: Buffer
}

export interface Skipped {
  /** Relative to the input's parent (starts with the torrent's name). */
  readonly path: string
  readonly reason: string
}

export interface Scan {
  /** The torrent's name: the input's base name. */
  readonly name: string
  readonly single: boolean
  /** In torrent order (sorted by path bytes). */
  readonly files: ReadonlyArray<SourceFile>
  readonly skipped: ReadonlyArray<Skipped>
  readonly totalSize: number
}

const codeOf = (e: unknown): string | undefined => (e as { readonly code?: unknown })?.code as string | undefined

const describe = (e: unknown): string => {
  const code = codeOf(e)
  if (code === "ENOENT") return "no such file or directory"
  if (code === "EACCES" || code === "EPERM") return "permission denied"
  if (code === "ELOOP") return "too many levels of symbolic links"
  return code ?? (e instanceof Error ? e.message : String(e))
}

const io = <A>(path: string, f: () => Promise<A>): Effect.Effect<A, CreateError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) =>
      new CreateError({
        reason: codeOf(cause) === "ENOENT" ? "not-found" : "read",
        path,
        detail: describe(cause),
        cause
      })
  })

const fail = (reason: Create.Reason, path: string, detail: string) => new CreateError({ reason, path, detail })

const SLASH = Buffer.from("/")
const join = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, SLASH, name])
const isInside = (root: Buffer, p: Buffer): boolean =>
  p.length > root.length && p[root.length] === 0x2f && p.subarray(0, root.length).equals(root)

/** Walks `path` (a file or a directory). Fails with `not-found`, `read`, `unsafe-name` (names not UTF-8). */
export const scan = (path: string): Effect.Effect<Scan, CreateError> =>
  Effect.gen(function*() {
    const abs = NodePath.resolve(path)
    const name = NodePath.basename(abs)
    if (name === "") return yield* fail("invalid-option", path, "cannot make a torrent of /")
    // The input itself may be a symlink: the user named it, so it is followed.
    const top = yield* io(path, () => Fsp.stat(abs))
    if (top.isFile()) {
      const single: SourceFile = { path: [], length: top.size, source: Buffer.from(abs) }
      return { name, single: true, files: [single], skipped: [], totalSize: top.size }
    }
    if (!top.isDirectory()) {
      return yield* new CreateError({ reason: "read", path, detail: "neither a regular file nor a directory" })
    }
    const root = yield* io(path, () => Fsp.realpath(abs, { encoding: "buffer" }))
    const files: Array<SourceFile> = []
    const skipped: Array<Skipped> = []
    const walk = (dir: Buffer, rel: ReadonlyArray<string>): Effect.Effect<void, CreateError> =>
      Effect.gen(function*() {
        const shown = [name, ...rel].join("/")
        const names = yield* io(shown, () => Fsp.readdir(dir, { encoding: "buffer" }))
        for (const raw of names) {
          const text = Bytes.decodeUtf8(raw)
          const relText = [name, ...rel, text ?? Bytes.toHex(raw)].join("/")
          if (text === undefined) {
            return yield* fail("unsafe-name", relText, "the name is not valid UTF-8")
          }
          const child = join(dir, raw)
          const st: Stats = yield* io(relText, () => Fsp.lstat(child))
          if (st.isFile()) files.push({ path: [...rel, text], length: st.size, source: child })
          else if (st.isDirectory()) yield* walk(child, [...rel, text])
          else if (st.isSymbolicLink()) {
            const real = yield* Effect.either(io(relText, () => Fsp.realpath(child, { encoding: "buffer" })))
            if (Either.isLeft(real)) {
              skipped.push({ path: relText, reason: `symlink not followed: ${real.left.detail}` })
            } else if (!isInside(root, real.right)) {
              skipped.push({ path: relText, reason: "symlink to outside the input, not followed" })
            } else {
              const target = yield* io(relText, () => Fsp.stat(real.right))
              if (target.isFile()) files.push({ path: [...rel, text], length: target.size, source: real.right })
              else skipped.push({ path: relText, reason: "symlink to a directory, not followed" })
            }
          } else skipped.push({ path: relText, reason: "not a regular file (fifo, socket or device), skipped" })
        }
      })
    yield* walk(root, [])
    const sorted = Create.sortFiles(files)
    return { name, single: false, files: sorted, skipped, totalSize: Create.totalSize(sorted) }
  })

// ---------------------------------------------------------------------------------------------------------------
// Hashing

export interface Progress {
  readonly piecesHashed: number
  readonly pieceCount: number
  readonly bytesHashed: number
  readonly totalSize: number
}

export interface HashOptions {
  readonly pieceLength: number
  /** Pieces in flight (being read or hashed). Default 4: hashing in workers overlaps reading. */
  readonly concurrency?: number | undefined
  /** Called after every piece is hashed (in no particular piece order), and once before the first. */
  readonly onProgress?: ((p: Progress) => Effect.Effect<void>) | undefined
  /** Piece buffers come from here. Default: a pool of `concurrency` buffers. */
  readonly pool?: PiecePool.PiecePool | undefined
}

/** The concatenated SHA-1 of every piece of `files` (in the given order). Fails with `read` (also if a file shrank). */
export const hashPieces = (
  files: ReadonlyArray<SourceFile>,
  options: HashOptions
): Effect.Effect<Uint8Array, CreateError, Hasher> =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const pieceLength = options.pieceLength
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const pool = options.pool ?? PiecePool.make({ maxFree: concurrency })
    const offsets: Array<number> = []
    let total = 0
    for (const f of files) {
      offsets.push(total)
      total += f.length
    }
    const count = Create.pieceCount(total, pieceLength)
    const hashes = new Uint8Array(count * 20)
    const progress = { piecesHashed: 0, pieceCount: count, bytesHashed: 0, totalSize: total }
    const report = options.onProgress ?? (() => Effect.void)
    yield* report({ ...progress })

    // One open file at a time; reads are serialized by `reading`, so this needs no further guarding.
    // Descriptors (docs/RELIABILITY.md, "Descriptors and other OS resources"): a file is opened and recorded in
    // `open` in one uninterruptible step (an interruption while `open()` is in flight waits for it, so no handle is
    // ever opened without being recorded), and closed exactly once: when the next file is opened, or when hashing
    // ends on any path (success, failure, interruption). `open` is cleared before the close, so nothing can close
    // it twice. A close that fails is a `read` error (EBADF is a bug elsewhere closing our descriptor; EIO a real
    // error), never dropped. A read interrupted in flight is not waited for by the fiber, but `FileHandle.close`
    // waits for it before releasing the descriptor, and its buffer is never released to the pool.
    let open: { readonly index: number; readonly fh: Fsp.FileHandle } | undefined
    const shown = (f: number) => files[f]!.source.toString()
    const closeOpen: Effect.Effect<void, CreateError> = Effect.suspend(() => {
      const o = open
      if (o === undefined) return Effect.void
      open = undefined
      return Effect.tryPromise({
        try: () => o.fh.close(),
        catch: (cause) =>
          new CreateError({ reason: "read", path: shown(o.index), detail: `close failed: ${describe(cause)}`, cause })
      })
    })
    const handle = (f: number) =>
      open !== undefined && open.index === f
        ? Effect.succeed(open.fh)
        : Effect.uninterruptible(
          Effect.zipRight(closeOpen, io(shown(f), () => Fsp.open(files[f]!.source, "r"))).pipe(
            Effect.tap((fh) => {
              open = { index: f, fh }
            })
          )
        )

    /** Fills `buf` with the torrent's bytes from `start` on. */
    const fill = (buf: Uint8Array, start: number) =>
      Effect.gen(function*() {
        // first file holding byte `start` (binary search over offsets; empty files hold nothing)
        let lo = 0
        let hi = files.length - 1
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1
          if (offsets[mid]! <= start) lo = mid
          else hi = mid - 1
        }
        let done = 0
        for (let f = lo; done < buf.length && f < files.length; f++) {
          const file = files[f]!
          const from = start + done - offsets[f]!
          const len = Math.min(file.length - from, buf.length - done)
          if (len <= 0) continue
          const fh = yield* handle(f)
          let got = 0
          while (got < len) {
            const at = done + got
            const n = yield* io(shown(f), () => fh.read(buf, at, len - got, from + got).then((r) => r.bytesRead))
            if (n === 0) {
              return yield* fail("read", shown(f), "the file shrank while it was being read")
            }
            got += n
          }
          done += len
        }
      })

    const reading = yield* Effect.makeSemaphore(1)
    const piece = (i: number) =>
      Effect.gen(function*() {
        const start = i * pieceLength
        const size = Math.min(pieceLength, total - start)
        const buf = pool.acquire(size)
        yield* reading.withPermits(1)(fill(buf, start)).pipe(
          Effect.tapError(() => Effect.sync(() => pool.release(buf)))
        )
        const r = yield* hasher.sha1(buf)
        hashes.set(r.digest, i * 20)
        pool.release(r.data)
        progress.piecesHashed++
        progress.bytesHashed += size
        yield* report({ ...progress })
      })
    const indices = Array.from({ length: count }, (_, i) => i)
    // The last file is closed whatever happened; a failed close is reported with (after) the hashing's own exit.
    yield* Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        Effect.exit(restore(Effect.forEach(indices, piece, { concurrency, discard: true }))),
        (hashed) => Effect.flatMap(Effect.exit(closeOpen), (closed) => Exit.zipRight(hashed, closed))
      )
    )
    return hashes
  })

// ---------------------------------------------------------------------------------------------------------------
// All together

export interface CreateOptions {
  /** Default: {@link Create.autoPieceLength} of the input's size. */
  readonly pieceLength?: number | undefined
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>> | undefined
  readonly webSeeds?: ReadonlyArray<string> | undefined
  readonly private?: boolean | undefined
  readonly comment?: string | undefined
  readonly createdBy?: string | undefined
  /** Seconds since the epoch; `undefined` leaves `creation date` out. */
  readonly creationDate?: number | undefined
  readonly concurrency?: number | undefined
  readonly onProgress?: ((p: Progress) => Effect.Effect<void>) | undefined
  /** Called once the input is walked, before hashing (the CLI warns about skipped entries here). */
  readonly onScan?: ((s: Scan) => Effect.Effect<void>) | undefined
}

export interface Result extends Create.Created {
  readonly scan: Scan
  readonly pieceLength: number
  readonly pieceCount: number
}

/** Walks `path`, checks names and sizes (before reading anything), hashes, and builds the torrent. */
export const create = (path: string, options: CreateOptions = {}): Effect.Effect<Result, CreateError, Hasher> =>
  Effect.gen(function*() {
    const s = yield* scan(path)
    if (options.onScan !== undefined) yield* options.onScan(s)
    if (s.files.length === 0) return yield* fail("empty", path, "no files to put in a torrent")
    if (s.totalSize === 0) return yield* fail("empty", path, "all files are empty: a torrent needs at least one byte")
    yield* Create.validateNames(s.name, s.files)
    const pieceLength = options.pieceLength ?? Create.autoPieceLength(s.totalSize)
    yield* Create.validatePieceLength(pieceLength)
    const count = Create.pieceCount(s.totalSize, pieceLength)
    if (count > Create.MAX_PIECES) return yield* fail("too-many-pieces", path, Create.tooManyPieces(count))
    const pieces = yield* hashPieces(s.files, {
      pieceLength,
      concurrency: options.concurrency,
      onProgress: options.onProgress
    })
    const created = yield* Create.build({
      name: s.name,
      single: s.single,
      files: s.files.map((f) => ({ path: f.path, length: f.length })),
      pieceLength,
      pieces,
      trackers: options.trackers,
      webSeeds: options.webSeeds,
      private: options.private,
      comment: options.comment,
      createdBy: options.createdBy,
      creationDate: options.creationDate
    })
    return { ...created, scan: s, pieceLength, pieceCount: count }
  })
