/**
 * Transmission's RPC over the in-memory FakeSession: the HTTP contract with raw requests (the CSRF handshake, both
 * paths, `tag`, credentials, Host/Origin checks), the pure mappings, and Debian's `transmission-remote` 3.00
 * reading and changing the fake's torrents (list, details, files, session info and stats, start/stop/verify,
 * file selection, limits, removal, the methods answered as unsupported).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile, execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Auth from "../../src/api/Auth.ts"
import * as Rpc from "../../src/api/TransmissionRpc.ts"
import type * as TorrentInfo from "../../src/session/TorrentInfo.ts"
import { pattern } from "./FakeSession.ts"
import { raw, start, torrentBytes } from "./support.ts"
import { fieldsOf, listRows, remote, remoteOk, shouldRun } from "./TransmissionSupport.ts"

const rpc = (port: number, body: unknown, headers: Record<string, string> = {}) =>
  raw(port, {
    method: "POST",
    path: "/transmission/rpc",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })

/** The handshake: the first answer's session id, then the request again with it. */
const rpcWithId = (port: number, body: unknown, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const first = yield* rpc(port, body, headers)
    expect(first.status).toBe(409)
    const id = String(first.headers["x-transmission-session-id"])
    const second = yield* rpc(port, body, { ...headers, "x-transmission-session-id": id })
    return { id, response: second, json: second.json() as { result: string; arguments: Record<string, unknown>; tag?: number } }
  })

const summary = (over: Partial<TorrentInfo.Summary>): TorrentInfo.Summary => ({
  id: 1,
  infoHash: "a".repeat(40),
  name: "t",
  state: "downloading",
  complete: false,
  progress: 0.5,
  size: 1000,
  wantedSize: 1000,
  haveSize: 500,
  downloaded: 500,
  uploaded: 0,
  downloadRate: 10.4,
  uploadRate: 0,
  peers: 1,
  ratio: 0,
  eta: null,
  error: null,
  downloadDir: "/d",
  addedAt: 1_700_000_000_123,
  completedAt: null,
  queuePosition: 0,
  private: false,
  magnet: "magnet:?xt=urn:btih:" + "a".repeat(40),
  ...over
})

describe("the mappings", () => {
  it("ids: absent → all, a number, a hash (any case), a list, recently-active; unknown strings select nothing", () => {
    expect(Rpc.selection(undefined)).toEqual({ _tag: "All" })
    expect(Rpc.selection("recently-active")).toEqual({ _tag: "RecentlyActive" })
    expect(Rpc.selection(3)).toEqual({ _tag: "Some", ids: [3], hashes: [] })
    expect(Rpc.selection("AB".repeat(20))).toEqual({ _tag: "Some", ids: [], hashes: ["ab".repeat(20)] })
    expect(Rpc.selection([1, "cd".repeat(20), "nonsense"])).toEqual({ _tag: "Some", ids: [1], hashes: ["cd".repeat(20)] })
    const ts = [summary({ id: 1 }), summary({ id: 2, infoHash: "b".repeat(40) })]
    expect(Rpc.select(ts, Rpc.selection("B".repeat(40)), () => false).map((t) => t.id)).toEqual([2])
    expect(Rpc.select(ts, Rpc.selection([]), () => true)).toEqual([])
    expect(Rpc.select(ts, Rpc.selection("recently-active"), (t) => t.id === 1).map((t) => t.id)).toEqual([1])
  })

  it("status codes 0–6, error codes, eta −1/−2, integers where Transmission reads integers", () => {
    expect(Rpc.statusOf(summary({ state: "paused" }))).toBe(0)
    expect(Rpc.statusOf(summary({ state: "finished", complete: true }))).toBe(0)
    expect(Rpc.statusOf(summary({ state: "checking" }))).toBe(2)
    expect(Rpc.statusOf(summary({ state: "queued" }))).toBe(3)
    expect(Rpc.statusOf(summary({ state: "downloading" }))).toBe(4)
    expect(Rpc.statusOf(summary({ state: "fetching-metadata" }))).toBe(4)
    expect(Rpc.statusOf(summary({ state: "queued", complete: true }))).toBe(5)
    expect(Rpc.statusOf(summary({ state: "seeding", complete: true }))).toBe(6)
    expect(Rpc.errorOf(summary({ state: "error", error: { reason: "no-space", message: "disk full" } }))).toBe(3)
    expect(Rpc.etaOf(summary({ eta: 12.6 }))).toBe(13)
    expect(Rpc.etaOf(summary({ eta: null }))).toBe(-2)
    expect(Rpc.etaOf(summary({ eta: null, state: "seeding", complete: true }))).toBe(-1)
    expect(Rpc.etaOf(summary({ eta: null, state: "paused" }))).toBe(-1)
    const source = { summary: summary({}), detail: undefined, peers: undefined, settings: {} as TorrentInfo.Settings, now: 0 }
    expect(Rpc.torrentObject(["rateDownload", "addedDate", "leftUntilDone", "percentDone", "nonsense"], source)).toEqual({
      rateDownload: 10,
      addedDate: 1_700_000_000,
      leftUntilDone: 500,
      percentDone: 0.5
    })
    expect(Rpc.torrentTable(["id", "name", "nonsense"], [source])).toEqual([["id", "name"], [1, "t"]])
  })

  it("peers: address and port apart, Transmission's flags", () => {
    const p: TorrentInfo.PeerInfo = {
      address: "[::1]:6881",
      client: "libtorrent",
      encryption: "rc4",
      incoming: true,
      transport: "utp",
      source: "incoming",
      sources: ["incoming"],
      downloadRate: 5,
      uploadRate: 0,
      downloaded: 1,
      uploaded: 0,
      progress: 1,
      choked: true,
      chokingUs: false,
      interested: true,
      interestedInUs: true
    }
    expect(Rpc.peerOf(p)).toMatchObject({ address: "::1", port: 6881, flagStr: "DuEIT", isEncrypted: true, isUTP: true, rateToClient: 5 })
    expect(Rpc.peerOf({ ...p, transport: "tcp" }).isUTP).toBe(false)
    // each peer counted once, under its first source; web seeds are not peers to Transmission
    const from = (source: TorrentInfo.PeerInfo["source"]) => ({ ...p, source, sources: [source] })
    expect(Rpc.peersFrom([p, from("tracker"), from("tracker"), from("dht"), from("pex"), from("lsd"), from("manual"), from("webseed")]))
      .toEqual({ fromCache: 1, fromDht: 1, fromIncoming: 1, fromLpd: 1, fromLtep: 0, fromPex: 1, fromTracker: 2 })
    expect(Rpc.splitAddress("127.0.0.1:80")).toEqual(["127.0.0.1", 80])
    expect(Rpc.scrapeUrlOf("http://t.example/x/announce?k=1")).toBe("http://t.example/x/scrape?k=1")
    expect(Rpc.scrapeUrlOf("udp://t.example:80")).toBe("")
  })

  it("session-set: limits in kB/s on and off (remembering the value), goals, queue sizes, refusals", () => {
    const s: TorrentInfo.Settings = {
      downloadDir: "/d", peerPort: 1, maxActiveDownloads: 3, maxActiveSeeds: 5, downloadLimit: 0, uploadLimit: 0,
      maxConnections: 200, maxPeersPerTorrent: 50, seedRatio: null, seedTime: null, watchDir: null, dht: true,
      pex: true, encryption: "prefer", lsd: true, transport: "tcp", portMapping: false
    }
    const r = Rpc.defaultRemembered
    expect(Rpc.sessionPatch({ "speed-limit-down": 300, "speed-limit-down-enabled": true }, s, r)).toEqual({
      _tag: "Patch", patch: { downloadLimit: 300_000 }, remembered: { ...r, speedDown: 300 }
    })
    // the value alone while off: remembered, nothing applied
    expect(Rpc.sessionPatch({ "speed-limit-up": 40 }, s, r)).toEqual({ _tag: "Patch", patch: { uploadLimit: 0 }, remembered: { ...r, speedUp: 40 } })
    expect(Rpc.sessionPatch({ "speed-limit-up-enabled": true }, s, { ...r, speedUp: 40 })).toMatchObject({ patch: { uploadLimit: 40_000 } })
    expect(Rpc.sessionPatch({ "speed-limit-down-enabled": false }, { ...s, downloadLimit: 5000 }, r)).toMatchObject({ patch: { downloadLimit: 0 } })
    expect(Rpc.sessionPatch({ seedRatioLimit: 1.5, seedRatioLimited: true, "download-queue-size": 2, encryption: "required" }, s, r))
      .toMatchObject({ patch: { seedRatio: 1.5, maxActiveDownloads: 2, encryption: "require" } })
    expect(Rpc.sessionPatch({ seedRatioLimited: false }, { ...s, seedRatio: 2 }, r)).toMatchObject({ patch: { seedRatio: null } })
    // a feature we lack may be "set" to the value we report; anything else is refused, as are read-only keys
    expect(Rpc.sessionPatch({ "utp-enabled": false, "no-such-key": 1 }, s, r)).toEqual({ _tag: "Patch", patch: {}, remembered: r })
    const refused = Rpc.sessionPatch({ "utp-enabled": true, version: "x", "peer-port": -1 }, s, r)
    expect(refused._tag).toBe("Refused")
    expect(refused._tag === "Refused" && refused.problems.length).toBe(3)
    // LSD, uTP and port mapping report what the daemon runs with; repeating that is accepted, changing it is not
    expect(Rpc.sessionArguments({ settings: s, remembered: r, version: "v", sessionId: "x", configDir: "", freeSpace: 0 }))
      .toMatchObject({ "lpd-enabled": true, "utp-enabled": false, "port-forwarding-enabled": false })
    expect(Rpc.sessionArguments({ settings: { ...s, transport: "both" }, remembered: r, version: "v", sessionId: "x", configDir: "", freeSpace: 0 }))
      .toMatchObject({ "utp-enabled": true })
    expect(Rpc.sessionPatch({ "lpd-enabled": true, "port-forwarding-enabled": false }, s, r)._tag).toBe("Patch")
    const fixed = Rpc.sessionPatch({ "lpd-enabled": false, "port-forwarding-enabled": true }, s, r)
    expect(fixed._tag === "Refused" && fixed.problems).toEqual([
      expect.stringMatching(/^lpd-enabled cannot be changed/),
      expect.stringMatching(/^port-forwarding-enabled cannot be changed/)
    ])
  })

  it("torrent-set: per-torrent limits and ratio goal; file lists, empty meaning every file", () => {
    const none: TorrentInfo.TorrentOptions = { downloadLimit: null, uploadLimit: null, seedRatio: null, seedTime: null, maxPeers: null }
    const kept = { down: 100, up: 100 }
    expect(Rpc.torrentOptions({ downloadLimit: 50, downloadLimited: true }, none, kept)).toEqual({ downloadLimit: 50_000 })
    expect(Rpc.torrentOptions({ downloadLimit: 50 }, none, kept)).toEqual({})
    expect(Rpc.torrentOptions({ downloadLimit: 50 }, { ...none, downloadLimit: 1000 }, kept)).toEqual({ downloadLimit: 50_000 })
    expect(Rpc.torrentOptions({ uploadLimited: false }, { ...none, uploadLimit: 1000 }, kept)).toEqual({ uploadLimit: null })
    expect(Rpc.torrentOptions({ seedRatioLimit: 3, seedRatioMode: 1, "peer-limit": 7 }, none, kept)).toEqual({ seedRatio: 3, maxPeers: 7 })
    expect(Rpc.torrentOptions({ seedRatioMode: 0 }, { ...none, seedRatio: 3 }, kept)).toEqual({ seedRatio: null })
    expect(Rpc.fileChanges({ "files-unwanted": [], "priority-high": [1] }, 3)).toEqual({ unwanted: [0, 1, 2], priorityHigh: [1] })
    expect(Rpc.fileChanges({ downloadLimit: 1 }, 3)).toBeUndefined()
    expect(Rpc.unsupportedTorrentSet({ location: "/x", seedRatioMode: 2, bandwidthPriority: 0 })).toHaveLength(2)
    expect(Rpc.addFileOptions({ "files-unwanted": [0, 1, 2], "files-wanted": [1], "priority-low": [2] }, undefined))
      .toEqual({ unwanted: [0, 2], priorityLow: [2] })
  })
})

describe("over HTTP", () => {
  it.scopedLive("409 with the session id, then answers with it (both paths), echoing tag; a wrong id is a 409 again", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      const { id, response, json } = yield* rpcWithId(port, { method: "session-get", tag: 7, arguments: { fields: ["version", "rpc-version"] } })
      expect(id).toMatch(/^[A-Za-z0-9_-]{32}$/)
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toMatch(/^application\/json/)
      expect(json).toEqual({ arguments: { version: expect.stringMatching(/^3\.00 \(effect-torrent /), "rpc-version": 16 }, result: "success", tag: 7 })
      const slash = yield* raw(port, {
        method: "POST",
        path: "/transmission/rpc/",
        headers: { "x-transmission-session-id": id },
        body: JSON.stringify({ method: "session-stats" })
      })
      expect(slash.json()).toMatchObject({ result: "success", arguments: { torrentCount: 0 } })
      expect((yield* rpc(port, { method: "session-stats" }, { "x-transmission-session-id": "stale" })).status).toBe(409)
      const unknown = yield* rpc(port, { method: "no-such-method", tag: 1 }, { "x-transmission-session-id": id })
      expect(unknown.json()).toEqual({ arguments: {}, result: "method name not recognized", tag: 1 })
      const garbage = yield* raw(port, { method: "POST", path: "/transmission/rpc", headers: { "x-transmission-session-id": id }, body: "{nope" })
      expect(garbage.status).toBe(400)
      const get = yield* raw(port, { path: "/transmission/rpc", headers: { "x-transmission-session-id": id } })
      expect(get.status).toBe(405)
    }))

  it.scopedLive("credentials first (401 with a Basic challenge), then the handshake; Host and Origin checks apply", () =>
    Effect.gen(function*() {
      const auth = yield* Auth.addUser(Auth.empty, "alice", "pass:word")
      const { port } = yield* start({ auth })
      const none = yield* rpc(port, { method: "session-get" })
      expect(none.status).toBe(401)
      expect(String(none.headers["www-authenticate"])).toMatch(/Basic realm=/)
      const basic = { authorization: `Basic ${Buffer.from("alice:pass:word").toString("base64")}` }
      const wrong = yield* rpc(port, { method: "session-get" }, { authorization: `Basic ${Buffer.from("alice:nope").toString("base64")}` })
      expect(wrong.status).toBe(401)
      const { json } = yield* rpcWithId(port, { method: "session-get", arguments: { fields: ["rpc-version"] } }, basic)
      expect(json).toEqual({ arguments: { "rpc-version": 16 }, result: "success" })
      expect((yield* rpc(port, { method: "session-get" }, { ...basic, host: "evil.example" })).status).toBe(421)
      expect((yield* rpc(port, { method: "session-get" }, { ...basic, origin: "https://evil.example" })).status).toBe(403)
    }))

  it.scopedLive("torrent-get objects and table, ids by hash and recently-active with removed ids", () =>
    Effect.gen(function*() {
      const { port, fake } = yield* start()
      const a = yield* fake.seed({ name: "alpha", files: [{ path: "alpha/x.bin", data: pattern(0, 40_000) }, { path: "alpha/y.bin", data: pattern(1, 10) }] })
      const b = yield* fake.seed({ name: "beta", files: [{ path: "beta.bin", data: pattern(2, 5) }], paused: true })
      const { id } = yield* rpcWithId(port, { method: "session-stats" })
      const call = (body: unknown) => Effect.map(rpc(port, body, { "x-transmission-session-id": id }), (r) => r.json() as { result: string; arguments: Record<string, unknown> })
      const objects = yield* call({ method: "torrent-get", arguments: { fields: ["id", "name", "hashString", "status", "files", "fileStats", "wanted", "priorities", "totalSize"] } })
      expect(objects.arguments["torrents"]).toEqual([
        {
          id: a.id, name: "alpha", hashString: a.infoHash, status: 4, totalSize: 40_010,
          files: [{ bytesCompleted: 40_000, length: 40_000, name: "alpha/x.bin" }, { bytesCompleted: 10, length: 10, name: "alpha/y.bin" }],
          fileStats: [{ bytesCompleted: 40_000, priority: 0, wanted: true }, { bytesCompleted: 10, priority: 0, wanted: true }],
          wanted: [1, 1],
          priorities: [0, 0]
        },
        {
          id: b.id, name: "beta", hashString: b.infoHash, status: 0, totalSize: 5,
          files: [{ bytesCompleted: 5, length: 5, name: "beta.bin" }],
          fileStats: [{ bytesCompleted: 5, priority: 0, wanted: true }],
          wanted: [1],
          priorities: [0]
        }
      ])
      const table = yield* call({ method: "torrent-get", arguments: { format: "table", ids: [b.infoHash.toUpperCase()], fields: ["id", "name"] } })
      expect(table.arguments["torrents"]).toEqual([["id", "name"], [b.id, "beta"]])
      yield* fake.remove(b.id)
      const recent = yield* call({ method: "torrent-get", arguments: { ids: "recently-active", fields: ["id"] } })
      expect(recent.arguments).toEqual({ torrents: [{ id: a.id }], removed: [b.id] })
    }))
})

describe("queues and session-close", () => {
  it.scopedLive("queue-move-top/up/down/bottom and torrent-set queuePosition move torrents in the session's queue", () =>
    Effect.gen(function*() {
      const { port, fake } = yield* start()
      for (const name of ["a", "b", "c", "d"]) yield* fake.seed({ name, files: [{ path: `${name}.bin`, data: pattern(0, 10) }] })
      const { id } = yield* rpcWithId(port, { method: "session-stats" })
      const call = (method: string, args: Record<string, unknown>) =>
        Effect.map(rpc(port, { method, arguments: args }, { "x-transmission-session-id": id }), (r) => (r.json() as { result: string }).result)
      const order = Effect.map(fake.list, (ts) => [...ts].sort((x, y) => x.queuePosition - y.queuePosition).map((t) => t.name).join(""))
      expect(yield* order).toBe("abcd")
      expect(yield* call("queue-move-top", { ids: [3] })).toBe("success")
      expect(yield* order).toBe("cabd")
      expect(yield* call("queue-move-bottom", { ids: 1 })).toBe("success")
      expect(yield* order).toBe("cbda")
      expect(yield* call("queue-move-up", { ids: [4] })).toBe("success")
      expect(yield* order).toBe("cdba")
      expect(yield* call("queue-move-down", { ids: [3] })).toBe("success")
      expect(yield* order).toBe("dcba")
      expect(yield* call("torrent-set", { ids: [1], queuePosition: 0 })).toBe("success")
      expect(yield* order).toBe("adcb")
      expect(yield* call("torrent-set", { ids: [1], queuePosition: 2 })).toBe("success")
      expect(yield* order).toBe("dcab")
      expect(yield* call("torrent-set", { ids: [1], location: "/x", seedRatioMode: 2 })).toMatch(/^not supported: location .*; seedRatioMode 2/)
    }))

  it.scopedLive("session-close runs what the embedder gave, after answering; without it, refused", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<void>()
      const { port } = yield* start({ transmission: { onSessionClose: Deferred.succeed(closed, undefined) } })
      const { json } = yield* rpcWithId(port, { method: "session-close", tag: 3 })
      expect(json).toEqual({ arguments: {}, result: "success", tag: 3 })
      yield* Deferred.await(closed).pipe(Effect.timeout("10 seconds"))
      const other = yield* start()
      expect((yield* rpcWithId(other.port, { method: "session-close" })).json.result).toMatch(/session-close is not enabled/)
      const off = yield* start({ transmission: false })
      expect((yield* rpc(off.port, { method: "session-get" })).status).toBe(404)
    }))
})

describe("torrent-add's sources and options", () => {
  it.scopedLive("metainfo with options, a duplicate, a magnet, a URL, a .torrent path; other paths and bad input refused", () =>
    Effect.gen(function*() {
      const { port, fake } = yield* start()
      const { id } = yield* rpcWithId(port, { method: "session-stats" })
      const call = (args: Record<string, unknown>) =>
        Effect.map(rpc(port, { method: "torrent-add", arguments: args }, { "x-transmission-session-id": id }), (r) =>
          r.json() as { result: string; arguments: Record<string, { id: number; name: string; hashString: string }> })
      const bytes = torrentBytes("gamma")
      const first = yield* call({
        metainfo: Buffer.from(bytes).toString("base64"),
        "download-dir": "/elsewhere",
        paused: true,
        "files-unwanted": [0, 2],
        "files-wanted": [2],
        "priority-high": [1],
        "peer-limit": 12
      })
      expect(first).toEqual({ result: "success", arguments: { "torrent-added": { id: 1, name: expect.any(String), hashString: expect.stringMatching(/^[0-9a-f]{40}$/) } } })
      expect(fake.callsOf("add")[0]).toEqual([
        { _tag: "Metainfo", bytes: new Uint8Array(bytes) },
        { downloadDir: "/elsewhere", paused: true, unwanted: [0], priorityHigh: [1], options: { maxPeers: 12 } }
      ])
      const again = yield* call({ metainfo: Buffer.from(bytes).toString("base64") })
      expect(again.arguments["torrent-duplicate"]?.id).toBe(1)

      const hash = "ab".repeat(20)
      const magnet = yield* call({ filename: `magnet:?xt=urn:btih:${hash}&dn=film` })
      expect(magnet.arguments["torrent-added"]).toEqual({ id: 2, name: "film", hashString: hash })
      yield* call({ filename: "http://127.0.0.1:1/x.torrent" })
      expect(fake.callsOf("add")[3]?.[0]).toEqual({ _tag: "Url", url: "http://127.0.0.1:1/x.torrent" })

      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-tradd-"))
      const file = Path.join(dir, "delta.torrent")
      Fs.writeFileSync(file, torrentBytes("delta"))
      Fs.writeFileSync(Path.join(dir, "secret.txt"), "d4:name1:xe")
      const fromPath = yield* call({ filename: file })
      expect(fromPath.result).toBe("success")
      expect(fake.callsOf("add")[4]?.[0]).toEqual({ _tag: "Metainfo", bytes: new Uint8Array(torrentBytes("delta")) })
      const other = yield* call({ filename: Path.join(dir, "secret.txt") })
      expect(other.result).toMatch(/expected a magnet link, an http\(s\) URL or the path of a \.torrent file/)
      const missing = yield* call({ filename: Path.join(dir, "missing.torrent") })
      expect(missing.result).toMatch(/^cannot read .*missing\.torrent/)
      Fs.rmSync(dir, { recursive: true, force: true })

      expect((yield* call({})).result).toBe("torrent-add needs a filename or metainfo")
      expect((yield* call({ metainfo: "not base64!" })).result).toBe("metainfo is not base64")
      expect((yield* call({ metainfo: Buffer.from("garbage").toString("base64") })).result).toMatch(/not a \.torrent/)
      expect((yield* call({ filename: file, cookies: "a=b" })).result).toMatch(/cookies are not supported/)
      expect((yield* call({ filename: 7 })).result).toMatch(/^invalid arguments: filename/)
      expect(fake.callsOf("add").length).toBe(6)
    }))
})

describe.runIf(shouldRun("transmission-remote over the fake session"))("transmission-remote 3.00 over the fake session", () => {
  it.scopedLive("-l, -t N -i, -f, -si, -st, by hash", () =>
    Effect.gen(function*() {
      const { port, fake } = yield* start()
      const a = yield* fake.seed({ name: "alpha", files: [{ path: "alpha/x.bin", data: pattern(0, 40_000) }, { path: "alpha/y.bin", data: pattern(1, 10) }] })
      yield* fake.seed({ name: "beta", files: [{ path: "beta.bin", data: pattern(2, 5) }], paused: true })

      const rows = listRows(yield* remoteOk(port, ["-l"]))
      expect(rows.map((r) => [r[0], r[1], r.at(-2), r.at(-1)])).toEqual([["1", "0%", "Downloading", "alpha"], ["2", "0%", "Stopped", "beta"]])

      const info = fieldsOf(yield* remoteOk(port, ["-t", "1", "-i"]))
      expect(info.get("Id")).toBe("1")
      expect(info.get("Name")).toBe("alpha")
      expect(info.get("Hash")).toBe(a.infoHash)
      // the fake's torrents have nothing verified yet, a peer count of 0 and one peer listed, sending
      expect(info.get("State")).toBe("Downloading")
      expect(info.get("Peers")).toBe("connected to 0, uploading to 0, downloading from 1")
      expect(info.get("Location")).toBe("/downloads")
      expect(info.get("Percent Done")).toBe("0.0%")
      expect(info.get("Total size")).toBe("40.01 kB (40.01 kB wanted)")
      expect(info.get("Public torrent")).toBe("Yes")
      expect(info.get("Ratio Limit")).toBe("Default")
      expect(info.get("Peer limit")).toBe("50")
      expect(fieldsOf(yield* remoteOk(port, ["-t", a.infoHash, "-i"])).get("Name")).toBe("alpha")

      const files = yield* remoteOk(port, ["-t", "1", "-f"])
      expect(files).toContain("alpha (2 files):")
      expect(files).toMatch(/0: 100% Normal\s+Yes\s+40\.00 kB\s+alpha\/x\.bin/)
      expect(files).toMatch(/1: 100% Normal\s+Yes\s+0\.01 kB\s+alpha\/y\.bin/)

      const si = fieldsOf(yield* remoteOk(port, ["-si"]))
      expect(si.get("RPC version")).toBe("16")
      expect(si.get("Download directory")).toBe("/downloads")
      expect(si.get("Listenport")).toBe("6881")
      expect(si.get("Peer limit")).toBe("200")
      expect(si.get("Default seed ratio limit")).toBe("Unlimited")
      expect(si.get("Encryption")).toBe("preferred")
      expect(yield* remoteOk(port, ["-st"])).toContain("CURRENT SESSION")
    }))

  it.scopedLive("credentials: -n user:password (a ':' in the password too); without them, or wrong, it fails", () =>
    Effect.gen(function*() {
      const auth = yield* Auth.addUser(Auth.empty, "alice", "open:sesame")
      const { port, fake } = yield* start({ auth })
      yield* fake.seed({ name: "alpha", files: [{ path: "alpha.bin", data: pattern(0, 10) }] })
      expect(listRows(yield* remoteOk(port, ["-n", "alice:open:sesame", "-l"])).map((r) => r.at(-1))).toEqual(["alpha"])
      const none = yield* remote(port, ["-l"])
      expect([none.code, none.stderr]).toEqual([1, expect.stringMatching(/Unexpected response: .*unauthorized/i)])
      expect((yield* remote(port, ["-n", "alice:wrong", "-l"])).code).toBe(1)
    }))

  it.scopedLive("stop, start, verify, file selection and priorities, limits, session settings, remove; unsupported methods fail", () =>
    Effect.gen(function*() {
      const { port, fake } = yield* start()
      yield* fake.seed({ name: "alpha", files: [{ path: "alpha/x.bin", data: pattern(0, 100) }, { path: "alpha/y.bin", data: pattern(1, 10) }, { path: "alpha/z.bin", data: pattern(2, 10) }] })
      yield* remoteOk(port, ["-t", "1", "-S"])
      expect(fake.callsOf("pause")).toEqual([[1]])
      yield* remoteOk(port, ["-t", "1", "-s"])
      expect(fake.callsOf("resume")).toEqual([[1, undefined]])
      yield* remoteOk(port, ["-t", "1", "-v"])
      expect(fake.callsOf("verify")).toEqual([[1]])
      yield* remoteOk(port, ["-t", "1", "--reannounce"])
      expect(fake.callsOf("reannounce")).toEqual([[1]])

      yield* remoteOk(port, ["-t", "1", "-G", "1,2", "-ph", "0"])
      const files = yield* remoteOk(port, ["-t", "1", "-f"])
      expect(files).toMatch(/0: 100% High\s+Yes/)
      expect(files).toMatch(/1: 100% Normal\s+No/)
      expect(files).toMatch(/2: 100% Normal\s+No/)
      yield* remoteOk(port, ["-t", "1", "-g", "all"])
      expect(yield* remoteOk(port, ["-t", "1", "-f"])).not.toMatch(/\sNo\s/)

      yield* remoteOk(port, ["-t", "1", "-d", "250", "-sr", "1.5", "-pr", "9"])
      const detail = yield* fake.get(1)
      expect(detail.options).toMatchObject({ downloadLimit: 250_000, seedRatio: 1.5, maxPeers: 9 })
      const info = fieldsOf(yield* remoteOk(port, ["-t", "1", "-i"]))
      expect([info.get("Download Limit"), info.get("Ratio Limit"), info.get("Peer limit")]).toEqual(["250 kB/s", "1.5", "9"])
      yield* remoteOk(port, ["-t", "1", "-D"])
      expect((yield* fake.get(1)).options.downloadLimit).toBeNull()

      yield* remoteOk(port, ["-u", "80", "-gsr", "3", "-pr", "77", "-er"])
      expect(yield* SubscriptionRef.get(fake.settings)).toMatchObject({ uploadLimit: 80_000, seedRatio: 3, maxConnections: 77, encryption: "require" })
      expect(fieldsOf(yield* remoteOk(port, ["-si"])).get("Upload speed limit")).toMatch(/^80 kB\/s \(Enabled limit/)

      for (const [args, message] of [
        [["-pt"], /port-test is not supported/],
        [["--blocklist-update"], /blocklist-update is not supported/],
        [["-t", "1", "--move", "/elsewhere"], /torrent-set-location is not supported/],
        [["--utp"], /utp-enabled cannot be changed/],
        [["--exit"], /session-close is not enabled/]
      ] as const) {
        const o = yield* remote(port, args)
        expect([args, o.code, o.stdout]).toEqual([args, 1, expect.stringMatching(message)])
      }

      yield* remoteOk(port, ["-t", "1", "--remove-and-delete"])
      expect(fake.callsOf("remove")).toEqual([[1, { deleteData: true }]])
      expect(listRows(yield* remoteOk(port, ["-l"]))).toEqual([])
    }))
})

const PYTHON_CLIENT = `
import sys, json, transmissionrpc
port, torrent = int(sys.argv[1]), sys.argv[2]
c = transmissionrpc.Client("127.0.0.1", port=port)
out = {}
s = c.get_session()
out["session"] = [s.version, c.rpc_version, s.download_dir, s.peer_port, s.speed_limit_down_enabled]
out["list"] = sorted([t.id, t.name, t.status, t.progress] for t in c.get_torrents())
t = c.add_torrent("file://" + torrent, paused=True)
out["added"] = [t.id, t.name]
out["paused"] = c.get_torrent(t.id).status
c.start_torrent(t.id)
out["started"] = c.get_torrent(t.id).status
files = c.get_files(1)[1]
out["files"] = sorted([i, f["name"], f["size"], f["selected"], f["priority"]] for i, f in files.items())
c.change_torrent(1, files_unwanted=[1], priority_high=[0], uploadLimit=70, uploadLimited=True)
out["changed"] = sorted([i, f["selected"], f["priority"]] for i, f in c.get_files(1)[1].items())
out["uploadLimit"] = c.get_torrent(1).uploadLimit
c.set_session(speed_limit_down=123, speed_limit_down_enabled=True)
out["speedDown"] = [c.get_session().speed_limit_down, c.get_session().speed_limit_down_enabled]
c.stop_torrent(1)
c.verify_torrent(1)
c.remove_torrent(t.id, delete_data=True)
out["after"] = sorted(x.id for x in c.get_torrents())
print(json.dumps(out))
`

const pythonClient = (() => {
  try {
    execFileSync("/usr/bin/python3", ["-c", "import transmissionrpc"], { stdio: "ignore" })
    return true
  } catch {
    if (!process.env["CI"]) console.warn("\n!!! SKIPPING Python's transmissionrpc: apt-get install python3-transmissionrpc !!!\n")
    return process.env["CI"] !== undefined
  }
})()

describe.runIf(pythonClient)("Python's transmissionrpc (Debian's python3-transmissionrpc 0.11) over the fake session", () => {
  it.scopedLive("session, list, add a file (paused), start, files and their selection, limits, stop, verify, remove", () =>
    Effect.gen(function*() {
      const { port, fake } = yield* start()
      yield* fake.seed({ name: "alpha", files: [{ path: "alpha/x.bin", data: pattern(0, 100) }, { path: "alpha/y.bin", data: pattern(1, 10) }] })
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-trpc-"))
      const file = Path.join(dir, "beta.torrent")
      Fs.writeFileSync(file, torrentBytes("beta"))
      const run = yield* Effect.promise(() =>
        new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
          execFile("/usr/bin/python3", ["-c", PYTHON_CLIENT, String(port), file], { timeout: 30_000 }, (error, out, err) =>
            resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, out, err }))
        })
      )
      Fs.rmSync(dir, { recursive: true, force: true })
      expect({ code: run.code, err: run.code === 0 ? "" : run.err }).toEqual({ code: 0, err: "" })
      expect(JSON.parse(run.out)).toEqual({
        session: ["3.00 (effect-torrent 0.1.0)", 16, "/downloads", 6881, false],
        list: [[1, "alpha", "downloading", 0]],
        added: [2, expect.stringMatching(/^torrent-/)], // the fake names metainfo adds itself
        paused: "stopped",
        started: "download pending",
        files: [[0, "alpha/x.bin", 100, true, "normal"], [1, "alpha/y.bin", 10, true, "normal"]],
        changed: [[0, true, "high"], [1, false, "normal"]],
        uploadLimit: 70,
        speedDown: [123, true],
        after: [1]
      })
      expect(fake.callsOf("pause")).toEqual([[1]])
      expect(fake.callsOf("verify")).toEqual([[1]])
      expect(fake.callsOf("remove")).toEqual([[2, { deleteData: true }]])
    }))
})
