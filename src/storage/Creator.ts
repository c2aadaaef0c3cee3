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
import * as Merkle from "../core/Merkle.ts"
import * as Create from "../metainfo/Create.ts"
import { CreateError } from "../metainfo/Create.ts"
import * as HasherPort from "./Hasher.ts"
import { Hasher } from "./Hasher.ts"
import * as PiecePool from "./PiecePool.ts"

export { CreateError } from "../metainfo/Create.ts"

/** A file found in the input: its torrent path, length, and where to read it (a path as bytes). */
export interface SourceFile extends Create.InputFile {
  readonly source: Buffer
  /**
   * The owner may execute it (`S_IXUSR` of `lstat`, so always for a symlink, as libtorrent has it): `attr` `x` in
   * v2 and hybrid torrents.
   */
  readonly executable?: boolean | undefined
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

/** libtorrent's `get_file_attributes`: executable when the owner may execute it. */
const isExecutable = (st: Stats): boolean => (st.mode & 0o100) !== 0

/** Walks `path` (a file or a directory). Fails with `not-found`, `read`, `unsafe-name` (names not UTF-8). */
export const scan = (path: string): Effect.Effect<Scan, CreateError> =>
  Effect.gen(function*() {
    const abs = NodePath.resolve(path)
    const name = NodePath.basename(abs)
    if (name === "") return yield* fail("invalid-option", path, "cannot make a torrent of /")
    // The input itself may be a symlink: the user named it, so it is followed.
    const top = yield* io(path, () => Fsp.stat(abs))
    if (top.isFile()) {
      const single: SourceFile = { path: [], length: top.size, source: Buffer.from(abs), executable: isExecutable(top) }
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
          if (st.isFile()) {
            files.push({ path: [...rel, text], length: st.size, source: child, executable: isExecutable(st) })
          }
          else if (st.isDirectory()) yield* walk(child, [...rel, text])
          else if (st.isSymbolicLink()) {
            const real = yield* Effect.either(io(relText, () => Fsp.realpath(child, { encoding: "buffer" })))
            if (Either.isLeft(real)) {
              skipped.push({ path: relText, reason: `symlink not followed: ${real.left.detail}` })
            } else if (!isInside(root, real.right)) {
              skipped.push({ path: relText, reason: "symlink to outside the input, not followed" })
            } else {
              const target = yield* io(relText, () => Fsp.stat(real.right))
              if (target.isFile()) {
                // libtorrent takes the attributes from lstat: a symlink's own mode (rwx) makes it executable
                files.push({ path: [...rel, text], length: target.size, source: real.right, executable: isExecutable(st) })
              }
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

/**
 * Positional reads from `files`, one open at a time, serialized by the caller. Descriptors (docs/RELIABILITY.md,
 * "Descriptors and other OS resources"): a file is opened and recorded in `open` in one uninterruptible step (an
 * interruption while `open()` is in flight waits for it, so no handle is ever opened without being recorded), and
 * closed exactly once: when the next file is opened, or by `close` when hashing ends on any path (success, failure,
 * interruption; {@link withReader}). `open` is cleared before the close, so nothing can close it twice. A close that
 * fails is a `read` error (EBADF is a bug elsewhere closing our descriptor; EIO a real error), never dropped. A read
 * interrupted in flight is not waited for by the fiber, but `FileHandle.close` waits for it before releasing the
 * descriptor, and its buffer is never released to the pool.
 */
interface Reader {
  /** Reads `len` bytes of file `f` from byte `from` into `buf` at `at`; `read` error if the file shrank. */
  readonly read: (f: number, buf: Uint8Array, at: number, from: number, len: number) => Effect.Effect<void, CreateError>
  readonly close: Effect.Effect<void, CreateError>
}

const makeReader = (files: ReadonlyArray<SourceFile>): Reader => {
  let open: { readonly index: number; readonly fh: Fsp.FileHandle } | undefined
  const shown = (f: number) => files[f]!.source.toString()
  const close: Effect.Effect<void, CreateError> = Effect.suspend(() => {
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
        Effect.zipRight(close, io(shown(f), () => Fsp.open(files[f]!.source, "r"))).pipe(
          Effect.tap((fh) => {
            open = { index: f, fh }
          })
        )
      )
  const read = (f: number, buf: Uint8Array, at: number, from: number, len: number) =>
    Effect.gen(function*() {
      const fh = yield* handle(f)
      let got = 0
      while (got < len) {
        const n = yield* io(shown(f), () => fh.read(buf, at + got, len - got, from + got).then((r) => r.bytesRead))
        if (n === 0) return yield* fail("read", shown(f), "the file shrank while it was being read")
        got += n
      }
    })
  return { read, close }
}

/** Runs `use` with a reader whose last file is closed whatever happened; a failed close is reported after `use`'s own exit. */
const withReader = <A>(
  files: ReadonlyArray<SourceFile>,
  use: (reader: Reader) => Effect.Effect<A, CreateError>
): Effect.Effect<A, CreateError> =>
  Effect.suspend(() => {
    const reader = makeReader(files)
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        Effect.exit(restore(use(reader))),
        (used) => Effect.flatMap(Effect.exit(reader.close), (closed) => Exit.zipLeft(used, closed))
      )
    )
  })

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

    yield* withReader(files, (reader) => {
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
            yield* reader.read(f, buf, done, from, len)
            done += len
          }
        })

      const reading = Effect.unsafeMakeSemaphore(1)
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
      return Effect.forEach(indices, piece, { concurrency, discard: true })
    })
    return hashes
  })

/** Per file (in the given order), its BEP 52 hashes; and for a hybrid, the v1 pieces. */
export interface V2Hashes {
  /** `Merkle.fileRoot` of each file (`undefined` for an empty file). */
  readonly roots: ReadonlyArray<Uint8Array | undefined>
  /** `Merkle.pieceLayer` of each file longer than a piece. */
  readonly layers: ReadonlyArray<Uint8Array | undefined>
  /** Hybrid: the concatenated SHA-1 of every v1 piece of the aligned layout (pads as zeros). Empty for v2. */
  readonly pieces: Uint8Array
}

/**
 * The BEP 52 hashes of `files` (in tree order, `Create.sortFilesTree`): each file is read piece by piece (a piece
 * of a v2 torrent holds one file's bytes), the workers hash every 16 KiB leaf with SHA-256 and reduce them to the
 * piece's Merkle root (32 bytes kept per piece: memory stays bounded by the pieces in flight); the piece roots are
 * the file's piece layer, whose root is the file's `pieces root`. With `hybrid`, the same buffer, zero-filled to the
 * piece length, is also hashed with SHA-1: the v1 piece of the aligned layout, pad included (a single file's last
 * piece is not padded). Fails with `read` (also if a file shrank).
 */
export const hashV2 = (
  files: ReadonlyArray<SourceFile>,
  options: HashOptions & { readonly hybrid: boolean }
): Effect.Effect<V2Hashes, CreateError, Hasher> =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const pieceLength = options.pieceLength
    const perPiece = pieceLength / Merkle.BLOCK_SIZE
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const pool = options.pool ?? PiecePool.make({ maxFree: concurrency })
    const units: Array<{ readonly file: number; readonly piece: number; readonly v1: number }> = []
    const pieceRoots = files.map((f) => new Uint8Array(Math.ceil(f.length / pieceLength) * 32))
    let v1 = 0
    let total = 0
    files.forEach((f, file) => {
      const n = Math.ceil(f.length / pieceLength)
      for (let piece = 0; piece < n; piece++) units.push({ file, piece, v1: v1 + piece })
      v1 += n
      total += f.length
    })
    const lastUnit = units.length - 1
    const pieces = new Uint8Array(options.hybrid ? units.length * 20 : 0)
    const progress = { piecesHashed: 0, pieceCount: units.length, bytesHashed: 0, totalSize: total }
    const report = options.onProgress ?? (() => Effect.void)
    yield* report({ ...progress })

    yield* withReader(files, (reader) => {
      const reading = Effect.unsafeMakeSemaphore(1)
      const unit = (u: number) =>
        Effect.gen(function*() {
          const { file, piece } = units[u]!
          const f = files[file]!
          const from = piece * pieceLength
          const dataLength = Math.min(pieceLength, f.length - from)
          // a hybrid's v1 piece runs on to the piece length through the pad after the file; only a single file
          // has no pad, so its last piece is short (Create.alignedLayout)
          const size = options.hybrid && (files.length > 1 || u !== lastUnit) ? pieceLength : dataLength
          const buf = pool.acquire(size)
          buf.fill(0, dataLength)
          yield* reading.withPermits(1)(reader.read(file, buf, 0, from, dataLength)).pipe(
            Effect.tapError(() => Effect.sync(() => pool.release(buf)))
          )
          const blocks = Merkle.blockCount(f.length)
          const width = blocks > perPiece ? perPiece : Merkle.nextPowerOfTwo(blocks)
          const r = yield* HasherPort.v2Piece(hasher, buf, { dataLength, width, sha1: options.hybrid })
          pieceRoots[file]!.set(r.root, piece * 32)
          if (r.sha1 !== undefined) pieces.set(r.sha1, units[u]!.v1 * 20)
          pool.release(r.data)
          progress.piecesHashed++
          progress.bytesHashed += dataLength
          yield* report({ ...progress })
        })
      const indices = Array.from({ length: units.length }, (_, i) => i)
      return Effect.forEach(indices, unit, { concurrency, discard: true })
    })
    const roots = files.map((f, i) =>
      f.length === 0
        ? undefined
        : f.length <= pieceLength
        ? pieceRoots[i]!.slice(0, 32)
        : Merkle.rootFromPieceLayer(pieceRoots[i]!, pieceLength)
    )
    const layers = files.map((f, i) => (f.length > pieceLength ? pieceRoots[i] : undefined))
    return { roots, layers, pieces }
  })

// ---------------------------------------------------------------------------------------------------------------
// All together

export interface CreateOptions {
  /** Default `v1`: a v1 torrent (mktorrent's layout); `v2` and `hybrid` as libtorrent 2.0.8 writes them. */
  readonly format?: Create.Format | undefined
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
  /** Pieces of the torrent: a v2 or hybrid torrent's count its alignment pads (the v1 pieces of a hybrid). */
  readonly pieceCount: number
}

/** Walks `path`, checks names and sizes (before reading anything), hashes, and builds the torrent. */
export const create = (path: string, options: CreateOptions = {}): Effect.Effect<Result, CreateError, Hasher> =>
  Effect.gen(function*() {
    const format = options.format ?? "v1"
    const s = yield* scan(path)
    if (options.onScan !== undefined) yield* options.onScan(s)
    if (s.files.length === 0) return yield* fail("empty", path, "no files to put in a torrent")
    if (s.totalSize === 0) return yield* fail("empty", path, "all files are empty: a torrent needs at least one byte")
    yield* Create.validateNames(s.name, s.files)
    const pieceLength = options.pieceLength ?? Create.autoPieceLength(s.totalSize)
    yield* Create.validatePieceLength(pieceLength)
    const count = Create.pieceCountOf(s.files, pieceLength, format)
    if (count > Create.MAX_PIECES) return yield* fail("too-many-pieces", path, Create.tooManyPieces(count))
    const common = {
      name: s.name,
      single: s.single,
      pieceLength,
      trackers: options.trackers,
      webSeeds: options.webSeeds,
      private: options.private,
      comment: options.comment,
      createdBy: options.createdBy,
      creationDate: options.creationDate
    }
    const hashing = { pieceLength, concurrency: options.concurrency, onProgress: options.onProgress }
    if (format === "v1") {
      const pieces = yield* hashPieces(s.files, hashing)
      const created = yield* Create.build({
        ...common,
        files: s.files.map((f) => ({ path: f.path, length: f.length })),
        pieces
      })
      return { ...created, scan: s, pieceLength, pieceCount: count }
    }
    const files = Create.sortFilesTree(s.files)
    const hashes = yield* hashV2(files, { ...hashing, hybrid: format === "hybrid" })
    const created = yield* Create.build({
      ...common,
      format,
      files: files.map((f, i) => ({
        path: f.path,
        length: f.length,
        executable: f.executable,
        piecesRoot: hashes.roots[i],
        pieceLayer: hashes.layers[i]
      })),
      pieces: hashes.pieces
    })
    return { ...created, scan: s, pieceLength, pieceCount: count }
  })
