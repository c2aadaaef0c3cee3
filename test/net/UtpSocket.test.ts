/**
 * uTP over real UDP sockets on 127.0.0.1: two `UtpSocket`s dial and accept, streams cross byte-exact both ways with
 * pauses, close ends the other side, refused and unanswered dials fail typed, and the socket's non-uTP datagrams
 * (the DHT's share of the port) go to `udp` in both directions.
 */
import * as Dgram from "node:dgram"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Tcp from "../../src/net/Tcp.ts"
import * as UtpSocket from "../../src/net/UtpSocket.ts"

const randomBytes = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** Collects `n` bytes from a connection (then resolves with them). */
const readExactly = (conn: Tcp.Connection, n: number) =>
  Effect.async<Uint8Array>((resume) => {
    const out = new Uint8Array(n)
    let at = 0
    if (n === 0) resume(Effect.succeed(out))
    conn.onData((chunk) => {
      out.set(chunk.subarray(0, Math.min(chunk.length, n - at)), at)
      at += chunk.length
      if (at >= n) resume(Effect.succeed(out))
    })
  })

const writeInPieces = (conn: Tcp.Connection, data: Uint8Array, piece: number) => {
  for (let i = 0; i < data.length; i += piece) conn.write(data.subarray(i, Math.min(data.length, i + piece)))
}

const host = "127.0.0.1"

describe("UtpSocket over loopback UDP", () => {
  it.scopedLive("dials and accepts; 4 MB one way in 16 KiB writes, 400 kB back in 5-byte writes, arrive exactly; closing ends the other side", () =>
    Effect.gen(function*() {
      const a = yield* UtpSocket.make({ host })
      const b = yield* UtpSocket.make({ host })
      const [client, server] = yield* Effect.all([
        a.dial({ host, port: b.local.port }),
        b.accept
      ], { concurrency: 2 })
      expect(client.remote.port).toBe(b.local.port)
      expect(server.remote.port).toBe(a.local.port)
      const up = randomBytes(4_000_000, 1)
      const down = randomBytes(400_000, 2)
      writeInPieces(client, up, 16_397)
      writeInPieces(server, down, 5)
      const [gotUp, gotDown] = yield* Effect.all([readExactly(server, up.length), readExactly(client, down.length)], {
        concurrency: 2
      })
      expect(Buffer.from(gotUp).equals(Buffer.from(up))).toBe(true)
      expect(Buffer.from(gotDown).equals(Buffer.from(down))).toBe(true)
      expect(client.bytesWritten()).toBe(up.length)
      expect(server.bytesRead()).toBe(up.length)
      client.close()
      yield* server.closed
      expect(Exit.isSuccess(yield* Effect.exit(client.closed))).toBe(true)
    }), 60_000)

  it.scopedLive("a paused reader stops the sender (its backlog grows); resuming delivers everything", () =>
    Effect.gen(function*() {
      const a = yield* UtpSocket.make({ host })
      const b = yield* UtpSocket.make({ host, config: { receiveWindow: 64 * 1024 } })
      const [client, server] = yield* Effect.all([a.dial({ host, port: b.local.port }), b.accept], {
        concurrency: 2
      })
      const data = randomBytes(1_000_000, 3)
      const chunks: Array<Uint8Array> = []
      let received = 0
      const first = yield* Deferred.make<void>()
      server.onData((c) => {
        chunks.push(Uint8Array.from(c))
        received += c.length
        if (!server.isPaused()) {
          server.pause()
          Deferred.unsafeDone(first, Exit.void)
        }
      })
      client.write(data)
      yield* Deferred.await(first)
      // Paused after the first chunk: the sender's window closes; most of the megabyte waits on its side.
      const everything = yield* Deferred.make<void>()
      yield* Effect.async<void>((resume) => {
        const poll = setInterval(() => {
          if (client.writeBacklog!() > 0 && received < data.length) {
            clearInterval(poll)
            resume(Effect.void)
          }
        }, 5)
      })
      expect(received).toBeLessThan(data.length)
      server.onData((c) => {
        chunks.push(Uint8Array.from(c))
        received += c.length
        if (received === data.length) Deferred.unsafeDone(everything, Exit.void)
      })
      server.resume()
      yield* Deferred.await(everything)
      expect(Buffer.concat(chunks).equals(Buffer.from(data))).toBe(true)
    }), 60_000)

  it.scopedLive("a refused dial fails typed (connect-failed, refused); an unanswered one times out", () =>
    Effect.gen(function*() {
      const a = yield* UtpSocket.make({ host })
      const refusing = yield* UtpSocket.make({ host, backlog: 0 })
      const refused = yield* Effect.flip(a.dial({ host, port: refusing.local.port }))
      expect(refused.reason).toBe("connect-failed")
      expect(refused.cause).toMatchObject({ _tag: "UtpError", reason: "refused" })
      // A UDP socket that reads and never answers.
      const silent = Dgram.createSocket("udp4")
      yield* Effect.addFinalizer(() => Effect.sync(() => silent.close()))
      yield* Effect.async<void>((resume) => {
        silent.bind(0, host, () => resume(Effect.void))
      })
      const timedOut = yield* Effect.flip(a.dial({ host, port: silent.address().port, timeout: "300 millis" }))
      expect(timedOut.reason).toBe("connect-timeout")
      const badHost = yield* Effect.flip(a.dial({ host: "localhost", port: 1 }))
      expect(badHost.cause).toMatchObject({ reason: "address" })
    }), 30_000)

  it.scopedLive("shares the port: non-uTP datagrams reach `udp`, and `udp.send` leaves from the same port", () =>
    Effect.gen(function*() {
      const s = yield* UtpSocket.make({ host })
      const peer = Dgram.createSocket("udp4")
      yield* Effect.addFinalizer(() => Effect.sync(() => peer.close()))
      const peerPort = yield* Effect.async<number>((resume) => {
        peer.bind(0, host, () => resume(Effect.succeed(peer.address().port)))
      })
      const got = yield* Deferred.make<{ readonly text: string; readonly port: number }>()
      s.udp.onMessage((d) => {
        Deferred.unsafeDone(got, Exit.succeed({ text: Buffer.from(d.data).toString(), port: d.port }))
      })
      const ping = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
      peer.send(ping, s.local.port, host)
      expect(yield* Deferred.await(got)).toEqual({ text: ping, port: peerPort })
      const back = yield* Effect.async<{ readonly text: string; readonly port: number }>((resume) => {
        peer.once("message", (m, r) => resume(Effect.succeed({ text: m.toString(), port: r.port })))
      }).pipe(Effect.fork)
      yield* s.udp.send(Buffer.from("d1:y1:re"), peerPort, host)
      const reply = yield* Effect.fromFiber(back)
      expect(reply).toEqual({ text: "d1:y1:re", port: s.local.port })
      expect(s.stats().otherIn).toBe(1)
    }), 30_000)
})
