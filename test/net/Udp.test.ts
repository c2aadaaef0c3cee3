/**
 * node:dgram adapter on loopback: send/receive on IPv4 and IPv6, and the socket is closed with its scope.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Udp from "../../src/net/Udp.ts"

const pingPong = (family: Udp.Family, address: string) =>
  Effect.gen(function*() {
    const a = yield* Udp.make({ family, address })
    const b = yield* Udp.make({ family, address })
    const got = yield* Deferred.make<Udp.Datagram>()
    b.onMessage((d) => {
      Deferred.unsafeDone(got, Exit.succeed({ ...d, data: new Uint8Array(d.data) }))
    })
    yield* a.send(Uint8Array.of(1, 2, 3), b.local.port, address)
    const d = yield* Deferred.await(got)
    expect(Array.from(d.data)).toEqual([1, 2, 3])
    expect(d.port).toBe(a.local.port)
    expect(d.address).toBe(address)
  })

describe("net/Udp", () => {
  it.scopedLive("sends and receives datagrams on 127.0.0.1", () => pingPong("udp4", "127.0.0.1"))

  it.scopedLive("sends and receives datagrams on ::1", () =>
    pingPong("udp6", "::1").pipe(
      Effect.catchTag("UdpError", (e) =>
        e.reason === "Bind" ? Effect.sync(() => console.warn("!!! no IPv6 loopback: skipped !!!")) : Effect.fail(e))
    ))

  it.live("closing the scope closes the socket: its port can be bound again, and sends fail", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const s = yield* Scope.extend(Udp.make({ family: "udp4", address: "127.0.0.1" }), scope)
      const port = s.local.port
      yield* Scope.close(scope, Exit.void)
      const err = yield* Effect.flip(s.send(Uint8Array.of(1), 9, "127.0.0.1"))
      expect(err.reason).toBe("Send")
      yield* Effect.scoped(Udp.make({ family: "udp4", address: "127.0.0.1", port }))
    }))

  it.live("a bind failure is a typed error, not a crash", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(Effect.scoped(Udp.make({ family: "udp4", address: "192.0.2.1" })))
      expect(err).toMatchObject({ _tag: "UdpError", reason: "Bind" })
    }))

  it.scopedLive("sending to an unreachable or closed port does not crash the process", () =>
    Effect.gen(function*() {
      const s = yield* Udp.make({ family: "udp4", address: "127.0.0.1" })
      yield* s.send(Uint8Array.of(1), 1, "127.0.0.1")
      yield* Effect.sleep("20 millis") // let a possible ICMP error arrive
      yield* s.send(Uint8Array.of(1), 1, "127.0.0.1")
    }))
})
