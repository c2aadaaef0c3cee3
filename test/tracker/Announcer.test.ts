/**
 * The announce stream under TestClock: intervals, min interval, tier fallback, backoff, started/completed/stopped,
 * tracker id echo, per-announce deadline and a bounded `stopped` on close. The Tracker is an in-memory fake.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Announcer from "../../src/tracker/Announcer.ts"
import { type AnnounceRequest, type AnnounceResponse, Tracker } from "../../src/tracker/Tracker.ts"
import { TrackerError } from "../../src/tracker/TrackerError.ts"
import { infoHash, peerId } from "./fixtures.ts"

interface Call {
  readonly url: string
  readonly event: AnnounceRequest["event"]
  readonly left: number
  readonly trackerId: string | undefined
}

const fake = (answer: (url: string, req: AnnounceRequest) => Effect.Effect<AnnounceResponse, TrackerError>) => {
  const calls: Array<Call> = []
  const layer = Layer.succeed(
    Tracker,
    Tracker.of({
      announce: (url, req) =>
        Effect.suspend(() => {
          calls.push({ url, event: req.event, left: req.left, trackerId: req.trackerId })
          return answer(url, req)
        }),
      scrape: () => Effect.succeed(new Map())
    })
  )
  return { calls, layer }
}

const refused = (url: string) => Effect.fail(new TrackerError({ reason: "network", url, detail: "refused" }))
const ok = (interval: number, extra?: Partial<AnnounceResponse>) =>
  Effect.succeed<AnnounceResponse>({ interval, peers: [{ ip: "10.0.0.1", port: 6881 }], ...extra })

const options = (tiers: ReadonlyArray<ReadonlyArray<string>>, left: Effect.Effect<number> = Effect.succeed(100)) => ({
  tiers,
  infoHash: infoHash(),
  peerId: peerId(),
  port: 6881,
  stats: { uploaded: Effect.succeed(0), downloaded: Effect.succeed(0), left },
  minimumInterval: Duration.seconds(1),
  retry: Schedule.exponential("10 seconds", 2)
})

/** Lets forked fibers run up to their next sleep. */
const settle = TestClock.adjust(Duration.zero)

const events = (calls: ReadonlyArray<Call>) => calls.map((c) => c.event)

describe("Announcer.stream", () => {
  it.effect("while the torrent starves (no peers), re-announces 5 minutes (or min interval) after, not an interval", () =>
    Effect.gen(function*() {
      const t = fake(() => ok(1800, { minInterval: 60 }))
      let starving = false
      const fiber = yield* Announcer.stream({
        ...options([["http://a/announce"]]),
        starving: Effect.suspend(() =>
          starving ? Effect.void : Effect.sleep("1 second").pipe(Effect.repeat({ until: () => starving }))
        )
      }).pipe(Stream.take(3), Stream.runDrain, Effect.provide(t.layer), Effect.fork)
      yield* settle
      expect(t.calls.length).toBe(1)
      // Peers connected: the tracker's interval holds.
      yield* TestClock.adjust("600 seconds")
      expect(t.calls.length).toBe(1)
      // Every peer gone: announced again within a second.
      starving = true
      yield* TestClock.adjust("1 second")
      expect(events(t.calls)).toEqual(["started", "none"])
      // Still starving: not before 5 minutes (longer than the tracker's min interval of 60 s).
      yield* TestClock.adjust("299 seconds")
      expect(t.calls.length).toBe(2)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(events(t.calls)).toEqual(["started", "none", "none", "stopped"])
    }))

  it.effect("announces started, then re-announces on the tracker's interval, and says stopped at the end", () =>
    Effect.gen(function*() {
      const t = fake(() => ok(100))
      const fiber = yield* Announcer.stream(options([["http://a/announce"]])).pipe(
        Stream.take(3),
        Stream.runCollect,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      expect(events(t.calls)).toEqual(["started"])
      yield* TestClock.adjust("99 seconds")
      expect(t.calls.length).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(events(t.calls)).toEqual(["started", "none"])
      yield* TestClock.adjust("100 seconds")
      const batches = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(batches.map((b) => b.peers.length)).toEqual([1, 1, 1])
      expect(events(t.calls)).toEqual(["started", "none", "none", "stopped"])
    }))

  it.effect("honours min interval when it is longer than interval", () =>
    Effect.gen(function*() {
      const t = fake(() => ok(10, { minInterval: 100 }))
      const fiber = yield* Announcer.stream(options([["http://a/announce"]])).pipe(
        Stream.take(2),
        Stream.runDrain,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      yield* TestClock.adjust("99 seconds")
      expect(t.calls.length).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(events(t.calls)).toEqual(["started", "none", "stopped"])
    }))

  it.effect("falls through failing tiers; the next announce starts from the first tier again", () =>
    Effect.gen(function*() {
      const t = fake((url) => (url === "udp://c:1" ? ok(60) : refused(url)))
      const fiber = yield* Announcer.stream(options([["udp://a:1", "udp://b:1"], ["udp://c:1"]])).pipe(
        Stream.take(2),
        Stream.runCollect,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      expect(t.calls.map((c) => c.url).slice(2)).toEqual(["udp://c:1"])
      expect(new Set(t.calls.slice(0, 2).map((c) => c.url))).toEqual(new Set(["udp://a:1", "udp://b:1"]))
      yield* TestClock.adjust("60 seconds")
      const batches = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(batches.map((b) => [b.url, b.tier])).toEqual([["udp://c:1", 1], ["udp://c:1", 1]])
      expect(t.calls.length).toBe(7) // a, b, c, then a, b, c again, then stopped to c
      expect(t.calls[6]).toMatchObject({ url: "udp://c:1", event: "stopped" })
    }))

  it.effect("the tracker that answered moves to the front of its tier", () =>
    Effect.gen(function*() {
      const t = fake((url) => (url === "http://b/announce" ? ok(60) : refused(url)))
      const fiber = yield* Announcer.stream(options([["http://a/announce", "http://b/announce"]])).pipe(
        Stream.take(2),
        Stream.runDrain,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      const firstRound = t.calls.length
      yield* TestClock.adjust("60 seconds")
      yield* Fiber.join(fiber)
      // Second round: b first, and only b.
      expect(t.calls.slice(firstRound).map((c) => [c.url, c.event])).toEqual([
        ["http://b/announce", "none"],
        ["http://b/announce", "stopped"]
      ])
    }))

  it.effect("backs off exponentially when every tracker fails, then recovers", () =>
    Effect.gen(function*() {
      const up = yield* Ref.make(false)
      const t = fake((url) => Effect.flatMap(Ref.get(up), (isUp) => (isUp ? ok(60) : refused(url))))
      const fiber = yield* Announcer.stream(options([["http://a/announce"]])).pipe(
        Stream.take(1),
        Stream.runCollect,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      expect(t.calls.length).toBe(1)
      yield* TestClock.adjust("9 seconds")
      expect(t.calls.length).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(t.calls.length).toBe(2)
      yield* TestClock.adjust("19 seconds")
      expect(t.calls.length).toBe(2)
      yield* Ref.set(up, true)
      yield* TestClock.adjust("1 second")
      const batches = yield* Fiber.join(fiber)
      expect(Chunk.size(batches)).toBe(1)
      expect(events(t.calls)).toEqual(["started", "started", "started", "stopped"])
    }))

  it.effect("sends completed once when left reaches 0, and echoes the tracker id", () =>
    Effect.gen(function*() {
      const left = yield* Ref.make(100)
      const t = fake(() => ok(60, { trackerId: "tid-1" }))
      const fiber = yield* Announcer.stream(options([["http://a/announce"]], Ref.get(left))).pipe(
        Stream.take(3),
        Stream.runDrain,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      yield* Ref.set(left, 0)
      yield* TestClock.adjust("60 seconds")
      yield* TestClock.adjust("60 seconds")
      yield* Fiber.join(fiber)
      expect(t.calls.map((c) => [c.event, c.left, c.trackerId])).toEqual([
        ["started", 100, undefined],
        ["completed", 0, "tid-1"],
        ["none", 0, "tid-1"],
        ["stopped", 0, "tid-1"]
      ])
    }))

  it.effect("a download that finishes between announces reports completed before stopped on close", () =>
    Effect.gen(function*() {
      const left = yield* Ref.make(100)
      const t = fake(() => ok(1800))
      const fiber = yield* Announcer.stream(options([["http://a/announce"]], Ref.get(left))).pipe(
        Stream.runDrain,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      yield* Ref.set(left, 0)
      yield* Fiber.interrupt(fiber)
      expect(t.calls.map((c) => [c.event, c.left])).toEqual([
        ["started", 100],
        ["completed", 0],
        ["stopped", 0]
      ])
    }))

  it.effect("a download that finishes reports completed at once when told, not an interval later", () =>
    Effect.gen(function*() {
      const left = yield* Ref.make(100)
      const done = yield* Deferred.make<void>()
      const t = fake(() => ok(1800))
      const fiber = yield* Announcer.stream({
        ...options([["http://a/announce"]], Ref.get(left)),
        completed: Deferred.await(done)
      }).pipe(Stream.runDrain, Effect.provide(t.layer), Effect.fork)
      yield* settle
      yield* Ref.set(left, 0)
      yield* Deferred.succeed(done, undefined)
      yield* settle
      expect(t.calls.map((c) => [c.event, c.left])).toEqual([["started", 100], ["completed", 0]])
      // Then the tracker's interval again.
      yield* TestClock.adjust("1799 seconds")
      expect(t.calls.length).toBe(2)
      yield* TestClock.adjust("1 second")
      expect(t.calls.map((c) => c.event)).toEqual(["started", "completed", "none"])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a tracker that never answers is given up after the announce timeout", () =>
    Effect.gen(function*() {
      const t = fake((url) => (url === "http://slow/announce" ? Effect.never : ok(60)))
      const fiber = yield* Announcer.stream({
        ...options([["http://slow/announce"], ["http://fast/announce"]]),
        announceTimeout: Duration.seconds(20)
      }).pipe(Stream.take(1), Stream.runCollect, Effect.provide(t.layer), Effect.fork)
      yield* settle
      expect(t.calls.length).toBe(1)
      yield* TestClock.adjust("20 seconds")
      const [batch] = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(batch?.url).toBe("http://fast/announce")
    }))

  it.effect("stopped on close is bounded by stopTimeout when the tracker hangs", () =>
    Effect.gen(function*() {
      const t = fake((_, req) => (req.event === "stopped" ? Effect.never : ok(60)))
      const fiber = yield* Announcer.stream({ ...options([["http://a/announce"]]), stopTimeout: "5 seconds" }).pipe(
        Stream.take(1),
        Stream.runDrain,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      expect(events(t.calls)).toEqual(["started", "stopped"])
      expect(yield* Fiber.poll(fiber)).toEqual(expect.objectContaining({ _tag: "None" }))
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
    }))

  it.effect("no trackers: the stream simply ends", () =>
    Effect.gen(function*() {
      const t = fake(() => ok(60))
      const out = yield* Announcer.stream(options([[], [" "]])).pipe(Stream.runCollect, Effect.provide(t.layer))
      expect(Chunk.size(out)).toBe(0)
      expect(t.calls).toEqual([])
    }))

  it.effect("the default retry policy: 15·2^n s jittered (±20 %), never more than 30 minutes", () =>
    Effect.gen(function*() {
      const delays = yield* Schedule.run(Schedule.delays(Announcer.retryPolicy), 0, Array.from({ length: 12 }, (_, i) => i))
      const ms = Chunk.toReadonlyArray(delays).map(Duration.toMillis)
      ms.forEach((d, n) => {
        const nominal = 15_000 * 2 ** n
        expect(d).toBeLessThanOrEqual(30 * 60_000)
        if (nominal * 1.2 < 30 * 60_000) {
          expect(d).toBeGreaterThanOrEqual(nominal * 0.8)
          expect(d).toBeLessThanOrEqual(nominal * 1.2)
        }
      })
    }))
})

describe("Announcer board", () => {
  it.effect("shows each tracker's state: idle, error with its message, working with counts and the next announce", () =>
    Effect.gen(function*() {
      const tiers = [["http://down/announce"], ["http://up/announce"], ["http://never/announce"]]
      const t = fake((url) => (url.includes("down") ? refused(url) : ok(100, { complete: 7, incomplete: 3, warning: "slow" })))
      const board = yield* Announcer.makeBoard(tiers)
      expect(board.trackers().map((e) => [e.url, e.tier, e.status])).toEqual([
        ["http://down/announce", 0, "idle"],
        ["http://up/announce", 1, "idle"],
        ["http://never/announce", 2, "idle"]
      ])
      const fiber = yield* Announcer.stream({ ...options(tiers), board }).pipe(
        Stream.runDrain,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      const [down, up, never] = board.trackers()
      expect(down).toMatchObject({ status: "error", lastAnnounceAt: 0, nextAnnounceAt: null })
      expect(down!.message).toContain("refused")
      expect(up).toEqual({
        url: "http://up/announce",
        tier: 1,
        status: "working",
        lastAnnounceAt: 0,
        nextAnnounceAt: 100_000,
        seeders: 7,
        leechers: 3,
        peers: 1,
        message: "slow"
      })
      expect(never).toMatchObject({ status: "idle", lastAnnounceAt: null, seeders: null, message: "" })
      yield* Fiber.interrupt(fiber)
      expect(board.trackers()[1]).toMatchObject({ status: "idle", nextAnnounceAt: null })
    }))

  it.effect("reannounce ends the interval's wait at once, once; a backoff too", () =>
    Effect.gen(function*() {
      let fail = false
      const t = fake((url) => (fail ? refused(url) : ok(1800)))
      const board = yield* Announcer.makeBoard([["http://a/announce"]])
      const fiber = yield* Announcer.stream({ ...options([["http://a/announce"]]), board }).pipe(
        Stream.runDrain,
        Effect.provide(t.layer),
        Effect.fork
      )
      yield* settle
      expect(events(t.calls)).toEqual(["started"])
      yield* TestClock.adjust("10 seconds")
      board.reannounce()
      yield* settle
      expect(events(t.calls)).toEqual(["started", "none"])
      expect(board.trackers()[0]).toMatchObject({ lastAnnounceAt: 10_000, nextAnnounceAt: 1_810_000 })
      // The next wait is a whole interval again.
      yield* TestClock.adjust("1799 seconds")
      expect(t.calls.length).toBe(2)
      // Failing: the backoff (10 s, 20 s …) is cut short by a reannounce too.
      fail = true
      yield* TestClock.adjust("1 second")
      expect(t.calls.length).toBe(3)
      expect(board.trackers()[0]!.status).toBe("error")
      fail = false
      board.reannounce()
      yield* settle
      expect(t.calls.length).toBe(4)
      expect(board.trackers()[0]!.status).toBe("working")
      yield* Fiber.interrupt(fiber)
    }))
})
