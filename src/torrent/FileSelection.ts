/**
 * File selection. Files are numbered as `effect-torrent info` lists them: torrent order with pad files left out,
 * from 0 (BEP 53 `so` in magnet links uses the same numbering). A piece is wanted when it holds bytes of a wanted
 * file, so a piece straddling a wanted and an unwanted file is downloaded (storage writes only the wanted part).
 */
import * as Option from "effect/Option"
import * as Bitfield from "../core/Bitfield.ts"
import * as FileLayout from "../metainfo/FileLayout.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import type * as Picker from "../picker/Picker.ts"

/** Torrent-order indices of the real (non-pad) files: `dataFiles(m)[i]` is the file `info` shows as number `i`. */
export const dataFiles = (metainfo: Metainfo.Metainfo): ReadonlyArray<number> =>
  metainfo.files.flatMap((f, i) => (f.pad ? [] : [i]))

/** Which torrent-order files are wanted for a selection of `info` numbers (all when `only` is undefined). */
export const wantedFiles = (
  metainfo: Metainfo.Metainfo,
  only: ReadonlyArray<number> | undefined
): ReadonlyArray<boolean> => {
  if (only === undefined) return metainfo.files.map((f) => !f.pad)
  const data = dataFiles(metainfo)
  const out = metainfo.files.map(() => false)
  for (const n of only) {
    const f = data[n]
    if (f !== undefined) out[f] = true
  }
  return out
}

/** The pieces holding bytes of a wanted file. */
export const wantedPieces = (layout: FileLayout.FileLayout, wanted: ReadonlyArray<boolean>): Bitfield.Bitfield => {
  const bf = Bitfield.make(layout.lengths.pieceCount)
  wanted.forEach((w, f) => {
    if (!w) return
    const range = piecesOf(layout, f)
    if (range === undefined) return
    for (let p = range.first; p <= range.last; p++) Bitfield.set(bf, p)
  })
  return bf
}

const piecesOf = (layout: FileLayout.FileLayout, f: number) =>
  Option.getOrUndefined(FileLayout.piecesOfFile(layout, f))

/**
 * The pieces to re-check when files become wanted (`Torrent.setWanted`'s `recheck`): every piece of a file wanted
 * in `after` and not in `before`. A verified piece among them may straddle a file that was unwanted when it was
 * written, whose part storage dropped; hashing it again from storage tells.
 */
export const newlyWanted = (
  layout: FileLayout.FileLayout,
  before: ReadonlyArray<boolean>,
  after: ReadonlyArray<boolean>
): Bitfield.Bitfield => wantedPieces(layout, after.map((w, f) => w && before[f] !== true))

const RANK: Readonly<Record<Picker.Priority, number>> = { low: 0, normal: 1, high: 2 }

/**
 * Piece priorities from file priorities (torrent-order files, as `wantedFiles`): a piece takes the highest priority
 * of the files it holds bytes of; pieces of no listed file are "normal". For `Torrent.setPriorities`.
 */
export const piecePriorities = (
  layout: FileLayout.FileLayout,
  files: ReadonlyArray<Picker.Priority>
): Array<Picker.Priority> => {
  const out = new Array<Picker.Priority | undefined>(layout.lengths.pieceCount).fill(undefined)
  files.forEach((p, f) => {
    const range = piecesOf(layout, f)
    if (range === undefined) return
    for (let i = range.first; i <= range.last; i++) {
      const cur = out[i]
      if (cur === undefined || RANK[p] > RANK[cur]) out[i] = p
    }
  })
  return out.map((p) => p ?? "normal")
}
