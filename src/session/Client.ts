/**
 * The library entry point: a `Client` (peer id, announced port, limits, tracker and hasher services) and
 * `download`, which runs one torrent in the caller's scope.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const d = yield* Client.download(metainfo, { outputDir: "out" })
 *   yield* Effect.forkScoped(Stream.runForEach(d.events, (e) => Console.log(e._tag)))
 *   yield* d.done
 * })).pipe(Effect.provide(Client.layer()))
 * ```
 *
 * With `listen`, the client opens one listening socket (Listener.ts) the first time a torrent starts, routes inbound
 * peers to their torrent and announces its port. `seed` serves complete data; `download` with `seed: true` keeps
 * serving after completion.
 *
 * Trackers are contacted through `TrackerLive`, restricted to loopback when `EFFECT_TORRENT_LOOPBACK_ONLY` is set
 * (peers too). A magnet link can be downloaded only once its metadata is known (BEP 9 is a later issue): today it
 * fails with reason "metadata-needed".
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Bitfield from "../core/Bitfield.ts"
import * as PubSub from "effect/PubSub"
import type * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import * as PeerIdentity from "../core/PeerIdentity.ts"
import type * as Magnet from "../metainfo/Magnet.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import type * as Tcp from "../net/Tcp.ts"
import type * as PeerState from "../peer/PeerState.ts"
import * as FileStorage from "../storage/FileStorage.ts"
import * as Hasher from "../storage/Hasher.ts"
import * as ResumeStore from "../storage/ResumeStore.ts"
import * as FileSelection from "../torrent/FileSelection.ts"
import * as Torrent from "../torrent/Torrent.ts"
import { TorrentError } from "../torrent/TorrentError.ts"
import type * as TorrentEvent from "../torrent/TorrentEvent.ts"
import * as Restricted from "../tracker/Restricted.ts"
import { Tracker } from "../tracker/Tracker.ts"
import * as TrackerLive from "../tracker/TrackerLive.ts"
import * as Listener from "./Listener.ts"

export { TorrentError } from "../torrent/TorrentError.ts"

export interface ClientOptions {
  /** Default: a fresh `-ET0100-…` id. */
  readonly peerId?: PeerId | undefined
  /** The port announced to trackers when there is no listener; default 6881. */
  readonly port?: number | undefined
  /** Accept inbound peers on one socket for all torrents (its port is announced). Default: no listener. */
  readonly listen?: ListenOptions | undefined
  /** Upload limit for each torrent, bytes/s (default unlimited). */
  readonly upLimit?: number | undefined
  /** Download limit for each torrent, bytes/s (default unlimited). */
  readonly downLimit?: number | undefined
  /** Default connection limit per torrent (50). */
  readonly maxPeers?: number | undefined
  /** Default no-peers timeout (60 s); see Torrent.ts for the rule. */
  readonly noPeersTimeout?: Duration.DurationInput | undefined
  /** Per-session deadlines and pipeline settings (tests shorten them). */
  readonly peerConfig?: Partial<PeerState.PeerConfig> | undefined
  /** Reconnect backoff of a peer never connected in this run (default: 1 s doubling, 5 times; see Torrent.ts). */
  readonly reconnect?: Schedule.Schedule<unknown> | undefined
  /** Reconnect backoff of a peer that connected before (default: 1 s doubling, at most 60 s, forever). */
  readonly reconnectKnown?: Schedule.Schedule<unknown> | undefined
  /**
   * Directory of fast-resume records, `<stateDir>/<infohash-hex>.resume` (ResumeRecord.ts says why not beside the
   * data). Without it no record is read or written (the CLI passes `ResumeRecord.defaultStateDir()`).
   */
  readonly stateDir?: string | undefined
  /** Read and save fast-resume records in `stateDir` (default true). */
  readonly resume?: boolean | undefined
  /** When records are saved (default every 10 s and every 16 MiB verified; see Torrent.ts `resume`). */
  readonly resumeSave?: Torrent.Options["resumeSave"]
}

export interface ListenOptions {
  /** Default "0.0.0.0"; "::" for IPv6. */
  readonly host?: string | undefined
  /** Default 0 (any free port). */
  readonly port?: number | undefined
  /** When `port` is taken, listen on any free port instead of failing. */
  readonly orAnyPort?: boolean | undefined
}

export interface ClientShape {
  readonly peerId: PeerId
  readonly options: ClientOptions
  readonly tracker: Context.Tag.Service<Tracker>
  readonly hasher: Hasher.HasherShape
  /** The listening socket, opened on first use (undefined without `listen`). */
  readonly listener: Effect.Effect<Listener.Listener | undefined, TorrentError>
}

export class Client extends Context.Tag("effect-torrent/Client")<Client, ClientShape>() {}

/** A client with the live tracker (loopback-restricted by the environment) and the default hasher. */
export const layer = (options: ClientOptions = {}): Layer.Layer<Client> =>
  layerWith(options).pipe(
    Layer.provide(Restricted.fromEnvironment(TrackerLive.layer())),
    Layer.provide(Hasher.layer)
  )

/** A client over the `Tracker` and `Hasher` in context (tests pass fakes). */
export const layerWith = (options: ClientOptions = {}): Layer.Layer<Client, never, Tracker | Hasher.Hasher> =>
  Layer.scoped(
    Client,
    Effect.gen(function*() {
      const peerId = options.peerId ?? PeerIdentity.generate()
      const scope = yield* Effect.scope
      const listen = options.listen
      const listener = yield* Effect.cached(
        listen === undefined
          ? Effect.succeed(undefined)
          : Listener.make({ peerId, host: listen.host, port: listen.port }).pipe(
            Effect.catchAll((e) =>
              listen.orAnyPort === true && (listen.port ?? 0) !== 0
                ? Listener.make({ peerId, host: listen.host, port: 0 })
                : Effect.fail(e)
            ),
            Scope.extend(scope),
            Effect.mapError((e) => new TorrentError({ reason: "listen-failed", detail: e.message, cause: e }))
          )
      )
      return {
        peerId,
        options,
        tracker: yield* Tracker,
        hasher: yield* Hasher.Hasher,
        listener
      }
    })
  )

export interface DownloadOptions {
  readonly outputDir: string
  /** Peers to dial besides the trackers' ones (magnet `x.pe` peers are added too). */
  readonly peers?: ReadonlyArray<Tcp.Address> | undefined
  /** Files to download, numbered as `effect-torrent info` lists them (pad files left out), from 0. Default: all. */
  readonly only?: ReadonlyArray<number> | undefined
  readonly maxPeers?: number | undefined
  /** Announce to the torrent's trackers (default true). */
  readonly trackers?: boolean | undefined
  readonly noPeersTimeout?: Duration.DurationInput | undefined
  /** Keep serving peers after completion until the scope closes. */
  readonly seed?: boolean | undefined
  /** Upload limit, bytes/s (default: the client's). */
  readonly upLimit?: number | undefined
  /** Download limit, bytes/s (default: the client's). */
  readonly downLimit?: number | undefined
}

export interface Download {
  readonly infoHash: InfoHashV1
  readonly name: string
  /**
   * The torrent's events from the start (Checking first). One consumer: run it once; use `subscribe` for more
   * (those see events from the moment they subscribe).
   */
  readonly events: Stream.Stream<TorrentEvent.TorrentEvent>
  readonly subscribe: Stream.Stream<TorrentEvent.TorrentEvent>
  /** Succeeds when every wanted piece is verified and on disk; fails with the reason it cannot finish. */
  readonly done: Effect.Effect<void, TorrentError>
  readonly stats: () => Torrent.Stats
}

const isMagnet = (source: Metainfo.Metainfo | Magnet.Magnet): source is Magnet.Magnet => "infoHashes" in source

/**
 * Starts downloading `source` into `outputDir` in the current scope (closing it stops the download: sessions
 * closed, data flushed, `stopped` announced). Data already in `outputDir` is checked first and kept.
 */
export const download = (
  source: Metainfo.Metainfo | Magnet.Magnet,
  options: DownloadOptions
): Effect.Effect<Download, TorrentError, Client | Scope.Scope> => start(source, options, false)

export interface SeedOptions {
  /** Where the torrent's data is (the directory `download -o` would have written into). */
  readonly dataDir: string
  /** Peers to dial besides the trackers' ones. */
  readonly peers?: ReadonlyArray<Tcp.Address> | undefined
  readonly maxPeers?: number | undefined
  readonly trackers?: boolean | undefined
  readonly upLimit?: number | undefined
}

/**
 * Checks the data in `dataDir` against the torrent, then serves it in the current scope (until it closes). Fails
 * with reason "incomplete", naming the first missing or mismatching file, when any piece does not verify.
 */
export const seed = (
  metainfo: Metainfo.Metainfo,
  options: SeedOptions
): Effect.Effect<Download, TorrentError, Client | Scope.Scope> =>
  start(metainfo, { ...options, outputDir: options.dataDir, seed: true }, true)

/** Why piece `index` of data in `dir` does not verify: the first file of the piece that is missing, short or wrong. */
const firstBadFile = (m: Metainfo.Metainfo, dir: string, index: number): string => {
  const from = index * m.pieceLength
  const to = Math.min(m.totalLength, from + m.pieceLength)
  let at = 0
  const candidates: Array<string> = []
  for (const f of m.files) {
    const start = at
    at += f.length
    if (f.pad || f.length === 0 || at <= from || start >= to) continue
    const shown = f.path.join("/")
    const stat = Fs.statSync(Path.join(dir, ...f.path), { throwIfNoEntry: false })
    if (stat === undefined) return `"${shown}" is missing`
    if (stat.size !== f.length) return `"${shown}" has ${stat.size} bytes, the torrent says ${f.length}`
    candidates.push(`"${shown}"`)
  }
  const which = candidates.length === 0 ? `"${m.name}"` : candidates.join(" or ")
  return `${which} does not match the torrent (piece ${index} failed its hash check)`
}

const start = (
  source: Metainfo.Metainfo | Magnet.Magnet,
  options: DownloadOptions,
  complete: boolean
): Effect.Effect<Download, TorrentError, Client | Scope.Scope> =>
  Effect.gen(function*() {
    if (isMagnet(source)) {
      return yield* Effect.fail(
        new TorrentError({
          reason: "metadata-needed",
          detail: "this magnet link has no metadata yet: fetching it from peers (BEP 9) is not implemented yet"
        })
      )
    }
    const client = yield* Client
    const m = source
    const files = FileSelection.wantedFiles(m, options.only)
    if (options.only !== undefined && options.only.length > 0 && !files.some((w) => w)) {
      return yield* Effect.fail(
        new TorrentError({
          reason: "invalid-selection",
          detail: `no file of the torrent is numbered ${options.only.join(", ")}`
        })
      )
    }
    const storage = yield* FileStorage.make({
      outputDir: options.outputDir,
      files: m.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
      pieceLength: m.pieceLength,
      pieceHashes: m.pieces,
      wanted: (f) => files[f] === true
    }).pipe(
      Effect.provideService(Hasher.Hasher, client.hasher),
      Effect.mapError((e) =>
        new TorrentError({
          reason: e.reason === "no-space" ? "no-space" : e.reason === "read-only" ? "read-only" : "storage",
          detail: e.message,
          cause: e
        })
      )
    )
    const stateDir = client.options.stateDir
    const resume = stateDir === undefined || client.options.resume === false
      ? undefined
      : ResumeStore.make({
        stateDir,
        infoHash: m.infoHash,
        layout: storage.layout,
        files: m.files.map((f) => f.path),
        pathOf: storage.pathOf
      })
    let have: Bitfield.Bitfield | undefined
    if (complete) {
      // Seeding: pieces the resume record vouches for are not re-read; the others must verify.
      const trusted = resume === undefined ? Bitfield.make(m.pieceCount) : (yield* resume.load).trusted
      have = Bitfield.copy(trusted)
      const verified = have
      yield* Stream.runForEach(storage.checkStreamExcept(trusted), (p) =>
        Effect.sync(() => {
          if (p.ok) Bitfield.set(verified, p.index)
        })).pipe(Effect.mapError((e) => new TorrentError({ reason: "storage", detail: e.message, cause: e })))
      for (let i = 0; i < m.pieceCount; i++) {
        if (Bitfield.has(have, i)) continue
        const detail = `incomplete data in ${options.outputDir}: ${firstBadFile(m, options.outputDir, i)}`
        return yield* Effect.fail(new TorrentError({ reason: "incomplete", detail }))
      }
    }
    const listener = yield* client.listener
    const events = yield* Torrent.makeEvents()
    const first = yield* PubSub.subscribe(events)
    const torrent = yield* Torrent.start({
      metainfo: m,
      storage,
      peerId: client.peerId,
      port: listener?.address.port ?? client.options.port,
      peers: options.peers,
      wanted: FileSelection.wantedPieces(storage.layout, files),
      maxPeers: options.maxPeers ?? client.options.maxPeers,
      trackers: options.trackers,
      noPeersTimeout: options.noPeersTimeout ?? client.options.noPeersTimeout,
      peerConfig: client.options.peerConfig,
      reconnect: client.options.reconnect,
      reconnectKnown: client.options.reconnectKnown,
      events,
      seed: options.seed,
      upLimit: options.upLimit ?? client.options.upLimit,
      downLimit: options.downLimit ?? client.options.downLimit,
      have,
      resume,
      resumeSave: client.options.resumeSave
    }).pipe(Effect.provideService(Tracker, client.tracker))
    if (listener !== undefined) yield* listener.register(m.infoHash, torrent.accept)
    // A failed torrent ends `events` by shutting its queue down, once. (`Stream.interruptWhen` would fork a fiber
    // and race two more per element pulled: ~2k fibers and ~6k wake-ups per 256 MiB.)
    yield* Effect.forkScoped(
      Effect.flatMap(Effect.exit(torrent.done), (exit) => (exit._tag === "Success" ? Effect.void : first.shutdown))
    )
    return {
      infoHash: m.infoHash,
      name: m.name,
      // Ends after `Completed`, or when the torrent fails.
      events: Stream.fromQueue(first).pipe(Stream.takeUntil((e) => e._tag === "Completed")),
      subscribe: Stream.fromPubSub(events),
      done: torrent.done,
      stats: torrent.stats
    }
  })

/** Magnet `so` (BEP 53) as file numbers for `DownloadOptions.only`. */
export const selectOnlyOf = (magnet: Magnet.Magnet): ReadonlyArray<number> | undefined =>
  magnet.selectOnly?.flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i))

export const noPeersDefault = Duration.seconds(60)
