/**
 * The dial policy (UtpTransport.dialer) with fake transports and TestClock: "both" uses uTP when it connects, dials
 * TCP as well once uTP has had `utpFirst` (1 s) alone, at once when uTP fails, and dials a peer that did not connect
 * over uTP over TCP only from then on; "utp" and "tcp" use only their own.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Tcp from "../../src/net/Tcp.ts"
import type * as Udp from "../../src/net/Udp.ts"
import * as UtpSocket from "../../src/net/UtpSocket.ts"
import * as UtpTransport from "../../src/net/UtpTransport.ts"

const fakeConnection = (remoteAddress: string): Tcp.Connection => ({
  remoteAddress,
  remote: { host: "127.0.0.1", port: 1 },
  onData: () => {},
  write: () => {},
  pause: () => {},
  resume: () => {},
  isPaused: () => false,
  close: () => {},
  closed: Effect.never,
  bytesRead: () => 0,
  bytesWritten: () => 0
})

const udpStub: Udp.Socket = {
  family: "udp4",
  local: { address: "127.0.0.1", port: 1 },
  onMessage: () => {},
  send: () => Effect.void
}

type Behaviour = "connects" | "silent" | "refuses"

/** A uTP socket whose dials behave as told, and a TCP dial that connects; both count their calls. */
const fakes = (behaviour: Behaviour) => {
  const calls = { utp: 0, tcp: 0 }
  const utpConn = fakeConnection("utp")
  const tcpConn = fakeConnection("tcp")
  const socket: UtpSocket.UtpSocket = {
    local: { host: "127.0.0.1", port: 1 },
    dial: (o) =>
      Effect.suspend(() => {
        calls.utp++
        if (behaviour === "connects") return Effect.succeed(utpConn)
        if (behaviour === "silent") return Effect.never
        return Effect.fail(
          new Tcp.TcpError({
            reason: "connect-failed",
            address: `${o.host}:${o.port}`,
            cause: new UtpSocket.UtpError({ reason: "refused", detail: "reset" })
          })
        )
      }),
    accept: Effect.never,
    udp: udpStub,
    stats: () => ({
      connections: 0,
      datagramsIn: 0,
      datagramsOut: 0,
      otherIn: 0,
      invalid: 0,
      unknown: 0,
      errors: 0,
      retransmissions: 0,
      fastRetransmissions: 0,
      timeouts: 0,
      lossEvents: 0
    })
  }
  const tcp: UtpTransport.Dial = () =>
    Effect.sync(() => {
      calls.tcp++
      return tcpConn
    })
  const dial = (transport: UtpTransport.Transport) =>
    UtpTransport.dialer({ transport, utp: Effect.succeed(socket), tcp })
  return { calls, dial }
}

const peer = { host: "127.0.0.1", port: 6881 }

describe("UtpTransport.dialer", () => {
  it.scoped("both: a peer that answers over uTP gets uTP, TCP is never dialled", () =>
    Effect.gen(function*() {
      const f = fakes("connects")
      const conn = yield* f.dial("both")(peer)
      expect(conn.remoteAddress).toBe("utp")
      expect(f.calls).toEqual({ utp: 1, tcp: 0 })
    }))

  it.scoped("both: uTP silent for 1 s brings TCP in; the peer is dialled over TCP only afterwards", () =>
    Effect.gen(function*() {
      const f = fakes("silent")
      const dial = f.dial("both")
      const fiber = yield* Effect.fork(dial(peer))
      yield* TestClock.adjust("999 millis")
      expect(f.calls).toEqual({ utp: 1, tcp: 0 })
      yield* TestClock.adjust("1 millis")
      const conn = yield* Fiber.join(fiber)
      expect(conn.remoteAddress).toBe("tcp")
      expect(f.calls).toEqual({ utp: 1, tcp: 1 })
      const again = yield* dial(peer)
      expect(again.remoteAddress).toBe("tcp")
      expect(f.calls).toEqual({ utp: 1, tcp: 2 })
      // Another peer still tries uTP first.
      yield* Effect.fork(dial({ host: "127.0.0.1", port: 6882 }))
      yield* TestClock.adjust("1 millis")
      expect(f.calls.utp).toBe(2)
    }))

  it.scoped("both: a refused uTP dial brings TCP in at once", () =>
    Effect.gen(function*() {
      const f = fakes("refuses")
      const conn = yield* f.dial("both")(peer)
      expect(conn.remoteAddress).toBe("tcp")
      expect(f.calls).toEqual({ utp: 1, tcp: 1 })
    }))

  it.scoped("utp and tcp use only their own transport", () =>
    Effect.gen(function*() {
      const refusing = fakes("refuses")
      const failed = yield* Effect.flip(refusing.dial("utp")(peer))
      expect(failed.cause).toMatchObject({ reason: "refused" })
      expect(refusing.calls).toEqual({ utp: 1, tcp: 0 })
      const f = fakes("connects")
      expect((yield* f.dial("tcp")(peer)).remoteAddress).toBe("tcp")
      expect(f.calls).toEqual({ utp: 0, tcp: 1 })
    }))
})
