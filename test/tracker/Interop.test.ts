/**
 * Interop with real trackers on loopback: Debian's opentracker (child process) and the npm bittorrent-tracker
 * server (in process), over HTTP and UDP (IPv4 and IPv6).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Fiber from "effect/Fiber"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Announcer from "../../src/tracker/Announcer.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import * as BittorrentTracker from "../support/bittorrentTracker.ts"
import * as Opentracker from "../support/opentracker.ts"
import { infoHash, liveLayer, peerId, request } from "./fixtures.ts"

const hasPeer = (peers: ReadonlyArray<{ ip: string; port: number }>, ip: string, port: number) =>
  peers.some((p) => p.ip === ip && p.port === port)

/** Two announcers for one info-hash: the second sees the first, and after a re-announce the first sees the second. */
const twoAnnouncers = (url: string, ip: string) =>
  Effect.gen(function*() {
    const tracker = yield* Tracker
    const ih = infoHash()
    return yield* twoAnnouncersFor(url, ip, ih, tracker)
  })

const twoAnnouncersFor = (url: string, ip: string, ih: Uint8Array, tracker: Tracker["Type"]) =>
  Effect.gen(function*() {
    const a = request({ infoHash: ih, port: 40001, left: 0 })
    const b = request({ infoHash: ih, port: 40002, left: 500 })
    yield* tracker.announce(url, a)
    const rb = yield* tracker.announce(url, b)
    expect(hasPeer(rb.peers, ip, 40001)).toBe(true)
    const ra = yield* tracker.announce(url, { ...a, event: "none" })
    expect(hasPeer(ra.peers, ip, 40002)).toBe(true)
    expect(ra.interval).toBeGreaterThan(0)
    const scrape = yield* tracker.scrape(url, [ih])
    expect(scrape.get(Bytes.toHex(ih))).toEqual({ seeders: 1, leechers: 1, completed: expect.any(Number) })
    yield* tracker.announce(url, { ...b, event: "stopped" })
    return { ra, rb }
  })

describe.runIf(Opentracker.shouldRun("opentracker interop"))("opentracker (Debian build)", () => {
  const listed = [infoHash(), infoHash()]
  let ot: Opentracker.Opentracker
  beforeAll(async () => {
    ot = await Opentracker.start(listed.map(Bytes.toHex))
  })
  afterAll(() => ot?.stop())

  it.live("HTTP: two announcers see each other; scrape counts them", () =>
    Effect.gen(function*() {
      const { rb } = yield* twoAnnouncersFor(ot.httpUrl, "127.0.0.1", listed[0]!, yield* Tracker)
      expect(rb.minInterval).toBeGreaterThan(0)
      expect(rb.complete).toBe(1)
    }).pipe(Effect.provide(liveLayer)))

  it.live("UDP: two announcers see each other; scrape counts them", () =>
    Effect.gen(function*() {
      const { rb } = yield* twoAnnouncersFor(ot.udpUrl, "127.0.0.1", listed[1]!, yield* Tracker)
      expect(rb.complete).toBe(1)
    }).pipe(Effect.provide(liveLayer)))

  it.live("an info-hash off the whitelist: the tracker's failure reason reaches the caller (HTTP)", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const err = yield* Effect.flip(tracker.announce(ot.httpUrl, request({ infoHash: infoHash() })))
      expect(err.reason).toBe("failure")
      expect(err.detail).toMatch(/not authorized/)
    }).pipe(Effect.provide(liveLayer)))

  it.live("an info-hash off the whitelist over UDP: opentracker's empty reply is a typed bad-response", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const err = yield* Effect.flip(tracker.announce(ot.udpUrl, request({ infoHash: infoHash() })))
      expect(err.reason).toBe("bad-response")
      expect(err.detail).toMatch(/does not serve/)
    }).pipe(Effect.provide(liveLayer)))
})

describe("bittorrent-tracker (npm) server", () => {
  let bt: BittorrentTracker.BittorrentTracker
  beforeAll(async () => {
    bt = await BittorrentTracker.start()
  })
  afterAll(() => bt?.close())

  it.live("HTTP: two announcers see each other; scrape counts them", () =>
    twoAnnouncers(bt.httpUrl, "127.0.0.1").pipe(Effect.provide(liveLayer)))

  it.live("UDP over IPv4: two announcers see each other; scrape counts them", () =>
    twoAnnouncers(bt.udp4Url, "127.0.0.1").pipe(Effect.provide(liveLayer)))

  // bittorrent-tracker 11 puts only IPv4 peers into UDP replies (its IPv6 peers go to an HTTP-only `peers6`), so
  // over udp6 we check the counts; 18-byte IPv6 peers are covered by the fake UDP tracker in UdpTracker.test.ts.
  it.live("UDP over IPv6 (::1): announce and scrape count both announcers", () =>
    Effect.gen(function*() {
      if (bt.udp6Url === undefined) {
        console.warn("!!! no IPv6 loopback on this machine: skipping the udp6 announce !!!")
        return
      }
      const tracker = yield* Tracker
      const ih = infoHash()
      yield* tracker.announce(bt.udp6Url, request({ infoHash: ih, port: 40001, left: 0 }))
      const r = yield* tracker.announce(bt.udp6Url, request({ infoHash: ih, port: 40002, left: 10 }))
      expect({ complete: r.complete, incomplete: r.incomplete }).toEqual({ complete: 1, incomplete: 1 })
      const scrape = yield* tracker.scrape(bt.udp6Url, [ih])
      expect(scrape.get(Bytes.toHex(ih))).toMatchObject({ seeders: 1, leechers: 1 })
    }).pipe(Effect.provide(liveLayer)))
})

describe("Announcer.stream against bittorrent-tracker", () => {
  let bt: BittorrentTracker.BittorrentTracker
  beforeAll(async () => {
    bt = await BittorrentTracker.start()
  })
  afterAll(() => bt?.close())

  it.live("two announce streams see each other; closing a stream sends stopped", () =>
    Effect.gen(function*() {
      const tracker = yield* Tracker
      const ih = infoHash()
      const options = (port: number, tiers: ReadonlyArray<ReadonlyArray<string>>) => ({
        tiers,
        infoHash: ih,
        peerId: peerId(),
        port,
        stats: { uploaded: Effect.succeed(0), downloaded: Effect.succeed(0), left: Effect.succeed(port === 41001 ? 0 : 9) }
      })
      // First tier is dead (refused), so the streams fall through to the live tracker in tier 2.
      const dead = "http://127.0.0.1:1/announce"
      const firstBatch = yield* Deferred.make<Announcer.PeerBatch>()
      const first = yield* Announcer.stream(options(41001, [[dead], [bt.httpUrl]])).pipe(
        Stream.runForEach((b) => Deferred.succeed(firstBatch, b)),
        Effect.fork
      )
      expect((yield* Deferred.await(firstBatch)).url).toBe(bt.httpUrl)
      const second = yield* Announcer.stream(options(41002, [[dead], [bt.udp4Url]])).pipe(Stream.take(1), Stream.runCollect)
      expect(hasPeer(Chunk.unsafeHead(second).peers, "127.0.0.1", 41001)).toBe(true)
      yield* Fiber.interrupt(first)
      // Both streams have ended, so both sent stopped: the swarm is empty again.
      const s = yield* tracker.scrape(bt.httpUrl, [ih])
      expect(s.get(Bytes.toHex(ih))).toMatchObject({ seeders: 0, leechers: 0 })
    }).pipe(Effect.provide(liveLayer)))
})
