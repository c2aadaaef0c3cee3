/**
 * The `Storage` port: one torrent's bytes on some medium, addressed by piece. Layers: `FileStorage` (a directory
 * on disk) and `MemoryStorage` (tests).
 *
 * Both are built by {@link make} from a small {@link Backend} (rqbit's `TorrentStorage`, ANCHORS.md (b)): positional
 * read/write of one file, the size of one file, flush. Decorators (timing, faults, caches) wrap a Backend.
 *
 * Contract of every implementation:
 * - `writePiece` writes each data extent of the piece with one positional write (pad extents are never written;
 *   extents of files that are not wanted are skipped, so those files are never created).
 * - Reads see zeros for pad bytes and for bytes a file does not have yet (missing or short files, holes).
 * - `verifyPiece` hashes through the {@link Hasher} port; it may transfer the buffer to a worker and hands the
 *   bytes back in `Verified.data` (the argument's view is unusable afterwards, see Hasher.ts). With `v2` (BEP 52)
 *   a piece must also match its Merkle root (v2-only torrents: only that), in the same pass over the bytes.
 * - `check` hashes every piece whose files exist and are long enough; a piece touching a missing or short file is
 *   reported missing without reading anything.
 * - Memory: reads allocate only the requested range (`readPieceInto` nothing); `check` holds at most
 *   `checkConcurrency` piece buffers.
 *
 * Pieces that straddle a wanted and an unwanted file are only partly stored (the unwanted part is dropped), so they
 * read back wrong and `check` reports them missing after a restart unless the neighbour file exists. The torrent
 * layer must not serve such pieces from storage (libtorrent keeps a "part file" for them; we do not, yet).
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as Bitfield from "../core/Bitfield.ts"
import * as Bytes from "../core/Bytes.ts"
import * as Lengths from "../core/Lengths.ts"
import * as FileLayout from "../metainfo/FileLayout.ts"
import * as HasherPort from "./Hasher.ts"
import { Hasher } from "./Hasher.ts"

/** A file of the torrent as storage needs it; `path` holds already-sanitized components. */
export interface StorageFile {
  readonly path: ReadonlyArray<string>
  readonly length: number
  readonly pad: boolean
}

/**
 * Expected SHA-1 of every piece: the metainfo's concatenated 20-byte hashes, or a lookup. Empty for a v2-only
 * torrent (with {@link MakeOptions} `v2`).
 */
export type PieceHashes = Uint8Array | ((index: number) => Uint8Array)

/**
 * BEP 52: what the v2 half says piece `index` must hash to (from `Metainfo.v2Piece`): the Merkle root of the SHA-256
 * leaves of its first `dataLength` bytes (the file's data; the rest of the piece is pad), padded to `width` leaves.
 * `root` is `undefined` when the torrent lacks the file's piece layer: a hybrid's piece is then verified by its SHA-1
 * alone, a v2-only piece cannot be verified (never `ok`).
 */
export interface V2PieceHash {
  readonly root: Uint8Array | undefined
  readonly dataLength: number
  readonly width: number
}

export type Reason =
  | "invalid-layout" // file list or piece length rejected by FileLayout / Lengths
  | "invalid-range" // piece index, begin/length or data size outside the torrent's geometry
  | "unsafe-path" // a path escapes the output directory, or a symlink sits where a file or directory should be
  | "path-conflict" // something that is not a directory (or not a regular file) is in the way
  | "open"
  | "read"
  | "write"
  | "no-space" // ENOSPC, EDQUOT
  | "read-only" // EROFS, EACCES, EPERM
  | "too-many-files" // EMFILE, ENFILE: the process or the system is out of file descriptors
  | "changed" // a file was deleted, replaced or truncated by something else while in use
  | "internal" // EBADF: a descriptor used after close — a bug, reported loudly, never retried
  | "closed" // used after its scope closed

export class StorageError extends Data.TaggedError("StorageError")<{
  readonly reason: Reason
  /** The file or directory concerned; "" when none. */
  readonly path: string
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    const where = this.path === "" ? "" : `${this.path}: `
    return `storage ${this.reason}: ${where}${this.detail}`
  }
}

/** Result of {@link Storage} `verifyPiece`: whether the hash matched, and the piece bytes (possibly a new view). */
export interface Verified {
  readonly ok: boolean
  readonly data: Uint8Array
}

/** One step of the resume check. */
export interface CheckProgress {
  readonly index: number
  /** The piece hashed correctly. */
  readonly ok: boolean
  /** A file of the piece was missing or too short, so nothing was read. */
  readonly skipped: boolean
  /** Pieces processed so far, this one included. */
  readonly checked: number
  readonly total: number
  /**
   * When `ok`: the files' version (`pieceVersion`) the piece was read and verified at, if it was the same before
   * and after the read (undefined otherwise, or when the medium cannot tell).
   */
  readonly version?: string | undefined
}

export interface StorageShape {
  readonly layout: FileLayout.FileLayout
  /** Writes a whole piece (`data.length` must be the piece's size): one positional write per data extent. */
  readonly writePiece: (index: number, data: Uint8Array) => Effect.Effect<void, StorageError>
  /** Reads `length` bytes at `begin` inside piece `index` into a new array. */
  readonly readBlock: (index: number, begin: number, length: number) => Effect.Effect<Uint8Array, StorageError>
  /** Reads a whole piece into a new array. */
  readonly readPiece: (index: number) => Effect.Effect<Uint8Array, StorageError>
  /**
   * Reads a whole piece into `into` (exactly the piece's size, e.g. a recycled buffer) and returns it; reuses
   * memory where `readPiece` allocates (the upload path, THROUGHPUT.md rule 9).
   */
  readonly readPieceInto: (index: number, into: Uint8Array) => Effect.Effect<Uint8Array, StorageError>
  /**
   * The current version of the files piece `index` lies in (identity, size and change times of each), or
   * undefined when the medium cannot tell. Equal versions before and after a read mean the bytes read are those
   * of that version: the upload path hashes a piece once per version instead of on every read (Uploader.ts).
   */
  readonly pieceVersion: (index: number) => Effect.Effect<string | undefined>
  /**
   * SHA-1 of `data` against the piece's expected hash (and its BEP 52 Merkle root with `v2`). Ownership of `data`
   * passes to the call; use `Verified.data`.
   */
  readonly verifyPiece: (index: number, data: Uint8Array) => Effect.Effect<Verified, StorageError>
  /** Resume check over existing data, one element per piece in index order. */
  readonly checkStream: Stream.Stream<CheckProgress, StorageError>
  /**
   * The resume check of every piece *not* in `skip` (e.g. pieces a resume record trusts), in index order; the
   * skipped pieces are neither read nor reported, and `total` counts only the checked ones.
   */
  readonly checkStreamExcept: (skip: Bitfield.Bitfield) => Stream.Stream<CheckProgress, StorageError>
  /** The pieces verified from existing data. */
  readonly check: Effect.Effect<Bitfield.Bitfield, StorageError>
  /** Makes written data durable (fdatasync of files written since the last flush). */
  readonly flush: Effect.Effect<void, StorageError>
  /**
   * Fails with reason "changed" when a file was deleted, replaced or cut short by something else since this
   * storage last wrote or opened it, or when a file `complete` says is whole is missing or not at its full length.
   */
  readonly audit: (complete: (file: number) => boolean) => Effect.Effect<void, StorageError>
}

export class Storage extends Context.Tag("effect-torrent/Storage")<Storage, StorageShape>() {}

/** What a medium must provide. File indices are torrent-order indices; pad files are never passed. */
export interface Backend {
  /** Writes all of `data` at `offset` of file `file`, creating it (and its directories) when needed. */
  readonly write: (file: number, offset: number, data: Uint8Array) => Effect.Effect<void, StorageError>
  /**
   * Reads up to `into.length` bytes at `offset` and returns how many were read: fewer at end of file, 0 for a
   * missing file. Never creates anything.
   */
  readonly read: (file: number, offset: number, into: Uint8Array) => Effect.Effect<number, StorageError>
  /** Current size of file `file`, -1 when it does not exist. */
  readonly size: (file: number) => Effect.Effect<number, StorageError>
  /** Creates file `file` empty when it does not exist (zero-length files get no write). */
  readonly touch: (file: number) => Effect.Effect<void, StorageError>
  readonly flush: Effect.Effect<void, StorageError>
  /**
   * A string that changes whenever file `file`'s content may have changed (e.g. inode, size, mtime and ctime), or
   * undefined when unknown. Optional: without it every upload read is hashed.
   */
  readonly version?: ((file: number) => Effect.Effect<string | undefined>) | undefined
  /** See {@link StorageShape} `audit`. Optional: without it nothing is checked. */
  readonly audit?: ((complete: (file: number) => boolean) => Effect.Effect<void, StorageError>) | undefined
}

export interface MakeOptions {
  readonly files: ReadonlyArray<StorageFile>
  readonly pieceLength: number
  readonly pieceHashes: PieceHashes
  /**
   * BEP 52 (v2 and hybrid torrents): every piece is also checked against its Merkle root, in the same pass as the
   * SHA-1 (a hybrid is verified on both hashes); a v2-only torrent passes empty `pieceHashes`.
   */
  readonly v2?: ((index: number) => V2PieceHash | undefined) | undefined
  /** Files to store; others are never created or written. Default: all. Asked on each write, so it may change. */
  readonly wanted?: (file: number) => boolean
  /** Pieces read and hashed at once by `check` (memory: this many piece buffers). Default 2. */
  readonly checkConcurrency?: number
}

/** Builds the layout of `files`, as a typed storage error. */
export const layoutOf = (
  files: ReadonlyArray<StorageFile>,
  pieceLength: number
): Either.Either<FileLayout.FileLayout, StorageError> =>
  Either.mapLeft(
    FileLayout.make(files, pieceLength),
    (e) => new StorageError({ reason: "invalid-layout", path: "", detail: e.message, cause: e })
  )

const invalid = (detail: string) => new StorageError({ reason: "invalid-range", path: "", detail })

const expectedHashOf = (
  hashes: PieceHashes,
  count: number,
  v2: boolean
): Either.Either<((i: number) => Uint8Array) | undefined, StorageError> => {
  if (typeof hashes === "function") return Either.right(hashes)
  if (v2 && hashes.length === 0) return Either.right(undefined)
  if (hashes.length !== count * 20) {
    return Either.left(
      new StorageError({
        reason: "invalid-layout",
        path: "",
        detail: `${hashes.length} bytes of piece hashes for ${count} pieces`
      })
    )
  }
  return Either.right((i) => hashes.subarray(i * 20, i * 20 + 20))
}

/** The Storage over `backend`. Needs the {@link Hasher}. */
export const make = (
  backend: Backend,
  layout: FileLayout.FileLayout,
  options: Omit<MakeOptions, "files" | "pieceLength">
): Effect.Effect<StorageShape, StorageError, Hasher> =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const lengths = layout.lengths
    const v2 = options.v2
    const expected = yield* expectedHashOf(options.pieceHashes, lengths.pieceCount, v2 !== undefined)
    /** Hashes `data` (ownership passes, as for `Hasher`) and says whether it is piece `index`. */
    const hashPiece = (index: number, data: Uint8Array): Effect.Effect<Verified> => {
      if (v2 === undefined) {
        // v1: `expectedHashOf` leaves out the SHA-1 lookup only for v2-only torrents
        const want = expected?.(index) ?? new Uint8Array(0)
        return Effect.map(hasher.sha1(data), (r) => ({ ok: Bytes.equals(r.digest, want), data: r.data }))
      }
      const want = v2(index)
      const sha1 = expected?.(index)
      if (want === undefined || want.root === undefined) {
        // no root to check (the torrent lacks the file's piece layer, e.g. a hybrid fetched by magnet): a hybrid's
        // SHA-1 still decides; a v2-only piece cannot be verified
        if (sha1 === undefined) return Effect.succeed({ ok: false, data })
        return Effect.map(hasher.sha1(data), (r) => ({ ok: Bytes.equals(r.digest, sha1), data: r.data }))
      }
      const root = want.root
      return Effect.map(
        HasherPort.v2Piece(hasher, data, { dataLength: want.dataLength, width: want.width, sha1: sha1 !== undefined }),
        (r) => ({
          ok: Bytes.equals(r.root, root) && (sha1 === undefined || (r.sha1 !== undefined && Bytes.equals(r.sha1, sha1))),
          data: r.data
        })
      )
    }
    const wanted = options.wanted ?? (() => true)
    const checkConcurrency = Math.max(1, options.checkConcurrency ?? 2)
    let touched = false

    // Zero-length wanted files are created with the first write of a session: they get no extent of their own.
    const touchEmpty = Effect.suspend(() => {
      touched = true
      const empty: Array<number> = []
      for (let f = 0; f < layout.fileCount; f++) {
        if (layout.pads[f] === 0 && layout.starts[f + 1] === layout.starts[f] && wanted(f)) empty.push(f)
      }
      return Effect.forEach(empty, backend.touch, { discard: true })
    })

    const writeExtents = Effect.fnUntraced(function*(index: number, data: Uint8Array) {
      const extents = FileLayout.pieceDataExtents(layout, index as Lengths.PieceIndex)
      for (const e of extents) {
        if (!wanted(e.file)) continue
        yield* backend.write(e.file, e.fileOffset, data.subarray(e.bufferOffset, e.bufferOffset + e.length))
      }
    })

    const writePiece = (index: number, data: Uint8Array): Effect.Effect<void, StorageError> => {
      if (!Lengths.isPiece(lengths, index)) return Effect.fail(invalid(`piece ${index} out of range`))
      const size = Lengths.pieceSize(lengths, index)
      if (data.length !== size) return Effect.fail(invalid(`piece ${index} has ${size} bytes, got ${data.length}`))
      const write = writeExtents(index, data)
      return touched ? write : Effect.zipRight(touchEmpty, write)
    }

    /** Fills `into` with torrent bytes from `offset`: pads and bytes not on the medium read as zeros. */
    const readRange = Effect.fnUntraced(function*(offset: number, into: Uint8Array) {
      for (const e of FileLayout.extents(layout, offset, into.length)) {
        const view = into.subarray(e.bufferOffset, e.bufferOffset + e.length)
        const n = e.pad ? 0 : yield* backend.read(e.file, e.fileOffset, view)
        if (n < view.length) view.fill(0, n)
      }
      return into
    })

    const readBlock = (index: number, begin: number, length: number): Effect.Effect<Uint8Array, StorageError> => {
      if (!Lengths.isPiece(lengths, index)) return Effect.fail(invalid(`piece ${index} out of range`))
      const size = Lengths.pieceSize(lengths, index)
      if (!Number.isInteger(begin) || !Number.isInteger(length) || begin < 0 || length < 0 || begin + length > size) {
        return Effect.fail(invalid(`range ${begin}+${length} outside piece ${index} of ${size} bytes`))
      }
      return readRange(Lengths.pieceOffset(lengths, index) + begin, new Uint8Array(length))
    }

    const readPiece = (index: number): Effect.Effect<Uint8Array, StorageError> =>
      Lengths.isPiece(lengths, index)
        ? readBlock(index, 0, Lengths.pieceSize(lengths, index))
        : Effect.fail(invalid(`piece ${index} out of range`))

    const readPieceInto = (index: number, into: Uint8Array): Effect.Effect<Uint8Array, StorageError> => {
      if (!Lengths.isPiece(lengths, index)) return Effect.fail(invalid(`piece ${index} out of range`))
      const size = Lengths.pieceSize(lengths, index)
      if (into.length !== size) return Effect.fail(invalid(`piece ${index} has ${size} bytes, got a ${into.length}-byte buffer`))
      return readRange(Lengths.pieceOffset(lengths, index), into)
    }

    const versionOf = backend.version
    const pieceVersion = (index: number): Effect.Effect<string | undefined> => {
      if (versionOf === undefined || !Lengths.isPiece(lengths, index)) return Effect.succeed(undefined)
      const extents = FileLayout.pieceDataExtents(layout, index as Lengths.PieceIndex)
      if (extents.length === 1) return versionOf(extents[0]!.file)
      return Effect.map(
        Effect.forEach(extents, (e) => versionOf(e.file)),
        (vs) => (vs.some((v) => v === undefined) ? undefined : vs.join("|"))
      )
    }

    const verifyPiece = (index: number, data: Uint8Array): Effect.Effect<Verified, StorageError> => {
      if (!Lengths.isPiece(lengths, index)) return Effect.fail(invalid(`piece ${index} out of range`))
      return hashPiece(index, data)
    }

    const checkStreamExcept = (skip: Bitfield.Bitfield | undefined): Stream.Stream<CheckProgress, StorageError> =>
      Stream.unwrap(Effect.gen(function*() {
        const todo: Array<number> = []
        for (let i = 0; i < lengths.pieceCount; i++) if (skip === undefined || !Bitfield.has(skip, i)) todo.push(i)
        const total = todo.length
        // Every file's size once, up front, so a piece whose data is missing is settled without an Effect: a fresh
        // download of 1024 pieces into an empty directory used to run 3 fibers per piece (~0.5 s of start-up).
        const sizes = new Map<number, number>()
        for (const i of todo) {
          for (const e of FileLayout.pieceDataExtents(layout, i as Lengths.PieceIndex)) {
            if (!sizes.has(e.file)) sizes.set(e.file, yield* backend.size(e.file))
          }
        }
        const present = (index: number) =>
          FileLayout.pieceDataExtents(layout, index as Lengths.PieceIndex).every((e) =>
            sizes.get(e.file)! >= e.fileOffset + e.length
          )
        const free: Array<Uint8Array> = []
        let checked = 0
        const one = Effect.fnUntraced(function*(index: number) {
          const piece = index as Lengths.PieceIndex
          const size = Lengths.pieceSize(lengths, piece)
          const reuse = free.pop()
          const buf = reuse !== undefined && reuse.length === size ? reuse : new Uint8Array(size)
          const before = yield* pieceVersion(index)
          yield* readRange(Lengths.pieceOffset(lengths, piece), buf)
          const after = before === undefined ? undefined : yield* pieceVersion(index)
          const { ok, data } = yield* hashPiece(index, buf)
          if (data.length === lengths.pieceLength) free.push(data)
          return { index, ok, skipped: false, version: ok && before === after ? before : undefined }
        })
        // Runs of consecutive pieces, each all present (read and hashed, `checkConcurrency` at a time) or all
        // missing (one chunk of results); index order is kept.
        const runs: Array<{ readonly present: boolean; readonly indices: Array<number> }> = []
        for (const i of todo) {
          const p = present(i)
          const last = runs[runs.length - 1]
          if (last !== undefined && last.present === p) last.indices.push(i)
          else runs.push({ present: p, indices: [i] })
        }
        return Stream.fromIterable(runs).pipe(
          Stream.flatMap((run) =>
            run.present
              ? Stream.mapEffect(Stream.fromIterable(run.indices), one, { concurrency: checkConcurrency })
              : Stream.fromIterable(run.indices.map((index) => ({ index, ok: false, skipped: true })))
          ),
          Stream.map((r): CheckProgress => ({ ...r, checked: ++checked, total }))
        )
      }))
    const checkStream = checkStreamExcept(undefined)

    // A fresh (mutable) bitfield per run.
    const check = Effect.suspend(() =>
      Stream.runFold(checkStream, Bitfield.make(lengths.pieceCount), (bf, p) => {
        if (p.ok) Bitfield.set(bf, p.index)
        return bf
      })
    )

    return {
      layout,
      writePiece,
      readBlock,
      readPiece,
      readPieceInto,
      pieceVersion,
      verifyPiece,
      checkStream,
      checkStreamExcept,
      check,
      flush: backend.flush,
      audit: backend.audit ?? (() => Effect.void)
    }
  })
