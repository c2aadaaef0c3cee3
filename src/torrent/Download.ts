/**
 * The download side of a torrent's byte path: the `TorrentHandle` its sessions call, the connected peers' records,
 * and the in-flight piece buffers.
 *
 * Sessions call the handle synchronously from their socket handlers (one JS thread, so no locks). The `Picker`
 * (set once the start-up check is over) is the single owner of piece state. Blocks are copied by the session
 * straight into pooled piece buffers (`blockBuffer`), once; a block is written by one session at a time. When
 * `onBlock` completes a piece it goes to `onPiece` (the finisher's mailbox): the only crossing into Effect, per
 * piece (THROUGHPUT.md rules 1–2).
 *
 * Besides: interest (`updateInterest` after anything that changes what peers can give us), cancels for endgame
 * losers, requests returned by chokes, rejects and timeouts, BEP 6 suggestions, per-peer choke state and 5 s rates
 * (`Torrent.peers`), and bytes accepted per peer address.
 */
import * as Bitfield from "../core/Bitfield.ts"
import type { PeerId } from "../core/InfoHash.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import type { BlockRef, PeerControl, PeerInfo, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import * as Picker from "../picker/Picker.ts"
import * as PiecePool from "../storage/PiecePool.ts"
import * as ClientName from "./ClientName.ts"
import * as Extensions from "./Extensions.ts"
import * as PeerSource from "./PeerSource.ts"
import * as RateMeter from "./RateMeter.ts"
import * as TorrentEvent from "./TorrentEvent.ts"

export interface Options {
  readonly metainfo: Pick<Metainfo.Metainfo, "infoHash" | "pieceCount" | "pieceLength" | "totalLength">
  readonly peerId: PeerId
  /** Verified pieces (our bitfield for the introductions). */
  readonly have: Bitfield.Bitfield
  readonly ext: Extensions.Extensions
  /** Our DHT node's port when the torrent uses the DHT (sets the handshake's DHT bit). */
  readonly dhtPort?: number | undefined
  /** BEP 52 `hash request`s answered from the torrent's trees (`Metainfo.hashServer`; sets the v2 bit). */
  readonly v2Hashes?: TorrentHandle["v2Hashes"]
  /** A hybrid's truncated v2 info-hash (with `v2Hashes`): peers may use it in their handshake. */
  readonly v2InfoHash?: TorrentHandle["v2InfoHash"]
  /** BEP 52 hash requests answered later (leaf-level ones, from the data). */
  readonly v2HashesLater?: TorrentHandle["v2HashesLater"]
  /** BEP 52 answers to our hash requests. */
  readonly onHashes?: TorrentHandle["onHashes"]
  /** Every wanted piece is verified: nothing is requested, nobody is interesting. */
  readonly finished: () => boolean
  /**
   * Idle piece buffers kept for reuse, in bytes (default 16 MiB). The torrent passes its buffer budget: buffers let go
   * when the backlog drains are allocated again when it fills, and freed ones stay in the process's heap meanwhile.
   */
  readonly idleBufferBytes?: number | undefined
  /**
   * A piece is complete in `data` (ownership passes): verify and write it. `senders[b]` sent block `b` (for BEP 52
   * per-block blame).
   */
  readonly onPiece: (index: number, data: Uint8Array, senders: ReadonlyArray<PeerKey | undefined>) => void
  /** The hash/write backlog holds reading now (a new session starts paused). */
  readonly paused: () => boolean
  /** A session's handshake checked out. */
  readonly onConnected: (peer: PeerKey) => void
  /** The sources that named a dialled peer (Swarm `origin`); absent or undefined: "manual". */
  readonly originOf?: ((peer: PeerKey) => PeerSource.Origin | undefined) | undefined
  /** A peer's BEP 5 `port` (its host as connected). */
  readonly onPeerPort: (host: string, port: number) => void
  readonly publish: (event: TorrentEvent.TorrentEvent) => void
}

/** A connected peer. */
export interface PeerRecord {
  readonly control: PeerControl
  readonly info: PeerInfo
  /** The remote host (for DHT pings on a `port` message). */
  readonly host: string
  /** We are interested in it. */
  interested: boolean
  /** It chokes us. */
  chokingUs: boolean
  /** Rates over the last seconds (sampled by the torrent's ticker). */
  readonly down: RateMeter.RateMeter
  readonly up: RateMeter.RateMeter
}

/** One connected peer, as `Torrent.peers()` shows it (the fields of the session's `TorrentInfo.PeerInfo`). */
export interface PeerStatus {
  /** `host:port` as dialled, or as an inbound peer connected from. */
  readonly address: string
  /** Its extension handshake's `v`, else its peer id's client code (ClientName.ts); "" when unknown. */
  readonly client: string
  readonly encryption: "rc4" | "plaintext" | "none"
  readonly incoming: boolean
  /** What carries the connection. */
  readonly transport: "tcp" | "utp"
  /** Where the peer came from first (PeerSource.ts); "incoming" for an inbound connection. */
  readonly source: PeerSource.PeerSource
  /** Every source that named it, `source` included. */
  readonly sources: ReadonlyArray<PeerSource.PeerSource>
  /** Bytes/s over the last 5 s. */
  readonly downloadRate: number
  readonly uploadRate: number
  /** Payload bytes of this connection. */
  readonly downloaded: number
  readonly uploaded: number
  /** Share of the pieces it has, 0..1. */
  readonly progress: number
  /** We choke it. */
  readonly choked: boolean
  /** It chokes us. */
  readonly chokingUs: boolean
  /** We are interested in it. */
  readonly interested: boolean
  /** It is interested in us. */
  readonly interestedInUs: boolean
}

/** What the uploader knows of a connected peer (Uploader.ts `peer`). */
export type UploadView = (peer: PeerKey) => {
  readonly amChoking: boolean
  readonly interested: boolean
  readonly downloaded: number
  readonly uploaded: number
  readonly pieces: number
} | undefined

export interface Download {
  readonly handle: TorrentHandle
  readonly picker: () => Picker.Picker | undefined
  /** The picker, once the start-up check is over. */
  readonly setPicker: (picker: Picker.Picker) => void
  readonly peers: ReadonlyMap<PeerKey, PeerRecord>
  /** Piece buffers (the finisher gives them back after the write). */
  readonly pool: PiecePool.PiecePool
  /** Bytes of the buffers of pieces in flight (partly received). */
  readonly inFlightBytes: () => number
  /** Sessions should ask for requests again. */
  readonly kickAll: () => void
  /** Tells every peer whether we are interested in it now. */
  readonly updateInterest: () => void
  readonly sendCancels: (cancels: ReadonlyArray<Picker.PeerRequest>) => void
  /** Pause (or resume) reading from every session. */
  readonly setPaused: (paused: boolean) => void
  /** Forgets a dropped partial piece's buffer (not pooled again: a session may still be copying into it). */
  readonly dropSlot: (index: number) => void
  /**
   * BEP 52 per-block blame: piece `index` is in flight again (Picker `pieceFailedBlocks`) with its good blocks
   * kept in `buf` (`received[b]` 1), the others to be fetched into it. `senders` of the kept blocks stay known.
   */
  readonly restoreSlot: (
    index: number,
    buf: Uint8Array,
    received: Uint8Array,
    senders: ReadonlyArray<PeerKey | undefined>
  ) => void
  /** Payload bytes of accepted blocks. */
  readonly downloaded: () => number
  /** Accepted bytes per peer address in this run, peers gone since included; most first. */
  readonly downloadedFrom: () => ReadonlyArray<{ address: string; bytes: number }>
  /** Every connected peer, with the uploader's side of it. */
  readonly statuses: (upload: UploadView) => ReadonlyArray<PeerStatus>
  /** Samples every peer's byte counters for its rates (about once a second). */
  readonly sampleRates: (
    now: number,
    counters: (peer: PeerKey) => { readonly downloaded: number; readonly uploaded: number } | undefined
  ) => void
}

const BLOCK = Picker.BLOCK

/** Per in-flight piece: its pooled buffer, which blocks are in, and which session is copying each block. */
interface Slot {
  readonly buf: Uint8Array
  readonly received: Uint8Array
  readonly writers: Array<PeerKey | undefined>
  /** Who sent each received block. */
  readonly senders: Array<PeerKey | undefined>
}

export const make = (options: Options): Download => {
  const m = options.metainfo
  const have = options.have
  const ext = options.ext
  const finished = options.finished
  const publish = options.publish
  const pieceSize = (i: number) => Math.min(m.pieceLength, m.totalLength - i * m.pieceLength)
  let picker: Picker.Picker | undefined
  const slots = new Map<number, Slot>()
  // Idle piece buffers kept for reuse, bounded in bytes (big pieces, 4–16 MiB, keep that many bytes, not that many
  // pieces). The torrent passes its buffer budget (the pieces in flight and waiting for hash/write stay within it), so
  // a backlog that drains and fills again reuses its buffers: with 16 MiB kept of a 24 MiB backlog plus the pieces in
  // flight, four seeders made 162 allocations of 1 MiB per GiB and a 165–183 MiB peak (docs/PERFORMANCE.md).
  const idleBytes = options.idleBufferBytes ?? 16 * 1024 * 1024
  const pool = PiecePool.make({ maxFree: Math.max(16, Math.ceil(idleBytes / Math.max(1, m.pieceLength))), maxFreeBytes: idleBytes })
  const peers = new Map<PeerKey, PeerRecord>()
  let downloaded = 0
  /** Accepted payload bytes per peer key, kept after the peer left. */
  const downloadedBy = new Map<PeerKey, number>()
  /** BEP 6 suggestions per peer (latest last, bounded). */
  const suggested = new Map<PeerKey, Array<number>>()

  const kickAll = () => {
    for (const r of peers.values()) r.control.requestMore()
  }
  const updateInterest = () => {
    if (picker === undefined) return
    for (const [key, r] of peers) {
      const i = !finished() && picker.isInteresting(key)
      if (i !== r.interested) {
        r.interested = i
        r.control.setInterested(i)
      }
    }
  }
  const sendCancels = (cancels: ReadonlyArray<Picker.PeerRequest>) => {
    for (const c of cancels) peers.get(c.peer)?.control.cancel([{ index: c.piece, begin: c.begin, length: c.length }])
  }
  const interesting = (peer: PeerKey): boolean => {
    const i = picker !== undefined && !finished() && picker.isInteresting(peer)
    const r = peers.get(peer)
    if (r !== undefined) r.interested = i
    return i
  }
  const returnBlocks = (peer: PeerKey, blocks: ReadonlyArray<BlockRef>) => {
    if (picker === undefined) return
    for (const b of blocks) picker.requestRejected(peer, b.index, b.begin)
    if (blocks.length > 0) kickAll()
  }
  /** Whether a session other than `peer` is copying block `begin` of piece `index` into its buffer now. */
  const isBeingCopied = (peer: PeerKey, index: number, begin: number): boolean => {
    const w = slots.get(index)?.writers[Math.floor(begin / BLOCK)]
    return w !== undefined && w !== peer
  }
  const setPaused = (p: boolean) => {
    for (const r of peers.values()) p ? r.control.pauseReading() : r.control.resumeReading()
  }

  /** Inbound peers came by themselves; a web seed is its own source; a dialled one as the swarm says. */
  const originOf = (peer: PeerKey, info: PeerInfo): PeerSource.Origin =>
    info.webSeed === true
      ? PeerSource.note(undefined, "webseed")
      : info.direction === "inbound"
      ? PeerSource.note(undefined, "incoming")
      : options.originOf?.(peer) ?? PeerSource.note(undefined, "manual")

  const handle: TorrentHandle = {
    infoHash: m.infoHash,
    peerId: options.peerId,
    pieceCount: m.pieceCount,
    features: { fast: true, extensionProtocol: true, dht: options.dhtPort !== undefined },
    v2Hashes: options.v2Hashes,
    v2InfoHash: options.v2InfoHash,
    v2HashesLater: options.v2HashesLater,
    onHashes: options.onHashes,
    bitfield: () => Bitfield.copy(have),
    extensionHandshake: ext.handshake,
    dhtPort: options.dhtPort,
    onExtended: ext.onExtended,
    onPeerPort: (peer, port) => {
      const host = peers.get(peer)?.host
      if (options.dhtPort !== undefined && host !== undefined && host !== "") options.onPeerPort(host, port)
    },
    onSuggest: (peer, index) => {
      const list = suggested.get(peer) ?? []
      if (list.includes(index)) return
      list.push(index)
      if (list.length > 16) list.shift()
      suggested.set(peer, list)
    },
    onConnected: (peer, info, control) => {
      picker?.peerJoined(peer)
      peers.set(peer, {
        control,
        info,
        host: Extensions.normalizeHost(info.remote.host),
        interested: false,
        chokingUs: true,
        down: RateMeter.make(),
        up: RateMeter.make()
      })
      ext.connected(peer, info, control)
      options.onConnected(peer)
      if (options.paused()) control.pauseReading()
      const o = originOf(peer, info)
      publish(TorrentEvent.PeerConnected({
        addr: peer,
        encryption: info.encryption,
        transport: info.transport ?? "tcp",
        source: o.first,
        sources: PeerSource.toArray(o.flags)
      }))
    },
    onPeerBitfield: (peer, bf) => {
      picker?.peerBitfield(peer, bf)
      return interesting(peer)
    },
    onPeerHave: (peer, index) => {
      picker?.peerHave(peer, index)
      return interesting(peer)
    },
    onPeerHaveAll: (peer) => {
      picker?.peerHaveAll(peer)
      return interesting(peer)
    },
    onPeerHaveNone: (peer) => {
      picker?.peerHaveNone(peer)
      return interesting(peer)
    },
    nextRequests: (peer, max, only) => {
      if (picker === undefined || finished()) return []
      // a web seed takes no endgame duplicates: it would fetch whole ranges twice (WebSeed.ts)
      const noDuplicates = peers.get(peer)?.info.webSeed === true
      const reqs = picker.nextRequests(peer, max, { only, prefer: suggested.get(peer), noDuplicates })
      const out: Array<BlockRef> = []
      for (const r of reqs) {
        // Another session is copying this block into the piece buffer now (its message half read, e.g. its reading
        // paused by the download limit): `blockBuffer` refuses this peer's copy until that one is done, so asking
        // would only fetch bytes to throw away. In endgame such a duplicate used to be asked for again after every
        // block, at the line rate: the download limit stayed spent on discarded copies and the session holding the
        // block was hardly ever read again (a throttled download stuck at its last piece, interop.aria2.test.ts).
        if (isBeingCopied(peer, r.piece, r.begin)) picker.requestRejected(peer, r.piece, r.begin)
        else out.push({ index: r.piece, begin: r.begin, length: r.length })
      }
      return out
    },
    blockBuffer: (peer, index, begin, length) => {
      if (picker === undefined || picker.pieceState(index) !== "InFlight" || begin % BLOCK !== 0) return undefined
      const size = pieceSize(index)
      if (length !== Math.min(BLOCK, size - begin)) return undefined
      let slot = slots.get(index)
      if (slot === undefined) {
        const blocks = Math.ceil(size / BLOCK)
        slot = {
          buf: pool.acquire(size),
          received: new Uint8Array(blocks),
          writers: new Array(blocks),
          senders: new Array(blocks)
        }
        slots.set(index, slot)
      }
      const b = begin / BLOCK
      if (slot.received[b] === 1) return undefined
      const w = slot.writers[b]
      if (w !== undefined && w !== peer) return undefined
      slot.writers[b] = peer
      return slot.buf
    },
    onBlock: (peer, index, begin, length) => {
      if (picker === undefined) return false
      const slot = slots.get(index)
      const b = Math.floor(begin / BLOCK)
      if (slot === undefined || slot.writers[b] !== peer || begin % BLOCK !== 0) {
        // We did not give this session the buffer, so its bytes were not copied: never let the picker count the
        // block as received from it (another session may have been copying it and since left).
        if (slot !== undefined && slot.received[b] === 1) {
          sendCancels(picker.blockReceived(peer, index, begin, length).cancels)
        } else picker.requestRejected(peer, index, begin)
        return false
      }
      slot.writers[b] = undefined
      const r = picker.blockReceived(peer, index, begin, length)
      sendCancels(r.cancels)
      if (r.kind === "ignored") return false
      slot.received[b] = 1
      slot.senders[b] = peer
      downloaded += length
      downloadedBy.set(peer, (downloadedBy.get(peer) ?? 0) + length)
      if (r.kind === "piece-complete") {
        slots.delete(index)
        options.onPiece(index, slot.buf, slot.senders)
      }
      return true
    },
    onChoked: (peer, blocks) => {
      const r = peers.get(peer)
      if (r !== undefined) r.chokingUs = true
      returnBlocks(peer, blocks)
    },
    onUnchoked: (peer) => {
      const r = peers.get(peer)
      if (r !== undefined) r.chokingUs = false
    },
    onReturned: returnBlocks,
    onRequestTimeout: (peer, blocks) => {
      if (picker === undefined) return
      for (const b of blocks) picker.requestTimedOut(peer, b.index, b.begin)
      kickAll()
    },
    onClosed: (peer, error, _outstanding) => {
      if (!peers.has(peer)) return
      peers.delete(peer)
      ext.closed(peer)
      suggested.delete(peer)
      picker?.peerLeft(peer)
      for (const slot of slots.values()) {
        for (let i = 0; i < slot.writers.length; i++) if (slot.writers[i] === peer) slot.writers[i] = undefined
      }
      publish(TorrentEvent.PeerDisconnected({ addr: peer, reason: `${error.reason}: ${error.detail}` }))
      kickAll()
    }
  }

  return {
    handle,
    picker: () => picker,
    setPicker: (p) => {
      picker = p
    },
    peers,
    pool,
    inFlightBytes: () => {
      let n = 0
      for (const slot of slots.values()) n += slot.buf.byteLength
      return n
    },
    kickAll,
    updateInterest,
    sendCancels,
    setPaused,
    dropSlot: (index) => void slots.delete(index),
    restoreSlot: (index, buf, received, senders) => {
      slots.set(index, { buf, received, writers: new Array(received.length), senders: [...senders] })
    },
    downloaded: () => downloaded,
    downloadedFrom: () =>
      [...downloadedBy].map(([address, bytes]) => ({ address, bytes })).sort((a, b) => b.bytes - a.bytes),
    statuses: (upload) => {
      const out: Array<PeerStatus> = []
      for (const [key, r] of peers) {
        const v = upload(key)
        const o = originOf(key, r.info)
        out.push({
          address: key,
          client: r.info.webSeed === true ? "web seed" : ClientName.of(ext.handshakeOf(key)?.v, r.info.peerId),
          encryption: r.info.encryption,
          incoming: r.info.direction === "inbound",
          transport: r.info.transport ?? "tcp",
          source: o.first,
          sources: PeerSource.toArray(o.flags),
          downloadRate: RateMeter.rate(r.down),
          uploadRate: RateMeter.rate(r.up),
          downloaded: v?.downloaded ?? 0,
          uploaded: v?.uploaded ?? 0,
          progress: m.pieceCount === 0 ? 0 : (v?.pieces ?? 0) / m.pieceCount,
          choked: v?.amChoking ?? true,
          chokingUs: r.chokingUs,
          interested: r.interested,
          interestedInUs: v?.interested ?? false
        })
      }
      return out
    },
    sampleRates: (now, counters) => {
      for (const [key, r] of peers) {
        const v = counters(key)
        if (v === undefined) continue
        RateMeter.sample(r.down, now, v.downloaded)
        RateMeter.sample(r.up, now, v.uploaded)
      }
    }
  }
}
