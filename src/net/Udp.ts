/**
 * UDP datagram sockets over node:dgram, as a scoped Effect resource. One socket can talk to many remote addresses;
 * inbound datagrams are delivered to a synchronous handler (the caller routes them, e.g. by transaction id), so no
 * fiber is forked per datagram.
 */
import * as Dgram from "node:dgram"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"

export type Family = "udp4" | "udp6"

export class UdpError extends Data.TaggedError("UdpError")<{
  readonly reason: "Bind" | "Send" | "Socket"
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `udp ${this.reason.toLowerCase()} failed: ${detail}`
  }
}

export interface Datagram {
  readonly data: Uint8Array
  readonly address: string
  readonly port: number
}

/** The port other modules depend on; tests substitute in-memory sockets. */
export interface Socket {
  readonly family: Family
  /** Sends one datagram; completes when node has handed it to the kernel. */
  readonly send: (data: Uint8Array, port: number, address: string) => Effect.Effect<void, UdpError>
  /**
   * Installs the handler for inbound datagrams (replacing any previous one). Datagrams that arrive with no
   * handler installed are dropped, as UDP allows.
   */
  readonly onMessage: (handler: (datagram: Datagram) => void) => void
  /** The locally bound address. */
  readonly local: { readonly address: string; readonly port: number }
}

export interface Options {
  readonly family: Family
  /** Local address to bind; defaults to all interfaces of the family. */
  readonly address?: string | undefined
  readonly port?: number | undefined
  /** SO_REUSEADDR: share a well-known multicast port (BEP 14's 6771) with other clients on the host. */
  readonly reuseAddr?: boolean | undefined
  /** Outgoing multicast: hop limit, whether our own datagrams loop back to this host, and the interface to use. */
  readonly multicast?: {
    readonly ttl: number
    readonly loopback: boolean
    /** An IPv4 address of the interface, or `::%name` for IPv6. */
    readonly interface?: string | undefined
  } | undefined
}

/** A socket that can also join multicast groups (on one interface each: an address, or `::%name` for IPv6). */
export interface MulticastSocket extends Socket {
  readonly join: (group: string, iface: string) => Effect.Effect<void, UdpError>
  readonly leave: (group: string, iface: string) => Effect.Effect<void, UdpError>
}

/** Binds a socket for the lifetime of the current scope; closing the scope closes the socket. */
export const make = (options: Options): Effect.Effect<MulticastSocket, UdpError, Scope.Scope> =>
  Effect.gen(function*() {
    const socket = yield* Effect.acquireRelease(
      Effect.async<Dgram.Socket, UdpError>((resume) => {
        const s = Dgram.createSocket({
          type: options.family,
          ipv6Only: options.family === "udp6",
          reuseAddr: options.reuseAddr === true
        })
        const onError = (cause: unknown) => {
          s.close()
          resume(Effect.fail(new UdpError({ reason: "Bind", cause })))
        }
        s.once("error", onError)
        s.bind(options.port ?? 0, options.address ?? (options.family === "udp4" ? "0.0.0.0" : "::"), () => {
          s.off("error", onError)
          const m = options.multicast
          try {
            if (m !== undefined) {
              s.setMulticastTTL(m.ttl)
              s.setMulticastLoopback(m.loopback)
              if (m.interface !== undefined) s.setMulticastInterface(m.interface)
            }
          } catch (cause) {
            s.close()
            return resume(Effect.fail(new UdpError({ reason: "Bind", cause })))
          }
          resume(Effect.succeed(s))
        })
      }),
      (s) =>
        Effect.async<void>((resume) => {
          s.removeAllListeners("message")
          try {
            s.close(() => resume(Effect.void))
          } catch (cause) {
            // Only this release closes the socket (it is never handed out), so "not running" means closed twice: a
            // bug, never swallowed.
            resume(Effect.die(cause))
          }
        })
    )
    const local = socket.address()
    let handler: ((d: Datagram) => void) | undefined
    socket.on("message", (data, rinfo) => {
      handler?.({ data: new Uint8Array(data.buffer, data.byteOffset, data.length), address: rinfo.address, port: rinfo.port })
    })
    // An error on the socket (a failed receive, an ICMP error reported on it) must not crash the process, and the
    // per-request timeouts cover a lost datagram; but it is logged, never dropped: a warning the first time for each
    // code, then at debug level (a flood of one error is one line).
    const runtime = yield* Effect.runtime<never>()
    const seenCodes = new Set<string>()
    socket.on("error", (cause: Error & { readonly code?: string }) => {
      const code = cause.code ?? cause.name
      const first = !seenCodes.has(code)
      seenCodes.add(code)
      const line = `udp socket ${local.address}:${local.port}: ${cause.message}`
      Runtime.runFork(runtime)(first ? Effect.logWarning(line) : Effect.logDebug(line))
    })
    const membership = (join: boolean) => (group: string, iface: string) =>
      Effect.try({
        try: () => (join ? socket.addMembership(group, iface) : socket.dropMembership(group, iface)),
        catch: (cause) => new UdpError({ reason: "Socket", cause })
      })
    return {
      family: options.family,
      local: { address: local.address, port: local.port },
      join: membership(true),
      leave: membership(false),
      onMessage: (h) => {
        handler = h
      },
      send: (data, port, address) =>
        Effect.async<void, UdpError>((resume) => {
          try {
            socket.send(data, port, address, (cause) => {
              resume(cause ? Effect.fail(new UdpError({ reason: "Send", cause })) : Effect.void)
            })
          } catch (cause) {
            resume(Effect.fail(new UdpError({ reason: "Send", cause })))
          }
        })
    } satisfies MulticastSocket
  })
