/**
 * What the benchmarks under `bench/` share (not a test): arguments, /proc readings (CPU jiffies, peak RSS), the
 * quiet-machine wait, a random payload and its torrent (mktorrent, 1 MiB pieces), opentracker, the python3-libtorrent
 * seeder and leecher scripts, the leecher command lines, and running a child under `/usr/bin/time`.
 * Everything binds to 127.0.0.1; every wait is bounded; children are killed by PID.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export const PYTHON = "/usr/bin/python3"
export const TIME = "/usr/bin/time"
export const ROOT = Path.resolve(import.meta.dirname, "..")
/** The bundled CLI; ET_BENCH_CLI points at another build (to compare two builds). */
export const CLI = process.env["ET_BENCH_CLI"] ?? Path.join(ROOT, "dist", "cli.mjs")
/** A second build run as the leecher "effect-base", beside "effect", to compare two builds in one run. */
export const CLI_BASE = process.env["ET_BENCH_CLI_BASE"]
/** Node flags for our process (e.g. "--cpu-prof --cpu-prof-dir=D"). */
/**
 * Node's flags for our CLI: those bin/effect-torrent.js gives the commands that move data (the bench runs dist/cli.mjs
 * directly, as the launcher's child, without its second start), then ET_BENCH_NODE_ARGS.
 */
export const LAUNCHER_NODE_ARGS: ReadonlyArray<string> = ["--max-semi-space-size=8"]
const withLauncherArgs = (extra: string) => [...LAUNCHER_NODE_ARGS, ...extra.split(" ").filter(Boolean)]
export const nodeArgs = withLauncherArgs(process.env["ET_BENCH_NODE_ARGS"] ?? "")
/** Node's flags for `effect-base` (default: ET_BENCH_NODE_ARGS), to compare V8 settings on one build. */
export const nodeArgsBase = withLauncherArgs(process.env["ET_BENCH_NODE_ARGS_BASE"] ?? process.env["ET_BENCH_NODE_ARGS"] ?? "")
/**
 * A command our leecher runs under, for investigation (e.g. `strace -f -c -o /tmp/st.txt`, `perf record -g --`); its
 * CPU counts too. `ET_BENCH_WRAP_ALL=1` wraps the other leechers as well.
 */
export const wrapArgs = (process.env["ET_BENCH_WRAP"] ?? "").split(" ").filter(Boolean)
const wrapOthers = process.env["ET_BENCH_WRAP_ALL"] === "1" ? wrapArgs : []
/**
 * THROUGHPUT.md rule 9, as the launcher sets it; ET_BENCH_MALLOC_DEFAULT=1 leaves glibc's default. Loopback only: the
 * benchmarks' swarms are on 127.0.0.1, so no DHT bootstrap or LSD multicast leaves the machine.
 */
export const effectEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  EFFECT_TORRENT_LOOPBACK_ONLY: "1",
  ...(process.env["ET_BENCH_MALLOC_DEFAULT"] ? {} : { MALLOC_TRIM_THRESHOLD_: "1073741824" })
})

// ---------------------------------------------------------------------------------------------------------------
// Arguments

export const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

export const parseSize = (text: string): number => {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(text)
  if (m === null) throw new Error(`--size ${text}: expected e.g. 256MiB or 1GiB`)
  const unit = (m[2] ?? "B").toLowerCase()
  const mult = unit === "gib" ? 2 ** 30 : unit === "mib" ? 2 ** 20 : unit === "kib" ? 2 ** 10 : 1
  return Math.round(Number(m[1]) * mult)
}

/** `--name a,b` as a subset of `all` (default all, in that order). */
export const listArg = <A extends string>(name: string, all: ReadonlyArray<A>): Array<A> =>
  (argValue(name) ?? all.join(",")).split(",").map((c) => {
    if (!(all as ReadonlyArray<string>).includes(c)) throw new Error(`${name}: unknown ${c} (one of ${all.join(", ")})`)
    return c as A
  })

// ---------------------------------------------------------------------------------------------------------------
// Helpers

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = Net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })

export const sha256File = (path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash("sha256")
    Fs.createReadStream(path, { highWaterMark: 4 << 20 })
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject)
  })

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

// ---------------------------------------------------------------------------------------------------------------
// /proc

export const HZ = 100

/**
 * Jiffies of the whole machine (/proc/stat): busy (user, system, irq: work done in this VM), steal (time the
 * hypervisor gave our vCPUs to someone else: on a shared host a run can lose seconds to it, which slows every
 * process in the run without showing in anyone's CPU) and total.
 */
export const machineJiffies = (): { busy: number; steal: number; total: number } => {
  const line = Fs.readFileSync("/proc/stat", "latin1").split("\n")[0]!
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const steal = f[7] ?? 0
  // Fields 9 and 10 (guest, guest_nice) are already counted in user and nice.
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - idle - steal, steal, total }
}

/** User and system jiffies (each with its waited children) of one process, all its threads; 0s when it is gone. */
export const processTimes = (pid: number): { user: number; sys: number } => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "latin1")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return { user: Number(f[11]) + Number(f[13]), sys: Number(f[12]) + Number(f[14]) }
  } catch {
    return { user: 0, sys: 0 }
  }
}

/** utime+stime (+ waited children) of one process, all its threads, in jiffies; 0 when it is gone. */
export const processJiffies = (pid: number): number => {
  const t = processTimes(pid)
  return t.user + t.sys
}

/** A `Vm*` field of /proc/PID/status in KiB (VmHWM: peak RSS, VmRSS: now); 0 when it is gone. */
export const vmKiB = (pid: number, field: "VmHWM" | "VmRSS"): number => {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(Fs.readFileSync(`/proc/${pid}/status`, "latin1"))
    return m === null ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

/** Resets the process's peak RSS (VmHWM) to its current RSS (`echo 5 > /proc/PID/clear_refs`); false if refused. */
export const resetPeakRss = (pid: number): boolean => {
  try {
    Fs.writeFileSync(`/proc/${pid}/clear_refs`, "5")
    return true
  } catch {
    return false
  }
}

/**
 * Waits (at most 60 s) until the machine used less than 0.3 of a core over one second or the 1-minute load
 * average is at most `maxLoad`, whichever comes first; returns the load average.
 */
export const waitForQuiet = async (maxLoad: number): Promise<number> => {
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

export const killTree = (child: ChildProcess) => {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, "SIGKILL")
    } catch {
      // gone
    }
  }
}

/** Direct children of `pid` (processes this bench started under /usr/bin/time). */
export const childPids = (pid: number): Array<number> => {
  try {
    return Fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** Stops a child we started: `signal` (or closing its stdin), SIGKILL after `graceMs`; resolves when it exited. */
export const stopChild = async (
  child: ChildProcess,
  how: "stdin" | NodeJS.Signals,
  graceMs = 3_000
): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise<void>((r) => child.once("exit", () => r()))
  if (how === "stdin") child.stdin?.end()
  else process.kill(child.pid, how)
  const t = setTimeout(() => killTree(child), graceMs)
  await exited
  clearTimeout(t)
}

export const machineLine = (): string =>
  `machine: ${Os.cpus().length} vCPU ${Os.cpus()[0]?.model ?? ""}, ${(Os.totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
  `node ${process.version}, aria2c ${execFileSync("aria2c", ["--version"]).toString().split("\n")[0]}`

export const libtorrentVersion = () =>
  execFileSync(PYTHON, ["-c", "import libtorrent as lt; print(lt.__version__)"]).toString().trim()

// ---------------------------------------------------------------------------------------------------------------
// Payload and torrent

/** Writes `size` random bytes to `path` (`head -c N /dev/urandom`); returns their SHA-256. */
export const writePayload = async (path: string, size: number): Promise<string> => {
  execFileSync("sh", ["-c", `head -c ${size} /dev/urandom > '${path}'`])
  return sha256File(path)
}

/** `mktorrent -l 20` (1 MiB pieces) of `payloadPath` announcing to `announce`, written to `torrentPath`. */
export const makeTorrent = (payloadPath: string, torrentPath: string, announce: string): void => {
  Fs.rmSync(torrentPath, { force: true })
  execFileSync("mktorrent", ["-a", announce, "-l", "20", "-o", torrentPath, payloadPath], { stdio: "ignore" })
}

/** The v1 info-hash (hex) libtorrent computes for a torrent file. */
export const infoHashOf = (torrentPath: string): string =>
  execFileSync(PYTHON, [
    "-c",
    "import libtorrent as lt,sys; print(lt.torrent_info(sys.argv[1]).info_hashes().v1)",
    torrentPath
  ]).toString().trim()

// ---------------------------------------------------------------------------------------------------------------
// python3-libtorrent scripts

export const LOOPBACK_SETTINGS = `{"allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "min_reconnect_time": 1}`

/** Seeds TORRENT from DATA_DIR after a full hash check; prints {"port"} once seeding and announced. */
export const SEEDER_PY = `
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
export const LEECHER_PY = `
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

/** Writes the two scripts into `dir` (seed.py, leech.py). */
export const writeScripts = (dir: string): void => {
  Fs.writeFileSync(Path.join(dir, "seed.py"), SEEDER_PY)
  Fs.writeFileSync(Path.join(dir, "leech.py"), LEECHER_PY)
}

/** Starts the libtorrent seeder (scripts in `dir`); resolves with its port once it seeds and announced. */
export const startLibtorrentSeeder = async (
  dir: string,
  torrentPath: string,
  dataDir: string
): Promise<{ child: ChildProcess; port: number }> => {
  const child = spawn(PYTHON, [Path.join(dir, "seed.py"), torrentPath, dataDir], { stdio: ["pipe", "pipe", "inherit"] })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("seeder not ready within 130 s")), 130_000)
    let out = ""
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf("\n")
      if (nl < 0) return
      clearTimeout(timer)
      const msg = JSON.parse(out.slice(0, nl)) as { port?: number; error?: string }
      if (msg.port !== undefined) resolve(msg.port)
      else reject(new Error(`seeder: ${msg.error}`))
    })
    child.once("exit", (code) => reject(new Error(`seeder exited with ${code}`)))
  })
  return { child, port }
}

// ---------------------------------------------------------------------------------------------------------------
// Leechers

export type LeecherName = "effect" | "effect-base" | "aria2" | "libtorrent" | "webtorrent" | "floor"

/** WebTorrent's version for the bench, installed on first use into `.tmp/bench-webtorrent` (not a project dependency). */
export const WEBTORRENT_VERSION = "3.0.21"
export const WEBTORRENT_DIR = Path.join(ROOT, ".tmp", "bench-webtorrent")

/** Installs WebTorrent for the bench (npm, `--ignore-scripts`: its optional native uTP is not needed over TCP). */
export const ensureWebTorrent = (): void => {
  const installed = Path.join(WEBTORRENT_DIR, "node_modules", "webtorrent", "package.json")
  if (Fs.existsSync(installed) && (JSON.parse(Fs.readFileSync(installed, "utf8")) as { version: string }).version === WEBTORRENT_VERSION) return
  Fs.mkdirSync(WEBTORRENT_DIR, { recursive: true })
  Fs.writeFileSync(Path.join(WEBTORRENT_DIR, "package.json"), JSON.stringify({ name: "bench-webtorrent", private: true, type: "module" }))
  console.log(`installing webtorrent@${WEBTORRENT_VERSION} into ${WEBTORRENT_DIR}`)
  execFileSync("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", `webtorrent@${WEBTORRENT_VERSION}`], {
    cwd: WEBTORRENT_DIR,
    stdio: "inherit"
  })
}

/** The command line of a leecher downloading `torrentPath` into `out` (scripts in `dir`); each exits when done. */
export const leecherCommand = async (
  client: LeecherName,
  dir: string,
  torrentPath: string,
  out: string
): Promise<{ argv: Array<string>; env: NodeJS.ProcessEnv }> => {
  switch (client) {
    case "effect":
    case "effect-base": {
      const cli = client === "effect" ? CLI : CLI_BASE
      if (cli === undefined) throw new Error("effect-base needs ET_BENCH_CLI_BASE=path/to/cli.mjs")
      return {
        // The resume record goes beside the output (and is deleted with it), never into the user's state directory.
        // As the libtorrent leecher is set up (LOOPBACK_SETTINGS): loopback only, no DHT, LSD, port mapping or MSE.
        argv: [
          ...wrapArgs, process.execPath, ...(client === "effect" ? nodeArgs : nodeArgsBase), cli, "download", torrentPath, "-o", out, "--quiet", "--state-dir", `${out}.state`,
          "--bind", "127.0.0.1", "--no-dht", "--no-lsd", "--no-port-mapping", "--encryption", "off"
        ],
        env: effectEnv()
      }
    }
    case "aria2":
      return {
        argv: [
          "aria2c", `--dir=${out}`, "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
          "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--summary-interval=0", "--file-allocation=none",
          `--listen-port=${await freePort()}`, "--console-log-level=warn", "--quiet=true", torrentPath
        ],
        env: { ...process.env }
      }
    case "libtorrent":
      return { argv: [...wrapOthers, PYTHON, Path.join(dir, "leech.py"), torrentPath, out, String(await freePort())], env: { ...process.env } }
    case "floor":
      // bench/floor-leech.mjs: the least a plain Node leecher does (one-file torrents only), what Node itself costs
      return {
        argv: [...wrapOthers, process.execPath, Path.join(ROOT, "bench", "floor-leech.mjs"), torrentPath, out, String(await freePort())],
        env: effectEnv()
      }
    case "webtorrent":
      ensureWebTorrent()
      return {
        argv: [process.execPath, Path.join(ROOT, "bench", "webtorrent-leech.mjs"), torrentPath, out, String(await freePort())],
        env: { ...process.env, WEBTORRENT_DIR }
      }
  }
}

export interface Timed {
  readonly code: number | null
  /** Spawn to exit, seconds. */
  readonly wall: number
  readonly user: number
  readonly sys: number
  /** Max RSS of the largest process of the tree, KiB. */
  readonly maxRssKiB: number
  /**
   * Minor page faults of the tree (what first touches of fresh memory cost): ~11 µs each on this machine's VM, against
   * ~0.2 µs on bare metal, so they are a visible share of a run's CPU here (docs/PERFORMANCE.md).
   */
  readonly minorFaults: number
}

/**
 * Runs `argv` under `/usr/bin/time -f "%e %U %S %M %R"`, killed (by PID) after `timeoutMs`; its stdout goes to ours, or
 * into the file `stdoutFile`.
 */
export const runTimed = async (
  argv: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  timeFile: string,
  timeoutMs: number,
  name: string,
  stdoutFile?: string
): Promise<Timed> => {
  Fs.rmSync(timeFile, { force: true })
  const t0 = performance.now()
  const out = stdoutFile === undefined ? "inherit" : Fs.openSync(stdoutFile, "w")
  const child = spawn(TIME, ["-f", "%e %U %S %M %R", "-o", timeFile, ...argv], {
    env,
    stdio: ["ignore", out, "inherit"]
  })
  if (typeof out === "number") Fs.closeSync(out)
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      console.error(`${name}: timed out after ${timeoutMs / 1000} s, killing pid ${child.pid}`)
      // /usr/bin/time's child is the client: kill the processes below time, then time itself.
      for (const pid of childPids(child.pid!)) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // gone
        }
      }
      killTree(child)
    }, timeoutMs)
    child.once("exit", (c) => {
      clearTimeout(timer)
      resolve(c)
    })
  })
  const wall = (performance.now() - t0) / 1000
  if (code !== 0) return { code, wall, user: 0, sys: 0, maxRssKiB: 0, minorFaults: 0 }
  const [, user, sys, maxRss, minor] = Fs.readFileSync(timeFile, "latin1").trim().split("\n").at(-1)!.split(" ").map(Number)
  return { code, wall, user: user!, sys: sys!, maxRssKiB: maxRss!, minorFaults: minor! }
}
