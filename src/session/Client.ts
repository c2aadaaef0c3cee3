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
 * (peers and DHT nodes too).
 *
 * A magnet link first fetches its info dict from peers (MetadataFetch.ts: `x.pe`, its trackers, the DHT, PEX),
 * then downloads exactly as a `.torrent` does; with a `stateDir` the fetched metadata is kept there
 * (StateFiles.ts) so a restart does not ask again. With `dht`, one BEP 5 node serves every torrent of the client
 * (bootstrapped in the background, its routing table kept in `stateDir`); private torrents never use it.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Bitfield from "../core/Bitfield.ts"
import * as Bytes from "../core/Bytes.ts"
import * as Deferred from "effect/Deferred"
import * as Option from "effect/Option"
import * as DhtNode from "../dht/Node.ts"
import * as TorrentFile from "../metainfo/TorrentFile.ts"
import * as MetadataFetch from "../torrent/MetadataFetch.ts"
import * as StateFiles from "./StateFiles.ts"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as InfoHash from "../core/InfoHash.ts"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import * as PeerIdentity from "../core/PeerIdentity.ts"
import type * as Magnet from "../metainfo/Magnet.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"
import { loopbackOnly } from "../net/Destination.ts"
import * as Lsd from "../net/Lsd.ts"
import * as PortMapping from "../net/PortMapping.ts"
import type * as Tcp from "../net/Tcp.ts"
import * as UtpSocket from "../net/UtpSocket.ts"
import * as UtpTransport from "../net/UtpTransport.ts"
import * as Encryption from "../peer/Encryption.ts"
import type * as PeerState from "../peer/PeerState.ts"
import * as FileStorage from "../storage/FileStorage.ts"
import * as Hasher from "../storage/Hasher.ts"
import * as ResumeStore from "../storage/ResumeStore.ts"
import * as AtomicFile from "../storage/AtomicFile.ts"
import * as FileSelection from "../torrent/FileSelection.ts"
import * as Torrent from "../torrent/Torrent.ts"
import type * as ConnectionBudget from "../torrent/ConnectionBudget.ts"
import type * as RateLimit from "../torrent/RateLimit.ts"
import type * as PeerSource from "../torrent/PeerSource.ts"
import type * as TorrentInfo from "./TorrentInfo.ts"
import type * as Picker from "../picker/Picker.ts"
import type * as Storage from "../storage/Storage.ts"
import type * as FileLayout from "../metainfo/FileLayout.ts"
import { fromStorage, TorrentError } from "../torrent/TorrentError.ts"
import * as TorrentEvent from "../torrent/TorrentEvent.ts"
import type * as Uploader from "../torrent/Uploader.ts"
import * as Restricted from "../tracker/Restricted.ts"
import { Tracker } from "../tracker/Tracker.ts"
import * as TrackerLive from "../tracker/TrackerLive.ts"
import * as Mse from "../wire/Mse.ts"
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
  /** When records are saved (default every 10 s and every 256 MiB verified; see Torrent.ts `resume`). */
  readonly resumeSave?: Torrent.Options["resumeSave"]
  /** Between checks that no file was deleted, replaced or cut short under us (Torrent.ts `auditInterval`, 5 s). */
  readonly auditInterval?: Torrent.Options["auditInterval"]
  /** Run a DHT node (BEP 5) for every torrent of this client. Default: none. */
  readonly dht?: DhtOptions | undefined
  /** BEP 11 peer exchange (default true; never for private torrents). */
  readonly pex?: boolean | undefined
  /** BEP 19 web seeds: download from a torrent's `url-list` (and a magnet's `ws=`) besides peers (default true). */
  readonly webSeeds?: boolean | undefined
  /** Web seed tuning (tests): connections per server, backoff, idle timeout, redirects (Torrent.ts). */
  readonly webSeedConfig?: Torrent.Options["webSeedConfig"]
  /**
   * BEP 14 local service discovery (docs/LSD.md): torrents announced by multicast on the local networks, and peers
   * announcing them there dialled; never for private torrents; off when `EFFECT_TORRENT_LOOPBACK_ONLY` is set.
   * Default: off (the CLI turns it on).
   */
  readonly lsd?: boolean | Omit<Lsd.Options, "port"> | undefined
  /**
   * Map the listening port on the router (docs/PORTMAPPING.md): PCP (NAT-PMP for gateways that speak only that),
   * then UPnP IGD; TCP, and UDP when uTP or the DHT use it. The mapped external port is what trackers are told.
   * Off when `EFFECT_TORRENT_LOOPBACK_ONLY` is set or there is no listener. Default: off (the CLI turns it on).
   */
  readonly portMapping?: boolean | Omit<PortMapping.Options, "port" | "udp"> | undefined
  /**
   * Message stream encryption (docs/ENCRYPTION.md), outgoing and incoming: "prefer" (default) tries MSE first and
   * falls back to plain BitTorrent (remembering plain-only peers), accepts both inbound; "require" speaks only MSE
   * with rc4, both ways; "off" only plain BitTorrent.
   */
  readonly encryption?: Encryption.Policy | undefined
  /** Most file descriptors each torrent's storage keeps open (FileStorage.ts; default 64). */
  readonly maxOpenFiles?: number | undefined
  /**
   * Transport of outgoing peer connections (docs/UTP.md): "tcp" (default), "utp" (BEP 29), or "both" (uTP first,
   * TCP when it does not connect). Unless "tcp", a uTP socket is bound on the listener's port number (UDP), accepts
   * inbound uTP connections for the listener, and carries the DHT too when there is one.
   */
  readonly transport?: UtpTransport.Transport | undefined
}

/** What the client's options turn on, as `TorrentInfo.Settings` reports it (fixed while it runs). */
export const features = (
  options: ClientOptions
): Pick<TorrentInfo.Settings, "lsd" | "transport" | "portMapping"> => ({
  lsd: options.lsd !== undefined && options.lsd !== false && !loopbackOnly(),
  transport: options.transport ?? "tcp",
  portMapping: options.portMapping !== undefined && options.portMapping !== false && options.listen !== undefined &&
    !loopbackOnly()
})

export interface DhtOptions {
  /** Nodes to start from when the routing table is empty (default {@link defaultBootstrap}). */
  readonly bootstrap?: ReadonlyArray<{ readonly host: string; readonly port: number }> | undefined
  /** UDP port (default: the listening port when there is one, else any free port). */
  readonly port?: number | undefined
  /** Local address (default: the listener's host, else 0.0.0.0). */
  readonly host?: string | undefined
  /** Node settings for tests (timeouts, rate limits, lookup interval of torrents). */
  readonly node?: Partial<DhtNode.Options> | undefined
  /** Between a torrent's DHT lookups (Torrent.ts default). */
  readonly interval?: Duration.DurationInput | undefined
}

/** The usual public DHT routers (as libtorrent, Transmission and qBittorrent ship them). */
export const defaultBootstrap: ReadonlyArray<{ readonly host: string; readonly port: number }> = [
  { host: "router.bittorrent.com", port: 6881 },
  { host: "router.utorrent.com", port: 6881 },
  { host: "dht.transmissionbt.com", port: 6881 },
  { host: "dht.libtorrent.org", port: 25401 }
]

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
  /** The DHT node, started on first use (undefined without `dht`, or when its socket could not be opened). */
  readonly dht: Effect.Effect<DhtNode.Node | undefined>
  /** Local service discovery, started on first use (undefined without `lsd`, or when it could not start). */
  readonly lsd: Effect.Effect<Lsd.Lsd | undefined>
  /** The router port mapping of the listener, started on first use (undefined without `portMapping` or listener). */
  readonly portMapping: Effect.Effect<PortMapping.PortMapping | undefined>
  /** The encryption policy of outgoing connections and the memory of plain-only peers, shared by all torrents. */
  readonly encryption: Encryption.Outbound
  /** The uTP socket, opened on first use (undefined with transport "tcp", or when it could not be bound). */
  readonly utp: Effect.Effect<UtpSocket.UtpSocket | undefined>
  /**
   * The IPv6 uTP socket (UDP sockets are of one family), opened on first use on the listener's IPv6 address (or
   * "::") and port; undefined with transport "tcp", a listener on a specific IPv4 address, or no IPv6 here.
   */
  readonly utp6: Effect.Effect<UtpSocket.UtpSocket | undefined>
  /** How torrents dial peers (the `transport` option). */
  readonly dial: UtpTransport.Dial
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
      const policy = options.encryption ?? "prefer"
      const encryption: Encryption.Outbound = { policy, plainOnly: Encryption.plainOnlyMemory() }
      // The one-time DH setup (OpenSSL checks the prime: 20–30 ms of the event loop) before the first connection
      // needs it, but not in line: the next turn of the loop usually finds it waiting on the start-up's file
      // checks and tracker announce. A connection that comes first pays it itself (`Mse` creates it on first use).
      if (policy !== "off") {
        setImmediate(() => {
          try {
            Mse.prepare()
          } catch {
            // the first handshake retries it and reports the failure as its own
          }
        })
      }
      const listener = yield* Effect.cached(
        listen === undefined
          ? Effect.succeed(undefined)
          : Listener.make({ peerId, host: listen.host, port: listen.port, encryption: policy }).pipe(
            Effect.catchAll((e) =>
              listen.orAnyPort === true && (listen.port ?? 0) !== 0
                ? Listener.make({ peerId, host: listen.host, port: 0, encryption: policy })
                : Effect.fail(e)
            ),
            Scope.extend(scope),
            Effect.mapError((e) => new TorrentError({ reason: "listen-failed", detail: e.message, cause: e }))
          )
      )
      const transport = options.transport ?? "tcp"
      // A uTP socket on the listener's port (UDP), serving inbound uTP to the listener; without a listener any port,
      // and every inbound SYN refused (its port is not the one announced).
      const bindUtp = (family: "udp4" | "udp6", host: string) =>
        Effect.gen(function*() {
          const bound = Option.getOrUndefined(yield* Effect.option(listener))
          const make = (port: number | undefined) =>
            UtpSocket.make({ family, host, port, backlog: bound === undefined ? 0 : 64 })
          const wanted = bound?.address.port
          const socket = yield* make(wanted).pipe(
            Effect.catchAll((e) => (wanted !== undefined && wanted !== 0 ? make(0) : Effect.fail(e))),
            Scope.extend(scope)
          )
          if (bound !== undefined) yield* bound.serve(socket.accept).pipe(Scope.extend(scope))
          return socket
        })
      const utp = yield* Effect.cached(
        transport === "tcp" ? Effect.succeed(undefined) : bindUtp("udp4", listenHost(listen)).pipe(
          Effect.catchAll((e) =>
            Effect.as(Effect.logWarning(`uTP disabled: ${e.message}`), undefined as UtpSocket.UtpSocket | undefined)
          )
        )
      )
      const host6 = listenHost6(listen)
      const utp6 = yield* Effect.cached(
        transport === "tcp" || host6 === undefined ? Effect.succeed(undefined) : bindUtp("udp6", host6).pipe(
          // A machine without IPv6: IPv6 peers go over TCP (transport both), as before.
          Effect.catchAll((e) =>
            Effect.as(Effect.logDebug(`IPv6 uTP off: ${e.message}`), undefined as UtpSocket.UtpSocket | undefined)
          )
        )
      )
      const dhtOptions = options.dht
      const stateDir = options.stateDir
      const dht = yield* Effect.cached(
        dhtOptions === undefined ? Effect.succeed(undefined) : Effect.gen(function*() {
          const l = yield* Effect.option(listener)
          const bound = Option.getOrUndefined(l)
          const snapshot = stateDir === undefined ? undefined : yield* StateFiles.loadDht(stateDir)
          // With uTP on, the DHT shares its UDP socket (one port, demultiplexed by the first byte).
          const shared = dhtOptions.port === undefined ? yield* utp : undefined
          const make = (port: number | undefined) =>
            DhtNode.make({
              ...dhtOptions.node,
              socket: shared?.udp,
              address: dhtOptions.host ?? (bound === undefined ? "0.0.0.0" : listenHost(listen)),
              port,
              bootstrap: dhtOptions.bootstrap ?? defaultBootstrap,
              snapshot
            })
          const wanted = dhtOptions.port ?? bound?.address.port
          const node = yield* make(wanted).pipe(
            Effect.catchAll((e) => (wanted !== undefined && wanted !== 0 ? make(0) : Effect.fail(e))),
            Scope.extend(scope)
          )
          yield* Effect.forkIn(Effect.ignore(node.bootstrap), scope)
          if (stateDir !== undefined) {
            const save = Effect.flatMap(node.snapshot, (snap) => StateFiles.saveDht(stateDir, snap))
            // saveDht logs its own failures; the 5 s bound is said when it cuts the save short, not dropped.
            // Interruptible: a finalizer runs uninterruptibly, where `timeout` could not cut a hung save (the file's
            // write itself stays uninterruptible: AtomicFile).
            yield* Scope.addFinalizer(
              scope,
              Effect.interruptible(save).pipe(
                Effect.timeout(Duration.seconds(5)),
                Effect.catchAll(() => Effect.logWarning("DHT routing table not saved on exit: not done within 5 s"))
              )
            )
            yield* Effect.forkIn(Effect.forever(Effect.delay(save, Duration.minutes(15))), scope)
          }
          return node
        }).pipe(
          Effect.catchAll((e) =>
            Effect.as(Effect.logWarning(`DHT disabled: ${e.message}`), undefined as DhtNode.Node | undefined)
          )
        )
      )
      const lsdOptions = options.lsd
      const lsd = yield* Effect.cached(
        lsdOptions === undefined || lsdOptions === false ? Effect.succeed(undefined) : loopbackOnly()
          ? Effect.as(Effect.logDebug("LSD off: only loopback destinations are allowed"), undefined)
          : Effect.gen(function*() {
            const bound = Option.getOrUndefined(yield* Effect.option(listener))
            return yield* Lsd.make({ ...(lsdOptions === true ? {} : lsdOptions), port: bound?.address.port }).pipe(
              Scope.extend(scope)
            )
          }).pipe(
            Effect.catchAll((e) => Effect.as(Effect.logWarning(`LSD disabled: ${e.message}`), undefined as Lsd.Lsd | undefined))
          )
      )
      const mappingOptions = options.portMapping
      const portMapping = yield* Effect.cached(
        mappingOptions === undefined || mappingOptions === false || loopbackOnly()
          ? Effect.succeed(undefined)
          : Effect.gen(function*() {
            const bound = Option.getOrUndefined(yield* Effect.option(listener))
            if (bound === undefined) return undefined
            return yield* PortMapping.make({
              ...(mappingOptions === true ? {} : mappingOptions),
              port: bound.address.port,
              udp: transport !== "tcp" || dhtOptions !== undefined
            }).pipe(Scope.extend(scope))
          })
      )
      return {
        peerId,
        options,
        tracker: yield* Tracker,
        hasher: yield* Hasher.Hasher,
        listener,
        dht,
        lsd,
        portMapping,
        encryption,
        utp,
        utp6,
        dial: UtpTransport.dialer({ transport, utp, utp6 })
      }
    })
  )

const listenHost = (listen: ListenOptions | undefined): string => {
  const h = listen?.host ?? "0.0.0.0"
  // The DHT socket is IPv4 (BEP 5); a dual-stack listener still takes IPv4 datagrams on all interfaces.
  return h.includes(":") ? "0.0.0.0" : h
}

/** Where the IPv6 uTP socket binds: the listener's IPv6 address, "::" for a wildcard one, none for a specific IPv4. */
const listenHost6 = (listen: ListenOptions | undefined): string | undefined => {
  const h = listen?.host ?? "0.0.0.0"
  if (h.includes(":")) return h
  return h === "0.0.0.0" ? "::" : undefined
}

export interface DownloadOptions {
  readonly outputDir: string
  /** Peers to dial besides the trackers' ones (magnet `x.pe` peers are added too); without a source: "manual". */
  readonly peers?: ReadonlyArray<PeerSource.Address> | undefined
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
  /** For a magnet: files to download, chosen once the metadata is known (overrides `only`). */
  readonly onlyFor?: ((m: Metainfo.Metainfo) => Effect.Effect<ReadonlyArray<number> | undefined, TorrentError>) | undefined
  /** Also write the `.torrent` here (for a magnet: once its metadata arrived). */
  readonly saveTorrent?: string | undefined
  /** Seconds without any peer offering metadata before a magnet gives up (default: `noPeersTimeout`). */
  readonly metadataTimeout?: Duration.DurationInput | undefined
  /** Piece priorities at start, for the torrent once its metadata is known (Torrent.ts `setPriorities`). */
  readonly priorities?: ((m: Metainfo.Metainfo) => ReadonlyArray<Picker.Priority>) | undefined
  /** Limits and a connection cap shared with other torrents (a session's; Torrent.ts `sharedUp`…). */
  readonly shared?: Shared | undefined
}

/** What several torrents of a session share: upload and download buckets, and a connection cap. */
export interface Shared {
  readonly up: RateLimit.Bucket
  readonly down: RateLimit.Bucket
  readonly connections: ConnectionBudget.ConnectionBudget
}

/** A running torrent as a session drives it: its controls and introspection, its storage (for reads). */
export interface Running {
  readonly metainfo: Metainfo.Metainfo
  readonly torrent: Torrent.Torrent
  readonly storage: Storage.StorageShape
  /** Whether file `f` (torrent order, pads included) is stored (wanted). */
  readonly fileWanted: (f: number) => boolean
  /**
   * Changes the file selection while it runs (`only`: data-file numbers as `info` lists them; undefined: all): the
   * storage starts writing newly wanted files, pieces they share with files wanted before are hashed again.
   */
  readonly select: (only: ReadonlyArray<number> | undefined) => Effect.Effect<void, TorrentError>
  readonly layout: FileLayout.FileLayout
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
  /**
   * Fails with the error that stopped the torrent whenever that happens, while seeding too (a file deleted or cut
   * short under it, a failing disk); never succeeds. Wait on it while seeding.
   */
  readonly failed: Effect.Effect<never, TorrentError>
  readonly stats: () => Torrent.Stats
  /** Payload bytes received per peer address in this run, most first (Torrent.ts `downloadedFrom`). */
  downloadedFrom(): ReadonlyArray<{ address: string; bytes: number }>
  /**
   * Payload bytes downloaded from and uploaded to each peer, by peer id, over the download's life (peers that
   * left included): e.g. which peers other than the seeder a leecher got data from.
   */
  readonly transfers: () => ReadonlyArray<Uploader.PeerTransfer>
  /** The torrent's metadata: at once for a `.torrent`, once fetched from peers for a magnet link. */
  readonly metainfo: Effect.Effect<Metainfo.Metainfo, TorrentError>
  /** The running torrent, once it runs (for a magnet: once its metadata arrived). */
  readonly running: Effect.Effect<Running, TorrentError>
}

const isMagnet = (source: Metainfo.Metainfo | Magnet.Magnet): source is Magnet.Magnet => "infoHashes" in source

/**
 * Starts downloading `source` into `outputDir` in the current scope (closing it stops the download: sessions
 * closed, data flushed, `stopped` announced). Data already in `outputDir` is checked first and kept.
 */
export const download = (
  source: Metainfo.Metainfo | Magnet.Magnet,
  options: DownloadOptions
): Effect.Effect<Download, TorrentError, Client | Scope.Scope> =>
  isMagnet(source) ? downloadMagnet(source, options) : start(source, options, false, undefined)

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
  start(metainfo, { ...options, outputDir: options.dataDir, seed: true }, true, undefined)

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

/** An event hub already subscribed to (a magnet download publishes before its torrent exists). */
interface Hub {
  readonly events: PubSub.PubSub<TorrentEvent.TorrentEvent>
  readonly first: Queue.Dequeue<TorrentEvent.TorrentEvent>
}

const start = (
  source: Metainfo.Metainfo,
  options: DownloadOptions,
  complete: boolean,
  hub: Hub | undefined
): Effect.Effect<Download, TorrentError, Client | Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Client
    const m = source
    // A download hashes within a second: the hash worker comes up meanwhile, beside the announce and the first
    // connections, instead of on the first piece with the pieces behind it waiting in fresh memory.
    if (!complete && client.hasher.warm !== undefined) yield* client.hasher.warm
    // Mutable: the storage asks it on each write, and `select` changes it while the torrent runs.
    const files = [...FileSelection.wantedFiles(m, options.only)]
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
      ...Metainfo.pieceVerification(m),
      wanted: (f) => files[f] === true,
      maxOpenFiles: client.options.maxOpenFiles
    }).pipe(
      Effect.provideService(Hasher.Hasher, client.hasher),
      Effect.mapError(fromStorage)
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
    /** Pieces hashed by the check below, with the file versions they were hashed at (the uploader trusts those). */
    const versions = new Map<number, string>()
    if (complete) {
      // Seeding: pieces the resume record vouches for are not re-read; the others must verify.
      // The store fails only on EBADF (a descriptor closed under us: ResumeStore.ts), which stops the torrent.
      const trusted = resume === undefined ? Bitfield.make(m.pieceCount) : (yield* resume.load.pipe(
        Effect.mapError((e) => new TorrentError({ reason: "storage", detail: e.message, cause: e }))
      )).trusted
      have = Bitfield.copy(trusted)
      const verified = have
      yield* Stream.runForEach(storage.checkStreamExcept(trusted), (p) =>
        Effect.sync(() => {
          if (p.ok) Bitfield.set(verified, p.index)
          if (p.ok && p.version !== undefined) versions.set(p.index, p.version)
        })).pipe(Effect.mapError((e) => new TorrentError({ reason: "storage", detail: e.message, cause: e })))
      for (let i = 0; i < m.pieceCount; i++) {
        if (Bitfield.has(have, i)) continue
        const detail = `incomplete data in ${options.outputDir}: ${firstBadFile(m, options.outputDir, i)}`
        return yield* Effect.fail(new TorrentError({ reason: "incomplete", detail }))
      }
    }
    const listener = yield* client.listener
    const dht = m.private ? undefined : yield* client.dht
    const lsd = m.private ? undefined : yield* client.lsd
    const mapping = yield* client.portMapping
    // The uTP sockets listen from the first torrent on (not only once something dials out or the DHT starts).
    if (listener !== undefined) yield* Effect.all([client.utp, client.utp6], { discard: true })
    const events = hub?.events ?? (yield* Torrent.makeEvents())
    const first = hub?.first ?? (yield* PubSub.subscribe(events))
    const torrent = yield* Torrent.start({
      metainfo: m,
      storage,
      peerId: client.peerId,
      port: listener?.address.port ?? client.options.port,
      externalPort: mapping === undefined ? undefined : () => mapping.current()?.externalPort,
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
      verified: versions,
      resume,
      resumeSave: client.options.resumeSave,
      auditInterval: client.options.auditInterval,
      listenPort: listener?.address.port,
      dht,
      dhtInterval: client.options.dht?.interval,
      lsd,
      pex: client.options.pex,
      webSeeds: client.options.webSeeds === false ? [] : undefined,
      webSeedConfig: client.options.webSeedConfig,
      encryption: client.encryption,
      dial: client.dial,
      sharedUp: options.shared?.up,
      sharedDown: options.shared?.down,
      connections: options.shared?.connections,
      priorities: options.priorities?.(m)
    }).pipe(Effect.provideService(Tracker, client.tracker))
    if (listener !== undefined) yield* listener.register(m.infoHash, torrent.accept)
    // a hybrid's v2 swarm: peers dialling with its truncated v2 hash reach the same torrent (docs/V2.md)
    if (listener !== undefined && m.version === "hybrid" && m.infoHashV2 !== undefined) {
      yield* listener.register(InfoHash.truncatedV2(m.infoHashV2), torrent.accept)
    }
    const select = (only: ReadonlyArray<number> | undefined) =>
      Effect.suspend(() => {
        const next = FileSelection.wantedFiles(m, only)
        if (!next.some((w) => w)) {
          return Effect.fail(new TorrentError({ reason: "invalid-selection", detail: "no file of the torrent is wanted" }))
        }
        const recheck = FileSelection.newlyWanted(storage.layout, files, next)
        next.forEach((w, f) => (files[f] = w))
        return torrent.setWanted(FileSelection.wantedPieces(storage.layout, next), { recheck })
      })
    const running: Running = {
      metainfo: m,
      torrent,
      storage,
      fileWanted: (f) => files[f] === true,
      select,
      layout: storage.layout
    }
    // A failed torrent ends `events` by shutting its queue down, once. (`Stream.interruptWhen` would fork a fiber
    // and race two more per element pulled: ~2k fibers and ~6k wake-ups per 256 MiB.) A hub's owner does that.
    if (hub === undefined) {
      yield* Effect.forkScoped(
        Effect.flatMap(Effect.exit(torrent.done), (exit) => (exit._tag === "Success" ? Effect.void : first.shutdown))
      )
    }
    return {
      infoHash: m.infoHash,
      name: m.name,
      // Ends after `Completed`, or when the torrent fails.
      events: Stream.fromQueue(first).pipe(Stream.takeUntil((e) => e._tag === "Completed")),
      subscribe: Stream.fromPubSub(events),
      done: torrent.done,
      failed: torrent.failed,
      running: Effect.succeed(running),
      stats: torrent.stats,
      downloadedFrom: torrent.downloadedFrom,
      transfers: torrent.transfers,
      metainfo: Effect.succeed(m)
    }
  })

const hexOf = (magnet: Magnet.Magnet): string => Bytes.toHex(swarmOf(magnet).infoHash)

/**
 * The swarm a magnet's metadata is fetched from: its v1 info-hash when it has one (`btih`; with a `btmh` too, a
 * hybrid's, whose peers may upgrade to the truncated v2 hash), else the v2 one truncated to 20 bytes (BEP 52).
 */
const swarmOf = (magnet: Magnet.Magnet): {
  readonly infoHash: InfoHashV1
  readonly v2InfoHash: InfoHashV1 | undefined
} => {
  const { v1, v2 } = magnet.infoHashes
  if (v1 !== undefined) return { infoHash: v1, v2InfoHash: v2 === undefined ? undefined : InfoHash.truncatedV2(v2) }
  // Magnet.parse guarantees one of them
  return { infoHash: InfoHash.truncatedV2(v2!), v2InfoHash: undefined }
}

export interface FetchOptions {
  /** Peers to ask besides the magnet's `x.pe` ones. */
  readonly peers?: ReadonlyArray<Tcp.Address> | undefined
  /** Announce to the magnet's trackers (default true). */
  readonly trackers?: boolean | undefined
  readonly maxPeers?: number | undefined
  /** Give up when no peer offered the metadata for this long (default 60 s). */
  readonly timeout?: Duration.DurationInput | undefined
  readonly onProgress?: ((p: MetadataFetch.Progress) => void) | undefined
}

export interface Fetched {
  /** A complete `.torrent` file: the info dict as received, with the magnet's trackers and web seeds. */
  readonly bytes: Uint8Array
  readonly metainfo: Metainfo.Metainfo
  /** Every peer address learned while fetching, with where it came from. */
  readonly peers: ReadonlyArray<PeerSource.Address>
}

/** The router's external port for our listener, once the port mapping has one. */
const externalPortOf = (client: ClientShape): Effect.Effect<(() => number | undefined) | undefined> =>
  Effect.map(client.portMapping, (m) => (m === undefined ? undefined : () => m.current()?.externalPort))

/**
 * The metadata of a magnet link: from the state directory when it was fetched before, else from peers (BEP 9),
 * then kept in the state directory.
 */
export const fetchMetadata = (
  magnet: Magnet.Magnet,
  options: FetchOptions = {}
): Effect.Effect<Fetched, TorrentError, Client> =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Client
    const { infoHash, v2InfoHash } = swarmOf(magnet)
    const stateDir = client.options.stateDir
    const peers = [...(options.peers ?? []), ...magnet.peers.map((p) => ({ host: p.host, port: p.port }))]
    if (stateDir !== undefined) {
      const cached = yield* StateFiles.loadTorrent(stateDir, infoHash)
      if (Option.isSome(cached)) return { ...cached.value, peers }
    }
    const listener = yield* client.listener
    const got = yield* MetadataFetch.fetch({
      infoHash,
      v2InfoHash,
      expected: magnet.infoHashes,
      peerId: client.peerId,
      peers,
      trackers: options.trackers === false ? [] : magnet.trackers.map((t) => [t]),
      port: listener?.address.port ?? client.options.port,
      listenPort: listener?.address.port,
      externalPort: yield* externalPortOf(client),
      dht: yield* client.dht,
      dhtInterval: client.options.dht?.interval,
      lsd: yield* client.lsd,
      maxPeers: options.maxPeers,
      noPeersTimeout: options.timeout ?? client.options.noPeersTimeout,
      peerConfig: client.options.peerConfig,
      onProgress: options.onProgress,
      encryption: client.encryption,
      dial: client.dial
    }).pipe(Effect.provideService(Tracker, client.tracker))
    const made = TorrentFile.fromInfo(got.info, {
      trackers: magnet.trackers,
      webSeeds: magnet.webSeeds,
      createdBy: "effect-torrent 0.1.0",
      pieceLayers: got.pieceLayers
    }, { v2Only: true })
    if (made._tag === "Left") {
      const detail = `the peers' metadata is not a valid torrent: ${made.left.message}`
      return yield* Effect.fail(new TorrentError({ reason: "metadata-needed", detail }))
    }
    if (stateDir !== undefined) yield* StateFiles.saveTorrent(stateDir, infoHash, made.right.bytes)
    return { ...made.right, peers: got.peers }
  }))

/**
 * Writes a `.torrent` file through AtomicFile (a temp file beside it, fsync, rename, directory fsync): a reader never
 * sees half of it, and a failure leaves neither a partial file nor the temp file behind.
 */
export const writeTorrentFile = (path: string, bytes: Uint8Array): Effect.Effect<void, TorrentError> =>
  AtomicFile.write(path, bytes).pipe(
    Effect.mapError((cause) =>
      new TorrentError({ reason: "storage", detail: `cannot write ${path}: ${cause.code ?? cause.message}`, cause })
    ),
    Effect.provide(NodeFileSystem.layer)
  )

const zeroStats = (): Torrent.Stats => ({
  downloaded: 0,
  uploaded: 0,
  peers: 0,
  have: 0,
  pieces: 0,
  bytesLeft: 0,
  total: 0
})

/**
 * A magnet download: returns at once; its events start with `MetadataProgress` while the metadata is fetched,
 * then `MetadataReceived`, then those of the torrent.
 */
const downloadMagnet = (
  magnet: Magnet.Magnet,
  options: DownloadOptions
): Effect.Effect<Download, TorrentError, Client | Scope.Scope> =>
  Effect.gen(function*() {
    const { infoHash } = swarmOf(magnet)
    const events = yield* Torrent.makeEvents()
    const first = yield* PubSub.subscribe(events)
    const result = yield* Deferred.make<void, TorrentError>()
    const stopped = yield* Deferred.make<never, TorrentError>()
    const metainfo = yield* Deferred.make<Metainfo.Metainfo, TorrentError>()
    const runningNow = yield* Deferred.make<Running, TorrentError>()
    let inner: Download | undefined
    const run = Effect.gen(function*() {
      const fetched = yield* fetchMetadata(magnet, {
        peers: options.peers,
        trackers: options.trackers,
        maxPeers: options.maxPeers,
        timeout: options.metadataTimeout ?? options.noPeersTimeout,
        onProgress: (p) => events.unsafeOffer(TorrentEvent.MetadataProgress(p))
      })
      const m = fetched.metainfo
      events.unsafeOffer(TorrentEvent.MetadataReceived({ name: m.name, size: m.rawInfo.length }))
      yield* Deferred.succeed(metainfo, m)
      if (options.saveTorrent !== undefined) yield* writeTorrentFile(options.saveTorrent, fetched.bytes)
      const only = options.onlyFor !== undefined ? yield* options.onlyFor(m) : options.only ?? selectOnlyOf(magnet)
      const d = yield* start(m, { ...options, only, peers: fetched.peers }, false, { events, first })
      inner = d
      yield* Deferred.complete(runningNow, d.running)
      yield* d.done
      yield* Deferred.succeed(result, undefined)
      return yield* d.failed
    })
    yield* Effect.forkScoped(
      run.pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.andThen(
            Effect.andThen(Deferred.done(result, Exit.asVoid(exit)), Deferred.done(stopped, exit)),
            exit._tag === "Failure"
              ? Effect.andThen(
                Effect.andThen(Deferred.failCause(metainfo, exit.cause), Deferred.failCause(runningNow, exit.cause)),
                first.shutdown
              )
              : Effect.void
          )
        )
      )
    )
    return {
      infoHash,
      name: magnet.name ?? hexOf(magnet),
      events: Stream.fromQueue(first).pipe(Stream.takeUntil((e) => e._tag === "Completed")),
      subscribe: Stream.fromPubSub(events),
      done: Deferred.await(result),
      failed: Deferred.await(stopped),
      running: Deferred.await(runningNow),
      stats: () => inner?.stats() ?? zeroStats(),
      downloadedFrom: () => inner?.downloadedFrom() ?? [],
      transfers: () => inner?.transfers() ?? [],
      metainfo: Deferred.await(metainfo)
    }
  })

/** Magnet `so` (BEP 53) as file numbers for `DownloadOptions.only`. */
export const selectOnlyOf = (magnet: Magnet.Magnet): ReadonlyArray<number> | undefined =>
  magnet.selectOnly?.flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i))

export const noPeersDefault = Duration.seconds(60)
