/**
 * Transmission's RPC (`POST /transmission/rpc`, rpc-spec.md of Transmission 3.00, RPC version 16) as pure mappings:
 * the Schemas of the requests this daemon understands, and the translation of the {@link Session}'s answers
 * (TorrentInfo's Summary, Detail, PeerInfo, TrackerInfo, Settings, SessionStats) into Transmission's fields, with
 * Transmission's units and conventions: times in seconds since the epoch, speed limits in kB/s (1000 bytes), status
 * codes 0–6, `eta` −1 (not available) / −2 (unknown), ratios −1 (none yet). The HTTP side (the CSRF handshake,
 * authentication, dispatch to the Session) is TransmissionRoute.ts; docs/TRANSMISSION.md says what is supported.
 *
 * Transmission's own parser (libtransmission's tr_variant) reads an integer field only from a JSON integer, so
 * every count, size, rate and time here is a whole number; ratios and fractions are the only non-integers.
 */
import * as Data from "effect/Data"
import * as Schema from "effect/Schema"
import type * as TorrentInfo from "../session/TorrentInfo.ts"
import * as PeerSource from "../torrent/PeerSource.ts"

/** What `session-get` says as `version` and `rpc-version`: the Transmission release whose RPC this follows. */
export const RPC_VERSION = 16
export const RPC_VERSION_MINIMUM = 1
export const versionString = (ours: string): string => `3.00 (effect-torrent ${ours})`

/** Transmission's `KB` for speeds and sizes (its `units`: speed-bytes, size-bytes). */
export const SPEED_K = 1000

/** A failure answered as `{ "result": message }` (HTTP 200, as Transmission does). */
export class RpcError extends Data.TaggedError("TransmissionRpcError")<{ readonly message: string }> {}

// ---------------------------------------------------------------------------------------------------------------
// Requests

export const Request = Schema.Struct({
  method: Schema.String,
  arguments: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  tag: Schema.optional(Schema.Unknown)
})
export type Request = typeof Request.Type

/** Transmission's booleans: JSON booleans, and 0/1 (its parser takes both). */
const Bool = Schema.Union(Schema.Boolean, Schema.Literal(0, 1))
const truthy = (b: boolean | 0 | 1 | undefined): boolean | undefined => (b === undefined ? undefined : b === true || b === 1)

const Int = Schema.Number.pipe(Schema.int())
const Real = Schema.Number.pipe(Schema.finite())
/** File indices; an empty list means every file (rpc-spec 3.2). */
const Indices = Schema.Array(Schema.Number.pipe(Schema.int(), Schema.nonNegative()))

/**
 * `ids`: one id, one hash string or "recently-active", or a list of ids and hash strings (rpc-spec 3.1).
 * Absent: every torrent.
 */
export const Ids = Schema.Union(Int, Schema.String, Schema.Array(Schema.Union(Int, Schema.String)))
export type Ids = typeof Ids.Type

export type Selection =
  | { readonly _tag: "All" }
  | { readonly _tag: "RecentlyActive" }
  | { readonly _tag: "Some"; readonly ids: ReadonlyArray<number>; readonly hashes: ReadonlyArray<string> }

/** What `ids` selects. A string that is neither a hash nor "recently-active" selects nothing, as in Transmission. */
export const selection = (ids: Ids | undefined): Selection => {
  if (ids === undefined) return { _tag: "All" }
  if (ids === "recently-active") return { _tag: "RecentlyActive" }
  const list = typeof ids === "number" || typeof ids === "string" ? [ids] : ids
  const numbers: Array<number> = []
  const hashes: Array<string> = []
  for (const id of list) {
    if (typeof id === "number") numbers.push(id)
    else if (/^[0-9a-fA-F]{40}$/.test(id)) hashes.push(id.toLowerCase())
  }
  return { _tag: "Some", ids: numbers, hashes }
}

/** The torrents a selection names, in the session's order; unknown ids and hashes are skipped (as Transmission). */
export const select = (
  torrents: ReadonlyArray<TorrentInfo.Summary>,
  s: Selection,
  recentlyActive: (t: TorrentInfo.Summary) => boolean
): ReadonlyArray<TorrentInfo.Summary> => {
  switch (s._tag) {
    case "All":
      return torrents
    case "RecentlyActive":
      return torrents.filter(recentlyActive)
    case "Some": {
      const ids = new Set(s.ids)
      const hashes = new Set(s.hashes)
      return torrents.filter((t) => ids.has(t.id) || hashes.has(t.infoHash))
    }
  }
}

export const TorrentAction = Schema.Struct({ ids: Schema.optional(Ids) })

export const TorrentGet = Schema.Struct({
  ids: Schema.optional(Ids),
  fields: Schema.Array(Schema.String),
  format: Schema.optional(Schema.Literal("objects", "table"))
})

export const TorrentAdd = Schema.Struct({
  filename: Schema.optional(Schema.String),
  metainfo: Schema.optional(Schema.String),
  "download-dir": Schema.optional(Schema.String),
  paused: Schema.optional(Bool),
  "peer-limit": Schema.optional(Int),
  bandwidthPriority: Schema.optional(Int),
  cookies: Schema.optional(Schema.String),
  "files-wanted": Schema.optional(Indices),
  "files-unwanted": Schema.optional(Indices),
  "priority-high": Schema.optional(Indices),
  "priority-low": Schema.optional(Indices),
  "priority-normal": Schema.optional(Indices),
  labels: Schema.optional(Schema.Array(Schema.String))
})
export type TorrentAdd = typeof TorrentAdd.Type

export const TorrentRemove = Schema.Struct({
  ids: Schema.optional(Ids),
  "delete-local-data": Schema.optional(Bool)
})

export const TorrentSet = Schema.Struct({
  ids: Schema.optional(Ids),
  "files-wanted": Schema.optional(Indices),
  "files-unwanted": Schema.optional(Indices),
  "priority-high": Schema.optional(Indices),
  "priority-low": Schema.optional(Indices),
  "priority-normal": Schema.optional(Indices),
  downloadLimit: Schema.optional(Real),
  downloadLimited: Schema.optional(Bool),
  uploadLimit: Schema.optional(Real),
  uploadLimited: Schema.optional(Bool),
  seedRatioLimit: Schema.optional(Real),
  seedRatioMode: Schema.optional(Int),
  "peer-limit": Schema.optional(Int),
  queuePosition: Schema.optional(Int),
  bandwidthPriority: Schema.optional(Int),
  honorsSessionLimits: Schema.optional(Bool),
  location: Schema.optional(Schema.String),
  seedIdleLimit: Schema.optional(Int),
  seedIdleMode: Schema.optional(Int),
  trackerAdd: Schema.optional(Schema.Array(Schema.Unknown)),
  trackerRemove: Schema.optional(Schema.Array(Schema.Unknown)),
  trackerReplace: Schema.optional(Schema.Array(Schema.Unknown)),
  labels: Schema.optional(Schema.Array(Schema.String))
})
export type TorrentSet = typeof TorrentSet.Type

export const SessionGet = Schema.Struct({ fields: Schema.optional(Schema.Array(Schema.String)) })

export const FreeSpace = Schema.Struct({ path: Schema.String })

/** `session-set`'s arguments: any of `session-get`'s (checked key by key in {@link sessionPatch}). */
export const SessionSet = Schema.Record({ key: Schema.String, value: Schema.Unknown })

// ---------------------------------------------------------------------------------------------------------------
// torrent-add / torrent-set → the Session's options

/** A torrent-add's file selection and priorities as the session's AddOptions (Transmission: unwanted, then wanted). */
export const addFileOptions = (a: TorrentAdd, fileCount: number | undefined): {
  readonly unwanted?: ReadonlyArray<number>
  readonly priorityHigh?: ReadonlyArray<number>
  readonly priorityLow?: ReadonlyArray<number>
} => {
  const all = (list: ReadonlyArray<number> | undefined): ReadonlyArray<number> | undefined =>
    list === undefined ? undefined : list.length === 0 && fileCount !== undefined ? range(fileCount) : list
  const wanted = new Set(all(a["files-wanted"]) ?? [])
  const unwanted = all(a["files-unwanted"])?.filter((i) => !wanted.has(i))
  const high = all(a["priority-high"])
  const low = all(a["priority-low"])
  return {
    ...(unwanted !== undefined && unwanted.length > 0 ? { unwanted } : {}),
    ...(high !== undefined && high.length > 0 ? { priorityHigh: high } : {}),
    ...(low !== undefined && low.length > 0 ? { priorityLow: low } : {})
  }
}

const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => i)

/** torrent-set's file changes for a torrent of `fileCount` files (empty lists: every file), or undefined. */
export const fileChanges = (a: TorrentSet, fileCount: number): TorrentInfo.FileChanges | undefined => {
  const all = (list: ReadonlyArray<number> | undefined) => (list !== undefined && list.length === 0 ? range(fileCount) : list)
  const changes: { -readonly [K in keyof TorrentInfo.FileChanges]: TorrentInfo.FileChanges[K] } = {}
  const wanted = all(a["files-wanted"])
  const unwanted = all(a["files-unwanted"])
  const high = all(a["priority-high"])
  const normal = all(a["priority-normal"])
  const low = all(a["priority-low"])
  if (wanted !== undefined) changes.wanted = wanted
  if (unwanted !== undefined) changes.unwanted = unwanted
  if (high !== undefined) changes.priorityHigh = high
  if (normal !== undefined) changes.priorityNormal = normal
  if (low !== undefined) changes.priorityLow = low
  return Object.keys(changes).length === 0 ? undefined : changes
}

/** What torrent-set asks that this daemon cannot do (each named), beside what {@link torrentOptions} maps. */
export const unsupportedTorrentSet = (a: TorrentSet): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (a.bandwidthPriority !== undefined && a.bandwidthPriority !== 0) out.push("bandwidthPriority (torrents have no bandwidth priority here)")
  if (truthy(a.honorsSessionLimits) === false) out.push("honorsSessionLimits false (every torrent honours the session's limits)")
  if (a.location !== undefined) out.push("location (moving data is not supported)")
  if (a.seedIdleMode !== undefined && a.seedIdleMode !== 0) out.push("seedIdleMode (no idle-seeding limit)")
  if (a.seedIdleLimit !== undefined) out.push("seedIdleLimit (no idle-seeding limit)")
  if (a.seedRatioMode === 2) out.push("seedRatioMode 2 (a per-torrent 'seed regardless of ratio' is not supported; use the session's)")
  if (a.trackerAdd !== undefined || a.trackerRemove !== undefined || a.trackerReplace !== undefined) out.push("trackerAdd/trackerRemove/trackerReplace (a torrent's trackers cannot be edited)")
  if (a.labels !== undefined && a.labels.length > 0) out.push("labels")
  return out
}

/**
 * torrent-set's limits and goals as the session's per-torrent options (only what changes), given the current
 * options (a limit set without `…Limited` applies only if the torrent is already limited, as Transmission
 * remembers it otherwise; a `…Limited: true` without a value keeps the current one or takes `remembered` kB/s).
 */
export const torrentOptions = (
  a: TorrentSet,
  current: TorrentInfo.TorrentOptions,
  remembered: { readonly down: number; readonly up: number }
): Partial<TorrentInfo.TorrentOptions> => {
  const out: { -readonly [K in keyof TorrentInfo.TorrentOptions]?: TorrentInfo.TorrentOptions[K] } = {}
  const limit = (
    value: number | undefined,
    limited: boolean | undefined,
    now: number | null,
    fallback: number
  ): number | null | undefined => {
    const isLimited = now !== null && now > 0
    if (limited === false) return isLimited ? null : undefined
    if (limited === true) return Math.round((value ?? (isLimited ? now / SPEED_K : fallback)) * SPEED_K)
    if (value !== undefined && isLimited) return Math.round(value * SPEED_K)
    return undefined
  }
  const down = limit(a.downloadLimit, truthy(a.downloadLimited), current.downloadLimit, remembered.down)
  if (down !== undefined) out.downloadLimit = down
  const up = limit(a.uploadLimit, truthy(a.uploadLimited), current.uploadLimit, remembered.up)
  if (up !== undefined) out.uploadLimit = up
  if (a.seedRatioMode === 0) out.seedRatio = null
  else if (a.seedRatioMode === 1 || (a.seedRatioMode === undefined && a.seedRatioLimit !== undefined && current.seedRatio !== null)) {
    const ratio = a.seedRatioLimit ?? current.seedRatio
    if (ratio !== null) out.seedRatio = ratio
  }
  if (a["peer-limit"] !== undefined) out.maxPeers = a["peer-limit"]
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// torrent-get

/** tr_torrent_activity. */
export const Status = {
  stopped: 0,
  checkWait: 1,
  check: 2,
  downloadWait: 3,
  download: 4,
  seedWait: 5,
  seed: 6
} as const

export const statusOf = (t: TorrentInfo.Summary): number => {
  switch (t.state) {
    case "fetching-metadata":
    case "downloading":
      return Status.download
    case "checking":
      return Status.check
    case "queued":
      return t.complete ? Status.seedWait : Status.downloadWait
    case "seeding":
      return Status.seed
    case "paused":
    case "finished":
    case "error":
      return Status.stopped
  }
}

/** tr_stat_errtype: 0 none, 1 tracker warning, 2 tracker error, 3 local error. */
export const errorOf = (t: TorrentInfo.Summary): number => (t.error !== null ? 3 : 0)

const seconds = (ms: number | null): number => (ms === null ? 0 : Math.floor(ms / 1000))
const whole = (n: number): number => (Number.isFinite(n) ? Math.round(n) : 0)
const fraction = (n: number): number => (Number.isFinite(n) ? n : 0)

/** The share ratio; as Transmission's tr_getRatio, −1 (none) before anything was received or verified, −2 (∞) when only sent. */
export const ratioOf = (t: TorrentInfo.Summary): number =>
  t.downloaded > 0 || t.haveSize > 0 ? fraction(t.ratio) : t.uploaded > 0 ? -2 : -1

/** TR_ETA_NOT_AVAIL (−1): complete, or stopped; TR_ETA_UNKNOWN (−2): downloading with nothing coming in. */
export const etaOf = (t: TorrentInfo.Summary): number => {
  if (t.eta !== null) return Math.max(0, Math.round(t.eta))
  const active = t.state === "downloading" || t.state === "fetching-metadata"
  return active && !t.complete ? -2 : -1
}

const priorityOf = (p: TorrentInfo.Priority): number => (p === "low" ? -1 : p === "high" ? 1 : 0)

/** "ip:port" / "[v6]:port" → [address, port]. */
export const splitAddress = (address: string): readonly [string, number] => {
  const m = /^\[(.*)\]:(\d+)$/.exec(address) ?? /^(.*):(\d+)$/.exec(address)
  return m === null ? [address, 0] : [m[1]!, Number(m[2])]
}

/** Transmission's peer flags (its peer-mgr's flagStr): D/d, U/u, K, ?, E, H (from the DHT) or X (PEX), I, T (uTP). */
export const flagStr = (p: TorrentInfo.PeerInfo): string => {
  let s = ""
  if (p.downloadRate > 0) s += "D"
  else if (p.interested && p.chokingUs) s += "d"
  if (p.uploadRate > 0) s += "U"
  else if (p.interestedInUs && p.choked) s += "u"
  if (!p.chokingUs && !p.interested) s += "K"
  if (!p.choked && !p.interestedInUs) s += "?"
  if (p.encryption === "rc4") s += "E"
  if (p.source === "dht") s += "H"
  else if (p.source === "pex") s += "X"
  if (p.incoming) s += "I"
  if (p.transport === "utp") s += "T"
  return s
}

export const peerOf = (p: TorrentInfo.PeerInfo) => {
  const [address, port] = splitAddress(p.address)
  return {
    address,
    clientIsChoked: p.chokingUs,
    clientIsInterested: p.interested,
    clientName: p.client,
    flagStr: flagStr(p),
    isDownloadingFrom: p.downloadRate > 0,
    isEncrypted: p.encryption === "rc4",
    isIncoming: p.incoming,
    isUTP: p.transport === "utp",
    isUploadingTo: p.uploadRate > 0,
    peerIsChoked: p.choked,
    peerIsInterested: p.interestedInUs,
    port,
    progress: fraction(p.progress),
    rateToClient: whole(p.downloadRate),
    rateToPeer: whole(p.uploadRate)
  }
}

/** Connected peers by their first source, as Transmission counts them (PeerSource.transmissionKey). */
export const peersFrom = (ps: ReadonlyArray<TorrentInfo.PeerInfo>) => {
  const out = { fromCache: 0, fromDht: 0, fromIncoming: 0, fromLpd: 0, fromLtep: 0, fromPex: 0, fromTracker: 0 }
  for (const p of ps) {
    const k = PeerSource.transmissionKey(p.source)
    if (k !== undefined) out[k]++
  }
  return out
}

/** The scrape URL of an HTTP announce URL (BEP 48's rule), else "". */
export const scrapeUrlOf = (announce: string): string => {
  const m = /^(https?:\/\/.*\/)announce([^/]*)$/.exec(announce)
  return m === null ? "" : `${m[1]}scrape${m[2]}`
}

const hostOf = (url: string): string => {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}`
  } catch {
    return url
  }
}

/** TR_TRACKER_INACTIVE 0, WAITING 1, QUEUED 2, ACTIVE 3. */
const announceStateOf = (t: TorrentInfo.TrackerInfo): number =>
  t.status === "announcing" ? 3 : t.nextAnnounceAt !== null ? 1 : 0

export const trackerOf = (t: TorrentInfo.TrackerInfo, id: number) => ({
  announce: t.url,
  id,
  scrape: scrapeUrlOf(t.url),
  tier: t.tier
})

export const trackerStatOf = (t: TorrentInfo.TrackerInfo, id: number) => ({
  announce: t.url,
  announceState: announceStateOf(t),
  downloadCount: -1,
  hasAnnounced: t.lastAnnounceAt !== null,
  hasScraped: false,
  host: hostOf(t.url),
  id,
  isBackup: false,
  lastAnnouncePeerCount: t.peers ?? 0,
  lastAnnounceResult: t.message !== "" ? t.message : t.status === "working" ? "Success" : "",
  lastAnnounceStartTime: seconds(t.lastAnnounceAt),
  lastAnnounceSucceeded: t.status === "working",
  lastAnnounceTime: seconds(t.lastAnnounceAt),
  lastAnnounceTimedOut: false,
  lastScrapeResult: "",
  lastScrapeStartTime: 0,
  lastScrapeSucceeded: false,
  lastScrapeTime: 0,
  lastScrapeTimedOut: false,
  leecherCount: t.leechers ?? -1,
  nextAnnounceTime: seconds(t.nextAnnounceAt),
  nextScrapeTime: 0,
  scrape: scrapeUrlOf(t.url),
  scrapeState: 0,
  seederCount: t.seeders ?? -1,
  tier: t.tier
})

/** What one torrent's fields are computed from; `detail` and `peers` are fetched only when a field needs them. */
export interface Source {
  readonly summary: TorrentInfo.Summary
  readonly detail: TorrentInfo.Detail | undefined
  readonly peers: ReadonlyArray<TorrentInfo.PeerInfo> | undefined
  readonly settings: TorrentInfo.Settings
  /** Now, ms since the epoch. */
  readonly now: number
}

type Json = string | number | boolean | null | ReadonlyArray<Json> | { readonly [k: string]: Json }
type Needs = "summary" | "detail" | "peers"

interface Field {
  readonly needs: Needs
  readonly get: (s: Source) => Json
}

const S = (get: (t: TorrentInfo.Summary, s: Source) => Json): Field => ({ needs: "summary", get: (s) => get(s.summary, s) })
const D = (get: (d: TorrentInfo.Detail, s: Source) => Json): Field => ({
  needs: "detail",
  get: (s) => (s.detail === undefined ? null : get(s.detail, s))
})
const P = (get: (p: ReadonlyArray<TorrentInfo.PeerInfo>, s: Source) => Json): Field => ({
  needs: "peers",
  get: (s) => get(s.peers ?? [], s)
})

const leftUntilDone = (t: TorrentInfo.Summary): number => Math.max(0, t.wantedSize - t.haveSize)
const limitOf = (n: number | null): number => (n !== null && n > 0 ? Math.round(n / SPEED_K) : 0)
const limited = (n: number | null): boolean => n !== null && n > 0
const isActive = (t: TorrentInfo.Summary) => t.state === "downloading" || t.state === "seeding" || t.state === "fetching-metadata"

/**
 * Every torrent-get field this daemon answers (Transmission 3.00's names). Fields with no meaning here carry
 * Transmission's neutral value (listed in docs/TRANSMISSION.md); unknown fields are left out, as Transmission does.
 */
export const fields: { readonly [name: string]: Field } = {
  activityDate: S((t, s) => (isActive(t) && (t.downloadRate > 0 || t.uploadRate > 0) ? seconds(s.now) : seconds(t.completedAt))),
  addedDate: S((t) => seconds(t.addedAt)),
  bandwidthPriority: S(() => 0),
  comment: D((d) => d.comment),
  corruptEver: S(() => 0),
  creator: D((d) => d.createdBy),
  dateCreated: D((d) => seconds(d.creationDate)),
  desiredAvailable: {
    needs: "peers",
    get: (s) => ((s.peers ?? []).some((p) => p.progress >= 1) ? leftUntilDone(s.summary) : 0)
  },
  doneDate: S((t) => seconds(t.completedAt)),
  downloadDir: S((t) => t.downloadDir),
  downloadedEver: S((t) => whole(t.downloaded)),
  downloadLimit: D((d) => limitOf(d.options.downloadLimit)),
  downloadLimited: D((d) => limited(d.options.downloadLimit)),
  error: S(errorOf),
  errorString: S((t) => t.error?.message ?? ""),
  eta: S(etaOf),
  etaIdle: S(() => -1),
  "file-count": D((d) => d.files.length),
  files: D((d) => d.files.map((f) => ({ bytesCompleted: whole(f.completed), length: whole(f.length), name: f.path }))),
  fileStats: D((d) => d.files.map((f) => ({ bytesCompleted: whole(f.completed), priority: priorityOf(f.priority), wanted: f.wanted }))),
  hashString: S((t) => t.infoHash),
  haveUnchecked: S(() => 0),
  haveValid: S((t) => whole(t.haveSize)),
  honorsSessionLimits: S(() => true),
  id: S((t) => t.id),
  isFinished: S((t) => t.state === "finished"),
  isPrivate: S((t) => t.private),
  isStalled: S(() => false),
  labels: S(() => []),
  leftUntilDone: S((t) => whole(leftUntilDone(t))),
  magnetLink: S((t) => t.magnet),
  manualAnnounceTime: S(() => -1),
  maxConnectedPeers: D((d, s) => d.options.maxPeers ?? s.settings.maxPeersPerTorrent),
  metadataPercentComplete: S((t) => (t.state === "fetching-metadata" ? 0 : 1)),
  name: S((t) => t.name),
  "peer-limit": D((d, s) => d.options.maxPeers ?? s.settings.maxPeersPerTorrent),
  peers: P((ps) => ps.map(peerOf)),
  peersConnected: S((t) => t.peers),
  peersFrom: P(peersFrom),
  peersGettingFromUs: P((ps) => ps.filter((p) => p.uploadRate > 0).length),
  peersSendingToUs: P((ps) => ps.filter((p) => p.downloadRate > 0).length),
  percentComplete: S((t) => (t.size > 0 ? fraction(t.wantedSize === t.size ? t.progress : t.haveSize / t.size) : 1)),
  percentDone: S((t) => fraction(t.progress)),
  pieceCount: D((d) => d.pieces),
  pieceSize: D((d) => d.pieceLength),
  pieces: D((d) => d.bitfield),
  "primary-mime-type": S(() => "application/octet-stream"),
  priorities: D((d) => d.files.map((f) => priorityOf(f.priority))),
  queuePosition: S((t) => t.queuePosition),
  rateDownload: S((t) => whole(t.downloadRate)),
  rateUpload: S((t) => whole(t.uploadRate)),
  recheckProgress: S((t) => (t.state === "checking" ? fraction(t.progress) : 0)),
  secondsDownloading: S(() => 0),
  secondsSeeding: S(() => 0),
  seedIdleLimit: S(() => 30),
  seedIdleMode: S(() => 0),
  seedRatioLimit: D((d, s) => d.options.seedRatio ?? s.settings.seedRatio ?? 2),
  seedRatioMode: D((d) => (d.options.seedRatio === null ? 0 : 1)),
  sizeWhenDone: S((t) => whole(t.wantedSize)),
  startDate: S(() => 0),
  status: S(statusOf),
  torrentFile: S(() => ""),
  totalSize: S((t) => whole(t.size)),
  trackers: D((d) => d.trackers.map(trackerOf)),
  trackerStats: D((d) => d.trackers.map(trackerStatOf)),
  uploadedEver: S((t) => whole(t.uploaded)),
  uploadLimit: D((d) => limitOf(d.options.uploadLimit)),
  uploadLimited: D((d) => limited(d.options.uploadLimit)),
  uploadRatio: S(ratioOf),
  wanted: D((d) => d.files.map((f) => (f.wanted ? 1 : 0))),
  webseeds: S(() => []),
  webseedsSendingToUs: S(() => 0)
}

/** Which of the Session's answers the requested fields need. */
export const needsOf = (names: ReadonlyArray<string>): { readonly detail: boolean; readonly peers: boolean } => {
  let detail = false
  let peers = false
  for (const n of names) {
    const f = fields[n]
    if (f === undefined) continue
    if (f.needs === "detail") detail = true
    if (f.needs === "peers") peers = true
  }
  return { detail, peers }
}

/** One torrent as an object of the requested (known) fields. */
export const torrentObject = (names: ReadonlyArray<string>, s: Source): { readonly [k: string]: Json } => {
  const out: Record<string, Json> = {}
  for (const n of names) {
    const f = fields[n]
    if (f !== undefined) out[n] = f.get(s)
  }
  return out
}

/** torrent-get's `format: "table"`: the field names first, then one row per torrent. */
export const torrentTable = (names: ReadonlyArray<string>, sources: ReadonlyArray<Source>): ReadonlyArray<ReadonlyArray<Json>> => {
  const known = names.filter((n) => fields[n] !== undefined)
  return [known, ...sources.map((s) => known.map((n) => fields[n]!.get(s)))]
}

// ---------------------------------------------------------------------------------------------------------------
// session-get / session-set / session-stats

/** Values remembered for a disabled limit (Transmission keeps them; the session stores only the active limit). */
export interface Remembered {
  /** kB/s */
  readonly speedDown: number
  readonly speedUp: number
  readonly seedRatio: number
}

export const defaultRemembered: Remembered = { speedDown: 100, speedUp: 100, seedRatio: 2 }

const encryptionOf = (e: TorrentInfo.Settings["encryption"]): string =>
  e === "require" ? "required" : e === "prefer" ? "preferred" : "tolerated"

/** Keys of session-get that describe features this daemon does not have, with the value it always reports. */
export const fixedSessionValues: { readonly [key: string]: Json } = {
  "alt-speed-down": 50,
  "alt-speed-enabled": false,
  "alt-speed-time-begin": 540,
  "alt-speed-time-day": 127,
  "alt-speed-time-enabled": false,
  "alt-speed-time-end": 1020,
  "alt-speed-up": 50,
  "blocklist-enabled": false,
  "blocklist-size": 0,
  "blocklist-url": "",
  "cache-size-mb": 0,
  "idle-seeding-limit": 30,
  "idle-seeding-limit-enabled": false,
  "incomplete-dir": "",
  "incomplete-dir-enabled": false,
  "peer-port-random-on-start": false,
  "queue-stalled-enabled": false,
  "queue-stalled-minutes": 30,
  "rename-partial-files": false,
  "script-torrent-done-enabled": false,
  "script-torrent-done-filename": "",
  "start-added-torrents": true,
  "trash-original-torrent-files": false,
  "download-queue-enabled": true,
  "seed-queue-enabled": true
}

export interface SessionInfo {
  readonly settings: TorrentInfo.Settings
  readonly remembered: Remembered
  readonly version: string
  readonly sessionId: string
  readonly configDir: string
  /** Free bytes in the download directory, −1 when unknown. */
  readonly freeSpace: number
}

/** Every session-get argument. */
export const sessionArguments = (i: SessionInfo): { readonly [k: string]: Json } => {
  const s = i.settings
  return {
    ...fixedSessionValues,
    "config-dir": i.configDir,
    "dht-enabled": s.dht,
    "lpd-enabled": s.lsd,
    "port-forwarding-enabled": s.portMapping,
    "utp-enabled": s.transport !== "tcp",
    "download-dir": s.downloadDir,
    "download-dir-free-space": i.freeSpace,
    "download-queue-size": s.maxActiveDownloads,
    encryption: encryptionOf(s.encryption),
    "peer-limit-global": s.maxConnections,
    "peer-limit-per-torrent": s.maxPeersPerTorrent,
    "peer-port": s.peerPort,
    "pex-enabled": s.pex,
    "rpc-version": RPC_VERSION,
    "rpc-version-minimum": RPC_VERSION_MINIMUM,
    "seed-queue-size": s.maxActiveSeeds,
    seedRatioLimit: s.seedRatio ?? i.remembered.seedRatio,
    seedRatioLimited: s.seedRatio !== null,
    "session-id": i.sessionId,
    "speed-limit-down": s.downloadLimit > 0 ? Math.round(s.downloadLimit / SPEED_K) : i.remembered.speedDown,
    "speed-limit-down-enabled": s.downloadLimit > 0,
    "speed-limit-up": s.uploadLimit > 0 ? Math.round(s.uploadLimit / SPEED_K) : i.remembered.speedUp,
    "speed-limit-up-enabled": s.uploadLimit > 0,
    units: {
      "memory-bytes": 1024,
      "memory-units": ["KiB", "MiB", "GiB", "TiB"],
      "size-bytes": SPEED_K,
      "size-units": ["kB", "MB", "GB", "TB"],
      "speed-bytes": SPEED_K,
      "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"]
    },
    version: i.version
  }
}

/** session-get with `fields`: only those (unknown ones left out). */
export const pick = (all: { readonly [k: string]: Json }, names: ReadonlyArray<string> | undefined): { readonly [k: string]: Json } =>
  names === undefined ? all : Object.fromEntries(names.flatMap((n) => (n in all ? [[n, all[n]!] as const] : [])))

const READ_ONLY = new Set(["blocklist-size", "config-dir", "download-dir-free-space", "rpc-version", "rpc-version-minimum", "version", "session-id", "units"])

/**
 * session-set's arguments as a Settings patch and the values to remember, or the keys that cannot be applied (a
 * feature this daemon lacks set to anything but its fixed value, a wrong type, a read-only key). Unknown keys are
 * ignored, as Transmission ignores them.
 */
export const sessionPatch = (
  args: { readonly [k: string]: unknown },
  current: TorrentInfo.Settings,
  remembered: Remembered
):
  | { readonly _tag: "Patch"; readonly patch: Partial<TorrentInfo.Settings>; readonly remembered: Remembered }
  | { readonly _tag: "Refused"; readonly problems: ReadonlyArray<string> } =>
{
  const patch: { -readonly [K in keyof TorrentInfo.Settings]?: TorrentInfo.Settings[K] } = {}
  const problems: Array<string> = []
  let r = remembered
  const num = (k: string, int: boolean): number | undefined => {
    const v = args[k]
    if (v === undefined) return undefined
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (int && !Number.isInteger(v))) {
      problems.push(`${k}: expected a non-negative ${int ? "integer" : "number"}`)
      return undefined
    }
    return v
  }
  const bool = (k: string): boolean | undefined => {
    const v = args[k]
    if (v === undefined) return undefined
    if (v === true || v === 1) return true
    if (v === false || v === 0) return false
    problems.push(`${k}: expected a boolean`)
    return undefined
  }
  const str = (k: string): string | undefined => {
    const v = args[k]
    if (v === undefined) return undefined
    if (typeof v !== "string") {
      problems.push(`${k}: expected a string`)
      return undefined
    }
    return v
  }

  const dir = str("download-dir")
  if (dir !== undefined) patch.downloadDir = dir
  const port = num("peer-port", true)
  if (port !== undefined) patch.peerPort = port
  const global = num("peer-limit-global", true)
  if (global !== undefined) patch.maxConnections = global
  const perTorrent = num("peer-limit-per-torrent", true)
  if (perTorrent !== undefined) patch.maxPeersPerTorrent = perTorrent
  const downloads = num("download-queue-size", true)
  if (downloads !== undefined) patch.maxActiveDownloads = downloads
  const seeds = num("seed-queue-size", true)
  if (seeds !== undefined) patch.maxActiveSeeds = seeds
  const dht = bool("dht-enabled")
  if (dht !== undefined) patch.dht = dht
  const pex = bool("pex-enabled")
  if (pex !== undefined) patch.pex = pex
  const enc = str("encryption")
  if (enc !== undefined) {
    if (enc === "required") patch.encryption = "require"
    else if (enc === "preferred") patch.encryption = "prefer"
    else if (enc === "tolerated") patch.encryption = "off"
    else problems.push(`encryption: expected "required", "preferred" or "tolerated"`)
  }

  const speed = (valueKey: string, enabledKey: string, now: number, kept: number) => {
    const value = num(valueKey, false)
    const enabled = bool(enabledKey)
    const isOn = enabled ?? now > 0
    const kB = value ?? (now > 0 ? now / SPEED_K : kept)
    return { limit: isOn && kB > 0 ? Math.round(kB * SPEED_K) : 0, kept: value ?? kept, changed: value !== undefined || enabled !== undefined }
  }
  const down = speed("speed-limit-down", "speed-limit-down-enabled", current.downloadLimit, r.speedDown)
  if (down.changed) patch.downloadLimit = down.limit
  const up = speed("speed-limit-up", "speed-limit-up-enabled", current.uploadLimit, r.speedUp)
  if (up.changed) patch.uploadLimit = up.limit
  r = { ...r, speedDown: down.kept, speedUp: up.kept }

  const ratio = num("seedRatioLimit", false)
  const ratioOn = bool("seedRatioLimited")
  if (ratio !== undefined || ratioOn !== undefined) {
    const on = ratioOn ?? current.seedRatio !== null
    const value = ratio ?? current.seedRatio ?? r.seedRatio
    patch.seedRatio = on ? value : null
    if (ratio !== undefined) r = { ...r, seedRatio: ratio }
  }

  // Fixed when the daemon starts (its flags): the value it runs with may be repeated, nothing else.
  for (const [k, now] of [
    ["lpd-enabled", current.lsd],
    ["utp-enabled", current.transport !== "tcp"],
    ["port-forwarding-enabled", current.portMapping]
  ] as const) {
    const v = bool(k)
    if (v !== undefined && v !== now) problems.push(`${k} cannot be changed here (fixed at the daemon's start: ${now})`)
  }

  for (const [k, v] of Object.entries(args)) {
    if (READ_ONLY.has(k)) problems.push(`${k} is read-only`)
    else if (k in fixedSessionValues && JSON.stringify(v) !== JSON.stringify(fixedSessionValues[k])) {
      problems.push(`${k} cannot be changed here (always ${JSON.stringify(fixedSessionValues[k])})`)
    }
  }
  return problems.length > 0 ? { _tag: "Refused", problems } : { _tag: "Patch", patch, remembered: r }
}

const statsObject = (s: TorrentInfo.SessionStats) => ({
  downloadedBytes: whole(s.downloaded),
  filesAdded: 0,
  secondsActive: Math.floor(s.uptime / 1000),
  sessionCount: 1,
  uploadedBytes: whole(s.uploaded)
})

/** session-stats: the counters since the daemon started; the cumulative ones are the same (no history is kept). */
export const sessionStats = (s: TorrentInfo.SessionStats) => ({
  activeTorrentCount: s.active,
  downloadSpeed: whole(s.downloadRate),
  pausedTorrentCount: s.paused,
  torrentCount: s.torrents,
  uploadSpeed: whole(s.uploadRate),
  "cumulative-stats": statsObject(s),
  "current-stats": statsObject(s)
})
