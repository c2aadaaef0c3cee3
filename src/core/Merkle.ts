/**
 * BitTorrent v2 (BEP 52) Merkle trees over a file's 16 KiB blocks: the `pieces root`, the `piece layers`, and the
 * proofs that `hash request` / `hashes` messages carry. Pure: no I/O, no Effect; SHA-256 from node:crypto for the
 * leaves and a small JS SHA-256 for the 64-byte node hashes (1.6 µs per node against node:crypto's 2.5 µs here,
 * whose per-call cost dominates such a small input, and no allocation). docs/V2.md explains the trees; this module
 * follows libtorrent's `merkle.cpp` and `hash_picker.cpp` where BEP 52 leaves room.
 *
 * Vocabulary (as BEP 52's wire messages count them):
 * - **layer** 0 holds the leaves: SHA-256 of each 16 KiB block of the file, the last block possibly short. A
 *   file of `n` blocks has a tree of `width = nextPowerOfTwo(n)` leaves; the leaves past the file are *pad* leaves
 *   of 32 zero bytes, so a subtree lying wholly past the end hashes to {@link padHash} of its layer.
 * - layer `k` holds `width / 2^k` nodes; the root is at layer `height = log2(width)`. A one-block file's root is
 *   its leaf hash.
 * - the **piece layer** is layer `log2(pieceLength / 16 KiB)`: one hash per piece of the file, its last one
 *   covering the file's tail and pad leaves. `piece layers` in a .torrent lists only the hashes of pieces that
 *   hold file data, and only for files longer than one piece (a shorter file's root is all there is).
 * - a **request** names a range of `length` hashes at layer `base` starting at `index` (a multiple of `length`
 *   rounded up to a power of two; past a shorter range's end, up to that power of two, the subtree is pads),
 *   plus `proofLayers`: how many layers above `base` the proof reaches. The hashes come with *uncle* hashes: the
 *   sibling of the range's subtree root and of each ancestor above it, lowest first; the first log2(length) - 1
 *   proof layers are implied by the range itself and carry no uncle. After the uncles the proof has computed the
 *   node at layer `base + proofLayers + 1` (or the range's own subtree root, when that is higher), which must
 *   equal a hash the receiver already trusts: the file root when the proof reaches the top.
 */
import * as NodeCrypto from "node:crypto"

/** Bytes per leaf (a "block"). */
export const BLOCK_SIZE = 16384
/** Bytes per hash. */
export const HASH_LENGTH = 32

const sha256 = (data: Uint8Array): Uint8Array =>
  typeof NodeCrypto.hash === "function"
    ? new Uint8Array(NodeCrypto.hash("sha256", data, "buffer"))
    : new Uint8Array(NodeCrypto.createHash("sha256").update(data).digest())

// ---------------------------------------------------------------------------------------------------------------
// SHA-256 of 64 bytes (two 32-byte hashes), in JS. The second block of a 64-byte message is constant (0x80, zeros,
// the bit length 512), so its message schedule is computed once.

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])
const IV = Int32Array.from([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
])

const expand = (w: Int32Array): void => {
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!
    const y = w[i - 2]!
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0
  }
}

/** Runs the 64 rounds over the expanded schedule `w`, adding the result into `st`. */
const compress = (st: Int32Array, w: Int32Array): void => {
  let a = st[0]!
  let b = st[1]!
  let c = st[2]!
  let d = st[3]!
  let e = st[4]!
  let f = st[5]!
  let g = st[6]!
  let h = st[7]!
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const ch = (e & f) ^ (~e & g)
    const t1 = (h + s1 + ch + K[i]! + w[i]!) | 0
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const maj = (a & b) ^ (a & c) ^ (b & c)
    const t2 = (s0 + maj) | 0
    h = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  st[0] = (st[0]! + a) | 0
  st[1] = (st[1]! + b) | 0
  st[2] = (st[2]! + c) | 0
  st[3] = (st[3]! + d) | 0
  st[4] = (st[4]! + e) | 0
  st[5] = (st[5]! + f) | 0
  st[6] = (st[6]! + g) | 0
  st[7] = (st[7]! + h) | 0
}

const PAD_SCHEDULE = (() => {
  const w = new Int32Array(64)
  w[0] = 0x80000000 | 0
  w[15] = 512
  expand(w)
  return w
})()
const W = new Int32Array(64)
const ST = new Int32Array(8)

const word = (b: Uint8Array, o: number): number => (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!

/** Writes SHA-256(left[lo..lo+32] ‖ right[ro..ro+32]) at `out[oo]`. `out` may overlap the inputs. */
export const hashPairInto = (
  left: Uint8Array,
  lo: number,
  right: Uint8Array,
  ro: number,
  out: Uint8Array,
  oo: number
): void => {
  for (let i = 0; i < 8; i++) {
    W[i] = word(left, lo + 4 * i)
    W[i + 8] = word(right, ro + 4 * i)
  }
  expand(W)
  ST.set(IV)
  compress(ST, W)
  compress(ST, PAD_SCHEDULE)
  for (let i = 0; i < 8; i++) {
    const v = ST[i]!
    out[oo + 4 * i] = v >>> 24
    out[oo + 4 * i + 1] = v >>> 16
    out[oo + 4 * i + 2] = v >>> 8
    out[oo + 4 * i + 3] = v
  }
}

/** SHA-256 of two 32-byte hashes side by side: a parent node. */
export const hashPair = (left: Uint8Array, right: Uint8Array): Uint8Array => {
  const out = new Uint8Array(HASH_LENGTH)
  hashPairInto(left, 0, right, 0, out, 0)
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Geometry

/** Blocks (leaves) of a file of `length` bytes: ceil(length / 16 KiB); 0 for an empty file. */
export const blockCount = (length: number): number => Math.ceil(length / BLOCK_SIZE)

/** The smallest power of two ≥ `n` (1 for n ≤ 1). */
export const nextPowerOfTwo = (n: number): number => {
  let p = 1
  while (p < n) p *= 2
  return p
}

/** log2 of a power of two. */
export const log2 = (powerOfTwo: number): number => Math.round(Math.log2(powerOfTwo))

/** Layers between the leaves and the root of a file of `blocks` blocks (0 for a single block). */
export const heightOf = (blocks: number): number => log2(nextPowerOfTwo(blocks))

/** The layer whose nodes cover one piece: log2(pieceLength / 16 KiB). */
export const pieceLayerIndex = (pieceLength: number): number => log2(pieceLength / BLOCK_SIZE)

const pads: Array<Uint8Array> = [new Uint8Array(HASH_LENGTH)]

/**
 * The hash of a subtree of 2^layer leaves lying wholly past the end of a file: 32 zero bytes at layer 0,
 * SHA-256(pad ‖ pad) of the layer below above it (libtorrent's `merkle_pad`). Shared: do not modify.
 */
export const padHash = (layer: number): Uint8Array => {
  while (pads.length <= layer) {
    const below = pads[pads.length - 1]!
    pads.push(hashPair(below, below))
  }
  return pads[layer]!
}

// ---------------------------------------------------------------------------------------------------------------
// Roots and layers

/** SHA-256 of each 16 KiB block of `data` (the last may be short), concatenated: a file's leaf layer. */
export const leafHashes = (data: Uint8Array): Uint8Array => {
  const n = blockCount(data.length)
  const out = new Uint8Array(n * HASH_LENGTH)
  for (let i = 0; i < n; i++) out.set(sha256(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)), i * HASH_LENGTH)
  return out
}

/** SHA-256 of one block. */
export const leafHash = (block: Uint8Array): Uint8Array => sha256(block)

/** The layer above `hashes` (at `layer`): pairs hashed, an odd last one paired with the pad of `layer`. */
const parentLayer = (hashes: Uint8Array, layer: number): Uint8Array => {
  const n = hashes.length / HASH_LENGTH
  const m = Math.ceil(n / 2)
  const out = new Uint8Array(m * HASH_LENGTH)
  const pad = padHash(layer)
  for (let i = 0; i < m; i++) {
    const l = 2 * i * HASH_LENGTH
    if (2 * i + 1 < n) hashPairInto(hashes, l, hashes, l + HASH_LENGTH, out, i * HASH_LENGTH)
    else hashPairInto(hashes, l, pad, 0, out, i * HASH_LENGTH)
  }
  return out
}

/**
 * The root of a subtree of `width` nodes at `layer` (a power of two, default the smallest one holding them) whose
 * first nodes are `hashes` (32 bytes each) and the rest pads: `rootOf(leaves)` is a file's `pieces root`. `width`
 * below the node count is raised to it.
 */
export const rootOf = (hashes: Uint8Array, layer = 0, width = 0): Uint8Array => {
  const n = Math.floor(hashes.length / HASH_LENGTH)
  let w = nextPowerOfTwo(Math.max(n, width, 1))
  if (n === 0) return padHash(layer + log2(w)).slice()
  let level = hashes.subarray(0, n * HASH_LENGTH)
  let k = layer
  while (w > 1) {
    level = parentLayer(level, k)
    w /= 2
    k++
  }
  return level.slice(0, HASH_LENGTH)
}

/** A file's `pieces root` from its leaf hashes (a one-block file's root is its leaf). */
export const fileRoot = (leaves: Uint8Array): Uint8Array => rootOf(leaves, 0)

/**
 * The piece layer of a file from its leaf hashes: one hash per piece of `pieceLength` bytes (a power of two of at
 * least 16 KiB), each the root of that piece's `pieceLength / 16 KiB` leaves, pad leaves past the end of the file.
 * This is the value `piece layers` holds for a file longer than one piece.
 */
export const pieceLayer = (leaves: Uint8Array, pieceLength: number): Uint8Array => {
  const perPiece = pieceLength / BLOCK_SIZE
  const blocks = leaves.length / HASH_LENGTH
  const pieces = Math.ceil(blocks / perPiece)
  const out = new Uint8Array(pieces * HASH_LENGTH)
  for (let p = 0; p < pieces; p++) {
    const from = p * perPiece * HASH_LENGTH
    out.set(rootOf(leaves.subarray(from, from + perPiece * HASH_LENGTH), 0, perPiece), p * HASH_LENGTH)
  }
  return out
}

/**
 * The expected hash of the data of a piece of a v2 file: the root of its leaves padded to `perPiece` leaves for a
 * file longer than one piece (compare with the piece layer), or to the smallest power of two for a file of one
 * piece (compare with the file's root). `leaves` are the piece's own leaf hashes.
 */
export const pieceRoot = (leaves: Uint8Array, fileBlocks: number, pieceLength: number): Uint8Array => {
  const perPiece = pieceLength / BLOCK_SIZE
  return rootOf(leaves, 0, fileBlocks > perPiece ? perPiece : nextPowerOfTwo(fileBlocks))
}

/** The file root a piece layer implies: the layer padded with pad hashes of its layer to a power of two. */
export const rootFromPieceLayer = (layer: Uint8Array, pieceLength: number): Uint8Array =>
  rootOf(layer, pieceLayerIndex(pieceLength))

/** Hashes a piece layer must have for a file of `length` bytes: one per piece, none when the file fits one piece. */
export const pieceLayerCount = (length: number, pieceLength: number): number =>
  length > pieceLength ? Math.ceil(length / pieceLength) : 0

/**
 * Why `layer` is not the piece layer under `root` of a file of `length` bytes, or `undefined` when it is: its size
 * must be {@link pieceLayerCount} hashes, and it must hash up to `root`.
 */
export const checkPieceLayer = (
  layer: Uint8Array,
  root: Uint8Array,
  length: number,
  pieceLength: number
): string | undefined => {
  const want = pieceLayerCount(length, pieceLength)
  if (layer.length !== want * HASH_LENGTH) {
    return `${layer.length} bytes, expected ${want * HASH_LENGTH} (${want} hashes of 32 bytes)`
  }
  if (want === 0) return undefined
  return equal(rootFromPieceLayer(layer, pieceLength), root) ? undefined : "the hashes do not hash up to the file's pieces root"
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

// ---------------------------------------------------------------------------------------------------------------
// Trees

/**
 * The nodes of a file's tree from layer `base` up, only the ones covering file data (the rest are pads, implied).
 * Build it from leaves ({@link fromLeaves}) to serve any request, or from the piece layer ({@link fromLayer}) to
 * serve requests at and above it.
 */
export interface Tree {
  /** Blocks (leaves with data) of the file: at least 1. */
  readonly blocks: number
  /** Layer of the root: log2(nextPowerOfTwo(blocks)). */
  readonly height: number
  /** Lowest layer held. */
  readonly base: number
  /** `layers[k - base]`: the data-covering nodes of layer k, ceil(blocks / 2^k) hashes. */
  readonly layers: ReadonlyArray<Uint8Array>
  readonly root: Uint8Array
}

/** The tree over `hashes`, which are the data-covering nodes of layer `base` of a file of `blocks` blocks. */
export const fromLayer = (hashes: Uint8Array, base: number, blocks: number): Tree => {
  const height = heightOf(blocks)
  const layers: Array<Uint8Array> = [hashes]
  let level = hashes
  for (let k = base; k < height; k++) {
    level = parentLayer(level, k)
    layers.push(level)
  }
  return { blocks, height, base, layers, root: level.slice(0, HASH_LENGTH) }
}

/** The whole tree of a file from its leaf hashes. */
export const fromLeaves = (leaves: Uint8Array): Tree => fromLayer(leaves, 0, Math.max(1, leaves.length / HASH_LENGTH))

/** Nodes of layer `layer` in the padded tree: 2^(height - layer). */
export const layerWidth = (tree: { readonly height: number }, layer: number): number => 2 ** (tree.height - layer)

/** Node `index` of layer `layer` (a pad past the data), or `undefined` outside the tree or below `tree.base`. */
export const node = (tree: Tree, layer: number, index: number): Uint8Array | undefined => {
  if (layer < tree.base || layer > tree.height || index < 0 || index >= layerWidth(tree, layer)) return undefined
  const hashes = tree.layers[layer - tree.base]!
  const at = index * HASH_LENGTH
  return at < hashes.length ? hashes.subarray(at, at + HASH_LENGTH) : padHash(layer)
}

// ---------------------------------------------------------------------------------------------------------------
// Proofs: what `hash request` asks for and `hashes` carries

/** A range of hashes and its proof depth, as `hash request`, `hashes` and `hash reject` state them. */
export interface Range {
  /** Layer of the requested hashes (0: leaves). */
  readonly base: number
  /** Index of the first requested hash in that layer; a multiple of `length`. */
  readonly index: number
  /** Number of requested hashes. */
  readonly length: number
  /** Layers above `base` the proof covers (the first log2(length) - 1 of them implied by the range). */
  readonly proofLayers: number
}

/** Uncle hashes a `hashes` message carries after the `length` base hashes (BEP 52; libtorrent's count). */
export const uncleCount = (length: number, proofLayers: number): number =>
  Math.max(0, proofLayers - heightOf(length) + 1)

/** Most hashes one request may ask for (libtorrent's limit; BEP 52 says requests SHOULD stay at or below 512). */
export const MAX_REQUEST_LENGTH = 8192

/**
 * Why `range` is not a valid request for a file of `blocks` blocks, or `undefined` when it is. The rules of
 * libtorrent's `validate_hash_request` plus BEP 52's: `length` from 1 to {@link MAX_REQUEST_LENGTH}, `index` a
 * multiple of the smallest power of two holding `length`, the range inside the (padded) layer, `base` below the
 * root and `proofLayers` not past it. A `length` that is not a power of two must reach the end of the layer's
 * data (the rest of its subtree is pads): libtorrent asks for a file's piece layer 512 hashes at a time, the last
 * request only as many as are left.
 */
export const checkRange = (range: Range, blocks: number): string | undefined => {
  const { base, index, length, proofLayers } = range
  const ints = [base, index, length, proofLayers].every((n) => Number.isSafeInteger(n) && n >= 0)
  if (!ints || blocks < 1) return "fields must be non-negative integers"
  const height = heightOf(blocks)
  if (base >= height) return `base layer ${base} is not below the root (layer ${height})`
  if (length < 1 || length > MAX_REQUEST_LENGTH) return `length ${length} is not from 1 to ${MAX_REQUEST_LENGTH}`
  const span = nextPowerOfTwo(length)
  if (index % span !== 0) return `index ${index} is not a multiple of ${span} (the length ${length})`
  const width = 2 ** (height - base)
  if (index + length > width) return `hashes ${index}..${index + length - 1} past layer ${base}'s ${width} nodes`
  const data = Math.ceil(blocks / 2 ** base)
  if (span !== length && index + length < data) {
    return `length ${length} is not a power of two and ends before the last of layer ${base}'s ${data} hashes`
  }
  if (proofLayers >= height - base) return `${proofLayers} proof layers reach past the root`
  return undefined
}

/**
 * The hashes answering `range` from `tree`: the `length` base hashes (pads past the data included) followed by
 * the uncles, lowest first, concatenated as a `hashes` message carries them. `undefined` when the range is invalid
 * ({@link checkRange}) or below the layers `tree` holds.
 */
export const proof = (tree: Tree, range: Range): Uint8Array | undefined => {
  if (checkRange(range, tree.blocks) !== undefined || range.base < tree.base) return undefined
  const { base, index, length, proofLayers } = range
  const uncles = uncleCount(length, proofLayers)
  const out = new Uint8Array((length + uncles) * HASH_LENGTH)
  for (let i = 0; i < length; i++) out.set(node(tree, base, index + i)!, i * HASH_LENGTH)
  const span = heightOf(length)
  for (let u = 0; u < uncles; u++) {
    const layer = base + span + u
    const at = Math.floor(index / 2 ** (span + u))
    out.set(node(tree, layer, at ^ 1)!, (length + u) * HASH_LENGTH)
  }
  return out
}

/** The node a proof computes: where it sits and its hash. */
export interface Anchor {
  readonly layer: number
  readonly index: number
  readonly hash: Uint8Array
}

/**
 * Hashes `hashes` (a `hashes` message's payload after its header: `length` base hashes then the uncles) up to the
 * node the proof reaches, without trusting anything: the caller compares the result with a node it already trusts
 * ({@link verify} does it with the file root). `undefined` when the count does not match the range.
 */
export const anchorOf = (range: Range, hashes: Uint8Array): Anchor | undefined => {
  const { base, index, length, proofLayers } = range
  if (!(length >= 1) || !Number.isSafeInteger(length) || !Number.isSafeInteger(index) || index < 0) return undefined
  const uncles = uncleCount(length, proofLayers)
  if (hashes.length !== (length + uncles) * HASH_LENGTH) return undefined
  const span = heightOf(length)
  let hash = rootOf(hashes.subarray(0, length * HASH_LENGTH), base, 2 ** span)
  let layer = base + span
  let at = Math.floor(index / 2 ** span)
  for (let u = 0; u < uncles; u++) {
    const uncle = hashes.subarray((length + u) * HASH_LENGTH, (length + u + 1) * HASH_LENGTH)
    const parent = new Uint8Array(HASH_LENGTH)
    if (at % 2 === 0) hashPairInto(hash, 0, uncle, 0, parent, 0)
    else hashPairInto(uncle, 0, hash, 0, parent, 0)
    hash = parent
    layer++
    at = Math.floor(at / 2)
  }
  return { layer, index: at, hash }
}

/**
 * True when `hashes` prove `range` of the file whose `pieces root` is `root` (a file of `blocks` blocks): the range
 * is valid and the proof reaches the root and equals it. Any change to any hash, the range or the root fails.
 */
export const verify = (root: Uint8Array, blocks: number, range: Range, hashes: Uint8Array): boolean => {
  if (checkRange(range, blocks) !== undefined) return false
  const anchor = anchorOf(range, hashes)
  return anchor !== undefined && anchor.layer === heightOf(blocks) && anchor.index === 0 && equal(anchor.hash, root)
}

/** The `proofLayers` that makes a proof of `range` reach the root of a file of `blocks` blocks. */
export const proofLayersToRoot = (base: number, blocks: number): number => Math.max(0, heightOf(blocks) - base - 1)
