/**
 * uTP over IPv6 (issue 19): two IPv6 `UtpSocket`s on ::1 (a non-canonical address dialled still finds its answers),
 * a family mismatch refused typed, the dial policy picking the IPv6 socket for IPv6 peers, and python3-libtorrent
 * 2.0.8 with TCP off listening on [::1] both ways: our client (transport utp) downloads from it byte-identical, and
 * its leecher downloads from our seeder (listening on "::") through our IPv6 uTP socket.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Tcp from "../../src/net/Tcp.ts"
import * as UtpSocket from "../../src/net/UtpSocket.ts"
import * as UtpTransport from "../../src/net/UtpTransport.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { writeData } from "../support/data.ts"
import { readFile, tempDir, testClient } from "../support/download.ts"
import * as Lt from "../support/libtorrentSession.ts"
import { build, type Built } from "../support/seeder.ts"

const readExactly = (conn: Tcp.Connection, n: number) =>
  Effect.async<Uint8Array>((resume) => {
    const out = new Uint8Array(n)
    let at = 0
    conn.onData((chunk) => {
      out.set(chunk.subarray(0, Math.min(chunk.length, n - at)), at)
      at += chunk.length
      if (at >= n) resume(Effect.succeed(out))
    })
  })

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 7 + (i >> 9)) & 0xff)

describe("uTP over IPv6 sockets", () => {
  it.scopedLive("two IPv6 sockets on ::1: dialled as 0:0::1, 1 MB each way arrive exactly", () =>
    Effect.gen(function*() {
      const a = yield* UtpSocket.make({ family: "udp6", host: "::1" })
      const b = yield* UtpSocket.make({ family: "udp6", host: "::1" })
      const [client, server] = yield* Effect.all([a.dial({ host: "0:0::1", port: b.local.port }), b.accept], {
        concurrency: 2
      })
      expect([client.remote.host, client.transport, server.remote.host]).toEqual(["::1", "utp", "::1"])
      const up = bytes(1_000_000, 1)
      const down = bytes(1_000_000, 2)
      client.write(up)
      server.write(down)
      const [gotUp, gotDown] = yield* Effect.all([readExactly(server, up.length), readExactly(client, down.length)], {
        concurrency: 2
      })
      expect(Buffer.from(gotUp).equals(Buffer.from(up))).toBe(true)
      expect(Buffer.from(gotDown).equals(Buffer.from(down))).toBe(true)
    }), 30_000)

  it.scopedLive("an address of the other family is refused typed, without sending", () =>
    Effect.gen(function*() {
      const v6 = yield* UtpSocket.make({ family: "udp6", host: "::1" })
      const v4 = yield* UtpSocket.make({ host: "127.0.0.1" })
      const e6 = yield* Effect.flip(v6.dial({ host: "127.0.0.1", port: v4.local.port }))
      const e4 = yield* Effect.flip(v4.dial({ host: "::1", port: v6.local.port }))
      for (const [e, detail] of [[e6, "an IPv4 address on this IPv6 socket"], [e4, "an IPv6 address on this IPv4 socket"]] as const) {
        expect(e.reason).toBe("connect-failed")
        expect(e.cause).toMatchObject({ _tag: "UtpError", reason: "address", detail })
      }
      expect(v6.stats().datagramsOut + v4.stats().datagramsOut).toBe(0)
    }))

  it.scopedLive("the dial policy takes the IPv6 socket for an IPv6 peer and the IPv4 one for an IPv4 peer", () =>
    Effect.gen(function*() {
      const v4 = yield* UtpSocket.make({ host: "127.0.0.1" })
      const v6 = yield* UtpSocket.make({ family: "udp6", host: "::1" })
      const peer4 = yield* UtpSocket.make({ host: "127.0.0.1" })
      const peer6 = yield* UtpSocket.make({ family: "udp6", host: "::1" })
      const tcp: UtpTransport.Dial = () => Effect.die("TCP must not be dialled")
      for (const transport of ["utp", "both"] as const) {
        const dial = UtpTransport.dialer({ transport, utp: Effect.succeed(v4), utp6: Effect.succeed(v6), tcp })
        const [c6] = yield* Effect.all([dial({ host: "::1", port: peer6.local.port }), peer6.accept], { concurrency: 2 })
        const [c4] = yield* Effect.all([dial({ host: "127.0.0.1", port: peer4.local.port }), peer4.accept], { concurrency: 2 })
        expect([c6.remote.host, c6.transport, c4.remote.host, c4.transport]).toEqual(["::1", "utp", "127.0.0.1", "utp"])
      }
      expect(v6.stats().datagramsOut).toBeGreaterThan(0)
      // Without an IPv6 socket, "both" reaches an IPv6 peer over TCP.
      let tcpDialled = 0
      const viaTcp = UtpTransport.dialer({
        transport: "both",
        utp: Effect.succeed(v4),
        utp6: Effect.succeed(undefined),
        tcp: (p) =>
          Effect.zipRight(
            Effect.sync(() => void tcpDialled++),
            Effect.fail(new Tcp.TcpError({ reason: "connect-failed", address: `[${p.host}]:${p.port}`, cause: "fake" }))
          )
      })
      expect((yield* Effect.flip(viaTcp({ host: "::1", port: peer6.local.port }))).address).toBe(`[::1]:${peer6.local.port}`)
      expect(tcpDialled).toBe(1)
    }))
})

// ---------------------------------------------------------------------------------------------------------------

const utpOnly = {
  enable_outgoing_tcp: false,
  enable_incoming_tcp: false,
  enable_outgoing_utp: true,
  enable_incoming_utp: true,
  listen_interfaces: "[::1]:0"
}
const running: Array<{ stop: () => Promise<void> }> = []
afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()))
})
const ltSession = Effect.promise(() => Lt.start(utpOnly)).pipe(Effect.tap((s) => Effect.sync(() => running.push(s))))

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const payload = (name: string) =>
  build({ name, pieceLength: 256 * 1024, files: [{ path: ["data.bin"], length: 12 * 262_144 + 4321 }] })
const identical = (b: Built, dir: string) => expect(sha(readFile(b, dir, 0))).toBe(sha(b.files[0]!))

describe("uTP over IPv6 with libtorrent (TCP off, listening on [::1])", () => {
  it.live("the client (transport utp) downloads from it byte-identical, over its IPv6 uTP socket", () =>
    Effect.gen(function*() {
      const b = payload("utp6-download")
      const lt = yield* ltSession
      yield* Effect.promise(() => lt.seed("t", b))
      const dir = tempDir("utp6")
      const events = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(b.metainfo, { outputDir: dir, peers: [{ host: "::1", port: lt.port }], trackers: false })
        const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
        yield* d.done
        const client = yield* Client.Client
        expect((yield* client.utp6)?.stats().datagramsIn).toBeGreaterThan(b.payload.length / 1500)
        return Chunk.toReadonlyArray(yield* Fiber.join(collected))
      })).pipe(Effect.provide(testClient({ transport: "utp", noPeersTimeout: "30 seconds" })))
      identical(b, dir)
      expect(events.filter(TorrentEvent.$is("PeerConnected")).map((e) => [e.addr, e.transport, e.source]))
        .toEqual([[`[::1]:${lt.port}`, "utp", "manual"]])
    }), 60_000)

  it.live("its leecher downloads from our seeder (listening on \"::\") through our IPv6 uTP socket", () =>
    Effect.scoped(Effect.gen(function*() {
      const b = payload("utp6-seed")
      const data = tempDir("utp6-seed")
      writeData(b, data)
      const context = yield* Layer.build(
        Client.layerWith({ listen: { host: "::", port: 0 }, transport: "utp" }).pipe(
          Layer.provide(TrackerLive.layer()),
          Layer.provide(Hasher.layerInline)
        )
      )
      const seeding = yield* Client.seed(b.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(context))
      const firstPeer = yield* Effect.forkScoped(
        seeding.subscribe.pipe(Stream.filter(TorrentEvent.$is("PeerConnected")), Stream.runHead)
      )
      const client = yield* Effect.provide(Client.Client, context)
      const port = (yield* client.listener)!.address.port
      expect((yield* client.utp6)?.local.port).toBe(port)
      const lt = yield* ltSession
      const save = yield* Effect.promise(() => lt.leech("t", b))
      yield* Effect.promise(() => lt.command({ op: "connect", id: "t", ip: "::1", port }))
      yield* Effect.promise(() => lt.waitFor("t", (s) => s.seeding, 45_000))
      identical(b, save)
      expect(Option.getOrUndefined(yield* Fiber.join(firstPeer))).toMatchObject({ transport: "utp", source: "incoming" })
    })), 60_000)
})
