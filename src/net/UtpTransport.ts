/**
 * Which transport outgoing peer connections use: "tcp" (the default), "utp" (BEP 29 over the client's `UtpSocket`)
 * or "both" — libtorrent's policy: try uTP first and fall back to TCP when it does not connect (no answer within
 * `utpFirst`, or refused); the first of the two to connect is used.
 *
 * A dialer has the shape `PeerSession`'s `dial` option takes, so everything above (MSE, the handshake, the session)
 * runs over either connection alike.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as Tcp from "./Tcp.ts"
import type * as UtpSocket from "./UtpSocket.ts"

export type Transport = "tcp" | "utp" | "both"

export const transports: ReadonlyArray<Transport> = ["tcp", "utp", "both"]

export const isTransport = (s: string): s is Transport => s === "tcp" || s === "utp" || s === "both"

export type Dial = (address: Tcp.Address) => Effect.Effect<Tcp.Connection, Tcp.TcpError, Scope.Scope>

export interface DialerOptions {
  readonly transport: Transport
  /** The uTP socket (needed for "utp" and "both"; without one they dial TCP). */
  readonly utp: Effect.Effect<UtpSocket.UtpSocket | undefined>
  /**
   * The IPv6 uTP socket, for IPv6 peers (UDP sockets are of one family). Without one, "both" dials IPv6 peers over
   * TCP and "utp" fails them (the IPv4 socket refuses an IPv6 address).
   */
  readonly utp6?: Effect.Effect<UtpSocket.UtpSocket | undefined> | undefined
  /**
   * With "both": how long uTP has alone before TCP is dialled as well (the first to connect wins, the other is
   * abandoned). Default 1 s: the SYN's first retransmission timeout. TCP starts at once when uTP fails (refused).
   */
  readonly utpFirst?: Duration.DurationInput | undefined
  /** How TCP is dialled (default `Tcp.dial` without its own deadline); tests pass fakes. */
  readonly tcp?: Dial | undefined
}

const tcpDial: Dial = (a) => Tcp.dial({ ...a, timeout: Duration.infinity })

/** Addresses remembered as reached over TCP (or not over uTP) by "both", at most this many. */
const MEMORY = 10_000

/** The dial function for `transport`. Deadlines of the whole connect stay the caller's (PeerSession's). */
export const dialer = (options: DialerOptions): Dial => {
  const tcp = options.tcp ?? tcpDial
  if (options.transport === "tcp") return tcp
  const utpFirst = options.utpFirst ?? Duration.seconds(1)
  // Like libtorrent, a peer that did not connect over uTP is dialled over TCP only from then on.
  const tcpOnly = new Set<string>()
  const remember = (key: string) =>
    Effect.sync(() => {
      if (tcpOnly.size >= MEMORY) tcpOnly.clear()
      tcpOnly.add(key)
    })
  const socketFor = (host: string): Effect.Effect<UtpSocket.UtpSocket | undefined> =>
    Net.isIPv6(host)
      ? options.utp6 ?? (options.transport === "utp" ? options.utp : Effect.succeed(undefined))
      : options.utp
  return (a) =>
    Effect.flatMap(socketFor(a.host), (utp) => {
      if (utp === undefined) return tcp(a)
      if (options.transport === "utp") return utp.dial({ ...a, timeout: Duration.infinity })
      const key = `${a.host}|${a.port}`
      if (tcpOnly.has(key)) return tcp(a)
      return Effect.flatMap(Deferred.make<void>(), (utpFailed) => {
        const viaUtp = utp.dial({ ...a, timeout: Duration.infinity }).pipe(
          Effect.tapError(() => Effect.zipRight(remember(key), Deferred.succeed(utpFailed, undefined)))
        )
        const viaTcp = Effect.raceFirst(Effect.sleep(utpFirst), Deferred.await(utpFailed)).pipe(
          Effect.zipRight(tcp(a)),
          Effect.tap(() => remember(key))
        )
        return Effect.race(viaUtp, viaTcp)
      })
    })
}
