/**
 * The download handle in endgame when one session is copying a block (its piece message half read, e.g. its
 * reading paused by the download limit) and another peer could send the same block: that peer's copy cannot be
 * taken (`blockBuffer` refuses it while the first session copies), so it must not be asked for. It used to be, after
 * every block: a request that went round at the line rate, its bytes thrown away, which kept a throttled download's
 * limit spent so the session holding the block was hardly ever read again (interop.aria2.test.ts, "late have-all",
 * stuck at its last piece). Driven through the `TorrentHandle` calls a session makes, no sockets and no clock.
 */
import { describe, expect, it } from "vitest"
import * as Bitfield from "../../src/core/Bitfield.ts"
import type { PeerId } from "../../src/core/InfoHash.ts"
import { PeerError } from "../../src/peer/PeerError.ts"
import type { BlockRef, PeerControl, PeerInfo } from "../../src/peer/TorrentHandle.ts"
import * as Picker from "../../src/picker/Picker.ts"
import * as Download from "../../src/torrent/Download.ts"
import * as Extensions from "../../src/torrent/Extensions.ts"

const BLOCK = Picker.BLOCK
const pieceLength = 4 * BLOCK
const pieceCount = 2

const control = (): PeerControl => {
  const nop = () => {}
  return {
    sendHave: nop,
    setInterested: nop,
    requestMore: nop,
    cancel: nop,
    choke: nop,
    unchoke: nop,
    sendBlock: () => false,
    reject: nop,
    sendExtended: nop,
    allowFast: nop,
    pauseReading: nop,
    resumeReading: nop,
    close: nop
  }
}

const info = (port: number): PeerInfo => ({
  peerId: new Uint8Array(20).fill(port % 256) as unknown as PeerId,
  fast: true,
  extensionProtocol: false,
  dht: false,
  direction: "outbound",
  encryption: "none",
  remote: { host: "127.0.0.1", port }
})

const setup = () => {
  const completed: Array<number> = []
  const d = Download.make({
    metainfo: {
      infoHash: new Uint8Array(20) as never,
      pieceCount,
      pieceLength,
      totalLength: pieceCount * pieceLength
    },
    peerId: new Uint8Array(20) as unknown as PeerId,
    have: Bitfield.make(pieceCount),
    ext: Extensions.make({
      metadata: () => undefined,
      isPrivate: true,
      clientName: "test",
      reqq: 250,
      onPeers: () => {}
    }, () => 0),
    finished: () => false,
    onPiece: (index, data) => {
      completed.push(index)
      d.pool.release(data)
    },
    paused: () => false,
    onConnected: () => {},
    onPeerPort: () => {},
    publish: () => {}
  })
  d.setPicker(Picker.make({ pieceCount, pieceLength, totalLength: pieceCount * pieceLength, random: () => 0 }))
  const h = d.handle
  for (const [peer, port] of [["A", 1], ["B", 2]] as const) {
    h.onConnected(peer, info(port), control())
    h.onPeerHaveAll(peer)
    h.onUnchoked(peer)
  }
  /** A whole block from `peer`, as its session delivers it: the buffer at its first byte, `onBlock` at its last. */
  const deliver = (peer: string, b: BlockRef): boolean => {
    const buf = h.blockBuffer(peer, b.index, b.begin, b.length)
    buf?.fill(7, b.begin, b.begin + b.length)
    return h.onBlock(peer, b.index, b.begin, b.length)
  }
  return { d, h, completed, deliver }
}

describe("Download in endgame", () => {
  it("does not ask a peer for a block another session is copying now; that session's copy completes the piece", () => {
    const { completed, deliver, h } = setup()
    // A takes every block; all but the last arrive.
    const fromA = [...h.nextRequests("A", 100)]
    expect(fromA.length).toBe(pieceCount * pieceLength / BLOCK)
    const last = fromA.pop()!
    for (const b of fromA) expect(deliver("A", b)).toBe(true)
    expect(completed).toEqual([1 - last.index])
    // A's message for the last block has begun (its first bytes went into the buffer), and stops there: its reading
    // is paused.
    expect(h.blockBuffer("A", last.index, last.begin, last.length)).toBeDefined()
    // B (endgame) keeps asking, as its session does after every block and every tick: nothing it could send would be
    // kept, so nothing is asked of it.
    let wasted = 0
    for (let round = 0; round < 100; round++) {
      for (const b of h.nextRequests("B", 100)) {
        expect(b).toEqual(last)
        if (!deliver("B", b)) wasted++
      }
    }
    expect(wasted).toBe(0)
    // A's message completes: the piece with it.
    expect(h.onBlock("A", last.index, last.begin, last.length)).toBe(true)
    expect([...completed].sort()).toEqual([0, 1])
  })

  it("a session that leaves mid-copy frees its block for the others", () => {
    const { completed, deliver, h } = setup()
    const fromA = [...h.nextRequests("A", 100)]
    const last = fromA.pop()!
    for (const b of fromA) deliver("A", b)
    expect(h.blockBuffer("A", last.index, last.begin, last.length)).toBeDefined()
    expect(h.nextRequests("B", 100)).toEqual([])
    h.onClosed("A", new PeerError({ reason: "closed", address: "A", detail: "gone" }), [last])
    expect(h.nextRequests("B", 100)).toEqual([last])
    expect(deliver("B", last)).toBe(true)
    expect([...completed].sort()).toEqual([0, 1])
  })
})
