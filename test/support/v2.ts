/**
 * v2-only and hybrid test torrents (BEP 52) over random content, in the shape of `seeder.ts`'s {@link Built}: the
 * files' Merkle roots and piece layers from core/Merkle, the torrent from `metainfo/Create.ts` (the layout
 * libtorrent 2.0.8 writes, pads included), decoded back as every reader does.
 */
import { randomBytes } from "node:crypto"
import * as Either from "effect/Either"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Create from "../../src/metainfo/Create.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import type { Built } from "./seeder.ts"

export const buildV2 = (options: {
  readonly name: string
  readonly format: "v2" | "hybrid"
  readonly pieceLength: number
  /** Multi-file: paths below the torrent's directory. One file with `single` makes a single-file torrent. */
  readonly files: ReadonlyArray<{ readonly path: ReadonlyArray<string>; readonly length: number }>
  readonly single?: boolean
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>>
}): Built => {
  const single = options.single === true
  const sorted = Create.sortFilesTree(options.files.map((f) => ({ path: single ? [] : f.path, length: f.length })))
  const contents = new Map<Create.InputFile, Uint8Array>(sorted.map((f) => [f, new Uint8Array(randomBytes(f.length))]))
  const hashed = sorted.map((f) => {
    const leaves = Merkle.leafHashes(contents.get(f)!)
    return {
      path: f.path,
      length: f.length,
      ...(f.length > 0 ? { piecesRoot: Merkle.fileRoot(leaves) } : {}),
      ...(f.length > options.pieceLength ? { pieceLayer: Merkle.pieceLayer(leaves, options.pieceLength) } : {})
    }
  })
  const layout = Create.alignedLayout(sorted, options.pieceLength)
  const v1Payload = Bytes.concat(
    layout.slots.map((s) => s._tag === "Pad" ? new Uint8Array(s.length) : contents.get(sorted[s.index]!)!)
  )
  const pieces: Array<Uint8Array> = []
  if (options.format === "hybrid") {
    for (let at = 0; at < v1Payload.length; at += options.pieceLength) {
      pieces.push(Bytes.sha1(v1Payload.subarray(at, at + options.pieceLength)))
    }
  }
  const built = Create.build({
    name: options.name,
    single,
    format: options.format,
    pieceLength: options.pieceLength,
    files: hashed,
    pieces: Bytes.concat(pieces),
    trackers: options.trackers
  })
  if (Either.isLeft(built)) throw new Error(built.left.message)
  const m = built.right.metainfo
  // Each metainfo file's bytes, by path (a v2-only torrent has a tail pad the v1 layout does not: zeros all the same)
  const byPath = new Map(sorted.map((f) => [[m.name, ...f.path].join("/"), contents.get(f)!]))
  const files = m.files.map((f) => {
    if (f.pad) return new Uint8Array(f.length)
    const data = single ? contents.get(sorted[0]!)! : byPath.get(f.path.join("/"))
    if (data === undefined) throw new Error(`no content for ${f.path.join("/")}`)
    return data
  })
  const payload = Bytes.concat(files)
  const check = Metainfo.decode(built.right.torrent, { v2Only: true })
  if (Either.isLeft(check)) throw new Error(check.left.message)
  return { metainfo: m, bytes: built.right.torrent, payload, files }
}
