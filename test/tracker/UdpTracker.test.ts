/**
 * The BEP 15 client over an in-memory socket, under TestClock: retransmission 15·2^n s, connection-id reuse for
 * its minute, transaction-id checks, the error action, garbage, IPv6 peers.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Dgram from "node:dgram"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Udp from "../../src/net/Udp.ts"
import * as UdpCodec from "../../src/tracker/UdpCodec.ts"
import * as UdpTracker from "../../src/tracker/UdpTracker.ts"
import * as UdpTransaction from "../../src/tracker/UdpTransaction.ts"
import { infoHash, request } from "./fixtures.ts"

type Reply = (bytes: Uint8Array, from?: { readonly address: string; readonly port: number }) => void

/** An in-memory "network": every datagram goes to `tracker`, which may answer through `reply`. */
const fakeNet = (tracker: (req: UdpCodec.Request, reply: Reply, family: Udp.Family) => void) => {
  const sent: Array<UdpCodec.Request> = []
  let opened = 0
  const openSocket = (family: Udp.Family) =>
    Effect.sync((): Udp.Socket => {
      opened++
      let handler: ((d: Udp.Datagram) => void) | undefined
      return {
        family,
        local: { address: family === "udp4" ? "127.0.0.1" : "::1", port: 40000 },
        onMessage: (h) => {
          handler = h
        },
        send: (data, port, address) =>
          Effect.sync(() => {
            const req = Either.getOrThrow(UdpCodec.decodeRequest(data))
            sent.push(req)
            tracker(req, (bytes, from) => queueMicrotask(() => handler?.({ data: bytes, ...(from ?? { address, port }) })), family)
          })
      }
    })
  return { sent, openSocket, opened: () => opened }
}

const CONN = 0x1122334455667788n

/** A well-behaved tracker: answers connect, announce (one peer per family) and scrape. */
const goodTracker = (req: UdpCodec.Request, reply: Reply, family: Udp.Family) => {
  const fam = family === "udp4" ? 4 : 6
  switch (req._tag) {
    case "Connect":
      return reply(UdpCodec.encodeResponse({ _tag: "Connect", transactionId: req.transactionId, connectionId: CONN }))
    case "Announce":
      return reply(
        UdpCodec.encodeResponse({
          _tag: "Announce",
          transactionId: req.transactionId,
          interval: 900,
          leechers: 4,
          seeders: 2,
          peers: [fam === 4 ? { ip: "10.0.0.9", port: 6881 } : { ip: "2001:db8::9", port: 6881 }]
        }, fam)
      )
    case "Scrape":
      return reply(
        UdpCodec.encodeResponse({
          _tag: "Scrape",
          transactionId: req.transactionId,
          entries: req.infoHashes.map((_, i) => ({ seeders: i, completed: 10 + i, leechers: 20 + i }))
        })
      )
  }
}

const client = (net: ReturnType<typeof fakeNet>, retransmit?: Schedule.Schedule<unknown>) =>
  UdpTracker.make({ openSocket: net.openSocket, ...(retransmit !== undefined ? { retransmit } : {}) })

const URL4 = "udp://127.0.0.1:6969/announce"
const settle = TestClock.adjust(Duration.zero)

describe("UdpTransaction.retransmitSchedule", () => {
  it.effect("waits 15·2^n seconds for n = 0…8, then stops", () =>
    Effect.gen(function*() {
      const out = yield* Schedule.run(UdpTransaction.bep15Retransmit, 0, Array.from({ length: 20 }, (_, i) => i))
      expect(Chunk.toReadonlyArray(out).map(Duration.toSeconds)).toEqual([15, 30, 60, 120, 240, 480, 960, 1920, 3840])
    }))
})

describe("UdpTracker", () => {
  it.scoped("connects, announces and scrapes; the connection id is reused within its minute", () =>
    Effect.gen(function*() {
      const net = fakeNet(goodTracker)
      const t = yield* client(net)
      const ih = infoHash()
      const r = yield* t.announce(URL4, request({ infoHash: ih, left: 77, event: "completed" }))
      expect(r).toEqual({ interval: 900, peers: [{ ip: "10.0.0.9", port: 6881 }], complete: 2, incomplete: 4 })
      const s = yield* t.scrape(URL4, [ih])
      expect(s.get(Bytes.toHex(ih))).toEqual({ seeders: 0, completed: 10, leechers: 20 })
      expect(net.sent.map((q) => q._tag)).toEqual(["Connect", "Announce", "Scrape"])
      const announce = net.sent[1]!
      expect(announce).toMatchObject({ connectionId: CONN, left: 77n, event: "completed", port: 6881, numwant: 50 })
      yield* TestClock.adjust("61 seconds")
      yield* t.announce(URL4, request({ infoHash: ih }))
      expect(net.sent.map((q) => q._tag)).toEqual(["Connect", "Announce", "Scrape", "Connect", "Announce"])
      expect(net.opened()).toBe(1) // one socket for every request
    }))

  it.scoped("scrapes more than 74 info-hashes in several requests", () =>
    Effect.gen(function*() {
      const net = fakeNet(goodTracker)
      const t = yield* client(net)
      const hashes = Array.from({ length: 100 }, infoHash)
      const s = yield* t.scrape(URL4, hashes)
      expect(s.size).toBe(100)
      expect(net.sent.filter((q) => q._tag === "Scrape").map((q) => (q._tag === "Scrape" ? q.infoHashes.length : 0)))
        .toEqual([74, 26])
    }))

  it.scoped("IPv6 trackers: 18-byte peers", () =>
    Effect.gen(function*() {
      const net = fakeNet(goodTracker)
      const t = yield* client(net)
      const r = yield* t.announce("udp://[::1]:6969", request({ infoHash: infoHash() }))
      expect(r.peers).toEqual([{ ip: "2001:db8::9", port: 6881 }])
    }))

  it.scoped("retransmits on the BEP 15 schedule and gives up after n = 8", () =>
    Effect.gen(function*() {
      const net = fakeNet(() => {}) // never answers
      const t = yield* client(net)
      const fiber = yield* Effect.fork(Effect.flip(t.announce(URL4, request({ infoHash: infoHash() }))))
      yield* settle
      const counts: Array<number> = [net.sent.length]
      for (let n = 0; n <= 8; n++) {
        yield* TestClock.adjust(Duration.seconds(15 * 2 ** n))
        counts.push(net.sent.length)
      }
      expect(counts).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 9])
      const err = yield* Fiber.join(fiber)
      expect(err).toMatchObject({ reason: "timeout", detail: "no connect reply after 9 attempts" })
    }))

  it.scoped("a lost reply is recovered by the retransmission", () =>
    Effect.gen(function*() {
      let dropped = 0
      const net = fakeNet((req, reply, fam) => {
        if (req._tag === "Connect" && dropped < 2) {
          dropped++
          return
        }
        goodTracker(req, reply, fam)
      })
      const t = yield* client(net)
      const fiber = yield* Effect.fork(t.announce(URL4, request({ infoHash: infoHash() })))
      yield* settle
      yield* TestClock.adjust("15 seconds")
      yield* TestClock.adjust("30 seconds")
      const r = yield* Fiber.join(fiber)
      expect(r.complete).toBe(2)
      expect(net.sent.map((q) => q._tag)).toEqual(["Connect", "Connect", "Connect", "Announce"])
    }))

  it.scoped("replies with a wrong transaction id or from another address are ignored", () =>
    Effect.gen(function*() {
      const net = fakeNet((req, reply, fam) => {
        if (req._tag === "Connect") {
          reply(UdpCodec.encodeResponse({ _tag: "Connect", transactionId: (req.transactionId + 1) >>> 0, connectionId: 1n }))
          reply(UdpCodec.encodeResponse({ _tag: "Connect", transactionId: req.transactionId, connectionId: 2n }), {
            address: "10.6.6.6",
            port: 6969
          })
          reply(Uint8Array.of(1, 2, 3)) // too short to carry a transaction id
        }
        goodTracker(req, reply, fam)
      })
      const t = yield* client(net)
      yield* t.announce(URL4, request({ infoHash: infoHash() }))
      expect(net.sent[1]).toMatchObject({ _tag: "Announce", connectionId: CONN })
    }))

  it.scoped("the error action is a failure carrying the tracker's message", () =>
    Effect.gen(function*() {
      const net = fakeNet((req, reply, fam) =>
        req._tag === "Announce"
          ? reply(UdpCodec.encodeResponse({ _tag: "Error", transactionId: req.transactionId, message: "unregistered torrent" }))
          : goodTracker(req, reply, fam)
      )
      const t = yield* client(net)
      const err = yield* Effect.flip(t.announce(URL4, request({ infoHash: infoHash() })))
      expect(err).toMatchObject({ reason: "failure", detail: "unregistered torrent", url: URL4 })
    }))

  it.scoped("garbage and mismatched replies with the right transaction id are bad responses", () =>
    Effect.gen(function*() {
      const cases: Array<(tid: number) => Uint8Array> = [
        (tid) => UdpCodec.encodeResponse({ _tag: "Scrape", transactionId: tid, entries: [] }), // wrong action
        (tid) => Bytes.concat([UdpCodec.encodeResponse({ _tag: "Connect", transactionId: tid, connectionId: 0n }).subarray(0, 8), Uint8Array.of(1)]),
        (tid) => {
          const b = new Uint8Array(27)
          new DataView(b.buffer).setUint32(0, 1)
          new DataView(b.buffer).setUint32(4, tid)
          return b // announce with 7 bytes of peers
        },
        (tid) => {
          const b = new Uint8Array(8)
          new DataView(b.buffer).setUint32(0, 77)
          new DataView(b.buffer).setUint32(4, tid)
          return b // unknown action
        }
      ]
      for (const make of cases) {
        const net = fakeNet((req, reply, fam) =>
          req._tag === "Announce" ? reply(make(req.transactionId)) : goodTracker(req, reply, fam)
        )
        const t = yield* client(net)
        const err = yield* Effect.flip(t.announce(URL4, request({ infoHash: infoHash() })))
        expect(err.reason).toBe("bad-response")
      }
    }))

  it.scoped("bad URLs are unsupported; unresolvable hosts are network errors naming the host", () =>
    Effect.gen(function*() {
      const t = yield* UdpTracker.make({ openSocket: fakeNet(goodTracker).openSocket })
      const noPort = yield* Effect.flip(t.announce("udp://tracker.example/announce", request({ infoHash: infoHash() })))
      expect(noPort.reason).toBe("unsupported")
      const dns = yield* Effect.flip(t.announce("udp://nope.nonexistent-host.invalid:80", request({ infoHash: infoHash() })))
      expect(dns).toMatchObject({ reason: "network", detail: expect.stringContaining("nope.nonexistent-host.invalid") })
    }))
})

describe("UdpTracker on real loopback sockets", () => {
  it.live("garbage and silence from real UDP servers are typed errors; the client's socket closes with its scope", () =>
    Effect.gen(function*() {
      const servers = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const make = (answer: (msg: Buffer, tid: number) => Buffer | undefined) =>
            new Promise<Dgram.Socket>((resolve) => {
              const s = Dgram.createSocket("udp4")
              s.on("message", (msg, r) => {
                const out = answer(msg, msg.length >= 16 ? msg.readUInt32BE(12) : 0)
                if (out !== undefined) s.send(out, r.port, r.address)
              })
              s.bind(0, "127.0.0.1", () => resolve(s))
            })
          const garbage = await make((_, tid) => {
            const b = Buffer.alloc(30, 0xee)
            b.writeUInt32BE(0, 0)
            b.writeUInt32BE(tid, 4)
            return b.subarray(0, 12) // a connect reply cut short
          })
          const junk = await make(() => Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n"))
          const silent = await make(() => undefined)
          return { garbage, junk, silent }
        }),
        (s) => Effect.sync(() => [s.garbage, s.junk, s.silent].forEach((x) => x.close()))
      )
      const url = (s: Dgram.Socket) => `udp://127.0.0.1:${s.address().port}`
      const sockets: Array<Udp.Socket> = []
      const scope = yield* Scope.make()
      const t = yield* Scope.extend(
        UdpTracker.make({
          retransmit: UdpTransaction.retransmitSchedule("50 millis", 2),
          openSocket: (family) => Effect.tap(Udp.make({ family, address: "127.0.0.1" }), (s) => sockets.push(s))
        }),
        scope
      )
      const errs = yield* Effect.all(
        [servers.garbage, servers.junk, servers.silent].map((s) =>
          Effect.flip(t.announce(url(s), request({ infoHash: infoHash() })))
        ),
        { concurrency: "unbounded" }
      )
      expect(errs.map((e) => e.reason)).toEqual(["bad-response", "timeout", "timeout"])
      expect(sockets.length).toBe(1)
      yield* Scope.close(scope, Exit.void)
      const closed = yield* Effect.flip(sockets[0]!.send(Uint8Array.of(0), 9, "127.0.0.1"))
      expect(closed.reason).toBe("Send")
    }).pipe(Effect.scoped))
})
