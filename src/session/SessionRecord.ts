/**
 * The session's state on disk: `<stateDir>/session.json`, every torrent of the session with its options, selection,
 * queue position and paused/finished state, and the settings changed at run time. Written atomically (temp file,
 * fsync, rename, directory fsync: AtomicFile) on every change that matters and every 30 s while counters move, so a
 * `kill -9` loses at most the counters of the last seconds. The torrents' metadata are `<stateDir>/<infohash>.torrent`
 * (StateFiles.ts) and their verified pieces the fast-resume records beside them (ResumeRecord.ts).
 *
 * A missing file is an empty session; one that cannot be read or decoded is kept aside as `session.json.bad` with a
 * warning (the session starts empty rather than overwrite what a person might still recover).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as ResumeRecord from "../storage/ResumeRecord.ts"
import * as TorrentInfo from "./TorrentInfo.ts"

export const Persisted = Schema.Struct({
  id: Schema.Int,
  infoHash: TorrentInfo.InfoHashHex,
  name: Schema.String,
  /** The magnet link it was added from; null for a `.torrent` (its metadata is in the state directory). */
  magnet: Schema.NullOr(Schema.String),
  downloadDir: Schema.String,
  addedAt: Schema.Number,
  completedAt: Schema.NullOr(Schema.Number),
  paused: Schema.Boolean,
  finished: Schema.Boolean,
  queuePosition: Schema.Int,
  /** Wanted files (indices as `info` lists them); null: all. */
  files: Schema.NullOr(Schema.Array(Schema.Int)),
  /** Files whose priority is not normal. */
  priorities: Schema.Array(Schema.Tuple(Schema.Int, TorrentInfo.Priority)),
  options: TorrentInfo.TorrentOptions,
  /** Peers given when it was added (host:port). */
  peers: Schema.Array(Schema.String),
  /** Payload bytes over the torrent's life, and milliseconds seeded (for the seed-time goal). */
  downloaded: Schema.Number,
  uploaded: Schema.Number,
  seedingMs: Schema.Number,
  /** Last known: every wanted piece verified, and the verified wanted bytes (shown while it does not run). */
  complete: Schema.Boolean,
  haveSize: Schema.Number,
  wantedSize: Schema.Number,
  size: Schema.Number,
  error: Schema.NullOr(TorrentInfo.ErrorInfo)
})
export type Persisted = typeof Persisted.Type

export const SessionFile = Schema.Struct({
  version: Schema.Literal(1),
  nextId: Schema.Int,
  /** Settings changed at run time (`updateSettings`); flags given to the daemon win over these. */
  settings: Schema.partialWith(TorrentInfo.Settings, { exact: true }),
  torrents: Schema.Array(Persisted)
})
export type SessionFile = typeof SessionFile.Type

export const empty: SessionFile = { version: 1, nextId: 1, settings: {}, torrents: [] }

export const pathFor = (stateDir: string): string => Path.join(stateDir, "session.json")

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(SessionFile))
const encodeJson = Schema.encodeSync(Schema.parseJson(SessionFile, { space: 1 }))

/** The session file, or an empty session (with a warning, and the unreadable file kept aside). */
export const load = (stateDir: string): Effect.Effect<SessionFile> =>
  Effect.gen(function*() {
    const path = pathFor(stateDir)
    const bytes = yield* ResumeRecord.read(path).pipe(Effect.provide(NodeFileSystem.layer), Effect.either)
    if (Either.isLeft(bytes)) {
      yield* Effect.logWarning(`cannot read ${path}: ${bytes.left.message}; starting with an empty session`)
      return empty
    }
    if (Option.isNone(bytes.right)) return empty
    const decoded = decodeJson(new TextDecoder().decode(bytes.right.value))
    if (Either.isRight(decoded)) return decoded.right
    const aside = `${path}.bad`
    yield* Effect.sync(() => Fs.renameSync(path, aside)).pipe(Effect.ignore)
    yield* Effect.logWarning(`${path} is not a session file (kept as ${aside}); starting with an empty session`)
    return empty
  })

/** Writes the session file atomically. */
export const save = (stateDir: string, file: SessionFile): Effect.Effect<void, ResumeRecord.ResumeError> =>
  ResumeRecord.writeAtomic(pathFor(stateDir), new TextEncoder().encode(encodeJson(file))).pipe(
    Effect.provide(NodeFileSystem.layer)
  )
