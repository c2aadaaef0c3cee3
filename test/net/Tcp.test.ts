import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Tcp from "../../src/net/Tcp.ts"

/** A connected pair over loopback: [dialled, accepted]. */
const pair = Effect.gen(function*() {
  const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
  const client = yield* Tcp.dial({ host: "127.0.0.1", port: listener.address.port })
  const server = yield* listener.accept
  return [client, server] as const
})

/** Collects what `conn` reads until `n` bytes have arrived. */
const collect = (conn: Tcp.Connection, n: number) =>
  Effect.gen(function*() {
    const chunks: Array<Uint8Array> = []
    let got = 0
    const done = yield* Deferred.make<Uint8Array>()
    conn.onData((chunk) => {
      chunks.push(new Uint8Array(chunk))
      got += chunk.length
      if (got >= n) Deferred.unsafeDone(done, Exit.succeed(Bytes.concat(chunks)))
    })
    return done
  })

/**
 * Two turns of the event loop: whatever was queued before (next ticks, microtasks, immediates) has run, and so has a
 * full poll phase, where Node delivers socket data and write completions. No clock involved: a barrier for checks
 * that something did not happen, once a signal says the bytes concerned are in the kernel.
 */
const loopTurns = Effect.promise(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))))

describe("Tcp", () => {
  it.scopedLive("writes of one tick arrive complete and in order, both ways", () =>
    Effect.gen(function*() {
      const [client, server] = yield* pair
      expect(server.remote.host).toBe("127.0.0.1")
      expect(client.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/)
      const messages = Array.from({ length: 500 }, (_, i) => Uint8Array.of(i & 0xff, i >> 8, 7))
      const atServer = yield* collect(server, 1500)
      for (const m of messages) client.write(m)
      expect(yield* Deferred.await(atServer)).toEqual(Bytes.concat(messages))
      const atClient = yield* collect(client, 3)
      server.write(Uint8Array.of(1, 2, 3))
      expect(yield* Deferred.await(atClient)).toEqual(Uint8Array.of(1, 2, 3))
      expect(client.bytesWritten()).toBe(1500)
    }))

  it.scopedLive("written: runs once the socket is done with the bytes, in order; never for a write after close", () =>
    Effect.gen(function*() {
      const [client, server] = yield* pair
      const block = new Uint8Array(1 << 20)
      const written: Array<number> = []
      /** What the socket still held (`writeBacklog`) when each callback ran. */
      const heldThen: Array<number> = []
      const allWritten = yield* Deferred.make<void>()
      // A peer that does not read yet: 8 MiB cannot all be taken by the kernel, so some callbacks wait for it.
      server.pause()
      for (let i = 0; i < 8; i++) {
        client.write(block, () => {
          written.push(i)
          heldThen.push(client.writeBacklog!())
          if (written.length === 8) Deferred.unsafeDone(allWritten, Exit.void)
        })
      }
      // The batch left on the next tick and the loop has polled since: a callback run at write or flush time (or on
      // a tick after it) would be in.
      yield* loopTurns
      expect(written.length).toBeLessThan(8)
      const got = yield* collect(server, 8 << 20)
      server.resume()
      yield* Deferred.await(got)
      yield* Deferred.await(allWritten)
      expect(written).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
      // Each ran once the socket no longer held its block: at most the blocks after it were left.
      expect(heldThen.length).toBe(8)
      expect(heldThen.map((held, k) => held <= (7 - written[k]!) * block.length)).toEqual(Array(8).fill(true))
      client.close()
      yield* client.closed
      const backlog = client.writeBacklog!()
      let late = 0
      client.write(block, () => void late++)
      // Dropped at once (not queued), and no callback by the time every tick and a poll phase have run: a write on a
      // closed Node socket reports back on a next tick.
      expect(client.writeBacklog!()).toBe(backlog)
      yield* loopTurns
      expect(late).toBe(0)
    }))

  it.scopedLive("bytes sent before the handler is installed are kept, not lost", () =>
    Effect.gen(function*() {
      const [client, server] = yield* pair
      const taken = yield* Deferred.make<void>()
      client.write(Uint8Array.of(9, 8, 7), () => Deferred.unsafeDone(taken, Exit.void))
      // The kernel took them (on loopback: they are at the server's socket), and the loop has polled since.
      yield* Deferred.await(taken)
      yield* loopTurns
      const got = yield* collect(server, 3)
      expect(yield* Deferred.await(got)).toEqual(Uint8Array.of(9, 8, 7))
    }))

  it.scopedLive("dialled connections share one read buffer: concurrent streams arrive byte-exact, FIN is seen", () =>
    Effect.gen(function*() {
      const size = 2 * 1024 * 1024 + 12_345
      const pattern = (seed: number) => Uint8Array.from({ length: size }, (_, i) => (i * seed + (i >> 9)) & 0xff)
      const pairs = [yield* pair, yield* pair, yield* pair]
      const got = yield* Effect.forEach(pairs, ([client]) => collect(client, size))
      pairs.forEach(([, server], k) => {
        const data = pattern(k + 3)
        // Many writes in several ticks, so reads of the three sockets interleave.
        for (let at = 0; at < size; at += 100_000) server.write(data.subarray(at, Math.min(size, at + 100_000)))
      })
      for (let k = 0; k < pairs.length; k++) {
        expect(Bytes.equals(yield* Deferred.await(got[k]!), pattern(k + 3))).toBe(true)
      }
      pairs[0]![1].close()
      yield* pairs[0]![0].closed
    }))

  it.scopedLive("pause stops delivery until resume", () =>
    Effect.gen(function*() {
      const [client, server] = yield* pair
      const [controlClient, controlServer] = yield* pair
      server.pause()
      expect(server.isPaused()).toBe(true)
      const got = yield* collect(server, 4)
      const control = yield* collect(controlServer, 1)
      // A control connection that is not paused gets a byte once the kernel has taken ours; when it has been delivered
      // (and the rest of that poll phase has run), ours would have been too, had pause not held them back.
      client.write(Uint8Array.of(1, 2, 3, 4), () => controlClient.write(Uint8Array.of(0)))
      yield* Deferred.await(control)
      yield* loopTurns
      expect(yield* Deferred.isDone(got)).toBe(false)
      server.resume()
      expect(yield* Deferred.await(got)).toEqual(Uint8Array.of(1, 2, 3, 4))
    }))

  it.scopedLive("closing a scope destroys its socket; the other end's closed completes", () =>
    Effect.gen(function*() {
      const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
      const scope = yield* Scope.make()
      yield* Tcp.dial({ host: "127.0.0.1", port: listener.address.port }).pipe(Scope.extend(scope))
      const server = yield* listener.accept
      server.onData(() => {})
      yield* Scope.close(scope, Exit.void)
      yield* server.closed
      server.write(Uint8Array.of(1)) // a no-op after close
    }))

  it.scopedLive("dialling a port nobody listens on fails with connect-failed", () =>
    Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.map(Tcp.listen({ host: "127.0.0.1", port: 0 }), (l) => l.address.port))
      const error = yield* Effect.flip(Effect.scoped(Tcp.dial({ host: "127.0.0.1", port })))
      expect(error.reason).toBe("connect-failed")
      expect(error.message).toContain(`127.0.0.1:${port}`)
    }))

  it.scopedLive("listening on a taken port fails with listen-failed", () =>
    Effect.gen(function*() {
      const first = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
      const error = yield* Effect.flip(Effect.scoped(Tcp.listen({ host: "127.0.0.1", port: first.address.port })))
      expect(error.reason).toBe("listen-failed")
    }))
})
