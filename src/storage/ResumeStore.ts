/**
 * One torrent's fast-resume record on disk (ResumeRecord.ts): where it is, loading it into trusted pieces, and
 * saving it. The torrent (Torrent.ts) decides *when*. An unreadable, corrupt or foreign record is ignored with a
 * warning (everything is re-checked), and a failed save is logged (the previous record stays, which is always safe:
 * it claims fewer pieces). The one failure neither swallows is EBADF (`ResumeRecord.isBadDescriptor`): a descriptor
 * of ours was invalid, so some part of the process closed a descriptor number twice and may be writing into the
 * wrong file; `load` and `save` fail with it and the torrent stops (docs/RELIABILITY.md, descriptors).
 *
 * Records live in the state directory (`<state-dir>/<infohash-hex>.resume`, see ResumeRecord.ts for why not beside
 * the data).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Bitfield from "../core/Bitfield.ts"
import * as FileLayout from "../metainfo/FileLayout.ts"
import * as ResumeRecord from "./ResumeRecord.ts"

export interface Options {
  readonly stateDir: string
  readonly infoHash: Uint8Array
  readonly layout: FileLayout.FileLayout
  /** Path components of each file of the torrent, torrent order (pads included). */
  readonly files: ReadonlyArray<ReadonlyArray<string>>
  /** Absolute path of file `file` (the storage's). */
  readonly pathOf: (file: number) => string
}

export interface Loaded {
  /** Pieces to mark as had without hashing. */
  readonly trusted: Bitfield.Bitfield
  /** "none": no record; "ignored": a record that could not be used (warned); "used": `trusted` comes from it. */
  readonly status: "none" | "ignored" | "used"
  /** Files that changed since the record was written (their pieces are re-verified). */
  readonly changed: ReadonlyArray<number>
}

export interface ResumeStore {
  /** The record's file. */
  readonly path: string
  /** Fails only with a bad-descriptor `ResumeError` (see the module comment). */
  readonly load: Effect.Effect<Loaded, ResumeRecord.ResumeError>
  /**
   * Writes `verified` with the files' stats now. The caller must have flushed storage after taking `verified` and
   * before calling (ResumeRecord.ts, "Saving"). Fails only with a bad-descriptor `ResumeError`; other failures are
   * logged.
   */
  readonly save: (verified: Bitfield.Bitfield) => Effect.Effect<void, ResumeRecord.ResumeError>
}

export const make = (options: Options): ResumeStore => {
  const layout = options.layout
  const path = ResumeRecord.pathFor(options.stateDir, options.infoHash)
  const n = layout.lengths.pieceCount
  const stats = Effect.forEach(
    Array.from({ length: layout.fileCount }, (_, f) => f),
    (f) => FileLayout.isPad(layout, f) ? Effect.succeed(undefined) : ResumeRecord.statFile(options.pathOf(f))
  )
  const nothing = (status: Loaded["status"]): Loaded => ({ trusted: Bitfield.make(n), status, changed: [] })

  const load: Effect.Effect<Loaded, ResumeRecord.ResumeError> = Effect.gen(function*() {
    const bytes = yield* ResumeRecord.read(path)
    if (Option.isNone(bytes)) return nothing("none")
    const decoded = ResumeRecord.decode(bytes.value, {
      infoHash: options.infoHash,
      pieceCount: n,
      pieceLength: layout.lengths.pieceLength,
      fileCount: layout.fileCount
    })
    if (Either.isLeft(decoded)) {
      yield* Effect.logWarning(`ignoring resume record ${path}: ${decoded.left.detail}; re-checking all data`)
      return nothing("ignored")
    }
    const m = ResumeRecord.matches(decoded.right, layout, yield* stats)
    return { trusted: m.trusted, status: "used" as const, changed: m.changed }
  }).pipe(
    Effect.catchAll((e) =>
      ResumeRecord.isBadDescriptor(e)
        ? Effect.fail(e)
        : Effect.as(
          Effect.logWarning(`ignoring resume record ${path}: ${e.detail}; re-checking all data`),
          nothing("ignored")
        )
    ),
    Effect.provide(NodeFileSystem.layer)
  )

  const save = (verified: Bitfield.Bitfield): Effect.Effect<void, ResumeRecord.ResumeError> =>
    Effect.gen(function*() {
      const now = yield* stats
      const record: ResumeRecord.ResumeRecord = {
        version: ResumeRecord.VERSION,
        infoHash: options.infoHash,
        pieceCount: n,
        pieceLength: layout.lengths.pieceLength,
        verified,
        files: options.files.map((p, f) => ResumeRecord.fileEntry(p, now[f])),
        savedAt: Date.now()
      }
      yield* ResumeRecord.writeAtomic(path, ResumeRecord.encode(record))
    }).pipe(
      Effect.catchAll((e) =>
        ResumeRecord.isBadDescriptor(e) ? Effect.fail(e) : Effect.logWarning(`could not save resume record: ${e.message}`)
      ),
      Effect.provide(NodeFileSystem.layer)
    )

  return { path, load, save }
}
