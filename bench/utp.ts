/**
 * uTP download benchmark (not a test; issue 19): one python3-libtorrent seeder with uTP and TCP on, opentracker, a
 * random payload, and in the same run, in turn: libtorrent's own uTP-only leecher (TCP off both ways), effect-torrent's
 * CLI over uTP (`--transport utp`), and effect-torrent over TCP for reference. The sender is libtorrent's uTP in both
 * uTP cases, so the first two compare receivers.
 *
 *   npm run bench:utp -- [--size 64MiB] [--runs 3] [--clients lt-utp,effect-utp,effect-tcp,upload] [--timeout 120] [--max-load 1.0]
 *
 * `upload` is the other direction: our CLI seeds (`seed --transport utp`) and libtorrent's uTP-only leecher downloads
 * from it; its CPU and peak RSS are the seeder's (ours) over the run, from /proc.
 *
 * Needs: `npm run build` (dist/cli.mjs), /usr/bin/time, mktorrent, opentracker, /usr/bin/python3 with libtorrent.
 * Per run: wall seconds (spawn to exit after completion), MB/s, CPU seconds (user+sys of the leecher's process tree)
 * and peak RSS, the seeder's CPU, the load average before it. The file's size and SHA-256 are checked.
 *
 * libtorrent's uTP leecher sometimes sat connected to nothing at 0 % CPU (docs/UTP.md). It is asked to connect to the
 * seeder every 2 s while it has no peer, and every run is killed after `--timeout` seconds: such a run is reported
 * as hung (and left out of the medians) instead of blocking the benchmark.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Opentracker from "../test/support/opentracker.ts"
import {
  argValue,
  CLI,
  effectEnv,
  freePort,
  HZ,
  infoHashOf,
  libtorrentVersion,
  listArg,
  LOOPBACK_SETTINGS,
  machineLine,
  makeTorrent,
  median,
  nodeArgs,
  parseSize,
  PYTHON,
  processJiffies,
  resetPeakRss,
  sleep,
  runTimed,
  SEEDER_PY,
  sha256File,
  startLibtorrentSeeder,
  stopChild,
  TIME,
  vmKiB,
  waitForQuiet,
  writePayload
} from "./harness.ts"

type ClientName = "lt-utp" | "effect-utp" | "effect-tcp" | "upload"
const ALL: ReadonlyArray<ClientName> = ["lt-utp", "effect-utp", "effect-tcp", "upload"]

const size = parseSize(argValue("--size") ?? "64MiB")
const runs = Number(argValue("--runs") ?? "3")
const maxLoad = Number(argValue("--max-load") ?? "1.0")
const timeoutMs = Number(argValue("--timeout") ?? "120") * 1000
const clients = listArg("--clients", ALL)

const UTP_ON = `{"enable_incoming_utp": True, "enable_outgoing_utp": True}`

/** The bench seeder (SEEDER_PY) with uTP on besides TCP. */
const seederScript = (): string => {
  const anchor = `s.update({"listen_interfaces": "127.0.0.1:0",`
  if (!SEEDER_PY.includes(anchor)) throw new Error("harness SEEDER_PY changed: update bench/utp.ts")
  return SEEDER_PY.replace(anchor, `s.update(${UTP_ON})\n${anchor}`)
}

/** libtorrent with TCP off both ways downloads TORRENT into OUT from the seeder at PEER_PORT; exits 0 once seeding. */
const LT_UTP_LEECHER_PY = `
import libtorrent as lt, sys, time
torrent, out, peer_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = lt.default_settings()
s.update(${LOOPBACK_SETTINGS})
s.update({"enable_outgoing_tcp": False, "enable_incoming_tcp": False,
  "enable_outgoing_utp": True, "enable_incoming_utp": True,
  "listen_interfaces": "127.0.0.1:0", "alert_mask": lt.alert.category_t.error_notification})
ses = lt.session(s)
h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": out})
asked = 0
while True:
    st = h.status()
    if st.is_seeding: break
    # the tracker names the seeder too; a first connect that went nowhere is asked again
    if st.num_peers == 0 and time.time() - asked >= 2:
        h.connect_peer(("127.0.0.1", peer_port))
        asked = time.time()
    time.sleep(0.02)
h.flush_cache()
ses.remove_torrent(h)
del ses
`

interface Setup {
  readonly dir: string
  readonly dataDir: string
  readonly torrentPath: string
  readonly sha256: string
  readonly tracker: Opentracker.Opentracker
  readonly seeder: ChildProcess
  readonly seederPort: number
}

const setup = async (): Promise<Setup> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-bench-utp-"))
  const dataDir = Path.join(dir, "data")
  Fs.mkdirSync(dataDir)
  const payloadPath = Path.join(dataDir, "payload.bin")
  const sha256 = await writePayload(payloadPath, size)
  Fs.writeFileSync(Path.join(dir, "seed.py"), seederScript())
  Fs.writeFileSync(Path.join(dir, "leech-utp.py"), LT_UTP_LEECHER_PY)
  const torrentPath = Path.join(dir, "payload.torrent")
  makeTorrent(payloadPath, torrentPath, "http://127.0.0.1:1/announce")
  const tracker = await Opentracker.start([infoHashOf(torrentPath)])
  makeTorrent(payloadPath, torrentPath, tracker.httpUrl)
  const { child: seeder, port: seederPort } = await startLibtorrentSeeder(dir, torrentPath, dataDir)
  console.log(`payload ${size} bytes; seeder python3-libtorrent ${libtorrentVersion()} (TCP and uTP) pid ${seeder.pid} on 127.0.0.1:${seederPort}`)
  return { dir, dataDir, torrentPath, sha256, tracker, seeder, seederPort }
}

const teardown = async (s: Setup | undefined) => {
  if (s === undefined) return
  await stopChild(s.seeder, "stdin")
  await s.tracker.stop()
  Fs.rmSync(s.dir, { recursive: true, force: true })
}

/** Our CLI seeding the payload over uTP only (no tracker: only the leecher we point at it); resolves once it listens. */
const startOurSeeder = async (s: Setup): Promise<{ child: ChildProcess; port: number }> => {
  const port = await freePort()
  const child = spawn(process.execPath, [
    ...nodeArgs, CLI, "seed", s.torrentPath, s.dataDir, "--transport", "utp", "--encryption", "off", "--port", String(port),
    "--no-trackers", "--no-dht", "--no-lsd", "--no-port-mapping", "--quiet", "--state-dir", Path.join(s.dir, "seed-state")
  ], { env: effectEnv(), stdio: ["ignore", "inherit", "inherit"] })
  const deadline = Date.now() + 60_000
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error("our seeder did not start listening")
    await sleep(200)
  }
  return { child, port }
}

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const c = Net.connect(port, "127.0.0.1")
    c.once("connect", () => (c.destroy(), resolve(true)))
    c.once("error", () => resolve(false))
  })

const command = (
  client: ClientName,
  s: Setup,
  out: string,
  ourPort: number
): { argv: Array<string>; env: NodeJS.ProcessEnv } =>
  client === "lt-utp" || client === "upload"
    ? {
      argv: [PYTHON, Path.join(s.dir, "leech-utp.py"), s.torrentPath, out, String(client === "upload" ? ourPort : s.seederPort)],
      env: { ...process.env }
    }
    : {
      argv: [
        process.execPath, ...nodeArgs, CLI, "download", s.torrentPath, "-o", out, "--json", "--state-dir", `${out}.state`,
        "--transport", client === "effect-utp" ? "utp" : "tcp", "--encryption", "off",
        // the seeder only, and only dialled by us: through a tracker the seeder would dial our TCP listener too, and
        // a uTP run could download over that inbound TCP connection
        "--no-trackers", "--no-dht", "--no-lsd", "--no-port-mapping", "--peer", `127.0.0.1:${s.seederPort}`
      ],
      env: effectEnv()
    }

interface Result {
  readonly client: ClientName
  readonly run: number
  /** Killed at the timeout. */
  readonly hung: boolean
  readonly wall: number
  readonly cpu: number
  readonly rssMiB: number
  readonly seederCpu: number
  readonly load: number
  /** The connections' transports and sources. */
  readonly via: string
}

/** "utp manual" for each PeerConnected event of a `--json` run's output. */
const connections = (file: string): string => {
  const out: Array<string> = []
  for (const l of Fs.readFileSync(file, "utf8").split("\n")) {
    if (!l.includes('"PeerConnected"')) continue
    const e = JSON.parse(l) as { transport?: string; source?: string }
    out.push(`${e.transport} ${e.source}`)
  }
  return out.length === 0 ? "no connection reported" : out.join(", ")
}

const runOnce = async (client: ClientName, run: number, s: Setup): Promise<Result> => {
  const out = Fs.mkdtempSync(Path.join(s.dir, `out-${client}-`))
  const ours = client === "upload" ? await startOurSeeder(s) : undefined
  const load = await waitForQuiet(maxLoad)
  const { argv, env } = command(client, s, out, ours?.port ?? 0)
  const seederPid = ours?.child.pid ?? s.seeder.pid!
  if (ours !== undefined) resetPeakRss(seederPid)
  const s0 = processJiffies(seederPid)
  const events = Path.join(s.dir, "events.jsonl")
  const byLibtorrent = client === "lt-utp" || client === "upload"
  let t = await runTimed(argv, env, Path.join(s.dir, "time.txt"), timeoutMs, client, byLibtorrent ? undefined : events)
  // Which connections carried it (the --json PeerConnected events: transport and source, issue 19 item 5).
  const via = byLibtorrent ? "utp (TCP off)" : connections(events)
  const seederCpu = (processJiffies(seederPid) - s0) / HZ
  if (ours !== undefined) {
    // The row is about our seeder: its CPU over the run and its peak RSS.
    t = { ...t, user: seederCpu, sys: 0, maxRssKiB: vmKiB(seederPid, "VmHWM") }
    await stopChild(ours.child, "SIGTERM")
    Fs.rmSync(Path.join(s.dir, "seed-state"), { recursive: true, force: true })
  }
  const hung = t.code === null
  if (!hung && t.code !== 0) throw new Error(`${client} run ${run} exited with ${t.code}`)
  if (!hung) {
    const file = Path.join(out, "payload.bin")
    if (Fs.statSync(file).size !== size) throw new Error(`${client}: wrong size`)
    if (await sha256File(file) !== s.sha256) throw new Error(`${client}: SHA-256 mismatch`)
  }
  Fs.rmSync(out, { recursive: true, force: true })
  Fs.rmSync(`${out}.state`, { recursive: true, force: true })
  const r: Result = { client, run, hung, wall: t.wall, cpu: t.user + t.sys, rssMiB: t.maxRssKiB / 1024, seederCpu, load, via }
  console.log(
    hung
      ? `${client.padEnd(10)} run ${run}: HUNG, killed after ${(timeoutMs / 1000).toFixed(0)} s (load before ${load.toFixed(2)})`
      : `${client.padEnd(10)} run ${run}: wall ${r.wall.toFixed(2)} s, ${(size / r.wall / 1e6).toFixed(1)} MB/s, CPU ${r.cpu.toFixed(2)} s, ` +
        `peak RSS ${r.rssMiB.toFixed(0)} MiB | seeder CPU ${seederCpu.toFixed(2)} s, load before ${load.toFixed(2)} | via ${via} | sha256 ok`
  )
  return r
}

const main = async () => {
  if (!Fs.existsSync(CLI) && clients.some((c) => c !== "lt-utp")) throw new Error("dist/cli.mjs missing: run `npm run build`")
  if (!Fs.existsSync(TIME)) throw new Error(`${TIME} missing: apt-get install time`)
  console.log(machineLine())
  let s: Setup | undefined
  const results: Array<Result> = []
  const onSignal = () => void teardown(s).then(() => process.exit(130))
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    s = await setup()
    for (let run = 1; run <= runs; run++) {
      for (const client of clients) results.push(await runOnce(client, run, s))
    }
  } finally {
    await teardown(s)
  }
  console.log(`\n${size / 2 ** 20} MiB, ${runs} run(s) each, medians of the completed runs (all runs in brackets):\n`)
  console.log("| leecher | wall s | MB/s | CPU s | peak RSS MiB | seeder CPU s | hung |")
  console.log("|---|---|---|---|---|---|---|")
  const walls = new Map<ClientName, number>()
  for (const c of clients) {
    const all = results.filter((r) => r.client === c)
    const done = all.filter((r) => !r.hung)
    const hung = all.length - done.length
    if (done.length === 0) {
      console.log(`| ${c} | – | – | – | – | – | ${hung} of ${all.length} |`)
      continue
    }
    const w = median(done.map((r) => r.wall))
    walls.set(c, w)
    const list = (f: (r: Result) => number, d: number) => done.map((r) => f(r).toFixed(d)).join(", ")
    console.log(
      `| ${c} | ${w.toFixed(2)} (${list((r) => r.wall, 2)}) | ${(size / w / 1e6).toFixed(1)} | ` +
        `${median(done.map((r) => r.cpu)).toFixed(2)} (${list((r) => r.cpu, 2)}) | ${median(done.map((r) => r.rssMiB)).toFixed(0)} | ` +
        `${median(done.map((r) => r.seederCpu)).toFixed(2)} | ${hung} of ${all.length} |`
    )
  }
  const lt = walls.get("lt-utp")
  const ours = walls.get("effect-utp")
  const tcp = walls.get("effect-tcp")
  console.log("")
  if (lt !== undefined && ours !== undefined) {
    console.log(`effect-utp / lt-utp wall ${(ours / lt).toFixed(2)} (below 1: we receive libtorrent's uTP faster than libtorrent does)`)
  }
  if (ours !== undefined && tcp !== undefined) console.log(`effect-utp / effect-tcp wall ${(ours / tcp).toFixed(2)}`)
  const up = walls.get("upload")
  if (lt !== undefined && up !== undefined) {
    console.log(`upload / lt-utp wall ${(up / lt).toFixed(2)} (the same uTP-only libtorrent leecher, from our seeder instead of libtorrent's)`)
  }
  console.log(`load average now ${Os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
