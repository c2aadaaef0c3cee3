/**
 * Per-block blame's pure parts (BEP 52): the leaf request for a failed piece and the check of its answer, finding
 * the bad blocks, and the leaf-level proofs we answer from our data — equal to the whole tree's proofs.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as LeafBlame from "../../src/torrent/LeafBlame.ts"
import { buildV2 } from "../support/v2.ts"

const torrent = (lengths: ReadonlyArray<number>, pieceLength: number, format: "v2" | "hybrid" = "v2") =>
  buildV2({ name: "t", format, pieceLength, files: lengths.map((length, i) => ({ path: ["d", `f${i}`], length })) })

/** Leaf hashes of the file data in piece `index` of `built`. */
const leavesOf = (built: ReturnType<typeof torrent>) => (index: number): Uint8Array | undefined => {
  const p = Metainfo.v2Piece(built.metainfo, index)
  if (p === undefined) return undefined
  const start = index * built.metainfo.pieceLength
  return Merkle.leafHashes(built.payload.subarray(start, start + p.dataLength))
}

const treeOf = (built: ReturnType<typeof torrent>, f: Metainfo.FileEntry) => {
  const i = built.metainfo.files.indexOf(f)
  return Merkle.fromLeaves(Merkle.leafHashes(built.files[i]!))
}

describe("LeafBlame: a failed piece's leaves", () => {
  it("the leaf request's answer (a whole-tree proof) verifies against the piece's node; the bad blocks are exactly the changed ones", () =>
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(FastCheck.integer({ min: 1, max: 300_000 }), { minLength: 1, maxLength: 3 }),
        FastCheck.constantFrom(16384, 32768, 65536),
        FastCheck.array(FastCheck.nat(), { maxLength: 3 }),
        FastCheck.nat(),
        (lengths, pieceLength, flips, pick) => {
          const built = torrent(lengths, pieceLength)
          const m = built.metainfo
          const index = pick % m.pieceCount
          const p = Metainfo.v2Piece(m, index)
          if (p === undefined) return
          const request = LeafBlame.leafRequest(m, index)
          if (p.width < 2) {
            expect(request).toBeUndefined()
            return
          }
          expect(request).toBeDefined()
          const f = m.files[p.fileIndex]!
          const answer = Merkle.proof(treeOf(built, f), request!)!
          const leaves = LeafBlame.verifiedLeaves(m, index, request!, answer)
          expect(leaves).toBeDefined()
          expect(Bytes.toHex(leaves!)).toBe(Bytes.toHex(leavesOf(built)(index)!))
          // a flipped bit of the answer fails
          const bad = answer.slice()
          bad[(pick >> 3) % bad.length]! ^= 1 << (pick & 7)
          expect(LeafBlame.verifiedLeaves(m, index, request!, bad)).toBeUndefined()
          // corrupt some blocks of the piece's data: exactly those are found
          const start = index * m.pieceLength
          const data = built.payload.slice(start, start + Math.min(m.pieceLength, m.totalLength - start))
          const blocks = Merkle.blockCount(p.dataLength)
          const changed = [...new Set(flips.map((x) => x % blocks))].sort((a, b) => a - b)
          for (const b of changed) data[b * 16384 + ((pick % 16384) % Math.min(16384, p.dataLength - b * 16384))]! ^= 0x40
          expect(LeafBlame.badBlocks(data, p.dataLength, leaves!)).toEqual(changed)
        }
      ),
      { numRuns: 60 }
    ))
})

describe("LeafBlame: answering leaf-level requests from our data", () => {
  it("every valid request below the piece layer gets the whole tree's proof (from the data of the pieces it needs only)", () =>
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 2, max: 200 }),
        FastCheck.constantFrom(16384, 32768, 65536, 131072),
        FastCheck.nat(),
        FastCheck.nat(),
        FastCheck.nat(),
        (blocks, pieceLength, b, l, x) => {
          const built = torrent([blocks * 16384 - (x % 1000)], pieceLength)
          const m = built.metainfo
          const f = m.files.find((e) => e.piecesRoot !== undefined)!
          const tree = treeOf(built, f)
          const long = f.length > pieceLength
          const known = long ? Merkle.pieceLayerIndex(pieceLength) : tree.height
          if (known === 0) return
          const base = b % known
          const width = 2 ** (tree.height - base)
          const length = Math.min(width, 2 ** (l % 6))
          const index = (x % (width / length)) * length
          const request = { piecesRoot: f.piecesRoot!, base, index, length, proofLayers: (x >> 4) % (tree.height - base) }
          const need = LeafBlame.leafNeed(m, request)!
          expect(need).toBeDefined()
          const asked = new Set<number>()
          const proof = LeafBlame.leafProof(m, request, (piece) => {
            asked.add(piece)
            return leavesOf(built)(piece)
          })
          expect(Bytes.toHex(proof!)).toBe(Bytes.toHex(Merkle.proof(tree, request)!))
          expect([...asked].sort((a, c) => a - c)).toEqual(need.pieces)
          if (request.proofLayers === tree.height - base - 1) {
            expect(Merkle.verify(f.piecesRoot!, tree.blocks, request, proof!)).toBe(true)
          }
          // without one of the pieces it needs: no answer
          if (need.pieces.length > 0) {
            expect(LeafBlame.leafProof(m, request, (piece) => (piece === need.pieces[0] ? undefined : leavesOf(built)(piece))))
              .toBeUndefined()
          }
        }
      ),
      { numRuns: 150 }
    ))

  it("requests at or above the piece layer, for unknown roots or invalid are not leaf requests", () => {
    const built = torrent([10 * 16384], 32768)
    const f = built.metainfo.files.find((e) => e.piecesRoot !== undefined)!
    const ok = { piecesRoot: f.piecesRoot!, base: 0, index: 0, length: 2, proofLayers: 0 }
    expect(LeafBlame.leafNeed(built.metainfo, ok)).toBeDefined()
    expect(LeafBlame.leafNeed(built.metainfo, { ...ok, base: 1 })).toBeUndefined()
    expect(LeafBlame.leafNeed(built.metainfo, { ...ok, piecesRoot: new Uint8Array(32) })).toBeUndefined()
    expect(LeafBlame.leafNeed(built.metainfo, { ...ok, index: 1 })).toBeUndefined()
  })
})
