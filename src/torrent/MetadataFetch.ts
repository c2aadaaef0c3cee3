/**
 * Fetching a magnet link's info dict from peers (BEP 9 `ut_metadata` over BEP 10), before the torrent can start.
 *
 * Peers come from the magnet (`x.pe`), its trackers (announced with `left` = 16 KiB, as libtorrent does without
 * metadata), the DHT and PEX. Sessions are ordinary `PeerSession`s in metadata-only mode (TorrentHandle
 * `metadataOnly`): handshake with the extension bit, our extension handshake, nothing requested but metadata.
 * The pure `UtMetadata` assembler decides which piece to ask whom (several peers at once, bounded per peer, with
 * timeouts and reject backoff), checks the SHA-1 against the info-hash, and names the liar after a failed attempt
 * (that peer is dropped and never dialled again).
 *
 * Peers are a `Swarm` (Swarm.ts, the torrent's too: candidates, dialing, bans, sources). Each peer is dialled at
 * most three times (1 s, then 4 s apart) in the whole fetch, except one that named another info-hash, was
 * ourselves or lied (banned); a peer given up is not dialled again when a source hands it out. The fetch fails with reason "no-peers" when, for `noPeersTimeout` in a row, no peer offering
 * ut_metadata has been connected and no tracker has answered; once a tracker answers it waits for its peers.
 *
 * On success the sessions close (the torrent dials the peers again as a full download; rqbit does the same) and
 * every address learned is returned so no source has to be asked twice.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Bitfield from "../core/Bitfield.ts"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import type * as DhtNode from "../dht/Node.ts"
import type * as Lsd from "../net/Lsd.ts"
import type * as PeerSession from "../peer/PeerSession.ts"
import * as PeerState from "../peer/PeerState.ts"
import type { PeerControl, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import type { Tracker } from "../tracker/Tracker.ts"
import * as ExtensionHandshake from "../wire/ExtensionHandshake.ts"
import * as UtMetadata from "../wire/UtMetadata.ts"
import * as Extensions from "./Extensions.ts"
import type * as PeerSource from "./PeerSource.ts"
import * as Swarm from "./Swarm.ts"
import { TorrentError } from "./TorrentError.ts"

export interface Options {
  readonly infoHash: InfoHashV1
  readonly peerId: PeerId
  readonly peers?: ReadonlyArray<PeerSource.Address> | undefined
  /** Tracker tiers (a magnet's `tr` URLs, one tier each as libtorrent does). */
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>> | undefined
  /** Announced to trackers (default 6881). */
  readonly port?: number | undefined
  /** Our listening port, for our extension handshake. */
  readonly listenPort?: number | undefined
  /** The mapped external port (port mapping), sent in the extension handshake instead while defined. */
  readonly externalPort?: (() => number | undefined) | undefined
  readonly dht?: DhtNode.Node | undefined
  /** BEP 14: peers on the LAN announcing this info-hash become candidates (and we announce it while fetching). */
  readonly lsd?: Lsd.Lsd | undefined
  /** Between DHT lookups (default 15 s while no peer offers the metadata, 60 s otherwise). */
  readonly dhtInterval?: Duration.DurationInput | undefined
  /** Connections at once (default 30). */
  readonly maxPeers?: number | undefined
  readonly noPeersTimeout?: Duration.DurationInput | undefined
  readonly peerConfig?: Partial<PeerState.PeerConfig> | undefined
  readonly dial?: PeerSession.ConnectOptions["dial"]
  /** Message stream encryption of outgoing connections (PeerSession.ts); default none (plain BitTorrent). */
  readonly encryption?: PeerSession.ConnectOptions["encryption"]
  readonly assembler?: Partial<UtMetadata.Options> | undefined
  /** Called about once a second and on every received piece. */
  readonly onProgress?: ((p: Progress) => void) | undefined
}

export interface Progress {
  /** Connected peers. */
  readonly peers: number
  /** Connected peers that offer ut_metadata with a size. */
  readonly sources: number
  readonly received: number
  /** Metadata pieces, once a peer told the size (0 before). */
  readonly total: number
}

export interface Fetched {
  /** The info dict's bytes, whose SHA-1 is the info-hash. */
  readonly info: Uint8Array
  /** Every peer address learned, to dial again for the download. */
  readonly peers: ReadonlyArray<PeerSource.Address>
}

/** Between the three dials of a peer: 1 s, then 4 s. */
const redial: Schedule.Schedule<unknown> = Schedule.fromDelays(Duration.seconds(1), Duration.seconds(4))

export const fetch = (options: Options): Effect.Effect<Fetched, TorrentError, Scope.Scope | Tracker> =>
  Effect.scoped(Effect.gen(function*() {
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const done = yield* Deferred.make<Uint8Array, TorrentError>()
    const noPeersMs = Duration.toMillis(options.noPeersTimeout ?? Duration.seconds(60))
    const config = PeerState.config(options.peerConfig)

    const controls = new Map<PeerKey, PeerControl>()
    /** Peers that offered ut_metadata with a size: the ones to ask. */
    const sources = new Set<PeerKey>()
    let assembler: UtMetadata.Assembler | undefined
    let lastSource = now()

    const progress = () =>
      options.onProgress?.({
        peers: controls.size,
        sources: sources.size,
        received: assembler?.pieces.size ?? 0,
        total: assembler?.pieceCount ?? 0
      })

    const drop = (peer: PeerKey, why: string) => {
      swarm.markBanned(peer)
      controls.get(peer)?.close(why)
    }

    /** Asks every source for what the assembler gives it. */
    const pump = () => {
      if (assembler === undefined) return
      for (const peer of sources) {
        for (;;) {
          const [next, piece] = UtMetadata.nextRequest(assembler, peer, now())
          assembler = next
          if (piece === undefined) break
          if (!ext.sendMetadata(peer, UtMetadata.Request({ piece }))) break
        }
      }
    }

    const ext = Extensions.make({
      metadata: () => undefined,
      isPrivate: false,
      listenPort: options.listenPort,
      externalPort: options.externalPort,
      clientName: config.clientName,
      reqq: config.maxPipeline,
      onPeers: (_from, found) => {
        for (const p of found) swarm.add(p.ip, p.port, "pex")
      },
      onHandshake: (peer, h) => {
        const size = h.metadataSize
        if (size === undefined || !h.m.has(ExtensionHandshake.UtMetadata) || h.m.get(ExtensionHandshake.UtMetadata) === 0) {
          return
        }
        // The first source's size is fetched; a peer announcing another size gets its data refused as invalid.
        if (assembler === undefined) {
          const made = UtMetadata.make(options.infoHash, size, { ...UtMetadata.defaultOptions, ...options.assembler })
          if (Either.isLeft(made)) return drop(peer, `metadata_size ${size}: ${made.left.message}`)
          assembler = made.right
        }
        sources.add(peer)
        lastSource = now()
        pump()
        progress()
      },
      onMetadata: (peer, m) => {
        if (assembler === undefined) return
        if (m._tag === "Reject") {
          assembler = UtMetadata.onReject(assembler, peer, m.piece, now())
          return pump()
        }
        if (m._tag !== "Data") return
        const [next, outcome] = UtMetadata.onData(assembler, peer, m.piece, m.totalSize, m.bytes)
        assembler = next
        switch (outcome._tag) {
          case "Done":
            Deferred.unsafeDone(done, Effect.succeed(outcome.info))
            return
          case "Invalid":
            drop(peer, `bad metadata: ${outcome.detail}`)
            break
          case "Failed":
            if (outcome.liar !== undefined) drop(outcome.liar, "sent metadata that does not match the info-hash")
            break
          case "Pending":
            break
        }
        progress()
        pump()
      }
    }, now)

    const handle: TorrentHandle = {
      infoHash: options.infoHash,
      peerId: options.peerId,
      pieceCount: 0,
      metadataOnly: true,
      features: { fast: true, extensionProtocol: true, dht: options.dht !== undefined },
      bitfield: () => Bitfield.make(0),
      extensionHandshake: ext.handshake,
      dhtPort: options.dht?.local.port,
      onConnected: (peer, info, control) => {
        controls.set(peer, control)
        ext.connected(peer, info, control)
        progress()
      },
      onPeerBitfield: () => false,
      onPeerHave: () => false,
      onPeerHaveAll: () => false,
      onPeerHaveNone: () => false,
      nextRequests: () => [],
      blockBuffer: () => undefined,
      onBlock: () => false,
      onChoked: () => {},
      onUnchoked: () => {},
      onReturned: () => {},
      onRequestTimeout: () => {},
      onClosed: (peer) => {
        controls.delete(peer)
        sources.delete(peer)
        ext.closed(peer)
        if (assembler !== undefined) assembler = UtMetadata.peerLeft(assembler, peer)
        pump()
        progress()
      },
      onExtended: ext.onExtended
    }

    const swarm = yield* Swarm.make({
      handle,
      maxPeers: options.maxPeers ?? 30,
      peerConfig: options.peerConfig,
      dial: options.dial,
      encryption: options.encryption,
      reconnect: redial,
      reconnectKnown: redial,
      restartBackoffOnConnect: false,
      retryGivenUp: false,
      close: (peer, why) => controls.get(peer)?.close(why)
    })
    for (const p of options.peers ?? []) swarm.add(p.host, p.port, p.source ?? "manual")

    const ticker = Effect.gen(function*() {
      for (;;) {
        yield* Effect.sleep(Duration.seconds(1))
        pump()
        progress()
        ext.tick(now())
        if (sources.size > 0) lastSource = now()
        else if (!swarm.trackerAnswered() && now() - lastSource >= noPeersMs) {
          const detail = `no peer sent the metadata of this magnet link within ${
            Duration.format(Duration.millis(noPeersMs))
          }`
          Deferred.unsafeDone(done, Effect.fail(new TorrentError({ reason: "no-peers", detail })))
          return
        }
      }
    })

    const tiers = options.trackers ?? []
    const announces = swarm.announce({
      tiers,
      infoHash: options.infoHash,
      peerId: options.peerId,
      port: options.port ?? 6881,
      stats: { uploaded: Effect.succeed(0), downloaded: Effect.succeed(0), left: Effect.succeed(16 * 1024) }
    })

    yield* swarm.start
    yield* Effect.forkScoped(ticker)
    if (tiers.length > 0) yield* Effect.forkScoped(announces)
    if (options.dht !== undefined) {
      yield* Effect.forkScoped(swarm.dht(options.dht, {
        infoHash: options.infoHash,
        interval: () => options.dhtInterval ?? Duration.seconds(sources.size === 0 ? 15 : 60)
      }))
    }
    if (options.lsd !== undefined) yield* options.lsd.register(options.infoHash, (host, port) => swarm.add(host, port, "lsd"))
    const info = yield* Deferred.await(done)
    return { info, peers: swarm.addresses() }
  }))
