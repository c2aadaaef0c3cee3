/**
 * Download benchmark (not a test): one python3-libtorrent seeder and opentracker on 127.0.0.1, a random payload,
 * and each leecher (effect-torrent's CLI, aria2c, a libtorrent leecher) downloading it into a fresh directory.
 *
 *   npx tsx bench/download.ts [--size 1GiB] [--runs 3] [--clients effect,aria2,libtorrent] [--max-load 1.0]
 *
 * Needs: `npm run build` (dist/cli.mjs), /usr/bin/time (apt-get install time), mktorrent, opentracker, aria2c,
 * /usr/bin/python3 with libtorrent. Per run it reports wall seconds (spawn to exit after verified completion), CPU
 * seconds (user+sys of the leecher's process tree, from /usr/bin/time), peak RSS (max RSS of the tree's largest
 * process), the seeder's CPU seconds and the CPU other processes on the machine used during the run, and the
 * 1-minute load average before it. The downloaded file's size and SHA-256 are checked, then it is deleted.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Opentracker from "../test/support/opentracker.ts"

const PYTHON = "/usr/bin/python3"
const TIME = "/usr/bin/time"
const ROOT = Path.resolve(import.meta.dirname, "..")
/** The bundled CLI; ET_BENCH_CLI points at another build (to compare two builds). */
const CLI = process.env["ET_BENCH_CLI"] ?? Path.join(ROOT, "dist", "cli.mjs")
const RUN_TIMEOUT_MS = 180_000

type ClientName = "effect" | "aria2" | "libtorrent"
const ALL_CLIENTS: ReadonlyArray<ClientName> = ["effect", "aria2", "libtorrent"]

// ---------------------------------------------------------------------------------------------------------------
// Arguments

const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const parseSize = (text: string): number => {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(text)
  if (m === null) throw new Error(`--size ${text}: expected e.g. 256MiB or 1GiB`)
  const unit = (m[2] ?? "B").toLowerCase()
  const mult = unit === "gib" ? 2 ** 30 : unit === "mib" ? 2 ** 20 : unit === "kib" ? 2 ** 10 : 1
  return Math.round(Number(m[1]) * mult)
}

const size = parseSize(argValue("--size") ?? "1GiB")
const runs = Number(argValue("--runs") ?? "3")
const maxLoad = Number(argValue("--max-load") ?? "1.0")
const clients = (argValue("--clients") ?? ALL_CLIENTS.join(",")).split(",").map((c) => {
  if (!(ALL_CLIENTS as ReadonlyArray<string>).includes(c)) throw new Error(`unknown client ${c}`)
  return c as ClientName
})

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = Net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })

const sha256File = (path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash("sha256")
    Fs.createReadStream(path, { highWaterMark: 4 << 20 })
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject)
  })

/** Busy and total jiffies of the whole machine (/proc/stat). */
const machineJiffies = (): { busy: number; total: number } => {
  const line = Fs.readFileSync("/proc/stat", "latin1").split("\n")[0]!
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

/** utime+stime (+ waited children) of one process in jiffies, 0 when it is gone. */
const HZ = 100

const processJiffies = (pid: number): number => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "latin1")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
  } catch {
    return 0
  }
}

/**
 * Waits (at most 60 s) until the machine used less than 0.3 of a core over one second and the 1-minute load
 * average is at most --max-load, whichever comes first ends the wait; returns the load average.
 */
const waitForQuiet = async (): Promise<number> => {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (Os.loadavg()[0]! <= maxLoad) break
    const a = machineJiffies()
    await sleep(1_000)
    const b = machineJiffies()
    if ((b.busy - a.busy) / HZ < 0.3) break
  }
  return Os.loadavg()[0]!
}

const killTree = (child: ChildProcess) => {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, "SIGKILL")
    } catch {
      // gone
    }
  }
}

/** Direct children of `pid` (processes this bench started under /usr/bin/time). */
const childPids = (pid: number): Array<number> => {
  try {
    return Fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

// ---------------------------------------------------------------------------------------------------------------
// Python scripts

const LOOPBACK_SETTINGS = `{"allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "min_reconnect_time": 1}`

/** Seeds TORRENT from DATA_DIR after a full hash check; prints {"port"} once seeding and announced. */
const SEEDER_PY = `
import libtorrent as lt, sys, json, time, select
torrent, data_dir = sys.argv[1], sys.argv[2]
s = lt.high_performance_seed()
s.update(${LOOPBACK_SETTINGS})
s.update({"listen_interfaces": "127.0.0.1:0",
  "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.tracker_notification})
ses = lt.session(s)
h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": data_dir})
deadline = time.time() + 120
announced = False
while time.time() < deadline:
    for a in ses.pop_alerts():
        if isinstance(a, lt.tracker_reply_alert): announced = True
    st = h.status()
    if st.state == lt.torrent_status.seeding and ses.listen_port() != 0 and announced: break
    if st.state == lt.torrent_status.seeding and not announced: h.force_reannounce()
    time.sleep(0.1)
else:
    print(json.dumps({"error": "not seeding/announced"}), flush=True); sys.exit(1)
print(json.dumps({"port": ses.listen_port()}), flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r and not sys.stdin.read(1): break
`

/** Downloads TORRENT into OUT with default settings (plus loopback ones); exits 0 once seeding. */
const LEECHER_PY = `
import libtorrent as lt, sys, time
torrent, out, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = lt.default_settings()
s.update(${LOOPBACK_SETTINGS})
s.update({"listen_interfaces": "127.0.0.1:%d" % port, "alert_mask": lt.alert.category_t.error_notification})
ses = lt.session(s)
h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": out})
deadline = time.time() + 170
while time.time() < deadline:
    if h.status().is_seeding: break
    time.sleep(0.02)
else:
    sys.exit(1)
h.flush_cache()
ses.remove_torrent(h)
del ses
`

// ---------------------------------------------------------------------------------------------------------------
// Setup

interface Setup {
  readonly dir: string
  readonly payloadPath: string
  readonly torrentPath: string
  readonly sha256: string
  readonly tracker: Opentracker.Opentracker
  readonly seeder: ChildProcess
  readonly seederPort: number
}

const setup = async (): Promise<Setup> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-bench-"))
  const dataDir = Path.join(dir, "data")
  Fs.mkdirSync(dataDir)
  const payloadPath = Path.join(dataDir, "payload.bin")
  console.log(`payload: ${size} bytes in ${payloadPath}`)
  execFileSync("sh", ["-c", `head -c ${size} /dev/urandom > '${payloadPath}'`])
  const sha256 = await sha256File(payloadPath)
  Fs.writeFileSync(Path.join(dir, "seed.py"), SEEDER_PY)
  Fs.writeFileSync(Path.join(dir, "leech.py"), LEECHER_PY)
  // The info-hash does not depend on the announce URL: make the torrent once for the whitelist, then again with
  // the tracker's real URL.
  const torrentPath = Path.join(dir, "payload.torrent")
  const mk = (announce: string) => {
    Fs.rmSync(torrentPath, { force: true })
    execFileSync("mktorrent", ["-a", announce, "-l", "20", "-o", torrentPath, payloadPath], { stdio: "ignore" })
  }
  mk("http://127.0.0.1:1/announce")
  const infoHash = execFileSync(PYTHON, [
    "-c",
    "import libtorrent as lt,sys; print(lt.torrent_info(sys.argv[1]).info_hashes().v1)",
    torrentPath
  ]).toString().trim()
  const tracker = await Opentracker.start([infoHash])
  mk(tracker.httpUrl)
  console.log(`torrent: ${torrentPath}, info-hash ${infoHash}, tracker ${tracker.httpUrl} (pid ${tracker.pid})`)
  const seeder = spawn(PYTHON, [Path.join(dir, "seed.py"), torrentPath, dataDir], { stdio: ["pipe", "pipe", "inherit"] })
  const seederPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("seeder not ready within 130 s")), 130_000)
    let out = ""
    seeder.stdout!.on("data", (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf("\n")
      if (nl < 0) return
      clearTimeout(timer)
      const msg = JSON.parse(out.slice(0, nl)) as { port?: number; error?: string }
      if (msg.port !== undefined) resolve(msg.port)
      else reject(new Error(`seeder: ${msg.error}`))
    })
    seeder.once("exit", (code) => reject(new Error(`seeder exited with ${code}`)))
  })
  console.log(`seeder: python3-libtorrent ${libtorrentVersion()} pid ${seeder.pid} on 127.0.0.1:${seederPort}`)
  return { dir, payloadPath, torrentPath, sha256, tracker, seeder, seederPort }
}

const libtorrentVersion = () =>
  execFileSync(PYTHON, ["-c", "import libtorrent as lt; print(lt.__version__)"]).toString().trim()

const teardown = async (s: Setup | undefined) => {
  if (s === undefined) return
  if (s.seeder.exitCode === null && s.seeder.signalCode === null) {
    const exited = new Promise<void>((r) => s.seeder.once("exit", () => r()))
    s.seeder.stdin!.end()
    const t = setTimeout(() => killTree(s.seeder), 3_000)
    await exited
    clearTimeout(t)
  }
  await s.tracker.stop()
  Fs.rmSync(s.dir, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------------------------------
// One run

interface Result {
  readonly client: ClientName
  readonly run: number
  readonly wall: number
  readonly cpu: number
  readonly rssMiB: number
  readonly seederCpu: number
  readonly othersCpu: number
  readonly load: number
}

const nodeArgs = (process.env["ET_BENCH_NODE_ARGS"] ?? "").split(" ").filter(Boolean)

const command = async (client: ClientName, s: Setup, out: string): Promise<{ argv: Array<string>; env: NodeJS.ProcessEnv }> => {
  const env = { ...process.env }
  switch (client) {
    case "effect":
      return {
        // ET_BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") go to node, for profiling.
        // The resume record goes beside the output (and is deleted with it), never into the user's state directory.
        argv: [process.execPath, ...nodeArgs, CLI, "download", s.torrentPath, "-o", out, "--quiet", "--state-dir", `${out}.state`],
        // THROUGHPUT.md rule 9; ET_BENCH_MALLOC_DEFAULT=1 leaves glibc's default, to measure what the variable buys.
        env: process.env["ET_BENCH_MALLOC_DEFAULT"] ? env : { ...env, MALLOC_TRIM_THRESHOLD_: "1073741824" }
      }
    case "aria2":
      return {
        argv: [
          "aria2c", `--dir=${out}`, "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
          "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--summary-interval=0", "--file-allocation=none",
          `--listen-port=${await freePort()}`, "--console-log-level=warn", "--quiet=true", s.torrentPath
        ],
        env
      }
    case "libtorrent":
      return { argv: [PYTHON, Path.join(s.dir, "leech.py"), s.torrentPath, out, String(await freePort())], env }
  }
}

const runOnce = async (client: ClientName, run: number, s: Setup): Promise<Result> => {
  const out = Fs.mkdtempSync(Path.join(s.dir, `out-${client}-`))
  const timeFile = Path.join(s.dir, "time.txt")
  Fs.rmSync(timeFile, { force: true })
  const load = await waitForQuiet()
  const { argv, env } = await command(client, s, out)
  const m0 = machineJiffies()
  const s0 = processJiffies(s.seeder.pid!)
  const t0 = performance.now()
  const child = spawn(TIME, ["-f", "%e %U %S %M", "-o", timeFile, ...argv], {
    env,
    stdio: ["ignore", "inherit", "inherit"]
  })
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      console.error(`${client}: timed out after ${RUN_TIMEOUT_MS / 1000} s, killing pid ${child.pid}`)
      // /usr/bin/time's child is the client: kill the group of processes below time by killing time's children.
      for (const pid of childPids(child.pid!)) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // gone
        }
      }
      killTree(child)
    }, RUN_TIMEOUT_MS)
    child.once("exit", (c) => {
      clearTimeout(timer)
      resolve(c)
    })
  })
  const wall = (performance.now() - t0) / 1000
  const m1 = machineJiffies()
  const s1 = processJiffies(s.seeder.pid!)
  if (code !== 0) throw new Error(`${client} run ${run} exited with ${code}`)
  const [, user, sys, maxRss] = Fs.readFileSync(timeFile, "latin1").trim().split("\n").at(-1)!.split(" ").map(Number)
  const cpu = user! + sys!
  const seederCpu = (s1 - s0) / HZ
  const othersCpu = (m1.busy - m0.busy) / HZ - cpu - seederCpu
  const file = Path.join(out, "payload.bin")
  const st = Fs.statSync(file)
  if (st.size !== size) throw new Error(`${client}: size ${st.size}, expected ${size}`)
  const digest = await sha256File(file)
  if (digest !== s.sha256) throw new Error(`${client}: SHA-256 mismatch`)
  Fs.rmSync(out, { recursive: true, force: true })
  Fs.rmSync(`${out}.state`, { recursive: true, force: true })
  const r: Result = { client, run, wall, cpu, rssMiB: maxRss! / 1024, seederCpu, othersCpu: Math.max(0, othersCpu), load }
  console.log(
    `${client.padEnd(10)} run ${run}: wall ${wall.toFixed(2)} s, CPU ${cpu.toFixed(2)} s (user ${user!.toFixed(2)}, sys ${sys!.toFixed(2)}), peak RSS ${r.rssMiB.toFixed(0)} MiB` +
      ` | seeder CPU ${seederCpu.toFixed(2)} s, others ${r.othersCpu.toFixed(2)} s, load before ${load.toFixed(2)} | sha256 ok`
  )
  return r
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const main = async () => {
  if (!Fs.existsSync(CLI) && clients.includes("effect")) throw new Error("dist/cli.mjs missing: run `npm run build`")
  if (!Fs.existsSync(TIME)) throw new Error(`${TIME} missing: apt-get install time`)
  console.log(
    `machine: ${Os.cpus().length} vCPU ${Os.cpus()[0]?.model ?? ""}, ${(Os.totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
      `node ${process.version}, aria2c ${execFileSync("aria2c", ["--version"]).toString().split("\n")[0]}`
  )
  let s: Setup | undefined
  const results: Array<Result> = []
  const onSignal = () => {
    void teardown(s).then(() => process.exit(130))
  }
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
  const mib = size / 2 ** 20
  console.log(`\n${mib} MiB, ${runs} run(s) each, medians (all runs in brackets):\n`)
  console.log("| client | wall s | CPU s | peak RSS MiB | MB/s | seeder CPU s |")
  console.log("|---|---|---|---|---|---|")
  const med: Partial<Record<ClientName, { wall: number; cpu: number; rss: number }>> = {}
  for (const c of clients) {
    const rs = results.filter((r) => r.client === c)
    const w = median(rs.map((r) => r.wall))
    const cp = median(rs.map((r) => r.cpu))
    const rss = median(rs.map((r) => r.rssMiB))
    med[c] = { wall: w, cpu: cp, rss }
    const all = (f: (r: Result) => number, d: number) => rs.map((r) => f(r).toFixed(d)).join(", ")
    console.log(
      `| ${c} | ${w.toFixed(2)} (${all((r) => r.wall, 2)}) | ${cp.toFixed(2)} (${all((r) => r.cpu, 2)}) | ` +
        `${rss.toFixed(0)} (${all((r) => r.rssMiB, 0)}) | ${(size / w / 1e6).toFixed(0)} | ` +
        `${median(rs.map((r) => r.seederCpu)).toFixed(2)} |`
    )
  }
  const e = med.effect
  if (e !== undefined) {
    console.log("")
    const a = med.aria2
    const l = med.libtorrent
    if (a !== undefined) {
      console.log(`effect/aria2c wall ${(e.wall / a.wall).toFixed(2)} (target <= 0.6): ${e.wall / a.wall <= 0.6 ? "met" : "MISSED"}`)
      console.log(`effect/aria2c CPU  ${(e.cpu / a.cpu).toFixed(2)} (target <= 2): ${e.cpu / a.cpu <= 2 ? "met" : "MISSED"}`)
    }
    if (l !== undefined) {
      console.log(`effect/libtorrent wall ${(e.wall / l.wall).toFixed(2)} (target <= 1.3): ${e.wall / l.wall <= 1.3 ? "met" : "MISSED"}`)
      console.log(`effect/libtorrent CPU  ${(e.cpu / l.cpu).toFixed(2)}`)
    }
    console.log(`effect peak RSS ${e.rss.toFixed(0)} MiB (target <= 200): ${e.rss <= 200 ? "met" : "MISSED"}`)
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
