/**
 * The many-torrents client as a service: a registry of torrents that outlive any one request, with a download queue,
 * pause/resume, file selection, limits, events and a state directory that brings everything back after a restart
 * (even `kill -9`). What `effect-torrent daemon` runs and its HTTP API (api/) exposes; an Effect application can
 * compose it directly. Built on the shared resources of `Client` (peer id, listener, DHT, tracker, hasher); the
 * implementation is SessionLive.ts.
 *
 * Torrents are named by a `TorrentRef`: the info-hash in hex, or the small numeric `id` the session gave it.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type * as SubscriptionRef from "effect/SubscriptionRef"
import type * as TorrentInfo from "./TorrentInfo.ts"

/** An info-hash (hex) or a session id. */
export type TorrentRef = string | number

/** Where a torrent to add comes from. */
export type Source =
  | { readonly _tag: "Metainfo"; readonly bytes: Uint8Array }
  | { readonly _tag: "Magnet"; readonly uri: string }
  /** An http(s) URL of a `.torrent` (fetched once, size-bounded). */
  | { readonly _tag: "Url"; readonly url: string }

export type Reason =
  | "not-found" // no torrent with that info-hash or id
  | "invalid-source" // not a torrent, not a magnet link, unreadable URL
  | "invalid-argument" // a file index out of range, a negative limit, an unusable directory …
  | "unsupported" // e.g. a v2-only torrent
  | "storage" // the state directory could not be written, or data could not be deleted
  | "closed" // the session is shutting down

export class SessionError extends Data.TaggedError("SessionError")<{
  readonly reason: Reason
  readonly message: string
  readonly cause?: unknown
}> {}

/** A byte range of a file, `end` exclusive. */
export interface Range {
  readonly start: number
  readonly end: number
}

export interface FileStream {
  readonly index: number
  readonly path: string
  /** The file's whole length. */
  readonly length: number
  readonly range: Range
  /** The bytes of `range`, in order; waits for pieces not verified yet, which are fetched first (streaming). */
  readonly body: Stream.Stream<Uint8Array, SessionError>
}

export interface SessionShape {
  /** Adds a torrent (or finds it already there: `duplicate`), starting it unless `paused`; persisted at once. */
  readonly add: (source: Source, options?: TorrentInfo.AddOptions) => Effect.Effect<TorrentInfo.Added, SessionError>
  readonly list: Effect.Effect<ReadonlyArray<TorrentInfo.Summary>>
  readonly get: (ref: TorrentRef) => Effect.Effect<TorrentInfo.Detail, SessionError>
  readonly peers: (ref: TorrentRef) => Effect.Effect<ReadonlyArray<TorrentInfo.PeerInfo>, SessionError>
  readonly trackers: (ref: TorrentRef) => Effect.Effect<ReadonlyArray<TorrentInfo.TrackerInfo>, SessionError>
  /** Stops it (sessions closed, `stopped` announced, resume data saved); it stays in the session. */
  readonly pause: (ref: TorrentRef) => Effect.Effect<void, SessionError>
  /** Queues it again (`now`: starts at once, past the queue's limits). */
  readonly resume: (ref: TorrentRef, options?: { readonly now?: boolean }) => Effect.Effect<void, SessionError>
  /** Stops and forgets it; with `deleteData` its files (and the directories it created, once empty) go too. */
  readonly remove: (ref: TorrentRef, options?: { readonly deleteData?: boolean }) => Effect.Effect<void, SessionError>
  /** Re-hashes its data from scratch (the resume record is not trusted). */
  readonly verify: (ref: TorrentRef) => Effect.Effect<void, SessionError>
  /** Announces to its trackers now. */
  readonly reannounce: (ref: TorrentRef) => Effect.Effect<void, SessionError>
  readonly setFiles: (ref: TorrentRef, changes: TorrentInfo.FileChanges) => Effect.Effect<void, SessionError>
  readonly setOptions: (
    ref: TorrentRef,
    options: Partial<TorrentInfo.TorrentOptions>
  ) => Effect.Effect<void, SessionError>
  /** Moves it in its queue. */
  readonly queueMove: (ref: TorrentRef, to: "top" | "up" | "down" | "bottom") => Effect.Effect<void, SessionError>
  /** Serves a file's bytes (all, or `range`), blocking on pieces not verified yet and fetching those first. */
  readonly readFile: (ref: TorrentRef, index: number, range?: Range) => Effect.Effect<FileStream, SessionError>
  readonly stats: Effect.Effect<TorrentInfo.SessionStats>
  readonly settings: SubscriptionRef.SubscriptionRef<TorrentInfo.Settings>
  readonly updateSettings: (
    patch: Partial<TorrentInfo.Settings>
  ) => Effect.Effect<TorrentInfo.Settings, SessionError>
  /** Every event from now on (a sliding hub: a slow subscriber loses old events). */
  readonly events: Stream.Stream<TorrentInfo.SessionEvent>
}

export class Session extends Context.Tag("effect-torrent/Session")<Session, SessionShape>() {}
