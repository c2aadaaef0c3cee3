/**
 * BEP 52 Merkle trees (src/core/Merkle.ts) against a naive reference built the way BEP 52 words it (every leaf
 * materialized, pad leaves as 32 zero bytes, node:crypto for every hash), and the proofs of `hash request` /
 * `hashes`: every valid proof verifies, any flipped bit fails, for every file size from one partial leaf up,
 * around powers of two in particular.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { createHash, randomBytes } from "node:crypto"
import * as Merkle from "../../src/core/Merkle.ts"

const sha256 = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const h = createHash("sha256")
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** BEP 52 literally: leaves of the blocks, zero leaves up to a power of two, pairs hashed up to one. */
const naiveLayers = (leaves: ReadonlyArray<Uint8Array>): Array<Array<Uint8Array>> => {
  let level = [...leaves]
  while (level.length & (level.length - 1)) level.push(new Uint8Array(32))
  const layers = [level]
  while (level.length > 1) {
    const next: Array<Uint8Array> = []
    for (let i = 0; i < level.length; i += 2) next.push(sha256(level[i]!, level[i + 1]!))
    level = next
    layers.push(level)
  }
  return layers
}
const naiveRoot = (leaves: ReadonlyArray<Uint8Array>) => naiveLayers(leaves).at(-1)![0]!

const split = (hashes: Uint8Array): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let i = 0; i < hashes.length; i += 32) out.push(hashes.subarray(i, i + 32))
  return out
}

const randomLeaves = (n: number): Uint8Array => new Uint8Array(randomBytes(n * 32))

/** Block counts around powers of two, and a few in between. */
const interestingBlocks = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257]

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

describe("Merkle: hashing", () => {
  it.prop("hashPair is SHA-256 of the two hashes side by side", [
    FastCheck.uint8Array({ minLength: 32, maxLength: 32 }),
    FastCheck.uint8Array({ minLength: 32, maxLength: 32 })
  ], ([a, b]) => {
    expect(hex(Merkle.hashPair(a, b))).toBe(hex(sha256(a, b)))
  }, { fastCheck: { numRuns: 300 } })

  it("hashPairInto may write over its inputs", () => {
    const buf = new Uint8Array(randomBytes(64))
    const want = sha256(buf)
    Merkle.hashPairInto(buf, 0, buf, 32, buf, 0)
    expect(hex(buf.subarray(0, 32))).toBe(hex(want))
  })

  it("pad hashes: zeros at the leaves, the hash of two pads above", () => {
    expect(hex(Merkle.padHash(0))).toBe("00".repeat(32))
    expect(hex(Merkle.padHash(1))).toBe(hex(sha256(new Uint8Array(64))))
    expect(hex(Merkle.padHash(5))).toBe(hex(sha256(Merkle.padHash(4), Merkle.padHash(4))))
  })

  it("leaf hashes of real data, the last block short; a one-block file's root is its leaf", () => {
    for (const size of [1, 100, 16383, 16384, 16385, 3 * 16384 + 7]) {
      const data = new Uint8Array(randomBytes(size))
      const leaves = Merkle.leafHashes(data)
      const want: Array<Uint8Array> = []
      for (let o = 0; o < size; o += 16384) want.push(sha256(data.subarray(o, o + 16384)))
      expect(split(leaves).map(hex)).toEqual(want.map(hex))
      expect(hex(Merkle.fileRoot(leaves))).toBe(hex(naiveRoot(want)))
      if (size <= 16384) expect(hex(Merkle.fileRoot(leaves))).toBe(hex(want[0]!))
    }
  })

  it("fileRoot matches BEP 52 literally for every block count around powers of two", () => {
    for (const n of interestingBlocks) {
      const leaves = randomLeaves(n)
      expect(hex(Merkle.fileRoot(leaves)), `${n} blocks`).toBe(hex(naiveRoot(split(leaves))))
    }
  })

  it.prop("fileRoot matches the reference for any block count", [FastCheck.integer({ min: 1, max: 600 })], ([n]) => {
    const leaves = randomLeaves(n)
    expect(hex(Merkle.fileRoot(leaves))).toBe(hex(naiveRoot(split(leaves))))
  }, { fastCheck: { numRuns: 60 } })
})

describe("Merkle: piece layers", () => {
  const pieceLengths = [16384, 32768, 65536, 262144, 1 << 20]

  it("the piece layer is the tree's layer log2(piece / 16 KiB), cut to the pieces with data; it hashes up to the root", () => {
    for (const pieceLength of pieceLengths) {
      const perPiece = pieceLength / 16384
      for (const n of interestingBlocks) {
        const leaves = randomLeaves(n)
        const layer = Merkle.pieceLayer(leaves, pieceLength)
        const pieces = Math.ceil(n / perPiece)
        expect(layer.length).toBe(pieces * 32)
        const reference = naiveLayers(split(leaves))
        const k = Merkle.pieceLayerIndex(pieceLength)
        if (n > perPiece) {
          expect(split(layer).map(hex)).toEqual(reference[k]!.slice(0, pieces).map(hex))
          expect(hex(Merkle.rootFromPieceLayer(layer, pieceLength))).toBe(hex(reference.at(-1)![0]!))
          expect(Merkle.checkPieceLayer(layer, Merkle.fileRoot(leaves), n * 16384, pieceLength)).toBeUndefined()
        }
        // every piece's own data hashes to what the torrent states for it: its layer entry, or the root
        for (let p = 0; p < pieces; p++) {
          const own = leaves.subarray(p * perPiece * 32, (p + 1) * perPiece * 32)
          const expected = n > perPiece ? layer.subarray(p * 32, p * 32 + 32) : Merkle.fileRoot(leaves)
          expect(hex(Merkle.pieceRoot(own, n, pieceLength)), `${n} blocks, piece ${p}`).toBe(hex(expected))
        }
      }
    }
  })

  it("checkPieceLayer refuses a wrong size, a wrong root and any flipped bit", () => {
    const leaves = randomLeaves(37)
    const root = Merkle.fileRoot(leaves)
    const layer = Merkle.pieceLayer(leaves, 65536)
    const length = 36 * 16384 + 5
    expect(Merkle.checkPieceLayer(layer, root, length, 65536)).toBeUndefined()
    expect(Merkle.checkPieceLayer(layer.subarray(32), root, length, 65536)).toMatch(/expected 320/)
    for (let bit = 0; bit < layer.length * 8; bit += 37) {
      const bad = layer.slice()
      bad[bit >> 3]! ^= 1 << (bit & 7)
      expect(Merkle.checkPieceLayer(bad, root, length, 65536)).toMatch(/do not hash up/)
    }
    expect(Merkle.pieceLayerCount(65536, 65536)).toBe(0)
    expect(Merkle.pieceLayerCount(65537, 65536)).toBe(2)
  })
})

/** A valid range for a file of `blocks` blocks (≥ 2), drawn from the given numbers. */
const rangeFor = (blocks: number, pick: ReadonlyArray<number>) => {
  const height = Merkle.heightOf(blocks)
  const base = pick[0]! % height
  const width = 2 ** (height - base)
  const length = 2 ** (1 + (pick[1]! % Math.log2(width)))
  const index = (pick[2]! % (width / length)) * length
  return { base, index, length, proofLayers: Merkle.proofLayersToRoot(base, blocks) }
}

describe("Merkle: proofs (hash request / hashes)", () => {
  it.prop(
    "a proof to the root verifies; any flipped bit of any hash fails; so does another root, or index of data",
    [
      FastCheck.integer({ min: 2, max: 700 }),
      FastCheck.array(FastCheck.nat(), { minLength: 3, maxLength: 3 }),
      FastCheck.nat()
    ],
    ([blocks, pick, flip]) => {
      const leaves = randomLeaves(blocks)
      const tree = Merkle.fromLeaves(leaves)
      const range = rangeFor(blocks, pick)
      const proof = Merkle.proof(tree, range)!
      expect(proof.length).toBe((range.length + Merkle.uncleCount(range.length, range.proofLayers)) * 32)
      expect(Merkle.verify(tree.root, blocks, range, proof)).toBe(true)
      const bad = proof.slice()
      const bit = flip % (bad.length * 8)
      bad[bit >> 3]! ^= 1 << (bit & 7)
      expect(Merkle.verify(tree.root, blocks, range, bad)).toBe(false)
      const root = tree.root.slice()
      root[flip % 32]! ^= 0x80
      expect(Merkle.verify(root, blocks, range, proof)).toBe(false)
      // (two ranges wholly past the data are all pads, hence indistinguishable: only ranges with data are bound)
      const width = 2 ** (tree.height - range.base)
      if (width > range.length && range.index * 2 ** range.base < blocks) {
        const other = { ...range, index: (range.index + range.length) % width }
        expect(Merkle.verify(tree.root, blocks, other, proof)).toBe(false)
      }
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("base hashes are the tree's (pads past the data), uncles the siblings up the path, lowest first", () => {
    for (const blocks of interestingBlocks.filter((n) => n >= 2)) {
      const leaves = randomLeaves(blocks)
      const reference = naiveLayers(split(leaves))
      const tree = Merkle.fromLeaves(leaves)
      expect(hex(tree.root)).toBe(hex(reference.at(-1)![0]!))
      for (let base = 0; base < tree.height; base++) {
        const width = 2 ** (tree.height - base)
        for (let length = 2; length <= width; length *= 2) {
          for (let index = 0; index < width; index += length) {
            const range = { base, index, length, proofLayers: tree.height - base - 1 }
            const proof = split(Merkle.proof(tree, range)!)
            expect(proof.slice(0, length).map(hex)).toEqual(reference[base]!.slice(index, index + length).map(hex))
            const span = Math.log2(length)
            proof.slice(length).forEach((uncle, u) => {
              const layer = base + span + u
              const at = Math.floor(index / 2 ** (span + u)) ^ 1
              expect(hex(uncle)).toBe(hex(reference[layer]![at]!))
            })
            expect(Merkle.verify(tree.root, blocks, range, Merkle.proof(tree, range)!)).toBe(true)
          }
        }
      }
    }
  })

  it("a shorter proof reaches an inner node, which a receiver holding that node can check (anchorOf)", () => {
    const blocks = 300
    const tree = Merkle.fromLeaves(randomLeaves(blocks))
    for (let proofLayers = 0; proofLayers < tree.height; proofLayers++) {
      const range = { base: 0, index: 64, length: 16, proofLayers }
      const anchor = Merkle.anchorOf(range, Merkle.proof(tree, range)!)!
      expect(anchor.layer).toBe(Math.max(proofLayers + 1, 4))
      expect(hex(anchor.hash)).toBe(hex(Merkle.node(tree, anchor.layer, anchor.index)!))
    }
  })

  it("a tree built from the piece layer serves requests at and above it with the same hashes", () => {
    const blocks = 1000
    const leaves = randomLeaves(blocks)
    const full = Merkle.fromLeaves(leaves)
    const fromPieces = Merkle.fromLayer(Merkle.pieceLayer(leaves, 262144), 4, blocks)
    expect(hex(fromPieces.root)).toBe(hex(full.root))
    const range = { base: 4, index: 32, length: 32, proofLayers: Merkle.proofLayersToRoot(4, blocks) }
    expect(hex(Merkle.proof(fromPieces, range)!)).toBe(hex(Merkle.proof(full, range)!))
    expect(Merkle.proof(fromPieces, { base: 0, index: 0, length: 16, proofLayers: 9 })).toBeUndefined()
  })

  it("a layer asked in libtorrent's shape (chunks of up to N hashes, the last one short) verifies chunk by chunk", () =>
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 2, max: 700 }),
        FastCheck.nat(),
        FastCheck.constantFrom(2, 4, 8, 16),
        (blocks, b, chunk) => {
          const tree = Merkle.fromLeaves(randomLeaves(blocks))
          const base = b % tree.height
          const data = Math.ceil(blocks / 2 ** base)
          for (let index = 0; index < data; index += chunk) {
            const range = { base, index, length: Math.min(chunk, data - index), proofLayers: Merkle.proofLayersToRoot(base, blocks) }
            expect(Merkle.checkRange(range, blocks)).toBeUndefined()
            expect(Merkle.verify(tree.root, blocks, range, Merkle.proof(tree, range)!)).toBe(true)
          }
        }
      ),
      { numRuns: 200 }
    ))

  it("checkRange refuses what BEP 52 and libtorrent refuse", () => {
    const blocks = 100 // height 7
    const ok = { base: 0, index: 0, length: 2, proofLayers: 6 }
    expect(Merkle.checkRange(ok, blocks)).toBeUndefined()
    const bad: ReadonlyArray<[Partial<Merkle.Range>, RegExp]> = [
      [{ length: 3 }, /not a power of two and ends before/],
      [{ index: 96, length: 3 }, /not a power of two and ends before/],
      [{ length: 16384 }, /not from 1 to 8192/],
      [{ length: 0 }, /not from 1 to 8192/],
      [{ index: 2, length: 3 }, /multiple/],
      [{ index: 2, length: 4 }, /multiple/],
      [{ index: 128 }, /past layer/],
      [{ base: 7 }, /not below the root/],
      [{ proofLayers: 7 }, /past the root/],
      [{ index: -2 }, /non-negative/],
      [{ base: 0.5 }, /non-negative/]
    ]
    for (const [change, why] of bad) expect(Merkle.checkRange({ ...ok, ...change }, blocks)).toMatch(why)
    expect(Merkle.checkRange(ok, 1)).toMatch(/not below the root/)
    // libtorrent's last request of a layer: as many hashes as are left (the rest of the subtree is pads)
    expect(Merkle.checkRange({ ...ok, index: 96, length: 4 }, blocks)).toBeUndefined()
    expect(Merkle.checkRange({ ...ok, index: 96, length: 5 }, blocks)).toBeUndefined()
    expect(Merkle.checkRange({ base: 2, index: 0, length: 25, proofLayers: 4 }, blocks)).toBeUndefined()
    expect(Merkle.proof(Merkle.fromLeaves(randomLeaves(1)), ok)).toBeUndefined()
  })

  it("never throws on arbitrary ranges and hashes", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.record({
          base: FastCheck.integer({ min: -2, max: 40 }),
          index: FastCheck.integer({ min: -2, max: 5000 }),
          length: FastCheck.integer({ min: -2, max: 5000 }),
          proofLayers: FastCheck.integer({ min: -2, max: 40 })
        }),
        FastCheck.integer({ min: 0, max: 5000 }),
        FastCheck.uint8Array({ maxLength: 400 }),
        (range, blocks, hashes) => {
          const root = new Uint8Array(32)
          expect(typeof Merkle.verify(root, blocks, range, hashes)).toBe("boolean")
          Merkle.anchorOf(range, hashes)
          Merkle.checkRange(range, blocks)
        }
      ),
      { numRuns: 500 }
    )
  })
})
