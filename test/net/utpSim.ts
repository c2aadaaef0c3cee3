/**
 * A discrete-event simulation of two uTP endpoints (`UtpConnection` state machines) talking through a simulated
 * network in virtual time (µs): per-direction loss, duplication, delay with jitter (so reordering), and an optional
 * bottleneck (a rate and a tail-drop queue, for LEDBAT). Deterministic for a given seed.
 *
 * Like the socket manager (`src/net/Utp.ts`), an endpoint gets `Flush` once the datagrams arriving at one instant
 * are processed (acks are deferred to then), `Tick` on a fixed period, and a datagram for a released connection is
 * answered with ST_RESET (unless it is ST_STATE or ST_RESET). Datagrams are copied when sent, as a kernel does.
 */
import * as UtpConnection from "../../src/net/UtpConnection.ts"
import * as UtpPacket from "../../src/net/UtpPacket.ts"

export interface LinkParams {
  /** Probability that a datagram is lost. */
  readonly loss: number
  /** Probability that a datagram is delivered twice. */
  readonly duplicate: number
  /** One-way propagation delay, µs. */
  readonly delay: number
  /** Extra uniform random delay 0..jitter µs per datagram (reorders them). */
  readonly jitter: number
  /** Bottleneck rate in bytes per µs (undefined: none). */
  readonly rate?: number | undefined
  /** Bottleneck queue in bytes (tail drop). */
  readonly queueLimit?: number | undefined
}

export const perfectLink: LinkParams = { loss: 0, duplicate: 0, delay: 10_000, jitter: 0 }

/** mulberry32 */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Scheduled {
  readonly at: number
  readonly order: number
  readonly run: () => void
}

/** A binary heap of events by time, then insertion order. */
class Agenda {
  private heap: Array<Scheduled> = []
  private order = 0
  get size(): number {
    return this.heap.length
  }
  push(at: number, run: () => void): void {
    const h = this.heap
    h.push({ at, order: this.order++, run })
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (less(h[i]!, h[p]!)) {
        ;[h[i], h[p]] = [h[p]!, h[i]!]
        i = p
      } else break
    }
  }
  peek(): Scheduled | undefined {
    return this.heap[0]
  }
  pop(): Scheduled | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && less(h[l]!, h[m]!)) m = l
        if (r < h.length && less(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}
const less = (a: Scheduled, b: Scheduled) => a.at < b.at || (a.at === b.at && a.order < b.order)

/** What happened on the wire, for assertions. */
export interface WireLog {
  /** Transmissions of each data/FIN sequence number, per sender. */
  readonly transmissions: Map<number, number>
  /** Datagrams sent, lost, duplicated. */
  sent: number
  lost: number
  duplicated: number
  /** Largest bottleneck queueing delay seen, µs. */
  maxQueueDelay: number
  /** Queueing delays of the bottleneck (sampled per datagram), µs. */
  readonly queueDelays: Array<number>
}

export class Link {
  readonly log: WireLog = {
    transmissions: new Map(),
    sent: 0,
    lost: 0,
    duplicated: 0,
    maxQueueDelay: 0,
    queueDelays: []
  }
  private freeAt = 0
  private queued: Array<{ readonly leaves: number; readonly size: number }> = []
  readonly sim: Sim
  readonly params: LinkParams
  readonly random: () => number
  readonly deliver: (packet: Uint8Array) => void
  constructor(sim: Sim, params: LinkParams, random: () => number, deliver: (packet: Uint8Array) => void) {
    this.sim = sim
    this.params = params
    this.random = random
    this.deliver = deliver
  }

  transmit(packet: Uint8Array): void {
    const copy = Uint8Array.prototype.slice.call(packet)
    this.log.sent++
    const type = copy[0]! >> 4
    if (type === UtpPacket.Type.Data || type === UtpPacket.Type.Fin) {
      const seq = (copy[16]! << 8) | copy[17]!
      this.log.transmissions.set(seq, (this.log.transmissions.get(seq) ?? 0) + 1)
    }
    if (this.random() < this.params.loss) {
      this.log.lost++
      return
    }
    const now = this.sim.now
    let departs = now
    const p = this.params
    if (p.rate !== undefined) {
      this.queued = this.queued.filter((q) => q.leaves > now)
      const bytes = this.queued.reduce((a, q) => a + q.size, 0)
      if (p.queueLimit !== undefined && bytes + copy.length > p.queueLimit) {
        this.log.lost++
        return
      }
      departs = Math.max(now, this.freeAt) + copy.length / p.rate
      this.freeAt = departs
      this.queued.push({ leaves: departs, size: copy.length })
      const qd = departs - now
      this.log.queueDelays.push(qd)
      if (qd > this.log.maxQueueDelay) this.log.maxQueueDelay = qd
    }
    const copies = this.random() < p.duplicate ? 2 : 1
    if (copies === 2) this.log.duplicated++
    for (let i = 0; i < copies; i++) {
      const at = departs + p.delay + this.random() * p.jitter
      this.sim.at(at, () => this.deliver(copy))
    }
  }
}

export class Sim {
  now = 0
  private readonly agenda = new Agenda()
  at(time: number, run: () => void): void {
    this.agenda.push(Math.max(time, this.now), run)
  }
  /** Runs events until `until` (virtual µs) or `done()`; returns whether `done()` held. */
  run(until: number, done: () => boolean): boolean {
    while (!done()) {
      const e = this.agenda.peek()
      if (e === undefined || e.at > until) return done()
      this.agenda.pop()
      this.now = e.at
      e.run()
    }
    return true
  }
}

export interface EndpointCheck {
  /** After every step: invariants (throw to fail). `sentNewData`: new payload bytes went out in this step. */
  readonly afterStep?: (s: UtpConnection.UtpState, sentNewData: boolean) => void
}

/** One side: its state machine, what it received, how it ended. */
export class Endpoint {
  state: UtpConnection.UtpState | undefined
  readonly chunks: Array<Uint8Array> = []
  received = 0
  connected = false
  ended: UtpConnection.EndReason | undefined
  released = false
  flushQueued = false
  /** `written` callbacks that ran. */
  taken = 0
  out!: Link
  onData: (data: Uint8Array) => void = () => {}
  readonly name: string
  readonly sim: Sim
  readonly config: UtpConnection.Config
  readonly check: EndpointCheck

  constructor(name: string, sim: Sim, config: UtpConnection.Config, check: EndpointCheck = {}) {
    this.name = name
    this.sim = sim
    this.config = config
    this.check = check
  }

  apply(actions: ReadonlyArray<UtpConnection.Action>): void {
    for (const a of actions) {
      switch (a._tag) {
        case "Send":
          this.out.transmit(a.packet)
          break
        case "Data":
          this.chunks.push(Uint8Array.prototype.slice.call(a.data))
          this.received += a.data.length
          this.onData(a.data)
          break
        case "Connected":
          this.connected = true
          break
        case "Taken":
          this.taken++
          a.written()
          break
        case "Ended":
          this.ended = a.reason
          break
        case "Released":
          this.released = true
          break
      }
    }
  }

  dispatch(event: UtpConnection.Event): void {
    const s = this.state
    if (s === undefined || this.released) return
    const sentBefore = s.bytesSent
    const [next, actions] = UtpConnection.step(s, event, this.sim.now)
    this.state = next
    // A first transmission of data happened when the payload bytes sent grew (a FIN carries none).
    this.check.afterStep?.(next, next.bytesSent !== sentBefore)
    this.apply(actions)
  }

  /** A datagram arrives. */
  receive(bytes: Uint8Array): void {
    const p = UtpPacket.parse(bytes)
    if (p instanceof UtpPacket.UtpPacketError) throw p
    if (this.state === undefined || this.released) {
      // As the manager does for a connection it no longer knows.
      if (this.state !== undefined && p.type !== UtpPacket.Type.State && p.type !== UtpPacket.Type.Reset) {
        const r = new Uint8Array(UtpPacket.HEADER_SIZE)
        UtpPacket.writeHeader(r, 0, UtpPacket.Type.Reset, 0, this.state.sendId, 1, 0, 0, 0, p.seqNr)
        this.out.transmit(r)
      }
      return
    }
    this.dispatch(UtpConnection.Event.Packet({ packet: p }))
    this.scheduleFlush()
  }

  scheduleFlush(): void {
    if (this.flushQueued) return
    this.flushQueued = true
    this.sim.at(this.sim.now, () => {
      this.flushQueued = false
      this.dispatch(UtpConnection.Event.Flush())
    })
  }

  write(bytes: Uint8Array, written?: () => void): void {
    this.dispatch(UtpConnection.Event.Write({ bytes, written }))
    this.scheduleFlush()
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.received)
    let at = 0
    for (const c of this.chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  }
}

export interface Pair {
  readonly sim: Sim
  readonly a: Endpoint
  readonly b: Endpoint
  readonly ab: Link
  readonly ba: Link
}

/**
 * Two endpoints: `a` dials at time 0 (SYN with `seqA`), `b` accepts the first SYN it sees (with `seqB`); both start
 * reading at once unless `startReading` is false; both tick every `tick` µs.
 */
export const pair = (options: {
  readonly seed: number
  readonly ab: LinkParams
  readonly ba: LinkParams
  readonly configA?: Partial<UtpConnection.Config>
  readonly configB?: Partial<UtpConnection.Config>
  readonly seqA?: number
  readonly seqB?: number
  readonly recvId?: number
  readonly tick?: number
  readonly check?: EndpointCheck
}): Pair => {
  const sim = new Sim()
  const random = prng(options.seed)
  const a = new Endpoint("a", sim, UtpConnection.config(options.configA), options.check)
  const b = new Endpoint("b", sim, UtpConnection.config(options.configB), options.check)
  const ab = new Link(sim, options.ab, random, (p) => b.receive(p))
  const ba = new Link(sim, options.ba, random, (p) => a.receive(p))
  a.out = ab
  b.out = ba
  const bReceive = b.receive.bind(b)
  b.receive = (bytes) => {
    if (b.state === undefined) {
      const p = UtpPacket.parse(bytes)
      if (p instanceof UtpPacket.UtpPacketError || p.type !== UtpPacket.Type.Syn) return
      const [s, actions] = UtpConnection.accept(b.config, p, options.seqB ?? Math.floor(random() * 65536), sim.now)
      b.state = s
      b.apply(actions)
      b.dispatch(UtpConnection.Event.Resume())
      b.scheduleFlush()
      return
    }
    bReceive(bytes)
  }
  const [s, actions] = UtpConnection.connect(a.config, {
    recvId: options.recvId ?? Math.floor(random() * 65536),
    seqNr: options.seqA ?? Math.floor(random() * 65536)
  }, 0)
  a.state = s
  a.apply(actions)
  a.dispatch(UtpConnection.Event.Resume())
  const tick = options.tick ?? 10_000
  const ticker = (e: Endpoint) => {
    const loop = () => {
      if (e.released) return
      if (e.state !== undefined) {
        const d = UtpConnection.deadline(e.state)
        if (d !== undefined && sim.now >= d) {
          e.dispatch(UtpConnection.Event.Tick())
        }
      }
      sim.at(sim.now + tick, loop)
    }
    sim.at(tick, loop)
  }
  ticker(a)
  ticker(b)
  return { sim, a, b, ab, ba }
}

/** Random bytes from a seed. */
export const randomBytes = (seed: number, n: number): Uint8Array => {
  const r = prng(seed)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 256)
  return out
}
