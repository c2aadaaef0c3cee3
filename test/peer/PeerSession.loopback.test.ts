/**
 * Real TCP on 127.0.0.1 (port 0): our session downloads from an in-process seeding stub byte-exact, and hostile
 * peers end it with the right typed reason. Deadlines are short and real here, since sockets are real.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Tcp from "../../src/net/Tcp.ts"
import * as PeerSession from "../../src/peer/PeerSession.ts"
import type { PeerError } from "../../src/peer/PeerError.ts"
import { infoHash, TestTorrent } from "./support.ts"
import { type Mode, seederStub } from "./seederStub.ts"

const pieceLength = 256 * 1024
const payload = Uint8Array.from({ length: 3 * 1024 * 1024 + 12_345 }, (_, i) => (i * 2654435761) >>> 24)

const fastDeadlines = { handshakeTimeout: 200, introductionTimeout: 200, tickInterval: 20 }

const reasonOf = (exit: Exit.Exit<never, { readonly reason: string }>): string =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.reason : `unexpected exit ${String(exit)}`

const detailOf = (exit: Exit.Exit<never, PeerError>): string =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.detail : ""

/** Runs one outbound session against a stub in `mode` until it ends. */
const against = (mode: Mode) =>
  Effect.gen(function*() {
    const { port } = yield* seederStub({ payload, pieceLength, infoHash, mode })
    const t = new TestTorrent({ payload, pieceLength })
    const exit = yield* PeerSession.connect({ host: "127.0.0.1", port, handle: t, config: fastDeadlines }).pipe(
      Effect.exit
    )
    return { exit, t }
  })

describe("PeerSession over loopback TCP", () => {
  for (const fast of [true, false]) {
    it.scopedLive(`downloads every piece byte-exact from a seeding stub (fast extension ${fast ? "on" : "off"})`, () =>
      Effect.gen(function*() {
        const { port } = yield* seederStub({ payload, pieceLength, infoHash, mode: "seed", fast })
        const t = new TestTorrent({ payload, pieceLength })
        const complete = yield* Deferred.make<void>()
        t.onComplete = () => Deferred.unsafeDone(complete, Exit.void)
        const fiber = yield* Effect.fork(PeerSession.connect({ host: "127.0.0.1", port, handle: t }))
        yield* Deferred.await(complete).pipe(
          Effect.raceFirst(Fiber.join(fiber).pipe(Effect.flatMap((e) => Effect.dieMessage(`ended early: ${e}`))))
        )
        expect(t.hashFailures).toBe(0)
        expect(Bytes.equals(t.data, payload)).toBe(true)
        expect(t.maxAsked).toBeGreaterThan(4) // the pipeline opened up
        yield* Fiber.interrupt(fiber)
        expect(t.closed.map((c) => c.error.reason)).toEqual(["local"])
      }))
  }

  it.scopedLive("a peer answering for another info-hash is closed with wrong-info-hash", () =>
    Effect.gen(function*() {
      const { exit, t } = yield* against("wrong-info-hash")
      expect(reasonOf(exit)).toBe("wrong-info-hash")
      expect(t.events).toEqual(["closed:wrong-info-hash"])
    }))

  it.scopedLive("a peer that accepts and never speaks hits the handshake deadline", () =>
    Effect.gen(function*() {
      const { exit } = yield* against("silent")
      expect(reasonOf(exit)).toBe("handshake-timeout")
    }))

  it.scopedLive("a frame length of 2^32 - 1 closes with a protocol error before any payload is buffered", () =>
    Effect.gen(function*() {
      const before = process.memoryUsage().arrayBuffers
      const { exit } = yield* against("huge-frame")
      expect(reasonOf(exit)).toBe("protocol")
      expect(detailOf(exit)).toContain("frame-too-large")
      // Nothing near 4 GiB was ever allocated.
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(256 * 1024 * 1024)
    }))

  it.scopedLive("garbage instead of a handshake closes with a protocol error", () =>
    Effect.gen(function*() {
      const { exit } = yield* against("garbage")
      expect(reasonOf(exit)).toBe("protocol")
      expect(detailOf(exit)).toContain("protocol-mismatch")
    }))

  it.scopedLive("connecting to ourselves: the inbound side sees our own peer id and closes with self-connection", () =>
    Effect.gen(function*() {
      const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
      const seeder = new TestTorrent({ payload, pieceLength, have: true })
      const leecher = new TestTorrent({ payload, pieceLength }) // same peer id as the seeder
      const inbound = yield* listener.accept.pipe(
        Effect.flatMap((connection) => PeerSession.accept({ connection, handle: seeder, config: fastDeadlines })),
        Effect.scoped,
        Effect.exit,
        Effect.fork
      )
      const outbound = yield* PeerSession.connect({
        host: "127.0.0.1",
        port: listener.address.port,
        handle: leecher,
        config: fastDeadlines
      }).pipe(Effect.exit)
      expect(reasonOf(yield* Fiber.join(inbound))).toBe("self-connection")
      // The outbound side only sees the connection end.
      expect(["closed", "handshake-timeout"]).toContain(reasonOf(outbound))
    }))

  it.scopedLive("connect-failed when nothing listens", () =>
    Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.map(Tcp.listen({ host: "127.0.0.1", port: 0 }), (l) => l.address.port))
      const t = new TestTorrent({ payload, pieceLength })
      const exit = yield* PeerSession.connect({ host: "127.0.0.1", port, handle: t }).pipe(Effect.exit)
      expect(reasonOf(exit)).toBe("connect-failed")
      expect(t.closed.map((c) => c.error.reason)).toEqual(["connect-failed"])
    }))
})
