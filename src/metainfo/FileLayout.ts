/**
 * Where torrent bytes live on disk: a pure map from byte ranges of the concatenated torrent (files in torrent
 * order, pad files included) to extents of individual files.
 *
 * - Zero-length files occupy no bytes: they never appear in an extent and touch no piece.
 * - Pad files (BEP 47) occupy bytes of the torrent but are never written; their bytes read as zeros. `extents`
 *   reports them with `pad: true`, `dataExtents` leaves them out.
 * - Lookups binary-search the start offsets of the non-empty files, so a 100k-file torrent costs O(log n) per call.
 * - Out-of-range arguments are programming errors (the callers hold validated geometry) and throw `RangeError`,
 *   like `Bitfield.set`.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Lengths from "../core/Lengths.ts"

/** A file as the metainfo model lists it. */
export interface FileEntry {
  readonly length: number
  readonly pad: boolean
}

/** A run of bytes that lies in one file. */
export interface Extent {
  /** File index in torrent order. */
  readonly file: number
  /** Offset of the run inside the file. */
  readonly fileOffset: number
  readonly length: number
  /** Offset of the run inside the requested range (the caller's buffer). */
  readonly bufferOffset: number
  /** A pad file's bytes: never written, read as zeros. */
  readonly pad: boolean
}

/** An inclusive range of pieces. */
export interface PieceRange {
  readonly first: Lengths.PieceIndex
  readonly last: Lengths.PieceIndex
}

export interface FileLayout {
  readonly lengths: Lengths.Lengths
  readonly fileCount: number
  /** Start offset of every file in the torrent, plus the total at the end (length fileCount + 1). */
  readonly starts: Float64Array
  /** 1 for pad files. */
  readonly pads: Uint8Array
  /** Indices of the non-empty files, ascending; their starts are strictly increasing. */
  readonly nonEmpty: Int32Array
  /** `starts` of the files in `nonEmpty`, for the binary search. */
  readonly nonEmptyStarts: Float64Array
}

export class FileLayoutError extends Data.TaggedError("FileLayoutError")<{
  readonly reason: "invalid-file-length" | "total-too-large"
  /** Index of the offending file. */
  readonly file: number
  readonly detail: string
}> {
  override get message(): string {
    return `invalid file list at file ${this.file}: ${this.detail}`
  }
}

/** Builds the layout of `files` (torrent order) for pieces of `pieceLength` bytes. */
export const make = (
  files: ReadonlyArray<FileEntry>,
  pieceLength: number
): Either.Either<FileLayout, FileLayoutError | Lengths.LengthsError> => {
  const n = files.length
  const starts = new Float64Array(n + 1)
  const pads = new Uint8Array(n)
  let total = 0
  let nonEmptyCount = 0
  for (let f = 0; f < n; f++) {
    const { length, pad } = files[f]!
    if (!Number.isSafeInteger(length) || length < 0) {
      return Either.left(new FileLayoutError({ reason: "invalid-file-length", file: f, detail: `length ${length}` }))
    }
    starts[f] = total
    pads[f] = pad ? 1 : 0
    total += length
    // Checked per file so that the running sum stays exact (each term and the sum stay below 2^49).
    if (total > Lengths.MAX_TOTAL) {
      return Either.left(
        new FileLayoutError({ reason: "total-too-large", file: f, detail: `total exceeds ${Lengths.MAX_TOTAL}` })
      )
    }
    if (length > 0) nonEmptyCount++
  }
  starts[n] = total
  return Either.map(Lengths.make(total, pieceLength), (lengths) => {
    const nonEmpty = new Int32Array(nonEmptyCount)
    const nonEmptyStarts = new Float64Array(nonEmptyCount)
    for (let f = 0, k = 0; f < n; f++) {
      if (starts[f + 1]! > starts[f]!) {
        nonEmpty[k] = f
        nonEmptyStarts[k++] = starts[f]!
      }
    }
    return { lengths, fileCount: n, starts, pads, nonEmpty, nonEmptyStarts }
  })
}

/** Total bytes, pad files included. */
export const total = (layout: FileLayout): number => layout.lengths.total

const checkFile = (layout: FileLayout, f: number): void => {
  if (!Number.isInteger(f) || f < 0 || f >= layout.fileCount) {
    throw new RangeError(`file ${f} out of range 0..${layout.fileCount - 1}`)
  }
}

/** Offset of file `f`'s first byte in the torrent (where it would start, for a zero-length file). */
export const fileOffset = (layout: FileLayout, f: number): number => {
  checkFile(layout, f)
  return layout.starts[f]!
}

export const fileLength = (layout: FileLayout, f: number): number => {
  checkFile(layout, f)
  return layout.starts[f + 1]! - layout.starts[f]!
}

export const isPad = (layout: FileLayout, f: number): boolean => {
  checkFile(layout, f)
  return layout.pads[f] === 1
}

/** Position in `nonEmpty` of the file holding byte `offset` (0 ≤ offset < total). */
const locate = (layout: FileLayout, offset: number): number => {
  const s = layout.nonEmptyStarts
  let lo = 0
  let hi = s.length - 1
  // Last k with s[k] <= offset; s[0] is 0 whenever total > 0.
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (s[mid]! <= offset) lo = mid
    else hi = mid - 1
  }
  return lo
}

const collect = (layout: FileLayout, offset: number, length: number, withPads: boolean): Array<Extent> => {
  const tot = layout.lengths.total
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid range ${offset}+${length}`)
  }
  if (offset + length > tot) throw new RangeError(`range ${offset}+${length} past the end ${tot}`)
  const out: Array<Extent> = []
  if (length === 0) return out
  const end = offset + length
  const { nonEmpty, starts, pads } = layout
  for (let k = locate(layout, offset); k < nonEmpty.length; k++) {
    const f = nonEmpty[k]!
    const fStart = starts[f]!
    if (fStart >= end) break
    const from = fStart > offset ? fStart : offset
    const fEnd = starts[f + 1]!
    const to = fEnd < end ? fEnd : end
    const pad = pads[f] === 1
    if (withPads || !pad) {
      out.push({ file: f, fileOffset: from - fStart, length: to - from, bufferOffset: from - offset, pad })
    }
  }
  return out
}

/**
 * The file extents of torrent bytes `offset .. offset+length-1`, in order: contiguous in the buffer, summing to
 * `length`, none crossing a file end. Pad extents are included and flagged.
 */
export const extents = (layout: FileLayout, offset: number, length: number): Array<Extent> =>
  collect(layout, offset, length, true)

/** {@link extents} without the pad files' extents: what is actually read from or written to disk. */
export const dataExtents = (layout: FileLayout, offset: number, length: number): Array<Extent> =>
  collect(layout, offset, length, false)

/** The extents of piece `i`. */
export const pieceExtents = (layout: FileLayout, i: Lengths.PieceIndex): Array<Extent> =>
  collect(layout, Lengths.pieceOffset(layout.lengths, i), Lengths.pieceSize(layout.lengths, i), true)

/** The extents of piece `i` that hold file data (pads left out). */
export const pieceDataExtents = (layout: FileLayout, i: Lengths.PieceIndex): Array<Extent> =>
  collect(layout, Lengths.pieceOffset(layout.lengths, i), Lengths.pieceSize(layout.lengths, i), false)

/** The files with bytes in piece `i`, ascending (pad files included, zero-length files never). */
export const filesOfPiece = (layout: FileLayout, i: Lengths.PieceIndex): Array<number> => {
  if (!Lengths.isPiece(layout.lengths, i)) throw new RangeError(`piece ${i} out of range`)
  const begin = Lengths.pieceOffset(layout.lengths, i)
  const end = begin + Lengths.pieceSize(layout.lengths, i)
  const out: Array<number> = []
  const { nonEmpty, starts } = layout
  for (let k = locate(layout, begin); k < nonEmpty.length; k++) {
    const f = nonEmpty[k]!
    if (starts[f]! >= end) break
    out.push(f)
  }
  return out
}

/** The pieces file `f` has bytes in; none for a zero-length file. */
export const piecesOfFile = (layout: FileLayout, f: number): Option.Option<PieceRange> => {
  checkFile(layout, f)
  const start = layout.starts[f]!
  const end = layout.starts[f + 1]!
  if (end === start) return Option.none()
  const pl = layout.lengths.pieceLength
  return Option.some({
    first: Lengths.unsafePiece(Math.floor(start / pl)),
    last: Lengths.unsafePiece(Math.floor((end - 1) / pl))
  })
}
