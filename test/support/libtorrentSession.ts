/**
 * A scriptable python3-libtorrent 2.0 session (Debian's, through `/usr/bin/python3`) on 127.0.0.1 for interop
 * tests of the swarm features: DHT, magnet links, PEX, the fast extension. One process per session, driven by JSON
 * lines on stdin; it answers on stdout. Settings start from PEERS.md's loopback settings (no LSD/UPnP/uTP, no
 * encryption, several connections per IP, DHT restricted to nothing so loopback works) and take overrides.
 * `stop()` closes stdin (it exits), kills by PID if it lingers, and removes its temporary directory.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { PYTHON } from "./libtorrentSeeder.ts"
import type { Built } from "./seeder.ts"

const SCRIPT = `
import libtorrent as lt, sys, json, time, select
overrides = json.loads(sys.argv[1])
s = {"listen_interfaces": "127.0.0.1:0", "allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "dht_bootstrap_nodes": "", "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
  "dht_ignore_dark_internet": False, "dht_enforce_node_id": False, "dht_prefer_verified_node_ids": False,
  "min_reconnect_time": 1, "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification}
s.update(overrides)
ses = lt.session(s)
for _ in range(200):
    if ses.listen_port() != 0: break
    time.sleep(0.05)
def out(obj): print(json.dumps(obj), flush=True)
out({"event": "ready", "port": ses.listen_port()})
handles = {}
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.05)
    if r:
        line = sys.stdin.readline()
        if not line: break
        c = json.loads(line)
        op = c["op"]
        try:
            if op == "seed":
                p = {"ti": lt.torrent_info(c["torrent"]), "save_path": c["save"], "flags": lt.torrent_flags.seed_mode}
                handles[c["id"]] = ses.add_torrent(p)
            elif op == "add":
                p = {"ti": lt.torrent_info(c["torrent"]), "save_path": c["save"]}
                handles[c["id"]] = ses.add_torrent(p)
            elif op == "magnet":
                p = lt.parse_magnet_uri(c["uri"])
                p.save_path = c["save"]
                handles[c["id"]] = ses.add_torrent(p)
            elif op == "limit":
                handles[c["id"]].set_download_limit(c["down"])
            elif op == "uplimit":
                handles[c["id"]].set_upload_limit(c["up"])
            elif op == "connect":
                handles[c["id"]].connect_peer((c["ip"], c["port"]))
            elif op == "settings":
                ses.apply_settings(c["settings"])
            elif op == "dht_node":
                ses.add_dht_node((c["ip"], c["port"]))
            elif op == "dht_announce":
                handles[c["id"]].force_dht_announce()
            elif op == "status":
                st = handles[c["id"]].status()
                peers = [{"ip": p.ip[0], "port": p.ip[1], "client": p.client.decode("utf-8", "replace") if isinstance(p.client, bytes) else str(p.client), "source": int(p.source), "down": p.total_download} for p in handles[c["id"]].get_peer_info()]
                out({"event": "status", "req": c["req"], "progress": st.progress, "state": str(st.state),
                     "hasMetadata": st.has_metadata, "seeding": st.is_seeding, "peers": peers,
                     "uploaded": st.all_time_upload, "downloaded": st.all_time_download})
            elif op == "dht_port":
                out({"event": "dht_port", "req": c["req"], "port": ses.listen_port()})
            if "req" in c and op not in ("status", "dht_port"): out({"event": "ok", "req": c["req"]})
        except Exception as e:
            out({"event": "error", "req": c.get("req"), "message": str(e)})
    for a in ses.pop_alerts():
        print(a.message(), file=sys.stderr, flush=True)
`

export interface PeerInfo {
  readonly ip: string
  readonly port: number
  readonly client: string
  /** libtorrent's peer_info source bits: 1 tracker, 2 DHT, 4 PEX, 8 LSD, 16 resume data, 32 incoming. */
  readonly source: number
  /** Payload bytes downloaded from this peer. */
  readonly down: number
}

export interface Status {
  readonly progress: number
  readonly state: string
  readonly hasMetadata: boolean
  readonly seeding: boolean
  readonly peers: ReadonlyArray<PeerInfo>
  readonly uploaded: number
  readonly downloaded: number
}

export interface Session {
  /** The TCP listening port; with DHT on, the DHT's UDP port is the same. */
  readonly port: number
  readonly pid: number
  readonly dir: string
  /** Seeds `built` (its data written under the session's directory), as torrent `id`. */
  readonly seed: (id: string, built: Built) => Promise<void>
  /** Adds `built` as a leecher (nothing on disk), as torrent `id`; returns its save directory. */
  readonly leech: (id: string, built: Built) => Promise<string>
  /** Adds a magnet link as torrent `id`; returns its save directory. */
  readonly magnet: (id: string, uri: string) => Promise<string>
  readonly command: (cmd: Record<string, unknown>) => Promise<void>
  readonly status: (id: string) => Promise<Status>
  /** Polls `status` every 100 ms until `until` holds; throws with the log after `timeoutMs`. */
  readonly waitFor: (id: string, until: (s: Status) => boolean, timeoutMs: number) => Promise<Status>
  readonly log: () => string
  /**
   * Waits until the log satisfies `until` (alerts reach it through the script's 50 ms poll, later under load);
   * resolves with the log, throws with its tail after `timeoutMs`.
   */
  readonly waitForLog: (until: (log: string) => boolean, timeoutMs: number) => Promise<string>
  readonly stop: () => Promise<void>
}

/** `prefix`: a command the session runs under, e.g. `["ip", "netns", "exec", NS]` (which execs it: same PID). */
export const start = (settings: Record<string, unknown> = {}, prefix: ReadonlyArray<string> = []): Promise<Session> => {
  const dir = mkdtempSync(join(tmpdir(), "lt-session-"))
  const argv = [...prefix, PYTHON, "-c", SCRIPT, JSON.stringify(settings)]
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
    stdio: ["pipe", "pipe", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString()
    if (stderr.length > 8_000_000) stderr = stderr.slice(-4_000_000)
  })
  const waiting = new Map<number, (msg: Record<string, unknown>) => void>()
  let nextReq = 1
  let onReady: ((port: number) => void) | undefined
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>
    if (msg["event"] === "ready") onReady?.(msg["port"] as number)
    const req = msg["req"]
    if (typeof req === "number") {
      waiting.get(req)?.(msg)
      waiting.delete(req)
    }
  })
  const request = (cmd: Record<string, unknown>): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const req = nextReq++
      const timer = setTimeout(() => reject(new Error(`libtorrent did not answer ${cmd["op"]}: ${stderr}`)), 15_000)
      waiting.set(req, (msg) => {
        clearTimeout(timer)
        if (msg["event"] === "error") reject(new Error(`libtorrent ${cmd["op"]}: ${String(msg["message"])}`))
        else resolve(msg)
      })
      child.stdin!.write(`${JSON.stringify({ ...cmd, req })}\n`)
    })
  const torrentFile = (id: string, built: Built) => {
    const t = join(dir, `${id}.torrent`)
    writeFileSync(t, built.bytes)
    return t
  }
  const status = async (id: string): Promise<Status> => (await request({ op: "status", id })) as unknown as Status
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
  return new Promise<Session>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`libtorrent session did not start: ${stderr}`)), 20_000)
    child.once("exit", (code) => reject(new Error(`libtorrent session exited with ${code}: ${stderr}`)))
    onReady = (port) => {
      clearTimeout(timer)
      resolve({
        port,
        pid: child.pid!,
        dir,
        seed: async (id, built) => {
          const save = join(dir, `${id}-data`)
          built.metainfo.files.forEach((f, i) => {
            if (f.pad) return
            const p = join(save, ...f.path)
            mkdirSync(dirname(p), { recursive: true })
            writeFileSync(p, built.files[i]!)
          })
          await request({ op: "seed", id, torrent: torrentFile(id, built), save })
        },
        leech: async (id, built) => {
          const save = join(dir, `${id}-data`)
          mkdirSync(save, { recursive: true })
          await request({ op: "add", id, torrent: torrentFile(id, built), save })
          return save
        },
        magnet: async (id, uri) => {
          const save = join(dir, `${id}-data`)
          mkdirSync(save, { recursive: true })
          await request({ op: "magnet", id, uri, save })
          return save
        },
        command: async (cmd) => {
          await request(cmd)
        },
        status,
        waitFor: async (id, until, timeoutMs) => {
          const deadline = Date.now() + timeoutMs
          for (;;) {
            const s = await status(id)
            if (until(s)) return s
            if (Date.now() > deadline) {
              throw new Error(`libtorrent ${id}: condition not met within ${timeoutMs} ms (${JSON.stringify(s)}): ${stderr.slice(-4000)}`)
            }
            await new Promise((r) => setTimeout(r, 100))
          }
        },
        log: () => stderr,
        waitForLog: async (until, timeoutMs) => {
          const deadline = Date.now() + timeoutMs
          while (!until(stderr)) {
            if (Date.now() > deadline) throw new Error(`libtorrent log: condition not met within ${timeoutMs} ms: ${stderr.slice(-4000)}`)
            await new Promise((r) => setTimeout(r, 100))
          }
          return stderr
        },
        stop
      })
    }
  })
}
