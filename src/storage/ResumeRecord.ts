/**
 * Fast-resume record: what a torrent had verified, and the size and mtime of each of its files when it said so.
 * On start, pieces whose files still look the same are trusted without hashing; the rest are re-verified.
 *
 * Where it lives: `<state-dir>/<infohash-hex>.resume`, with `state-dir` from `--state-dir`, else
 * `$XDG_STATE_HOME/effect-torrent`, else `~/.local/state/effect-torrent` ({@link defaultStateDir}; library users pass
 * `Client` option `stateDir`, without which no record is kept). Not beside the
 * data: the data directory may be read-only or shared (seeding from a mount, a NAS, another user's files); a record
 * there would be copied, synced or served along with the data, and clutters the user's directory; a state directory
 * is one place to inspect and clean, and it is ours to write whatever the torrent's paths say.
 *
 * The record (bencoded, canonical key order, {@link VERSION} 1):
 * `{ version, info-hash, piece-count, piece-length, verified: bitfield bytes, files: [{ path, size, mtime-ms }],
 * saved-at }`. `files` has one entry per file of the torrent in torrent order (pad files included; their stats are
 * ignored); a file absent when saved is recorded with size 0 and mtime 0. Times are whole milliseconds.
 *
 * Trust rule ({@link matches}): a recorded-verified piece is trusted when every non-pad file it touches exists now
 * with exactly the recorded size and mtime, and is long enough to hold the piece's bytes. A file that changed makes
 * every piece it touches untrusted, and only those.
 *
 * Saving (the torrent's job, Torrent.ts `resume`: every 10 s and every 256 MiB verified while pieces arrive, and
 * when its scope closes, interruption included; ResumeStore.ts does the I/O): snapshot the verified bitfield, flush
 * storage, *then* stat the files and write. A piece written after the stat changes its file's mtime, so a crash
 * before the next save costs a re-hash of the files written since then, never a wrongly trusted piece.
 *
 * {@link writeAtomic} (AtomicFile.ts): temp file in the same directory (unique name, `O_EXCL`), fsync, rename over
 * the target, fsync the directory. The target is always either the old or the new complete record. A crash between create and
 * rename can leave a `.<name>.<pid>.<random>.tmp` beside it; it is never read and never renamed later.
 */
import * as Os from "node:os"
import * as Path from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bitfield from "../core/Bitfield.ts"
import * as Bytes from "../core/Bytes.ts"
import * as Lengths from "../core/Lengths.ts"
import * as FileLayout from "../metainfo/FileLayout.ts"
import * as AtomicFile from "./AtomicFile.ts"

export const VERSION = 1

/** A file's size and modification time (whole ms). */
export interface FileStat {
  readonly size: number
  readonly mtimeMs: number
}

export interface ResumeFile extends FileStat {
  /** Path components relative to the output directory. */
  readonly path: ReadonlyArray<string>
}

export interface ResumeRecord {
  readonly version: typeof VERSION
  /** The torrent's 20-byte id (v1 info-hash, or truncated v2), or a 32-byte v2 info-hash. */
  readonly infoHash: Uint8Array
  readonly pieceCount: number
  readonly pieceLength: number
  readonly verified: Bitfield.Bitfield
  readonly files: ReadonlyArray<ResumeFile>
  /** ms since the epoch. */
  readonly savedAt: number
}

/** What the loading torrent is: a record for anything else is refused. */
export interface Expected {
  readonly infoHash: Uint8Array
  readonly pieceCount: number
  readonly pieceLength: number
  readonly fileCount?: number | undefined
}

export type Reason =
  | "invalid-bencode" // not strict bencode
  | "invalid-record" // a field missing, of the wrong type or out of range; a bitfield of the wrong size
  | "unsupported-version"
  | "other-torrent" // another info-hash
  | "geometry-mismatch" // piece count, piece length or file count differ from the torrent's
  | "read"
  | "write"

export class ResumeError extends Data.TaggedError("ResumeError")<{
  readonly reason: Reason
  /** The record's file; "" when decoding bytes. */
  readonly path: string
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `resume record${this.path === "" ? "" : ` ${this.path}`}: ${this.detail}`
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Location

/** `$XDG_STATE_HOME/effect-torrent` when that is an absolute path, else `<home>/.local/state/effect-torrent`. */
export const defaultStateDir = (
  env: { readonly XDG_STATE_HOME?: string | undefined } = process.env,
  home: string = Os.homedir()
): string => {
  const xdg = env.XDG_STATE_HOME
  return xdg !== undefined && Path.isAbsolute(xdg)
    ? Path.join(xdg, "effect-torrent")
    : Path.join(home, ".local", "state", "effect-torrent")
}

/** `<stateDir>/<infohash-hex>.resume`. */
export const pathFor = (stateDir: string, infoHash: Uint8Array): string =>
  Path.join(stateDir, `${Bytes.toHex(infoHash)}.resume`)

// ---------------------------------------------------------------------------------------------------------------
// Codec

/** An entry for `files`; `undefined` (absent file) is recorded as size 0, mtime 0. */
export const fileEntry = (path: ReadonlyArray<string>, stat: FileStat | undefined): ResumeFile => ({
  path,
  size: stat?.size ?? 0,
  mtimeMs: stat === undefined ? 0 : Math.trunc(stat.mtimeMs)
})

/** Canonical bencode of a record. Times are truncated to whole ms. */
export const encode = (record: ResumeRecord): Uint8Array =>
  Bencode.encode({
    version: record.version,
    "info-hash": record.infoHash,
    "piece-count": record.pieceCount,
    "piece-length": record.pieceLength,
    verified: record.verified.bytes,
    files: record.files.map((f) => ({ path: f.path, size: f.size, "mtime-ms": Math.trunc(f.mtimeMs) })),
    "saved-at": Math.trunc(record.savedAt)
  })

class Invalid {
  readonly reason: Reason
  readonly detail: string
  constructor(reason: Reason, detail: string) {
    this.reason = reason
    this.detail = detail
  }
}

const invalid = (detail: string): never => {
  throw new Invalid("invalid-record", detail)
}

const intField = (d: Bencode.BDict, key: string, min: number, max: number): number => {
  const v = d.get(key)
  if (v === undefined) return invalid(`missing ${key}`)
  if (typeof v !== "number" || v < min || v > max) return invalid(`${key} must be an integer in ${min}..${max}`)
  return v
}

const bytesField = (d: Bencode.BDict, key: string): Uint8Array => {
  const v = d.get(key)
  if (!Bencode.isBytes(v)) return invalid(`${key} must be a byte string`)
  return v
}

const parseFile = (v: Bencode.BValue, i: number): ResumeFile => {
  if (!Bencode.isDict(v)) return invalid(`files[${i}] must be a dictionary`)
  const p = v.get("path")
  if (!Bencode.isList(p)) return invalid(`files[${i}].path must be a list`)
  const path = p.map((c) => {
    const s = Bencode.isBytes(c) ? Bytes.decodeUtf8(c) : undefined
    return s ?? invalid(`files[${i}].path must hold UTF-8 strings`)
  })
  return {
    path,
    size: intField(v, "size", 0, Number.MAX_SAFE_INTEGER),
    mtimeMs: intField(v, "mtime-ms", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
  }
}

const parse = (top: Bencode.BValue, expected: Expected | undefined): ResumeRecord => {
  if (!Bencode.isDict(top)) return invalid("not a dictionary")
  const version = top.get("version")
  if (version !== VERSION) {
    throw new Invalid("unsupported-version", `version ${typeof version === "number" ? version : "missing"}, expected 1`)
  }
  const infoHash = bytesField(top, "info-hash")
  if (infoHash.length !== 20 && infoHash.length !== 32) invalid("info-hash must be 20 or 32 bytes")
  const pieceCount = intField(top, "piece-count", 0, Lengths.MAX_PIECES)
  const pieceLength = intField(top, "piece-length", 1, Lengths.MAX_PIECE_LENGTH)
  const verifiedBytes = bytesField(top, "verified")
  const verified = Bitfield.fromBytes(verifiedBytes, pieceCount)
  if (verified === undefined) invalid(`verified must be ${Bitfield.byteLength(pieceCount)} bytes with no spare bit set`)
  const files = top.get("files")
  if (!Bencode.isList(files)) return invalid("files must be a list")
  const record: ResumeRecord = {
    version: VERSION,
    infoHash: new Uint8Array(infoHash),
    pieceCount,
    pieceLength,
    verified: verified!,
    files: files.map(parseFile),
    savedAt: intField(top, "saved-at", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
  }
  if (expected !== undefined) {
    if (!Bytes.equals(record.infoHash, expected.infoHash)) {
      throw new Invalid("other-torrent", `for torrent ${Bytes.toHex(record.infoHash)}`)
    }
    const mismatch = (what: string, got: number, want: number) =>
      new Invalid("geometry-mismatch", `${what} ${got}, the torrent has ${want}`)
    if (pieceCount !== expected.pieceCount) throw mismatch("piece count", pieceCount, expected.pieceCount)
    if (pieceLength !== expected.pieceLength) throw mismatch("piece length", pieceLength, expected.pieceLength)
    if (expected.fileCount !== undefined && record.files.length !== expected.fileCount) {
      throw mismatch("file count", record.files.length, expected.fileCount)
    }
  }
  return record
}

/**
 * Decodes a record (strict bencode), checking it against the torrent when `expected` is given. Never throws.
 * Unknown keys are ignored, so a later minor addition does not invalidate older readers.
 */
export const decode = (bytes: Uint8Array, expected?: Expected): Either.Either<ResumeRecord, ResumeError> => {
  const top = Bencode.decode(bytes)
  if (Either.isLeft(top)) {
    return Either.left(new ResumeError({ reason: "invalid-bencode", path: "", detail: top.left.message }))
  }
  try {
    return Either.right(parse(top.right, expected))
  } catch (e) {
    if (e instanceof Invalid) return Either.left(new ResumeError({ reason: e.reason, path: "", detail: e.detail }))
    return Either.left(new ResumeError({ reason: "invalid-record", path: "", detail: String(e), cause: e }))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Trust

export interface Match {
  /** Pieces to mark as had without hashing; every other piece must be verified. */
  readonly trusted: Bitfield.Bitfield
  /** Non-pad files whose size or mtime differ from the record (or that are gone), ascending. */
  readonly changed: ReadonlyArray<number>
}

/**
 * Which recorded pieces can be trusted, given the files' stats now (`current[f]`, `undefined` when file `f` is
 * missing). A record whose geometry or file count differs from `layout` trusts nothing.
 */
export const matches = (
  record: ResumeRecord,
  layout: FileLayout.FileLayout,
  current: ReadonlyArray<FileStat | undefined>
): Match => {
  const n = layout.lengths.pieceCount
  const trusted = Bitfield.make(n)
  const changed: Array<number> = []
  if (
    record.pieceCount !== n ||
    record.pieceLength !== layout.lengths.pieceLength ||
    record.verified.size !== n ||
    record.files.length !== layout.fileCount ||
    current.length !== layout.fileCount
  ) {
    for (let f = 0; f < layout.fileCount; f++) if (!FileLayout.isPad(layout, f)) changed.push(f)
    return { trusted, changed }
  }
  const same = new Uint8Array(layout.fileCount)
  for (let f = 0; f < layout.fileCount; f++) {
    const was = record.files[f]!
    const now = current[f]
    if (FileLayout.isPad(layout, f)) same[f] = 1
    else if (now !== undefined && now.size === was.size && Math.trunc(now.mtimeMs) === Math.trunc(was.mtimeMs)) {
      same[f] = 1
    } else changed.push(f)
  }
  for (let i = 0; i < n; i++) {
    if (!Bitfield.has(record.verified, i)) continue
    const ok = FileLayout.pieceDataExtents(layout, Lengths.unsafePiece(i)).every(
      (e) => same[e.file] === 1 && current[e.file]!.size >= e.fileOffset + e.length
    )
    if (ok) Bitfield.set(trusted, i)
  }
  return { trusted, changed }
}

// ---------------------------------------------------------------------------------------------------------------
// Files

const ioError = (reason: "read" | "write", path: string) => (cause: unknown) =>
  new ResumeError({ reason, path, detail: describeIo(cause), cause })

/**
 * The operating system's words for a failed call ("ENOTDIR: not a directory, stat '…'"), not @effect/platform's
 * wrapper around them ("BadResource: FileSystem.stat …", which names its own internals).
 */
const describeIo = (cause: unknown): string => {
  const description = (cause as { readonly _tag?: unknown; readonly description?: unknown } | undefined)
  if (description?._tag === "SystemError" && typeof description.description === "string") return description.description
  return cause instanceof Error ? cause.message : String(cause)
}

const isNotFound = (e: unknown): boolean =>
  typeof e === "object" && e !== null && "_tag" in e && e._tag === "SystemError" && "reason" in e &&
  e.reason === "NotFound"

/**
 * Replaces `path` with `bytes` atomically and durably (see the module comment and AtomicFile.ts): the file 0600,
 * the directory created 0700 if missing. On failure the temp file is removed (a failure to remove it is logged) and
 * the target is untouched. Uninterruptible: a save on exit is never cut in half. Every failure, a failed close of
 * the temp file and EBADF anywhere included, is a `write` error whose cause is the {@link AtomicFile.AtomicWriteError}
 * ({@link isBadDescriptor} tells EBADF apart); a failed directory fsync other than EBADF is logged (the rename
 * has happened by then).
 */
export const writeAtomic = (path: string, bytes: Uint8Array): Effect.Effect<void, ResumeError, FileSystem.FileSystem> =>
  AtomicFile.write(path, bytes, { mode: 0o600, directoryMode: 0o700 }).pipe(
    Effect.mapError((cause) => new ResumeError({ reason: "write", path, detail: cause.message, cause }))
  )

/**
 * The error came from a descriptor of ours that was not valid (EBADF): a bug in the process (a descriptor number
 * closed twice), never an ordinary I/O failure to log and go on from.
 */
export const isBadDescriptor = (e: ResumeError): boolean =>
  e.cause instanceof AtomicFile.AtomicWriteError ? e.cause.badDescriptor : AtomicFile.errnoCode(e.cause) === "EBADF"

/** The record file's bytes, or none when it does not exist. */
export const read = (path: string): Effect.Effect<Option.Option<Uint8Array>, ResumeError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFile(path)).pipe(
    // A plain Uint8Array view (Node hands back a Buffer).
    Effect.map((b) => Option.some(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))),
    Effect.catchIf(isNotFound, () => Effect.succeed(Option.none())),
    Effect.mapError(ioError("read", path))
  )

/** A file's size and whole-ms mtime (following symlinks), or undefined when it does not exist. */
export const statFile = (path: string): Effect.Effect<FileStat | undefined, ResumeError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.stat(path)).pipe(
    Effect.map((info): FileStat | undefined => ({
      size: Number(info.size),
      mtimeMs: Option.match(info.mtime, { onNone: () => 0, onSome: (d) => d.getTime() })
    })),
    Effect.catchIf(isNotFound, () => Effect.succeed(undefined)),
    Effect.mapError(ioError("read", path))
  )
