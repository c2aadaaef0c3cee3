/**
 * One UDP socket shared by every UDP tracker request of a family, with replies routed to their waiting request by
 * transaction id (the split of anacrolix/torrent's tracker/udp/dispatcher.go). Replies with an unknown
 * transaction id, or from an address other than the one the request went to, are dropped.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import type * as Udp from "../net/Udp.ts"
import * as UdpCodec from "./UdpCodec.ts"

export interface Pending {
  readonly transactionId: number
  /** Completed with the first datagram that carries this transaction id and comes from the request's address. */
  readonly reply: Deferred.Deferred<Uint8Array>
}

export interface Dispatcher {
  readonly socket: Udp.Socket
  /** Allocates an unused transaction id for a request to `address:port`; released when the scope closes. */
  readonly register: (address: string, port: number) => Effect.Effect<Pending, never, Scope.Scope>
  /** Transactions currently waiting (for tests: nothing may leak). */
  readonly pending: Effect.Effect<number>
}

interface Entry {
  readonly address: string
  readonly port: number
  readonly reply: Deferred.Deferred<Uint8Array>
}

/** Strips the IPv4-mapped prefix node reports on dual-stack sockets, so addresses compare as text. */
const normalize = (address: string): string => {
  const a = address.toLowerCase()
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a
}

export const make = (socket: Udp.Socket): Effect.Effect<Dispatcher> =>
  Effect.sync(() => {
    const entries = new Map<number, Entry>()
    socket.onMessage((d) => {
      const tid = UdpCodec.transactionIdOf(d.data)
      if (tid === undefined) return
      const entry = entries.get(tid)
      if (entry === undefined || entry.port !== d.port || normalize(entry.address) !== normalize(d.address)) return
      // Copy: the datagram's buffer belongs to node.
      Deferred.unsafeDone(entry.reply, Effect.succeed(new Uint8Array(d.data)))
    })
    const register = (address: string, port: number) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const reply = yield* Deferred.make<Uint8Array>()
          let tid = yield* Random.nextIntBetween(0, 0x7fffffff)
          while (entries.has(tid)) tid = (tid + 1) >>> 0
          entries.set(tid, { address, port, reply })
          return { transactionId: tid, reply }
        }),
        (p) => Effect.sync(() => void entries.delete(p.transactionId))
      )
    return { socket, register, pending: Effect.sync(() => entries.size) }
  })
