/**
 * Shared fixtures for the peer tests: ids, a state factory, a driver that plays one state machine through events
 * while answering `WantRequests` like a torrent would.
 */
import * as Bitfield from "../../src/core/Bitfield.ts"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import * as PeerState from "../../src/peer/PeerState.ts"
import * as Handshake from "../../src/wire/Handshake.ts"

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
  constructor(state: PeerState.PeerState, answer: (max: number) => ReadonlyArray<PeerState.BlockRef> = () => []) {
    this.state = state
    this.now = 0
    this.answer = answer
  }
  /** Dispatches `event` and the follow-up `RequestsChosen` events; returns the commands of this call. */
  run(event: PeerState.Event, at: number = this.now): Array<PeerState.Command> {
    this.now = at
    const out: Array<PeerState.Command> = []
    const queue: Array<PeerState.Event> = [event]
    while (queue.length > 0) {
      const e = queue.shift()!
      const [s, cmds] = PeerState.step(this.state, e, this.now)
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
      return { index: Math.floor(k / 16) % pieceCount, begin: (k % 16) * 16384 + Math.floor(k / (16 * pieceCount)), length: 16384 }
    })
}
