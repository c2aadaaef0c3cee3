/**
 * The daemon at scale (not a test; issue 14 item 8): one real `effect-torrent daemon` process holding many torrents
 * and many peer connections on loopback, measured while loaded (every torrent downloading) and at idle (every
 * torrent complete and seeding, peers still connected).
 *
 *   npm run build && npx tsx bench/daemon-scale.ts [--torrents 200] [--size 2MiB] [--connections 500]
 *     [--lt-procs 1] [--seed-rate 3MiB] [--window 30] [--idle-window 60] [--requests 200]
 *
 * Setup, all on 127.0.0.1 in a temp dir: `--torrents` random payloads (`--size` plus a few odd bytes each, 256 KiB
 * pieces, `mktorrent -l 18`, no tracker); `--lt-procs` python3-libtorrent 2.0.8 processes, each seeding every
 * torrent from one session (seed mode, the loopback settings of PEERS.md, the session's upload limit applied to
 * loopback peers too: `--seed-rate` bytes/s for all of them together, so the downloads last a few minutes); the
 * daemon (`node dist/cli.mjs daemon`, own state and download dirs, `--http` and `--port` on free ports, queues and
 * connection caps raised so every torrent is active, DHT/PEX/encryption off, EFFECT_TORRENT_LOOPBACK_ONLY=1);
 * every torrent added through `POST /api/torrents` (the .torrent as application/x-bittorrent) with
 * `peers=127.0.0.1:P` for each libtorrent process; then in-process peers (sockets in this process: handshake and an
 * empty bitfield, then a keep-alive every 30 s, never interested) dial the daemon until it holds `--connections`
 * connections in all (libtorrent's plus these, spread round-robin over the torrents).
 *
 * Measured in three windows — "loaded" (every torrent downloading), "idle" (all complete and seeding, libtorrent
 * still running) and "idle, libtorrent seeders gone" (only the in-process peers connected): the daemon's event-loop
 * lag from a monitor inside it (`perf_hooks.monitorEventLoopDelay` at 10 ms resolution, preloaded with
 * `node --import`, read over IPC with `process.memoryUsage()`; p50/p99/max of the per-10 ms samples, the 10 ms timer
 * period subtracted) and from the daemon's own metric (`effect_torrent_event_loop_lag_seconds` in /metrics: the worst
 * delay of each second, bucketed); RSS (VmRSS sampled every second, and VmHWM); CPU seconds (utime+stime of all its
 * threads, /proc/PID/stat) over the window and per connected peer per minute; the time its main thread waited for a
 * CPU (/proc/PID/task/PID/schedstat: the machine is shared); connections (`peers` of GET /api/stats, the daemon's
 * socket fds, and connections with libtorrent closed in the last minute, from TIME_WAIT sockets); the libtorrent
 * process's CPU and RSS as a reference; then the latency of `--requests` sequential GET /api/torrents (keep-alive, one
 * every 50 ms), p50/p99/max, and the daemon's CPU per request. The load average and the CPU other processes used
 * during each window are printed.
 *
 * Every wait is bounded; every child (daemon, libtorrent seeders) is killed by PID in `finally`; the temp dir is
 * removed. Knobs: ET_BENCH_CLI, ET_BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=D": the daemon is then stopped
 * with SIGINT and 90 s of grace so the profile is written), ET_BENCH_MALLOC_DEFAULT=1, ET_BENCH_KEEP=1 (keep the
 * temp dir), ET_BENCH_HEAP_SNAPSHOT=PREFIX with ET_BENCH_NODE_ARGS="--heapsnapshot-signal=SIGUSR2
 * --diagnostic-dir=D" (a heap snapshot at the end of the windows whose name starts with PREFIX; it blocks the daemon
 * for seconds, so what follows is disturbed).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { randomBytes } from "node:crypto"
import {
  argValue,
  CLI,
  effectEnv,
  freePort,
  HZ,
  libtorrentVersion,
  machineJiffies,
  nodeArgs,
  parseSize,
  processTimes,
  PYTHON,
  sleep,
  stopChild,
  vmKiB
} from "./harness.ts"

const nTorrents = Number(argValue("--torrents") ?? "200")
const size = parseSize(argValue("--size") ?? "2MiB")
const targetConnections = Number(argValue("--connections") ?? "500")
const ltProcs = Number(argValue("--lt-procs") ?? "1")
const seedRate = parseSize(argValue("--seed-rate") ?? "3MiB")
const windowS = Number(argValue("--window") ?? "30")
const idleWindowS = Number(argValue("--idle-window") ?? "60")
const nRequests = Number(argValue("--requests") ?? "200")
const PIECE_LOG = 18
const LAG_RESOLUTION_MS = 10
/** Bounds of the waits. */
const CONNECT_WAIT_MS = 120_000
const COMPLETE_WAIT_MS = 15 * 60_000

// ---------------------------------------------------------------------------------------------------------------
// Scripts written into the temp dir

/** Preloaded into the daemon (`node --import`): an event-loop delay monitor answering over IPC; resets per read. */
const LAG_MONITOR_MJS = `
import { monitorEventLoopDelay } from "node:perf_hooks"
const RES = ${LAG_RESOLUTION_MS}
const h = monitorEventLoopDelay({ resolution: RES })
h.enable()
if (process.send) {
  const ms = (ns) => Math.max(0, ns / 1e6 - RES)
  process.on("message", (m) => {
    if (m === null || typeof m !== "object" || m.type !== "lag") return
    process.send({ type: "lag", count: h.count, p50: ms(h.percentile(50)), p99: ms(h.percentile(99)),
      p999: ms(h.percentile(99.9)), max: ms(h.max), mean: ms(h.mean), memory: process.memoryUsage() })
    h.reset()
  })
  process.channel?.unref()
}
`

/**
 * Seeds every torrent listed in LIST (one path a line) from DATA_DIR in one libtorrent session (seed mode: the data
 * is ours and correct; not auto-managed so no queue applies); the session's upload limit (RATE bytes/s) is applied
 * to loopback peers too (every address in the global peer class). Prints {"port"} once all seed; stops when stdin
 * closes.
 */
const MULTI_SEEDER_PY = `
import libtorrent as lt, sys, json, time, select
lst, data_dir, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = lt.high_performance_seed()
s.update({"allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "min_reconnect_time": 1, "listen_interfaces": "127.0.0.1:0", "upload_rate_limit": rate,
  "active_seeds": 100000, "active_limit": 100000, "connections_limit": 100000,
  "alert_mask": lt.alert.category_t.error_notification})
ses = lt.session(s)
f = lt.ip_filter()
f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
ses.set_peer_class_filter(f)
hs = []
for path in open(lst).read().split():
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(path)
    p.save_path = data_dir
    p.flags = lt.torrent_flags.seed_mode
    hs.append(ses.add_torrent(p))
deadline = time.time() + 120
while time.time() < deadline:
    if ses.listen_port() != 0 and all(h.status().state == lt.torrent_status.seeding for h in hs): break
    time.sleep(0.2)
else:
    print(json.dumps({"error": "not all seeding"}), flush=True); sys.exit(1)
print(json.dumps({"port": ses.listen_port()}), flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r and not sys.stdin.read(1): break
`

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!

const agent = new Http.Agent({ keepAlive: true, maxSockets: 4 })

const request = async (
  port: number,
  method: string,
  path: string,
  body?: Uint8Array,
  contentType?: string
): Promise<{ status: number; body: string }> => {
  try {
    return await request1(port, method, path, body, contentType)
  } catch (e) {
    // A kept-alive connection the server closed just as we reused it: retry a GET once, on a new connection.
    if (method !== "GET" || (e as { code?: unknown }).code !== "ECONNRESET") throw e
    return request1(port, method, path, body, contentType)
  }
}

const request1 = (
  port: number,
  method: string,
  path: string,
  body?: Uint8Array,
  contentType?: string
): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {}
    if (body !== undefined) {
      headers["content-type"] = contentType ?? "application/octet-stream"
      headers["content-length"] = body.byteLength
    }
    const req = Http.request({ host: "127.0.0.1", port, method, path, agent, headers, timeout: 30_000 }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)))
    req.on("error", reject)
    req.end(body)
  })

const getJson = async <A>(port: number, path: string): Promise<A> => {
  const r = await request(port, "GET", path)
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body.slice(0, 200)}`)
  return JSON.parse(r.body) as A
}

interface Stats {
  readonly torrents: number
  readonly active: number
  readonly peers: number
  readonly downloadRate: number
  readonly uploadRate: number
  readonly downloaded: number
  readonly uploaded: number
}
interface Summary {
  readonly infoHash: string
  readonly state: string
  readonly complete: boolean
  readonly peers: number
}

/** Socket fds of a process (peer connections, listeners, the API's connections). */
const socketFds = (pid: number): number => {
  let n = 0
  try {
    for (const fd of Fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (Fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // gone
  }
  return n
}

/** Nanoseconds the process's main thread ran and waited for a CPU (/proc/PID/task/PID/schedstat). */
const schedstat = (pid: number): { run: number; wait: number } => {
  try {
    const [run, wait] = Fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "latin1").trim().split(" ").map(Number)
    return { run: run ?? 0, wait: wait ?? 0 }
  } catch {
    return { run: 0, wait: 0 }
  }
}

/**
 * TCP connections in TIME_WAIT with one end on one of `ports` (/proc/net/tcp): Linux keeps a closed connection there
 * 60 s, so this is about the number of connections with those peers closed in the last minute.
 */
const timeWait = (ports: ReadonlyArray<number>): number => {
  const hex = new Set(ports.map((p) => p.toString(16).toUpperCase().padStart(4, "0")))
  let n = 0
  for (const line of Fs.readFileSync("/proc/net/tcp", "latin1").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f[3] !== "06") continue
    if (hex.has(f[1]?.split(":")[1] ?? "") || hex.has(f[2]?.split(":")[1] ?? "")) n++
  }
  return n
}

/** `effect_torrent_event_loop_lag_seconds` buckets (cumulative counts by upper bound) and its count. */
const lagMetric = async (port: number): Promise<Map<string, number>> => {
  const r = await request(port, "GET", "/metrics")
  const out = new Map<string, number>()
  for (const line of r.body.split("\n")) {
    const m = /^effect_torrent_event_loop_lag_seconds_(bucket\{le="([^"]+)"\}|count|sum)\s+(\S+)/.exec(line)
    if (m !== null) out.set(m[2] ?? m[1]!, Number(m[3]))
  }
  return out
}

const lagMetricDelta = (a: Map<string, number>, b: Map<string, number>): string => {
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0)
  const seconds = d("count")
  if (seconds <= 0) return "no samples (is the metric exported?)"
  const over = (le: string) => seconds - d(le)
  return `${seconds} one-second samples, worst-of-second mean ${(1000 * d("sum") / seconds).toFixed(1)} ms; ` +
    `seconds whose worst delay exceeded 10 ms: ${over("0.01")}, 25 ms: ${over("0.025")}, 50 ms: ${over("0.05")}, ` +
    `100 ms: ${over("0.1")}, 250 ms: ${over("0.25")}, 1 s: ${over("1")}`
}

// ---------------------------------------------------------------------------------------------------------------
// In-process peers: handshake, empty bitfield, keep-alives; never interested

interface FakePeers {
  readonly open: () => number
  readonly closedByDaemon: () => number
  readonly stop: () => void
}

const startFakePeers = async (
  daemonPort: number,
  slots: ReadonlyArray<{ readonly infoHash: string; readonly pieces: number }>
): Promise<FakePeers> => {
  let stopped = false
  let open = 0
  let closedByDaemon = 0
  const sockets = new Set<Net.Socket>()
  const MAX_RECONNECTS = 3
  const connect = (slot: { readonly infoHash: string; readonly pieces: number }, attempt: number) => {
    if (stopped) return
    const sock = Net.connect({ host: "127.0.0.1", port: daemonPort })
    sockets.add(sock)
    let handshaken = false
    let got = 0
    sock.setNoDelay(true)
    sock.on("connect", () => {
      const hs = Buffer.alloc(68)
      hs[0] = 19
      hs.write("BitTorrent protocol", 1, "latin1")
      Buffer.from(slot.infoHash, "hex").copy(hs, 28)
      Buffer.concat([Buffer.from("-FK0001-", "latin1"), randomBytes(12)]).copy(hs, 48)
      const bfLen = Math.ceil(slot.pieces / 8)
      const bf = Buffer.alloc(5 + bfLen)
      bf.writeUInt32BE(1 + bfLen, 0)
      bf[4] = 5
      sock.write(Buffer.concat([hs, bf]))
    })
    sock.on("data", (d: Buffer) => {
      got += d.length
      if (!handshaken && got >= 68) {
        handshaken = true
        open++
      }
    })
    const keepAlive = setInterval(() => sock.write(Buffer.alloc(4)), 30_000)
    sock.on("error", () => {})
    sock.on("close", () => {
      clearInterval(keepAlive)
      sockets.delete(sock)
      if (handshaken) open--
      if (stopped) return
      closedByDaemon++
      if (attempt < MAX_RECONNECTS) setTimeout(() => connect(slot, attempt + 1), 2_000)
    })
  }
  // Dial in batches, so the daemon's accept queue and handshake timeouts are not the thing measured.
  for (let i = 0; i < slots.length; i += 25) {
    for (const slot of slots.slice(i, i + 25)) connect(slot, 0)
    await sleep(200)
  }
  return {
    open: () => open,
    closedByDaemon: () => closedByDaemon,
    stop: () => {
      stopped = true
      for (const s of sockets) s.destroy()
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Measurement windows

interface Lag {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly p999: number
  readonly max: number
  readonly mean: number
  readonly memory: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number }
}

interface WindowResult {
  readonly name: string
  readonly seconds: number
  readonly cpuS: number
  readonly userS: number
  readonly sysS: number
  readonly othersS: number
  readonly stealS: number
  readonly load: number
  readonly lag: Lag
  readonly lagMetric: string
  readonly maxRssMiB: number
  readonly endRssMiB: number
  readonly peersStart: number
  readonly peersEnd: number
  readonly socketsEnd: number
  readonly fakeOpenEnd: number
  readonly completeStart: number
  readonly completeEnd: number
  readonly rate: string
  readonly runQueueWaitS: number
  readonly timeWaitEnd: number
  /** The libtorrent seeder processes (all of them): CPU seconds in the window, RSS at its end (MiB). */
  readonly ltCpuS: number
  readonly ltRssMiB: number
}

const readLag = (daemon: ChildProcess): Promise<Lag> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("lag monitor did not answer within 10 s")), 10_000)
    const onMessage = (m: unknown) => {
      if (m !== null && typeof m === "object" && (m as { type?: unknown }).type === "lag") {
        clearTimeout(timer)
        daemon.off("message", onMessage)
        resolve(m as Lag)
      }
    }
    daemon.on("message", onMessage)
    daemon.send({ type: "lag" })
  })

const countComplete = async (port: number): Promise<number> =>
  (await getJson<ReadonlyArray<Summary>>(port, "/api/torrents")).filter((t) => t.complete).length

const measureWindow = async (
  name: string,
  daemon: ChildProcess,
  pid: number,
  httpPort: number,
  fake: FakePeers,
  seconds: number,
  ltPorts: ReadonlyArray<number>,
  ltPids: ReadonlyArray<number>
): Promise<WindowResult> => {
  const ltJiffies = () => ltPids.reduce((n, p) => n + processTimes(p).user + processTimes(p).sys, 0)
  const completeStart = await countComplete(httpPort)
  const statsStart = await getJson<Stats>(httpPort, "/api/stats")
  const metricStart = await lagMetric(httpPort)
  const load = Os.loadavg()[0]!
  await readLag(daemon) // resets the monitor
  const t0 = performance.now()
  const mono0 = process.hrtime.bigint() / 1000n
  const sched0 = schedstat(pid)
  const lt0 = ltJiffies()
  const p0 = processTimes(pid)
  const m0 = machineJiffies()
  let maxRss = vmKiB(pid, "VmRSS")
  const end = Date.now() + seconds * 1000
  while (Date.now() < end) {
    await sleep(Math.min(1_000, Math.max(0, end - Date.now())))
    maxRss = Math.max(maxRss, vmKiB(pid, "VmRSS"))
  }
  const p1 = processTimes(pid)
  const m1 = machineJiffies()
  const sched1 = schedstat(pid)
  const lt1 = ltJiffies()
  const elapsed = (performance.now() - t0) / 1000
  // CLOCK_MONOTONIC in µs, the clock of a --cpu-prof profile's timestamps: to cut a profile to this window.
  if (nodeArgs.some((a) => a.startsWith("--cpu-prof"))) {
    console.log(`(${name}: monotonic µs ${mono0} .. ${process.hrtime.bigint() / 1000n})`)
  }
  const lag = await readLag(daemon)
  if (process.env["ET_BENCH_HEAP_SNAPSHOT"] && name.startsWith(process.env["ET_BENCH_HEAP_SNAPSHOT"])) {
    // With ET_BENCH_NODE_ARGS="--heapsnapshot-signal=SIGUSR2": a heap snapshot at the end of this window (it blocks
    // the daemon for seconds: measurements after it are disturbed).
    process.kill(pid, "SIGUSR2")
  }
  const endRss = vmKiB(pid, "VmRSS")
  const metricEnd = await lagMetric(httpPort)
  const statsEnd = await getJson<Stats>(httpPort, "/api/stats")
  const completeEnd = await countComplete(httpPort)
  const own = (p1.user + p1.sys - p0.user - p0.sys)
  return {
    name,
    seconds: elapsed,
    cpuS: own / HZ,
    userS: (p1.user - p0.user) / HZ,
    sysS: (p1.sys - p0.sys) / HZ,
    othersS: (m1.busy - m0.busy - own) / HZ,
    stealS: (m1.steal - m0.steal) / HZ,
    load,
    lag,
    lagMetric: lagMetricDelta(metricStart, metricEnd),
    maxRssMiB: Math.max(maxRss, endRss) / 1024,
    endRssMiB: endRss / 1024,
    peersStart: statsStart.peers,
    peersEnd: statsEnd.peers,
    socketsEnd: socketFds(pid),
    fakeOpenEnd: fake.open(),
    completeStart,
    completeEnd,
    runQueueWaitS: (sched1.wait - sched0.wait) / 1e9,
    timeWaitEnd: timeWait(ltPorts),
    ltCpuS: (lt1 - lt0) / HZ,
    ltRssMiB: ltPids.reduce((n, p) => n + vmKiB(p, "VmRSS"), 0) / 1024,
    rate: `downloaded ${((statsEnd.downloaded - statsStart.downloaded) / 2 ** 20 / elapsed).toFixed(2)} MiB/s on ` +
      `average over the window (stats: down ${(statsEnd.downloadRate / 2 ** 20).toFixed(2)} MiB/s at its end)`
  }
}

/** `n` sequential GET /api/torrents, one every 50 ms; milliseconds each, sorted, and the body's size. */
const measureList = async (
  httpPort: number,
  n: number,
  pid: number,
  baselineCores: number
): Promise<{ sorted: Array<number>; bytes: number; cpuMsPerRequest: number }> => {
  const times: Array<number> = []
  let bytes = 0
  const j0 = processTimes(pid)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    const r = await request(httpPort, "GET", "/api/torrents")
    times.push(performance.now() - t0)
    if (r.status !== 200) throw new Error(`GET /api/torrents: ${r.status}`)
    bytes = r.body.length
    await sleep(50)
  }
  const j1 = processTimes(pid)
  const cpuS = (j1.user + j1.sys - j0.user - j0.sys) / HZ
  const extraS = cpuS - baselineCores * (performance.now() - t0) / 1000
  return { sorted: times.sort((a, b) => a - b), bytes, cpuMsPerRequest: 1000 * extraS / n }
}

const printWindow = (w: WindowResult) => {
  const peersAvg = (w.peersStart + w.peersEnd) / 2
  console.log(`\n== ${w.name}: ${w.seconds.toFixed(1)} s window, load average ${w.load.toFixed(2)} before it`)
  console.log(`  connections (GET /api/stats peers): ${w.peersStart} at start, ${w.peersEnd} at end; ` +
    `daemon socket fds ${w.socketsEnd}; in-process peers open ${w.fakeOpenEnd}`)
  console.log(`  torrents complete: ${w.completeStart} at start, ${w.completeEnd} at end; ${w.rate}`)
  console.log(`  connections with the libtorrent seeders closed in the last minute (TIME_WAIT): ${w.timeWaitEnd}`)
  console.log(`  event-loop lag (monitor, ${w.lag.count} samples): p50 ${w.lag.p50.toFixed(2)} ms, p99 ` +
    `${w.lag.p99.toFixed(2)} ms, p99.9 ${w.lag.p999.toFixed(2)} ms, max ${w.lag.max.toFixed(2)} ms, mean ${w.lag.mean.toFixed(2)} ms`)
  console.log(`  event-loop lag (/metrics): ${w.lagMetric}`)
  console.log(`  the daemon's main thread waited ${w.runQueueWaitS.toFixed(1)} s of the ${w.seconds.toFixed(0)} s for a CPU ` +
    `(runnable, not running: /proc/PID/task/PID/schedstat)`)
  const mem = w.lag.memory
  const mib = (n: number) => (n / 2 ** 20).toFixed(1)
  console.log(`  RSS: max ${w.maxRssMiB.toFixed(1)} MiB (sampled each second), ${w.endRssMiB.toFixed(1)} MiB at end; ` +
    `process.memoryUsage() at end: heap used ${mib(mem.heapUsed)} of ${mib(mem.heapTotal)} MiB, external ` +
    `${mib(mem.external)} MiB (ArrayBuffers ${mib(mem.arrayBuffers)} MiB)`)
  console.log(`  CPU: ${w.cpuS.toFixed(2)} s (user ${w.userS.toFixed(2)}, sys ${w.sysS.toFixed(2)}) = ` +
    `${(w.cpuS / w.seconds).toFixed(3)} cores; per connected peer per minute: ` +
    `${(1000 * w.cpuS / Math.max(1, peersAvg) / (w.seconds / 60)).toFixed(2)} ms ` +
    `(${peersAvg.toFixed(0)} peers); others used ${w.othersS.toFixed(1)} CPU s, steal ${w.stealS.toFixed(1)} s`)
  if (w.ltRssMiB > 0) {
    console.log(`  reference, the libtorrent seeder process(es) (the same torrents, seed mode): CPU ${w.ltCpuS.toFixed(2)} s ` +
      `in the window, RSS ${w.ltRssMiB.toFixed(1)} MiB (its mmap'ed payload included)`)
  }
}

const printList = (name: string, l: { sorted: Array<number>; bytes: number; cpuMsPerRequest: number }) =>
  console.log(`  GET /api/torrents ${name} (${l.sorted.length} sequential, ${(l.bytes / 1024).toFixed(0)} KiB each): ` +
    `p50 ${quantile(l.sorted, 0.5).toFixed(1)} ms, p99 ${quantile(l.sorted, 0.99).toFixed(1)} ms, ` +
    `max ${l.sorted.at(-1)!.toFixed(1)} ms; the daemon's CPU per request ≈ ${l.cpuMsPerRequest.toFixed(1)} ms ` +
    `(its CPU during the series minus the window's rate)`)

// ---------------------------------------------------------------------------------------------------------------
// Main

const main = async () => {
  const tmp = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-daemon-scale-"))
  const children: Array<ChildProcess> = []
  let daemon: ChildProcess | undefined
  let fake: FakePeers | undefined
  const cpuProf = nodeArgs.some((a) => a.startsWith("--cpu-prof"))
  try {
    console.log(`effect-torrent daemon at scale: ${nTorrents} torrents of ${size} B (+ odd bytes), 256 KiB pieces, ` +
      `target ${targetConnections} connections, ${ltProcs} libtorrent process(es) seeding at ${seedRate} B/s in all`)
    console.log(`machine: ${Os.cpus().length} vCPU ${Os.cpus()[0]?.model ?? ""}, node ${process.version}, ` +
      `libtorrent ${libtorrentVersion()}, load average ${Os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)

    // Payloads and torrents.
    const seedDir = Path.join(tmp, "seed")
    const torrentDir = Path.join(tmp, "torrents")
    Fs.mkdirSync(seedDir)
    Fs.mkdirSync(torrentDir)
    const torrents: Array<{ path: string; size: number; pieces: number }> = []
    const t0 = performance.now()
    for (let i = 0; i < nTorrents; i++) {
      const name = `t${String(i).padStart(4, "0")}.bin`
      const bytes = size + ((i * 7919) % 4096)
      Fs.writeFileSync(Path.join(seedDir, name), randomBytes(bytes))
      const out = Path.join(torrentDir, `${name}.torrent`)
      execFileSync("mktorrent", ["-l", String(PIECE_LOG), "-o", out, Path.join(seedDir, name)], { stdio: "ignore" })
      torrents.push({ path: out, size: bytes, pieces: Math.ceil(bytes / 2 ** PIECE_LOG) })
    }
    console.log(`made ${nTorrents} torrents in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    // libtorrent seeders.
    Fs.writeFileSync(Path.join(tmp, "seed.py"), MULTI_SEEDER_PY)
    Fs.writeFileSync(Path.join(tmp, "list.txt"), torrents.map((t) => t.path).join("\n"))
    const ltPorts: Array<number> = []
    for (let i = 0; i < ltProcs; i++) {
      const child = spawn(PYTHON, [Path.join(tmp, "seed.py"), Path.join(tmp, "list.txt"), seedDir, String(Math.round(seedRate / ltProcs))], {
        stdio: ["pipe", "pipe", "inherit"]
      })
      children.push(child)
      ltPorts.push(
        await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("libtorrent seeder not ready within 150 s")), 150_000)
          let out = ""
          child.stdout!.on("data", (d: Buffer) => {
            out += d.toString()
            const nl = out.indexOf("\n")
            if (nl < 0) return
            clearTimeout(timer)
            const msg = JSON.parse(out.slice(0, nl)) as { port?: number; error?: string }
            if (msg.port !== undefined) resolve(msg.port)
            else reject(new Error(`libtorrent seeder: ${msg.error}`))
          })
          child.once("exit", (code) => reject(new Error(`libtorrent seeder exited with ${code}`)))
        })
      )
    }
    const ltPids = children.map((c) => c.pid!)
    console.log(`libtorrent seeders on ports ${ltPorts.join(", ")} (pids ${children.map((c) => c.pid).join(", ")})`)

    // The daemon.
    const lagPath = Path.join(tmp, "lag-monitor.mjs")
    Fs.writeFileSync(lagPath, LAG_MONITOR_MJS)
    const httpPort = await freePort()
    const peerPort = await freePort()
    const perTorrent = Math.ceil(targetConnections / nTorrents) + ltProcs + 2
    const daemonArgs = [
      ...nodeArgs, "--import", lagPath, CLI, "daemon",
      "--download-dir", Path.join(tmp, "dl"), "--state-dir", Path.join(tmp, "state"),
      "--http", `127.0.0.1:${httpPort}`, "--port", String(peerPort), "--bind", "127.0.0.1",
      "--max-active-downloads", String(nTorrents), "--max-active-seeds", String(nTorrents),
      "--max-connections", String(targetConnections + 200), "--max-peers", String(perTorrent),
      "--no-dht", "--no-pex", "--encryption", "off"
    ]
    daemon = spawn(process.execPath, daemonArgs, {
      env: { ...effectEnv(), EFFECT_TORRENT_LOOPBACK_ONLY: "1", NO_COLOR: "1" },
      cwd: tmp,
      stdio: ["ignore", "pipe", "inherit", "ipc"]
    })
    const d = daemon
    const pid = d.pid!
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("daemon not ready within 30 s")), 30_000)
      let out = ""
      d.stdout!.on("data", (c: Buffer) => {
        out += c.toString()
        if (out.includes("API on")) {
          clearTimeout(timer)
          resolve()
        }
      })
      d.once("exit", (code) => reject(new Error(`daemon exited with ${code}: ${out}`)))
    })
    console.log(`daemon pid ${pid}: API 127.0.0.1:${httpPort}, peers 127.0.0.1:${peerPort}, max-peers ${perTorrent}; ` +
      `RSS at start ${(vmKiB(pid, "VmRSS") / 1024).toFixed(1)} MiB`)

    // Add every torrent through the API.
    const query = ltPorts.map((p) => `peers=${encodeURIComponent(`127.0.0.1:${p}`)}`).join("&")
    const infoHashes: Array<string> = []
    const addTimes: Array<number> = []
    for (const t of torrents) {
      const a0 = performance.now()
      const r = await request(httpPort, "POST", `/api/torrents?${query}`, Fs.readFileSync(t.path), "application/x-bittorrent")
      addTimes.push(performance.now() - a0)
      if (r.status !== 201) throw new Error(`POST /api/torrents: ${r.status} ${r.body.slice(0, 300)}`)
      infoHashes.push((JSON.parse(r.body) as { infoHash: string }).infoHash)
    }
    addTimes.sort((a, b) => a - b)
    console.log(`added ${infoHashes.length} torrents: POST /api/torrents p50 ${quantile(addTimes, 0.5).toFixed(1)} ms, ` +
      `p99 ${quantile(addTimes, 0.99).toFixed(1)} ms, max ${addTimes.at(-1)!.toFixed(1)} ms`)

    // In-process peers up to the target.
    const fakeCount = Math.max(0, targetConnections - nTorrents * ltProcs)
    const slots = Array.from({ length: fakeCount }, (_, i) => ({
      infoHash: infoHashes[i % nTorrents]!,
      pieces: torrents[i % nTorrents]!.pieces
    }))
    fake = await startFakePeers(peerPort, slots)
    const c0 = Date.now()
    let stats = await getJson<Stats>(httpPort, "/api/stats")
    while (Date.now() - c0 < CONNECT_WAIT_MS && stats.peers < 0.98 * targetConnections) {
      await sleep(2_000)
      stats = await getJson<Stats>(httpPort, "/api/stats")
    }
    console.log(`connections after ${((Date.now() - c0) / 1000).toFixed(0)} s: ${stats.peers} (stats), ` +
      `${fake.open()} in-process peers open (${fake.closedByDaemon()} closed by the daemon so far), ` +
      `${stats.active} active torrents, down ${(stats.downloadRate / 2 ** 20).toFixed(2)} MiB/s`)

    // Loaded.
    const loaded = await measureWindow("loaded (downloading)", d, pid, httpPort, fake, windowS, ltPorts, ltPids)
    printWindow(loaded)
    const listLoaded = await measureList(httpPort, nRequests, pid, loaded.cpuS / loaded.seconds)
    printList("while loaded", listLoaded)

    // Wait for completion.
    const w0 = Date.now()
    let complete = await countComplete(httpPort)
    while (complete < nTorrents && Date.now() - w0 < COMPLETE_WAIT_MS) {
      await sleep(3_000)
      complete = await countComplete(httpPort)
    }
    console.log(`\n${complete}/${nTorrents} complete, ${((Date.now() - w0) / 1000).toFixed(0)} s after the loaded ` +
      `measurements; ${fake.open()} in-process peers open, ${fake.closedByDaemon()} closed by the daemon`)
    await sleep(15_000)

    // Idle.
    const idle = await measureWindow("idle (complete, seeding)", d, pid, httpPort, fake, idleWindowS, ltPorts, ltPids)
    printWindow(idle)
    const listIdle = await measureList(httpPort, nRequests, pid, idle.cpuS / idle.seconds)
    printList("at idle", listIdle)

    // Idle again without the libtorrent seeders: only the in-process peers stay connected.
    for (const c of children) await stopChild(c, "stdin", 5_000)
    console.log(`\nlibtorrent seeders stopped; waiting 20 s`)
    await sleep(20_000)
    const idle2 = await measureWindow("idle, libtorrent seeders gone (in-process peers only)", d, pid, httpPort, fake, idleWindowS, ltPorts, ltPids)
    printWindow(idle2)
    const listIdle2 = await measureList(httpPort, nRequests, pid, idle2.cpuS / idle2.seconds)
    printList("at idle, seeders gone", listIdle2)
    console.log(`  VmHWM (peak RSS over the whole run): ${(vmKiB(pid, "VmHWM") / 1024).toFixed(1)} MiB`)

    const goal = (ok: boolean) => (ok ? "met" : "MISSED")
    const worstP99 = Math.max(loaded.lag.p99, idle.lag.p99, idle2.lag.p99)
    const hwm = vmKiB(pid, "VmHWM") / 1024
    const listP99 = Math.max(quantile(listLoaded.sorted, 0.99), quantile(listIdle.sorted, 0.99), quantile(listIdle2.sorted, 0.99))
    console.log(`\ngoals: lag p99 ≤ 50 ms: ${worstP99.toFixed(1)} ms ${goal(worstP99 <= 50)}; RSS ≤ 300 MiB: ` +
      `${hwm.toFixed(0)} MiB ${goal(hwm <= 300)}; GET /api/torrents p99 ≤ 50 ms: ${listP99.toFixed(1)} ms ` +
      `${goal(listP99 <= 50)}`)
  } finally {
    fake?.stop()
    if (daemon !== undefined) {
      const s0 = performance.now()
      await stopChild(daemon, cpuProf ? "SIGINT" : "SIGTERM", cpuProf ? 90_000 : 20_000)
      console.log(`daemon stopped ${((performance.now() - s0) / 1000).toFixed(1)} s after ${cpuProf ? "SIGINT" : "SIGTERM"}` +
        ` (exit ${daemon.exitCode ?? daemon.signalCode})`)
    }
    for (const c of children) await stopChild(c, "stdin", 5_000)
    agent.destroy()
    if (process.env["ET_BENCH_KEEP"]) console.log(`kept ${tmp}`)
    else Fs.rmSync(tmp, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  }
)
