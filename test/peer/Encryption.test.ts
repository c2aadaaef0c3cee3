/**
 * MSE over real connections (src/peer/Encryption.ts): our `initiate` against our `respond` over loopback sockets
 * with rc4 and plaintext selected, data both ways in split writes (a property over random keys, paddings and write
 * sizes), the wrapper's forwarding (written buffers untouched, backlog, pause), the outbound policies against a
 * plain-only peer (prefer falls back and remembers it, require fails typed), a peer answering garbage, and the
 * handshake deadline on TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as TestClock from "effect/TestClock"
import * as Net from "node:net"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1 } from "../../src/core/InfoHash.ts"
import * as Tcp from "../../src/net/Tcp.ts"
import * as Encryption from "../../src/peer/Encryption.ts"
import * as Mse from "../../src/wire/Mse.ts"
import { build, seed } from "../support/seeder.ts"

const hashOf = (n: number) => Uint8Array.from({ length: 20 }, (_, i) => (i * 13 + n) & 0xff) as InfoHashV1
const infoHash = hashOf(1)
const lookup = (req2: Uint8Array) =>
  [hashOf(9), infoHash].find((h) => Bytes.equals(Mse.req2Hash(h), req2))

/** A seeded byte source (mulberry32), so a fast-check seed fixes keys and paddings. */
const seeded = (s: number): Mse.Random => {
  let a = s >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) & 0xff
  }
  return (n) => Uint8Array.from({ length: n }, next)
}

/** A connection that records every byte written to the wire below it. */
const recording = (conn: Tcp.Connection) => {
  const wire: Array<Uint8Array> = []
  const spied: Tcp.Connection = {
    ...conn,
    write: (bytes, written) => {
      wire.push(Uint8Array.from(bytes))
      conn.write(bytes, written)
    }
  }
  return { conn: spied, wire: () => Bytes.concat(wire) }
}

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
    const check = () => {
      if (got >= n) Deferred.unsafeDone(done, Exit.succeed(Bytes.concat(chunks)))
    }
    conn.onData((chunk) => {
      chunks.push(Uint8Array.from(chunk))
      got += chunk.length
      check()
    })
    check()
    return done
  })

const contains = (hay: Uint8Array, needle: Uint8Array): boolean => Buffer.from(hay).includes(Buffer.from(needle))

/** Writes `data` in pieces of the given sizes (cycled), all in one tick. */
const writeSplit = (conn: Tcp.Connection, data: Uint8Array, sizes: ReadonlyArray<number>) => {
  let at = 0
  let k = 0
  while (at < data.length) {
    const n = sizes.length === 0 ? data.length : Math.max(1, sizes[k++ % sizes.length]!)
    conn.write(data.slice(at, at + n))
    at += n
  }
}

/** initiate on the dialled end, respond on the accepted end; both results. */
const handshake = (
  policies: { readonly out: "prefer" | "require"; readonly in: "prefer" | "require" },
  options: { readonly ia?: Uint8Array; readonly seedA?: number; readonly seedB?: number; readonly maxPadding?: number } =
    {}
) =>
  Effect.gen(function*() {
    const [client, server] = yield* pair
    const spy = recording(client)
    const responder = yield* Effect.fork(
      Encryption.respond(server, lookup, policies.in, {
        random: options.seedB === undefined ? undefined : seeded(options.seedB),
        maxPadding: options.maxPadding
      })
    )
    const a = yield* Encryption.initiate(spy.conn, infoHash, policies.out, {
      initialPayload: options.ia,
      random: options.seedA === undefined ? undefined : seeded(options.seedA),
      maxPadding: options.maxPadding
    })
    const b = yield* Fiber.join(responder)
    return { a, b, wire: spy.wire }
  })

const text = (s: string) => Bytes.encodeUtf8(s)

/**
 * Two turns of the event loop: whatever was queued before (next ticks, microtasks, immediates) has run, and so has a
 * full poll phase, where Node delivers socket data. A barrier for checks that nothing was delivered, once a write
 * callback says the bytes concerned are in the kernel. (`Effect.yieldNow` is no such barrier: it resumes on a
 * microtask, which can run before a pending next tick.)
 */
const loopTurns = Effect.promise(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))))

describe("Encryption over loopback", () => {
  it.scopedLive("rc4 (require both ways): IA first, data both ways encrypted on the wire", () =>
    Effect.gen(function*() {
      const ia = text("initial payload: our BitTorrent handshake goes here")
      const { a, b, wire } = yield* handshake({ out: "require", in: "require" }, { ia })
      expect(a.cipher).toBe("rc4")
      expect(b.cipher).toBe("rc4")
      expect(Bytes.toHex(b.infoHash)).toBe(Bytes.toHex(infoHash))
      const secret = text("a message nobody on the path should read ".repeat(50))
      const atB = yield* collect(b.connection, ia.length + secret.length)
      a.connection.write(secret)
      const got = yield* Deferred.await(atB)
      expect(got.subarray(0, ia.length)).toEqual(ia)
      expect(got.subarray(ia.length)).toEqual(secret)
      expect(contains(wire(), secret.subarray(0, 40))).toBe(false)
      expect(contains(wire(), ia)).toBe(false)
      const reply = text("and back ".repeat(1000))
      const atA = yield* collect(a.connection, reply.length)
      b.connection.write(reply)
      expect(yield* Deferred.await(atA)).toEqual(reply)
    }))

  it.scopedLive("prefer both ways selects plaintext: obfuscated handshake, then the bytes as they are", () =>
    Effect.gen(function*() {
      const ia = text("the handshake inside IA is still rc4")
      const { a, b, wire } = yield* handshake({ out: "prefer", in: "prefer" }, { ia })
      expect(a.cipher).toBe("plaintext")
      expect(b.cipher).toBe("plaintext")
      const data = text("plain payload after the MSE handshake ".repeat(20))
      const atB = yield* collect(b.connection, ia.length + data.length)
      a.connection.write(data)
      const got = yield* Deferred.await(atB)
      expect(got.subarray(0, ia.length)).toEqual(ia)
      expect(got.subarray(ia.length)).toEqual(data)
      expect(contains(wire(), ia)).toBe(false)
      expect(contains(wire(), data)).toBe(true)
    }))

  it.scopedLive("a require side makes a prefer side use rc4, whichever initiates", () =>
    Effect.gen(function*() {
      const one = yield* handshake({ out: "prefer", in: "require" })
      expect([one.a.cipher, one.b.cipher]).toEqual(["rc4", "rc4"])
      const two = yield* handshake({ out: "require", in: "prefer" })
      expect([two.a.cipher, two.b.cipher]).toEqual(["rc4", "rc4"])
    }))

  it.scopedLive.prop(
    "both sides agree for random keys, paddings, IA and write splits; data round-trips both ways",
    [
      FastCheck.integer(),
      FastCheck.integer(),
      FastCheck.constantFrom<"prefer" | "require">("prefer", "require"),
      FastCheck.constantFrom<"prefer" | "require">("prefer", "require"),
      FastCheck.constantFrom(0, 7, 512),
      FastCheck.uint8Array({ maxLength: 300 }),
      FastCheck.uint8Array({ minLength: 1, maxLength: 70_000 }),
      FastCheck.uint8Array({ minLength: 1, maxLength: 20_000 }),
      FastCheck.array(FastCheck.integer({ min: 1, max: 5000 }), { maxLength: 6 }),
      FastCheck.array(FastCheck.integer({ min: 1, max: 5000 }), { maxLength: 6 })
    ],
    ([seedA, seedB, out, inn, maxPadding, ia, dataA, dataB, cutsA, cutsB]) =>
      Effect.gen(function*() {
        const { a, b } = yield* handshake({ out, in: inn }, { ia, seedA, seedB, maxPadding })
        const expected = out === "require" || inn === "require" ? "rc4" : "plaintext"
        expect(a.cipher).toBe(expected)
        expect(b.cipher).toBe(expected)
        // Both write before the other side has installed a handler: nothing may be lost or reordered.
        writeSplit(a.connection, dataA, cutsA)
        writeSplit(b.connection, dataB, cutsB)
        const atB = yield* collect(b.connection, ia.length + dataA.length)
        const atA = yield* collect(a.connection, dataB.length)
        expect(yield* Deferred.await(atB)).toEqual(Bytes.concat([ia, dataA]))
        expect(yield* Deferred.await(atA)).toEqual(dataB)
      }),
    { fastCheck: { numRuns: 12 } }
  )

  it.scopedLive("kept bytes (IA) come from a later tick, never inside onData; paused, they wait; order holds", () =>
    Effect.gen(function*() {
      const ia = text("IA bytes kept by the wrapper")
      const { a, b } = yield* handshake({ out: "require", in: "require" }, { ia })
      const more = text(" and what the socket brings after them")
      const taken = yield* Deferred.make<void>()
      a.connection.write(more, () => Deferred.unsafeDone(taken, Exit.void))
      const got: Array<Uint8Array> = []
      let inside = true
      let calledInside = false
      b.connection.onData((chunk) => {
        if (inside) calledInside = true
        got.push(Uint8Array.from(chunk))
      })
      b.connection.pause()
      inside = false
      expect(calledInside).toBe(false)
      // The tick that would deliver the kept bytes has run, and `more` is in the kernel and the loop has polled since:
      // neither came while paused.
      yield* Deferred.await(taken)
      yield* loopTurns
      expect(got).toEqual([])
      const all = yield* collect(b.connection, ia.length + more.length)
      b.connection.resume()
      expect(yield* Deferred.await(all)).toEqual(Bytes.concat([ia, more]))
    }))

  it.scopedLive("written buffers are never modified (encrypted into a copy); backlog and pause are the socket's", () =>
    Effect.gen(function*() {
      const { a, b } = yield* handshake({ out: "require", in: "require" })
      b.connection.pause()
      expect(b.connection.isPaused()).toBe(true)
      let delivered = 0
      b.connection.onData((chunk) => void (delivered += chunk.length))
      // Paused, a few bytes: once the kernel took them (on loopback: they are at b's socket) and the loop has polled
      // since, a socket that was not paused would have delivered them.
      const first = text("sent while b is paused")
      const taken = yield* Deferred.make<void>()
      a.connection.write(first, () => Deferred.unsafeDone(taken, Exit.void))
      yield* Deferred.await(taken)
      yield* loopTurns
      expect(delivered).toBe(0)
      const block = new Uint8Array(100_000).fill(0x42)
      a.connection.write(block)
      expect(block).toEqual(new Uint8Array(100_000).fill(0x42))
      // Not yet flushed (writes leave on the next tick): the wrapper reports the socket's backlog, 100 000 bytes.
      expect(a.connection.writeBacklog!()).toBeGreaterThanOrEqual(100_000)
      const got = yield* collect(b.connection, first.length + block.length)
      b.connection.resume()
      expect(yield* Deferred.await(got)).toEqual(Bytes.concat([first, block]))
      expect(a.connection.bytesWritten()).toBeGreaterThan(block.length) // the wire: handshake + payload
    }))
})

describe("Encryption.connect (outbound policies)", () => {
  const torrent = build({ name: "p.bin", single: true, files: [{ path: ["p.bin"], length: 40_000 }], pieceLength: 16384 })

  it.scopedLive("prefer against a plain-only peer: falls back to plain, remembers it, then dials plain at once", () =>
    Effect.gen(function*() {
      const stub = yield* Effect.promise(() => seed(torrent))
      yield* Effect.addFinalizer(() => Effect.promise(() => stub.stop()))
      const address = `127.0.0.1:${stub.port}`
      const memory = Encryption.plainOnlyMemory()
      const dial = Tcp.dial({ host: "127.0.0.1", port: stub.port })
      const options = {
        address,
        infoHash: torrent.metainfo.infoHash,
        outbound: { policy: "prefer", plainOnly: memory } as const,
        dial
      }
      const first = yield* Encryption.connect(options)
      expect(first.cipher).toBe("none")
      expect(first.fallback?.reason).toBe("closed")
      expect(first.sentInHandshake).toBeUndefined()
      expect(memory.has(address)).toBe(true)
      expect(stub.connections()).toBe(2)
      const second = yield* Encryption.connect(options)
      expect(second.cipher).toBe("none")
      expect(second.fallback).toBeUndefined()
      expect(stub.connections()).toBe(3)
    }))

  it.scopedLive("require against a plain-only peer fails with a typed MseError; off dials plain", () =>
    Effect.gen(function*() {
      const stub = yield* Effect.promise(() => seed(torrent))
      yield* Effect.addFinalizer(() => Effect.promise(() => stub.stop()))
      const base = {
        address: `127.0.0.1:${stub.port}`,
        infoHash: torrent.metainfo.infoHash,
        dial: Tcp.dial({ host: "127.0.0.1", port: stub.port })
      }
      const failed = yield* Effect.either(Encryption.connect({ ...base, outbound: { policy: "require" } }))
      expect(Either.isLeft(failed) && failed.left._tag).toBe("MseError")
      expect(Either.isLeft(failed) && failed.left._tag === "MseError" && failed.left.reason).toBe("closed")
      const off = yield* Encryption.connect({ ...base, outbound: { policy: "off" } })
      expect(off.cipher).toBe("none")
      expect(stub.connections()).toBe(2)
    }))

  it.scopedLive("a shared secret with a leading zero byte is redialled with fresh keys (old libtorrent refuses it)", () =>
    Effect.gen(function*() {
      const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
      /** A random source whose first 20-byte draw (the private key) is `key`. */
      const keyFirst = (key: Uint8Array, seed: number): Mse.Random => {
        let first = true
        const rest = seeded(seed)
        return (n) => {
          if (first && n === 20) {
            first = false
            return key
          }
          return rest(n)
        }
      }
      const xb = seeded(31)(20)
      const candidates = seeded(32)
      let xa = candidates(20)
      while (Mse.sharedSecret(xa, Mse.publicKey(xb))[0] !== 0) xa = candidates(20)
      let accepted = 0
      yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        const conn = yield* listener.accept
        accepted++
        // The same responder key every time: only a fresh key of ours changes S.
        yield* Effect.forkScoped(Effect.ignore(Encryption.respond(conn, lookup, "prefer", { random: keyFirst(xb, 33) })))
      })))
      const r = yield* Encryption.connect({
        address: `127.0.0.1:${listener.address.port}`,
        infoHash,
        outbound: { policy: "require" },
        dial: Tcp.dial({ host: "127.0.0.1", port: listener.address.port }),
        random: keyFirst(xa, 34)
      })
      expect(r.cipher).toBe("rc4")
      expect(accepted).toBe(2)
    }))

  it.scopedLive("a peer answering garbage instead of Yb: a typed error, no crash", () =>
    Effect.gen(function*() {
      const serve = (answer: Uint8Array, hangUp: boolean) =>
        Effect.acquireRelease(
          Effect.async<Net.Server>((resume) => {
            const server = Net.createServer((s) => {
              s.on("error", () => {})
              s.once("data", () => (hangUp ? s.end(answer) : s.write(answer)))
            })
            server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
          }),
          (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
        )
      const attempt = (answer: Uint8Array, hangUp = false) =>
        Effect.gen(function*() {
          const server = yield* serve(answer, hangUp)
          const port = (server.address() as Net.AddressInfo).port
          const conn = yield* Tcp.dial({ host: "127.0.0.1", port })
          const r = yield* Effect.either(Encryption.initiate(conn, infoHash, "require"))
          conn.close()
          return Either.isLeft(r) ? r.left.reason : "succeeded"
        })
      // Zeros are no public key at all.
      expect(yield* attempt(new Uint8Array(96))).toBe("bad-public-key")
      // A plausible key, then no encrypted VC anywhere in the 512 bytes of padding allowed.
      const noise = seeded(7)(96 + 2000)
      noise[0] = 0x12
      expect(yield* attempt(noise)).toBe("sync-not-found")
      // A plain BitTorrent handshake back, then the peer hangs up: 68 bytes are no Yb, and nothing was answered.
      const plainAnswer = Bytes.concat([Uint8Array.of(19), text("BitTorrent protocol"), new Uint8Array(48)])
      expect(yield* attempt(plainAnswer, true)).toBe("closed")
    }), 40_000)
})

describe("Encryption deadline (TestClock)", () => {
  /** A connection that never delivers a byte and never closes. */
  const silent = (): Tcp.Connection => {
    const closed = Deferred.unsafeMake<void, Tcp.TcpError>(FiberId.none)
    let written = 0
    return {
      remoteAddress: "127.0.0.1:1",
      remote: { host: "127.0.0.1", port: 1 },
      onData: () => {},
      write: (b) => void (written += b.length),
      pause: () => {},
      resume: () => {},
      isPaused: () => false,
      close: () => void Deferred.unsafeDone(closed, Exit.void),
      closed: Deferred.await(closed),
      bytesRead: () => 0,
      bytesWritten: () => written,
      writeBacklog: () => 0
    }
  }

  it.effect("a silent peer: MseError timeout at the deadline, not before", () =>
    Effect.gen(function*() {
      const conn = silent()
      const fiber = yield* Effect.fork(Encryption.initiate(conn, infoHash, "prefer", { timeout: "10 seconds" }))
      yield* TestClock.adjust("9 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error.reason).toBe("timeout")
      expect(conn.bytesWritten()).toBeGreaterThanOrEqual(96) // Ya went out
    }))

  it.effect("the responder has the same deadline", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Encryption.respond(silent(), lookup, "require"))
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error.reason).toBe("timeout")
    }))
})
