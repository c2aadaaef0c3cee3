/**
 * What a client holding many torrents says about them, as Schemas: the registry's answers (Session.ts), the HTTP
 * API's bodies (api/), the remote CLI's input. Plain JSON values: byte counts and rates are numbers (exact up to
 * 2^53: 8 PiB), times are milliseconds since the epoch, info-hashes lowercase hex.
 */
import * as Schema from "effect/Schema"
import * as PeerSource from "../torrent/PeerSource.ts"

/** A v1 info-hash as 40 lowercase hex digits. */
export const InfoHashHex = Schema.String.pipe(
  Schema.pattern(/^[0-9a-f]{40}$/),
  Schema.annotations({ identifier: "InfoHashHex", description: "v1 info-hash, 40 lowercase hex digits" })
)

/**
 * Where a torrent is in its life:
 * - `fetching-metadata`: a magnet link asking peers for the info dict;
 * - `checking`: hashing data already on disk (start-up, or `verify`);
 * - `queued`: waiting for a download slot (`complete` false) or a seed slot (`complete` true);
 * - `downloading`, `seeding`: running;
 * - `paused`: stopped by the user (or added paused);
 * - `finished`: complete and stopped because it reached its seed ratio or time;
 * - `error`: stopped by a failure (`error` says which); `resume` tries again.
 */
export const State = Schema.Literal(
  "fetching-metadata",
  "checking",
  "queued",
  "downloading",
  "seeding",
  "paused",
  "finished",
  "error"
)
export type State = typeof State.Type

export const ErrorInfo = Schema.Struct({
  /** The failure's `reason` (TorrentError's: "no-space", "storage", "no-peers", …). */
  reason: Schema.String,
  message: Schema.String
})
export type ErrorInfo = typeof ErrorInfo.Type

export const Priority = Schema.Literal("low", "normal", "high")
export type Priority = typeof Priority.Type

export const Summary = Schema.Struct({
  /** Small number, unique in this client for the torrent's life (persisted): what Transmission's RPC calls `id`. */
  id: Schema.Int,
  infoHash: InfoHashHex,
  name: Schema.String,
  state: State,
  /** Every wanted piece is verified. */
  complete: Schema.Boolean,
  /** Verified bytes of wanted pieces / wanted bytes (1 when nothing is wanted). */
  progress: Schema.Number,
  /** Bytes of the whole torrent (pad files excluded). */
  size: Schema.Number,
  /** Bytes of the wanted pieces. */
  wantedSize: Schema.Number,
  /** Verified bytes of the wanted pieces. */
  haveSize: Schema.Number,
  /** Payload bytes received from peers, over the torrent's life in this client. */
  downloaded: Schema.Number,
  /** Payload bytes sent to peers, over the torrent's life in this client. */
  uploaded: Schema.Number,
  /** Bytes per second, over the last few seconds. */
  downloadRate: Schema.Number,
  uploadRate: Schema.Number,
  /** Connected peers. */
  peers: Schema.Int,
  /** uploaded / max(wanted bytes verified, 1 piece): BitTorrent's share ratio. */
  ratio: Schema.Number,
  /** Seconds to completion at the current rate; null when unknown or complete. */
  eta: Schema.NullOr(Schema.Number),
  error: Schema.NullOr(ErrorInfo),
  downloadDir: Schema.String,
  addedAt: Schema.Number,
  completedAt: Schema.NullOr(Schema.Number),
  /** Position in its queue (downloads and seeds are queued separately), from 0. */
  queuePosition: Schema.Int,
  private: Schema.Boolean,
  /** A magnet link for it. */
  magnet: Schema.String
})
export type Summary = typeof Summary.Type

export const FileInfo = Schema.Struct({
  index: Schema.Int,
  /** Components joined with "/", below the download directory (the torrent's name first for multi-file). */
  path: Schema.String,
  length: Schema.Number,
  wanted: Schema.Boolean,
  priority: Priority,
  /** Bytes of this file inside verified pieces. */
  completed: Schema.Number
})
export type FileInfo = typeof FileInfo.Type

export const PeerInfo = Schema.Struct({
  address: Schema.String,
  /** From the extension handshake's `v`, else the peer id's client code; "" when unknown. */
  client: Schema.String,
  encryption: Schema.Literal("rc4", "plaintext", "none"),
  /** Direction of the connection. */
  incoming: Schema.Boolean,
  /** What carries it: TCP or uTP (BEP 29). */
  transport: Schema.Literal("tcp", "utp"),
  /** Where the peer came from first: tracker, dht, pex, lsd, manual (given by hand), incoming, webseed. */
  source: Schema.Literal(...PeerSource.sources),
  /** Every source that named this address, `source` included. */
  sources: Schema.Array(Schema.Literal(...PeerSource.sources)),
  downloadRate: Schema.Number,
  uploadRate: Schema.Number,
  downloaded: Schema.Number,
  uploaded: Schema.Number,
  /** Share of the pieces it has, 0..1. */
  progress: Schema.Number,
  /** We choke it / it chokes us; we are interested / it is. */
  choked: Schema.Boolean,
  chokingUs: Schema.Boolean,
  interested: Schema.Boolean,
  interestedInUs: Schema.Boolean
})
export type PeerInfo = typeof PeerInfo.Type

export const TrackerInfo = Schema.Struct({
  url: Schema.String,
  tier: Schema.Int,
  status: Schema.Literal("idle", "announcing", "working", "error"),
  lastAnnounceAt: Schema.NullOr(Schema.Number),
  nextAnnounceAt: Schema.NullOr(Schema.Number),
  /** From the last answer (announce or scrape); null when never said. */
  seeders: Schema.NullOr(Schema.Int),
  leechers: Schema.NullOr(Schema.Int),
  /** Peers the last announce returned. */
  peers: Schema.NullOr(Schema.Int),
  /** The last error or warning; "" when none. */
  message: Schema.String
})
export type TrackerInfo = typeof TrackerInfo.Type

/** Per-torrent options that can change while it runs. Absent: the client's setting. */
export const TorrentOptions = Schema.Struct({
  /** Bytes/s; 0 unlimited; null: the global limit only. */
  downloadLimit: Schema.NullOr(Schema.Number),
  uploadLimit: Schema.NullOr(Schema.Number),
  /** Stop seeding at this ratio; null: the client's goal. */
  seedRatio: Schema.NullOr(Schema.Number),
  /** Stop seeding after this many seconds of seeding; null: the client's goal. */
  seedTime: Schema.NullOr(Schema.Number),
  /** Connections at most for this torrent; null: the client's default. */
  maxPeers: Schema.NullOr(Schema.Int)
})
export type TorrentOptions = typeof TorrentOptions.Type

export const Detail = Schema.Struct({
  ...Summary.fields,
  pieceLength: Schema.Int,
  pieces: Schema.Int,
  /** Verified pieces as a BitTorrent bitfield, base64 (high bit of the first byte = piece 0). */
  bitfield: Schema.String,
  comment: Schema.String,
  createdBy: Schema.String,
  creationDate: Schema.NullOr(Schema.Number),
  files: Schema.Array(FileInfo),
  trackers: Schema.Array(TrackerInfo),
  options: TorrentOptions
})
export type Detail = typeof Detail.Type

export const SessionStats = Schema.Struct({
  torrents: Schema.Int,
  /** Downloading or seeding now. */
  active: Schema.Int,
  paused: Schema.Int,
  downloadRate: Schema.Number,
  uploadRate: Schema.Number,
  /** Payload bytes since the client started. */
  downloaded: Schema.Number,
  uploaded: Schema.Number,
  peers: Schema.Int,
  /** Milliseconds since the client started. */
  uptime: Schema.Number
})
export type SessionStats = typeof SessionStats.Type

/** Client-wide settings (the daemon's flags and `effect/Config`, changeable at run time). */
export const Settings = Schema.Struct({
  downloadDir: Schema.String,
  /** The port peers connect to (0: none open). */
  peerPort: Schema.Int,
  /** Torrents downloading at once; the others wait in the queue. */
  maxActiveDownloads: Schema.Int,
  /** Complete torrents seeding at once. */
  maxActiveSeeds: Schema.Int,
  /** Bytes/s for all torrents together; 0 unlimited. */
  downloadLimit: Schema.Number,
  uploadLimit: Schema.Number,
  /** Peer connections for all torrents together. */
  maxConnections: Schema.Int,
  /** Connections per torrent. */
  maxPeersPerTorrent: Schema.Int,
  /** Default goals; null: seed forever. */
  seedRatio: Schema.NullOr(Schema.Number),
  seedTime: Schema.NullOr(Schema.Number),
  /** `.torrent` files dropped here are added (and renamed `*.added`); null: none. */
  watchDir: Schema.NullOr(Schema.String),
  dht: Schema.Boolean,
  pex: Schema.Boolean,
  encryption: Schema.Literal("prefer", "require", "off"),
  /** Fixed when the client starts (daemon flags); a patch may only repeat them. Local service discovery (BEP 14). */
  lsd: Schema.Boolean,
  /** Transport of outgoing connections (uTP listened for unless "tcp"). Fixed at start. */
  transport: Schema.Literal("tcp", "utp", "both"),
  /** The listening port is mapped on the router (PCP, NAT-PMP or UPnP). Fixed at start. */
  portMapping: Schema.Boolean
})
export type Settings = typeof Settings.Type

/** The settings a running client cannot change (`Client.features` says them). */
export const fixedSettings = ["lsd", "transport", "portMapping"] as const

/** What `add` takes besides the source. */
export const AddOptions = Schema.Struct({
  /** Default: the client's `downloadDir`. */
  downloadDir: Schema.optional(Schema.String),
  /** Added paused (not started). */
  paused: Schema.optional(Schema.Boolean),
  /** Files to download (indices as `info` lists them); default all. */
  files: Schema.optional(Schema.Array(Schema.Int)),
  /** Files not to download (applied after `files`). */
  unwanted: Schema.optional(Schema.Array(Schema.Int)),
  priorityHigh: Schema.optional(Schema.Array(Schema.Int)),
  priorityLow: Schema.optional(Schema.Array(Schema.Int)),
  /** Peers to dial, host:port. */
  peers: Schema.optional(Schema.Array(Schema.String)),
  options: Schema.optional(Schema.partial(TorrentOptions))
})
export type AddOptions = typeof AddOptions.Type

export const Added = Schema.Struct({
  id: Schema.Int,
  infoHash: InfoHashHex,
  name: Schema.String,
  /** It was already in the client: nothing was added (`torrent-duplicate` in Transmission's terms). */
  duplicate: Schema.Boolean
})
export type Added = typeof Added.Type

/** A change to a torrent's files: selection and priorities (indices as `info` lists them). */
export const FileChanges = Schema.Struct({
  wanted: Schema.optional(Schema.Array(Schema.Int)),
  unwanted: Schema.optional(Schema.Array(Schema.Int)),
  priorityHigh: Schema.optional(Schema.Array(Schema.Int)),
  priorityNormal: Schema.optional(Schema.Array(Schema.Int)),
  priorityLow: Schema.optional(Schema.Array(Schema.Int))
})
export type FileChanges = typeof FileChanges.Type

/** What the client tells subscribers (`GET /api/events`): one torrent's change, or the session's. */
export const SessionEvent = Schema.Union(
  Schema.TaggedStruct("Added", { torrent: Summary }),
  Schema.TaggedStruct("Removed", { id: Schema.Int, infoHash: InfoHashHex }),
  /** State, error, queue position or options changed. */
  Schema.TaggedStruct("Changed", { torrent: Summary }),
  /** Once a second per running torrent. */
  Schema.TaggedStruct("Progress", {
    id: Schema.Int,
    infoHash: InfoHashHex,
    progress: Schema.Number,
    downloadRate: Schema.Number,
    uploadRate: Schema.Number,
    peers: Schema.Int
  }),
  Schema.TaggedStruct("PieceVerified", { id: Schema.Int, infoHash: InfoHashHex, index: Schema.Int }),
  Schema.TaggedStruct("Completed", { id: Schema.Int, infoHash: InfoHashHex }),
  Schema.TaggedStruct("Stats", { stats: SessionStats })
)
export type SessionEvent = typeof SessionEvent.Type
