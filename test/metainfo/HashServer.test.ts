/**
 * `Metainfo.hashServer`: the answers to BEP 52 hash requests from a torrent's own piece layers. Every valid request
 * at or above the piece layer is answered with the proof the whole tree gives (it hashes up to the tree's node, the
 * file's root with enough proof layers); requests below the piece layer, for a file of one piece, for an unknown
 * root, or with an invalid range are rejected (`undefined`); v1 torrents have none.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import { build } from "../support/seeder.ts"
import { buildV2 } from "../support/v2.ts"

describe("Metainfo.hashServer", () => {
  it.prop("answers every valid request at or above the piece layer with a proof of the root; rejects the rest", {
    exp: FastCheck.integer({ min: 14, max: 16 }),
    length: FastCheck.integer({ min: 1, max: 1_500_000 }),
    pick: FastCheck.nat(),
    format: FastCheck.constantFrom("v2" as const, "hybrid" as const)
  }, ({ exp, length, pick, format }) => {
    const pieceLength = 2 ** exp
    const built = buildV2({
      name: "t",
      format,
      pieceLength,
      files: [{ path: ["a"], length }, { path: ["b"], length: 5 }]
    })
    const m = built.metainfo
    const serve = Metainfo.hashServer(m)!
    const a = m.files.find((f) => f.path.join("/") === "t/a")!
    const blocks = Merkle.blockCount(length)
    const height = Merkle.heightOf(blocks)
    const layer = Merkle.pieceLayerIndex(pieceLength)
    const full = Merkle.fromLeaves(Merkle.leafHashes(built.files[m.files.indexOf(a)]!))
    // a random valid request anywhere in the tree
    const base = height === 0 ? 0 : pick % height
    const maxLength = Math.min(Merkle.MAX_REQUEST_LENGTH, 2 ** (height - base))
    const reqLength = maxLength < 2 ? 2 : 2 ** (1 + ((pick >> 4) % Math.log2(maxLength)))
    const width = 2 ** (height - base)
    const index = (((pick >> 8) % Math.max(1, width / reqLength)) | 0) * reqLength
    const proofLayers = (pick >> 12) % Math.max(1, height - base)
    const request = { piecesRoot: a.piecesRoot!, base, index, length: reqLength, proofLayers }
    const valid = Merkle.checkRange(request, blocks) === undefined
    const got = serve(request)
    if (!valid || length <= pieceLength || base < layer) {
      expect(got).toBeUndefined()
      return
    }
    expect(got).toBeDefined()
    // the proof reaches the node of the file's tree it claims (the root when it asks for enough proof layers)
    const anchor = Merkle.anchorOf(request, got!)!
    expect(Bytes.toHex(anchor.hash)).toBe(Bytes.toHex(Merkle.node(full, anchor.layer, anchor.index)!))
    if (proofLayers === Merkle.proofLayersToRoot(base, blocks)) {
      expect(Merkle.verify(a.piecesRoot!, blocks, request, got!)).toBe(true)
    }
    expect(Bytes.toHex(got!)).toBe(Bytes.toHex(Merkle.proof(full, request)!))
  }, { fastCheck: { numRuns: 150 } })

  it("rejects an unknown root and a file of one piece; a v1 torrent has no server", () => {
    const built = buildV2({
      name: "t",
      format: "v2",
      pieceLength: 16384,
      files: [{ path: ["a"], length: 100_000 }, { path: ["b"], length: 5 }]
    })
    const serve = Metainfo.hashServer(built.metainfo)!
    const b = built.metainfo.files.find((f) => f.path.join("/") === "t/b")!
    expect(serve({ piecesRoot: new Uint8Array(32), base: 0, index: 0, length: 2, proofLayers: 0 })).toBeUndefined()
    expect(serve({ piecesRoot: b.piecesRoot!, base: 0, index: 0, length: 2, proofLayers: 0 })).toBeUndefined()
    const v1 = build({ name: "v1", pieceLength: 16384, files: [{ path: ["x"], length: 50_000 }] })
    expect(Metainfo.hashServer(v1.metainfo)).toBeUndefined()
  })
})
