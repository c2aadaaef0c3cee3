/**
 * Piece and block geometry of one torrent, validated once (rqbit's `Lengths`, ANCHORS.md (b)). Every piece size,
 * last-piece size and block boundary comes from here, never from arithmetic at call sites.
 *
 * Decisions:
 * - A total length of 0 is accepted and has 0 pieces. libtorrent parses such a torrent (only empty files) but
 *   refuses to start it (`torrent_invalid_length`); rqbit refuses it here. Geometry stays total; whether an empty
 *   torrent is an error is the metainfo/torrent layer's call. `validatePiece` returns none for every index then.
 * - Limits follow libtorrent's `file_storage`: piece length ≤ 2^30, total ≤ 2^48 - 1, at most 2^30 - 1 pieces.
 *   Within them every offset is an exact integer and every in-piece offset fits a wire u32.
 * - The per-block functions take raw numbers from the wire and allocate nothing.
 */
import * as Brand from "effect/Brand"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/** Block ("chunk") size every client requests: 16 KiB. */
export const BLOCK = 16384

/** Largest accepted piece length (libtorrent `file_storage::max_piece_size`). */
export const MAX_PIECE_LENGTH = 2 ** 30
/** Largest accepted total length (libtorrent `file_storage::max_file_offset`). */
export const MAX_TOTAL = 2 ** 48 - 1
/** Largest accepted piece count (libtorrent `file_storage::max_num_pieces`). */
export const MAX_PIECES = 2 ** 30 - 1

/** A piece index known to be in range for the `Lengths` it was validated against. */
export type PieceIndex = number & Brand.Brand<"PieceIndex">

/** Validated geometry. Only {@link make} builds one. */
export type Lengths = Brand.Brand<"Lengths"> & {
  /** Total bytes in the torrent (pad files included). */
  readonly total: number
  /** Nominal piece length; every piece but the last has exactly this size. */
  readonly pieceLength: number
  readonly pieceCount: number
  /** Size of the last piece, in 1..pieceLength (0 only when there are no pieces). */
  readonly lastPieceSize: number
  /** Blocks in a full piece. */
  readonly blocksPerPiece: number
}

export type Reason =
  | "invalid-total" // negative, fractional or not a safe integer
  | "total-too-large" // above MAX_TOTAL
  | "invalid-piece-length" // zero, negative, fractional or not a safe integer
  | "piece-length-too-large" // above MAX_PIECE_LENGTH
  | "too-many-pieces" // more than MAX_PIECES

export class LengthsError extends Data.TaggedError("LengthsError")<{
  readonly reason: Reason
  readonly detail: string
}> {
  override get message(): string {
    return `invalid torrent geometry: ${this.detail}`
  }
}

const fail = (reason: Reason, detail: string): Either.Either<Lengths, LengthsError> =>
  Either.left(new LengthsError({ reason, detail }))

/** Geometry of a torrent of `total` bytes cut into pieces of `pieceLength` bytes. */
export const make = (total: number, pieceLength: number): Either.Either<Lengths, LengthsError> => {
  if (!Number.isSafeInteger(total) || total < 0) return fail("invalid-total", `total length ${total}`)
  if (total > MAX_TOTAL) return fail("total-too-large", `total length ${total} exceeds ${MAX_TOTAL}`)
  if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
    return fail("invalid-piece-length", `piece length ${pieceLength}`)
  }
  if (pieceLength > MAX_PIECE_LENGTH) {
    return fail("piece-length-too-large", `piece length ${pieceLength} exceeds ${MAX_PIECE_LENGTH}`)
  }
  const pieceCount = Math.ceil(total / pieceLength)
  if (pieceCount > MAX_PIECES) return fail("too-many-pieces", `${pieceCount} pieces exceed ${MAX_PIECES}`)
  const rem = total % pieceLength
  return Either.right({
    total,
    pieceLength,
    pieceCount,
    lastPieceSize: pieceCount === 0 ? 0 : rem === 0 ? pieceLength : rem,
    blocksPerPiece: Math.ceil(pieceLength / BLOCK)
  } as Lengths)
}

/** Number of pieces. */
export const pieceCount = (l: Lengths): number => l.pieceCount

/** `i` as a {@link PieceIndex} when it is an integer in 0..pieceCount-1. */
export const validatePiece = (l: Lengths, i: number): Option.Option<PieceIndex> =>
  isPiece(l, i) ? Option.some(i as PieceIndex) : Option.none()

/** Whether `i` is an integer piece index in range (the allocation-free form of {@link validatePiece}). */
export const isPiece = (l: Lengths, i: number): i is PieceIndex => Number.isInteger(i) && i >= 0 && i < l.pieceCount

/** The last piece, none when the torrent is empty. */
export const lastPiece = (l: Lengths): Option.Option<PieceIndex> =>
  l.pieceCount === 0 ? Option.none() : Option.some((l.pieceCount - 1) as PieceIndex)

/**
 * Brands `i` without checking. Only for loops over `0..pieceCount-1` and indices already checked with
 * {@link isPiece}.
 */
export const unsafePiece = (i: number): PieceIndex => i as PieceIndex

/** Size of piece `i`: `pieceLength`, except the last piece, which may be short. */
export const pieceSize = (l: Lengths, i: PieceIndex): number =>
  i === l.pieceCount - 1 ? l.lastPieceSize : l.pieceLength

/** Byte offset of piece `i` in the torrent. */
export const pieceOffset = (l: Lengths, i: PieceIndex): number => i * l.pieceLength

/** The piece holding torrent byte `offset`; none outside 0..total-1. */
export const pieceOf = (l: Lengths, offset: number): Option.Option<PieceIndex> =>
  Number.isInteger(offset) && offset >= 0 && offset < l.total
    ? Option.some(Math.floor(offset / l.pieceLength) as PieceIndex)
    : Option.none()

/** Number of blocks in piece `i` (the last block of a piece may be short). */
export const blockCount = (l: Lengths, i: PieceIndex): number =>
  i === l.pieceCount - 1 ? Math.ceil(l.lastPieceSize / BLOCK) : l.blocksPerPiece

/** Size of block `b` of piece `i`; 0 when `b` is not a block of that piece. */
export const blockSize = (l: Lengths, i: PieceIndex, b: number): number => {
  const size = pieceSize(l, i)
  const begin = b * BLOCK
  if (!Number.isInteger(b) || b < 0 || begin >= size) return 0
  return size - begin < BLOCK ? size - begin : BLOCK
}

/** Offset of block `b` inside its piece. */
export const blockOffset = (b: number): number => b * BLOCK

/** The block an in-piece byte offset falls in. */
export const blockIndexOf = (begin: number): number => Math.floor(begin / BLOCK)

/** Total number of blocks in the torrent. */
export const totalBlocks = (l: Lengths): number =>
  l.pieceCount === 0 ? 0 : (l.pieceCount - 1) * l.blocksPerPiece + Math.ceil(l.lastPieceSize / BLOCK)

/**
 * Whether a received `piece` message carries exactly one of the blocks we request: piece in range, `begin` on a
 * block boundary, `length` the full size of that block.
 */
export const isExactBlock = (l: Lengths, index: number, begin: number, length: number): boolean => {
  if (!isPiece(l, index) || !Number.isInteger(begin) || begin < 0 || begin % BLOCK !== 0) return false
  const size = pieceSize(l, index)
  if (begin >= size) return false
  return length === (size - begin < BLOCK ? size - begin : BLOCK)
}

/**
 * Whether an incoming `request` may be served: piece in range, `length` in 1..BLOCK, and the range inside the
 * piece. `begin` need not be block-aligned (BEP 3 allows any range; libtorrent serves those too).
 */
export const isValidRequest = (l: Lengths, index: number, begin: number, length: number): boolean =>
  isPiece(l, index) &&
  Number.isInteger(begin) &&
  Number.isInteger(length) &&
  begin >= 0 &&
  length > 0 &&
  length <= BLOCK &&
  begin + length <= pieceSize(l, index)
