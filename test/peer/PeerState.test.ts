import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as PeerState from "../../src/peer/PeerState.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import { WireError } from "../../src/wire/WireError.ts"
import {
  blockSource,
  closeOf,
  Driver,
  emitted,
  infoHash,
  make,
  noPieces,
  ourId,
  pieceCount,
  reservedAll,
  reservedNone,
  sent,
  theirHandshake
} from "./support.ts"

const E = PeerState.Event
const msg = (message: Message.Control) => E.MessageReceived({ message })
const tick = (received = 0, paused = false) => E.Tick({ received, paused })

/** An outbound session through handshake and introduction, interested and unchoked (Downloading). */
const downloading = (
  options: Parameters<typeof make>[0] = {},
  answer: (max: number) => ReadonlyArray<PeerState.BlockRef> = blockSource()
) => {
  const d = new Driver(make(options), answer)
  d.run(E.Connected())
  d.run(E.HandshakeReceived({ handshake: theirHandshake(options.reserved ?? reservedAll), ours: noPieces }))
  d.run(msg(Message.Bitfield({ bytes: Bitfield.full(pieceCount).bytes })))
  d.run(E.SetInterested({ interested: true }))
  d.run(msg(Message.Unchoke()))
  return d
}

describe("PeerState: handshake and introduction", () => {
  it("outbound: connected sends our handshake, theirs leads to the introduction", () => {
    const d = new Driver(make())
    expect(d.state.phase).toBe("Connecting")
    expect(sent(d.run(E.Connected(), 10))).toEqual(["Handshake"])
    expect(d.state.phase).toBe("Handshaking")
    expect(d.state.phaseDeadline).toBe(10 + PeerState.defaults.handshakeTimeout)
    const cmds = d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }), 20)
    // Fast negotiated and nothing to offer: have-none, then the extension handshake.
    expect(sent(cmds)).toEqual(["HaveNone", "Extended"])
    expect(emitted(cmds).map((e) => e._tag)).toEqual(["Connected"])
    expect(d.state.phase).toBe("Introducing")
    expect(d.state.fast && d.state.extensionProtocol).toBe(true)
    expect(d.state.phaseDeadline).toBe(20 + PeerState.defaults.introductionTimeout)
  })

  it("inbound: our handshake goes out only after theirs checked out, then the bitfield", () => {
    const d = new Driver(make({ direction: "inbound", reserved: reservedNone }))
    expect(d.state.phase).toBe("Handshaking")
    const ours = Bitfield.make(pieceCount)
    Bitfield.set(ours, 3)
    const cmds = d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours }))
    expect(sent(cmds)).toEqual(["Handshake", "Bitfield"])
    expect(d.state.fast).toBe(false)
  })

  it("have-all when we have everything and fast is on; nothing without fast and no pieces", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    expect(sent(d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: Bitfield.full(pieceCount) }))))
      .toEqual(["HaveAll", "Extended"])
    const e = new Driver(make({ reserved: reservedNone }))
    e.run(E.Connected())
    expect(sent(e.run(E.HandshakeReceived({ handshake: theirHandshake(reservedNone), ours: noPieces })))).toEqual([])
  })

  it("a wrong info-hash closes with wrong-info-hash", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    const other = { ...theirHandshake(), infoHash: new Uint8Array(20).fill(9) as typeof infoHash }
    const cmds = d.run(E.HandshakeReceived({ handshake: other, ours: noPieces }))
    expect(closeOf(cmds)?.reason).toBe("wrong-info-hash")
    expect(sent(cmds)).toEqual([])
    expect(d.state.phase).toBe("Closed")
  })

  it("our own peer id closes with self-connection", () => {
    const d = new Driver(make({ direction: "inbound" }))
    const cmds = d.run(E.HandshakeReceived({ handshake: theirHandshake(reservedAll, ourId), ours: noPieces }))
    expect(closeOf(cmds)?.reason).toBe("self-connection")
  })

  it("a bitfield, have-all or have-none after other messages is an update (aria2 sends them), passed up as such", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    d.run(msg(Message.Have({ index: 1 })))
    const late = d.run(msg(Message.Bitfield({ bytes: new Uint8Array(5) })))
    expect(closeOf(late)).toBeUndefined()
    expect(emitted(late).map((e) => e._tag)).toEqual(["Bitfield"])
    const all = d.run(msg(Message.HaveAll()))
    expect(closeOf(all)).toBeUndefined()
    expect(emitted(all)).toEqual([PeerState.Upward.HaveAll()])
    const none = d.run(msg(Message.HaveNone()))
    expect(closeOf(none)).toBeUndefined()
    expect(emitted(none)).toEqual([PeerState.Upward.HaveNone()])
    expect(d.state.phase).toBe("Choked")
  })

  it("aria2's sequence while we download from it: haves, a bitfield, then have-all; requests in flight untouched", () => {
    const d = downloading()
    const before = d.state.outstanding
    expect(before.length).toBeGreaterThan(0)
    const cmds = [
      ...d.run(msg(Message.Have({ index: 3 }))),
      ...d.run(msg(Message.Bitfield({ bytes: Bitfield.full(pieceCount).bytes }))),
      ...d.run(msg(Message.Have({ index: 4 }))),
      ...d.run(msg(Message.HaveAll()))
    ]
    expect(closeOf(cmds)).toBeUndefined()
    expect(emitted(cmds).map((e) => e._tag)).toEqual(["Have", "Bitfield", "Have", "HaveAll"])
    expect(d.state.phase).toBe("Downloading")
    expect(d.state.outstanding).toEqual(before)
  })

  it("have-all or have-none without the fast extension is a violation, early or late", () => {
    for (const late of [false, true]) {
      for (const m of [Message.HaveAll(), Message.HaveNone()]) {
        const d = new Driver(make({ reserved: reservedNone }))
        d.run(E.Connected())
        d.run(E.HandshakeReceived({ handshake: theirHandshake(reservedNone), ours: noPieces }))
        if (late) d.run(msg(Message.Have({ index: 2 })))
        expect(closeOf(d.run(msg(m)))?.reason).toBe("protocol")
      }
    }
  })

  it("the extension handshake may precede the bitfield, and its reqq caps the pipeline", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    d.run(msg(Message.Extended({ id: 0, payload: PeerState.extensionHandshake(PeerState.config({ maxPipeline: 7 })) })))
    expect(d.state.peerReqq).toBe(7)
    const cmds = d.run(msg(Message.Bitfield({ bytes: new Uint8Array(5) })))
    expect(closeOf(cmds)).toBeUndefined()
    expect(emitted(cmds).map((e) => e._tag)).toEqual(["Bitfield"])
  })

  it("have out of range and have-all without fast are protocol violations", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    expect(closeOf(d.run(msg(Message.Have({ index: pieceCount }))))?.reason).toBe("protocol")
    const e = new Driver(make({ reserved: reservedNone }))
    e.run(E.Connected())
    e.run(E.HandshakeReceived({ handshake: theirHandshake(reservedNone), ours: noPieces }))
    expect(closeOf(e.run(msg(Message.HaveAll())))?.reason).toBe("protocol")
  })

  it("a flood of have messages (far more than the torrent has pieces) is a protocol violation", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    const limit = PeerState.maxHaves(pieceCount)
    for (let i = 0; i < limit; i++) expect(closeOf(d.run(msg(Message.Have({ index: i % pieceCount }))))).toBeUndefined()
    const error = closeOf(d.run(msg(Message.Have({ index: 0 }))))
    expect(error?.reason).toBe("protocol")
    expect(error?.detail).toContain("a flood")
  })

  it("a message before the handshake is a protocol violation", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    expect(closeOf(d.run(msg(Message.Unchoke())))?.reason).toBe("protocol")
  })
})

describe("PeerState: choking, interest and requests", () => {
  it("Downloading exactly when unchoked and interested; asks for min-pipeline requests first", () => {
    const d = new Driver(make(), blockSource())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    d.run(msg(Message.HaveAll()))
    expect(d.state.phase).toBe("Choked")
    expect(sent(d.run(E.SetInterested({ interested: true })))).toEqual(["Interested"])
    expect(d.state.phase).toBe("Choked")
    const cmds = d.run(msg(Message.Unchoke()))
    expect(d.state.phase).toBe("Downloading")
    expect(cmds.find((c) => c._tag === "WantRequests")).toEqual(PeerState.Command.WantRequests({ max: 4 }))
    expect(sent(cmds)).toEqual(["Request", "Request", "Request", "Request"])
    expect(d.state.outstanding.length).toBe(4)
    expect(d.state.requestDeadline).toBe(d.now + PeerState.defaults.requestTimeout)
  })

  it("slow start: each block received widens the pipeline by one", () => {
    const d = downloading()
    const first = d.state.outstanding[0]!
    const cmds = d.run(E.BlockReceived({ ...first, accepted: true }))
    expect(sent(cmds)).toEqual(["Request", "Request"])
    expect(d.state.outstanding.length).toBe(5)
  })

  it("a deep pipeline tops up in batches of 16, not per block", () => {
    const d = downloading({}, blockSource())
    d.state = { ...d.state, slowStart: false, pipeline: 100 }
    d.run(E.RequestMore())
    expect(d.state.outstanding.length).toBe(100)
    expect(PeerState.topUpBatch(100)).toBe(16)
    for (let i = 0; i < 15; i++) {
      const b = d.state.outstanding[0]!
      const cmds = d.run(E.BlockReceived({ ...b, accepted: true }))
      expect(cmds.filter((c) => c._tag === "WantRequests")).toEqual([])
    }
    expect(d.state.outstanding.length).toBe(85)
    const b = d.state.outstanding[0]!
    const cmds = d.run(E.BlockReceived({ ...b, accepted: true }))
    expect(cmds.find((c) => c._tag === "WantRequests")).toEqual(PeerState.Command.WantRequests({ max: 16 }))
    expect(sent(cmds).filter((m) => m === "Request")).toHaveLength(16)
    expect(d.state.outstanding.length).toBe(100)
  })

  it("without fast, a choke returns every request in flight; a late block is welcome without penalty", () => {
    const d = downloading({ reserved: reservedNone })
    const inFlight = d.state.outstanding.map(({ index, begin, length }) => ({ index, begin, length }))
    const cmds = d.run(msg(Message.Choke()))
    expect(emitted(cmds)).toEqual([PeerState.Upward.Choked({ returned: inFlight })])
    expect(d.state.outstanding).toEqual([])
    expect(d.state.requestDeadline).toBeUndefined()
    expect(d.state.phase).toBe("Choked")
    expect(PeerState.expects(d.state, inFlight[0]!.index, inFlight[0]!.begin, inFlight[0]!.length)).toBe(true)
    d.run(E.BlockReceived({ ...inFlight[0]!, accepted: true }))
    expect(d.state.unsolicited).toBe(0)
  })

  it("with fast, a choke keeps requests in flight; a reject returns one", () => {
    const d = downloading()
    d.run(msg(Message.Choke()))
    expect(d.state.outstanding.length).toBe(4)
    const first = d.state.outstanding[0]!
    const cmds = d.run(msg(Message.Reject({ index: first.index, begin: first.begin, length: first.length })))
    expect(emitted(cmds)).toEqual([
      PeerState.Upward.Returned({ blocks: [{ index: first.index, begin: first.begin, length: first.length }] })
    ])
    expect(d.state.outstanding.length).toBe(3)
  })

  it("unsolicited blocks are tolerated up to maxUnsolicited, then close with protocol", () => {
    const d = downloading({ config: { maxUnsolicited: 2 } })
    const stray = E.BlockReceived({ index: 39, begin: 999, length: 16384, accepted: false })
    expect(PeerState.expects(d.state, 39, 999, 16384)).toBe(false)
    expect(closeOf(d.run(stray))).toBeUndefined()
    expect(closeOf(d.run(stray))).toBeUndefined()
    expect(closeOf(d.run(stray))?.reason).toBe("protocol")
  })

  it("a block of the wrong size for a request in flight closes with protocol at once", () => {
    const d = downloading()
    const asked = d.state.outstanding[0]!
    const short = E.BlockReceived({ index: asked.index, begin: asked.begin, length: asked.length - 1, accepted: false })
    const error = closeOf(d.run(short))
    expect(error?.reason).toBe("protocol")
    expect(error?.detail).toContain(`block of ${asked.length - 1} bytes for a request of ${asked.length}`)
  })

  it("requests while we choke: rejected with fast, a protocol violation beyond the tolerance", () => {
    const d = downloading({ config: { maxRequestsWhileChoked: 2 } })
    const req = msg(Message.Request({ index: 1, begin: 0, length: 16384 }))
    expect(sent(d.run(req))).toEqual(["Reject"])
    expect(sent(d.run(req))).toEqual(["Reject"])
    expect(closeOf(d.run(req))?.reason).toBe("protocol")
    const e = downloading({ reserved: reservedNone })
    expect(sent(e.run(req))).toEqual([])
  })

  it("requests from a peer we unchoked go up to the torrent", () => {
    const d = downloading()
    expect(sent(d.run(E.UnchokePeer()))).toEqual(["Unchoke"])
    const cmds = d.run(msg(Message.Request({ index: 1, begin: 0, length: 100 })))
    expect(emitted(cmds)).toEqual([PeerState.Upward.PeerRequest({ index: 1, begin: 0, length: 100 })])
  })

  it("nothing to request: stays starved until a block, a tick, a have or requestMore", () => {
    let supply = 0
    const source = blockSource()
    const d = downloading({}, (max) => source(Math.min(max, supply)))
    expect(d.state.outstanding.length).toBe(0)
    expect(d.state.starved).toBe(true)
    expect(d.run(msg(Message.KeepAlive())).filter((c) => c._tag === "WantRequests")).toEqual([])
    supply = 2
    expect(sent(d.run(E.RequestMore()))).toEqual(["Request", "Request"])
  })

  it("more blocks than asked for come back as Returned; duplicates too", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    d.run(msg(Message.HaveAll()))
    d.run(E.SetInterested({ interested: true }))
    d.run(msg(Message.Unchoke())) // the driver answers nothing
    const blocks = blockSource()(6)
    const cmds = d.run(E.RequestsChosen({ blocks: [blocks[0]!, blocks[0]!, ...blocks.slice(1)] }))
    expect(sent(cmds).length).toBe(4)
    expect(emitted(cmds)).toEqual([PeerState.Upward.Returned({ blocks: [blocks[0]!, blocks[4]!, blocks[5]!] })])
  })

  it("cancel sends cancels for requests in flight and forgets them", () => {
    const d = downloading({}, () => [])
    d.run(E.RequestsChosen({ blocks: blockSource()(3) }))
    const [a, b] = d.state.outstanding
    const cmds = d.run(E.Cancel({ blocks: [a!, { index: 99, begin: 0, length: 1 }, b!] }))
    expect(sent(cmds)).toEqual(["Cancel", "Cancel"])
    expect(d.state.outstanding.length).toBe(1)
  })

  it("sendHave, choke and unchoke of the peer", () => {
    const d = downloading()
    expect(sent(d.run(E.SendHave({ index: 5 })))).toEqual(["Have"])
    expect(sent(d.run(E.SendHave({ index: pieceCount })))).toEqual([])
    expect(sent(d.run(E.ChokePeer()))).toEqual([]) // already choking
    expect(sent(d.run(E.UnchokePeer()))).toEqual(["Unchoke"])
    expect(sent(d.run(E.ChokePeer()))).toEqual(["Choke"])
  })
})

describe("PeerState: deadlines", () => {
  const c = PeerState.defaults

  it("connect deadline", () => {
    const d = new Driver(make())
    expect(d.run(tick(), c.connectTimeout - 1)).toEqual([])
    expect(closeOf(d.run(tick(), c.connectTimeout))?.reason).toBe("connect-timeout")
  })

  it("handshake deadline", () => {
    const d = new Driver(make())
    d.run(E.Connected(), 100)
    expect(closeOf(d.run(tick(), 100 + c.handshakeTimeout - 1))).toBeUndefined()
    expect(closeOf(d.run(tick(), 100 + c.handshakeTimeout))?.reason).toBe("handshake-timeout")
  })

  it("introduction deadline", () => {
    const d = new Driver(make())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }), 50)
    expect(closeOf(d.run(tick(), 50 + c.introductionTimeout))?.reason).toBe("introduction-timeout")
  })

  it("the optional choked deadline closes a peer that never unchokes us", () => {
    const d = new Driver(make({ config: { chokedTimeout: 30_000 } }))
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    d.run(msg(Message.HaveAll()))
    expect(d.state.phaseDeadline).toBeUndefined() // not interested: no deadline
    d.run(E.SetInterested({ interested: true }), 1000)
    expect(d.state.phaseDeadline).toBe(31_000)
    expect(closeOf(d.run(tick(), 31_000))?.reason).toBe("choked-timeout")
  })

  it("an unanswered request marks the peer snubbed, reports its requests, and several in a row drop it", () => {
    const d = downloading()
    const deadline = d.state.requestDeadline!
    const cmds = d.run(tick(), deadline)
    expect(d.state.snubbed).toBe(true)
    expect(PeerState.pipelineLimit(d.state)).toBe(1)
    const timeout = emitted(cmds).find((e) => e._tag === "RequestTimeout")
    expect(timeout?._tag === "RequestTimeout" && timeout.blocks.length).toBe(4)
    d.run(tick(), deadline + c.requestTimeout)
    expect(closeOf(d.run(tick(), deadline + 2 * c.requestTimeout))?.reason).toBe("snubbed")
  })

  it("a block clears the snub", () => {
    const d = downloading()
    d.run(tick(), d.state.requestDeadline!)
    d.run(E.BlockReceived({ ...d.state.outstanding[0]!, accepted: true }))
    expect(d.state.snubbed).toBe(false)
    expect(d.state.snubCount).toBe(0)
  })

  it("keep-alive after our silence, idle drop after the peer's", () => {
    const d = downloading({}, () => [])
    const t0 = d.now
    expect(sent(d.run(tick(1), t0 + c.keepAliveInterval - 1))).toEqual([])
    expect(sent(d.run(tick(1), t0 + c.keepAliveInterval))).toEqual(["KeepAlive"])
    const heard = d.now
    expect(closeOf(d.run(tick(0), heard + c.idleTimeout - 1))).toBeUndefined()
    expect(closeOf(d.run(tick(0), heard + c.idleTimeout))?.reason).toBe("idle")
  })

  it("while reading is paused neither silence nor unanswered requests count against the peer", () => {
    const d = downloading()
    const t0 = d.now
    for (let t = t0; t <= t0 + 2 * c.idleTimeout; t += 1000) d.run(tick(0, true), t)
    expect(d.state.phase).toBe("Downloading")
    expect(d.state.snubbed).toBe(false)
  })

  it("after slow start the pipeline follows rate × target latency, capped by reqq", () => {
    const d = downloading({}, blockSource())
    // Rate stops growing: two ticks of 100 blocks per second.
    d.state = { ...d.state, slowStart: true, pipeline: 4 }
    d.run(E.MessageReceived({ message: Message.KeepAlive() }))
    d.state = { ...d.state, tickBytes: 100 * 16384 }
    d.run(tick(1), d.now + 1000)
    d.state = { ...d.state, tickBytes: 100 * 16384 }
    d.run(tick(1), d.now + 1000)
    expect(d.state.slowStart).toBe(false)
    expect(PeerState.pipelineLimit(d.state)).toBe(100)
    expect(d.state.outstanding.length).toBe(100)
    d.state = { ...d.state, peerReqq: 30 }
    expect(PeerState.pipelineLimit(d.state)).toBe(30)
  })
})

describe("PeerState: closing", () => {
  it("a closed state ignores every event", () => {
    const d = downloading()
    d.run(E.RemoteClosed({ detail: "eof" }))
    expect(d.state.phase).toBe("Closed")
    expect(d.state.error?.reason).toBe("closed")
    expect(d.run(msg(Message.Unchoke()))).toEqual([])
    expect(d.run(tick(), 1e9)).toEqual([])
  })

  it("decode failures and local closes carry their reason", () => {
    const d = downloading()
    const err = new WireError({ reason: "frame-too-large", offset: 0, detail: "x" })
    expect(closeOf(d.run(E.DecodeFailed({ error: err })))?.reason).toBe("protocol")
    const e = downloading()
    expect(closeOf(e.run(E.CloseLocal({ reason: "local", detail: "not needed" })))?.message).toContain("not needed")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Random event sequences

type Action =
  | { readonly kind: "event"; readonly event: PeerState.Event }
  | { readonly kind: "answer"; readonly k: number } // the block of the k-th request in flight arrives
  | { readonly kind: "reject"; readonly k: number }
  | { readonly kind: "cancel"; readonly k: number }
  | { readonly kind: "tick"; readonly dt: number; readonly received: number; readonly paused: boolean }
  | { readonly kind: "supply"; readonly n: number } // how many blocks the torrent hands out per ask from now on

const control: FastCheck.Arbitrary<Message.Control> = FastCheck.oneof(
  {
    weight: 8,
    arbitrary: FastCheck.constantFrom<Message.Control>(
      Message.KeepAlive(),
      Message.Choke(),
      Message.Unchoke(),
      Message.Unchoke(),
      Message.Interested(),
      Message.NotInterested()
    )
  },
  { weight: 4, arbitrary: FastCheck.integer({ min: 0, max: pieceCount - 1 }).map((index) => Message.Have({ index })) },
  {
    weight: 2,
    arbitrary: FastCheck.record({
      index: FastCheck.nat(50),
      begin: FastCheck.nat(1 << 20),
      length: FastCheck.nat(16384)
    }).map(Message.Request)
  },
  { weight: 1, arbitrary: FastCheck.integer({ min: 1, max: 300 }).map((reqq) =>
    Message.Extended({ id: 0, payload: PeerState.extensionHandshake(PeerState.config({ maxPipeline: reqq })) })
  ) },
  { weight: 1, arbitrary: FastCheck.constant(Message.Port({ port: 1 })) },
  // BEP 6 hints: allowed-fast pieces (some out of range) and suggestions.
  { weight: 2, arbitrary: FastCheck.nat(45).map((index) => Message.AllowedFast({ index })) },
  { weight: 1, arbitrary: FastCheck.nat(45).map((index) => Message.Suggest({ index })) },
  // Rare: late introductions (updates), malformed bitfields and have out of range (violations).
  {
    weight: 1,
    arbitrary: FastCheck.oneof(
      FastCheck.constantFrom<Message.Control>(Message.HaveAll(), Message.HaveNone()),
      FastCheck.integer({ min: pieceCount, max: pieceCount + 2 }).map((index) => Message.Have({ index })),
      FastCheck.uint8Array({ minLength: 4, maxLength: 6 }).map((bytes) => Message.Bitfield({ bytes }))
    )
  }
)

const handshake = (fast: boolean, wrong = false, self = false) =>
  E.HandshakeReceived({
    handshake: {
      reserved: fast ? reservedAll : reservedNone,
      infoHash: wrong ? (new Uint8Array(20).fill(7) as typeof infoHash) : infoHash,
      peerId: self ? ourId : theirHandshake().peerId
    },
    ours: noPieces
  })

const event: FastCheck.Arbitrary<PeerState.Event> = FastCheck.oneof(
  { weight: 1, arbitrary: FastCheck.constant(E.Connected()) },
  {
    weight: 1,
    arbitrary: FastCheck.record({ fast: FastCheck.boolean(), wrong: FastCheck.boolean(), self: FastCheck.boolean() })
      .map(({ fast, wrong, self }) => handshake(fast, wrong, self))
  },
  { weight: 30, arbitrary: control.map((message) => E.MessageReceived({ message })) },
  { weight: 6, arbitrary: FastCheck.boolean().map((interested) => E.SetInterested({ interested })) },
  {
    weight: 4,
    arbitrary: FastCheck.constantFrom(E.RequestMore(), E.ChokePeer(), E.UnchokePeer(), E.SendHave({ index: 2 }))
  },
  {
    weight: 1,
    arbitrary: FastCheck.array(FastCheck.nat(45), { maxLength: 8 }).map((indices) => E.AllowFast({ indices }))
  },
  { weight: 1, arbitrary: FastCheck.constant(E.SendExtended({ id: 3, payload: new Uint8Array([100, 101]) })) },
  {
    weight: 1,
    arbitrary: FastCheck.record({ index: FastCheck.nat(45), begin: FastCheck.nat(3) })
      .map(({ index, begin }) => E.BlockReceived({ index, begin, length: 16384, accepted: true }))
  },
  {
    weight: 1,
    arbitrary: FastCheck.constantFrom(
      E.RemoteClosed({ detail: "eof" }),
      E.CloseLocal({ reason: "local", detail: "test" }),
      E.DecodeFailed({ error: new WireError({ reason: "bad-length", offset: 0, detail: "x" }) })
    )
  }
)

const action: FastCheck.Arbitrary<Action> = FastCheck.oneof(
  { weight: 8, arbitrary: event.map((e): Action => ({ kind: "event", event: e })) },
  { weight: 12, arbitrary: FastCheck.nat(300).map((k): Action => ({ kind: "answer", k })) },
  { weight: 2, arbitrary: FastCheck.nat(300).map((k): Action => ({ kind: "reject", k })) },
  { weight: 2, arbitrary: FastCheck.nat(300).map((k): Action => ({ kind: "cancel", k })) },
  {
    weight: 6,
    arbitrary: FastCheck.record({
      dt: FastCheck.oneof(
        { weight: 8, arbitrary: FastCheck.nat(3000) },
        { weight: 1, arbitrary: FastCheck.nat(60_000) }
      ),
      received: FastCheck.oneof(FastCheck.constant(0), FastCheck.nat(1 << 20)),
      paused: FastCheck.boolean()
    }).map((t): Action => ({ kind: "tick", ...t }))
  },
  { weight: 1, arbitrary: FastCheck.nat(300).map((n): Action => ({ kind: "supply", n })) }
)

/** Mostly a valid opening (connect, handshake, introduction, interest, unchoke), sometimes none. */
const opening = (inbound: boolean, fast: boolean): FastCheck.Arbitrary<ReadonlyArray<Action>> =>
  FastCheck.oneof(
    { weight: 1, arbitrary: FastCheck.constant([]) },
    {
      weight: 5,
      arbitrary: FastCheck.constant([
        ...(inbound ? [] : [E.Connected()]),
        handshake(fast),
        E.MessageReceived({
          message: fast ? Message.HaveAll() : Message.Bitfield({ bytes: Bitfield.full(pieceCount).bytes })
        }),
        E.SetInterested({ interested: true }),
        E.MessageReceived({ message: Message.Unchoke() })
      ].map((event): Action => ({ kind: "event", event })))
    }
  )

const scenario = FastCheck.record({
  inbound: FastCheck.boolean(),
  fast: FastCheck.boolean(),
  chokedTimeout: FastCheck.constantFrom(undefined, 5_000)
}).chain((o) =>
  FastCheck.tuple(opening(o.inbound, o.fast), FastCheck.array(action, { minLength: 10, maxLength: 200, size: "max" }))
    .map(([head, tail]) => ({ ...o, actions: [...head, ...tail] }))
)

const key = (b: PeerState.BlockRef) => `${b.index}/${b.begin}/${b.length}`

describe("PeerState: extensions, DHT port, fast-extension hints", () => {
  it("while choked, requests only the peer's allowed-fast pieces; unchoked, anything", () => {
    const d = new Driver(make(), blockSource())
    d.run(E.Connected())
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
    d.run(msg(Message.HaveAll()))
    d.run(E.SetInterested({ interested: true }))
    expect(d.state.phase).toBe("Choked")
    // The torrent answers with blocks of pieces 0 and 5; only piece 5 is allowed.
    d.answer = (max) => [
      { index: 0, begin: 0, length: 16384 },
      ...Array.from({ length: Math.min(max, 4) }, (_, i) => ({ index: 5, begin: i * 16384, length: 16384 }))
    ]
    const cmds = d.run(msg(Message.AllowedFast({ index: 5 })))
    const want = cmds.find((c) => c._tag === "WantRequests")
    expect(want?._tag === "WantRequests" ? want.only : undefined).toEqual([5])
    const requested = cmds.flatMap((c) => (c._tag === "Send" && c.message._tag === "Request" ? [c.message.index] : []))
    expect(requested.length).toBeGreaterThan(0)
    expect(new Set(requested)).toEqual(new Set([5]))
    expect(emitted(cmds).some((e) => e._tag === "Returned" && e.blocks.some((b) => b.index === 0))).toBe(true)
    expect(emitted(cmds).map((e) => e._tag)).toContain("AllowedFast")
  })

  it("granted allowed-fast pieces are requested from us while we choke; others are rejected", () => {
    const d = new Driver(make({ direction: "inbound" }))
    d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: Bitfield.full(pieceCount) }))
    expect(sent(d.run(E.AllowFast({ indices: [3, 3, 7, 99] })))).toEqual(["AllowedFast", "AllowedFast"])
    expect(d.state.grantedFast).toEqual([3, 7])
    const ok = d.run(msg(Message.Request({ index: 7, begin: 0, length: 16384 })))
    expect(emitted(ok).map((e) => e._tag)).toEqual(["PeerRequest"])
    const no = d.run(msg(Message.Request({ index: 8, begin: 0, length: 16384 })))
    expect(sent(no)).toEqual(["Reject"])
    // Without the fast extension nothing is granted.
    const plain = new Driver(make({ direction: "inbound", reserved: reservedNone }))
    plain.run(E.HandshakeReceived({ handshake: theirHandshake(reservedNone), ours: noPieces }))
    expect(sent(plain.run(E.AllowFast({ indices: [1] })))).toEqual([])
  })

  it("a hybrid accepts its truncated v2 hash in the peer's handshake (BEP 52 upgrade) and answers inbound with it", () => {
    const v2InfoHash = new Uint8Array(20).fill(0xb2) as typeof infoHash
    const hybrid = (direction: "outbound" | "inbound", v2: typeof infoHash | undefined) =>
      new Driver(PeerState.initial({
        config: PeerState.config(),
        address: "10.0.0.1:6881",
        direction,
        infoHash,
        v2InfoHash: v2,
        peerId: ourId,
        reserved: Handshake.reserved({ fast: true, extensionProtocol: true, v2: true }),
        pieceCount
      }, 0))
    const upgraded = { ...theirHandshake(), infoHash: v2InfoHash }
    // outbound: we sent the v1 hash, libtorrent answers with the v2 one
    const out = hybrid("outbound", v2InfoHash)
    out.run(E.Connected())
    expect(closeOf(out.run(E.HandshakeReceived({ handshake: upgraded, ours: noPieces })))).toBeUndefined()
    expect(out.state.phase).toBe("Introducing")
    // inbound: the peer dialled the v2 swarm; our handshake names it back
    const inbound = hybrid("inbound", v2InfoHash)
    const cmds = inbound.run(E.HandshakeReceived({ handshake: upgraded, ours: noPieces }))
    const ours = cmds.flatMap((c) => (c._tag === "SendHandshake" ? [c.handshake] : []))
    expect(ours.map((h) => Array.from(h.infoHash))).toEqual([Array.from(v2InfoHash)])
    // a torrent without a v2 half refuses that hash
    const v1 = hybrid("outbound", undefined)
    v1.run(E.Connected())
    expect(closeOf(v1.run(E.HandshakeReceived({ handshake: upgraded, ours: noPieces })))?.reason).toBe("wrong-info-hash")
  })

  it("metadata-only sessions accept any bitfield and haves unchecked, and pass them on to nobody", () => {
    const s0 = PeerState.initial({
      config: PeerState.config(),
      address: "10.0.0.1:6881",
      direction: "outbound",
      infoHash,
      peerId: ourId,
      reserved: reservedAll,
      pieceCount: 0,
      metadataOnly: true
    }, 0)
    const d = new Driver(s0)
    d.run(E.Connected())
    expect(sent(d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: Bitfield.make(0) }))))
      .toEqual(["HaveNone", "Extended"])
    const cmds = [
      ...d.run(msg(Message.Bitfield({ bytes: new Uint8Array(123) }))),
      ...d.run(msg(Message.Have({ index: 9999 }))),
      ...d.run(msg(Message.AllowedFast({ index: 3 })))
    ]
    expect(closeOf(cmds)).toBeUndefined()
    expect(emitted(cmds)).toEqual([])
    expect(d.state.phase).toBe("Choked")
    expect(sent(d.run(E.SendHave({ index: 0 })))).toEqual([])
  })

  it("sends our extension handshake and DHT port; passes on the peer's port, suggestions and extended messages", () => {
    const reserved = Handshake.reserved({ fast: true, extensionProtocol: true, dht: true })
    const d = new Driver(make({ reserved }))
    d.run(E.Connected())
    const payload = new Uint8Array([100, 101])
    const hs = d.run(E.HandshakeReceived({ handshake: theirHandshake(reserved), ours: noPieces, extensions: payload, dhtPort: 6881 }))
    expect(sent(hs)).toEqual(["HaveNone", "Extended", "Port"])
    expect(hs.some((c) => c._tag === "Send" && c.message._tag === "Extended" && c.message.payload === payload)).toBe(true)
    expect(emitted(d.run(msg(Message.Port({ port: 7000 }))))).toEqual([PeerState.Upward.Port({ port: 7000 })])
    expect(emitted(d.run(msg(Message.Suggest({ index: 4 }))))).toEqual([PeerState.Upward.Suggest({ index: 4 })])
    expect(sent(d.run(E.SendExtended({ id: 2, payload })))).toEqual(["Extended"])
    expect(sent(d.run(E.SendExtended({ id: 0, payload })))).toEqual([])
    // No DHT bit on their side: no port message.
    const e = new Driver(make({ reserved }))
    e.run(E.Connected())
    expect(sent(e.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces, dhtPort: 6881 }))))
      .toEqual(["HaveNone", "Extended"])
  })
})

/** After a valid fast opening: a random mix of have, bitfield (right size), have-all, have-none and keep-alives. */
const announcements: FastCheck.Arbitrary<ReadonlyArray<Message.Control>> = FastCheck.array(
  FastCheck.oneof(
    FastCheck.nat(pieceCount - 1).map((index) => Message.Have({ index })),
    // 40 pieces: five whole bytes, no spare bits.
    FastCheck.uint8Array({ minLength: 5, maxLength: 5 }).map((bytes) => Message.Bitfield({ bytes })),
    FastCheck.constantFrom<Message.Control>(Message.HaveAll(), Message.HaveNone(), Message.KeepAlive())
  ),
  { maxLength: 60 }
)

describe("PeerState: late introductions", () => {
  it.prop(
    "with the fast extension, have / bitfield / have-all / have-none in any order and number never close, and each " +
      "goes up in order",
    [announcements, FastCheck.boolean()],
    ([messages, unchoked]) => {
      const d = unchoked ? downloading() : new Driver(make())
      if (!unchoked) {
        d.run(E.Connected())
        d.run(E.HandshakeReceived({ handshake: theirHandshake(), ours: noPieces }))
      }
      const updates = new Set(["Have", "Bitfield", "HaveAll", "HaveNone"])
      const up: Array<string> = []
      for (const m of messages) {
        const cmds = d.run(msg(m))
        expect(closeOf(cmds)).toBeUndefined()
        up.push(...emitted(cmds).flatMap((e) => (updates.has(e._tag) ? [e._tag] : [])))
      }
      expect(up).toEqual(
        messages.filter((m) => m._tag !== "KeepAlive").map((m) => m._tag)
      )
      const introduced = unchoked || messages.some((m) => m._tag !== "KeepAlive")
      expect(d.state.phase).toBe(unchoked ? "Downloading" : introduced ? "Choked" : "Introducing")
    },
    { fastCheck: { numRuns: 200 } }
  )
})

describe("PeerState: random event sequences", () => {
  it.prop(
    "never throws, keeps its invariants, and accounts for every block it was handed",
    [scenario],
    ([{ actions, chokedTimeout, fast, inbound }]) => {
      const config = { minPipeline: 2, maxPipeline: 40, maxUnsolicited: 5, chokedTimeout }
      let supply = 10
      const source = blockSource()
      const d = new Driver(
        make({ direction: inbound ? "inbound" : "outbound", config, reserved: fast ? reservedAll : reservedNone }),
        (max) => source(Math.min(max + (supply % 3 === 0 ? 2 : 0), supply))
      )
      // The session's way of stepping (in place on the per-block events), fed the same events: same states and
      // commands.
      const ownedSource = blockSource()
      const owned = new Driver(
        make({ direction: inbound ? "inbound" : "outbound", config, reserved: fast ? reservedAll : reservedNone }),
        (max) => ownedSource(Math.min(max + (supply % 3 === 0 ? 2 : 0), supply)),
        true
      )
      const handedOut = new Set<string>()
      let closes = 0
      let wasClosed = false
      for (const a of actions) {
        const out = d.state.outstanding
        const prev = d.state
        const prevCopy = { ...prev, outstanding: [...prev.outstanding], dropped: [...prev.dropped] }
        const prevOutstanding = prev.outstanding
        let cmds: Array<PeerState.Command>
        const both = (event: PeerState.Event, at?: number) => {
          const ownedCmds = owned.run(event, at)
          const cmds = d.run(event, at)
          expect(ownedCmds).toEqual(cmds)
          return cmds
        }
        switch (a.kind) {
          case "event":
            cmds = both(a.event)
            break
          case "answer": {
            const b = out[a.k % Math.max(1, out.length)]
            cmds = b === undefined
              ? []
              : both(E.BlockReceived({ index: b.index, begin: b.begin, length: b.length, accepted: true }))
            break
          }
          case "reject": {
            const b = out.length > 0 ? out[a.k % out.length]! : { index: 1, begin: 1, length: 1 }
            cmds = both(msg(Message.Reject({ index: b.index, begin: b.begin, length: b.length })))
            break
          }
          case "cancel": {
            const b = out.length > 0 ? out[a.k % out.length]! : { index: 1, begin: 1, length: 1 }
            cmds = both(E.Cancel({ blocks: [b] }))
            break
          }
          case "tick":
            cmds = both(tick(a.received, a.paused), d.now + a.dt)
            break
          case "supply":
            supply = a.n
            cmds = []
            break
        }
        expect(owned.state).toEqual(d.state)
        // Bookkeeping of blocks handed out by the torrent and handed back by the session: a block leaves the
        // session's hands when it arrives, is cancelled, or is returned upward.
        if (!wasClosed) {
          const arrived = a.kind === "answer" ? out[a.k % Math.max(1, out.length)] : a.kind === "event" &&
              a.event._tag === "BlockReceived" ? a.event : undefined
          if (arrived !== undefined && out.some((b) => key(b) === key(arrived))) handedOut.delete(key(arrived))
        }
        for (const c of cmds) {
          if (c._tag === "Send" && c.message._tag === "Request") handedOut.add(key(c.message))
          if (c._tag === "Send" && c.message._tag === "Cancel") handedOut.delete(key(c.message))
        }
        for (const e of emitted(cmds)) {
          if (e._tag === "Choked") e.returned.forEach((b) => handedOut.delete(key(b)))
          if (e._tag === "Returned") e.blocks.forEach((b) => handedOut.delete(key(b)))
        }
        // Invariants.
        const s = d.state
        if (wasClosed) expect(cmds).toEqual([])
        const closeCmds = cmds.filter((c) => c._tag === "Close")
        closes += closeCmds.length
        if (closeCmds.length > 0) expect(cmds[cmds.length - 1]!._tag).toBe("Close")
        expect(closes).toBe(s.phase === "Closed" ? 1 : 0)
        wasClosed = s.phase === "Closed"
        if (s.phase === "Downloading") expect(!s.peerChoking && s.amInterested).toBe(true)
        expect(s.outstanding.length).toBeLessThanOrEqual(config.maxPipeline)
        if (s.phase === "Connecting" || s.phase === "Handshaking" || s.phase === "Introducing") {
          expect(s.phaseDeadline).toBeGreaterThan(d.now)
        }
        if (s.phase !== "Closed" && s.outstanding.length > 0) expect(s.requestDeadline).toBeDefined()
        if (s.phase === "Choked" && s.amInterested && s.peerChoking && chokedTimeout !== undefined) {
          expect(s.phaseDeadline).toBeDefined()
        }
        if (s.phase !== "Closed") expect(new Set(s.outstanding.map(key))).toEqual(handedOut)
        for (const c of cmds) if (c._tag === "WantRequests") expect(c.max).toBeGreaterThan(0)
        // BEP 6: while the peer chokes us only allowed-fast pieces are requested; while we choke it only granted
        // pieces' requests go up; both sets stay bounded.
        for (const c of cmds) {
          if (c._tag === "Send" && c.message._tag === "Request" && s.peerChoking) {
            expect(s.allowedFast).toContain(c.message.index)
          }
        }
        for (const e of emitted(cmds)) if (e._tag === "PeerRequest" && s.amChoking) expect(s.grantedFast).toContain(e.index)
        expect(s.allowedFast.length).toBeLessThanOrEqual(PeerState.maxAllowedFast)
        expect(s.grantedFast.length).toBeLessThanOrEqual(PeerState.maxAllowedFast)
        // Batched top-ups never leave a downloading peer idle: an empty pipeline always asks (starved: nothing came).
        if (s.phase === "Downloading" && !s.starved) expect(s.outstanding.length).toBeGreaterThan(0)
        // A step never changes the state it was given (it copies once, then patches its copy).
        expect(prev).toEqual(prevCopy)
        expect(prev.outstanding).toBe(prevOutstanding)
      }
    },
    { fastCheck: { numRuns: 200 }, timeout: 120_000 }
  )
})
