/**
 * Every endpoint through the typed client (RemoteClient, on the client HttpApiClient derives from Api.ts), against
 * the fake session on a real loopback port: the answers, what the server passed to the session, and the errors.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import { Api } from "../../src/api/Api.ts"
import * as RemoteClient from "../../src/api/RemoteClient.ts"
import { pattern } from "./FakeSession.ts"
import { client, start, torrentBytes } from "./support.ts"

const hash = "0123456789abcdef0123456789abcdef01234567"

const withTorrent = Effect.gen(function*() {
  const running = yield* start({ transmission: false }) // its own events subscription would count here
  const added = yield* running.fake.seed({
    name: "movie",
    files: [
      { path: "movie/movie.mkv", data: pattern(0, 70_000) },
      { path: "movie/notes.txt", data: pattern(1, 500) }
    ]
  })
  const remote = yield* client(running.url)
  return { ...running, added, remote }
})

describe("the typed client, endpoint by endpoint", () => {
  it.scopedLive("GET /api/torrents: every Summary", () =>
    Effect.gen(function*() {
      const { added, remote } = yield* withTorrent
      const list = yield* remote.list
      expect(list.map((t) => [t.id, t.infoHash, t.name, t.size])).toEqual([[added.id, added.infoHash, "movie", 70_500]])
    }))

  it.scopedLive("POST /api/torrents: .torrent bytes (201), the same again (200, duplicate), a magnet, a URL; options from the query", () =>
    Effect.gen(function*() {
      const { fake, remote, url } = yield* withTorrent
      const bytes = torrentBytes("new")
      const first = yield* remote.add({ _tag: "Metainfo", bytes }, {
        downloadDir: "/data/in",
        paused: true,
        files: [0, 2],
        unwanted: [2],
        priorityHigh: [0],
        priorityLow: [1],
        peers: ["127.0.0.1:6881", "127.0.0.1:6882"],
        options: { downloadLimit: 1000, uploadLimit: 2000, seedRatio: 1.5, seedTime: 3600, maxPeers: 20 }
      })
      expect(first.duplicate).toBe(false)
      const [source, options] = fake.callsOf("add")[0]!
      expect(source).toEqual({ _tag: "Metainfo", bytes })
      expect(options).toEqual({
        downloadDir: "/data/in",
        paused: true,
        files: [0, 2],
        unwanted: [2],
        priorityHigh: [0],
        priorityLow: [1],
        peers: ["127.0.0.1:6881", "127.0.0.1:6882"],
        options: { downloadLimit: 1000, uploadLimit: 2000, seedRatio: 1.5, seedTime: 3600, maxPeers: 20 }
      })

      // the derived client itself tells the statuses apart
      const typed = yield* HttpApiClient.make(Api, { baseUrl: url }).pipe(Effect.provide(FetchHttpClient.layer))
      const [again, response] = yield* typed.torrents.add({ urlParams: {}, payload: bytes, withResponse: true })
      expect(response.status).toBe(200)
      expect(again).toEqual({ ...first, duplicate: true })
      const [, created] = yield* typed.torrents.add({ urlParams: {}, payload: torrentBytes("other"), withResponse: true })
      expect(created.status).toBe(201)

      const magnet = yield* remote.add({ _tag: "Magnet", uri: `magnet:?xt=urn:btih:${hash.toUpperCase()}&dn=Some%20Name` })
      expect(magnet).toMatchObject({ infoHash: hash, name: "Some Name", duplicate: false })
      expect(fake.callsOf("add").at(-1)).toEqual([
        { _tag: "Magnet", uri: `magnet:?xt=urn:btih:${hash.toUpperCase()}&dn=Some%20Name` },
        {}
      ])
      const fromUrl = yield* remote.add({ _tag: "Url", url: "https://example.org/x.torrent" })
      expect(fromUrl.name).toBe("x.torrent")
      expect(fake.callsOf("add").at(-1)![0]).toEqual({ _tag: "Url", url: "https://example.org/x.torrent" })
    }))

  it.scopedLive("GET /api/torrents/{ref}: by id, by info-hash in either case", () =>
    Effect.gen(function*() {
      const { added, remote } = yield* withTorrent
      const byId = yield* remote.get(added.id)
      expect(byId.files.map((f) => [f.index, f.path, f.length])).toEqual([[0, "movie/movie.mkv", 70_000], [1, "movie/notes.txt", 500]])
      expect(yield* remote.get(added.infoHash)).toEqual(byId)
      expect(yield* remote.get(added.infoHash.toUpperCase())).toEqual(byId)
      expect(yield* remote.get(String(added.id))).toEqual(byId)
    }))

  it.scopedLive("DELETE /api/torrents/{ref}, with and without deleteData", () =>
    Effect.gen(function*() {
      const { added, fake, remote } = yield* withTorrent
      const other = yield* fake.seed({ name: "other", files: [] })
      yield* remote.remove(added.id)
      yield* remote.remove(other.infoHash, { deleteData: true })
      expect(fake.callsOf("remove")).toEqual([[added.id, { deleteData: false }], [other.infoHash, { deleteData: true }]])
      expect(yield* remote.list).toEqual([])
    }))

  it.scopedLive("POST …/pause, …/resume (?now=true), …/verify, …/reannounce", () =>
    Effect.gen(function*() {
      const { added, fake, remote } = yield* withTorrent
      yield* remote.pause(added.id)
      expect((yield* remote.get(added.id)).state).toBe("paused")
      yield* remote.resume(added.id)
      expect((yield* remote.get(added.id)).state).toBe("queued")
      yield* remote.resume(added.infoHash, { now: true })
      expect((yield* remote.get(added.id)).state).toBe("downloading")
      yield* remote.verify(added.id)
      yield* remote.reannounce(added.infoHash)
      expect(fake.callsOf("pause")).toEqual([[added.id]])
      expect(fake.callsOf("resume")).toEqual([[added.id, { now: false }], [added.infoHash, { now: true }]])
      expect(fake.callsOf("verify")).toEqual([[added.id]])
      expect(fake.callsOf("reannounce")).toEqual([[added.infoHash]])
    }))

  it.scopedLive("PUT …/files, PUT …/options", () =>
    Effect.gen(function*() {
      const { added, fake, remote } = yield* withTorrent
      yield* remote.setFiles(added.id, { unwanted: [1], priorityHigh: [0] })
      const files = (yield* remote.get(added.id)).files
      expect(files.map((f) => [f.wanted, f.priority])).toEqual([[true, "high"], [false, "normal"]])
      yield* remote.setOptions(added.id, { downloadLimit: 5000, seedRatio: null })
      expect(fake.callsOf("setOptions")).toEqual([[added.id, { downloadLimit: 5000, seedRatio: null }]])
      expect((yield* remote.get(added.id)).options).toMatchObject({ downloadLimit: 5000, seedRatio: null })
    }))

  it.scopedLive("POST …/queue/{top,up,down,bottom}", () =>
    Effect.gen(function*() {
      const { added, fake, remote } = yield* withTorrent
      const b = yield* fake.seed({ name: "b", files: [] })
      const c = yield* fake.seed({ name: "c", files: [] })
      const order = Effect.map(remote.list, (l) => [...l].sort((x, y) => x.queuePosition - y.queuePosition).map((t) => t.name))
      expect(yield* order).toEqual(["movie", "b", "c"])
      yield* remote.queueMove(c.id, "top")
      expect(yield* order).toEqual(["c", "movie", "b"])
      yield* remote.queueMove(c.id, "down")
      expect(yield* order).toEqual(["movie", "c", "b"])
      yield* remote.queueMove(added.id, "bottom")
      expect(yield* order).toEqual(["c", "b", "movie"])
      yield* remote.queueMove(b.infoHash, "up")
      expect(yield* order).toEqual(["b", "c", "movie"])
    }))

  it.scopedLive("GET …/peers, GET …/trackers", () =>
    Effect.gen(function*() {
      const { added, remote } = yield* withTorrent
      expect((yield* remote.peers(added.id)).map((p) => p.address)).toEqual(["127.0.0.1:51413"])
      expect((yield* remote.trackers(added.infoHash)).map((t) => [t.url, t.status])).toEqual([
        ["http://127.0.0.1:6969/announce", "working"]
      ])
    }))

  it.scopedLive("GET/HEAD …/files/{index}: the whole file, a range", () =>
    Effect.gen(function*() {
      const { added, fake, remote, url } = yield* withTorrent
      expect(yield* remote.readFile(added.id, 0)).toEqual(pattern(0, 70_000))
      expect(yield* remote.readFile(added.infoHash, 0, { start: 1000, end: 41_000 })).toEqual(pattern(0, 70_000).slice(1000, 41_000))
      expect(fake.callsOf("readFile")).toEqual([[added.id, 0, { start: 0, end: 70_000 }], [added.infoHash, 0, { start: 1000, end: 41_000 }]])
      const typed = yield* HttpApiClient.make(Api, { baseUrl: url }).pipe(Effect.provide(FetchHttpClient.layer))
      const [, head] = yield* typed.files.head({ path: { ref: added.id, index: 1 }, headers: { range: "bytes=-100" }, withResponse: true })
      expect([head.status, head.headers["content-range"], head.headers["content-length"]]).toEqual([206, "bytes 400-499/500", "100"])
    }))

  it.scopedLive("GET /api/stats, GET/PATCH /api/settings", () =>
    Effect.gen(function*() {
      const { remote } = yield* withTorrent
      expect(yield* remote.stats).toMatchObject({ torrents: 1, active: 1, paused: 0 })
      const settings = yield* remote.settings
      expect(settings.maxActiveDownloads).toBe(3)
      const updated = yield* remote.updateSettings({ maxActiveDownloads: 8, watchDir: "/watch" })
      expect(updated).toEqual({ ...settings, maxActiveDownloads: 8, watchDir: "/watch" })
      expect(yield* remote.settings).toEqual(updated)
    }))

  it.scopedLive("GET /api/events: the events, decoded by their Schema", () =>
    Effect.gen(function*() {
      const { added, fake, remote } = yield* withTorrent
      const fiber = yield* remote.events.pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      while (fake.subscribers() === 0) yield* Effect.sleep("10 millis")
      yield* fake.publish({ _tag: "PieceVerified", id: added.id, infoHash: added.infoHash, index: 4 })
      yield* remote.pause(added.id)
      yield* fake.publish({ _tag: "Completed", id: added.id, infoHash: added.infoHash })
      const events = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(events.map((e) => e._tag)).toEqual(["PieceVerified", "Changed", "Completed"])
      expect(events[1]).toMatchObject({ _tag: "Changed", torrent: { id: added.id, state: "paused" } })
    }))

  it.scopedLive("GET /metrics and GET /api/openapi.json", () =>
    Effect.gen(function*() {
      const { remote } = yield* withTorrent
      expect(yield* remote.metrics).toContain('effect_torrent_torrents{state="downloading"} 1')
      expect(yield* remote.openApi).toMatchObject({ openapi: "3.1.0" })
    }))
})

describe("the typed client's errors", () => {
  it.scopedLive("the session's reasons arrive with their status: not-found 404, invalid-source / invalid-argument 400, unsupported 422, storage 500, closed 503", () =>
    Effect.gen(function*() {
      const { added, fake, remote } = yield* withTorrent
      const failure = <A>(e: Effect.Effect<A, RemoteClient.RemoteError>) =>
        Effect.map(Effect.flip(e), (x) => [x.reason, x.status])
      expect(yield* failure(remote.get(99))).toEqual(["not-found", 404])
      expect(yield* failure(remote.get(hash))).toEqual(["not-found", 404])
      expect(yield* failure(remote.add({ _tag: "Magnet", uri: "magnet:?dn=nohash" }))).toEqual(["invalid-source", 400])
      expect(yield* failure(remote.add({ _tag: "Metainfo", bytes: new Uint8Array([1, 2]) }))).toEqual(["invalid-source", 400])
      expect(yield* failure(remote.setFiles(added.id, { wanted: [7] }))).toEqual(["invalid-argument", 400])
      expect(yield* failure(remote.updateSettings({ maxActiveDownloads: -1 }))).toEqual(["invalid-argument", 400])
      fake.failNext("add", "unsupported")
      expect(yield* failure(remote.add({ _tag: "Metainfo", bytes: torrentBytes("v2") }))).toEqual(["unsupported", 422])
      fake.failNext("remove", "storage")
      expect(yield* failure(remote.remove(added.id, { deleteData: true }))).toEqual(["storage", 500])
      fake.close()
      const closed = yield* Effect.flip(remote.pause(added.id))
      expect([closed.reason, closed.status, closed.message]).toEqual(["closed", 503, "the session is shutting down"])
    }))

  it.scopedLive("a session answer that does not fit its Schema is the daemon's fault: 500 'internal', not a 400", () =>
    Effect.gen(function*() {
      const { fake, remote } = yield* withTorrent
      yield* fake.seed({ name: "broken", infoHash: "not-hex", files: [] })
      const e = yield* Effect.flip(remote.list)
      expect([e.reason, e.status, e.message]).toEqual(["internal", 500, "internal error (logged by the daemon)"])
    }))

  it.scopedLive("nothing listening: one 'unreachable' error that says so", () =>
    Effect.gen(function*() {
      // a port that was free a moment ago
      const port = yield* Effect.async<number>((resume) => {
        const s = Net.createServer().listen(0, "127.0.0.1", () => {
          const p = (s.address() as Net.AddressInfo).port
          s.close(() => resume(Effect.succeed(p)))
        })
      })
      const remote = yield* client(`http://127.0.0.1:${port}`)
      for (const call of [remote.list, remote.stats, Stream.runDrain(remote.events)]) {
        const e = yield* Effect.flip(call)
        expect(e.reason).toBe("unreachable")
        expect(e.message).toBe(`no daemon is answering at http://127.0.0.1:${port} (connection refused): is \`effect-torrent daemon\` running?`)
      }
    }))

  it.scopedLive("an answer this client does not understand is a 'protocol' error", () =>
    Effect.gen(function*() {
      const sockets = new Set<Net.Socket>()
      const port = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const s = Net.createServer((socket) => {
            sockets.add(socket)
            socket.end("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"x\":1}")
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.async<void>((resume) => {
            s.close(() => resume(Effect.void))
            for (const socket of sockets) socket.destroy()
          })
      ).pipe(Effect.map((s) => (s.address() as Net.AddressInfo).port))
      const remote = yield* client(`http://127.0.0.1:${port}`)
      const e = yield* Effect.flip(remote.stats)
      expect(e.reason).toBe("protocol")
    }))

  it("parseRef: digits are an id, anything else an info-hash in lower case", () => {
    expect(RemoteClient.parseRef("12")).toBe(12)
    expect(RemoteClient.parseRef(hash.toUpperCase())).toBe(hash)
  })
})
