/**
 * The BEP 10 extensions of one torrent's sessions: our extension handshake, each peer's registry of extension
 * ids, `ut_metadata` (BEP 9: serving our info dict, and handing data to a metadata fetch) and `ut_pex` (BEP 11).
 *
 * Plain synchronous JavaScript called from the sessions' handlers (TorrentHandle), like the rest of the torrent's
 * peer bookkeeping; nothing here is on the per-block path.
 *
 * - Our handshake: `m` = {ut_metadata: 1, ut_pex: 2} (no ut_pex for a private torrent, BEP 27), `v`, `p` (our
 *   listening port), `reqq`, `yourip` (the peer's address as we see it) and `metadata_size` when we have the info.
 * - ut_metadata requests are answered from the info dict when we have it (a reject otherwise), at most
 *   `3 × pieces` data messages per connection (a peer asking for more gets rejects: it is wasting our upload).
 * - PEX: every peer with a known listening address (an outbound connection's address, or an inbound one's host
 *   with the `p` of its handshake) is offered to the others with `UtPex.tick` (at most once a minute per
 *   connection, bounded, a peer never both added and dropped); peers arriving in a peer's ut_pex go to `onPeers`,
 *   at most one message per peer every 30 s is taken (a flood is ignored, not trusted). Flags we send: seed
 *   (BEP 21 upload_only), prefers encryption (it spoke MSE with us), uTP (the connection is uTP), holepunch (its
 *   handshake has ut_holepunch), reachable (we dialled it — but not when the connection exists only because a relay
 *   had us punch through to it).
 * - ut_holepunch (BEP 55, policy in Holepunch.ts): as the relay, a rendezvous for a connected peer that speaks
 *   ut_holepunch gets `connect` to both (each told the other's address), otherwise `error` (NoSuchPeer for an
 *   address that is no endpoint, NoSelf for the asker itself or us, NotConnected, NoSupport); as the initiator,
 *   `dialFailed` sends a rendezvous through an introducer of the address; a `connect` goes to `onPunch` (dial it).
 *   Not for a private torrent (no PEX there, so no introductions).
 */
import * as Either from "effect/Either"
import * as Destination from "../net/Destination.ts"
import type { PeerControl, PeerInfo, PeerKey } from "../peer/TorrentHandle.ts"
import * as ExtensionHandshake from "../wire/ExtensionHandshake.ts"
import * as UtHolepunch from "../wire/UtHolepunch.ts"
import * as UtMetadata from "../wire/UtMetadata.ts"
import * as UtPex from "../wire/UtPex.ts"
import * as Holepunch from "./Holepunch.ts"

export interface Host {
  readonly host: string
  readonly port: number
}

export interface Options {
  /** The raw info dict when known (served over ut_metadata; its size goes in our handshake). */
  readonly metadata: () => Uint8Array | undefined
  readonly isPrivate: boolean
  /** Our listening port (the `p` of our handshake), when we listen. */
  readonly listenPort?: number | undefined
  /** The port the router maps to it (port mapping), sent as `p` instead while defined. */
  readonly externalPort?: (() => number | undefined) | undefined
  readonly clientName: string
  /** Requests we accept in flight (`reqq`). */
  readonly reqq: number
  /** Peers learned through PEX (already bounded by the codec). */
  readonly onPeers: (from: PeerKey, peers: ReadonlyArray<UtPex.PexPeer>) => void
  /** A peer's extension handshake arrived (e.g. its `metadata_size`, for a metadata fetch). */
  readonly onHandshake?: ((peer: PeerKey, handshake: ExtensionHandshake.ExtensionHandshake) => void) | undefined
  /** A ut_metadata data or reject message (for a metadata fetch; requests are answered here). */
  readonly onMetadata?: ((peer: PeerKey, message: UtMetadata.Message) => void) | undefined
  /** BEP 55: a relay told us to connect to `to` (over uTP, at once). */
  readonly onPunch?: ((from: PeerKey, to: Host) => void) | undefined
  /** BEP 55: one line of what happened (relayed, asked, answered), for the log. */
  readonly onHolepunchLog?: ((line: string) => void) | undefined
  /** BEP 55 limits (Holepunch.defaults otherwise). */
  readonly holepunch?: Partial<Holepunch.Config> | undefined
}

interface PeerExt {
  readonly control: PeerControl
  readonly info: PeerInfo
  registry: ExtensionHandshake.Registry
  handshake: ExtensionHandshake.ExtensionHandshake | undefined
  pex: UtPex.PexState
  lastPexIn: number | undefined
  served: number
}

export interface Extensions {
  /** Our extension handshake payload for a peer at `remote`. */
  readonly handshake: (peer: PeerKey, remote: Host) => Uint8Array
  readonly connected: (peer: PeerKey, info: PeerInfo, control: PeerControl) => void
  readonly closed: (peer: PeerKey) => void
  readonly onExtended: (peer: PeerKey, id: number, payload: Uint8Array) => void
  /** Sends due PEX messages (call every few seconds; each connection gets one at most once a minute). */
  readonly tick: (now: number) => void
  /** The peer's handshake, once received. */
  readonly handshakeOf: (peer: PeerKey) => ExtensionHandshake.ExtensionHandshake | undefined
  /** Sends a ut_metadata message to the peer; false when it has not enabled ut_metadata. */
  readonly sendMetadata: (peer: PeerKey, message: UtMetadata.Message) => boolean
  /** The listening address of a connected peer, when known. */
  readonly listenAddress: (peer: PeerKey) => Host | undefined
  /**
   * BEP 55 initiator: dialling `to` failed; sends a rendezvous through one of its introducers when the policy
   * allows. Returns the relay asked, if any.
   */
  readonly dialFailed: (to: Host) => PeerKey | undefined
  readonly holepunchStats: () => Holepunch.Stats
}

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) as `1.2.3.4`. */
export const normalizeHost = (host: string): string => {
  const h = host.toLowerCase()
  return h.startsWith("::ffff:") && h.includes(".") ? h.slice(7) : h
}

/** A peer's address as the 4 or 16 bytes of BEP 10 `yourip`, or undefined for a host that is not an address. */
export const addressBytes = (host: string): Uint8Array | undefined => {
  const c = UtPex.compact({ ip: normalizeHost(host), port: 1 })
  return c === undefined ? undefined : c.subarray(0, c.length - 2)
}

const PEX_IN_INTERVAL = 30_000

/** The text of 4 or 16 address bytes. */
const ipText = (b: Uint8Array): string => UtPex.fromCompact(Uint8Array.from([...b, 0, 1]))?.ip ?? ""

export const make = (options: Options, now: () => number): Extensions => {
  const registry = options.isPrivate
    ? ExtensionHandshake.makeRegistry([ExtensionHandshake.UtMetadata])
    : ExtensionHandshake.defaultRegistry()
  const peers = new Map<PeerKey, PeerExt>()
  const holepunch = Holepunch.make(options.holepunch)
  const hpLog = options.onHolepunchLog ?? (() => {})

  const listenAddress = (p: PeerExt): Host | undefined => {
    const remote = p.info.remote
    if (remote.host === "" || p.info.webSeed === true) return undefined // an HTTP server is no peer to hand out
    if (p.info.direction === "outbound") return { host: normalizeHost(remote.host), port: remote.port }
    const port = p.handshake?.p
    return port === undefined ? undefined : { host: normalizeHost(remote.host), port }
  }

  const send = (p: PeerExt, name: string, payload: Uint8Array): boolean => {
    const id = ExtensionHandshake.theirId(p.registry, name)
    if (id === undefined) return false
    p.control.sendExtended(id, payload)
    return true
  }

  const onMetadataMessage = (peer: PeerKey, p: PeerExt, payload: Uint8Array) => {
    const decoded = UtMetadata.decode(payload)
    if (Either.isLeft(decoded)) return // unknown msg_type or garbage: BEP 9 says ignore
    const m = decoded.right
    if (m._tag === "Request") {
      const info = options.metadata()
      const limit = info === undefined ? 0 : 3 * UtMetadata.piecesOf(info)
      const answer = p.served < limit ? UtMetadata.answer(info, m.piece) : UtMetadata.Reject({ piece: m.piece })
      if (answer._tag === "Data") p.served++
      send(p, ExtensionHandshake.UtMetadata, UtMetadata.encode(answer))
      return
    }
    options.onMetadata?.(peer, m)
  }

  const onPexMessage = (peer: PeerKey, p: PeerExt, payload: Uint8Array) => {
    if (options.isPrivate) return
    const t = now()
    if (p.lastPexIn !== undefined && t - p.lastPexIn < PEX_IN_INTERVAL) return
    p.lastPexIn = t
    const decoded = UtPex.decode(payload)
    if (Either.isLeft(decoded)) return
    holepunch.introduced(peer, decoded.right.added)
    if (decoded.right.added.length > 0) options.onPeers(peer, decoded.right.added)
  }

  const speaksHolepunch = (p: PeerExt) => ExtensionHandshake.theirId(p.registry, ExtensionHandshake.UtHolepunch) !== undefined
  const sameEndpoint = (a: Host | undefined, b: UtPex.Endpoint) =>
    a !== undefined && a.port === b.port && normalizeHost(a.host) === b.ip
  /**
   * Where the other peer should send its uTP SYN to reach `p`: for a peer that dialled us over uTP, the far end of
   * that connection (its NAT's mapping of the very UDP socket it will dial from; libtorrent's `remote()`); otherwise
   * its listening address (what PEX handed out), or the far end when it gave no port.
   */
  const punchAddress = (p: PeerExt): Host => {
    const remote = { host: normalizeHost(p.info.remote.host), port: p.info.remote.port }
    return p.info.transport === "utp" ? remote : listenAddress(p) ?? remote
  }
  /** `target` is our own endpoint as `p` sees us (its `yourip`, our listening or mapped port). */
  const isOurs = (target: UtPex.Endpoint, p: PeerExt): boolean => {
    const ours = p.handshake?.yourip
    return ours !== undefined && [options.listenPort, options.externalPort?.()].includes(target.port) &&
      UtPex.keyOf({ ip: target.ip, port: 1 }) === UtPex.keyOf({ ip: ipText(ours), port: 1 })
  }
  const sendHolepunch = (p: PeerExt, m: UtHolepunch.Message): boolean => {
    const payload = UtHolepunch.encode(m)
    return payload !== undefined && send(p, ExtensionHandshake.UtHolepunch, payload)
  }

  const onHolepunchMessage = (peer: PeerKey, p: PeerExt, payload: Uint8Array) => {
    if (options.isPrivate) return
    const decoded = UtHolepunch.decode(payload)
    if (Either.isLeft(decoded)) return
    const m = decoded.right
    const target = { ip: normalizeHost(m.ip), port: m.port }
    if (m._tag === "Rendezvous") {
      if (!holepunch.allowRendezvous(peer, now())) return
      const fail = (code: number) => {
        holepunch.relayed(false)
        hpLog(`holepunch: rendezvous from ${peer} for ${target.ip}:${target.port} refused: ${UtHolepunch.errorName(code)}`)
        sendHolepunch(p, UtHolepunch.error(m, code))
      }
      const isUs = isOurs(target, p)
      if (UtPex.keyOf(target) === undefined || target.ip === "0.0.0.0" || target.ip === "::") {
        return fail(UtHolepunch.ErrorCode.NoSuchPeer)
      }
      if (isUs || sameEndpoint(p.info.remote, target) || sameEndpoint(listenAddress(p), target)) {
        return fail(UtHolepunch.ErrorCode.NoSelf)
      }
      let found: PeerExt | undefined
      for (const o of peers.values()) {
        if (o === p || o.info.webSeed === true) continue
        if (sameEndpoint(o.info.remote, target) || sameEndpoint(listenAddress(o), target)) {
          found = o
          break
        }
      }
      if (found === undefined) return fail(UtHolepunch.ErrorCode.NotConnected)
      if (!speaksHolepunch(found)) return fail(UtHolepunch.ErrorCode.NoSupport)
      const back = punchAddress(p)
      sendHolepunch(found, UtHolepunch.connect({ ip: back.host, port: back.port }))
      sendHolepunch(p, UtHolepunch.connect(target))
      holepunch.relayed(true)
      hpLog(`holepunch: relayed rendezvous from ${peer} (${back.host}:${back.port}) to ${target.ip}:${target.port}`)
      return
    }
    if (m._tag === "Connect") {
      const follow = holepunch.onConnect(peer, target, now())
      hpLog(`holepunch: connect from ${peer} to ${target.ip}:${target.port}${follow ? "" : " ignored (limit)"}`)
      if (follow) options.onPunch?.(peer, { host: target.ip, port: target.port })
      return
    }
    holepunch.onError(peer, target)
    hpLog(`holepunch: ${peer} cannot relay to ${target.ip}:${target.port}: ${UtHolepunch.errorName(m.error)}`)
  }

  return {
    handshake: (_peer, remote) => {
      const info = options.metadata()
      const yourip = addressBytes(remote.host)
      const p = options.listenPort === undefined ? undefined : options.externalPort?.() ?? options.listenPort
      return ExtensionHandshake.encode(ExtensionHandshake.ours(registry, {
        v: options.clientName,
        reqq: options.reqq,
        ...(p !== undefined && p > 0 ? { p } : {}),
        ...(yourip !== undefined ? { yourip } : {}),
        ...(info !== undefined ? { metadataSize: info.length } : {})
      }))
    },
    connected: (peer, info, control) => {
      peers.set(peer, {
        control,
        info,
        registry,
        handshake: undefined,
        pex: UtPex.make(),
        lastPexIn: undefined,
        served: 0
      })
    },
    closed: (peer) => {
      peers.delete(peer)
      holepunch.forget(peer)
    },
    onExtended: (peer, id, payload) => {
      const p = peers.get(peer)
      if (p === undefined) return
      if (id === 0) {
        const h = ExtensionHandshake.decode(payload, { lenient: true })
        if (Either.isLeft(h)) return
        p.handshake = h.right
        p.registry = ExtensionHandshake.withPeer(p.registry, h.right)
        options.onHandshake?.(peer, h.right)
        return
      }
      const name = ExtensionHandshake.nameOf(registry, id)
      if (name === ExtensionHandshake.UtMetadata) onMetadataMessage(peer, p, payload)
      else if (name === ExtensionHandshake.UtPex) onPexMessage(peer, p, payload)
      else if (name === ExtensionHandshake.UtHolepunch) onHolepunchMessage(peer, p, payload)
    },
    tick: (t) => {
      if (options.isPrivate || peers.size === 0) return
      const all: Array<{ key: PeerKey; peer: UtPex.PexPeer }> = []
      for (const [key, p] of peers) {
        const a = listenAddress(p)
        if (a === undefined) continue
        const seed = p.handshake?.uploadOnly === true ? UtPex.Flags.Seed : 0
        // We dialled it, so others can (a connection a relay had us punch proves nothing of the kind).
        const reachable = p.info.direction === "outbound" && !holepunch.punched({ ip: a.host, port: a.port })
          ? UtPex.Flags.Reachable
          : 0
        // It spoke MSE with us (rc4 or plaintext after the handshake), so others may open encrypted connections to it.
        const encrypts = p.info.encryption === "none" ? 0 : UtPex.Flags.PrefersEncryption
        const punchable = speaksHolepunch(p) ? UtPex.Flags.Holepunch : 0
        const utp = p.info.transport === "utp" ? UtPex.Flags.SupportsUtp : 0
        all.push({ key, peer: { ip: a.host, port: a.port, flags: seed | reachable | encrypts | punchable | utp } })
      }
      for (const [key, p] of peers) {
        if (ExtensionHandshake.theirId(p.registry, ExtensionHandshake.UtPex) === undefined) continue
        const others = all.filter((o) => o.key !== key).map((o) => o.peer)
        const [next, message] = UtPex.tick(p.pex, t, others, options.isPrivate)
        p.pex = next
        if (message !== undefined) send(p, ExtensionHandshake.UtPex, UtPex.encode(message))
      }
    },
    handshakeOf: (peer) => peers.get(peer)?.handshake,
    sendMetadata: (peer, message) => {
      const p = peers.get(peer)
      return p !== undefined && send(p, ExtensionHandshake.UtMetadata, UtMetadata.encode(message))
    },
    listenAddress: (peer) => {
      const p = peers.get(peer)
      return p === undefined ? undefined : listenAddress(p)
    },
    dialFailed: (to) => {
      if (options.isPrivate) return undefined
      const target = { ip: normalizeHost(to.host), port: to.port }
      // ourselves, handed back to us by PEX (a NAT does not loop our own address back to us): no rendezvous
      for (const p of peers.values()) if (isOurs(target, p)) return undefined
      // A loopback address is no way through a NAT: only a relay on our own machine could mean it.
      const loopback = Destination.isLoopbackHost(target.ip)
      const relay = holepunch.rendezvousVia(target, now(), (k) => {
        const r = peers.get(k)
        return r !== undefined && speaksHolepunch(r) && (!loopback || Destination.isLoopbackHost(r.info.remote.host))
      })
      if (relay === undefined) return undefined
      sendHolepunch(peers.get(relay)!, UtHolepunch.rendezvous(target))
      hpLog(`holepunch: dialling ${target.ip}:${target.port} failed; rendezvous sent through ${relay}`)
      return relay
    },
    holepunchStats: holepunch.stats
  }
}
