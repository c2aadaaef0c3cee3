/**
 * The session over an in-memory connection, with TestClock: every deadline fires without real waiting, and a whole
 * download runs deterministically with the test playing the remote peer.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Bytes from "../../src/core/Bytes.ts"
import * as PeerSession from "../../src/peer/PeerSession.ts"
import type * as PeerState from "../../src/peer/PeerState.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import { infoHash, memoryConnection, type MemoryConnection, reservedAll, TestTorrent, theirId } from "./support.ts"

const payload = Uint8Array.from({ length: 5 * 32768 + 1000 }, (_, i) => (i * 7 + (i >> 9)) & 0xff)
const torrent = () => new TestTorrent({ payload, pieceLength: 32768 })

const theirHandshake = Handshake.encode({ reserved: reservedAll, infoHash, peerId: theirId })

/** Lets forked fibers run until `cond` holds (no clock involved). */
const until = (cond: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !cond(); i++) yield* Effect.yieldNow()
    expect(cond()).toBe(true)
  })

/**
 * Moves the TestClock forward one second at a time, letting the session's tick fiber run after each step (a single
 * big adjust would let it re-arm its sleep only at the end).
 */
const advance = (seconds: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds; i++) {
      yield* TestClock.adjust("1 second")
      for (let j = 0; j < 5; j++) yield* Effect.yieldNow()
    }
  })

/** Starts an outbound session over a fresh in-memory connection; returns after our handshake went out. */
const start = (t: TestTorrent, config: Partial<PeerState.PeerConfig> = {}) =>
  Effect.gen(function*() {
    const conn = yield* memoryConnection()
    const fiber = yield* Effect.fork(
      PeerSession.connect({ host: "10.0.0.1", port: 6881, handle: t, config, dial: () => Effect.succeed(conn) })
    )
    yield* until(() => conn.written.length > 0)
    return { conn, fiber }
  })

/** What the session sent after its handshake, decoded. */
const sentMessages = (conn: MemoryConnection): Array<Message.Message> => {
  const all = Bytes.concat(conn.written)
  expect(Bytes.equals(all.subarray(28, 48), infoHash)).toBe(true)
  const decoded = FrameDecoder.decodeAll(all.subarray(Handshake.length))
  if (decoded._tag === "Left") throw decoded.left
  return decoded.right
}

const failureReason = (exit: Exit.Exit<never, { readonly reason: string }>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.reason : `not a failure: ${String(exit)}`

const feed = (conn: MemoryConnection, ...messages: Array<Message.Message>) =>
  Effect.sync(() => conn.feed(Message.encodeBatch(messages)))

describe("PeerSession deadlines (TestClock)", () => {
  it.effect("connect deadline: a dial that never completes fails with connect-timeout", () =>
    Effect.gen(function*() {
      const t = torrent()
      const fiber = yield* Effect.fork(
        PeerSession.connect({ host: "10.0.0.9", port: 1, handle: t, dial: () => Effect.never })
      )
      yield* TestClock.adjust("4999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(fiber)
      expect(failureReason(exit)).toBe("connect-timeout")
      expect(t.closed.map((c) => c.error.reason)).toEqual(["connect-timeout"])
    }))

  it.effect("handshake deadline: a peer that never answers is dropped after 10 s and the socket closed", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t)
      expect(conn.written[0]!.length).toBe(Handshake.length)
      yield* advance(9)
      expect(fiber.unsafePoll()).toBeNull()
      yield* advance(1)
      expect(failureReason(yield* Fiber.await(fiber))).toBe("handshake-timeout")
      expect(conn.isClosed()).toBe(true)
    }))

  it.effect("introduction deadline: a handshake followed by silence", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t)
      yield* Effect.sync(() => conn.feed(theirHandshake))
      expect(t.events).toEqual(["connected"])
      yield* advance(10)
      expect(failureReason(yield* Fiber.await(fiber))).toBe("introduction-timeout")
    }))

  it.effect("keep-alive after 90 s of our silence, idle drop after 180 s of the peer's", () =>
    Effect.gen(function*() {
      const t = new TestTorrent({ payload, pieceLength: 32768, have: true })
      const { conn, fiber } = yield* start(t)
      yield* Effect.sync(() => conn.feed(theirHandshake))
      yield* feed(conn, Message.HaveNone())
      const before = sentMessages(conn).length
      yield* advance(89)
      expect(sentMessages(conn).length).toBe(before)
      yield* advance(1)
      expect(sentMessages(conn).slice(before)).toEqual([Message.KeepAlive()])
      yield* advance(89)
      expect(fiber.unsafePoll()).toBeNull()
      // Bytes read count at the next tick, so silence is measured from the first tick after them.
      yield* advance(2)
      expect(failureReason(yield* Fiber.await(fiber))).toBe("idle")
    }))

  it.effect("an unanswered request marks the peer snubbed after 20 s; its requests are reported", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t)
      yield* Effect.sync(() => conn.feed(theirHandshake))
      yield* feed(conn, Message.HaveAll(), Message.Unchoke())
      const requests = sentMessages(conn).filter((m) => m._tag === "Request")
      expect(requests.length).toBe(4) // min pipeline
      yield* advance(19)
      expect(t.requestTimeouts).toEqual([])
      yield* advance(1)
      expect(t.requestTimeouts.length).toBe(1)
      expect(t.requestTimeouts[0]!.length).toBe(4)
      yield* Fiber.interrupt(fiber)
      // Interrupted: the torrent still hears of the end once, with the requests in flight.
      expect(t.closed.map((c) => [c.error.reason, c.outstanding.length])).toEqual([["local", 4]])
    }))

  it.effect("while reading is paused, silence is not held against the peer", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t, { idleTimeout: 30_000, requestTimeout: 5_000 })
      yield* Effect.sync(() => conn.feed(theirHandshake))
      yield* feed(conn, Message.HaveAll(), Message.Unchoke())
      yield* Effect.sync(() => t.controls.get("10.0.0.1:6881")!.pauseReading())
      expect(conn.isPaused()).toBe(true)
      yield* advance(100)
      expect(fiber.unsafePoll()).toBeNull()
      expect(t.requestTimeouts).toEqual([])
      yield* Effect.sync(() => t.controls.get("10.0.0.1:6881")!.resumeReading())
      // Reading again: the requests in flight go unanswered, three deadlines in a row drop the peer.
      yield* advance(15)
      expect(failureReason(yield* Fiber.await(fiber))).toBe("snubbed")
    }))

  it.effect("the remote closing ends the session with reason closed", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t)
      yield* Effect.sync(() => conn.end())
      expect(failureReason(yield* Fiber.await(fiber))).toBe("closed")
    }))
})

describe("PeerSession over an in-memory peer", () => {
  it.effect("downloads every piece byte-exact, answering requests as the peer", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t)
      // Handshake, introduction and unchoke arrive in one chunk together.
      yield* Effect.sync(() =>
        conn.feed(Bytes.concat([theirHandshake, Message.encodeBatch([Message.HaveAll(), Message.Unchoke()])]))
      )
      let answered = 0
      for (let round = 0; round < 100 && !t.complete; round++) {
        const requests = sentMessages(conn).filter((m) => m._tag === "Request").slice(answered)
        answered += requests.length
        // Answer in one chunk, cut in odd places across the blocks.
        const bytes = Message.encodeBatch(requests.map((r) =>
          Message.Piece({
            index: r.index,
            begin: r.begin,
            block: payload.subarray(r.index * 32768 + r.begin, r.index * 32768 + r.begin + r.length)
          })
        ))
        for (let o = 0; o < bytes.length; o += 7000) conn.feed(bytes.subarray(o, o + 7000))
      }
      expect(t.complete).toBe(true)
      expect(t.hashFailures).toBe(0)
      const sent = sentMessages(conn)
      expect(sent.filter((m) => m._tag === "Have").length).toBe(t.pieceCount)
      expect(sent.filter((m) => m._tag === "NotInterested").length).toBe(1)
      // The pipeline grew past its start (slow start), and never beyond the limit.
      expect(t.maxAsked).toBeGreaterThan(4)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("the messages one chunk provokes leave in one write", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t)
      yield* Effect.sync(() => conn.feed(theirHandshake))
      const writes = conn.written.length
      yield* feed(conn, Message.HaveAll(), Message.Unchoke())
      expect(conn.written.length).toBe(writes + 1)
      const decoded = FrameDecoder.decodeAll(conn.written[writes]!)
      expect(decoded._tag === "Right" && decoded.right.map((m) => m._tag)).toEqual(
        ["Interested", "Request", "Request", "Request", "Request"]
      )
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a throwing handle ends the session with a defect, not an exception in the socket handler", () =>
    Effect.gen(function*() {
      const t = torrent()
      Object.assign(t, {
        onPeerHaveAll: () => {
          throw new Error("boom")
        }
      })
      const { conn, fiber } = yield* start(t)
      yield* Effect.sync(() => conn.feed(theirHandshake))
      yield* feed(conn, Message.HaveAll())
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Die").toBe(true)
      expect(conn.isClosed()).toBe(true)
      expect(t.closed.length).toBe(1)
    }))

  it.effect("an accepted connection: handshake bytes read by a listener are passed as the prefix", () =>
    Effect.gen(function*() {
      const t = new TestTorrent({ payload, pieceLength: 32768, have: true })
      const conn = yield* memoryConnection()
      const fiber = yield* Effect.fork(PeerSession.accept({ connection: conn, handle: t, prefix: theirHandshake }))
      yield* until(() => conn.written.length > 0)
      const all = Bytes.concat(conn.written)
      expect(all.subarray(0, 68)).toEqual(Handshake.encode({ reserved: reservedAll, infoHash, peerId: t.peerId }))
      expect(sentMessages(conn).map((m) => m._tag)).toEqual(["HaveAll", "Extended"])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a wrong info-hash is refused after 48 bytes, before the peer id", () =>
    Effect.gen(function*() {
      const t = torrent()
      const { conn, fiber } = yield* start(t)
      const other = new Uint8Array(20) as typeof infoHash
      const wrong = Handshake.encode({ reserved: reservedAll, infoHash: other, peerId: theirId })
      yield* Effect.sync(() => conn.feed(wrong.subarray(0, 48)))
      expect(failureReason(yield* Fiber.await(fiber))).toBe("wrong-info-hash")
    }))
})
