/**
 * The uTP state machine, in virtual time (test/net/utpSim.ts: two endpoints, a simulated network, a tick every
 * 10 ms, acks deferred to the end of each instant as the socket manager does).
 *
 * - Property: random byte streams (one way or both ways, written in random pieces, the reader pausing at random)
 *   cross a link with random loss, duplication, delay and jitter (reordering), starting from random sequence
 *   numbers (wrap-around included); they arrive exactly and in order, both ends close cleanly (FIN both ways, state
 *   released), no packet is sent more than `maxTransmissions` times, new data never goes past min(cwnd, peer
 *   window), the receiver never holds more than its window, cwnd stays within [minWindow, maxWindow].
 * - A clean link costs no retransmission; sequence numbers wrap.
 * - Handshake: lost SYNs are resent, an unanswered SYN fails typed, a RESET refuses, a duplicate SYN is answered.
 * - Loss recovery: a selective ack with a hole followed by 3 acked packets, or 3 duplicate acks, resends at once;
 *   the retransmission timeout follows BEP 29 (rtt + 4·rtt_var, at least 500 ms, doubled on expiry).
 * - LEDBAT: cwnd shrinks on acks whose delay is above target and grows below it (property); through a bottleneck,
 *   the queueing delay settles at the target (100 ms, and 25 ms when configured so) with the link kept busy.
 * - Pause closes the window (zero advertised, the sender stops), resume reopens it; keep-alive; abort sends RESET.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as UtpConnection from "../../src/net/UtpConnection.ts"
import * as UtpPacket from "../../src/net/UtpPacket.ts"
import * as Sim from "./utpSim.ts"

const E = UtpConnection.Event
const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

/** Invariants checked after every step of both endpoints. */
const invariants: Sim.EndpointCheck = {
  afterStep: (s, sentNewData) => {
    const c = s.config
    if (s.cwnd < c.minWindow || s.cwnd > c.maxWindow) throw new Error(`cwnd ${s.cwnd} outside its bounds`)
    if (sentNewData && s.inflight > Math.max(Math.min(s.cwnd, s.peerWindow), UtpConnection.maxPayload(s))) {
      throw new Error(`window overflow: ${s.inflight} in flight, cwnd ${s.cwnd}, peer window ${s.peerWindow}`)
    }
    if (s.inBytes + s.heldBytes > c.receiveWindow) {
      throw new Error(`receive buffer overflow: ${s.inBytes + s.heldBytes} > ${c.receiveWindow}`)
    }
    if (s.ringCount > c.maxPacketsInFlight) throw new Error(`${s.ringCount} packets in flight`)
    if (s.inflight < 0 || s.unacked < s.inflight) throw new Error(`in-flight accounting broken: ${s.inflight}`)
  }
}

interface Scenario {
  readonly seed: number
  readonly link: Sim.LinkParams
  readonly back: Sim.LinkParams
  readonly sizeA: number
  readonly sizeB: number
  readonly chunk: number
  readonly seqA: number
  readonly seqB: number
  readonly pauses: ReadonlyArray<readonly [at: number, length: number]>
  readonly receiveWindow: number
  readonly ackDelay: number
}

const link: FastCheck.Arbitrary<Sim.LinkParams> = FastCheck.record({
  loss: FastCheck.double({ min: 0, max: 0.2, noNaN: true }),
  duplicate: FastCheck.double({ min: 0, max: 0.1, noNaN: true }),
  delay: FastCheck.integer({ min: 1_000, max: 80_000 }),
  jitter: FastCheck.integer({ min: 0, max: 60_000 })
})

const scenario: FastCheck.Arbitrary<Scenario> = FastCheck.record({
  seed: FastCheck.integer(),
  link,
  back: link,
  sizeA: FastCheck.integer({ min: 0, max: 120_000 }),
  sizeB: FastCheck.oneof(FastCheck.constant(0), FastCheck.integer({ min: 0, max: 60_000 })),
  chunk: FastCheck.integer({ min: 1, max: 20_000 }),
  seqA: FastCheck.oneof(FastCheck.integer({ min: 0, max: 0xffff }), FastCheck.integer({ min: 0xffe0, max: 0xffff })),
  seqB: FastCheck.integer({ min: 0, max: 0xffff }),
  pauses: FastCheck.array(
    FastCheck.tuple(FastCheck.integer({ min: 0, max: 3_000_000 }), FastCheck.integer({ min: 1, max: 2_000_000 })),
    { maxLength: 3 }
  ),
  receiveWindow: FastCheck.constantFrom(16 * 1024, 64 * 1024, 1024 * 1024),
  ackDelay: FastCheck.constantFrom(0, 5_000)
})

/** Runs one scenario: `a` dials and sends `sizeA` bytes, `b` sends `sizeB`; `a` closes once it has all of b's. */
const transfer = (sc: Scenario) => {
  // Up to 20 % loss: give the SYN and data packets enough tries that giving up is not a plausible outcome.
  const config = {
    maxTransmissions: 16,
    synTransmissions: 16,
    receiveWindow: sc.receiveWindow,
    closeTimeout: 120_000_000,
    ackDelay: sc.ackDelay
  }
  const p = Sim.pair({
    seed: sc.seed,
    ab: sc.link,
    ba: sc.back,
    configA: config,
    configB: config,
    seqA: sc.seqA,
    seqB: sc.seqB,
    check: invariants
  })
  const dataA = Sim.randomBytes(sc.seed, sc.sizeA)
  const dataB = Sim.randomBytes(sc.seed + 1, sc.sizeB)
  const writeAll = (e: Sim.Endpoint, data: Uint8Array) => {
    for (let i = 0; i < data.length; i += sc.chunk) {
      e.write(data.subarray(i, Math.min(data.length, i + sc.chunk)), () => {})
    }
  }
  let started = false
  let closed = false
  for (const [at, length] of sc.pauses) {
    p.sim.at(at, () => p.b.dispatch(E.Pause()))
    p.sim.at(at + length, () => {
      p.b.dispatch(E.Resume())
      p.b.scheduleFlush()
    })
  }
  const finished = p.sim.run(3_600_000_000, () => {
    if (!started && p.a.connected && p.b.state !== undefined) {
      started = true
      writeAll(p.a, dataA)
      writeAll(p.b, dataB)
    }
    if (started && !closed && p.a.received === sc.sizeB) {
      closed = true
      p.a.dispatch(E.Close())
    }
    return p.a.released && p.b.released
  })
  return { p, finished, dataA, dataB }
}

describe("UtpConnection over a simulated lossy link (virtual time)", () => {
  it.prop("transfers random streams exactly, in order, and closes cleanly", [scenario], ([sc]) => {
    const { dataA, dataB, finished, p } = transfer(sc)
    const context = JSON.stringify({ stats: [p.a.state?.stats, p.b.state?.stats], ended: [p.a.ended, p.b.ended] })
    expect(finished, context).toBe(true)
    expect(equalBytes(p.b.bytes(), dataA), context).toBe(true)
    expect(equalBytes(p.a.bytes(), dataB), context).toBe(true)
    expect(p.a.ended).toBe("local")
    expect(p.b.ended).toBe("eof")
    // Every write was taken (copied into packets) exactly once.
    expect(p.a.taken).toBe(Math.ceil(sc.sizeA / sc.chunk))
    // Retransmissions are bounded: no sequence number went out more than maxTransmissions times.
    for (const l of [p.ab, p.ba]) {
      for (const n of l.log.transmissions.values()) expect(n).toBeLessThanOrEqual(16)
    }
  }, { fastCheck: { numRuns: 60 } })

  it("costs no retransmission on a clean link, and wraps sequence numbers", () => {
    const { dataA, finished, p } = transfer({
      seed: 7,
      link: { loss: 0, duplicate: 0, delay: 15_000, jitter: 0 },
      back: { loss: 0, duplicate: 0, delay: 15_000, jitter: 0 },
      sizeA: 400_000,
      sizeB: 0,
      chunk: 3000,
      seqA: 0xfff0,
      seqB: 0xffe0,
      pauses: [],
      receiveWindow: 1024 * 1024,
      ackDelay: 0
    })
    expect(finished).toBe(true)
    expect(equalBytes(p.b.bytes(), dataA)).toBe(true)
    expect(p.a.state!.stats.retransmissions).toBe(0)
    expect(p.b.state!.stats.retransmissions).toBe(0)
    // 400 kB in 1380-byte packets from 0xfff1: the sequence numbers wrapped.
    expect(UtpPacket.seqLess(0xfff1, p.a.state!.seqNr)).toBe(true)
    expect(p.a.state!.seqNr).toBeLessThan(0xfff0)
    expect([...p.ab.log.transmissions.values()].every((n) => n === 1)).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Scripted exchanges: one machine, packets written by the test.

const cfg = UtpConnection.config()
const sends = (actions: ReadonlyArray<UtpConnection.Action>) =>
  actions.flatMap((a) => {
    if (a._tag !== "Send") return []
    const p = UtpPacket.parse(a.packet)
    if (p instanceof UtpPacket.UtpPacketError) throw p
    return [p]
  })

/** A connected initiator (recv id 100, SYN seq 1000) whose peer's next seq is 5000; `now` = 1 s. */
const connected = (overrides: Partial<UtpConnection.Config> = {}) => {
  const [s0] = UtpConnection.connect(UtpConnection.config(overrides), { recvId: 100, seqNr: 1000 }, 0)
  const synAck = UtpPacket.make({
    type: UtpPacket.Type.State,
    connectionId: 100,
    seqNr: 5000,
    ackNr: 1000,
    windowSize: 1 << 20,
    timestamp: 1
  })
  const [s, actions] = UtpConnection.step(s0, E.Packet({ packet: synAck }), 20_000)
  expect(actions.some((a) => a._tag === "Connected")).toBe(true)
  return s
}

const ack = (ackNr: number, fields: Partial<UtpPacket.Packet> = {}) =>
  UtpPacket.make({ type: UtpPacket.Type.State, connectionId: 100, seqNr: 5000, ackNr, windowSize: 1 << 20, ...fields })

describe("UtpConnection handshake", () => {
  it("sends a SYN with its recv id and answers; resends it on timeout, fails typed after synTransmissions", () => {
    const [s, first] = UtpConnection.connect(cfg, { recvId: 0xffff, seqNr: 0xffff }, 0)
    const [syn] = sends(first)
    expect(syn!.type).toBe(UtpPacket.Type.Syn)
    expect(syn!.connectionId).toBe(0xffff)
    expect(s.sendId).toBe(0) // recv id + 1, wrapped
    expect(syn!.seqNr).toBe(0xffff)
    const times: Array<number> = []
    let ended: UtpConnection.Action | undefined
    for (let t = 0; t <= 20_000_000 && ended === undefined; t += 10_000) {
      const [, actions] = UtpConnection.step(s, E.Tick(), t)
      if (sends(actions).some((p) => p.type === UtpPacket.Type.Syn)) times.push(t)
      ended = actions.find((a) => a._tag === "Ended")
    }
    // Sent at 0, resent after 1 s and 2 s more (the timeout doubles), given up 4 s after that.
    expect(times).toEqual([1_000_000, 3_000_000])
    expect(ended).toMatchObject({ _tag: "Ended", reason: "connect-timeout" })
    expect(s.phase).toBe("Closed")
  })

  it("connects on a later answer, and a RESET to the SYN is a refusal", () => {
    const [s] = UtpConnection.connect(cfg, { recvId: 7, seqNr: 10 }, 0)
    // An answer acking something else is ignored.
    const [, ignored] = UtpConnection.step(s, E.Packet({ packet: ack(9, { connectionId: 7 }) }), 5)
    expect(ignored).toEqual([])
    const [, ok] = UtpConnection.step(s, E.Packet({ packet: ack(10, { connectionId: 7, seqNr: 33 }) }), 10)
    expect(ok.map((a) => a._tag)).toContain("Connected")
    expect(s.ackNr).toBe(32)
    const [r] = UtpConnection.connect(cfg, { recvId: 7, seqNr: 10 }, 0)
    const reset = UtpPacket.make({ type: UtpPacket.Type.Reset, connectionId: 7, ackNr: 10 })
    const [, refused] = UtpConnection.step(r, E.Packet({ packet: reset }), 10)
    expect(refused).toContainEqual(UtpConnection.Action.Ended({ reason: "refused", detail: "the peer reset the connection" }))
  })

  it("accepts a SYN (ids swapped, ack of the SYN) and answers a duplicate SYN again", () => {
    const syn = UtpPacket.make({ type: UtpPacket.Type.Syn, connectionId: 500, seqNr: 77, windowSize: 9999, timestamp: 5 })
    const [s, actions] = UtpConnection.accept(cfg, syn, 3000, 1000)
    expect(s.recvId).toBe(501)
    expect(s.sendId).toBe(500)
    const [st] = sends(actions)
    expect(st).toMatchObject({ type: UtpPacket.Type.State, connectionId: 500, seqNr: 3000, ackNr: 77 })
    expect(actions[0]!._tag).toBe("Connected")
    const [, again] = UtpConnection.step(s, E.Packet({ packet: syn }), 2000)
    expect(sends(again)).toMatchObject([{ type: UtpPacket.Type.State, ackNr: 77 }])
  })
})

describe("UtpConnection loss recovery", () => {
  const tenPackets = () => {
    const s = connected()
    s.cwnd = 100_000
    UtpConnection.step(s, E.Write({ bytes: new Uint8Array(10 * 1380) }), 30_000)
    const [, out] = UtpConnection.step(s, E.Flush(), 30_000)
    const data = sends(out)
    expect(data.map((p) => p.seqNr)).toEqual([1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010])
    return s
  }

  it("resends at once the hole a selective ack shows before 3 acked packets", () => {
    const s = tenPackets()
    // ack_nr 1001 received; 1002 missing; bits for 1003, 1004, 1005 set.
    const sack = ack(1001, { extensions: [{ type: 1, data: Uint8Array.of(0b0111, 0, 0, 0) }] })
    const [, out] = UtpConnection.step(s, E.Packet({ packet: sack }), 40_000)
    const resent = sends(out).filter((p) => p.type === UtpPacket.Type.Data)
    expect(resent.map((p) => p.seqNr)).toEqual([1002])
    expect(s.stats.fastRetransmissions).toBe(1)
    expect(s.stats.lossEvents).toBe(1)
    // The same hole is not resent twice by later selective acks.
    const [, again] = UtpConnection.step(s, E.Packet({ packet: sack }), 41_000)
    expect(sends(again).filter((p) => p.seqNr === 1002)).toEqual([])
    // Two acked after a hole are not enough.
    const s2 = tenPackets()
    const [, none] = UtpConnection.step(s2, E.Packet({ packet: ack(1001, { extensions: [{ type: 1, data: Uint8Array.of(0b011, 0, 0, 0) }] }) }), 40_000)
    expect(sends(none).filter((p) => p.type === UtpPacket.Type.Data)).toEqual([])
  })

  it("resends after 3 duplicate acks", () => {
    const s = tenPackets()
    UtpConnection.step(s, E.Packet({ packet: ack(1003) }), 40_000)
    let resent: Array<UtpPacket.Packet> = []
    for (let i = 0; i < 3; i++) {
      const [, out] = UtpConnection.step(s, E.Packet({ packet: ack(1003) }), 41_000 + i)
      resent = resent.concat(sends(out).filter((p) => p.type === UtpPacket.Type.Data))
    }
    expect(resent.map((p) => p.seqNr)).toEqual([1004])
  })

  it("computes the timeout as BEP 29 says and doubles it on expiry", () => {
    const s = tenPackets()
    // The SYN's round trip (20 ms) was the first sample: rtt 20 ms, rtt_var 10 ms → 60 ms, floored at 500 ms.
    expect(s.rtt).toBe(20_000)
    expect(s.rttVar).toBe(10_000)
    expect(s.rto).toBe(500_000)
    // An ack of a packet sent at 30 ms, 2 s later: rtt += (2000 - 20)/8, rtt_var += (|20 - 2000| - 10)/4.
    UtpConnection.step(s, E.Packet({ packet: ack(1001) }), 2_030_000)
    expect(s.rtt).toBeCloseTo(20_000 + 1_980_000 / 8)
    expect(s.rttVar).toBeCloseTo(10_000 + 1_970_000 / 4)
    expect(s.rto).toBeCloseTo(s.rtt + 4 * s.rttVar)
    const rto = s.rto
    const deadline = s.rtoDeadline!
    expect(deadline).toBeCloseTo(2_030_000 + rto)
    const [, early] = UtpConnection.step(s, E.Tick(), deadline - 1)
    expect(sends(early)).toEqual([])
    const [, out] = UtpConnection.step(s, E.Tick(), deadline)
    // Every packet in flight counts as lost; cwnd falls to minWindow (2 packets): the first two go out again.
    expect(sends(out).map((p) => p.seqNr)).toEqual([1002, 1003])
    expect(s.rto).toBeCloseTo(2 * rto)
    expect(s.cwnd).toBe(cfg.minWindow)
    expect(s.inflight).toBe(2 * 1380)
  })

  it("gives up on a packet sent maxTransmissions times with a typed end and a RESET", () => {
    const s = tenPackets()
    let t = 50_000
    let ended: UtpConnection.Action | undefined
    let resets = 0
    while (ended === undefined && t < 600_000_000) {
      t += 10_000
      const [, out] = UtpConnection.step(s, E.Tick(), t)
      ended = out.find((a) => a._tag === "Ended")
      resets += sends(out).filter((p) => p.type === UtpPacket.Type.Reset).length
    }
    expect(ended).toMatchObject({ reason: "timeout" })
    expect(resets).toBe(1)
    expect(out(s)).toBe("Closed")
  })
})

const out = (s: UtpConnection.UtpState) => s.phase

describe("UtpConnection LEDBAT", () => {
  /** A sender in congestion avoidance with `inflight` bytes out and a base delay of 10 ms recorded. */
  const sender = (cwnd: number) => {
    const s = connected({ maxWindow: 4 * 1024 * 1024, delaySamples: 1 })
    s.slowStart = false
    s.cwnd = cwnd
    UtpConnection.step(s, E.Write({ bytes: new Uint8Array(4 * 1024 * 1024) }), 30_000)
    UtpConnection.step(s, E.Flush(), 30_000)
    // The base delay: a sample of 10 ms (their clock runs 1e9 µs ahead: only differences matter).
    UtpConnection.step(s, E.Packet({ packet: ack(1000, { timestampDiff: 1_000_010_000 }) }), 31_000)
    return s
  }

  it.prop("shrinks the window when the delay is above target, grows it below (while the window is full)", [
    FastCheck.integer({ min: 20_000, max: 1_000_000 }),
    FastCheck.integer({ min: 1, max: 400_000 }),
    FastCheck.integer({ min: 1, max: 5 })
  ], ([cwnd, delay, packets]) => {
    const s = sender(cwnd)
    const before = s.cwnd
    const acked = (1000 + Math.min(packets, Math.floor(s.inflight / 1380))) & 0xffff
    // Acked a few hundred ms after sending: the RTT clamp does not bind.
    UtpConnection.step(s, E.Packet({ packet: ack(acked, { timestampDiff: 1_000_010_000 + delay }) }), 900_000)
    expect(s.queuingDelay).toBe(delay)
    if (delay > cfg.targetDelay) expect(s.cwnd).toBeLessThan(before)
    else if (delay < cfg.targetDelay) expect(s.cwnd).toBeGreaterThan(before)
  })

  it("keeps a bottleneck's queueing delay at the target delay, with the link busy", () => {
    for (const target of [100_000, 25_000]) {
      const link = { loss: 0, duplicate: 0, delay: 20_000, jitter: 0, rate: 0.5, queueLimit: 10_000_000 }
      const p = Sim.pair({ seed: 3, ab: link, ba: { ...link, rate: undefined }, configA: { targetDelay: target } })
      let wrote = false
      p.sim.run(30_000_000, () => {
        if (p.a.connected && !wrote) {
          p.a.write(new Uint8Array(20_000_000))
          wrote = true
        }
        return false
      })
      const qd = p.ab.log.queueDelays
      const tail = qd.slice(Math.floor(qd.length / 2)).sort((a, b) => a - b)
      const median = tail[tail.length >> 1]!
      expect(median).toBeGreaterThan(target * 0.8)
      expect(median).toBeLessThan(target * 1.2)
      // 0.5 bytes/µs for 30 s is 15 MB: the link stayed busy.
      expect(p.b.received).toBeGreaterThan(0.9 * 15_000_000)
      expect(p.a.state!.stats.retransmissions).toBe(0)
    }
  })
})

describe("UtpConnection flow control and lifecycle", () => {
  it("pausing closes the advertised window and the sender stops; resuming reopens it", () => {
    const p = Sim.pair({ seed: 5, ab: Sim.perfectLink, ba: Sim.perfectLink, configB: { receiveWindow: 64 * 1024 }, check: invariants })
    const data = Sim.randomBytes(5, 1_000_000)
    let wrote = false
    p.sim.run(100_000, () => {
      if (p.a.connected && !wrote) {
        p.b.dispatch(E.Pause())
        p.a.write(data)
        wrote = true
      }
      return false
    })
    p.sim.run(3_000_000, () => false)
    // Nothing delivered while paused, at most the window buffered, and the sender has stopped sending.
    expect(p.b.received).toBe(0)
    expect(p.b.state!.heldBytes).toBeLessThanOrEqual(64 * 1024)
    expect(p.a.state!.peerWindow).toBe(0)
    const sentWhilePaused = p.ab.log.sent
    p.sim.run(6_000_000, () => false)
    expect(p.ab.log.sent - sentWhilePaused).toBeLessThan(10) // window probes only
    p.b.dispatch(E.Resume())
    p.b.scheduleFlush()
    p.sim.run(60_000_000, () => p.b.received === data.length)
    expect(equalBytes(p.b.bytes(), data)).toBe(true)
  })

  it("delays the ack of a lone in-order packet by ackDelay; two packets, or one out of order, are acked at once", () => {
    const s = connected({ ackDelay: 5_000 })
    UtpConnection.step(s, E.Resume(), 30_000)
    const d = (seq: number) =>
      UtpPacket.make({ type: UtpPacket.Type.Data, connectionId: 100, seqNr: seq, ackNr: 1000, windowSize: 1 << 20, payload: Uint8Array.of(1) })
    UtpConnection.step(s, E.Packet({ packet: d(5000) }), 40_000)
    const [, lone] = UtpConnection.step(s, E.Flush(), 40_000)
    expect(sends(lone)).toEqual([])
    expect(UtpConnection.deadline(s)).toBe(45_000)
    const [, early] = UtpConnection.step(s, E.Tick(), 44_999)
    expect(sends(early)).toEqual([])
    const [, due] = UtpConnection.step(s, E.Tick(), 45_000)
    expect(sends(due)).toMatchObject([{ type: UtpPacket.Type.State, ackNr: 5000 }])
    // Two in order: at once.
    UtpConnection.step(s, E.Packet({ packet: d(5001) }), 50_000)
    UtpConnection.step(s, E.Packet({ packet: d(5002) }), 50_000)
    const [, two] = UtpConnection.step(s, E.Flush(), 50_000)
    expect(sends(two)).toMatchObject([{ type: UtpPacket.Type.State, ackNr: 5002 }])
    // Out of order (5003 missing): at once, with a selective ack.
    UtpConnection.step(s, E.Packet({ packet: d(5004) }), 60_000)
    const [, hole] = UtpConnection.step(s, E.Flush(), 60_000)
    expect(sends(hole)).toMatchObject([{ type: UtpPacket.Type.State, ackNr: 5002 }])
    expect(sends(hole)[0]!.selectiveAck).toBeDefined()
  })

  it("sends a keep-alive after keepAlive of silence", () => {
    const s = connected() // the SYN was the last packet sent, at 0
    const [, quiet] = UtpConnection.step(s, E.Tick(), cfg.keepAlive - 1)
    expect(sends(quiet)).toEqual([])
    const [, out] = UtpConnection.step(s, E.Tick(), cfg.keepAlive)
    expect(sends(out).map((p) => p.type)).toEqual([UtpPacket.Type.State])
  })

  it("abort sends a RESET and the peer ends with reason reset", () => {
    const p = Sim.pair({ seed: 6, ab: Sim.perfectLink, ba: Sim.perfectLink })
    p.sim.run(1_000_000, () => p.a.connected && p.b.state !== undefined)
    p.sim.run(1_100_000, () => false)
    p.a.dispatch(E.Abort())
    p.sim.run(2_000_000, () => p.b.released)
    expect(p.a.ended).toBe("local")
    expect(p.b.ended).toBe("reset")
  })

  it("writes after close are dropped; the peer's FIN ends the stream only after the data before it", () => {
    const s = connected()
    // Their FIN (seq 5002) arrives before their data 5000 and 5001.
    const fin = UtpPacket.make({ type: UtpPacket.Type.Fin, connectionId: 100, seqNr: 5002, ackNr: 1000, windowSize: 1 << 20 })
    UtpConnection.step(s, E.Resume(), 30_000)
    const [, a1] = UtpConnection.step(s, E.Packet({ packet: fin }), 30_000)
    expect(a1.some((a) => a._tag === "Ended")).toBe(false)
    const d = (seq: number) =>
      UtpPacket.make({ type: UtpPacket.Type.Data, connectionId: 100, seqNr: seq, ackNr: 1000, windowSize: 1 << 20, payload: Uint8Array.of(seq & 0xff) })
    UtpConnection.step(s, E.Packet({ packet: d(5001) }), 31_000)
    const [, a3] = UtpConnection.step(s, E.Packet({ packet: d(5000) }), 32_000)
    expect(a3.map((a) => a._tag)).toEqual(["Data", "Data", "Ended", "Send"])
    const fins = sends(a3)
    expect(fins[0]).toMatchObject({ type: UtpPacket.Type.Fin, ackNr: 5002 })
    UtpConnection.step(s, E.Write({ bytes: Uint8Array.of(1) }), 33_000)
    expect(UtpConnection.backlog(s)).toBe(0)
  })
})
