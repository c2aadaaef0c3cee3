/**
 * The UDP tracker protocol (BEP 15) as pure functions: requests and responses, both directions (the encoders for
 * responses and decoders for requests serve fakes and round-trip tests). Decoders never throw.
 */
import * as Either from "effect/Either"
import * as CompactPeers from "./CompactPeers.ts"
import type { Event, Peer, ScrapeEntry } from "./Tracker.ts"

/** The magic `protocol_id` a connect request carries in place of a connection id. */
export const PROTOCOL_ID = 0x41727101980n
/** BEP 15 limits one scrape to 74 info-hashes. */
export const MAX_SCRAPE = 74

export const Action = { connect: 0, announce: 1, scrape: 2, error: 3 } as const

const EVENT_CODES: Record<Event, number> = { none: 0, completed: 1, started: 2, stopped: 3 }
const EVENTS: ReadonlyArray<Event> = ["none", "completed", "started", "stopped"]

export type Request =
  | { readonly _tag: "Connect"; readonly transactionId: number }
  | {
    readonly _tag: "Announce"
    readonly connectionId: bigint
    readonly transactionId: number
    readonly infoHash: Uint8Array
    readonly peerId: Uint8Array
    readonly downloaded: bigint
    readonly left: bigint
    readonly uploaded: bigint
    readonly event: Event
    readonly key: number
    readonly numwant: number
    readonly port: number
  }
  | {
    readonly _tag: "Scrape"
    readonly connectionId: bigint
    readonly transactionId: number
    readonly infoHashes: ReadonlyArray<Uint8Array>
  }

export type Response =
  | { readonly _tag: "Connect"; readonly transactionId: number; readonly connectionId: bigint }
  | {
    readonly _tag: "Announce"
    readonly transactionId: number
    readonly interval: number
    readonly leechers: number
    readonly seeders: number
    readonly peers: ReadonlyArray<Peer>
  }
  | { readonly _tag: "Scrape"; readonly transactionId: number; readonly entries: ReadonlyArray<ScrapeEntry> }
  | { readonly _tag: "Error"; readonly transactionId: number; readonly message: string }

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength)

const u64 = (n: number | bigint): bigint => {
  const v = typeof n === "bigint" ? n : BigInt(Math.max(0, Math.trunc(n)))
  return v < 0n ? 0n : v > 0xffffffffffffffffn ? 0xffffffffffffffffn : v
}

export const encodeRequest = (r: Request): Uint8Array => {
  switch (r._tag) {
    case "Connect": {
      const out = new Uint8Array(16)
      const v = view(out)
      v.setBigUint64(0, PROTOCOL_ID)
      v.setUint32(8, Action.connect)
      v.setUint32(12, r.transactionId >>> 0)
      return out
    }
    case "Announce": {
      const out = new Uint8Array(98)
      const v = view(out)
      v.setBigUint64(0, u64(r.connectionId))
      v.setUint32(8, Action.announce)
      v.setUint32(12, r.transactionId >>> 0)
      out.set(r.infoHash.subarray(0, 20), 16)
      out.set(r.peerId.subarray(0, 20), 36)
      v.setBigUint64(56, u64(r.downloaded))
      v.setBigUint64(64, u64(r.left))
      v.setBigUint64(72, u64(r.uploaded))
      v.setUint32(80, EVENT_CODES[r.event])
      v.setUint32(84, 0) // ip: let the tracker use the source address
      v.setUint32(88, r.key >>> 0)
      v.setInt32(92, r.numwant | 0)
      v.setUint16(96, r.port & 0xffff)
      return out
    }
    case "Scrape": {
      const out = new Uint8Array(16 + 20 * r.infoHashes.length)
      const v = view(out)
      v.setBigUint64(0, u64(r.connectionId))
      v.setUint32(8, Action.scrape)
      v.setUint32(12, r.transactionId >>> 0)
      r.infoHashes.forEach((h, i) => out.set(h.subarray(0, 20), 16 + 20 * i))
      return out
    }
  }
}

/** Decodes a request (what a tracker reads); for fakes and tests. */
export const decodeRequest = (b: Uint8Array): Either.Either<Request, string> => {
  if (b.length < 16) return Either.left(`request of ${b.length} bytes is shorter than 16`)
  const v = view(b)
  const connectionId = v.getBigUint64(0)
  const action = v.getUint32(8)
  const transactionId = v.getUint32(12)
  if (action === Action.connect) {
    return connectionId === PROTOCOL_ID && b.length === 16
      ? Either.right({ _tag: "Connect", transactionId })
      : Either.left("bad connect request")
  }
  if (action === Action.announce) {
    if (b.length < 98) return Either.left("announce request shorter than 98 bytes")
    const event = EVENTS[v.getUint32(80)]
    if (event === undefined) return Either.left("unknown announce event")
    return Either.right({
      _tag: "Announce",
      connectionId,
      transactionId,
      infoHash: b.slice(16, 36),
      peerId: b.slice(36, 56),
      downloaded: v.getBigUint64(56),
      left: v.getBigUint64(64),
      uploaded: v.getBigUint64(72),
      event,
      key: v.getUint32(88),
      numwant: v.getInt32(92),
      port: v.getUint16(96)
    })
  }
  if (action === Action.scrape) {
    if ((b.length - 16) % 20 !== 0) return Either.left("scrape request length is not 16 + 20·n")
    const infoHashes: Array<Uint8Array> = []
    for (let off = 16; off < b.length; off += 20) infoHashes.push(b.slice(off, off + 20))
    return Either.right({ _tag: "Scrape", connectionId, transactionId, infoHashes })
  }
  return Either.left(`unknown action ${action}`)
}

/** Encodes a response (what a tracker sends); for fakes and tests. Announce peers go out in `family`'s format. */
export const encodeResponse = (r: Response, family: CompactPeers.Family = 4): Uint8Array => {
  const head = (action: number, size: number) => {
    const out = new Uint8Array(size)
    const v = view(out)
    v.setUint32(0, action)
    v.setUint32(4, r.transactionId >>> 0)
    return { out, v }
  }
  switch (r._tag) {
    case "Connect": {
      const { out, v } = head(Action.connect, 16)
      v.setBigUint64(8, u64(r.connectionId))
      return out
    }
    case "Announce": {
      const peers = CompactPeers.encode(r.peers, family)
      const { out, v } = head(Action.announce, 20 + peers.length)
      v.setUint32(8, r.interval >>> 0)
      v.setUint32(12, r.leechers >>> 0)
      v.setUint32(16, r.seeders >>> 0)
      out.set(peers, 20)
      return out
    }
    case "Scrape": {
      const { out, v } = head(Action.scrape, 8 + 12 * r.entries.length)
      r.entries.forEach((e, i) => {
        v.setUint32(8 + 12 * i, e.seeders >>> 0)
        v.setUint32(12 + 12 * i, e.completed >>> 0)
        v.setUint32(16 + 12 * i, e.leechers >>> 0)
      })
      return out
    }
    case "Error": {
      const msg = new TextEncoder().encode(r.message)
      const { out } = head(Action.error, 8 + msg.length)
      out.set(msg, 8)
      return out
    }
  }
}

const latin1OrUtf8 = (b: Uint8Array): string => {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b)
  } catch {
    return String.fromCharCode(...b.subarray(0, 1024))
  }
}

/** The transaction id of a datagram (bytes 4..8), or `undefined` when it is too short to carry one. */
export const transactionIdOf = (b: Uint8Array): number | undefined => (b.length < 8 ? undefined : view(b).getUint32(4))

/**
 * Decodes a response. `family` is the address family of the tracker's socket: BEP 15 announce replies carry
 * 6-byte peers over IPv4 and 18-byte peers over IPv6.
 */
export const decodeResponse = (b: Uint8Array, family: CompactPeers.Family): Either.Either<Response, string> => {
  if (b.length < 8) return Either.left(`response of ${b.length} bytes is shorter than 8`)
  const v = view(b)
  const action = v.getUint32(0)
  const transactionId = v.getUint32(4)
  switch (action) {
    case Action.connect:
      return b.length < 16
        ? Either.left(`connect response of ${b.length} bytes is shorter than 16`)
        : Either.right({ _tag: "Connect", transactionId, connectionId: v.getBigUint64(8) })
    case Action.announce: {
      if (b.length < 20) {
        return Either.left(
          b.length === 8
            ? "empty announce reply (opentracker answers so for an info-hash it does not serve)"
            : `announce response of ${b.length} bytes is shorter than 20`
        )
      }
      const peers = CompactPeers.decode(b.subarray(20), family)
      if (Either.isLeft(peers)) return Either.left(peers.left)
      return Either.right({
        _tag: "Announce",
        transactionId,
        interval: v.getUint32(8),
        leechers: v.getUint32(12),
        seeders: v.getUint32(16),
        peers: peers.right
      })
    }
    case Action.scrape: {
      if ((b.length - 8) % 12 !== 0) return Either.left("scrape response length is not 8 + 12·n")
      const entries: Array<ScrapeEntry> = []
      for (let off = 8; off < b.length; off += 12) {
        entries.push({ seeders: v.getUint32(off), completed: v.getUint32(off + 4), leechers: v.getUint32(off + 8) })
      }
      return Either.right({ _tag: "Scrape", transactionId, entries })
    }
    case Action.error:
      return Either.right({ _tag: "Error", transactionId, message: latin1OrUtf8(b.subarray(8)) })
    default:
      return Either.left(`unknown action ${action}`)
  }
}
