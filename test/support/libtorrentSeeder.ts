/**
 * Starts a libtorrent 2.0 seeder (Debian's python3-libtorrent, run by `/usr/bin/python3`) on 127.0.0.1 for one
 * payload: it writes the payload into a temporary directory, makes a v1 torrent of it, seeds it (seed mode, no DHT,
 * LSD, UPnP, uTP or encryption; PEERS.md) and reports its port and info-hash. `stop()` closes its stdin (it exits),
 * kills it by PID if it lingers, and removes the directory.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const PYTHON = "/usr/bin/python3"

const SCRIPT = `
import libtorrent as lt, sys, json, time, os, select
data_dir, name, piece_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
fs = lt.file_storage()
lt.add_files(fs, os.path.join(data_dir, name))
ct = lt.create_torrent(fs, piece_len, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, data_dir)
ti = lt.torrent_info(ct.generate())
s = lt.high_performance_seed()
s.update({"listen_interfaces": "127.0.0.1:0", "allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification})
ses = lt.session(s)
h = ses.add_torrent({"ti": ti, "save_path": data_dir, "flags": lt.torrent_flags.seed_mode})
for _ in range(200):
    if ses.listen_port() != 0 and h.status().state == lt.torrent_status.seeding: break
    time.sleep(0.05)
print(json.dumps({"port": ses.listen_port(), "infoHash": str(ti.info_hashes().v1)}), flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r and not sys.stdin.read(1): break
    for a in ses.pop_alerts():
        print(a.message(), file=sys.stderr, flush=True)
`

/**
 * Seeds a given `.torrent` (any file list, hostile names included): the payload (the torrent's bytes in order) is
 * written where libtorrent itself puts each file (its own sanitized `file_path`), pad files and symlinks left out.
 */
const SCRIPT_FOR = `
import libtorrent as lt, sys, json, time, os, select
torrent, data_dir, payload_path = sys.argv[1], sys.argv[2], sys.argv[3]
ti = lt.torrent_info(torrent)
fs = ti.files()
payload = open(payload_path, "rb").read()
for i in range(fs.num_files()):
    if fs.file_flags(i) & (lt.file_storage.flag_pad_file | lt.file_storage.flag_symlink): continue
    path = os.path.join(data_dir, fs.file_path(i))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(payload[fs.file_offset(i):fs.file_offset(i) + fs.file_size(i)])
s = lt.high_performance_seed()
s.update({"listen_interfaces": "127.0.0.1:0", "allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification})
ses = lt.session(s)
h = ses.add_torrent({"ti": ti, "save_path": data_dir, "flags": lt.torrent_flags.seed_mode})
for _ in range(200):
    if ses.listen_port() != 0 and h.status().state == lt.torrent_status.seeding: break
    time.sleep(0.05)
print(json.dumps({"port": ses.listen_port(), "infoHash": str(ti.info_hashes().v1)}), flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r and not sys.stdin.read(1): break
    for a in ses.pop_alerts():
        print(a.message(), file=sys.stderr, flush=True)
`

/** Whether `/usr/bin/python3` can import libtorrent. */
export const isInstalled = (): boolean => {
  try {
    execFileSync(PYTHON, ["-c", "import libtorrent"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** `true` to run the suite; absent libtorrent skips loudly outside CI and fails in CI. */
export const shouldRun = (suite: string): boolean => {
  if (isInstalled()) return true
  if (process.env["CI"]) return true
  console.warn(`\n!!! SKIPPING ${suite}: python3-libtorrent is not installed (apt-get install python3-libtorrent)!!!\n`)
  return false
}

export interface Seeder {
  readonly port: number
  readonly pid: number
  /** Lower-case hex v1 info-hash. */
  readonly infoHash: string
  /** What libtorrent logged (peer and error alerts), for failure messages. */
  readonly log: () => string
  readonly stop: () => Promise<void>
}

export const start = (payload: Uint8Array, pieceLength: number): Promise<Seeder> => {
  const dir = mkdtempSync(join(tmpdir(), "lt-seed-"))
  writeFileSync(join(dir, "payload.bin"), payload)
  writeFileSync(join(dir, "seed.py"), SCRIPT)
  return run(dir, [join(dir, "seed.py"), dir, "payload.bin", String(pieceLength)])
}

/** Seeds the torrent `torrent` (its bytes) with `payload` as its data, in a temporary directory. */
export const startFor = (torrent: Uint8Array, payload: Uint8Array): Promise<Seeder> => {
  const dir = mkdtempSync(join(tmpdir(), "lt-seed-"))
  const data = join(dir, "data")
  mkdirSync(data)
  writeFileSync(join(dir, "t.torrent"), torrent)
  writeFileSync(join(dir, "payload.bin"), payload)
  writeFileSync(join(dir, "seed.py"), SCRIPT_FOR)
  return run(dir, [join(dir, "seed.py"), join(dir, "t.torrent"), data, join(dir, "payload.bin")])
}

const run = (dir: string, args: ReadonlyArray<string>): Promise<Seeder> => {
  const child: ChildProcess = spawn(PYTHON, [...args], { stdio: ["pipe", "pipe", "pipe"] })
  let stderr = ""
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString()
  })
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      child.stdin!.end()
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 3000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return new Promise<Seeder>((resolve, reject) => {
    let out = ""
    const onData = (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf("\n")
      if (nl < 0) return
      child.stdout!.off("data", onData)
      try {
        const info = JSON.parse(out.slice(0, nl)) as { port: number; infoHash: string }
        resolve({ port: info.port, pid: child.pid!, infoHash: info.infoHash, log: () => stderr, stop })
      } catch (e) {
        void stop()
        reject(e)
      }
    }
    child.stdout!.on("data", onData)
    child.once("exit", (code) => {
      reject(new Error(`libtorrent seeder exited with ${code}: ${stderr}`))
      rmSync(dir, { recursive: true, force: true })
    })
  })
}
