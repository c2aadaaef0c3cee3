/**
 * Shared fixtures for the peer tests: ids, a state factory, a driver that plays one state machine through events
 * while answering `WantRequests` like a torrent would, a small torrent behind a `TorrentHandle`, and an in-memory
 * connection the test drives synchronously.
 */
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import type * as Tcp from "../../src/net/Tcp.ts"
import * as PeerState from "../../src/peer/PeerState.ts"
import type { PeerControl, PeerError, PeerKey, TorrentHandle } from "../../src/peer/TorrentHandle.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"

export const infoHash = new Uint8Array(20).fill(0x11) as InfoHashV1
export const ourId = new Uint8Array(20).fill(0x22) as PeerId
export const theirId = new Uint8Array(20).fill(0x33) as PeerId
export const pieceCount = 40

export const reservedAll = Handshake.reserved({ fast: true, extensionProtocol: true })
export const reservedNone = Handshake.reserved({})

export const make = (
  options: { direction?: "outbound" | "inbound"; config?: Partial<PeerState.PeerConfig>; reserved?: Uint8Array } = {},
  now = 0
): PeerState.PeerState =>
  PeerState.initial({
    config: PeerState.config(options.config),
    address: "10.0.0.1:6881",
    direction: options.direction ?? "outbound",
    infoHash,
    peerId: ourId,
    reserved: options.reserved ?? reservedAll,
    pieceCount
  }, now)

export const theirHandshake = (reserved: Uint8Array = reservedAll, peerId: PeerId = theirId): Handshake.Handshake => ({
  reserved,
  infoHash,
  peerId
})

export const noPieces = Bitfield.make(pieceCount)

/** Steps through events, collecting every command; `answer` plays the torrent for `WantRequests`. */
export class Driver {
  state: PeerState.PeerState
  now: number
  readonly log: Array<PeerState.Command> = []
  answer: (max: number) => ReadonlyArray<PeerState.BlockRef>
  /** Steps with `PeerState.stepOwned` (as the session does) instead of `step`. */
  readonly owned: boolean
  constructor(
    state: PeerState.PeerState,
    answer: (max: number) => ReadonlyArray<PeerState.BlockRef> = () => [],
    owned = false
  ) {
    this.state = state
    this.now = 0
    this.answer = answer
    this.owned = owned
  }
  /** Dispatches `event` and the follow-up `RequestsChosen` events; returns the commands of this call. */
  run(event: PeerState.Event, at: number = this.now): Array<PeerState.Command> {
    this.now = at
    const out: Array<PeerState.Command> = []
    const queue: Array<PeerState.Event> = [event]
    while (queue.length > 0) {
      const e = queue.shift()!
      const [s, cmds] = (this.owned ? PeerState.stepOwned : PeerState.step)(this.state, e, this.now)
      this.state = s
      for (const c of cmds) {
        out.push(c)
        if (c._tag === "WantRequests") queue.push(PeerState.Event.RequestsChosen({ blocks: this.answer(c.max) }))
      }
    }
    this.log.push(...out)
    return out
  }
}

export const sent = (cmds: ReadonlyArray<PeerState.Command>): Array<string> =>
  cmds.flatMap((c) => c._tag === "Send" ? [c.message._tag] : c._tag === "SendHandshake" ? ["Handshake"] : [])

export const emitted = (cmds: ReadonlyArray<PeerState.Command>): Array<PeerState.Upward> =>
  cmds.flatMap((c) => c._tag === "Emit" ? [c.event] : [])

export const closeOf = (cmds: ReadonlyArray<PeerState.Command>) =>
  cmds.flatMap((c) => c._tag === "Close" ? [c.error] : [])[0]

/** A fresh block generator: piece-aligned 16 KiB blocks, never repeated. */
export const blockSource = () => {
  let n = 0
  return (max: number): Array<PeerState.BlockRef> =>
    Array.from({ length: max }, () => {
      const k = n++
      const begin = (k % 16) * 16384 + Math.floor(k / (16 * pieceCount))
      return { index: Math.floor(k / 16) % pieceCount, begin, length: 16384 }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// A small torrent behind a TorrentHandle, for session tests: a sequential picker, piece buffers, SHA-1 checks.

export interface TestTorrentOptions {
  readonly payload: Uint8Array
  readonly pieceLength: number
  readonly infoHash?: InfoHashV1
  readonly peerId?: PeerId
  readonly have?: boolean
  readonly features?: Parameters<typeof Handshake.reserved>[0]
}

/** Records every call; downloads the payload with a sequential picker and verifies each piece's SHA-1. */
export class TestTorrent implements TorrentHandle {
  readonly infoHash: InfoHashV1
  readonly peerId: PeerId
  readonly pieceCount: number
  readonly features: Parameters<typeof Handshake.reserved>[0]
  readonly payload: Uint8Array
  readonly pieceLength: number
  readonly hashes: Array<Uint8Array>
  readonly mine: Bitfield.Bitfield
  readonly buffers = new Map<number, Uint8Array>()
  readonly received = new Map<number, Set<number>>()
  /** Blocks not yet requested from anyone, as "index/begin". */
  readonly todo: Array<PeerState.BlockRef> = []
  readonly inFlight = new Map<string, PeerKey>()
  readonly events: Array<string> = []
  readonly controls = new Map<PeerKey, PeerControl>()
  readonly closed: Array<{ peer: PeerKey; error: PeerError; outstanding: ReadonlyArray<PeerState.BlockRef> }> = []
  readonly requestTimeouts: Array<ReadonlyArray<PeerState.BlockRef>> = []
  /** Verified pieces land here. */
  readonly data: Uint8Array
  hashFailures = 0
  maxAsked = 0
  onComplete: () => void = () => {}

  constructor(o: TestTorrentOptions) {
    this.payload = o.payload
    this.pieceLength = o.pieceLength
    this.pieceCount = Math.ceil(o.payload.length / o.pieceLength)
    this.infoHash = o.infoHash ?? infoHash
    this.peerId = o.peerId ?? ourId
    this.features = o.features ?? { fast: true, extensionProtocol: true }
    this.data = new Uint8Array(o.payload.length)
    this.hashes = Array.from({ length: this.pieceCount }, (_, i) => Bytes.sha1(this.piece(i)))
    this.mine = o.have === true ? Bitfield.full(this.pieceCount) : Bitfield.make(this.pieceCount)
    if (o.have !== true) {
      for (let i = 0; i < this.pieceCount; i++) {
        const size = this.piece(i).length
        for (let b = 0; b < size; b += 16384) this.todo.push({ index: i, begin: b, length: Math.min(16384, size - b) })
      }
    }
  }

  piece(i: number): Uint8Array {
    return this.payload.subarray(i * this.pieceLength, Math.min(this.payload.length, (i + 1) * this.pieceLength))
  }

  get complete(): boolean {
    return Bitfield.isComplete(this.mine)
  }

  readonly bitfield = () => Bitfield.copy(this.mine)
  readonly onConnected = (peer: PeerKey, _info: unknown, control: PeerControl) => {
    this.events.push("connected")
    this.controls.set(peer, control)
  }
  readonly onPeerBitfield = (_: PeerKey, bf: Bitfield.Bitfield) => {
    this.events.push(`bitfield:${Bitfield.count(bf)}`)
    return !this.complete && Bitfield.count(bf) > 0
  }
  readonly onPeerHave = (_: PeerKey, index: number) => {
    this.events.push(`have:${index}`)
    return !Bitfield.has(this.mine, index) || !this.complete
  }
  readonly onPeerHaveAll = () => {
    this.events.push("have-all")
    return !this.complete
  }
  readonly onPeerHaveNone = () => {
    this.events.push("have-none")
    return false
  }
  readonly nextRequests = (peer: PeerKey, max: number) => {
    this.maxAsked = Math.max(this.maxAsked, max)
    const out = this.todo.splice(0, max)
    for (const b of out) this.inFlight.set(`${b.index}/${b.begin}`, peer)
    return out
  }
  readonly blockBuffer = (_: PeerKey, index: number) => {
    if (Bitfield.has(this.mine, index)) return undefined
    let buf = this.buffers.get(index)
    if (buf === undefined) {
      buf = new Uint8Array(this.piece(index).length)
      this.buffers.set(index, buf)
    }
    return buf
  }
  readonly onBlock = (_: PeerKey, index: number, begin: number) => {
    this.inFlight.delete(`${index}/${begin}`)
    if (Bitfield.has(this.mine, index)) return false
    const got = this.received.get(index) ?? new Set<number>()
    got.add(begin)
    this.received.set(index, got)
    const buf = this.buffers.get(index)!
    if (got.size === Math.ceil(buf.length / 16384)) {
      this.received.delete(index)
      this.buffers.delete(index)
      if (Bytes.equals(Bytes.sha1(buf), this.hashes[index]!)) {
        Bitfield.set(this.mine, index)
        this.data.set(buf, index * this.pieceLength)
        for (const c of this.controls.values()) c.sendHave(index)
        if (this.complete) {
          for (const c of this.controls.values()) c.setInterested(false)
          this.onComplete()
        }
      } else {
        this.hashFailures++
        for (let b = 0; b < buf.length; b += 16384) {
          this.todo.push({ index, begin: b, length: Math.min(16384, buf.length - b) })
        }
      }
    }
    return true
  }
  giveBack(blocks: ReadonlyArray<PeerState.BlockRef>): void {
    for (const b of blocks) {
      if (this.inFlight.delete(`${b.index}/${b.begin}`)) this.todo.unshift(b)
    }
  }
  readonly onChoked = (_: PeerKey, returned: ReadonlyArray<PeerState.BlockRef>) => {
    this.events.push("choked")
    this.giveBack(returned)
  }
  readonly onUnchoked = () => {
    this.events.push("unchoked")
  }
  readonly onReturned = (_: PeerKey, blocks: ReadonlyArray<PeerState.BlockRef>) => {
    this.events.push(`returned:${blocks.length}`)
    this.giveBack(blocks)
  }
  readonly onRequestTimeout = (_: PeerKey, blocks: ReadonlyArray<PeerState.BlockRef>) => {
    this.events.push("request-timeout")
    this.requestTimeouts.push(blocks)
  }
  readonly onClosed = (peer: PeerKey, error: PeerError, outstanding: ReadonlyArray<PeerState.BlockRef>) => {
    this.events.push(`closed:${error.reason}`)
    this.closed.push({ peer, error, outstanding })
    this.controls.delete(peer)
    this.giveBack(outstanding)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// An in-memory connection: the test plays the remote peer synchronously.

export interface MemoryConnection extends Tcp.Connection {
  /** Delivers bytes to the session as if the peer sent them. */
  readonly feed: (bytes: Uint8Array) => void
  /** Everything the session wrote, in order. */
  readonly written: Array<Uint8Array>
  /** Ends the connection from the peer's side. */
  readonly end: () => void
  readonly isClosed: () => boolean
}

export const memoryConnection = (): Effect.Effect<MemoryConnection> =>
  Effect.sync(() => {
    const closed = Deferred.unsafeMake<void, Tcp.TcpError>(FiberId.none)
    let handler: ((chunk: Uint8Array) => void) | undefined
    let paused = false
    let isClosed = false
    let read = 0
    let wrote = 0
    const written: Array<Uint8Array> = []
    return {
      remoteAddress: "10.0.0.1:6881",
      remote: { host: "10.0.0.1", port: 6881 },
      onData: (h) => {
        handler = h
      },
      write: (b) => {
        if (isClosed) return
        wrote += b.length
        written.push(b)
      },
      pause: () => {
        paused = true
      },
      resume: () => {
        paused = false
      },
      isPaused: () => paused,
      close: () => {
        isClosed = true
        Deferred.unsafeDone(closed, Exit.void)
      },
      closed: Deferred.await(closed),
      bytesRead: () => read,
      bytesWritten: () => wrote,
      feed: (bytes) => {
        read += bytes.length
        handler?.(Buffer.from(bytes))
      },
      written,
      end: () => {
        isClosed = true
        Deferred.unsafeDone(closed, Exit.void)
      },
      isClosed: () => isClosed
    }
  })

