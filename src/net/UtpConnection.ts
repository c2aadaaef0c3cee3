/**
 * One uTP connection (BEP 29) as a state machine: `step(state, event, now) → [state, actions]`. No I/O, no clock,
 * no randomness: time (`now`, µs) and random ids come in as arguments, datagrams and application data go out as
 * actions, so tests drive it through any simulated network in virtual time.
 *
 * Unlike `PeerState`, the state is updated **in place** and `step` returns the same object: it owns a ring of
 * packets in flight and a reorder ring of received payloads, which cannot be copied per packet on a byte path of
 * ~200k packets per 256 MiB (THROUGHPUT.md). A caller that wants to keep a state uses `snapshot`.
 *
 * Phases: SynSent → Connected → Closing → Closed (accepted connections start in Connected).
 *
 * - Handshake: the initiator sends ST_SYN with connection_id = recv_id and a random seq_nr; the acceptor answers
 *   ST_STATE with its own random seq_nr (the next it will send, not consumed) and ack_nr = the SYN's seq_nr, and
 *   uses recv_id = SYN id + 1, send_id = SYN id. A duplicate SYN is answered again. The initiator counts the first
 *   packet that acks its SYN (ST_STATE, or ST_DATA overtaking it) as the answer: ack_nr := its seq_nr - 1.
 * - Sequence numbers are 16 bits and wrap (`UtpPacket.seqDiff`). ST_DATA, ST_FIN and ST_SYN consume one;
 *   ST_STATE carries the next one unconsumed.
 * - Sending: writes queue as they are (views of the caller's bytes); packets are built when the window allows, at
 *   most `packetSize` bytes with the 20-byte header (no path MTU probing: see `defaults`), each payload copied once
 *   into its datagram (the caller's `written` then runs: the connection no longer holds its bytes). The window is
 *   min(cwnd, the peer's advertised wnd_size). Packets stay in the ring until acked.
 * - Receiving: in-order payloads are delivered (`Data`) as views of the datagrams; out-of-order ones wait in the
 *   reorder ring (at most `maxReorder` packets ahead). Acks are deferred: a received packet sets `ackPending` and
 *   the owner sends them with `Flush` once it has read what the socket had (one ST_STATE per burst, or the ack rides
 *   on a data packet). A selective ack (multiples of 4 bytes) goes with every ST_STATE while the ring holds packets.
 *   The advertised window is what the receive buffer (`receiveWindow`) has left, 0 while reading is paused.
 * - Loss: a packet followed by `dupAckThreshold` selectively acked packets, or `dupAckThreshold` duplicate ST_STATE
 *   acks, is retransmitted at once (each sequence number at most once this way); the retransmission timeout is
 *   BEP 29's: rtt and rtt_var from Karn-filtered samples (`rtt += (sample - rtt)/8`, `rtt_var += (|rtt - sample| -
 *   rtt_var)/4`), timeout = max(rtt + 4·rtt_var, `minRto`), 1 s before any sample, doubled on every expiry. On
 *   expiry every packet in flight counts as lost (go-back-N, as libtorrent), cwnd drops to `minWindow` and slow start
 *   restarts. A packet sent `maxTransmissions` times without an ack ends the connection ("timeout"), unless the peer's
 *   window is closed (those are window probes: the peer session's idle timeout decides).
 * - LEDBAT (RFC 6817, libtorrent's form): one-way delay samples come back in timestamp_difference; the base delay is
 *   the minimum of per-minute minima over `baseHistory` minutes; the queuing delay is the minimum of the last
 *   `delaySamples` samples minus the base, at most the RTT; per ack, cwnd += `gain` · (target - delay)/target ·
 *   acked/in_flight, increases only while the sender fills the window; slow start (cwnd += acked) until the delay
 *   reaches the target or a loss; a loss (at most once per window) multiplies cwnd by `lossFactor`; cwnd stays in
 *   [`minWindow`, `maxWindow`].
 * - Closing: `Close` sends what is queued, then ST_FIN, and the state is released once the FIN is acked (or after
 *   `closeTimeout`); the peer's ST_FIN ends the stream once everything before it arrived (`Ended` "eof"), is acked
 *   and answered with our FIN. ST_RESET ends the connection at once; `Abort` sends one.
 * - Keep-alive: an ST_STATE after `keepAlive` µs of silence from us (NAT bindings).
 */
import * as Data from "effect/Data"
import * as UtpPacket from "./UtpPacket.ts"

const { HEADER_SIZE, Type, seqDiff, seqLess } = UtpPacket
const MASK = 0xffff
const inc = (x: number) => (x + 1) & MASK
const dec = (x: number) => (x - 1) & MASK

/** Sizes in bytes, times in µs. Every field has a default ({@link defaults}). */
export interface Config {
  /**
   * Largest datagram we send, uTP header included. 1400 leaves room for IPv4/IPv6 + UDP headers and common
   * tunnels (PPPoE, VPNs) under a 1500-byte link MTU; no path MTU probing is done.
   */
  readonly packetSize: number
  /** Our receive buffer: the most we advertise and hold (in-order data not yet read plus the reorder ring). */
  readonly receiveWindow: number
  /** Packets we keep ahead of the next expected one. */
  readonly maxReorder: number
  /** LEDBAT's target queuing delay. */
  readonly targetDelay: number
  /** LEDBAT's largest window change per round trip, bytes. */
  readonly gain: number
  /** cwnd multiplier on loss (BEP 29: 0.5). */
  readonly lossFactor: number
  readonly initialWindow: number
  readonly minWindow: number
  readonly maxWindow: number
  /** Minutes of per-minute base delay minima kept (RFC 6817 BASE_HISTORY). */
  readonly baseHistory: number
  /** Recent delay samples whose minimum is the current delay (RFC 6817 CURRENT_FILTER). */
  readonly delaySamples: number
  readonly initialRto: number
  readonly minRto: number
  readonly maxRto: number
  /** Transmissions of one data packet (or FIN) without an ack before the connection is given up. */
  readonly maxTransmissions: number
  /** Transmissions of the SYN before the connect fails. */
  readonly synTransmissions: number
  readonly dupAckThreshold: number
  /** Send an ST_STATE after this long without sending anything. */
  readonly keepAlive: number
  /** A closing connection is released after this long whatever happens. */
  readonly closeTimeout: number
  /** Packets in flight at most (the send ring's size minus one). */
  readonly maxPacketsInFlight: number
  /**
   * Delayed acks (0: off). A lone in-order data packet is acked after this long unless another arrives first or an
   * ack rides on data; two in-order packets, anything out of order, duplicated or dropped, and a FIN are acked at
   * the next `Flush`, as TCP's delayed ack does.
   */
  readonly ackDelay: number
}

export const defaults: Config = {
  packetSize: 1400,
  receiveWindow: 1024 * 1024,
  maxReorder: 1000,
  targetDelay: 100_000,
  gain: 3000,
  lossFactor: 0.5,
  initialWindow: 2 * 1400,
  minWindow: 2 * 1400,
  maxWindow: 1024 * 1024,
  baseHistory: 10,
  delaySamples: 3,
  initialRto: 1_000_000,
  minRto: 500_000,
  maxRto: 60_000_000,
  maxTransmissions: 6,
  synTransmissions: 3,
  dupAckThreshold: 3,
  keepAlive: 29_000_000,
  closeTimeout: 30_000_000,
  maxPacketsInFlight: 2047,
  ackDelay: 0
}

/** `defaults` with some fields replaced. */
export const config = (overrides: Partial<Config> = {}): Config => ({ ...defaults, ...overrides })

export type Phase = "SynSent" | "Connected" | "Closing" | "Closed"

export type EndReason =
  | "eof" // the peer closed (ST_FIN) after everything it sent arrived
  | "local" // we closed
  | "reset" // the peer sent ST_RESET
  | "refused" // ST_RESET in answer to our SYN
  | "timeout" // a packet went unacked `maxTransmissions` times
  | "connect-timeout" // the SYN went unanswered

/** A packet we sent and the peer has not acked. */
interface Sent {
  readonly seq: number
  readonly type: UtpPacket.Type
  /** The whole datagram (its header is refreshed on every retransmission). */
  readonly buf: Uint8Array
  readonly payload: number
  sentAt: number
  transmissions: number
  /** Counted lost (timeout): not in `inflight` until sent again. */
  lost: boolean
}

interface Write {
  readonly bytes: Uint8Array
  readonly written: (() => void) | undefined
}

export interface Stats {
  packetsSent: number
  packetsReceived: number
  /** Data/FIN/SYN packets sent again (any cause). */
  retransmissions: number
  fastRetransmissions: number
  timeouts: number
  /** Received data packets we already had. */
  duplicates: number
  /** Received data packets dropped (no room, too far ahead, after the FIN). */
  dropped: number
  /** cwnd cuts on loss. */
  lossEvents: number
}

export interface UtpState {
  readonly config: Config
  phase: Phase
  readonly recvId: number
  readonly sendId: number
  /** Next sequence number to send. */
  seqNr: number
  /** Last in-order sequence number received. */
  ackNr: number
  /** Every packet up to this one is acked. */
  ackedSeqNr: number
  /** The SYN we answered (accepted connections), to answer a duplicate. */
  readonly synSeqNr: number | undefined
  /** Send ring, indexed by seq & mask. */
  readonly ring: Array<Sent | undefined>
  readonly ringMask: number
  /** Packets in the ring (all sequence numbers from ackedSeqNr + 1 to seqNr - 1, less the selectively acked). */
  ringCount: number
  /** Packets in the ring marked lost. */
  lostCount: number
  /** Payload bytes sent, not acked, not counted lost. */
  inflight: number
  /** Payload bytes in the ring (sent and not acked, lost ones included). */
  unacked: number
  cwnd: number
  ssthresh: number
  slowStart: boolean
  /** The peer's advertised receive window. */
  peerWindow: number
  /** Smoothed RTT and its variation, µs (rtt < 0: no sample yet). */
  rtt: number
  rttVar: number
  rto: number
  /** Consecutive timeouts. */
  timeouts: number
  /** When the oldest packet in flight times out (or the SYN, or a zero-window probe is due). */
  rtoDeadline: number | undefined
  /** Sequence numbers before this one are not fast-retransmitted again. */
  fastResendSeqNr: number
  dupAcks: number
  /** A loss of a packet at or before this one does not cut cwnd again. */
  lossSeqNr: number
  /** Per-minute minima of the one-way delay samples (u32), newest last, and when the newest minute began. */
  readonly baseDelays: Array<number>
  baseMinuteStart: number
  readonly recentDelays: Array<number>
  recentIndex: number
  /** Our current queuing delay estimate (µs), undefined before any sample. */
  queuingDelay: number | undefined
  /** `our receive time - their timestamp` of the last packet, sent back in timestamp_difference. */
  replyMicro: number
  /** Reorder ring, indexed by seq & mask. */
  readonly inbuf: Array<Uint8Array | undefined>
  readonly inMask: number
  inCount: number
  inBytes: number
  /** In-order data not delivered (reading paused, or not started). */
  readonly held: Array<Uint8Array>
  heldBytes: number
  /** Data goes out as `Data` actions (else it is held). */
  delivering: boolean
  /** Reading paused by the application: we advertise a zero window. */
  windowClosed: boolean
  ackPending: boolean
  /** In-order data packets received since our last ack. */
  unackedPackets: number
  /** Something other than in-order data needs an ack (not delayed). */
  ackUrgent: boolean
  /** When a delayed ack is due. */
  ackDeadline: number | undefined
  /** The window we advertised last. */
  sentWindow: number
  /** The peer's FIN, once seen. */
  eofSeqNr: number | undefined
  /** Everything up to the peer's FIN arrived. */
  remoteEnded: boolean
  /** `Ended` was emitted. */
  ended: boolean
  endReason: EndReason | undefined
  /** Local close requested: send what is queued, then FIN. */
  closing: boolean
  finSeqNr: number | undefined
  closeDeadline: number | undefined
  readonly unsent: Array<Write | undefined>
  unsentHead: number
  /** Bytes of the head write already packetized. */
  unsentOffset: number
  unsentBytes: number
  lastSentAt: number
  lastReceivedAt: number
  bytesSent: number
  bytesReceived: number
  readonly stats: Stats
}

export type Event = Data.TaggedEnum<{
  /** A datagram for this connection (already matched by connection id and address). */
  Packet: { readonly packet: UtpPacket.Packet }
  /** Application bytes to send; `written` runs once they are copied into packets. */
  Write: { readonly bytes: Uint8Array; readonly written?: (() => void) | undefined }
  /** Send what the window allows, and the pending ack. */
  Flush: {}
  /** Evaluate deadlines. */
  Tick: {}
  /** Stop delivering data and close the receive window. */
  Pause: {}
  /** Deliver held data, open the window (and tell the peer). */
  Resume: {}
  /** Data the application did not take (it paused while a batch of `Data` actions was being delivered). */
  Unread: { readonly chunks: ReadonlyArray<Uint8Array> }
  /** Graceful close. */
  Close: {}
  /** Immediate close with ST_RESET. */
  Abort: {}
}>
export const Event = Data.taggedEnum<Event>()

export type Action = Data.TaggedEnum<{
  /** A datagram to send to the peer. */
  Send: { readonly packet: Uint8Array }
  /** In-order bytes for the application (a view, valid as long as the application wants it). */
  Data: { readonly data: Uint8Array }
  /** The handshake completed. */
  Connected: {}
  /** A write's bytes were copied into packets: its `written` may run. */
  Taken: { readonly written: () => void }
  /** The stream ended for the application (once). */
  Ended: { readonly reason: EndReason; readonly detail: string }
  /** Nothing more to do: the owner may forget the connection (once, after `Ended`). */
  Released: {}
}>
export const Action = Data.taggedEnum<Action>()

const pow2AtLeast = (n: number): number => {
  let p = 16
  while (p < n) p *= 2
  return p
}

const initial = (c: Config, recvId: number, sendId: number, seqNr: number, phase: Phase, now: number): UtpState => {
  const ringSize = pow2AtLeast(c.maxPacketsInFlight + 1)
  const inSize = pow2AtLeast(c.maxReorder + 2)
  return {
    config: c,
    phase,
    recvId,
    sendId,
    seqNr,
    ackNr: 0,
    ackedSeqNr: dec(seqNr),
    synSeqNr: undefined,
    ring: new Array<Sent | undefined>(ringSize).fill(undefined),
    ringMask: ringSize - 1,
    ringCount: 0,
    lostCount: 0,
    inflight: 0,
    unacked: 0,
    cwnd: Math.max(c.initialWindow, c.minWindow),
    ssthresh: 0,
    slowStart: true,
    peerWindow: c.packetSize,
    rtt: -1,
    rttVar: 0,
    rto: c.initialRto,
    timeouts: 0,
    rtoDeadline: undefined,
    fastResendSeqNr: seqNr,
    dupAcks: 0,
    lossSeqNr: dec(seqNr),
    baseDelays: [],
    baseMinuteStart: now,
    recentDelays: [],
    recentIndex: 0,
    queuingDelay: undefined,
    replyMicro: 0,
    inbuf: new Array<Uint8Array | undefined>(inSize).fill(undefined),
    inMask: inSize - 1,
    inCount: 0,
    inBytes: 0,
    held: [],
    heldBytes: 0,
    delivering: false,
    windowClosed: false,
    ackPending: false,
    unackedPackets: 0,
    ackUrgent: false,
    ackDeadline: undefined,
    sentWindow: 0,
    eofSeqNr: undefined,
    remoteEnded: false,
    ended: false,
    endReason: undefined,
    closing: false,
    finSeqNr: undefined,
    closeDeadline: undefined,
    unsent: [],
    unsentHead: 0,
    unsentOffset: 0,
    unsentBytes: 0,
    lastSentAt: now,
    lastReceivedAt: now,
    bytesSent: 0,
    bytesReceived: 0,
    stats: {
      packetsSent: 0,
      packetsReceived: 0,
      retransmissions: 0,
      fastRetransmissions: 0,
      timeouts: 0,
      duplicates: 0,
      dropped: 0,
      lossEvents: 0
    }
  }
}

/** µs clock value as a wire timestamp (never 0, which means "none"). */
const stamp = (now: number): number => Math.floor(now) >>> 0 || 1

/**
 * Opens a connection: the initial state and the SYN to send. `recvId` is ours (the SYN carries it; the peer
 * answers to it), `seqNr` the SYN's sequence number; both random in practice.
 */
export const connect = (
  c: Config,
  ids: { readonly recvId: number; readonly seqNr: number },
  now: number
): readonly [UtpState, ReadonlyArray<Action>] => {
  const s = initial(c, ids.recvId & MASK, (ids.recvId + 1) & MASK, ids.seqNr & MASK, "SynSent", now)
  const out: Array<Action> = []
  const buf = new Uint8Array(HEADER_SIZE)
  const sent: Sent = { seq: s.seqNr, type: Type.Syn, buf, payload: 0, sentAt: now, transmissions: 1, lost: false }
  UtpPacket.writeHeader(buf, 0, Type.Syn, 0, s.recvId, stamp(now), 0, window(s), s.seqNr, 0)
  s.ring[s.seqNr & s.ringMask] = sent
  s.ringCount = 1
  s.seqNr = inc(s.seqNr)
  s.fastResendSeqNr = s.seqNr
  s.rtoDeadline = now + s.rto
  s.lastSentAt = now
  s.stats.packetsSent++
  out.push(Action.Send({ packet: buf }))
  return [s, out]
}

/** Accepts a connection from its SYN: the initial state and the ST_STATE answering it. `seqNr` is random. */
export const accept = (
  c: Config,
  syn: UtpPacket.Packet,
  seqNr: number,
  now: number
): readonly [UtpState, ReadonlyArray<Action>] => {
  const base = initial(c, (syn.connectionId + 1) & MASK, syn.connectionId, seqNr & MASK, "Connected", now)
  const s: UtpState = { ...base, synSeqNr: syn.seqNr }
  s.ackNr = syn.seqNr
  s.peerWindow = syn.windowSize
  s.lastReceivedAt = now
  s.stats.packetsReceived++
  if (syn.timestamp !== 0) s.replyMicro = UtpPacket.u32Diff(stamp(now), syn.timestamp)
  const out: Array<Action> = [Action.Connected()]
  sendState(s, now, out)
  return [s, out]
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

/** The window we advertise now. */
export const window = (s: UtpState): number =>
  s.windowClosed ? 0 : Math.max(0, s.config.receiveWindow - s.inBytes - s.heldBytes)

/** Payload bytes per data packet. */
export const maxPayload = (s: UtpState): number => s.config.packetSize - HEADER_SIZE

/** Bytes written and not yet acked by the peer (queued plus in flight). */
export const backlog = (s: UtpState): number => s.unsentBytes + s.unacked

/** The earliest time a `Tick` has something to do (undefined: nothing scheduled). */
export const deadline = (s: UtpState): number | undefined => {
  if (s.phase === "Closed") return undefined
  let d = s.rtoDeadline
  if (s.phase === "Connected") {
    const k = s.lastSentAt + s.config.keepAlive
    if (d === undefined || k < d) d = k
  }
  if (s.closeDeadline !== undefined && (d === undefined || s.closeDeadline < d)) d = s.closeDeadline
  if (s.ackDeadline !== undefined && (d === undefined || s.ackDeadline < d)) d = s.ackDeadline
  return d
}

/** A copy that later steps do not change (tests). */
export const snapshot = (s: UtpState): UtpState => ({
  ...s,
  ring: s.ring.map((p) => (p === undefined ? undefined : { ...p })),
  inbuf: [...s.inbuf],
  held: [...s.held],
  baseDelays: [...s.baseDelays],
  recentDelays: [...s.recentDelays],
  unsent: [...s.unsent],
  stats: { ...s.stats }
})

// ---------------------------------------------------------------------------------------------------------------
// The machine

export const step = (s: UtpState, event: Event, now: number): readonly [UtpState, ReadonlyArray<Action>] => {
  const out: Array<Action> = []
  switch (event._tag) {
    case "Packet":
      onPacket(s, event.packet, now, out)
      break
    case "Write":
      if (s.phase !== "Closed" && !s.closing && !s.remoteEnded && event.bytes.length > 0) {
        s.unsent.push({ bytes: event.bytes, written: event.written })
        s.unsentBytes += event.bytes.length
      }
      break
    case "Flush":
      trySend(s, now, out)
      if (s.ackPending && s.phase !== "Closed" && s.phase !== "SynSent") {
        if (s.config.ackDelay > 0 && !s.ackUrgent && s.unackedPackets < 2 && s.inCount === 0 && !s.remoteEnded) {
          s.ackDeadline ??= now + s.config.ackDelay
        } else sendState(s, now, out)
      }
      break
    case "Tick":
      onTick(s, now, out)
      break
    case "Pause":
      s.delivering = false
      s.windowClosed = true
      break
    case "Resume":
      onResume(s, now, out)
      break
    case "Unread":
      if (s.phase !== "Closed" && !s.closing) {
        let n = 0
        for (const c of event.chunks) n += c.length
        s.held.unshift(...event.chunks)
        s.heldBytes += n
        s.bytesReceived -= n
      }
      break
    case "Close":
      onClose(s, now, out)
      break
    case "Abort":
      if (s.phase !== "Closed" && s.phase !== "SynSent") send(s, resetPacket(s, now), now, out)
      s.held.length = 0
      s.heldBytes = 0
      end(s, "local", "aborted", out)
      release(s, out)
      break
  }
  return [s, out]
}

const onPacket = (s: UtpState, p: UtpPacket.Packet, now: number, out: Array<Action>): void => {
  if (s.phase === "Closed") return
  s.stats.packetsReceived++
  if (p.type === Type.Syn) {
    // A duplicate of the SYN we accepted (our ST_STATE was lost): answer again.
    if (s.synSeqNr === p.seqNr) sendState(s, now, out)
    return
  }
  // An ack of something we never sent: spoofed or from another life of this id. Ignore the whole packet.
  if (seqLess(dec(s.seqNr), p.ackNr)) return
  if (p.type === Type.Reset) {
    // After everything the peer sent arrived, a reset only ends the protocol: the application still reads to the end.
    if (!s.remoteEnded) end(s, s.phase === "SynSent" ? "refused" : "reset", "the peer reset the connection", out)
    release(s, out)
    return
  }
  s.lastReceivedAt = now
  if (p.timestamp !== 0) s.replyMicro = UtpPacket.u32Diff(stamp(now), p.timestamp)
  if (s.phase === "SynSent") {
    if (p.ackNr !== inc(s.ackedSeqNr)) return
    s.phase = "Connected"
    // ST_STATE carries the next sequence number it will send; ST_DATA its own: either way one less was "received".
    s.ackNr = dec(p.seqNr)
    out.push(Action.Connected())
  }
  s.peerWindow = p.windowSize

  const prevInflight = s.inflight
  let acked = 0
  let minRtt = Number.POSITIVE_INFINITY
  const ackOne = (seq: number): void => {
    const slot = seq & s.ringMask
    const q = s.ring[slot]
    if (q === undefined || q.seq !== seq) return
    s.ring[slot] = undefined
    s.ringCount--
    s.unacked -= q.payload
    if (q.lost) s.lostCount--
    else s.inflight -= q.payload
    acked += q.payload
    if (q.transmissions === 1) {
      const sample = Math.max(0, now - q.sentAt)
      if (sample < minRtt) minRtt = sample
      rttSample(s, sample)
    }
  }

  let advanced = false
  if (seqLess(s.ackedSeqNr, p.ackNr)) {
    for (let q = inc(s.ackedSeqNr); ; q = inc(q)) {
      ackOne(q)
      if (q === p.ackNr) break
    }
    s.ackedSeqNr = p.ackNr
    advanced = true
  } else if (p.type === Type.State && p.ackNr === s.ackedSeqNr && s.ringCount > 0) {
    s.dupAcks++
  }

  if (p.selectiveAck !== undefined && s.ringCount > 0) selectiveAck(s, p.ackNr, p.selectiveAck, ackOne, now, out)
  // Skip over packets acked selectively before.
  while (inc(s.ackedSeqNr) !== s.seqNr && s.ring[inc(s.ackedSeqNr) & s.ringMask] === undefined) {
    s.ackedSeqNr = inc(s.ackedSeqNr)
    advanced = true
  }
  if (seqLess(s.fastResendSeqNr, inc(s.ackedSeqNr))) s.fastResendSeqNr = inc(s.ackedSeqNr)
  if (advanced) {
    s.dupAcks = 0
    s.timeouts = 0
    s.rto = rtoOf(s)
    s.rtoDeadline = s.ringCount > 0 ? now + s.rto : undefined
  }

  // Duplicate acks: the packet after the last acked one is missing.
  if (s.dupAcks >= s.config.dupAckThreshold && s.fastResendSeqNr === inc(s.ackedSeqNr)) {
    const q = s.ring[s.fastResendSeqNr & s.ringMask]
    s.fastResendSeqNr = inc(s.fastResendSeqNr)
    // A packet already counted lost (timeout) goes out again through `trySend`, within the window.
    if (q !== undefined && !q.lost) {
      lossEvent(s, q.seq)
      resend(s, q, now, out)
      s.stats.fastRetransmissions++
    }
    s.dupAcks = 0
  }

  if (p.timestampDiff !== 0 && p.timestampDiff !== 0x7fffffff) {
    const delay = delaySample(s, p.timestampDiff, now)
    if (acked > 0 && prevInflight > 0) {
      s.queuingDelay = Math.min(delay, minRtt)
      ledbat(s, acked, s.queuingDelay, prevInflight)
    }
  }

  if (p.type === Type.Data && p.payload.length > 0) receive(s, p.seqNr, p.payload, now, out)
  else if (p.type === Type.Fin) receiveFin(s, p.seqNr, now, out)

  if (s.phase === "Closing" && s.finSeqNr !== undefined && !seqLess(s.ackedSeqNr, s.finSeqNr)) {
    // Our FIN is acked: the peer has everything. Ack its FIN (if this packet was one) before leaving.
    if (s.ackPending) sendState(s, now, out)
    release(s, out)
    return
  }
  trySend(s, now, out)
}

/** Processes a selective ack bitmask (bit i: seq ackNr + 2 + i received); fast-retransmits the holes before the last `dupAckThreshold` acked packets. */
const selectiveAck = (
  s: UtpState,
  ackNr: number,
  mask: Uint8Array,
  ackOne: (seq: number) => void,
  now: number,
  out: Array<Action>
): void => {
  const first = (ackNr + 2) & MASK
  const bits = mask.length * 8
  // Sequence numbers we sent after `ackNr + 1` (bits past them mean nothing).
  const span = Math.min(bits, seqDiff(s.seqNr, first))
  if (span <= 0) return
  let setCount = 0
  for (let i = 0; i < span; i++) {
    if ((mask[i >> 3]! >> (i & 7)) & 1) {
      setCount++
      ackOne((first + i) & MASK)
    }
  }
  if (setCount < s.config.dupAckThreshold) return
  // The position of the `dupAckThreshold`-th set bit from the end: holes before it are lost.
  let cut = span
  for (let i = span - 1, seen = 0; i >= 0; i--) {
    if ((mask[i >> 3]! >> (i & 7)) & 1) {
      seen++
      if (seen === s.config.dupAckThreshold) {
        cut = i
        break
      }
    }
  }
  let cutDone = false
  const consider = (seq: number) => {
    if (seqLess(seq, s.fastResendSeqNr)) return
    const q = s.ring[seq & s.ringMask]
    if (q === undefined || q.seq !== seq || q.lost) return
    if (!cutDone) {
      lossEvent(s, seq)
      cutDone = true
    }
    resend(s, q, now, out)
    s.stats.fastRetransmissions++
    s.fastResendSeqNr = inc(seq)
  }
  consider(inc(ackNr))
  for (let i = 0, n = 0; i < cut && n < 8; i++) {
    if (((mask[i >> 3]! >> (i & 7)) & 1) === 0) {
      consider((first + i) & MASK)
      n++
    }
  }
}

const rttSample = (s: UtpState, sample: number): void => {
  if (s.rtt < 0) {
    s.rtt = sample
    s.rttVar = sample / 2
  } else {
    const delta = s.rtt - sample
    s.rttVar += (Math.abs(delta) - s.rttVar) / 4
    s.rtt += (sample - s.rtt) / 8
  }
}

const rtoOf = (s: UtpState): number =>
  s.rtt < 0
    ? s.config.initialRto
    : Math.min(s.config.maxRto, Math.max(s.config.minRto, s.rtt + 4 * s.rttVar))

/** `a` before `b` on the 32-bit circle. */
const u32Less = (a: number, b: number): boolean => UtpPacket.u32Diff(a, b) >= 0x80000000

/** Adds a one-way delay sample (the peer's timestamp_difference); returns the queuing delay estimate (µs). */
const delaySample = (s: UtpState, sample: number, now: number): number => {
  const c = s.config
  const hist = s.baseDelays
  if (hist.length === 0) {
    hist.push(sample)
    s.baseMinuteStart = now
  } else if (now - s.baseMinuteStart >= 60_000_000) {
    hist.push(sample)
    if (hist.length > c.baseHistory) hist.shift()
    s.baseMinuteStart = now
  } else if (u32Less(sample, hist[hist.length - 1]!)) {
    hist[hist.length - 1] = sample
  }
  let base = hist[0]!
  for (let i = 1; i < hist.length; i++) if (u32Less(hist[i]!, base)) base = hist[i]!
  const delay = UtpPacket.u32Diff(sample, base)
  const recent = s.recentDelays
  if (recent.length < c.delaySamples) recent.push(delay)
  else {
    recent[s.recentIndex] = delay
    s.recentIndex = (s.recentIndex + 1) % c.delaySamples
  }
  let current = recent[0]!
  for (let i = 1; i < recent.length; i++) if (recent[i]! < current) current = recent[i]!
  return current
}

/** LEDBAT's window update for `acked` bytes newly acked with `inflight` bytes outstanding before. */
const ledbat = (s: UtpState, acked: number, delay: number, inflight: number): void => {
  const c = s.config
  const target = Math.max(1, c.targetDelay)
  if (delay >= target && s.slowStart) {
    s.ssthresh = s.cwnd / 2
    s.slowStart = false
  }
  const saturated = s.inflight + acked + maxPayload(s) > s.cwnd
  const linear = c.gain * (acked / inflight) * ((target - delay) / target)
  let change: number
  if (s.slowStart && saturated) {
    if (s.ssthresh !== 0 && s.cwnd + acked > s.ssthresh) {
      s.slowStart = false
      change = linear
    } else change = Math.max(acked, linear)
  } else change = linear
  // Never grow a window the sender does not fill; always shrink when the delay is above target.
  if (change > 0 && !saturated) change = 0
  s.cwnd = Math.min(c.maxWindow, Math.max(c.minWindow, s.cwnd + change))
}

const lossEvent = (s: UtpState, seq: number): void => {
  // Once per window: losses of packets sent before the last cut do not cut again.
  if (!seqLess(s.lossSeqNr, seq)) return
  s.stats.lossEvents++
  s.cwnd = Math.max(s.config.minWindow, s.cwnd * s.config.lossFactor)
  s.lossSeqNr = dec(s.seqNr)
  if (s.slowStart) {
    s.ssthresh = s.cwnd
    s.slowStart = false
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Receiving

const receive = (s: UtpState, seq: number, payload: Uint8Array, now: number, out: Array<Action>): void => {
  s.ackPending = true
  // Anything but the next packet in order is acked without delay (duplicate acks and selective acks drive the
  // sender's loss recovery).
  s.ackUrgent = true
  if (s.eofSeqNr !== undefined && !seqLess(seq, s.eofSeqNr)) {
    s.stats.dropped++
    return
  }
  const d = seqDiff(seq, s.ackNr)
  if (d <= 0) {
    s.stats.duplicates++
    return
  }
  if (d > s.config.maxReorder) {
    s.stats.dropped++
    return
  }
  const slot = seq & s.inMask
  if (d > 1) {
    if (s.inbuf[slot] !== undefined) {
      s.stats.duplicates++
      return
    }
    if (s.inBytes + s.heldBytes + payload.length > s.config.receiveWindow) {
      s.stats.dropped++
      return
    }
    s.inbuf[slot] = payload
    s.inCount++
    s.inBytes += payload.length
    return
  }
  if (!s.delivering && s.inBytes + s.heldBytes + payload.length > s.config.receiveWindow) {
    s.stats.dropped++
    return
  }
  if (s.inCount === 0) s.ackUrgent = false
  s.unackedPackets++
  s.ackNr = seq
  deliver(s, payload, out)
  while (s.inCount > 0) {
    const nslot = inc(s.ackNr) & s.inMask
    const next = s.inbuf[nslot]
    if (next === undefined) break
    s.inbuf[nslot] = undefined
    s.inCount--
    s.inBytes -= next.length
    s.ackNr = inc(s.ackNr)
    deliver(s, next, out)
  }
  if (s.eofSeqNr !== undefined && inc(s.ackNr) === s.eofSeqNr) remoteEnd(s, now, out)
}

const deliver = (s: UtpState, data: Uint8Array, out: Array<Action>): void => {
  if (s.closing) return // we closed: nobody reads any more
  if (s.delivering) {
    s.bytesReceived += data.length
    out.push(Action.Data({ data }))
  } else {
    s.held.push(data)
    s.heldBytes += data.length
  }
}

const receiveFin = (s: UtpState, seq: number, now: number, out: Array<Action>): void => {
  s.ackPending = true
  s.ackUrgent = true
  if (s.eofSeqNr === undefined) s.eofSeqNr = seq
  if (!s.remoteEnded && inc(s.ackNr) === s.eofSeqNr) remoteEnd(s, now, out)
}

/** Everything up to the peer's FIN arrived: ack the FIN, answer with ours; the application sees the end once it read everything. */
const remoteEnd = (s: UtpState, now: number, out: Array<Action>): void => {
  s.ackNr = s.eofSeqNr!
  s.remoteEnded = true
  s.ackPending = true
  // Like a TCP socket on 'end', nothing queued goes out any more.
  dropUnsent(s)
  if (!s.closing) {
    s.closing = true
    if (s.phase === "Connected") s.phase = "Closing"
  }
  if (s.closeDeadline === undefined) s.closeDeadline = now + s.config.closeTimeout
  if (s.heldBytes === 0) end(s, "eof", "connection closed by the peer", out)
}

const onResume = (s: UtpState, now: number, out: Array<Action>): void => {
  if (s.ended || (s.closing && !s.remoteEnded)) return
  const wasClosed = s.windowClosed || s.sentWindow < maxPayload(s)
  s.delivering = true
  s.windowClosed = false
  if (s.heldBytes > 0) {
    const held = s.held.splice(0)
    s.heldBytes = 0
    for (const h of held) {
      s.bytesReceived += h.length
      out.push(Action.Data({ data: h }))
    }
  }
  if (s.remoteEnded) {
    end(s, "eof", "connection closed by the peer", out)
    return
  }
  if (s.phase === "Closed") return
  // Tell the peer the window is open again (it may be waiting on a zero window).
  if (wasClosed && s.phase === "Connected") sendState(s, now, out)
}

const onClose = (s: UtpState, now: number, out: Array<Action>): void => {
  if (s.ended) return
  s.delivering = false
  s.held.length = 0
  s.heldBytes = 0
  end(s, "local", "closed", out)
  if (s.phase === "Closed" || (s.closing && s.remoteEnded)) return
  if (s.phase === "SynSent") {
    release(s, out)
    return
  }
  s.closing = true
  s.phase = "Closing"
  s.closeDeadline = now + s.config.closeTimeout
  trySend(s, now, out)
}

const dropUnsent = (s: UtpState): void => {
  s.unsent.length = 0
  s.unsentHead = 0
  s.unsentOffset = 0
  s.unsentBytes = 0
}

const end = (s: UtpState, reason: EndReason, detail: string, out: Array<Action>): void => {
  if (s.ended) return
  s.ended = true
  s.endReason = reason
  out.push(Action.Ended({ reason, detail }))
  // The protocol finished while the application had not read everything: now it has.
  if (s.phase === "Closed") out.push(Action.Released())
}

/** The protocol is done; `Released` goes out once the application saw the end too. */
const release = (s: UtpState, out: Array<Action>): void => {
  if (s.phase === "Closed") return
  s.phase = "Closed"
  s.rtoDeadline = undefined
  s.closeDeadline = undefined
  dropUnsent(s)
  if (s.ended) out.push(Action.Released())
}

// ---------------------------------------------------------------------------------------------------------------
// Sending

const send = (s: UtpState, packet: Uint8Array, now: number, out: Array<Action>): void => {
  s.lastSentAt = now
  s.stats.packetsSent++
  out.push(Action.Send({ packet }))
}

const resetPacket = (s: UtpState, now: number): Uint8Array => {
  const buf = new Uint8Array(HEADER_SIZE)
  UtpPacket.writeHeader(buf, 0, Type.Reset, 0, s.sendId, stamp(now), s.replyMicro, 0, s.seqNr, s.ackNr)
  return buf
}

/** Bytes of the selective ack bitmask to send (0: none), a multiple of 4. */
const sackLength = (s: UtpState): number => {
  if (s.inCount === 0) return 0
  let last = 0
  for (let d = 2, found = 0; d <= s.config.maxReorder && found < s.inCount; d++) {
    if (s.inbuf[(s.ackNr + d) & s.inMask] !== undefined) {
      found++
      last = d
    }
  }
  if (last < 2) return 0
  const bits = last - 1
  return Math.min(252, Math.ceil(bits / 32) * 4)
}

const sendState = (s: UtpState, now: number, out: Array<Action>): void => {
  const sack = sackLength(s)
  const buf = new Uint8Array(HEADER_SIZE + (sack > 0 ? 2 + sack : 0))
  const wnd = window(s)
  UtpPacket.writeHeader(
    buf,
    0,
    Type.State,
    sack > 0 ? UtpPacket.Extension.SelectiveAck : 0,
    s.sendId,
    stamp(now),
    s.replyMicro,
    wnd,
    s.seqNr,
    s.ackNr
  )
  if (sack > 0) {
    buf[HEADER_SIZE] = 0
    buf[HEADER_SIZE + 1] = sack
    const first = (s.ackNr + 2) & MASK
    for (let i = 0; i < sack * 8; i++) {
      if (s.inbuf[(first + i) & s.inMask] !== undefined && i + 2 <= s.config.maxReorder) {
        const k = HEADER_SIZE + 2 + (i >> 3)
        buf[k] = buf[k]! | (1 << (i & 7))
      }
    }
  }
  s.ackPending = false
  s.ackUrgent = false
  s.unackedPackets = 0
  s.ackDeadline = undefined
  s.sentWindow = wnd
  send(s, buf, now, out)
}

/**
 * A data packet carries the current ack_nr: nothing is left to ack unless packets wait out of order (their selective
 * ack goes with an ST_STATE).
 */
const ackSent = (s: UtpState): void => {
  s.unackedPackets = 0
  s.ackDeadline = undefined
  if (s.inCount === 0) {
    s.ackPending = false
    s.ackUrgent = false
  }
}

const resend = (s: UtpState, q: Sent, now: number, out: Array<Action>): void => {
  const wnd = window(s)
  UtpPacket.refreshHeader(q.buf, 0, stamp(now), s.replyMicro, wnd, s.ackNr)
  if (q.lost) {
    q.lost = false
    s.lostCount--
    s.inflight += q.payload
  }
  q.transmissions++
  q.sentAt = now
  s.stats.retransmissions++
  s.sentWindow = wnd
  ackSent(s)
  if (s.rtoDeadline === undefined) s.rtoDeadline = now + s.rto
  send(s, q.buf, now, out)
}

/** Sends lost packets again, then new data, then our FIN, as far as the window allows. */
const trySend = (s: UtpState, now: number, out: Array<Action>): void => {
  if (s.phase !== "Connected" && s.phase !== "Closing") return
  const limit = Math.min(s.cwnd, s.peerWindow)
  if (s.lostCount > 0) {
    for (let q = inc(s.ackedSeqNr); q !== s.seqNr && s.lostCount > 0; q = inc(q)) {
      const p = s.ring[q & s.ringMask]
      if (p === undefined || !p.lost) continue
      if (s.inflight > 0 && s.inflight + p.payload > limit) return
      resend(s, p, now, out)
    }
  }
  const max = maxPayload(s)
  while (s.unsentBytes > 0 && s.ringCount < s.config.maxPacketsInFlight) {
    const n = Math.min(s.unsentBytes, max)
    if (s.inflight + n > limit) {
      // A zero (or tiny) peer window with nothing in flight: probe when the timer says so.
      if (s.inflight === 0 && s.rtoDeadline === undefined) s.rtoDeadline = now + s.rto
      break
    }
    sendData(s, Type.Data, n, now, out)
  }
  if (s.closing && !s.remoteEnded && s.unsentBytes === 0 && s.finSeqNr === undefined) {
    s.finSeqNr = s.seqNr
    sendData(s, Type.Fin, 0, now, out)
  } else if (s.remoteEnded && s.finSeqNr === undefined) {
    s.finSeqNr = s.seqNr
    sendData(s, Type.Fin, 0, now, out)
  }
}

/** Builds the next packet (copying `n` queued bytes) and sends it. */
const sendData = (s: UtpState, type: UtpPacket.Type, n: number, now: number, out: Array<Action>): void => {
  const buf = new Uint8Array(HEADER_SIZE + n)
  const wnd = window(s)
  UtpPacket.writeHeader(buf, 0, type, 0, s.sendId, stamp(now), s.replyMicro, wnd, s.seqNr, s.ackNr)
  let at = HEADER_SIZE
  let left = n
  while (left > 0) {
    const w = s.unsent[s.unsentHead]!
    const avail = w.bytes.length - s.unsentOffset
    const take = Math.min(avail, left)
    buf.set(
      take === w.bytes.length ? w.bytes : w.bytes.subarray(s.unsentOffset, s.unsentOffset + take),
      at
    )
    at += take
    left -= take
    if (take === avail) {
      s.unsent[s.unsentHead] = undefined
      s.unsentHead++
      s.unsentOffset = 0
      if (w.written !== undefined) out.push(Action.Taken({ written: w.written }))
    } else s.unsentOffset += take
  }
  s.unsentBytes -= n
  if (s.unsentHead === s.unsent.length) {
    s.unsent.length = 0
    s.unsentHead = 0
  } else if (s.unsentHead > 1024 && s.unsentHead * 2 > s.unsent.length) {
    s.unsent.splice(0, s.unsentHead)
    s.unsentHead = 0
  }
  const sent: Sent = { seq: s.seqNr, type, buf, payload: n, sentAt: now, transmissions: 1, lost: false }
  s.ring[s.seqNr & s.ringMask] = sent
  s.ringCount++
  s.inflight += n
  s.unacked += n
  s.bytesSent += n
  s.seqNr = inc(s.seqNr)
  s.sentWindow = wnd
  ackSent(s)
  if (s.rtoDeadline === undefined) s.rtoDeadline = now + s.rto
  send(s, buf, now, out)
}

const onTick = (s: UtpState, now: number, out: Array<Action>): void => {
  if (s.phase === "Closed") return
  if (s.closeDeadline !== undefined && now >= s.closeDeadline) {
    send(s, resetPacket(s, now), now, out)
    if (!s.remoteEnded) end(s, "local", "closed", out)
    release(s, out)
    return
  }
  if (s.rtoDeadline !== undefined && now >= s.rtoDeadline) {
    onTimeout(s, now, out)
    if ((s.phase as Phase) === "Closed") return
  }
  if (s.ackDeadline !== undefined && now >= s.ackDeadline) {
    s.ackDeadline = undefined
    if (s.ackPending) sendState(s, now, out)
  }
  if (s.phase === "Connected" && now - s.lastSentAt >= s.config.keepAlive) sendState(s, now, out)
}

const onTimeout = (s: UtpState, now: number, out: Array<Action>): void => {
  const c = s.config
  if (s.ringCount === 0) {
    s.rtoDeadline = undefined
    // Zero-window probe: one packet despite the peer's window.
    if (s.unsentBytes > 0 && (s.phase === "Connected" || s.phase === "Closing")) {
      sendData(s, Type.Data, Math.min(s.unsentBytes, maxPayload(s)), now, out)
    }
    return
  }
  const first = s.ring[inc(s.ackedSeqNr) & s.ringMask]!
  const limit = s.phase === "SynSent" ? c.synTransmissions : c.maxTransmissions
  // Packets refused for lack of window are probes: they do not wear out the connection.
  const probing = s.phase !== "SynSent" && s.peerWindow < first.payload
  if (first.transmissions >= limit && !probing) {
    s.stats.timeouts++
    if (s.phase === "SynSent") {
      end(s, "connect-timeout", `no answer to ${first.transmissions} SYN packets`, out)
    } else {
      send(s, resetPacket(s, now), now, out)
      if (!s.remoteEnded) end(s, "timeout", `a packet went unacknowledged ${first.transmissions} times`, out)
    }
    release(s, out)
    return
  }
  s.stats.timeouts++
  s.timeouts++
  const hadInflight = s.inflight > 0
  for (let q = inc(s.ackedSeqNr), i = 0; q !== s.seqNr && i < s.ringCount; q = inc(q)) {
    const p = s.ring[q & s.ringMask]
    if (p === undefined) continue
    i++
    if (!p.lost) {
      p.lost = true
      s.lostCount++
      s.inflight -= p.payload
    }
  }
  if (hadInflight) {
    if (s.slowStart || s.ssthresh === 0) s.ssthresh = Math.max(c.minWindow, s.cwnd / 2)
    s.cwnd = c.minWindow
    s.slowStart = true
    s.stats.lossEvents++
  }
  s.lossSeqNr = dec(s.seqNr)
  s.rto = Math.min(c.maxRto, s.rto * 2)
  s.rtoDeadline = undefined
  resend(s, first, now, out)
  s.rtoDeadline = now + s.rto
  trySend(s, now, out)
}
