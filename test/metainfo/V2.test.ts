/**
 * BEP 52 in `Metainfo.decode`: v2-only torrents in full (with `v2Only`), hybrids, piece layers checked against
 * their roots, the per-piece v2 facts (`v2Piece`) against the data's own Merkle roots, the typed refusal of hybrids
 * whose halves disagree, and never-throw properties over mutated v2 and hybrid torrents.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import { createHash } from "node:crypto"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as InfoHash from "../../src/core/InfoHash.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"

let seed = 7
const data = (n: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    out[i] = seed >>> 24
  }
  return out
}

interface Spec {
  readonly path: ReadonlyArray<string>
  readonly bytes: Uint8Array
}

/**
 * A v2 (or hybrid) torrent of `files`, written the way BEP 52 and libtorrent lay it out, independently of the
 * code under test: the tree sorted per directory, a pad before every non-empty file off a piece boundary, piece
 * layers for files longer than a piece.
 */
const build = (
  name: string,
  files: ReadonlyArray<Spec>,
  pieceLength: number,
  options: { readonly hybrid?: boolean; readonly layers?: boolean; readonly single?: boolean } = {}
) => {
  const tree = new Map<string, Bencode.Encodable>()
  const layers = new Map<string, Bencode.Encodable>()
  const v1: Array<Bencode.Encodable> = []
  const stream: Array<Uint8Array> = []
  let offset = 0
  for (const f of files) {
    let node = tree
    for (const dir of f.path.slice(0, -1)) {
      const k = Bytes.toBinaryString(Bytes.encodeUtf8(dir))
      if (!node.has(k)) node.set(k, new Map())
      node = node.get(k) as Map<string, Bencode.Encodable>
    }
    const leaves = Merkle.leafHashes(f.bytes)
    const root = Merkle.fileRoot(leaves)
    const entry: Record<string, Bencode.Encodable> = { length: f.bytes.length }
    if (f.bytes.length > 0) entry["pieces root"] = root
    node.set(Bytes.toBinaryString(Bytes.encodeUtf8(f.path.at(-1)!)), new Map([["", entry]]))
    if (f.bytes.length > pieceLength && options.layers !== false) {
      layers.set(Bytes.toBinaryString(root), Merkle.pieceLayer(leaves, pieceLength))
    }
    if (f.bytes.length > 0 && offset % pieceLength !== 0) {
      const pad = pieceLength - (offset % pieceLength)
      v1.push({ attr: "p", length: pad, path: [".pad", String(pad)] })
      stream.push(new Uint8Array(pad))
      offset += pad
    }
    v1.push({ length: f.bytes.length, path: [...f.path] })
    stream.push(f.bytes)
    offset += f.bytes.length
  }
  const all = Bytes.concat(stream)
  const pieces: Array<Uint8Array> = []
  for (let o = 0; o < all.length; o += pieceLength) {
    pieces.push(new Uint8Array(createHash("sha1").update(all.subarray(o, o + pieceLength)).digest()))
  }
  const info: Record<string, Bencode.Encodable> = {
    "file tree": tree,
    "meta version": 2,
    name,
    "piece length": pieceLength,
    ...(options.hybrid === true
      ? options.single === true
        ? { length: files[0]!.bytes.length, pieces: Bytes.concat(pieces) }
        : { files: v1, pieces: Bytes.concat(pieces) }
      : {})
  }
  return { torrent: Bencode.encode({ info, "piece layers": layers }), info }
}

const decode = (bytes: Uint8Array) => Metainfo.decode(bytes, { v2Only: true })
const ok = (bytes: Uint8Array): Metainfo.Metainfo => {
  const r = decode(bytes)
  if (Either.isLeft(r)) throw new Error(`expected success, got ${r.left.reason}: ${r.left.message}`)
  return r.right
}
const err = (bytes: Uint8Array): Metainfo.MetainfoError => {
  const r = decode(bytes)
  if (Either.isRight(r)) throw new Error("expected a failure")
  return r.left
}

const sample: ReadonlyArray<Spec> = [
  { path: ["a.bin"], bytes: data(3 * 16384 + 5) },
  { path: ["b", "c.txt"], bytes: data(100) },
  { path: ["b", "empty"], bytes: new Uint8Array(0) },
  { path: ["d.bin"], bytes: data(65536) },
  { path: ["e.bin"], bytes: data(65537) }
]

/** Every piece's data hashes (through its leaves) to what `v2Piece` says it must. */
const checkPieces = (m: Metainfo.Metainfo, specs: ReadonlyArray<Spec>) => {
  const byPath = new Map(specs.map((s) => [[m.name, ...s.path].join("/"), s.bytes] as const))
  if (!m.isMultiFile) byPath.set(m.name, specs[0]!.bytes)
  for (let p = 0; p < m.pieceCount; p++) {
    const v = Metainfo.v2Piece(m, p)!
    expect(v, `piece ${p}`).toBeDefined()
    const f = m.files[v.fileIndex]!
    const bytes = byPath.get(f.path.join("/"))!
    expect(f.offset + v.filePiece * m.pieceLength).toBe(p * m.pieceLength)
    const own = bytes.subarray(v.filePiece * m.pieceLength, (v.filePiece + 1) * m.pieceLength)
    const root = Merkle.pieceRoot(Merkle.leafHashes(own), v.fileBlocks, m.pieceLength)
    expect(Bytes.toHex(root), `piece ${p} of ${f.path.join("/")}`).toBe(Bytes.toHex(v.expected!))
  }
}

describe("Metainfo.decode: v2-only torrents", () => {
  it("decodes the tree, roots, checked piece layers, alignment pads and the v2 info-hash", () => {
    const { torrent, info } = build("t", sample, 32768)
    const m = ok(torrent)
    expect(m.version).toBe("v2")
    const v2 = InfoHash.v2Of(Bencode.encode(info))
    expect(Bytes.toHex(m.infoHashV2!)).toBe(Bytes.toHex(v2))
    expect(Bytes.toHex(m.infoHash)).toBe(Bytes.toHex(v2).slice(0, 40))
    expect(m.pieces.length).toBe(0)
    expect(Metainfo.pieceHash(m, 0)).toBeUndefined()
    expect(m.isMultiFile).toBe(true)
    expect(m.files.map((f) => [f.path.join("/"), f.offset, f.length, f.pad])).toEqual([
      ["t/a.bin", 0, 49157, false],
      ["t/.pad/16379", 49157, 16379, true],
      ["t/b/c.txt", 65536, 100, false],
      ["t/.pad/32668", 65636, 32668, true], // libtorrent pads before an empty file too
      ["t/b/empty", 98304, 0, false],
      ["t/d.bin", 98304, 65536, false],
      ["t/e.bin", 163840, 65537, false],
      ["t/.pad/32767", 229377, 32767, true] // and pads the end of a v2-only torrent to a whole piece
    ])
    expect(m.totalLength).toBe(262144)
    expect(m.pieceCount).toBe(8)
    expect(m.files.filter((f) => f.piecesRoot !== undefined).map((f) => f.path.at(-1))).toEqual([
      "a.bin",
      "c.txt",
      "d.bin",
      "e.bin"
    ])
    expect(m.files.filter((f) => f.pieceLayer !== undefined).map((f) => [f.path.at(-1), f.pieceLayer!.length])).toEqual([
      ["a.bin", 64],
      ["d.bin", 64],
      ["e.bin", 96]
    ])
    expect(Metainfo.pieceLayerStatus(m)).toEqual({ needed: 3, present: 3 })
    checkPieces(m, sample)
  })

  it("a single-file v2 torrent: the file is the name, pieces down to a single partial leaf", () => {
    for (const size of [1, 16383, 16384, 16385, 65536, 65537, 5 * 65536 - 3]) {
      const specs = [{ path: ["one.iso"], bytes: data(size) }]
      const m = ok(build("one.iso", specs, 65536).torrent)
      expect([m.isMultiFile, m.name, m.files[0]!.path]).toEqual([false, "one.iso", ["one.iso"]])
      checkPieces(m, specs)
    }
  })

  it("without v2Only it fails with the typed v2-only error, after full validation", () => {
    const { torrent } = build("t", sample, 32768)
    const e = Either.getLeft(Metainfo.decode(torrent))
    expect(e.pipe((x) => x._tag === "Some" && [x.value.reason, x.value.message, x.value.name])).toEqual([
      "v2-only",
      "v2-only torrents are not supported yet",
      "t"
    ])
  })

  it("missing piece layers are tolerated and reported; v2Piece then has no expected hash", () => {
    const m = ok(build("t", sample, 32768, { layers: false }).torrent)
    expect(Metainfo.pieceLayerStatus(m)).toEqual({ needed: 3, present: 0 })
    expect(Metainfo.v2Piece(m, 0)!.expected).toBeUndefined()
    expect(Metainfo.v2Piece(m, 2)!.expected).toEqual(m.files[2]!.piecesRoot) // c.txt: one piece, its root
  })

  it("a piece layer that does not hash up to its root is refused, naming it; so is one of the wrong size", () => {
    const { info } = build("t", sample, 32768)
    const leaves = Merkle.leafHashes(sample[0]!.bytes)
    const root = Merkle.fileRoot(leaves)
    const layer = Merkle.pieceLayer(leaves, 32768)
    const flipped = layer.slice()
    flipped[5]! ^= 1
    for (const [bad, why] of [[flipped, /do not hash up/], [layer.subarray(32), /expected 64/]] as const) {
      const torrent = Bencode.encode({ info, "piece layers": new Map([[Bytes.toBinaryString(root), bad]]) })
      const e = err(torrent)
      expect([e.reason, e.field]).toEqual(["invalid-v2", `piece layers[${Bytes.toHex(root)}]`])
      expect(e.message).toMatch(why)
      expect(e.infoHashV2).toBeDefined()
    }
  })

  it("refuses a tree without roots, a pad attribute in the tree, a zero root", () => {
    const tree = (entry: Bencode.Encodable) =>
      Bencode.encode({
        info: { "file tree": { "a": { "": entry } }, "meta version": 2, name: "a", "piece length": 16384 }
      })
    expect(err(tree({ length: 5 })).field).toBe('info.file tree["a"].pieces root')
    expect(err(tree({ length: 5, "pieces root": new Uint8Array(32) })).detail).toBe("all zeros")
    expect(err(tree({ length: 5, "pieces root": data(32), attr: "p" })).detail).toMatch(/pad attribute/)
  })
})

describe("Metainfo.decode: hybrids", () => {
  it("decodes both halves: v1 list with pads, roots and layers attached, both info-hashes", () => {
    const { torrent, info } = build("h", sample, 32768, { hybrid: true })
    const m = ok(torrent)
    expect(m.version).toBe("hybrid")
    expect(Bytes.toHex(m.infoHash)).toBe(Bytes.toHex(InfoHash.v1Of(Bencode.encode(info))))
    expect(Bytes.toHex(m.infoHashV2!)).toBe(Bytes.toHex(InfoHash.v2Of(Bencode.encode(info))))
    expect(m.pieces.length).toBe(m.pieceCount * 20)
    expect(Metainfo.pieceLayerStatus(m)).toEqual({ needed: 3, present: 3 })
    checkPieces(m, sample)
  })

  it("a single-file hybrid", () => {
    const specs = [{ path: ["one.iso"], bytes: data(200_000) }]
    const m = ok(build("one.iso", specs, 65536, { hybrid: true, single: true }).torrent)
    expect([m.version, m.isMultiFile, m.files.length]).toEqual(["hybrid", false, 1])
    checkPieces(m, specs)
  })

  it("refuses, with a typed error naming the file, a hybrid whose halves disagree", () => {
    const { info } = build("h", sample, 32768, { hybrid: true })
    const files = info["files"] as Array<Record<string, Bencode.Encodable>>
    const variants: ReadonlyArray<[string, Array<Bencode.Encodable>, RegExp]> = [
      ["length", files.map((f, i) => (i === 0 ? { ...f, length: 49158 } : f)), /"h\/a.bin": length 49158 in the v1 list, 49157/],
      ["path", files.map((f, i) => (i === 2 ? { ...f, path: ["b", "x.txt"] } : f)), /"h\/b\/x.txt" where the v2 file tree has "h\/b\/c.txt"/],
      ["alignment", files.filter((_, i) => i !== 1), /offset 49157 in the v1 list, 65536 in the v2 tree \(v2 files are piece-aligned\)/],
      ["missing file", files.slice(0, -1), /the v2 file tree has "h\/e.bin", the v1 file list has no file there/],
      ["attributes", files.map((f, i) => (i === 0 ? { ...f, attr: "x" } : f)), /executable true in the v1 list, false/]
    ]
    for (const [what, list, why] of variants) {
      const total = list.reduce<number>((n, f) => n + ((f as { length: number }).length), 0)
      const pieces = new Uint8Array(20 * Math.ceil(total / 32768))
      const e = err(Bencode.encode({ info: { ...info, files: list, pieces } }))
      expect([what, e.reason, e.field], e.message).toEqual([what, "invalid-v2", "info.file tree"])
      expect(e.message, what).toMatch(/^info.file tree: the v1 and v2 file lists do not match: /)
      expect(e.message, what).toMatch(why)
    }
  })
})

// --- properties ----------------------------------------------------------------------------------------------

const valid = [
  build("t", sample, 32768).torrent,
  build("h", sample, 32768, { hybrid: true }).torrent,
  build("one", [{ path: ["one"], bytes: data(70000) }], 16384, { hybrid: true, single: true }).torrent
]

describe("Metainfo.decode v2: never throws", () => {
  it.prop(
    "on mutated v2 and hybrid torrents; what decodes keeps the v2 invariants",
    [
      FastCheck.integer({ min: 0, max: valid.length - 1 }),
      FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4
      }),
      FastCheck.option(FastCheck.nat(), { nil: undefined }),
      FastCheck.boolean()
    ],
    ([which, edits, cut, v2Only]) => {
      const bytes = new Uint8Array(valid[which]!)
      for (const [at, value] of edits) bytes[at % bytes.length] = value
      const input = cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1))
      const r = Metainfo.decode(input, { v2Only })
      if (Either.isLeft(r)) {
        expect(r.left._tag).toBe("MetainfoError")
        expect(r.left.detail).not.toMatch(/internal error/)
        return
      }
      const m = r.right
      expect(m.files.reduce((n, f) => n + f.length, 0)).toBe(m.totalLength)
      expect(m.pieces.length).toBe(m.version === "v2" ? 0 : m.pieceCount * 20)
      if (m.version === "v1") return
      for (const f of m.files) {
        if (f.pad || f.length === 0 || f.attributes.symlink !== undefined) continue
        expect(f.piecesRoot?.length).toBe(32)
        expect(f.offset % m.pieceLength).toBe(0)
        if (f.pieceLayer !== undefined) {
          expect(Merkle.checkPieceLayer(f.pieceLayer, f.piecesRoot!, f.length, m.pieceLength)).toBeUndefined()
        }
      }
      for (let p = 0; p < m.pieceCount; p++) Metainfo.v2Piece(m, p)
    },
    { fastCheck: { numRuns: 400 } }
  )
})
