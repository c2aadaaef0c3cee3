/**
 * Real BitTorrent clients as seeders on 127.0.0.1 for interop tests (flags from PEERS.md): aria2c,
 * python3-libtorrent (through `/usr/bin/python3`) and transmission-cli. Each seeds a `.torrent` we built over data
 * written into a temporary directory. `stop()` kills by PID and removes the directory.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import type { Built } from "./seeder.ts"

/** Per seeder: `upLimit` caps its upload, bytes/s (so that no single fast seeder serves a whole swarm test alone). */
export interface SeederOptions {
  readonly upLimit?: number | undefined
  /** More command-line flags (aria2c only). */
  readonly extra?: ReadonlyArray<string> | undefined
}

export interface RealSeeder {
  readonly port: number
  readonly pid: number
  /** Where the seeder's copy of the data is (the torrent's files under it as `download -o` lays them out). */
  readonly dataDir: string
  readonly log: () => string
  readonly stop: () => Promise<void>
}

const has = (cmd: string, args: ReadonlyArray<string> = []): boolean => {
  try {
    if (args.length > 0) execFileSync(cmd, args, { stdio: "ignore" })
    else execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

export const installed = {
  aria2c: () => has("aria2c"),
  libtorrent: () => has("/usr/bin/python3", ["-c", "import libtorrent"]),
  transmission: () => has("transmission-cli")
}

/** `true` to run; an absent binary skips loudly outside CI and fails in CI. */
export const shouldRun = (name: keyof typeof installed): boolean => {
  if (installed[name]()) return true
  if (process.env["CI"]) return true
  console.warn(`\n!!! SKIPPING interop with ${name}: it is not installed (see PEERS.md) !!!\n`)
  return false
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = Net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })

/** Writes the torrent's files under `dir` (multi-file: `dir/name/...`) and the `.torrent` next to them. */
const prepare = (built: Built, prefix: string): { dir: string; torrent: string } => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  built.metainfo.files.forEach((f, i) => {
    if (f.pad) return
    const p = join(dir, "data", ...f.path)
    mkdirSync(dirname(p), { recursive: true })
    writeFileSync(p, built.files[i]!)
  })
  const torrent = join(dir, "seed.torrent")
  writeFileSync(torrent, built.bytes)
  return { dir, torrent }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
export const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = Net.connect(port, "127.0.0.1")
    s.once("connect", () => {
      s.destroy()
      resolve(true)
    })
    s.once("error", () => resolve(false))
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const supervise = (child: ChildProcess, dir: string, port: number) => {
  let log = ""
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()))
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()))
      process.kill(child.pid, "SIGTERM")
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 2000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return { port, pid: child.pid!, dataDir: join(dir, "data"), log: () => log, stop }
}

/** aria2c seeding `built` (`options.extra`: more aria2c flags); ready once its RPC reports it is a seeder. */
export const aria2 = async (built: Built, options: SeederOptions = {}): Promise<RealSeeder> => {
  const { dir, torrent } = prepare(built, "aria2-seed-")
  const port = await freePort()
  const rpc = await freePort()
  const child = spawn("aria2c", [
    `--dir=${join(dir, "data")}`,
    "--check-integrity=true",
    "--seed-ratio=0.0",
    `--listen-port=${port}`,
    "--interface=127.0.0.1",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--bt-max-peers=0",
    "--enable-rpc",
    `--rpc-listen-port=${rpc}`,
    "--summary-interval=0",
    ...(options.upLimit === undefined ? [] : [`--max-upload-limit=${options.upLimit}`]),
    ...(options.extra ?? []),
    torrent
  ], { stdio: ["ignore", "pipe", "pipe"] })
  const s = supervise(child, dir, port)
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${rpc}/jsonrpc`, {
        method: "POST",
        body: JSON.stringify({ jsonrpc: "2.0", id: "1", method: "aria2.tellActive", params: [["seeder"]] })
      })
      const body = (await res.json()) as { result?: ReadonlyArray<{ seeder?: string }> }
      if (body.result?.some((r) => r.seeder === "true") === true && (await canConnect(port))) return s
    } catch {
      // not up yet
    }
    await sleep(100)
  }
  await s.stop()
  throw new Error(`aria2c did not start seeding within 20 s: ${s.log()}`)
}

const LT_SCRIPT = `
import libtorrent as lt, sys, json, time, select
torrent, save, up = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = lt.high_performance_seed()
s.update({"listen_interfaces": "127.0.0.1:0", "allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "announce_to_all_trackers": True, "announce_to_all_tiers": True, "upload_rate_limit": up})
ses = lt.session(s)
if up > 0:
    # Rate limits apply to the global peer class only; by default 127.0.0.1 is a local peer, never limited.
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(f)
h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save, "flags": lt.torrent_flags.seed_mode})
for _ in range(200):
    if ses.listen_port() != 0 and h.status().state == lt.torrent_status.seeding: break
    time.sleep(0.05)
print(json.dumps({"port": ses.listen_port()}), flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r and not sys.stdin.read(1): break
`

/** python3-libtorrent seeding `built` (seed mode); announces to the torrent's trackers. */
export const libtorrent = async (built: Built, options: SeederOptions = {}): Promise<RealSeeder> => {
  const { dir, torrent } = prepare(built, "lt-seed-")
  writeFileSync(join(dir, "seed.py"), LT_SCRIPT)
  const up = String(options.upLimit ?? 0) // 0: unlimited
  const child = spawn("/usr/bin/python3", [join(dir, "seed.py"), torrent, join(dir, "data"), up], {
    stdio: ["pipe", "pipe", "pipe"]
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ""
    const timer = setTimeout(() => reject(new Error(`libtorrent seeder did not start: ${out}`)), 20_000)
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf("\n")
      if (nl >= 0) {
        clearTimeout(timer)
        resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port)
      }
    })
    child.once("exit", (c) => reject(new Error(`libtorrent seeder exited with ${c}`)))
  })
  return supervise(child, dir, port)
}

/** transmission-cli seeding `built` (it verifies the data first; we dial it). */
export const transmission = async (built: Built, options: SeederOptions = {}): Promise<RealSeeder> => {
  const { dir, torrent } = prepare(built, "tr-seed-")
  const port = await freePort()
  const config = join(dir, "config")
  mkdirSync(config)
  writeFileSync(join(config, "settings.json"), JSON.stringify({
    "dht-enabled": false,
    "lpd-enabled": false,
    "pex-enabled": false,
    "utp-enabled": false,
    "port-forwarding-enabled": false,
    "bind-address-ipv4": "127.0.0.1",
    "encryption": 0,
    "peer-port": port,
    "ratio-limit-enabled": false,
    "speed-limit-up-enabled": options.upLimit !== undefined,
    "speed-limit-up": Math.max(1, Math.round((options.upLimit ?? 0) / 1000)) // kB/s
  }))
  const child = spawn("transmission-cli", ["-g", config, "-w", join(dir, "data"), "-p", String(port), "-et", torrent], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  const s = supervise(child, dir, port)
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    if (/Seeding/i.test(s.log()) && (await canConnect(port))) return s
    await sleep(100)
  }
  await s.stop()
  throw new Error(`transmission-cli did not start seeding within 20 s: ${s.log()}`)
}
