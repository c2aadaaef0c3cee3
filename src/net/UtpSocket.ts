/**
 * uTP (BEP 29) over one UDP socket: dial and accept connections that look exactly like TCP ones (`Tcp.Connection`),
 * so peer sessions (and MSE) run over either. The socket can be shared with the DHT: `udp` is a `Udp.Socket` view
 * that sends on the same port and receives every datagram that is not uTP (demultiplexed by the first byte, as
 * libtorrent does: a uTP header has version nibble 1 and a type of at most 4; bencoded KRPC starts with `d`, 0x64).
 *
 * Each connection is a `UtpConnection` state machine; this module is its I/O shell, in plain synchronous code (the
 * byte path of THROUGHPUT.md: no fiber, Queue or Stream per datagram):
 * - A datagram is matched by (address, port, connection id) and stepped at once; its in-order payload goes to the
 *   connection's `onData` handler as a view of the datagram. Acks are deferred: the connections that received
 *   something get one `Flush` in a `setImmediate`, after every datagram libuv read in that poll (one ST_STATE per
 *   burst, or the ack rides on data).
 * - `write` queues in the machine and schedules the same flush; the bytes are copied into packets when the window
 *   allows, then `written` runs.
 * - One timer (`tickInterval`) steps every connection whose deadline passed (retransmission, keep-alive, close).
 * - A non-SYN data/FIN datagram for no known connection is answered with ST_RESET; a SYN is accepted when fewer than
 *   `backlog` accepted connections wait for `accept` (otherwise refused with ST_RESET).
 * - Time is `performance.now()` in µs (monotonic); ids and initial sequence numbers are random.
 *
 * Lifetimes: the socket lives until its scope closes (then every connection is reset). A dialled or accepted
 * connection belongs to the caller's scope: closing it sends what is queued, then ST_FIN (`close`); the machine is
 * forgotten once the FIN is acked or `closeTimeout` passed. Dial failures are `Tcp.TcpError`s ("connect-failed",
 * "connect-timeout") whose cause is a `UtpError` naming the uTP reason (refused, no answer), so callers handle both
 * transports alike.
 */
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import { performance } from "node:perf_hooks"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Mailbox from "effect/Mailbox"
import type * as Scope from "effect/Scope"
import * as Tcp from "./Tcp.ts"
import * as Udp from "./Udp.ts"
import * as UtpConnection from "./UtpConnection.ts"
import * as UtpPacket from "./UtpPacket.ts"

export class UtpError extends Data.TaggedError("UtpError")<{
  readonly reason: UtpConnection.EndReason | "bind" | "closed" | "address"
  readonly detail: string
}> {
  override get message(): string {
    return `utp ${this.reason}: ${this.detail}`
  }
}

export interface Options {
  /** Default "udp4". */
  readonly family?: Udp.Family | undefined
  /** Default: every interface of the family. */
  readonly host?: string | undefined
  /** Default 0: a free port (read it from `local`). */
  readonly port?: number | undefined
  /** Connection parameters (UtpConnection.defaults otherwise). */
  readonly config?: Partial<UtpConnection.Config> | undefined
  /** Inbound connections waiting for `accept`; further SYNs are refused. 0 refuses every SYN. Default 64. */
  readonly backlog?: number | undefined
  /** How often deadlines are checked, ms. Default 50. */
  readonly tickInterval?: number | undefined
}

export interface Stats {
  /** Connections the socket holds (closing ones included). */
  readonly connections: number
  readonly datagramsIn: number
  readonly datagramsOut: number
  /** Datagrams that were not uTP (handed to `udp`'s handler, or dropped without one). */
  readonly otherIn: number
  /** uTP-looking datagrams that failed to parse, or matched no connection. */
  readonly invalid: number
  readonly unknown: number
  /** Errors the socket reported (ICMP unreachable on a send, mostly); the connections' timers handle their effect. */
  readonly errors: number
  /** Sums over the connections the socket holds now (UtpConnection.Stats). */
  readonly retransmissions: number
  readonly fastRetransmissions: number
  readonly timeouts: number
  readonly lossEvents: number
}

export interface UtpSocket {
  readonly local: Tcp.Address
  /** Opens a uTP connection that lives until the caller's scope closes. Hosts are IP literals. */
  readonly dial: (options: Tcp.DialOptions) => Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope>
  /** The next inbound connection, owned by the caller's scope; waits while none is pending. */
  readonly accept: Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope>
  /** The same UDP port for the protocols that are not uTP (the DHT's KRPC). */
  readonly udp: Udp.Socket
  readonly stats: () => Stats
}

const formatAddress = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

const normalize = (address: string): string => {
  const a = address.toLowerCase()
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a
}

/** An IPv6 literal in the kernel's form (lower case, zeros compressed): "0:0::1" → "::1". */
const canonicalIpv6 = (host: string): string => {
  try {
    return new URL(`http://[${host}]/`).hostname.slice(1, -1)
  } catch {
    return host.toLowerCase()
  }
}

const keyOf = (host: string, port: number, recvId: number): string => `${normalize(host)}|${port}|${recvId}`

const nowMicros = (): number => performance.now() * 1000

/** Delayed acks (UtpConnection `ackDelay`), µs: a lone in-order packet waits this long for a second one. */
const DEFAULT_ACK_DELAY = 3_000

const random16 = (): number => Math.floor(Math.random() * 0x10000)

/** One connection: the machine and its application side. */
interface Entry {
  readonly key: string
  readonly host: string
  readonly port: number
  readonly state: UtpConnection.UtpState
  handler: ((chunk: Uint8Array) => void) | undefined
  paused: boolean
  /** The application closed it (or the socket did): no more data for it. */
  closedByUs: boolean
  dirty: boolean
  /** Dial in progress: told once when the handshake ends either way. */
  onHandshake: ((result: UtpError | undefined) => void) | undefined
  readonly closed: Deferred.Deferred<void, Tcp.TcpError>
  readonly conn: Tcp.Connection
}

/** Binds the socket for the lifetime of the scope. */
export const make = (options: Options = {}): Effect.Effect<UtpSocket, UtpError, Scope.Scope> =>
  Effect.gen(function*() {
    const family = options.family ?? "udp4"
    const config = UtpConnection.config({ ackDelay: DEFAULT_ACK_DELAY, ...options.config })
    const backlog = options.backlog ?? 64
    const socket = yield* Effect.acquireRelease(
      Effect.async<Dgram.Socket, UtpError>((resume) => {
        const s = Dgram.createSocket({ type: family, ipv6Only: family === "udp6" })
        const onError = (cause: Error) => {
          s.close()
          resume(Effect.fail(new UtpError({ reason: "bind", detail: cause.message })))
        }
        s.once("error", onError)
        s.bind(options.port ?? 0, options.host ?? (family === "udp4" ? "0.0.0.0" : "::"), () => {
          s.off("error", onError)
          resume(Effect.succeed(s))
        })
      }),
      (s) =>
        Effect.async<void>((resume) => {
          s.close(() => resume(Effect.void))
        })
    )
    const bound = socket.address()
    const local: Tcp.Address = { host: bound.address, port: bound.port }
    // Receive and send buffers of 4 MiB (as libtorrent asks for): a burst of 1 MiB of packets must not overflow them.
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024)
      socket.setSendBufferSize(4 * 1024 * 1024)
    } catch {
      // The system refused the size: its default stays, which only costs throughput.
    }

    const entries = new Map<string, Entry>()
    const pending = yield* Mailbox.make<Entry>()
    let waiting = 0
    let open = true
    let other: ((d: Udp.Datagram) => void) | undefined
    const counts = { datagramsIn: 0, datagramsOut: 0, otherIn: 0, invalid: 0, unknown: 0, errors: 0 }
    // Errors on the socket (ICMP port unreachable reported on a send, mostly) must not crash the process; the
    // connections' timers decide what a lost datagram means. They are counted (`stats`).
    socket.on("error", () => {
      counts.errors++
    })

    const sendTo = (packet: Uint8Array, port: number, host: string): void => {
      if (!open) return
      counts.datagramsOut++
      socket.send(packet, port, host)
    }

    // -- stepping ----------------------------------------------------------------------------------------------

    const dirty: Array<Entry> = []
    let flushScheduled = false
    // Connections holding a delayed ack, and the timer that sends them.
    const delayed = new Set<Entry>()
    let ackTimer: ReturnType<typeof setTimeout> | undefined
    const sendDelayedAcks = (): void => {
      ackTimer = undefined
      const now = nowMicros()
      for (const e of delayed) {
        const due = e.state.ackDeadline
        if (due === undefined || now >= due) {
          delayed.delete(e)
          if (due !== undefined) run(e, UtpConnection.Event.Tick())
        }
      }
      if (delayed.size > 0) ackTimer = setTimeout(sendDelayedAcks, 1)
    }
    const flushAll = (): void => {
      flushScheduled = false
      const list = dirty.splice(0)
      for (const e of list) {
        e.dirty = false
        run(e, UtpConnection.Event.Flush())
        if (e.state.ackDeadline !== undefined) {
          delayed.add(e)
          ackTimer ??= setTimeout(sendDelayedAcks, Math.max(1, Math.ceil(config.ackDelay / 1000)))
        }
      }
    }
    const markDirty = (e: Entry): void => {
      if (!e.dirty) {
        e.dirty = true
        dirty.push(e)
      }
      if (!flushScheduled) {
        flushScheduled = true
        setImmediate(flushAll)
      }
    }

    const run = (e: Entry, event: UtpConnection.Event): void => {
      const [, actions] = UtpConnection.step(e.state, event, nowMicros())
      apply(e, actions)
    }

    const apply = (e: Entry, actions: ReadonlyArray<UtpConnection.Action>): void => {
      let unread: Array<Uint8Array> | undefined
      for (const a of actions) {
        switch (a._tag) {
          case "Send":
            sendTo(a.packet, e.port, e.host)
            break
          case "Data":
            if (e.closedByUs) break
            if (unread !== undefined || e.paused || e.handler === undefined) (unread ??= []).push(a.data)
            else e.handler(a.data)
            break
          case "Connected":
            e.onHandshake?.(undefined)
            e.onHandshake = undefined
            break
          case "Taken":
            a.written()
            break
          case "Ended": {
            const error = a.reason === "eof" || a.reason === "local"
              ? undefined
              : new UtpError({ reason: a.reason, detail: a.detail })
            if (e.onHandshake !== undefined) {
              e.onHandshake(error ?? new UtpError({ reason: "closed", detail: a.detail }))
              e.onHandshake = undefined
            }
            Deferred.unsafeDone(
              e.closed,
              error === undefined
                ? Exit.void
                : Exit.fail(new Tcp.TcpError({ reason: "socket", address: e.conn.remoteAddress, cause: error }))
            )
            break
          }
          case "Released":
            if (entries.get(e.key) === e) entries.delete(e.key)
            break
        }
      }
      // The application paused while data was being delivered: the machine holds the rest again.
      if (unread !== undefined && !e.closedByUs) run(e, UtpConnection.Event.Unread({ chunks: unread }))
    }

    // -- receiving ---------------------------------------------------------------------------------------------

    const reset = (host: string, port: number, connectionId: number, ackNr: number): void => {
      const r = new Uint8Array(UtpPacket.HEADER_SIZE)
      UtpPacket.writeHeader(r, 0, UtpPacket.Type.Reset, 0, connectionId, (nowMicros() >>> 0) || 1, 0, 0, random16(), ackNr)
      sendTo(r, port, host)
    }

    socket.on("message", (buf, rinfo) => {
      const data = new Uint8Array(buf.buffer, buf.byteOffset, buf.length)
      if (!UtpPacket.looksLikeUtp(data)) {
        counts.otherIn++
        other?.({ data, address: rinfo.address, port: rinfo.port })
        return
      }
      counts.datagramsIn++
      const p = UtpPacket.parse(data)
      if (p instanceof UtpPacket.UtpPacketError) {
        counts.invalid++
        return
      }
      if (p.type === UtpPacket.Type.Syn) {
        const key = keyOf(rinfo.address, rinfo.port, (p.connectionId + 1) & 0xffff)
        const known = entries.get(key)
        if (known !== undefined) {
          run(known, UtpConnection.Event.Packet({ packet: p }))
          markDirty(known)
          return
        }
        if (waiting >= backlog || !open) {
          reset(rinfo.address, rinfo.port, p.connectionId, p.seqNr)
          return
        }
        const [state, actions] = UtpConnection.accept(config, p, random16(), nowMicros())
        const e = entry(key, rinfo.address, rinfo.port, state)
        entries.set(key, e)
        waiting++
        pending.unsafeOffer(e)
        apply(e, actions)
        return
      }
      const e = entries.get(keyOf(rinfo.address, rinfo.port, p.connectionId))
      if (e === undefined) {
        counts.unknown++
        // Data for a connection we do not know (forgotten, or never ours): tell the peer it is gone.
        if (p.type === UtpPacket.Type.Data || p.type === UtpPacket.Type.Fin) {
          reset(rinfo.address, rinfo.port, p.connectionId, p.seqNr)
        }
        return
      }
      run(e, UtpConnection.Event.Packet({ packet: p }))
      markDirty(e)
    })

    // -- timers ------------------------------------------------------------------------------------------------

    const timer = setInterval(() => {
      const now = nowMicros()
      for (const e of entries.values()) {
        const d = UtpConnection.deadline(e.state)
        if (d !== undefined && now >= d) run(e, UtpConnection.Event.Tick())
      }
    }, options.tickInterval ?? 50)
    timer.unref()

    // -- connections -------------------------------------------------------------------------------------------

    function entry(key: string, host: string, port: number, state: UtpConnection.UtpState): Entry {
      const remoteAddress = formatAddress(host, port)
      const closed = Deferred.unsafeMake<void, Tcp.TcpError>(FiberId.none)
      const self: Entry = {
        key,
        host,
        port,
        state,
        handler: undefined,
        paused: false,
        closedByUs: false,
        dirty: false,
        onHandshake: undefined,
        closed,
        conn: {
          remoteAddress,
          remote: { host, port },
          transport: "utp",
          onData: (h) => {
            const first = self.handler === undefined
            self.handler = h
            if (first && !self.paused && !self.closedByUs) {
              run(self, UtpConnection.Event.Resume())
              markDirty(self)
            }
          },
          write: (bytes, written) => {
            if (self.closedByUs || bytes.length === 0) return
            run(self, UtpConnection.Event.Write({ bytes, written }))
            markDirty(self)
          },
          pause: () => {
            if (self.paused) return
            self.paused = true
            run(self, UtpConnection.Event.Pause())
          },
          resume: () => {
            if (!self.paused) return
            self.paused = false
            if (self.handler !== undefined && !self.closedByUs) {
              run(self, UtpConnection.Event.Resume())
              markDirty(self)
            }
          },
          isPaused: () => self.paused,
          close: () => {
            if (self.closedByUs) return
            self.closedByUs = true
            self.handler = undefined
            run(self, UtpConnection.Event.Close())
            markDirty(self)
            Deferred.unsafeDone(closed, Exit.void)
          },
          closed: Deferred.await(closed),
          bytesRead: () => self.state.bytesReceived,
          bytesWritten: () => self.state.bytesSent,
          writeBacklog: () => UtpConnection.backlog(self.state)
        }
      }
      return self
    }

    const abortAll = Effect.sync(() => {
      clearInterval(timer)
      if (ackTimer !== undefined) clearTimeout(ackTimer)
      delayed.clear()
      for (const e of [...entries.values()]) {
        e.closedByUs = true
        run(e, UtpConnection.Event.Abort())
      }
      entries.clear()
      open = false
    })
    yield* Effect.addFinalizer(() => Effect.zipRight(abortAll, pending.shutdown))

    const dial = (o: Tcp.DialOptions): Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope> => {
      const address = formatAddress(o.host, o.port)
      const failed = (reason: "connect-failed" | "connect-timeout", cause: UtpError) =>
        new Tcp.TcpError({ reason, address, cause })
      const handshake = Effect.async<Entry, Tcp.TcpError>((resume) => {
        const ipVersion = Net.isIP(o.host)
        if (ipVersion === 0) {
          resume(Effect.fail(failed("connect-failed", new UtpError({ reason: "address", detail: "not an IP address" }))))
          return
        }
        if ((ipVersion === 6) !== (family === "udp6")) {
          const detail = `an IPv${ipVersion} address on this ${family === "udp6" ? "IPv6" : "IPv4"} socket`
          resume(Effect.fail(failed("connect-failed", new UtpError({ reason: "address", detail }))))
          return
        }
        // The key must match the sender address the kernel reports (RFC 5952 form) for the answers to find us.
        const host = ipVersion === 6 ? canonicalIpv6(o.host) : o.host
        if (!open) {
          resume(Effect.fail(failed("connect-failed", new UtpError({ reason: "closed", detail: "socket closed" }))))
          return
        }
        let recvId = random16()
        while (entries.has(keyOf(host, o.port, recvId))) recvId = random16()
        const [state, actions] = UtpConnection.connect(config, { recvId, seqNr: random16() }, nowMicros())
        const e = entry(keyOf(host, o.port, recvId), host, o.port, state)
        e.onHandshake = (error) => {
          if (error === undefined) resume(Effect.succeed(e))
          else {
            resume(Effect.fail(failed(error.reason === "connect-timeout" ? "connect-timeout" : "connect-failed", error)))
          }
        }
        entries.set(e.key, e)
        apply(e, actions)
        // Interrupted (the deadline below, or the caller) while connecting: forget the attempt.
        return Effect.sync(() => {
          if (e.onHandshake === undefined) return
          e.onHandshake = undefined
          e.closedByUs = true
          run(e, UtpConnection.Event.Abort())
        })
      }).pipe(
        Effect.timeoutFail({
          duration: o.timeout ?? "5 seconds",
          onTimeout: () => failed("connect-timeout", new UtpError({ reason: "connect-timeout", detail: "deadline" }))
        })
      )
      // Not `acquireRelease`: its acquire is uninterruptible, so the deadline (or the caller) could not stop a
      // handshake waiting for an answer. The connection is tied to the scope as soon as it exists.
      return Effect.uninterruptibleMask((restore) =>
        restore(handshake).pipe(
          Effect.tap((e) => Effect.addFinalizer(() => Effect.sync(() => e.conn.close()))),
          Effect.map((e) => e.conn)
        )
      )
    }

    const accept: Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
      restore(pending.take).pipe(
        Effect.catchTag("NoSuchElementException", () =>
          Effect.fail(
            new Tcp.TcpError({
              reason: "listen-failed",
              address: formatAddress(local.host, local.port),
              cause: new UtpError({ reason: "closed", detail: "socket closed" })
            })
          )),
        Effect.flatMap((e) => {
          waiting--
          return Effect.acquireRelease(Effect.succeed(e.conn), (c) => Effect.sync(() => c.close()))
        })
      )
    )

    const udp: Udp.Socket = {
      family,
      local: { address: local.host, port: local.port },
      onMessage: (h) => {
        other = h
      },
      send: (data, port, address) =>
        Effect.async<void, Udp.UdpError>((resume) => {
          try {
            socket.send(data, port, address, (cause) => {
              resume(cause ? Effect.fail(new Udp.UdpError({ reason: "Send", cause })) : Effect.void)
            })
          } catch (cause) {
            resume(Effect.fail(new Udp.UdpError({ reason: "Send", cause })))
          }
        })
    }

    return {
      local,
      dial,
      accept,
      udp,
      stats: () => {
        let retransmissions = 0
        let fastRetransmissions = 0
        let timeouts = 0
        let lossEvents = 0
        for (const e of entries.values()) {
          retransmissions += e.state.stats.retransmissions
          fastRetransmissions += e.state.stats.fastRetransmissions
          timeouts += e.state.stats.timeouts
          lossEvents += e.state.stats.lossEvents
        }
        return { connections: entries.size, ...counts, retransmissions, fastRetransmissions, timeouts, lossEvents }
      }
    } satisfies UtpSocket
  })
