/**
 * BEP 52 per-block blame: when a v2 piece assembled from several peers' blocks fails its Merkle check, the leaf
 * hashes of that piece (asked of a peer with a `hash request`, base layer 0, proof up to the piece's trusted node)
 * say which 16 KiB blocks are wrong, so only their senders are blamed and the good blocks are kept. Also the other
 * way: the leaf-level proofs we answer from our own verified data. Pure: no I/O.
 */
import * as Bytes from "../core/Bytes.ts"
import * as Merkle from "../core/Merkle.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"

/**
 * The request for the leaf hashes of piece `index` (all the leaves its subtree spans, pads included), with a proof
 * reaching the node we trust for the piece: its piece-layer entry, or the file's root for a file of one piece.
 * `undefined` when there is nothing to ask: a v1 torrent, a piece of one block, or no trusted node (no layer).
 */
export const leafRequest = (m: Metainfo.Metainfo, index: number): Metainfo.HashRequest | undefined => {
  const p = Metainfo.v2Piece(m, index)
  if (p === undefined || p.expected === undefined || p.width < 2) return undefined
  const root = m.files[p.fileIndex]!.piecesRoot!
  return { piecesRoot: root, base: 0, index: p.filePiece * p.width, length: p.width, proofLayers: Merkle.log2(p.width) - 1 }
}

/**
 * The piece's leaf hashes (one per block of file data in it) from a `hashes` answer to {@link leafRequest}, when
 * they hash up to the piece's trusted node; `undefined` otherwise (a bad proof).
 */
export const verifiedLeaves = (
  m: Metainfo.Metainfo,
  index: number,
  request: Metainfo.HashRequest,
  hashes: Uint8Array
): Uint8Array | undefined => {
  const p = Metainfo.v2Piece(m, index)
  const want = leafRequest(m, index)
  if (p === undefined || p.expected === undefined || want === undefined) return undefined
  const same = Bytes.equals(want.piecesRoot, request.piecesRoot) && want.base === request.base &&
    want.index === request.index && want.length === request.length && want.proofLayers === request.proofLayers
  if (!same) return undefined
  const anchor = Merkle.anchorOf(want, hashes)
  if (anchor === undefined || anchor.layer !== Merkle.log2(p.width) || anchor.index !== p.filePiece) return undefined
  if (!Bytes.equals(anchor.hash, p.expected)) return undefined
  return hashes.slice(0, Merkle.blockCount(p.dataLength) * Merkle.HASH_LENGTH)
}

/** Blocks (indices within the piece) of `data` whose SHA-256 differs from `leaves`: the bad ones. */
export const badBlocks = (data: Uint8Array, dataLength: number, leaves: Uint8Array): ReadonlyArray<number> => {
  const bad: Array<number> = []
  const n = leaves.length / Merkle.HASH_LENGTH
  for (let b = 0; b < n; b++) {
    const block = data.subarray(b * Merkle.BLOCK_SIZE, Math.min((b + 1) * Merkle.BLOCK_SIZE, dataLength))
    const leaf = leaves.subarray(b * Merkle.HASH_LENGTH, (b + 1) * Merkle.HASH_LENGTH)
    if (!Bytes.equals(Merkle.leafHash(block), leaf)) bad.push(b)
  }
  return bad
}

/** Which part of a file a leaf-level request's proof needs from the data. */
export interface LeafNeed {
  readonly file: Metainfo.FileEntry
  /** The torrent's pieces holding those blocks. */
  readonly pieces: ReadonlyArray<number>
  /** The subtree whose leaves are needed: its layer, and its first leaf (block of the file). */
  readonly top: number
  readonly first: number
}

/**
 * What answering a leaf-level request (base below the piece layer) needs from the data, or `undefined` when the
 * request is not about one of the torrent's files, is invalid, or is at or above the piece layer (served from the
 * layer alone). Every node below the piece layer the proof uses lies in the subtree holding the range at the piece
 * layer (or at the range's own top, when it spans several pieces).
 */
export const leafNeed = (m: Metainfo.Metainfo, request: Metainfo.HashRequest): LeafNeed | undefined => {
  if (m.version === "v1") return undefined
  const file = m.files.find((f) => f.piecesRoot !== undefined && Bytes.equals(f.piecesRoot, request.piecesRoot))
  if (file === undefined || file.length === 0) return undefined
  const blocks = Merkle.blockCount(file.length)
  if (Merkle.checkRange(request, blocks) !== undefined) return undefined
  const long = file.length > m.pieceLength
  // the lowest layer whose nodes we know without data: the piece layer (or the root, for a file of one piece)
  const known = long ? Merkle.pieceLayerIndex(m.pieceLength) : Merkle.heightOf(blocks)
  if (request.base >= known || (long && file.pieceLayer === undefined)) return undefined
  const top = Math.max(known, request.base + Merkle.heightOf(request.length))
  const first = Math.floor((request.index * 2 ** request.base) / 2 ** top) * 2 ** top
  const perPiece = m.pieceLength / Merkle.BLOCK_SIZE
  const firstPiece = file.offset / m.pieceLength
  // (a range wholly past the file's data is all pads: nothing needed)
  const end = Math.max(first, Math.min(blocks, first + 2 ** top))
  const pieces: Array<number> = []
  for (let p = Math.floor(first / perPiece); p * perPiece < end; p++) pieces.push(firstPiece + p)
  return { file, pieces, top, first }
}

/**
 * The hashes answering a leaf-level `request` (base hashes then uncles, as `Merkle.proof` gives them), from the
 * leaf hashes of the pieces {@link leafNeed} named (`leavesOf(piece)`: the SHA-256 of each block of file data in
 * it) and, at and above the piece layer, the file's tree from its piece layer. `undefined` when a piece's leaves
 * are missing or the request is not one {@link leafNeed} takes.
 */
export const leafProof = (
  m: Metainfo.Metainfo,
  request: Metainfo.HashRequest,
  leavesOf: (piece: number) => Uint8Array | undefined
): Uint8Array | undefined => {
  const need = leafNeed(m, request)
  if (need === undefined) return undefined
  const { file, first, top } = need
  const blocks = Merkle.blockCount(file.length)
  const perPiece = m.pieceLength / Merkle.BLOCK_SIZE
  const firstPiece = file.offset / m.pieceLength
  const end = Math.max(first, Math.min(blocks, first + 2 ** top))
  const leaves = new Uint8Array((end - first) * Merkle.HASH_LENGTH)
  for (const piece of need.pieces) {
    const got = leavesOf(piece)
    const at = (piece - firstPiece) * perPiece
    const count = Math.min(perPiece, blocks - at)
    if (got === undefined || got.length !== count * Merkle.HASH_LENGTH) return undefined
    const from = Math.max(at, first)
    const to = Math.min(at + count, end)
    leaves.set(got.subarray((from - at) * Merkle.HASH_LENGTH, (to - at) * Merkle.HASH_LENGTH), (from - first) * Merkle.HASH_LENGTH)
  }
  // the subtree of 2^top leaves from `first` (pads past the file), and above it the tree of the piece layer
  const sub = Merkle.fromLayer(leaves, 0, 2 ** top)
  const upper = file.length > m.pieceLength
    ? Merkle.fromLayer(file.pieceLayer!, Merkle.pieceLayerIndex(m.pieceLength), blocks)
    : undefined
  const nodeAt = (layer: number, index: number): Uint8Array | undefined =>
    layer < top ? Merkle.node(sub, layer, index - first / 2 ** layer) : upper && Merkle.node(upper, layer, index)
  const { base, index, length, proofLayers } = request
  const span = Merkle.heightOf(length)
  const uncles = Merkle.uncleCount(length, proofLayers)
  const out = new Uint8Array((length + uncles) * Merkle.HASH_LENGTH)
  for (let i = 0; i < length; i++) {
    const h = nodeAt(base, index + i)
    if (h === undefined) return undefined
    out.set(h, i * Merkle.HASH_LENGTH)
  }
  for (let u = 0; u < uncles; u++) {
    const h = nodeAt(base + span + u, Math.floor(index / 2 ** (span + u)) ^ 1)
    if (h === undefined) return undefined
    out.set(h, (length + u) * Merkle.HASH_LENGTH)
  }
  return out
}
