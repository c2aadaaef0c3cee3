/**
 * Real leechers downloading a multi-file torrent that effect-torrent seeds on 127.0.0.1 (flags from PEERS.md):
 * - aria2c finds us through opentracker (our seeder announces its listening port) and dials our listener;
 * - python3-libtorrent (through `/usr/bin/python3`) is told our address with `connect_peer`;
 * - transmission-daemon (driven by RPC) announces to opentracker first; our seeder learns its address from the
 *   tracker and dials it (Transmission ignores 127.x peers a tracker hands out, PEERS.md).
 * Results are compared by SHA-256. Absent binaries skip loudly outside CI; children are killed by PID; every wait
 * is bounded.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import type { ChildProcess } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { runChild } from "../support/children.ts"
import { writeData } from "../support/data.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as TransmissionDaemon from "../support/transmissionDaemon.ts"
import { freePort, shouldRun } from "../support/realSeeders.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"

const children: Array<ChildProcess> = []
const trackers: Array<Opentracker.Opentracker> = []
const daemons: Array<TransmissionDaemon.Daemon> = []
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
  await Promise.all(daemons.map((d) => d.stop()))
  await Promise.all(trackers.map((t) => t.stop()))
})

const payload = build({
  name: "upload-interop",
  pieceLength: 262144,
  files: [
    { path: ["big.bin"], length: 5_000_001 },
    { path: ["docs", "readme.txt"], length: 1_234 },
    { path: ["empty.txt"], length: 0 },
    { path: ["docs", "tail.bin"], length: 700_777 }
  ]
})

const tmp = (prefix: string) => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))

/** Polls the tracker's scrape (bounded, 10 s) until its answer for `built` matches `pattern`. */
const untilScrape = async (tracker: Opentracker.Opentracker, built: Built, pattern: RegExp, who: string) => {
  const hash = Bytes.toHex(built.metainfo.infoHash).replace(/../g, "%$&")
  const url = `http://127.0.0.1:${tracker.port}/scrape?info_hash=${hash}`
  for (let i = 0; i < 200; i++) {
    const body = await fetch(url).then((r) => r.text(), () => "")
    if (pattern.test(body)) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${who} never showed up at the tracker`)
}

/** The tracker counts a seeder for `built`. */
const untilSeeded = (tracker: Opentracker.Opentracker, built: Built) =>
  untilScrape(tracker, built, /8:completei[1-9]/, "our seeder")

/** Every file of `built` under `dir`, byte for byte. `emptyMayBeMissing`: Transmission 3.00 never creates empty files. */
const sameFiles = (built: Built, dir: string, emptyMayBeMissing = false) =>
  built.metainfo.files.forEach((f, i) => {
    if (f.pad) return
    if (emptyMayBeMissing && f.length === 0 && !Fs.existsSync(Path.join(dir, ...f.path))) return
    const got = createHash("sha256").update(Fs.readFileSync(Path.join(dir, ...f.path))).digest("hex")
    expect(got).toBe(createHash("sha256").update(built.files[i]!).digest("hex"))
  })

/** Our seeder: a client with a live tracker client and a listener on 127.0.0.1. */
const ourSeeder = (built: Built, trackers: boolean) =>
  Effect.gen(function*() {
    const data = tmp("et-up-seed-")
    writeData(built, data)
    const layer = Client.layerWith({ listen: { host: "127.0.0.1", port: 0 } }).pipe(
      Layer.provide(TrackerLive.layer()),
      Layer.provide(Hasher.layerInline)
    )
    const context = yield* Layer.build(layer)
    const d = yield* Client.seed(built.metainfo, { dataDir: data, trackers }).pipe(Effect.provide(context))
    const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(context))
    return { port: listener!.address.port, download: d }
  })

const LEECH_SCRIPT = `
import libtorrent as lt, sys, time
torrent, save, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ses = lt.session({"listen_interfaces": "127.0.0.1:0", "allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "min_reconnect_time": 1})
h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
h.connect_peer(("127.0.0.1", port))
deadline = time.time() + 60
while time.time() < deadline:
    s = h.status()
    if s.is_seeding or s.state == lt.torrent_status.seeding:
        print("done", s.total_payload_download, flush=True)
        sys.exit(0)
    if s.num_peers == 0: h.connect_peer(("127.0.0.1", port))
    time.sleep(0.2)
print("timeout", h.status().progress, flush=True)
sys.exit(1)
`

describe.runIf(shouldRun("libtorrent"))("upload interop: python3-libtorrent leecher", () => {
  it.scopedLive("downloads a multi-file torrent effect-torrent seeds, byte-identical", () =>
    Effect.gen(function*() {
      const seeder = yield* ourSeeder(payload, false)
      const dir = tmp("et-up-lt-")
      const torrent = Path.join(dir, "t.torrent")
      Fs.writeFileSync(torrent, payload.bytes)
      Fs.writeFileSync(Path.join(dir, "leech.py"), LEECH_SCRIPT)
      const out = Path.join(dir, "out")
      const r = yield* Effect.promise(() =>
        runChild(children, "/usr/bin/python3", [Path.join(dir, "leech.py"), torrent, out, String(seeder.port)], 70_000)
      )
      expect(r.log).toMatch(/^done/)
      expect(r.code).toBe(0)
      sameFiles(payload, out)
      expect(seeder.download.stats().uploaded).toBeGreaterThanOrEqual(payload.payload.length)
      Fs.rmSync(dir, { recursive: true, force: true })
    }), 90_000)
})

describe.runIf(shouldRun("aria2c") && Opentracker.shouldRun("upload interop with aria2c"))(
  "upload interop: aria2c leecher through opentracker",
  () => {
    it.scopedLive("downloads a multi-file torrent effect-torrent seeds, byte-identical", () =>
      Effect.gen(function*() {
        const tracker = yield* Effect.promise(() => Opentracker.start([Bytes.toHex(payload.metainfo.infoHash)]))
        trackers.push(tracker)
        const built = Tracked.withAnnounce(payload, tracker.httpUrl)
      expect(Tracked.hexOf(built)).toBe(Tracked.hexOf(payload))
        expect(Tracked.hexOf(built)).toBe(Tracked.hexOf(payload))
        const seeder = yield* ourSeeder(built, true)
        // Our announce reached the tracker (it counts one seeder) before aria2c asks it for peers.
        yield* Effect.promise(() => untilSeeded(tracker, built))
        const dir = tmp("et-up-aria2-")
        const torrent = Path.join(dir, "t.torrent")
        Fs.writeFileSync(torrent, built.bytes)
        const out = Path.join(dir, "out")
        const port = yield* Effect.promise(() => freePort())
        const r = yield* Effect.promise(() =>
          runChild(children, "aria2c", [
            `--dir=${out}`,
            "--seed-time=0",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--summary-interval=0",
            "--file-allocation=none",
            `--listen-port=${port}`,
            torrent
          ], 70_000)
        )
        expect(r.code, r.log).toBe(0)
        sameFiles(built, out)
        expect(seeder.download.stats().uploaded).toBeGreaterThanOrEqual(built.payload.length)
        Fs.rmSync(dir, { recursive: true, force: true })
      }), 90_000)
  }
)

describe.runIf(
  TransmissionDaemon.shouldRun("upload interop with transmission") &&
    Opentracker.shouldRun("upload interop with transmission")
)("upload interop: transmission-daemon leecher through opentracker", () => {
  it.scopedLive("downloads a multi-file torrent effect-torrent seeds, byte-identical", () =>
    Effect.gen(function*() {
      const tracker = yield* Effect.promise(() => Opentracker.start([Bytes.toHex(payload.metainfo.infoHash)]))
      trackers.push(tracker)
      const built = Tracked.withAnnounce(payload, tracker.httpUrl)
      expect(Tracked.hexOf(built)).toBe(Tracked.hexOf(payload))
      const daemon = yield* Effect.promise(() => TransmissionDaemon.start())
      daemons.push(daemon)
      const dir = tmp("et-up-tr-")
      const out = Path.join(dir, "out")
      const id = yield* Effect.promise(() => daemon.add(built.bytes, out))
      // Transmission announced (the tracker counts a leecher), so our announce returns its address and we dial it.
      yield* Effect.promise(() => untilScrape(tracker, built, /10:incompletei[1-9]/, "transmission"))
      const seeder = yield* ourSeeder(built, true)
      const done = yield* Effect.promise(() =>
        daemon.waitFor(id, (s) => s.leftUntilDone === 0 && s.percentDone === 1, 100_000)
      )
      expect(done.error, done.errorString).toBe(0)
      // A clean stop flushes Transmission's write cache and closes its files before the bytes are compared.
      yield* Effect.promise(() => daemon.stop())
      sameFiles(built, out, true)
      expect(seeder.download.stats().uploaded).toBeGreaterThanOrEqual(built.payload.length)
      Fs.rmSync(dir, { recursive: true, force: true })
    }), 150_000)
})
