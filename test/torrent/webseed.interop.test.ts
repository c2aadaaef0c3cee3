/**
 * BEP 19 web seeds against Debian's nginx (nginx-light) started on 127.0.0.1 by the test: single- and multi-file
 * torrents from nginx alone, names needing percent-encoding, keep-alive reuse seen in nginx's access log
 * (`$connection $connection_requests`), a corrupt copy beside a good one, a server missing a file, one ignoring
 * `Range` (`max_ranges 0`: 200 with the whole file), redirects and a redirect loop, 503 then recovery, and nginx
 * beside a python3-libtorrent seeder. Byte-identical every time.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import type * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Client from "../../src/session/Client.ts"
import { download, tempDir, testClient } from "../support/download.ts"
import * as Nginx from "../support/nginx.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built, seed } from "../support/seeder.ts"

const running: Array<{ stop: () => Promise<void> }> = []
afterAll(() => Promise.all(running.map((r) => r.stop())))

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const identical = (b: Built, dir: string) =>
  b.metainfo.files.forEach((f, i) => {
    if (f.pad) return
    expect(sha(readFileSync(join(dir, ...f.path)))).toBe(sha(b.files[i]!))
  })

const withSeeds = (b: Built, urls: ReadonlyArray<string>): Built => ({
  ...b,
  metainfo: { ...b.metainfo, webSeeds: urls } satisfies Metainfo.Metainfo
})

/** The files of `b` as nginx should serve them under `prefix` (multi-file: `prefix/name/...`; raw names). */
const served = (b: Built, prefix: string) =>
  b.metainfo.files.flatMap((f, i) =>
    f.pad ? [] : [{ path: join(prefix, ...(b.metainfo.isMultiFile ? f.rawPath : [f.rawPath[f.rawPath.length - 1]!])), bytes: b.files[i]! }]
  )

const nginx = (files: Parameters<typeof Nginx.start>[0], locations?: string) =>
  Effect.promise(async () => {
    const n = await Nginx.start(files, locations)
    running.push(n)
    return n
  })

const client = (config: Client.ClientOptions["webSeedConfig"] = {}) =>
  testClient({
    noPeersTimeout: "20 seconds",
    webSeedConfig: { backoff: { base: 100, max: 1_000 }, idleTimeout: "5 seconds", ...config }
  })

const multi = (name: string) =>
  build({
    name,
    pieceLength: 65536,
    files: [
      { path: ["a.bin"], length: 300_001 },
      { path: ["sub", "b.bin"], length: 123_457 },
      { path: ["c.txt"], length: 1 },
      { path: ["d.bin"], length: 200_000 }
    ]
  })

const run = nginx

/** Downloads `b` (its web seeds, and `ports` as peers) into `dir`; the web seeds' states at the end, the events. */
const fetch = (b: Built, dir: string, ports: ReadonlyArray<number> = []) =>
  Effect.scoped(Effect.gen(function*() {
    const d = yield* Client.download(b.metainfo, {
      outputDir: dir,
      peers: ports.map((port) => ({ host: "127.0.0.1", port })),
      trackers: false
    })
    const collector = yield* Effect.forkScoped(Stream.runCollect(d.events))
    yield* d.done
    const r = yield* d.running
    const servers = r.torrent.webSeeds()
    const from = d.downloadedFrom()
    const events = Chunk.toReadonlyArray(yield* Fiber.join(collector))
    return { servers, from, events }
  }))

const corrupt = (bytes: Uint8Array, every: number): Uint8Array => {
  const out = Uint8Array.from(bytes)
  for (let i = 100; i < out.length; i += every) out[i] = out[i]! ^ 0xff
  return out
}
const ok = Nginx.shouldRun()

describe("web seeds (nginx)", () => {
  it.live.skipIf(!ok)("a single-file torrent from nginx alone, keep-alive reused", () =>
    Effect.gen(function*() {
      const b = build({ name: "single.bin", single: true, pieceLength: 32768, files: [{ path: ["single.bin"], length: 1_000_003 }] })
      const n = yield* run(served(b, "/files"))
      const dir = tempDir("ws-single")
      yield* download(withSeeds(b, [n.url("/files/single.bin")]), dir, [])
      identical(b, dir)
      const lines = n.access()
      expect(lines.every((l) => l.status === 206)).toBe(true)
      // 2 connections, many ranges: some connection served more than one request
      expect(Math.max(...lines.map((l) => l.requests))).toBeGreaterThan(1)
      expect(new Set(lines.map((l) => l.connection)).size).toBeLessThanOrEqual(2)
      // one source: every byte asked once
      expect(lines.reduce((t, l) => t + l.bytes, 0)).toBe(b.metainfo.totalLength)
    }).pipe(Effect.provide(client({ connections: 2, requestBytes: 65536 }))), 60_000)

  it.live.skipIf(!ok)("a multi-file torrent from a directory URL, spans crossing files", () =>
    Effect.gen(function*() {
      const b = multi("multi")
      const n = yield* run(served(b, "/pub"))
      const dir = tempDir("ws-multi")
      yield* download(withSeeds(b, [n.url("/pub/")]), dir, [])
      identical(b, dir)
      const uris = new Set(n.access().map((l) => l.uri))
      expect(uris).toEqual(new Set(["/pub/multi/a.bin", "/pub/multi/sub/b.bin", "/pub/multi/c.txt", "/pub/multi/d.bin"]))
      expect(n.access().reduce((t, l) => t + l.bytes, 0)).toBe(b.metainfo.totalLength)
    }).pipe(Effect.provide(client())), 60_000)

  it.live.skipIf(!ok)("names needing percent-encoding (space, #, %, UTF-8)", () =>
    Effect.gen(function*() {
      const b = build({
        name: "dir with space",
        pieceLength: 16384,
        files: [
          { path: ["a #1.bin"], length: 40_000 },
          { path: ["100%.bin"], length: 30_000 },
          { path: ["ünï", "çødé ☃.bin"], length: 50_000 },
          { path: ["q?x=1&y.bin"], length: 10_000 }
        ]
      })
      const n = yield* run(served(b, "/"))
      const dir = tempDir("ws-encoding")
      yield* download(withSeeds(b, [n.url("/")]), dir, [])
      identical(b, dir)
      expect(n.access().every((l) => l.status === 206)).toBe(true)
    }).pipe(Effect.provide(client())), 60_000)

  it.live.skipIf(!ok)("a corrupt copy on one server: it is dropped, the data comes from the other", () =>
    Effect.gen(function*() {
      const b = multi("corrupt")
      const good = served(b, "/good")
      const bad = served(b, "/bad").map((f) => ({ ...f, bytes: corrupt(f.bytes, 65536) }))
      const n = yield* run([...good, ...bad])
      const dir = tempDir("ws-corrupt")
      const badUrl = n.url("/bad/")
      const out = yield* fetch(withSeeds(b, [badUrl, n.url("/good/")]), dir)
      identical(b, dir)
      const badState = out.servers.find((s) => s.url === badUrl)!.state
      expect(badState._tag).toBe("Dropped")
      expect(out.events.some((e) => e._tag === "PieceFailed")).toBe(true)
      expect(out.events.some((e) => e._tag === "PeerBanned" && e.addr === badUrl)).toBe(true)
    }).pipe(Effect.provide(client({ requestBytes: 65536 }))), 60_000)

  it.live.skipIf(!ok)("a server missing a file: its pieces come from another server", () =>
    Effect.gen(function*() {
      const b = multi("missing")
      const partial = served(b, "/part").filter((f) => !f.path.endsWith("d.bin"))
      // The full copy is slow (64 KiB/s a connection): the partial server, fast, gets to ask for d.bin's pieces (and
      // learns it lacks the file) long before the full one could have served them all — without the limit the full
      // server sometimes served every piece of d.bin first and the partial never asked.
      const n = yield* run([...partial, ...served(b, "/full")], "location /full/ { limit_rate 64k; }")
      const dir = tempDir("ws-missing")
      const partUrl = n.url("/part/")
      const out = yield* fetch(withSeeds(b, [partUrl, n.url("/full/")]), dir)
      identical(b, dir)
      const part = out.servers.find((s) => s.url === partUrl)!
      expect(part.state._tag).not.toBe("Dropped")
      expect(part.missingFiles).toEqual([3])
      expect(n.access().filter((l) => l.status === 404).every((l) => l.uri === "/part/missing/d.bin")).toBe(true)
    }).pipe(Effect.provide(client({ requestBytes: 65536 }))), 60_000)

  it.live.skipIf(!ok)("a server ignoring Range (200 with the whole file)", () =>
    Effect.gen(function*() {
      const b = multi("norange")
      const n = yield* run(served(b, "/"), "max_ranges 0;")
      const dir = tempDir("ws-norange")
      yield* fetch(withSeeds(b, [n.url("/")]), dir)
      identical(b, dir)
      expect(n.access().every((l) => l.status === 200)).toBe(true)
    }).pipe(Effect.provide(client())), 60_000)

  it.live.skipIf(!ok)("redirects are followed; a redirect loop is cut after 5 and backed off", () =>
    Effect.gen(function*() {
      const b = multi("redirect")
      const n = yield* run(
        served(b, "/real"),
        "location /moved/ { rewrite ^/moved/(.*)$ /real/$1 redirect; }\n" +
          "    location /loop/ { rewrite ^/loop/(.*)$ /loop/$1 redirect; }"
      )
      const dir = tempDir("ws-redirect")
      const loopUrl = n.url("/loop/")
      const out = yield* fetch(withSeeds(b, [loopUrl, n.url("/moved/")]), dir)
      identical(b, dir)
      const lines = n.access()
      expect(lines.some((l) => l.status === 302 && l.uri.startsWith("/moved/"))).toBe(true)
      expect(lines.some((l) => l.status === 206 && l.uri.startsWith("/real/"))).toBe(true)
      const loop = out.servers.find((s) => s.url === loopUrl)!
      expect(loop.state._tag).not.toBe("Dropped")
      expect(loop.downloaded).toBe(0)
      // one attempt is the request and 5 redirects: the loop's requests come in sixes
      expect(lines.filter((l) => l.uri.startsWith("/loop/")).length % 6).toBe(0)
    }).pipe(Effect.provide(client({ connections: 1, backoff: { base: 60_000, max: 60_000 } }))), 60_000)

  it.live.skipIf(!ok)("a server answering 503 is backed off, then used once it recovers", () =>
    Effect.gen(function*() {
      const b = multi("unavailable")
      const n = yield* run(served(b, "/"), "location / { return 503; }")
      const dir = tempDir("ws-503")
      const fiber = yield* Effect.fork(fetch(withSeeds(b, [n.url("/")]), dir))
      // several attempts, spaced by the backoff, before it recovers
      while (n.access().filter((l) => l.status === 503).length < 3) yield* Effect.sleep("20 millis")
      yield* Effect.promise(() => n.reload("", { path: "/probe-missing", status: 404 }))
      const out = yield* Fiber.join(fiber)
      identical(b, dir)
      expect(out.servers[0]!.state._tag).toBe("Up")
      expect(n.access().some((l) => l.status === 206)).toBe(true)
    }).pipe(Effect.provide(client())), 60_000)

  it.live.skipIf(!ok || !Real.shouldRun("libtorrent"))("nginx beside a python3-libtorrent seeder", () =>
    Effect.gen(function*() {
      const b = build({
        name: "both",
        pieceLength: 262144,
        files: [{ path: ["a.bin"], length: 3_000_001 }, { path: ["b.bin"], length: 2_500_000 }]
      })
      const n = yield* run(served(b, "/"))
      const s = yield* Effect.promise(() => Real.libtorrent(b))
      running.push(s)
      const dir = tempDir("ws-both")
      const url = n.url("/")
      const out = yield* fetch(withSeeds(b, [url]), dir, [s.port])
      identical(b, dir)
      const total = out.from.reduce((t, f) => t + f.bytes, 0)
      expect(total).toBeGreaterThanOrEqual(b.metainfo.totalLength)
      const fromSeed = out.from.find((f) => f.address === url)?.bytes ?? 0
      const sent = n.access().reduce((t, l) => t + l.bytes, 0)
      const server = out.servers[0]!
      console.log(
        `web seed + libtorrent: ${JSON.stringify(out.from)}; nginx sent ${sent} bytes, ` +
          `we read ${server.received}, kept ${fromSeed}`
      )
    }).pipe(Effect.provide(client({ connections: 2, requestBytes: 262144 }))), 60_000)

  it.live.skipIf(!ok)("a magnet's ws= is used once the metadata arrived (from a peer with no pieces)", () =>
    Effect.gen(function*() {
      const b = multi("magnet-ws")
      const n = yield* run(served(b, "/m"))
      const peer = yield* Effect.promise(() => seed(b, { metadata: "honest", pieces: [] }))
      running.push(peer)
      const dir = tempDir("ws-magnet")
      const out = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download({
          infoHashes: { v1: b.metainfo.infoHash },
          trackers: [],
          webSeeds: [n.url("/m/")],
          peers: [{ host: "127.0.0.1", port: peer.port }]
        }, { outputDir: dir, trackers: false })
        yield* d.done
        return (yield* d.running).torrent.webSeeds()
      }))
      identical(b, dir)
      expect(peer.served()).toBe(0)
      expect(out.map((s) => s.url)).toEqual([n.url("/m/")])
      expect(out[0]!.downloaded).toBe(b.metainfo.totalLength)
    }).pipe(Effect.provide(client())), 60_000)

  it.live.skipIf(!ok)("once complete (seeding on), the web seed leaves the peers", () =>
    Effect.gen(function*() {
      const b = multi("complete")
      const n = yield* run(served(b, "/"))
      const dir = tempDir("ws-complete")
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(withSeeds(b, [n.url("/")]).metainfo, { outputDir: dir, trackers: false, seed: true })
        yield* d.done
        const torrent = (yield* d.running).torrent
        // it leaves within a worker's idle poll (1 s)
        yield* Effect.sleep("50 millis").pipe(Effect.repeat({ until: () => torrent.peers().length === 0 }))
        expect(torrent.stats().peers).toBe(0)
        expect(torrent.webSeeds()[0]!.state._tag).toBe("Up")
      }))
      identical(b, dir)
    }).pipe(Effect.provide(client())), 60_000)
})
