/**
 * What a data check says about each file of a torrent: the pure part of `verify` (Verify.ts does the I/O). Given
 * the torrent's layout, what is on disk at each file's path and which pieces hashed correctly, it decides every
 * file's status and the summary. The JSON form of the report is this module's {@link Report} schema.
 *
 * Attribution of pieces, which may span several files (docs/VERIFY.md):
 * - A piece is *read* only when every file with data in it is there and long enough for its part (Storage's
 *   `checkStream` rule). Otherwise it is *unchecked*: the files whose part is absent are reported `missing` or
 *   `short` themselves, and every other file with bytes in that piece is `unverifiable`, naming those neighbours.
 *   Blame goes to the bytes that are absent, never to the bytes that are there.
 * - A read piece that fails its hash is *failed*, and counts against every file with bytes in it (`corrupt`):
 *   a SHA-1 over several files cannot say which holds the wrong byte, so each is named with the files it shares
 *   the piece with. Torrents whose files are aligned to pieces (BEP 47 pads, every hybrid) never share a piece.
 * - A file is `ok` only when it has exactly its length and every piece touching it verified. Pad files are never
 *   reported (their bytes are never read: they count as zeros).
 *
 * Precedence when several apply: missing, short, corrupt, unverifiable, long, ok.
 */
import * as Schema from "effect/Schema"
import * as Lengths from "../core/Lengths.ts"
import * as FileLayout from "../metainfo/FileLayout.ts"

export const Status = Schema.Literal("ok", "missing", "short", "long", "corrupt", "unverifiable")
export type Status = Schema.Schema.Type<typeof Status>

const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

export const FileReport = Schema.Struct({
  /** The file's number as `info` lists it (torrent order, pad files left out, from 0). */
  index: Count,
  /** Path relative to the data directory, "/"-separated (the torrent's directory name first if multi-file). */
  path: Schema.String,
  status: Status,
  /** Bytes on disk; null when there is no regular file at the path. */
  size: Schema.NullOr(Count),
  expectedSize: Count,
  /** Pieces with bytes of this file. */
  pieces: Count,
  /** Pieces read whose hash did not match, ascending. */
  failedPieces: Schema.Array(Count),
  /** Pieces that could not be read because a file in them is missing or short, ascending. */
  uncheckedPieces: Schema.Array(Count),
  /** Other files with bytes in `failedPieces` (the wrong bytes may be in any of them). */
  sharedWith: Schema.Array(Schema.String),
  /** The missing or short files that made `uncheckedPieces` unreadable (this file itself left out). */
  blockedBy: Schema.Array(Schema.String),
  /** Why something at the path does not count as the file (e.g. "a directory is in its place"); else null. */
  problem: Schema.NullOr(Schema.String)
})
export interface FileReport extends Schema.Schema.Type<typeof FileReport> {}

export const Summary = Schema.Struct({
  /** Every reported file is `ok`. */
  ok: Schema.Boolean,
  /** Files reported (the selected ones, pads left out) and how many are `ok`. */
  files: Count,
  filesOk: Count,
  /** Pieces with bytes of a reported file, and how many of those verified / failed / could not be read. */
  pieces: Count,
  piecesOk: Count,
  piecesFailed: Count,
  piecesUnchecked: Count,
  /** Expected bytes of the reported files, and how many of them lie in verified pieces. */
  bytes: Count,
  bytesOk: Count
})
export interface Summary extends Schema.Schema.Type<typeof Summary> {}

export const Report = Schema.Struct({
  name: Schema.String,
  /** v1 info-hash, hex. */
  infoHash: Schema.String,
  /** The data directory checked (absolute). */
  dir: Schema.String,
  /** The data directory existed (when false every file is `missing`). */
  dirExists: Schema.Boolean,
  pieceLength: Count,
  files: Schema.Array(FileReport),
  summary: Summary
})
export interface Report extends Schema.Schema.Type<typeof Report> {}

/** The report as one JSON document (two-space indented), through the {@link Report} schema. */
export const toJson: (report: Report) => string = Schema.encodeSync(Schema.parseJson(Report, { space: 2 }))

/** What is at a file's path: a regular file of `size` bytes, or nothing usable (`size` -1, `problem` says why). */
export interface Found {
  readonly size: number
  readonly problem?: string | undefined
}

export const absent: Found = { size: -1 }

/** Piece `p` can be read: every file with data in it is present and long enough for its part (Storage's rule). */
export const readable = (layout: FileLayout.FileLayout, found: ReadonlyArray<Found>, p: number): boolean =>
  FileLayout.pieceDataExtents(layout, Lengths.unsafePiece(p)).every((e) =>
    found[e.file]!.size >= e.fileOffset + e.length
  )

/** Pieces with bytes of a selected data file, ascending. */
export const piecesInScope = (layout: FileLayout.FileLayout, selected: ReadonlyArray<boolean>): Array<number> => {
  const mark = new Uint8Array(layout.lengths.pieceCount)
  for (let f = 0; f < layout.fileCount; f++) {
    if (selected[f] !== true || layout.pads[f] === 1) continue
    const range = FileLayout.piecesOfFile(layout, f)
    if (range._tag === "None") continue
    mark.fill(1, range.value.first, range.value.last + 1)
  }
  const out: Array<number> = []
  for (let p = 0; p < mark.length; p++) if (mark[p] === 1) out.push(p)
  return out
}

export interface Input {
  readonly layout: FileLayout.FileLayout
  /** Display path of every file, torrent order (pads included, never shown). */
  readonly paths: ReadonlyArray<string>
  /** What is on disk for every file, torrent order (pads ignored). */
  readonly found: ReadonlyArray<Found>
  /** Files to report, torrent order (pads ignored). */
  readonly selected: ReadonlyArray<boolean>
  /** Whether piece `p` hashed correctly; asked only for pieces in scope that are {@link readable}. */
  readonly verified: (p: number) => boolean
}

interface Tally {
  readonly failed: Array<number>
  readonly unchecked: Array<number>
  readonly sharedWith: Set<number>
  readonly blockedBy: Set<number>
  okBytes: number
}

/** Every selected file's status and the summary. */
export const attribute = (input: Input): Pick<Report, "files" | "summary"> => {
  const { layout, found, selected } = input
  const tallies = new Map<number, Tally>()
  const tally = (f: number): Tally => {
    let t = tallies.get(f)
    if (t === undefined) {
      t = { failed: [], unchecked: [], sharedWith: new Set(), blockedBy: new Set(), okBytes: 0 }
      tallies.set(f, t)
    }
    return t
  }
  const scope = piecesInScope(layout, selected)
  let piecesOk = 0
  let piecesFailed = 0
  for (const p of scope) {
    const extents = FileLayout.pieceDataExtents(layout, Lengths.unsafePiece(p))
    const missing = extents.filter((e) => found[e.file]!.size < e.fileOffset + e.length).map((e) => e.file)
    if (missing.length > 0) {
      for (const e of extents) {
        if (missing.includes(e.file)) continue
        const t = tally(e.file)
        t.unchecked.push(p)
        for (const m of missing) t.blockedBy.add(m)
      }
    } else if (input.verified(p)) {
      piecesOk++
      for (const e of extents) tally(e.file).okBytes += e.length
    } else {
      piecesFailed++
      for (const e of extents) {
        const t = tally(e.file)
        t.failed.push(p)
        for (const other of extents) if (other.file !== e.file) t.sharedWith.add(other.file)
      }
    }
  }

  const files: Array<FileReport> = []
  let number = -1
  let filesOk = 0
  let bytes = 0
  let bytesOk = 0
  for (let f = 0; f < layout.fileCount; f++) {
    if (layout.pads[f] === 1) continue
    number++
    if (selected[f] !== true) continue
    const expected = FileLayout.fileLength(layout, f)
    const at = found[f]!
    const t = tally(f)
    const status: Status = at.size < 0
      ? "missing"
      : at.size < expected
      ? "short"
      : t.failed.length > 0
      ? "corrupt"
      : t.unchecked.length > 0
      ? "unverifiable"
      : at.size > expected
      ? "long"
      : "ok"
    const range = FileLayout.piecesOfFile(layout, f)
    const names = (s: Set<number>) => [...s].sort((a, b) => a - b).map((i) => input.paths[i]!)
    files.push({
      index: number,
      path: input.paths[f]!,
      status,
      size: at.size < 0 ? null : at.size,
      expectedSize: expected,
      pieces: range._tag === "None" ? 0 : range.value.last - range.value.first + 1,
      failedPieces: t.failed,
      uncheckedPieces: t.unchecked,
      sharedWith: names(t.sharedWith),
      blockedBy: names(t.blockedBy),
      problem: at.problem ?? null
    })
    if (status === "ok") filesOk++
    bytes += expected
    bytesOk += t.okBytes
  }
  return {
    files,
    summary: {
      ok: filesOk === files.length,
      files: files.length,
      filesOk,
      pieces: scope.length,
      piecesOk,
      piecesFailed,
      piecesUnchecked: scope.length - piecesOk - piecesFailed,
      bytes,
      bytesOk
    }
  }
}
