/**
 * Debian's transmission-daemon 3.00 as a leecher on 127.0.0.1, driven through its JSON RPC (the interface
 * `transmission-remote` uses). Its own config directory (settings.json written before it starts), its own RPC and
 * peer ports; DHT, LPD, PEX, uTP, port mapping and the blocklist off; encryption "tolerated" (plaintext preferred).
 *
 * Trap (PEERS.md): Transmission drops 127.x peers handed out by a tracker (they are "martian" to it), and its RPC
 * has no way to add a peer. It still announces its own 127.0.0.1 address, so a seeder that asks the tracker
 * *after* Transmission announced learns its address and dials it; inbound connections from 127.x are accepted.
 *
 * `stop()` sends SIGTERM to the PID we started (Transmission flushes its cache and closes its files), waits for it
 * (SIGKILL after 5 s) and removes the config directory. Every wait is bounded.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export const BINARY = "transmission-daemon"

export const isInstalled = (): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${BINARY}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** `true` to run; an absent binary skips loudly outside CI and fails in CI. */
export const shouldRun = (suite: string): boolean => {
  if (isInstalled()) return true
  if (process.env["CI"]) return true
  console.warn(`\n!!! SKIPPING ${suite}: \`${BINARY}\` is not installed (apt-get install transmission-daemon). !!!\n`)
  return false
}

export interface TorrentStatus {
  readonly id: number
  readonly percentDone: number
  readonly leftUntilDone: number
  /** 0 stopped, 1/2 check wait/check, 3/4 download wait/downloading, 5/6 seed wait/seeding. */
  readonly status: number
  readonly error: number
  readonly errorString: string
  readonly peersConnected: number
}

export interface Daemon {
  readonly pid: number
  readonly peerPort: number
  readonly rpcPort: number
  /** Adds a torrent (its bytes) to download into `downloadDir`; returns Transmission's torrent id. */
  readonly add: (torrent: Uint8Array, downloadDir: string) => Promise<number>
  readonly status: (id: number) => Promise<TorrentStatus>
  /** Polls `status` every 250 ms until `until` holds; throws with the status and the log after `timeoutMs`. */
  readonly waitFor: (id: number, until: (s: TorrentStatus) => boolean, timeoutMs: number) => Promise<TorrentStatus>
  readonly log: () => string
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = Net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface RpcReply {
  readonly result: string
  readonly arguments?: Record<string, unknown>
}

export const start = async (): Promise<Daemon> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tr-daemon-"))
  const peerPort = await freePort()
  const rpcPort = await freePort()
  Fs.writeFileSync(Path.join(dir, "settings.json"), JSON.stringify({
    "dht-enabled": false,
    "lpd-enabled": false,
    "pex-enabled": false,
    "utp-enabled": false,
    "port-forwarding-enabled": false,
    "blocklist-enabled": false,
    "bind-address-ipv4": "127.0.0.1",
    "encryption": 0,
    "peer-port": peerPort,
    "peer-port-random-on-start": false,
    "rpc-enabled": true,
    "rpc-bind-address": "127.0.0.1",
    "rpc-port": rpcPort,
    "rpc-authentication-required": false,
    "rpc-whitelist-enabled": false,
    "rpc-host-whitelist-enabled": false,
    "download-dir": Path.join(dir, "downloads"),
    "incomplete-dir-enabled": false,
    "watch-dir-enabled": false,
    "start-added-torrents": true,
    "ratio-limit-enabled": false,
    "idle-seeding-limit-enabled": false,
    "message-level": 2
  }))
  const child: ChildProcess = spawn(BINARY, ["-f", "-g", dir], { stdio: ["ignore", "pipe", "pipe"] })
  let log = ""
  const append = (d: Buffer) => {
    log += d.toString()
    if (log.length > 2_000_000) log = log.slice(-1_000_000)
  }
  child.stdout!.on("data", append)
  child.stderr!.on("data", append)
  const spawned = await new Promise<boolean>((resolve) => {
    child.once("spawn", () => resolve(true))
    child.once("error", () => resolve(false))
  })
  if (!spawned || child.pid === undefined) throw new Error(`cannot start ${BINARY}`)
  const pid = child.pid

  let sessionId = ""
  const url = `http://127.0.0.1:${rpcPort}/transmission/rpc`
  const rpc = async (method: string, args: Record<string, unknown>): Promise<RpcReply> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await fetch(url, {
        method: "POST",
        headers: { "X-Transmission-Session-Id": sessionId, "Content-Type": "application/json" },
        body: JSON.stringify({ method, arguments: args }),
        signal: AbortSignal.timeout(10_000)
      })
      if (res.status === 409) {
        // The CSRF handshake: the first request learns the session id.
        sessionId = res.headers.get("X-Transmission-Session-Id") ?? ""
        continue
      }
      const reply = (await res.json()) as RpcReply
      if (reply.result !== "success") throw new Error(`transmission ${method}: ${reply.result}`)
      return reply
    }
    throw new Error(`transmission ${method}: no session id`)
  }

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()))
      process.kill(pid, "SIGTERM")
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(pid, "SIGKILL")
      }, 5_000)
      await exited
      clearTimeout(timer)
    }
    Fs.rmSync(dir, { recursive: true, force: true })
  }

  // Ready once the RPC answers (bounded: 15 s).
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${BINARY} exited with ${child.exitCode}: ${log}`)
    try {
      await rpc("session-get", {})
      break
    } catch (e) {
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`${BINARY} RPC not answering within 15 s (${String(e)}): ${log}`)
      }
      await sleep(100)
    }
  }

  const fields = ["id", "percentDone", "leftUntilDone", "status", "error", "errorString", "peersConnected"]
  const status = async (id: number): Promise<TorrentStatus> => {
    const r = await rpc("torrent-get", { ids: [id], fields })
    const list = r.arguments?.["torrents"] as ReadonlyArray<TorrentStatus> | undefined
    const s = list?.[0]
    if (s === undefined) throw new Error(`transmission has no torrent ${id}`)
    return s
  }
  return {
    pid,
    peerPort,
    rpcPort,
    add: async (torrent, downloadDir) => {
      Fs.mkdirSync(downloadDir, { recursive: true })
      const r = await rpc("torrent-add", {
        metainfo: Buffer.from(torrent).toString("base64"),
        "download-dir": downloadDir,
        paused: false
      })
      const added = (r.arguments?.["torrent-added"] ?? r.arguments?.["torrent-duplicate"]) as { id: number } | undefined
      if (added === undefined) throw new Error(`transmission torrent-add: ${JSON.stringify(r)}`)
      return added.id
    },
    status,
    waitFor: async (id, until, timeoutMs) => {
      const end = Date.now() + timeoutMs
      for (;;) {
        const s = await status(id)
        if (until(s)) return s
        if (Date.now() > end) {
          throw new Error(`transmission torrent ${id}: not done within ${timeoutMs} ms (${JSON.stringify(s)}): ${log.slice(-4000)}`)
        }
        await sleep(250)
      }
    },
    log: () => log,
    stop
  }
}
