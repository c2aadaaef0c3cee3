/**
 * Seeding benchmark (not a test): the same random payload seeded by effect-torrent's CLI (`node dist/cli.mjs seed`)
 * and by a python3-libtorrent seeder, in the same run, each in its own swarm (its own opentracker on 127.0.0.1 and
 * its own copy of the torrent: same info dict, different announce URL), and each leecher (aria2c, a libtorrent
 * leecher) downloading from each seeder in turn into a fresh directory.
 *
 *   npx tsx bench/seed.ts [--size 1GiB] [--runs 3] [--seeders effect,libtorrent] [--leechers aria2,libtorrent]
 *                         [--max-load 1.0]
 *
 * Needs: `npm run build` (dist/cli.mjs), /usr/bin/time (apt-get install time), mktorrent, opentracker, aria2c,
 * /usr/bin/python3 with libtorrent. Per download it reports the wall seconds (leecher spawn to exit after verified
 * completion), the leecher's CPU seconds (/usr/bin/time), the seeder's CPU seconds (utime+stime of its process, all
 * threads, from /proc/PID/stat), the seeder's peak RSS during that download (VmHWM from /proc/PID/status, reset
 * with /proc/PID/clear_refs before each download), the CPU other processes used meanwhile, and the 1-minute load
 * average before it. The file's size and SHA-256 are checked, then deleted. The order of the seeders alternates
 * from run to run. Both seeders run for the whole bench; the idle one costs nothing measurable. Knobs:
 * ET_BENCH_CLI, ET_BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=D": node flags for our seeder; it is stopped
 * with SIGINT so the profile is written), ET_BENCH_MALLOC_DEFAULT=1.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Either from "effect/Either"
import * as Bencode from "../src/bencode/Bencode.ts"
import * as Bytes from "../src/core/Bytes.ts"
import * as Opentracker from "../test/support/opentracker.ts"
import {
  argValue,
  CLI,
  CLI_BASE,
  effectEnv,
  HZ,
  infoHashOf,
  leecherCommand,
  libtorrentVersion,
  listArg,
  machineJiffies,
  machineLine,
  makeTorrent,
  median,
  nodeArgs,
  parseSize,
  processTimes,
  resetPeakRss,
  runTimed,
  sha256File,
  sleep,
  startLibtorrentSeeder,
  stopChild,
  TIME,
  vmKiB,
  waitForQuiet,
  writePayload,
  writeScripts,
  freePort
} from "./harness.ts"

const RUN_TIMEOUT_MS = 180_000

type SeederName = "effect" | "libtorrent" | "effect-base"
type Leecher = "aria2" | "libtorrent"
// effect-base: a second build (ET_BENCH_CLI_BASE=path/cli.mjs) seeding in the same run, to compare two builds
const ALL_SEEDERS: ReadonlyArray<SeederName> = ["effect", "libtorrent", "effect-base"]
const ALL_LEECHERS: ReadonlyArray<Leecher> = ["aria2", "libtorrent"]

const size = parseSize(argValue("--size") ?? "1GiB")
const runs = Number(argValue("--runs") ?? "3")
const maxLoad = Number(argValue("--max-load") ?? "1.0")
const seeders = argValue("--seeders") === undefined ? ALL_SEEDERS.slice(0, 2) : listArg("--seeders", ALL_SEEDERS)
const leechers = listArg("--leechers", ALL_LEECHERS)

// ---------------------------------------------------------------------------------------------------------------
// Setup

interface Seeder {
  readonly name: SeederName
  readonly child: ChildProcess
  readonly pid: number
  readonly tracker: Opentracker.Opentracker
  /** This seeder's copy of the torrent (announcing to its own tracker). */
  readonly torrentPath: string
  /** Peak RSS from its start until it was ready (start-up data check included), MiB. */
  readonly readyPeakMiB: number
  readonly stop: () => Promise<void>
}

interface Setup {
  readonly dir: string
  readonly dataDir: string
  readonly sha256: string
  readonly infoHash: string
  readonly seeders: Array<Seeder>
}

/** The torrent at `from` with its announce URL replaced (same info dict: the info-hash is checked). */
const withAnnounce = (from: string, to: string, url: string, infoHash: string): void => {
  const decoded = Bencode.decode(Fs.readFileSync(from))
  if (Either.isLeft(decoded) || !Bencode.isDict(decoded.right)) throw new Error(`cannot read ${from}`)
  const top = new Map(decoded.right)
  top.set("announce", Bytes.encodeUtf8(url))
  Fs.writeFileSync(to, Bencode.encode(top))
  if (infoHashOf(to) !== infoHash) throw new Error(`${to}: the info-hash changed`)
}

/** Polls the tracker's scrape (bounded) until it counts a seeder. */
const untilSeeded = async (tracker: Opentracker.Opentracker, infoHash: string, child: ChildProcess) => {
  const url = `http://127.0.0.1:${tracker.port}/scrape?info_hash=${infoHash.replace(/../g, "%$&")}`
  const deadline = Date.now() + 180_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`our seeder exited with ${child.exitCode}`)
    const body = await fetch(url).then((r) => r.text(), () => "")
    if (/8:completei[1-9]/.test(body)) return
    await sleep(100)
  }
  throw new Error("our seeder did not announce within 180 s")
}

const startSeeder = async (
  name: SeederName,
  dir: string,
  dataDir: string,
  base: string,
  infoHash: string
): Promise<Seeder> => {
  const tracker = await Opentracker.start([infoHash])
  const torrentPath = Path.join(dir, `${name}.torrent`)
  withAnnounce(base, torrentPath, tracker.httpUrl, infoHash)
  const t0 = performance.now()
  if (name === "libtorrent") {
    const { child, port } = await startLibtorrentSeeder(dir, torrentPath, dataDir)
    console.log(
      `seeder libtorrent: python3-libtorrent ${libtorrentVersion()} pid ${child.pid} on 127.0.0.1:${port}, ` +
        `tracker ${tracker.httpUrl}, ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`
    )
    const readyPeakMiB = vmKiB(child.pid!, "VmHWM") / 1024
    return { name, child, pid: child.pid!, tracker, torrentPath, readyPeakMiB, stop: () => stopChild(child, "stdin") }
  }
  const port = await freePort()
  const cli = name === "effect" ? CLI : CLI_BASE
  if (cli === undefined) throw new Error("effect-base needs ET_BENCH_CLI_BASE=path/to/cli.mjs")
  const argv = [
    ...nodeArgs, cli, "seed", torrentPath, dataDir, "--port", String(port), "--bind", "127.0.0.1", "--no-dht",
    "--no-lsd", "--no-port-mapping", "--quiet", "--state-dir", Path.join(dir, `state-${name}`)
  ]
  const child = spawn(process.execPath, argv, { env: effectEnv(), stdio: ["ignore", "inherit", "inherit"] })
  await untilSeeded(tracker, infoHash, child)
  const readyPeakMiB = vmKiB(child.pid!, "VmHWM") / 1024
  console.log(
    `seeder ${name}: ${Path.relative(process.cwd(), cli)} pid ${child.pid} on 127.0.0.1:${port}, tracker ` +
      `${tracker.httpUrl}, ready (data checked, announced) in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
      `peak RSS so far ${readyPeakMiB.toFixed(0)} MiB`
  )
  // SIGINT: the CLI stops cleanly (and node writes a --cpu-prof profile).
  return {
    name,
    child,
    pid: child.pid!,
    tracker,
    torrentPath,
    readyPeakMiB,
    stop: () => stopChild(child, "SIGINT", 10_000)
  }
}

const setup = async (): Promise<Setup> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-bench-seed-"))
  const dataDir = Path.join(dir, "data")
  Fs.mkdirSync(dataDir)
  const payloadPath = Path.join(dataDir, "payload.bin")
  console.log(`payload: ${size} bytes in ${payloadPath}`)
  const sha256 = await writePayload(payloadPath, size)
  writeScripts(dir)
  const base = Path.join(dir, "base.torrent")
  makeTorrent(payloadPath, base, "http://127.0.0.1:1/announce")
  const infoHash = infoHashOf(base)
  console.log(`torrent: 1 MiB pieces, info-hash ${infoHash}`)
  const s: Setup = { dir, dataDir, sha256, infoHash, seeders: [] }
  for (const name of seeders) s.seeders.push(await startSeeder(name, dir, dataDir, base, infoHash))
  return s
}

const teardown = async (s: Setup | undefined) => {
  if (s === undefined) return
  for (const seeder of s.seeders) {
    await seeder.stop()
    await seeder.tracker.stop()
  }
  Fs.rmSync(s.dir, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------------------------------
// One download

interface Result {
  readonly seeder: SeederName
  readonly leecher: Leecher
  readonly run: number
  readonly wall: number
  readonly leecherCpu: number
  readonly seederCpu: number
  readonly seederSys: number
  readonly seederPeakMiB: number
  readonly othersCpu: number
  readonly steal: number
  readonly load: number
}

const runOnce = async (seeder: Seeder, leecher: Leecher, run: number, s: Setup): Promise<Result> => {
  const out = Fs.mkdtempSync(Path.join(s.dir, `out-${seeder.name}-${leecher}-`))
  const timeFile = Path.join(s.dir, "time.txt")
  const load = await waitForQuiet(maxLoad)
  const { argv, env } = await leecherCommand(leecher, s.dir, seeder.torrentPath, out)
  const resetOk = resetPeakRss(seeder.pid)
  const m0 = machineJiffies()
  const s0 = processTimes(seeder.pid)
  const t = await runTimed(argv, env, timeFile, RUN_TIMEOUT_MS, `${leecher} from ${seeder.name}`)
  const m1 = machineJiffies()
  const s1 = processTimes(seeder.pid)
  const peak = vmKiB(seeder.pid, "VmHWM") / 1024
  if (t.code !== 0) throw new Error(`${leecher} from ${seeder.name}, run ${run}: exited with ${t.code}`)
  const file = Path.join(out, "payload.bin")
  const st = Fs.statSync(file)
  if (st.size !== size) throw new Error(`${leecher} from ${seeder.name}: size ${st.size}, expected ${size}`)
  if ((await sha256File(file)) !== s.sha256) throw new Error(`${leecher} from ${seeder.name}: SHA-256 mismatch`)
  Fs.rmSync(out, { recursive: true, force: true })
  const leecherCpu = t.user + t.sys
  const seederSys = (s1.sys - s0.sys) / HZ
  const seederCpu = (s1.user - s0.user) / HZ + seederSys
  const othersCpu = Math.max(0, (m1.busy - m0.busy) / HZ - leecherCpu - seederCpu)
  const r: Result = {
    seeder: seeder.name,
    leecher,
    run,
    wall: t.wall,
    leecherCpu,
    seederCpu,
    seederSys,
    seederPeakMiB: peak,
    othersCpu,
    steal: (m1.steal - m0.steal) / HZ,
    load
  }
  console.log(
    `${leecher.padEnd(10)} from ${seeder.name.padEnd(10)} run ${run}: wall ${t.wall.toFixed(2)} s | seeder CPU ` +
      `${seederCpu.toFixed(2)} s (sys ${seederSys.toFixed(2)}), peak RSS ${peak.toFixed(0)} MiB${resetOk ? "" : " (lifetime: clear_refs refused)"} | ` +
      `leecher CPU ${leecherCpu.toFixed(2)} s | others ${othersCpu.toFixed(2)} s, steal ${r.steal.toFixed(2)} s, load before ${load.toFixed(2)} | sha256 ok`
  )
  return r
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const main = async () => {
  if (!Fs.existsSync(CLI) && seeders.includes("effect")) throw new Error("dist/cli.mjs missing: run `npm run build`")
  if (!Fs.existsSync(TIME)) throw new Error(`${TIME} missing: apt-get install time`)
  console.log(machineLine())
  let s: Setup | undefined
  const results: Array<Result> = []
  const onSignal = () => {
    void teardown(s).then(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  const lifetime: Partial<Record<SeederName, number>> = {}
  try {
    s = await setup()
    for (let run = 1; run <= runs; run++) {
      const order = run % 2 === 1 ? s.seeders : [...s.seeders].reverse()
      for (const seeder of order) {
        for (const leecher of leechers) results.push(await runOnce(seeder, leecher, run, s))
      }
    }
    for (const x of s.seeders) {
      const serving = results.filter((r) => r.seeder === x.name).map((r) => r.seederPeakMiB)
      lifetime[x.name] = Math.max(x.readyPeakMiB, ...serving)
    }
  } finally {
    await teardown(s)
  }

  const mib = size / 2 ** 20
  console.log(`\n${mib} MiB, ${runs} run(s) each, medians (all runs in brackets):\n`)
  console.log("| leecher | seeder | wall s | MB/s | seeder CPU s | seeder sys s | seeder peak RSS MiB | leecher CPU s |")
  console.log("|---|---|---|---|---|---|---|---|")
  const med = new Map<string, { wall: number; cpu: number; rss: number }>()
  for (const l of leechers) {
    for (const sd of seeders) {
      const rs = results.filter((r) => r.leecher === l && r.seeder === sd)
      const all = (f: (r: Result) => number, d: number) => rs.map((r) => f(r).toFixed(d)).join(", ")
      const m = {
        wall: median(rs.map((r) => r.wall)),
        cpu: median(rs.map((r) => r.seederCpu)),
        rss: median(rs.map((r) => r.seederPeakMiB))
      }
      med.set(`${l}/${sd}`, m)
      console.log(
        `| ${l} | ${sd} | ${m.wall.toFixed(2)} (${all((r) => r.wall, 2)}) | ${(size / m.wall / 1e6).toFixed(0)} | ` +
          `${m.cpu.toFixed(2)} (${all((r) => r.seederCpu, 2)}) | ${median(rs.map((r) => r.seederSys)).toFixed(2)} | ` +
          `${m.rss.toFixed(0)} (${all((r) => r.seederPeakMiB, 0)}) | ` +
          `${median(rs.map((r) => r.leecherCpu)).toFixed(2)} |`
      )
    }
  }
  const loads = results.map((r) => r.load)
  const others = results.map((r) => r.othersCpu)
  console.log(
    `\nload average before the downloads ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}, ` +
      `other processes used ${Math.min(...others).toFixed(2)}–${Math.max(...others).toFixed(2)} CPU s during them`
  )
  if (seeders.includes("effect") && seeders.includes("libtorrent")) {
    console.log("")
    for (const l of leechers) {
      const e = med.get(`${l}/effect`)!
      const lt = med.get(`${l}/libtorrent`)!
      const ratio = e.wall / lt.wall
      console.log(
        `${l}: effect/libtorrent seeder wall ${ratio.toFixed(2)} (issue 16's target <= 1.0): ${ratio <= 1.0 ? "met" : "MISSED"}; ` +
          `seeder CPU ${(e.cpu / lt.cpu).toFixed(2)}x`
      )
    }
  }
  if (seeders.includes("effect") && seeders.includes("effect-base")) {
    for (const l of leechers) {
      const e = med.get(`${l}/effect`)!
      const b = med.get(`${l}/effect-base`)!
      console.log(`${l}: effect/effect-base seeder wall ${(e.wall / b.wall).toFixed(2)}, seeder CPU ${(e.cpu / b.cpu).toFixed(2)}x`)
    }
  }
  if (seeders.includes("effect")) {
    const peak = Math.max(...results.filter((r) => r.seeder === "effect").map((r) => r.seederPeakMiB))
    console.log(
      `effect seeder peak RSS while serving ${peak.toFixed(0)} MiB (target <= 150): ${peak <= 150 ? "met" : "MISSED"}; ` +
        `over its whole life (start-up data check included) ${(lifetime.effect ?? 0).toFixed(0)} MiB`
    )
  }
  if (lifetime.libtorrent !== undefined) {
      console.log(`libtorrent seeder peak RSS over its life ${lifetime.libtorrent.toFixed(0)} MiB (mmap'd file pages included)`)
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
