/**
 * Issue 14, as a user runs it: the built CLI's `effect-torrent daemon` (a child process), real seeders, the typed
 * client (RemoteClient.ts) and the remote CLI.
 *
 * 1. Twenty torrents at once, ten seeded by python3-libtorrent and ten by aria2c, every seeder announcing to a real
 *    opentracker and capped in upload so that the downloads take a while. Half-way through (by the bytes the
 *    daemon reports verified), the daemon is killed with SIGKILL and started again on the same directories: every
 *    torrent comes back and finishes, the files equal the seeders' byte for byte, and what it downloads after the
 *    restart is no more than what was still missing when it was killed (plus the pieces it had in flight: two per
 *    torrent) — verified pieces are not fetched again. Then SIGTERM stops it cleanly (exit 0: it did not need the
 *    CLI's 10 s deadline), and a third start finds all twenty complete, seeding, with nothing left to fetch.
 * 2. Streaming: a file of a torrent whose seeder sends slowly is read with `curl -r` near its end, then at its start
 *    (seeks), while the torrent is still downloading (its progress, asked right after, is below 1); the bytes equal
 *    the seeder's; `ffprobe` reads a real media file over HTTP (it seeks to the container's index) before the
 *    download completes.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ChildProcess, execFile, execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { tempDir } from "../support/download.ts"
import * as Daemon from "../support/daemon.ts"
import { bundle, cliEnv, exec } from "../support/cli.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"

const KiB = 1024
const MiB = 1024 * KiB
const PIECE = 64 * KiB
const COUNT = 20

const enabled = Real.shouldRun("libtorrent") && Real.shouldRun("aria2c") && Opentracker.shouldRun("daemon interop")

const children: Array<ChildProcess> = []
const stops: Array<() => Promise<void>> = []
const dirs: Array<string> = []
afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
  }
  await Promise.all(stops.map((s) => s()))
  for (const d of dirs) Fs.rmSync(d, { recursive: true, force: true })
})

const dir = (name: string) => {
  const d = tempDir(name)
  dirs.push(d)
  return d
}

/** Every data file of `b` under `out` equals the seeder's copy under `seederDir`; what differs, else []. */
const differences = (b: Built, seederDir: string, out: string): Array<string> =>
  b.metainfo.files.flatMap((f) => {
    if (f.pad) return []
    const mine = Path.join(out, ...f.path)
    if (!Fs.existsSync(mine)) return [`${mine}: missing`]
    return Fs.readFileSync(mine).equals(Fs.readFileSync(Path.join(seederDir, ...f.path))) ? [] : [`${mine}: differs`]
  })

describe.runIf(enabled)("the daemon (built CLI) with real seeders", () => {
  const torrents: Array<Built> = []
  const seeders: Array<Real.RealSeeder> = []
  let tracker: Opentracker.Opentracker

  beforeAll(async () => {
    // Odd sizes around 3 MiB; every third torrent has several files in folders.
    const pre = Array.from({ length: COUNT }, (_, i) =>
      build({
        name: `t${String(i).padStart(2, "0")}${i % 3 === 0 ? "" : ".bin"}`,
        pieceLength: PIECE,
        files: i % 3 === 0
          ? [
            { path: ["a", "one.bin"], length: MiB + 1234 * i },
            { path: ["a", "two.bin"], length: 777 + i },
            { path: ["b", "three.bin"], length: 2 * MiB - 99 * i }
          ]
          : [{ path: ["-"], length: 3 * MiB + 4567 * i }],
        single: i % 3 !== 0
      }))
    tracker = await Opentracker.start(pre.map(Tracked.hexOf))
    stops.push(tracker.stop)
    for (const b of pre) torrents.push(Tracked.withAnnounce(b, tracker.httpUrl))
    // 192 KiB/s each: ~16 s per torrent, all in parallel.
    const started = await Promise.all(torrents.map((b, i) =>
      (i % 2 === 0 ? Real.libtorrent : Real.aria2)(b, { upLimit: 192 * KiB })
    ))
    for (const s of started) {
      seeders.push(s)
      stops.push(s.stop)
    }
    await Promise.all(torrents.map((b) => Tracked.untilSeeders(tracker.port, b, 1)))
  }, 120_000)

  it("20 torrents, kill -9 half-way, restart: all byte-identical, verified pieces not fetched again; SIGTERM is clean", async () => {
    const out = dir("daemon-out")
    const state = dir("daemon-state")
    const torrentDir = dir("daemon-torrents")
    const flags = ["--max-active-downloads", String(COUNT), "--max-active-seeds", String(COUNT)]
    const first = await Daemon.start(children, { downloadDir: out, stateDir: state, extra: flags })

    // Added through the remote CLI (one) and the typed client (the rest).
    const files = torrents.map((b, i) => {
      const p = Path.join(torrentDir, `${i}.torrent`)
      Fs.writeFileSync(p, b.bytes)
      return p
    })
    const added = await exec(process.execPath, [bundle, "add", files[0]!, "--api", first.url])
    expect(added.code, added.stderr).toBe(0)
    await Daemon.withClient(first.url, (c) =>
      Effect.forEach(torrents.slice(1), (b) => c.add({ _tag: "Metainfo", bytes: b.bytes }), { discard: true }))

    // Half-way: the bytes verified, over all torrents, at least 40% and not yet 80% of the total.
    const total = torrents.reduce((n, b) => n + b.metainfo.files.reduce((m, f) => m + f.length, 0), 0)
    const snapshot = await Daemon.until("half-way", async () => {
      const list = await Daemon.withClient(first.url, (c) => c.list)
      const have = list.reduce((n, t) => n + t.haveSize, 0)
      return list.length === COUNT && have >= 0.4 * total ? list : undefined
    }, 120_000)
    first.signal("SIGKILL")
    expect((await first.exited).signal).toBe("SIGKILL")
    const verifiedBefore = snapshot.reduce((n, t) => n + t.haveSize, 0)
    expect(verifiedBefore).toBeLessThan(total) // it really was killed in the middle

    // The same directories and ports: every torrent back, and finishing.
    const second = await Daemon.start(children, {
      downloadDir: out,
      stateDir: state,
      apiPort: first.apiPort,
      peerPort: first.peerPort,
      extra: flags
    })
    const atRestart = await Daemon.withClient(second.url, (c) => c.list)
    expect(atRestart.map((t) => t.infoHash).sort()).toEqual(torrents.map(Tracked.hexOf).sort())
    const done = await Daemon.until("all complete", async () => {
      const list = await Daemon.withClient(second.url, (c) => c.list)
      return list.every((t) => t.complete && t.state === "seeding") ? list : undefined
    }, 180_000)
    for (const [i, b] of torrents.entries()) expect(differences(b, seeders[i]!.dataDir, out)).toEqual([])

    // Downloaded by the second run, per torrent: no more than it missed at the snapshot, plus two pieces in flight.
    const stats = await Daemon.withClient(second.url, (c) => c.stats)
    for (const t of done) {
      const before = snapshot.find((s) => s.infoHash === t.infoHash)!
      const restart = atRestart.find((s) => s.infoHash === t.infoHash)!
      const fetched = t.downloaded - restart.downloaded
      expect(fetched, `${t.name}: fetched again`).toBeLessThanOrEqual(t.wantedSize - before.haveSize + 2 * PIECE)
    }
    expect(stats.downloaded).toBeLessThanOrEqual(total - verifiedBefore + COUNT * 2 * PIECE)

    // SIGTERM: a clean stop (exit 0 before the CLI's own 10 s deadline would make it 1).
    second.signal("SIGTERM")
    expect(await second.exited, second.log()).toEqual({ code: 0, signal: null })

    // And back again: all complete, seeding, nothing to fetch.
    const third = await Daemon.start(children, { downloadDir: out, stateDir: state, extra: flags })
    const again = await Daemon.until("seeding again", async () => {
      const list = await Daemon.withClient(third.url, (c) => c.list)
      return list.length === COUNT && list.every((t) => t.state === "seeding") ? list : undefined
    }, 60_000)
    expect(again.every((t) => t.complete && t.progress === 1)).toBe(true)
    const list = await exec(process.execPath, [bundle, "list", "--json", "--api", third.url])
    expect(list.code, list.stderr).toBe(0)
    expect((JSON.parse(list.stdout) as ReadonlyArray<unknown>).length).toBe(COUNT)
    third.signal("SIGTERM")
    expect(await third.exited, third.log()).toEqual({ code: 0, signal: null })
  }, 420_000)
})

const hasFfmpeg = (() => {
  try {
    execFileSync("sh", ["-c", "command -v ffmpeg && command -v ffprobe && command -v curl"], { stdio: "ignore" })
    return true
  } catch {
    if (!process.env["CI"]) console.warn("\n!!! SKIPPING the streaming test: ffmpeg/ffprobe/curl not installed !!!\n")
    return process.env["CI"] !== undefined
  }
})()

const run = (cmd: string, args: ReadonlyArray<string>, timeoutMs = 60_000) =>
  new Promise<{ code: number; stdout: Buffer; stderr: string }>((resolve) =>
    execFile(cmd, [...args], { encoding: "buffer", timeout: timeoutMs, maxBuffer: 64 * MiB, env: cliEnv }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr: stderr.toString() })))

describe.runIf(enabled && hasFfmpeg)("streaming from the daemon while it downloads", () => {
  it("curl -r seeks and ffprobe read a file still downloading, the bytes are the seeder's", async () => {
    // A real media file: 40 s of test pattern and tone, H.264/AAC in MP4 with the index at the end (no faststart),
    // so a player must seek to the end first.
    const media = dir("daemon-media")
    const mp4 = Path.join(media, "clip.mp4")
    const made = await run("ffmpeg", [
      "-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
      "-t", "40", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "1500k", "-c:a", "aac", "-shortest", mp4
    ], 120_000)
    expect(made.code, made.stderr).toBe(0)
    const bytes = new Uint8Array(Fs.readFileSync(mp4))
    const withClip = build({
      name: "movie",
      pieceLength: 256 * KiB,
      files: [{ path: ["clip.mp4"], length: bytes.length }, { path: ["readme.txt"], length: 5000 }],
      contents: [bytes, new TextEncoder().encode("x".repeat(5000))]
    })
    const seeder = await Real.libtorrent(withClip, { upLimit: 256 * KiB })
    stops.push(seeder.stop)
    const daemon = await Daemon.start(children, { downloadDir: dir("stream-out"), stateDir: dir("stream-state") })
    const added = await Daemon.withClient(daemon.url, (c) =>
      c.add({ _tag: "Metainfo", bytes: withClip.bytes }, { peers: [`127.0.0.1:${seeder.port}`] }))
    const url = `${daemon.url}/api/torrents/${added.infoHash}/files/0`
    const progress = () => Daemon.withClient(daemon.url, (c) => c.get(added.infoHash)).then((d) => d.progress)

    // A seek near the end first, then the start: each answers 206 with exactly those bytes.
    const end = bytes.length - 1
    const tail = await run("curl", ["-sS", "-f", "-r", `${end - 99_999}-${end}`, url])
    expect(tail.code, tail.stderr).toBe(0)
    expect(new Uint8Array(tail.stdout)).toEqual(bytes.subarray(end - 99_999))
    expect(await progress()).toBeLessThan(1)
    const head = await run("curl", ["-sS", "-f", "-D", "-", "-r", "0-65535", url])
    expect(head.code, head.stderr).toBe(0)
    const text = head.stdout.toString("latin1")
    expect(text).toMatch(/^HTTP\/1\.1 206/)
    expect(text).toMatch(/content-range: bytes 0-65535\//i)
    expect(text).toMatch(/content-type: video\/mp4/i)
    expect(text).toMatch(/accept-ranges: bytes/i)
    const body = head.stdout.subarray(head.stdout.indexOf("\r\n\r\n") + 4)
    expect(new Uint8Array(body)).toEqual(bytes.subarray(0, 65536))

    // ffprobe over HTTP: reads the header, seeks to the index at the end, and finds the streams.
    const probe = await run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "json", url])
    expect(probe.code, probe.stderr).toBe(0)
    const info = JSON.parse(probe.stdout.toString()) as { streams: Array<{ codec_name: string }>; format: { duration: string } }
    expect(info.streams.map((s) => s.codec_name).sort()).toEqual(["aac", "h264"])
    expect(Number(info.format.duration)).toBeGreaterThan(39)
    expect(await progress()).toBeLessThan(1)

    daemon.signal("SIGTERM")
    expect(await daemon.exited, daemon.log()).toEqual({ code: 0, signal: null })
  }, 240_000)
})
