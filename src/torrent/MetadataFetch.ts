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
 * A `btmh` magnet (BEP 52) is fetched the same way over its truncated v2 info-hash, and the info dict's SHA-256
 * must be the full v2 hash (with `btih` too, a hybrid's, its SHA-1 as well). A v2 or hybrid torrent's `piece
 * layers` are not in the info dict: once it is in, the same sessions (whose handshake set the v2 bit) ask for
 * each file's piece layer with `hash request`s (`LayerFetch.ts`: proofs verified against the file roots, retries
 * elsewhere on reject or timeout, a peer sending a bad proof dropped and banned). Without them a v2-only torrent
 * cannot verify a piece of a file longer than a piece, so the fetch waits for them (and fails like a metadata
 * fetch when no peer sent any for `noPeersTimeout`); a hybrid goes on without them after that long (its SHA-1s
 * still check every piece).
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
import * as Metainfo from "../metainfo/Metainfo.ts"
import * as TorrentFile from "../metainfo/TorrentFile.ts"
import type * as PeerSession from "../peer/PeerSession.ts"
import * as PeerState from "../peer/PeerState.ts"
import type { PeerControl, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import type { Tracker } from "../tracker/Tracker.ts"
import * as ExtensionHandshake from "../wire/ExtensionHandshake.ts"
import * as UtMetadata from "../wire/UtMetadata.ts"
import * as Extensions from "./Extensions.ts"
import type * as PeerSource from "./PeerSource.ts"
import * as LayerFetch from "./LayerFetch.ts"
import * as Swarm from "./Swarm.ts"
import { TorrentError } from "./TorrentError.ts"

export interface Options {
  /** The swarm's id in handshakes, announces and the DHT: a v1 info-hash, or a v2 one truncated to 20 bytes. */
  readonly infoHash: InfoHashV1
  /** The hashes the info dict must have (default: its SHA-1 is `infoHash`). */
  readonly expected?: UtMetadata.Expected | undefined
  /**
   * A hybrid's truncated v2 info-hash when `infoHash` is its v1 one (a magnet with both): peers may upgrade the
   * handshake to it (BEP 52).
   */
  readonly v2InfoHash?: InfoHashV1 | undefined
  /** Options of the piece-layer fetch (`LayerFetch.ts`). */
  readonly layerFetch?: Partial<LayerFetch.Options> | undefined
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
  /** The info dict's bytes, whose SHA-1 is the info-hash (SHA-256 for a v2 one). */
  readonly info: Uint8Array
  /**
   * BEP 52: the piece layers fetched from peers, by `pieces root` (hex), every one verified against its root. Empty
   * for a v1 torrent, and for a hybrid whose layers no peer sent.
   */
  readonly pieceLayers: ReadonlyMap<string, Uint8Array>
  /** Every peer address learned, to dial again for the download. */
  readonly peers: ReadonlyArray<PeerSource.Address>
}

/** Between the three dials of a peer: 1 s, then 4 s. */
const redial: Schedule.Schedule<unknown> = Schedule.fromDelays(Duration.seconds(1), Duration.seconds(4))

export const fetch = (options: Options): Effect.Effect<Fetched, TorrentError, Scope.Scope | Tracker> =>
  Effect.scoped(Effect.gen(function*() {
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const done = yield* Deferred.make<
      { readonly info: Uint8Array; readonly pieceLayers: ReadonlyMap<string, Uint8Array> },
      TorrentError
    >()
    const expected: UtMetadata.Expected = options.expected ?? { v1: options.infoHash }
    /** The fetch may ask for piece layers: our handshake sets the v2 bit (so answers are decoded). */
    const v2 = expected.v2 !== undefined
    const noPeersMs = Duration.toMillis(options.noPeersTimeout ?? Duration.seconds(60))
    const config = PeerState.config(options.peerConfig)

    const controls = new Map<PeerKey, PeerControl>()
    /** Peers that offered ut_metadata with a size: the ones to ask. */
    const sources = new Set<PeerKey>()
    let assembler: UtMetadata.Assembler | undefined
    let lastSource = now()
    /** The info dict is in. */
    let gotInfo = false
    /** Once the info dict is in and piece layers are missing. */
    let layerPhase: { info: Uint8Array; fetch: LayerFetch.State; hybrid: boolean; lastProgress: number } | undefined

    const finish = (info: Uint8Array, pieceLayers: ReadonlyMap<string, Uint8Array>) =>
      Deferred.unsafeDone(done, Effect.succeed({ info, pieceLayers }))

    /** Asks connected peers for piece layers (`peer`: only that one). */
    const pumpLayers = (only?: PeerKey) => {
      const phase = layerPhase
      if (phase === undefined) return
      for (const [peer, control] of controls) {
        if (only !== undefined && peer !== only) continue
        const [next, requests] = LayerFetch.nextRequests(phase.fetch, peer, now())
        phase.fetch = next
        for (const r of requests) control.requestHashes?.(r)
      }
    }

    /** The info dict checked out: done, or on to its piece layers (no more metadata is asked meanwhile). */
    const onInfo = (info: Uint8Array) => {
      gotInfo = true
      assembler = undefined
      if (!v2) return finish(info, new Map())
      const decoded = Metainfo.decode(TorrentFile.encode(info), { v2Only: true })
      // not a valid torrent: the caller reports it
      if (Either.isLeft(decoded) || decoded.right.version === "v1") return finish(info, new Map())
      const m = decoded.right
      const files = m.files.flatMap((f) =>
        f.piecesRoot !== undefined && f.length > m.pieceLength && f.pieceLayer === undefined
          ? [{ piecesRoot: f.piecesRoot, length: f.length }]
          : []
      )
      if (files.length === 0) return finish(info, new Map())
      layerPhase = {
        info,
        fetch: LayerFetch.make(files, m.pieceLength, options.layerFetch),
        hybrid: m.version === "hybrid",
        lastProgress: now()
      }
      pumpLayers()
    }

    const onHashes: NonNullable<TorrentHandle["onHashes"]> = (peer, answer) => {
      const phase = layerPhase
      if (phase === undefined) return
      if (answer._tag === "HashReject") {
        phase.fetch = LayerFetch.onReject(phase.fetch, peer, answer, now())
        return pumpLayers()
      }
      const [next, outcome] = LayerFetch.onHashes(phase.fetch, peer, answer, answer.hashes)
      phase.fetch = next
      if (outcome._tag === "Bad") drop(peer, `bad piece-layer proof: ${outcome.detail}`)
      if (outcome._tag === "Accepted") {
        phase.lastProgress = now()
        const layers = LayerFetch.layers(phase.fetch)
        if (layers !== undefined) return finish(phase.info, layers)
      }
      pumpLayers()
    }

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
        if (gotInfo) return
        if (assembler === undefined) {
          const made = UtMetadata.make(expected, size, { ...UtMetadata.defaultOptions, ...options.assembler })
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
            onInfo(outcome.info)
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
      v2InfoHash: options.v2InfoHash,
      peerId: options.peerId,
      // BEP 52: the v2 bit, so peers answer (and we decode) hash requests; theirs are rejected (we have nothing yet)
      v2Hashes: v2 ? () => undefined : undefined,
      onHashes,
      pieceCount: 0,
      metadataOnly: true,
      features: { fast: true, extensionProtocol: true, dht: options.dht !== undefined },
      bitfield: () => Bitfield.make(0),
      extensionHandshake: ext.handshake,
      dhtPort: options.dht?.local.port,
      onConnected: (peer, info, control) => {
        controls.set(peer, control)
        ext.connected(peer, info, control)
        pumpLayers(peer)
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
        if (layerPhase !== undefined) layerPhase.fetch = LayerFetch.peerLeft(layerPhase.fetch, peer)
        pump()
        pumpLayers()
        progress()
      },
      onExtended: ext.onExtended
    }

    const swarm = yield* Swarm.make({
      handle,
      v2Swarm: options.v2InfoHash,
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
        const phase = layerPhase
        if (phase !== undefined) {
          const [next, late] = LayerFetch.expire(phase.fetch, now())
          phase.fetch = next
          if (late.length > 0) yield* Effect.logDebug(`piece-layer requests timed out at ${late.join(", ")}`)
          pumpLayers()
          if (now() - phase.lastProgress < noPeersMs) continue
          const files = phase.fetch.files.length
          if (phase.hybrid) {
            yield* Effect.logWarning(
              `no peer sent the piece layers of ${files} file(s) within ${Duration.format(Duration.millis(noPeersMs))}: ` +
                "going on with the hybrid's SHA-1 piece hashes alone"
            )
            finish(phase.info, new Map())
          } else {
            const detail = `no peer sent the piece layers (BEP 52 hashes) of ${files} file(s) of this v2 torrent within ${
              Duration.format(Duration.millis(noPeersMs))
            }`
            Deferred.unsafeDone(done, Effect.fail(new TorrentError({ reason: "no-peers", detail })))
          }
          return
        }
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
    // a hybrid's magnet with both hashes: asked in both swarms (as libtorrent does)
    const swarmIds = options.v2InfoHash === undefined ? [options.infoHash] : [options.infoHash, options.v2InfoHash]
    const announcesOf = (infoHash: InfoHashV1) =>
      swarm.announce({
        tiers,
        infoHash,
        peerId: options.peerId,
        port: options.port ?? 6881,
        stats: { uploaded: Effect.succeed(0), downloaded: Effect.succeed(0), left: Effect.succeed(16 * 1024) }
      })

    yield* swarm.start
    yield* Effect.forkScoped(ticker)
    for (const infoHash of swarmIds) {
      if (tiers.length > 0) yield* Effect.forkScoped(announcesOf(infoHash))
      if (options.dht !== undefined) {
        yield* Effect.forkScoped(swarm.dht(options.dht, {
          infoHash,
          interval: () => options.dhtInterval ?? Duration.seconds(sources.size === 0 ? 15 : 60)
        }))
      }
    }
    if (options.lsd !== undefined) yield* options.lsd.register(options.infoHash, (host, port) => swarm.add(host, port, "lsd"))
    const got = yield* Deferred.await(done)
    return { ...got, peers: swarm.addresses() }
  }))
