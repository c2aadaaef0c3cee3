/**
 * That the files stay ours while a torrent runs: audits (`Storage.audit`: no file deleted, replaced or cut short by
 * something else, run every few seconds, on completion and when a piece read for a peer fails its hash) and the
 * handling of a verified piece that no longer matches on disk.
 *
 * A piece read for a peer failed its hash (its file changed on disk since it was checked): it is no longer had, so
 * it is neither served nor in the bitfield of peers that connect later, and every other piece of its files is
 * re-checked the same way. It is not fetched again in this run (the picker keeps it Have); the next start's check
 * finds it missing (the resume record is saved from `have`, and the file's size or mtime changed).
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Bitfield from "../core/Bitfield.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import type * as Storage from "../storage/Storage.ts"

export interface Options {
  readonly metainfo: Pick<Metainfo.Metainfo, "files" | "pieceCount" | "pieceLength" | "totalLength">
  readonly storage: Pick<Storage.StorageShape, "audit" | "checkStreamExcept">
  /** Verified pieces (cleared here for a piece that changed on disk). */
  readonly have: Bitfield.Bitfield
  /** Wanted pieces (read at each audit: the selection may change). */
  readonly wanted: Bitfield.Bitfield
  /** Any audit failure ends the torrent. */
  readonly failStorage: (e: Storage.StorageError) => Effect.Effect<void>
}

export interface Integrity {
  /** File `f` is wanted and every piece it lies in is verified: the storage must hold all of it. */
  readonly fileComplete: (f: number) => boolean
  /** One audit; a failure goes to `failStorage`. */
  readonly audit: Effect.Effect<void>
  /** Piece `index` failed its hash when read for a peer (see the header). */
  readonly lostPiece: (index: number) => Effect.Effect<void>
}

export const make = (options: Options): Integrity => {
  const m = options.metainfo
  const { have, wanted, storage } = options
  const pieceSize = (i: number) => Math.min(m.pieceLength, m.totalLength - i * m.pieceLength)
  const fileComplete = (f: number): boolean => {
    const file = m.files[f]
    if (file === undefined || file.pad || file.length === 0) return false
    const last = Math.floor((file.offset + file.length - 1) / m.pieceLength)
    for (let i = Math.floor(file.offset / m.pieceLength); i <= last; i++) {
      if (!Bitfield.has(have, i) || !Bitfield.has(wanted, i)) return false
    }
    return true
  }
  const audit = Effect.catchAll(Effect.suspend(() => storage.audit(fileComplete)), options.failStorage)

  const rechecking = new Set<number>()
  const lostPiece = (index: number): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (!Bitfield.has(have, index)) return
      Bitfield.clear(have, index)
      yield* Effect.logWarning(`piece ${index} no longer matches its hash on disk (a file changed?): not served`)
      const from = index * m.pieceLength
      const to = from + pieceSize(index)
      const files = m.files.flatMap((f, i) =>
        !f.pad && f.length > 0 && f.offset < to && f.offset + f.length > from && !rechecking.has(i) ? [i] : []
      )
      if (files.length === 0) return
      const skip = Bitfield.full(m.pieceCount)
      for (const f of files) {
        rechecking.add(f)
        const file = m.files[f]!
        const last = Math.floor((file.offset + file.length - 1) / m.pieceLength)
        for (let i = Math.floor(file.offset / m.pieceLength); i <= last; i++) {
          if (Bitfield.has(have, i)) Bitfield.clear(skip, i)
        }
      }
      const failed: Array<number> = []
      yield* storage.checkStreamExcept(skip).pipe(
        Stream.runForEach((p) =>
          Effect.sync(() => {
            if (!p.ok && Bitfield.has(have, p.index)) {
              Bitfield.clear(have, p.index)
              failed.push(p.index)
            }
          })
        ),
        Effect.catchAll((e) => Effect.logWarning(`re-check after a changed piece failed: ${e.message}`)),
        Effect.ensuring(Effect.sync(() => files.forEach((f) => rechecking.delete(f))))
      )
      if (failed.length > 0) {
        yield* Effect.logWarning(`re-check: ${failed.length} more piece(s) no longer match on disk, not served`)
      }
    })

  return { fileComplete, audit, lostPiece }
}
