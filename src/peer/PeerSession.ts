/**
 * One peer connection as a scoped Effect: dial (or take an accepted connection), handshake, introduction, then the
 * download loop, until something closes it. It always ends with a `PeerError` saying why; the socket is closed and
 * `TorrentHandle.onClosed` gets the requests still in flight, on every exit, interruption included.
 *
 * Shape (THROUGHPUT.md rules 1–2, ANCHORS.md (b)):
 * - The byte path is synchronous: the socket's data handler feeds `Handshake.reader`, then `FrameDecoder`. Block
 *   parts are copied straight into the piece buffer the handle gives (`blockBuffer`), once; no Effect per block.
 * - Policy is the pure `PeerState.step` (as `stepOwned`: the session keeps only the latest state). Control messages, whole blocks, the torrent's decisions (through
 *   `PeerControl`) and timer ticks all become events; the session carries out the resulting commands, calling the
 *   handle synchronously and queueing messages. Events raised while commands run are queued, never nested.
 * - Messages produced while one chunk (or one control call) is processed go out as one write; `Tcp` coalesces writes
 *   of the same tick as well. Piece messages are copied into recycled buffers when `sendBlock` is called
 *   (internal/outbox.ts: the uploader may reuse its piece buffer at once; the socket's buffers are reused only
 *   after it reported them written), and go out at the end of the tick, all the blocks of one tick in one write.
 * - Timers: one fiber per session ticks every `tickInterval` and feeds `Tick`; deadlines live in the state. The
 *   connect deadline is an `Effect.timeoutFail` around the dial. Both run on Effect's Clock, so TestClock drives them.
 * - Backpressure: `PeerControl.pauseReading/resumeReading` pause the socket; while paused the state machine does not
 *   count the peer's silence or unanswered requests against it. The other way round, a peer that lets more than
 *   `maxWriteBacklog` bytes of ours go unread (it keeps requesting but does not read) is closed as a protocol
 *   violation, so what we buffer for one peer stays bounded.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as Bytes from "../core/Bytes.ts"
import * as Tcp from "../net/Tcp.ts"
import * as FrameDecoder from "../wire/FrameDecoder.ts"
import * as Handshake from "../wire/Handshake.ts"
import * as Message from "../wire/Message.ts"
import { WireError } from "../wire/WireError.ts"
import { Outbox } from "./internal/outbox.ts"
import * as Encryption from "./Encryption.ts"
import { PeerError } from "./PeerError.ts"
import * as PeerState from "./PeerState.ts"
import type { PeerControl, PeerKey, TorrentHandle } from "./TorrentHandle.ts"

export interface Options {
  readonly handle: TorrentHandle
  readonly config?: Partial<PeerState.PeerConfig> | undefined
}

export interface ConnectOptions extends Options {
  readonly host: string
  readonly port: number
  /** How to open the connection (default `Tcp.dial`); tests pass in-memory transports. */
  readonly dial?: ((address: Tcp.Address) => Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope>) | undefined
  /**
   * Message stream encryption (Encryption.ts): the policy and the client's memory of plain-only peers. Default
   * none ("off"): plain BitTorrent. The MSE handshake has the handshake deadline. Our BitTorrent handshake is sent
   * after it, not inside it as IA: libtorrent 2.0.8, when it selects rc4, holds its own handshake until it hears
   * from us again (measured: about 40 ms on every such connection, until our next segment arrives), while IA would save at most one
   * round trip with peers that select plaintext (docs/ENCRYPTION.md).
   */
  readonly encryption?: Encryption.Outbound | undefined
}

export interface AcceptOptions extends Options {
  /** An inbound connection (owned by the caller's scope; the session closes it when it ends). */
  readonly connection: Tcp.Connection
  /** Bytes already read from it, e.g. by a listener that read the handshake to route it by info-hash. */
  readonly prefix?: Uint8Array | undefined
  /** What the listener negotiated before handing the connection over (default "none": plain BitTorrent). */
  readonly encryption?: Encryption.Negotiated | undefined
}

/** Dials a peer and runs the session until it closes. */
export const connect = (options: ConnectOptions): Effect.Effect<never, PeerError> =>
  Effect.scoped(Effect.gen(function*() {
    const address = formatAddress(options.host, options.port)
    const session = yield* make(options, address, "outbound")
    const config = session.state.config
    const dial = options.dial ?? ((a: Tcp.Address) => Tcp.dial({ ...a, timeout: Duration.infinity }))
    const dialOnce = dial({ host: options.host, port: options.port }).pipe(
      Effect.timeoutFail({
        duration: Duration.millis(config.connectTimeout),
        onTimeout: () => new Tcp.TcpError({ reason: "connect-timeout", address, cause: "deadline" })
      })
    )
    const s = session.state
    const memory = options.encryption?.plainOnly
    const remembered = options.encryption?.policy === "prefer" && memory?.has(address) === true
    const connected = yield* Encryption.connect({
      address,
      infoHash: s.infoHash,
      outbound: options.encryption,
      dial: dialOnce,
      timeout: Duration.millis(config.handshakeTimeout)
    }).pipe(
      Effect.catchAll((e) => {
        if (e._tag === "MseError") return Effect.fail(session.fail("encryption", e.message))
        const reason = e.reason === "connect-timeout" ? "connect-timeout" : "connect-failed"
        const detail = reason === "connect-timeout" ? `no connection within ${config.connectTimeout} ms` : e.message
        return Effect.fail(session.fail(reason, detail))
      })
    )
    if (connected.fallback !== undefined) {
      yield* Effect.logDebug(`no MSE (${connected.fallback.reason}), connected plain`).pipe(
        Effect.annotateLogs({ peer: address })
      )
    }
    session.encryption = connected.cipher
    return yield* session.run(connected.connection, undefined).pipe(
      // Remembered as plain-only, yet it closed before any handshake: maybe it wants MSE now; try that next time.
      Effect.tapError((e) =>
        Effect.sync(() => {
          if (remembered && e.reason === "closed" && session.state.remotePeerId === undefined) memory?.delete(address)
        })
      )
    )
  }))

/** Runs the session on an inbound connection until it closes. */
export const accept = (options: AcceptOptions): Effect.Effect<never, PeerError> =>
  Effect.scoped(Effect.gen(function*() {
    const session = yield* make(options, options.connection.remoteAddress, "inbound")
    session.encryption = options.encryption ?? "none"
    return yield* session.run(options.connection, options.prefix)
  }))

const formatAddress = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

const make = (options: Options, address: string, direction: "outbound" | "inbound") =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const done = yield* Deferred.make<never, PeerError>()
    const handle = options.handle
    const state = PeerState.initial({
      config: PeerState.config(options.config),
      address,
      direction,
      infoHash: handle.infoHash,
      v2InfoHash: handle.v2InfoHash,
      peerId: handle.peerId,
      // BEP 52's v2 bit when the torrent can answer hash requests (a v2 or hybrid torrent)
      reserved: Handshake.reserved({ ...handle.features, v2: handle.v2Hashes !== undefined }),
      pieceCount: handle.pieceCount,
      metadataOnly: handle.metadataOnly
    }, clock.unsafeCurrentTimeMillis())
    const session = new Session(handle, address, state, () => clock.unsafeCurrentTimeMillis(), done)
    yield* Effect.addFinalizer(() => Effect.sync(() => session.finalize()))
    return session
  })

const E = PeerState.Event
/** Leaf-level hash requests a session has being answered from disk at once; more wait in line. */
const maxPendingHashAnswers = 8
/**
 * Leaf-level hash requests waiting in line, at most; more are rejected. libtorrent asks one per failed piece and,
 * when its requests are rejected, blames every peer that sent blocks of those pieces (it banned an honest seeder of
 * ours whose 8 answers were still being read when more pieces failed).
 */
const maxQueuedHashRequests = 256
// Taken once: each property read of the `Data.taggedEnum` Proxy makes a new constructor (PeerState.ts).
const BlockReceived = E.BlockReceived
const RequestsChosen = E.RequestsChosen

/** The mutable shell around the pure machine for one connection. */
class Session implements FrameDecoder.Handler {
  state: PeerState.PeerState
  readonly handle: TorrentHandle
  readonly key: PeerKey
  readonly now: () => number
  readonly done: Deferred.Deferred<never, PeerError>
  conn: Tcp.Connection | undefined = undefined
  readonly reader = Handshake.reader()
  decoder: FrameDecoder.FrameDecoder | undefined = undefined
  readonly queue: Array<PeerState.Event> = []
  running = false
  /** > 0 while a chunk is being processed: writes wait for its end. */
  holding = 0
  /** Bytes of `hashes` answers queued since the last flush (BEP 52; counted against `maxWriteBacklog`). */
  queuedHashBytes = 0
  /** Leaf-level hash requests being answered from the data (BEP 52), and those waiting for one of those to end. */
  pendingHashAnswers = 0
  queuedHashRequests: Array<Extract<Message.Control, { readonly _tag: "HashRequest" }>> = []
  pendingHandshake: Uint8Array | undefined = undefined
  /** What the connection negotiated (reported to the torrent in `onConnected`). */
  encryption: Encryption.Negotiated = "none"
  /** Control messages not yet written while `outbox` holds nothing unflushed (else they are appended there). */
  pendingMessages: Array<Message.Message> = []
  /** Piece messages (and what came after them), encoded, until the next flush. */
  outbox: Outbox | undefined = undefined
  flushQueued = false
  /** Bytes read since the last tick. */
  received = 0
  /** The piece buffer of the block being received, when it is wanted. */
  target: Uint8Array | undefined = undefined
  expected = false
  finalized = false
  readonly control: PeerControl

  constructor(
    handle: TorrentHandle,
    key: PeerKey,
    state: PeerState.PeerState,
    now: () => number,
    done: Deferred.Deferred<never, PeerError>
  ) {
    this.handle = handle
    this.key = key
    this.state = state
    this.now = now
    this.done = done
    this.control = {
      sendHave: (index) => this.dispatch(E.SendHave({ index })),
      setInterested: (interested) => this.dispatch(E.SetInterested({ interested })),
      requestMore: () => this.dispatch(E.RequestMore()),
      cancel: (blocks) => this.dispatch(E.Cancel({ blocks })),
      choke: () => this.dispatch(E.ChokePeer()),
      unchoke: () => this.dispatch(E.UnchokePeer()),
      sendBlock: (index, begin, data) => this.sendBlock(index, begin, data),
      sendExtended: (id, payload) => this.dispatch(E.SendExtended({ id, payload })),
      allowFast: (indices) => this.dispatch(E.AllowFast({ indices })),
      reject: (b) => {
        if (this.state.phase === "Closed" || !this.state.fast) return
        this.queueMessage(Message.Reject({ index: b.index, begin: b.begin, length: b.length }))
        if (this.holding === 0 && !this.running) this.flush()
      },
      pauseReading: () => this.conn?.pause(),
      resumeReading: () => this.conn?.resume(),
      close: (detail) => this.dispatch(E.CloseLocal({ reason: "local", detail })),
      requestHashes: (r) => {
        if (this.state.phase === "Closed" || this.decoder === undefined) return
        const { piecesRoot, base, index, length, proofLayers } = r
        this.queueMessage(Message.HashRequest({ piecesRoot, base, index, length, proofLayers }))
        if (this.holding === 0 && !this.running) this.flush()
      }
    }
  }

  sendBlock(index: number, begin: number, data: Uint8Array): boolean {
    const s = this.state
    if (s.phase === "Closed" || this.conn === undefined) return false
    if (s.amChoking && !(s.fast && s.grantedFast.includes(index))) return false
    const out = this.outbox
    if (out === undefined) return false
    // Blocks wait in the outbox until the chunk being read (or the tick) is done: one chunk of requests can ask
    // for thousands, so the budget counts them as well as what the socket holds.
    if (out.pendingBlockBytes + data.length + this.writeBacklog() > s.config.maxWriteBacklog) {
      this.overBudget()
      return false
    }
    // Whatever is queued goes first, in order; from now on messages are appended behind the block until a flush.
    if (this.pendingHandshake !== undefined) out.appendRaw(this.pendingHandshake)
    this.pendingHandshake = undefined
    for (let i = 0; i < this.pendingMessages.length; i++) out.appendMessage(this.pendingMessages[i]!)
    this.pendingMessages = []
    out.appendPiece(index, begin, data)
    // Inside a chunk or a dispatch the flush at its end sends it; otherwise at the end of the tick, with the
    // other blocks of this tick.
    if (this.holding === 0 && !this.running && !this.flushQueued) {
      this.flushQueued = true
      process.nextTick(() => {
        this.flushQueued = false
        this.guard(() => this.flush())
      })
    }
    return true
  }

  /** Queues a control message behind everything queued before it. */
  queueMessage(message: Message.Message): void {
    const out = this.outbox
    if (out !== undefined && out.hasPending()) out.appendMessage(message)
    else this.pendingMessages.push(message)
  }

  writeBacklog(): number {
    return this.conn?.writeBacklog?.() ?? 0
  }

  overBudget(): void {
    if (this.state.phase === "Closed") return
    const budget = this.state.config.maxWriteBacklog
    const detail = `more than ${budget} bytes we sent are unread (${this.writeBacklog()} in the socket, ` +
      `${this.outbox?.pendingBlockBytes ?? 0} more asked for): the peer keeps asking but does not read`
    this.dispatch(E.CloseLocal({ reason: "protocol", detail }))
  }

  /** Closes the machine before a connection exists (connect failures); returns the error. */
  fail(reason: PeerError["reason"], detail: string): PeerError {
    this.dispatch(E.CloseLocal({ reason, detail }))
    return this.state.error ?? new PeerError({ reason, address: this.key, detail })
  }

  run(conn: Tcp.Connection, prefix: Uint8Array | undefined): Effect.Effect<never, PeerError, Scope.Scope> {
    const self = this
    return Effect.gen(function*() {
      self.conn = conn
      self.outbox = new Outbox((bytes, written) => conn.write(bytes, written))
      self.dispatch(E.Connected())
      conn.onData((chunk) => self.onData(chunk))
      if (prefix !== undefined && prefix.length > 0) self.onData(prefix)
      const tick = Duration.millis(self.state.config.tickInterval)
      yield* Effect.sleep(tick).pipe(
        Effect.andThen(Effect.sync(() => self.guard(() => self.tick()))),
        Effect.forever,
        Effect.forkScoped
      )
      yield* conn.closed.pipe(
        Effect.exit,
        Effect.andThen((exit) =>
          Effect.sync(() =>
            self.guard(() =>
              self.dispatch(E.RemoteClosed({
                detail: Exit.isFailure(exit) ? `connection failed: ${errorText(exit)}` : "connection closed by the peer"
              }))
            )
          )
        ),
        Effect.forkScoped
      )
      return yield* Deferred.await(self.done)
    })
  }

  tick(): void {
    const received = this.received
    this.received = 0
    this.dispatch(E.Tick({ received, paused: this.conn?.isPaused() ?? false }))
  }

  /** A throwing handle is a bug: it ends the session with a defect instead of escaping into Node's event loop. */
  guard(f: () => void): void {
    try {
      f()
    } catch (cause) {
      Deferred.unsafeDone(this.done, Exit.die(cause))
    }
  }

  onData(chunk: Uint8Array): void {
    this.received += chunk.length
    this.holding++
    try {
      if (this.decoder !== undefined) {
        const error = this.decoder.push(chunk)
        if (error !== undefined) this.dispatch(E.DecodeFailed({ error }))
      } else this.onHandshakeBytes(chunk)
    } catch (cause) {
      Deferred.unsafeDone(this.done, Exit.die(cause))
    } finally {
      this.holding--
      this.flush()
    }
  }

  onHandshakeBytes(chunk: Uint8Array): void {
    const p = this.reader.push(chunk)
    if (p instanceof WireError) {
      this.dispatch(E.DecodeFailed({ error: p }))
      return
    }
    if (p._tag === "NeedMore") {
      // The info-hash is known after 48 bytes: refuse a wrong one before the peer id arrives.
      const v2 = this.state.v2InfoHash
      if (p.infoHash !== undefined && !Bytes.equals(p.infoHash, this.state.infoHash) && !(v2 !== undefined && Bytes.equals(p.infoHash, v2))) {
        const detail = `peer asked for info-hash ${Bytes.toHex(p.infoHash)}`
        this.dispatch(E.CloseLocal({ reason: "wrong-info-hash", detail }))
      }
      return
    }
    const h = this.handle
    this.dispatch(E.HandshakeReceived({
      handshake: p.handshake,
      ours: h.bitfield(),
      extensions: h.extensionHandshake?.(this.key, this.conn?.remote ?? { host: "", port: 0 }),
      dhtPort: h.dhtPort
    }))
    if (this.state.phase === "Closed") return
    this.decoder = FrameDecoder.make(this, {
      pieceCount: this.state.metadataOnly ? undefined : this.state.pieceCount,
      fast: this.state.fast,
      extensionProtocol: this.state.extensionProtocol,
      // whenever we set the v2 bit: libtorrent 2.0.8 sends hash requests without setting it in its own handshake
      v2: Handshake.supportsV2(this.state.reserved)
    })
    if (p.rest.length > 0) {
      const error = this.decoder.push(p.rest)
      if (error !== undefined) this.dispatch(E.DecodeFailed({ error }))
    }
  }

  // FrameDecoder.Handler: the byte path.

  onMessage(message: Message.Control): void {
    if (message._tag === "HashRequest") {
      this.answerHashRequest(message)
      return
    }
    if (message._tag === "Hashes" || message._tag === "HashReject") this.handle.onHashes?.(this.key, message)
    this.dispatch(E.MessageReceived({ message }))
  }

  /**
   * BEP 52: `hashes` from the torrent's trees, or `hash reject` (only when we set the v2 bit). Leaf-level requests
   * the torrent answers from its data come back later (at most {@link maxPendingHashAnswers} at once, then up to
   * {@link maxQueuedHashRequests} waiting in line, the rest rejected).
   */
  answerHashRequest(request: Extract<Message.Control, { readonly _tag: "HashRequest" }>): void {
    if (this.state.phase === "Closed") return
    const hashes = this.handle.v2Hashes?.(request)
    const later = this.handle.v2HashesLater
    if (hashes === undefined && later !== undefined) {
      if (this.pendingHashAnswers >= maxPendingHashAnswers) {
        if (this.queuedHashRequests.length < maxQueuedHashRequests) return void this.queuedHashRequests.push(request)
        return this.sendHashAnswer(request, undefined)
      }
      this.pendingHashAnswers++
      let answered = false
      const done = () => {
        answered = true
        this.pendingHashAnswers--
        const next = this.queuedHashRequests.shift()
        if (next !== undefined) this.answerHashRequest(next)
      }
      const waiting = later(request, (h) => {
        if (answered) return
        this.guard(() => {
          this.sendHashAnswer(request, h)
          done()
        })
      })
      if (waiting || answered) return
      done()
    }
    this.sendHashAnswer(request, hashes)
  }

  sendHashAnswer(request: Extract<Message.Control, { readonly _tag: "HashRequest" }>, hashes: Uint8Array | undefined): void {
    if (this.state.phase === "Closed") return
    const { piecesRoot, base, index, length, proofLayers } = request
    // answers (up to 256 KiB each, for 49 bytes asked) count against the write budget like blocks, those queued
    // since the last flush included: a peer asking without reading is dropped
    const size = hashes?.length ?? 0
    this.queuedHashBytes += size
    const budget = this.state.config.maxWriteBacklog
    if (this.writeBacklog() + (this.outbox?.pendingBlockBytes ?? 0) + this.queuedHashBytes > budget) {
      this.overBudget()
      return
    }
    this.queueMessage(
      hashes === undefined
        ? Message.HashReject({ piecesRoot, base, index, length, proofLayers })
        : Message.Hashes({ piecesRoot, base, index, length, proofLayers, hashes })
    )
    if (this.holding === 0 && !this.running) this.flush()
  }

  onBlock(index: number, begin: number, length: number, offset: number, data: Uint8Array): void {
    if (offset === 0) {
      this.expected = PeerState.expects(this.state, index, begin, length)
      const buf = this.expected ? this.handle.blockBuffer(this.key, index, begin, length) : undefined
      this.target = buf !== undefined && begin + length <= buf.length ? buf : undefined
    }
    if (this.target !== undefined) this.target.set(data, begin + offset)
    if (offset + data.length < length) return
    const accepted = this.expected && this.handle.onBlock(this.key, index, begin, length)
    this.target = undefined
    this.expected = false
    this.dispatch(BlockReceived({ index, begin, length, accepted }))
  }

  // The machine.

  dispatch(event: PeerState.Event): void {
    this.queue.push(event)
    if (this.running) return
    this.running = true
    try {
      for (let e = this.queue.shift(); e !== undefined; e = this.queue.shift()) {
        // The session keeps only the latest state: the per-block steps may change it in place.
        const [next, commands] = PeerState.stepOwned(this.state, e, this.now())
        this.state = next
        for (let i = 0; i < commands.length; i++) this.execute(commands[i]!)
      }
    } finally {
      this.running = false
      this.queue.length = 0
    }
    if (this.holding === 0) this.flush()
  }

  execute(c: PeerState.Command): void {
    switch (c._tag) {
      case "SendHandshake":
        this.pendingHandshake = Handshake.encode(c.handshake)
        return
      case "Send":
        this.queueMessage(c.message)
        return
      case "WantRequests":
        this.queue.push(RequestsChosen({ blocks: this.handle.nextRequests(this.key, c.max, c.only) }))
        return
      case "Emit":
        this.emit(c.event)
        return
      case "Close":
        this.flush()
        this.conn?.pause()
        Deferred.unsafeDone(this.done, Exit.fail(c.error))
        return
    }
  }

  emit(u: PeerState.Upward): void {
    const h = this.handle
    const key = this.key
    switch (u._tag) {
      case "Connected":
        h.onConnected(key, {
          peerId: u.peerId,
          fast: u.fast,
          extensionProtocol: u.extensionProtocol,
          dht: this.state.dht,
          direction: this.state.direction,
          encryption: this.encryption,
          remote: this.conn?.remote ?? { host: "", port: 0 },
          transport: this.conn?.transport ?? "tcp"
        }, this.control)
        return
      case "Bitfield":
        return this.interest(h.onPeerBitfield(key, u.bitfield))
      case "Have":
        return this.interest(h.onPeerHave(key, u.index))
      case "HaveAll":
        return this.interest(h.onPeerHaveAll(key))
      case "HaveNone":
        return this.interest(h.onPeerHaveNone(key))
      case "Choked":
        return h.onChoked(key, u.returned)
      case "Unchoked":
        return h.onUnchoked(key)
      case "Returned":
        return h.onReturned(key, u.blocks)
      case "RequestTimeout":
        return h.onRequestTimeout(key, u.blocks)
      case "PeerInterest":
        return h.onPeerInterest?.(key, u.interested)
      case "PeerRequest":
        return h.onPeerRequest?.(key, { index: u.index, begin: u.begin, length: u.length })
      case "PeerCancel":
        return h.onPeerCancel?.(key, { index: u.index, begin: u.begin, length: u.length })
      case "Extended":
        return h.onExtended?.(key, u.id, u.payload)
      case "Port":
        return h.onPeerPort?.(key, u.port)
      case "Suggest":
        return h.onSuggest?.(key, u.index)
      case "AllowedFast":
        return h.onAllowedFast?.(key, u.index)
    }
  }

  interest(interested: boolean): void {
    if (interested !== this.state.amInterested) this.queue.push(E.SetInterested({ interested }))
  }

  flush(): void {
    const conn = this.conn
    const out = this.outbox
    const outPending = out !== undefined && out.hasPending()
    if (conn === undefined || (this.pendingHandshake === undefined && this.pendingMessages.length === 0 && !outPending)) {
      return
    }
    // While the outbox holds something unflushed, nothing else is queued (sendBlock and queueMessage see to it).
    const messages = this.pendingMessages
    this.pendingMessages = []
    this.queuedHashBytes = 0
    const hs = this.pendingHandshake
    this.pendingHandshake = undefined
    if (hs !== undefined) conn.write(hs)
    if (messages.length > 0) conn.write(Message.encodeBatch(messages))
    if (outPending) out.flush()
    if (this.writeBacklog() > this.state.config.maxWriteBacklog) this.overBudget()
  }

  /** Scope exit: close the machine if something else ended the session, tell the torrent once, close the socket. */
  finalize(): void {
    if (this.finalized) return
    this.finalized = true
    if (this.state.phase !== "Closed") this.dispatch(E.CloseLocal({ reason: "local", detail: "session interrupted" }))
    const error = this.state.error ?? new PeerError({ reason: "local", address: this.key, detail: "session ended" })
    const outstanding = this.state.outstanding.map(({ begin, index, length }) => ({ index, begin, length }))
    try {
      this.handle.onClosed(this.key, error, outstanding)
    } finally {
      this.conn?.close()
      this.outbox?.close()
    }
  }
}

const errorText = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof Error
    ? exit.cause.error.message
    : "socket error"
