/**
 * Starts Debian's opentracker as a child process on a free 127.0.0.1 port (HTTP and UDP on the same port), with
 * a whitelist of info-hashes in a temporary chroot directory. That build is whitelist-only: unlisted info-hashes
 * are refused. Stop it with `stop()` (kills by PID, removes the directory).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Dgram from "node:dgram"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const BINARY = "opentracker"

/** Whether the binary is on PATH. */
export const isInstalled = (): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${BINARY}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/**
 * `true` to run the suite. When the binary is absent: outside CI, warn loudly and skip (`false`); in CI, run
 * anyway (`true`) so the start fails and the absence is a failure.
 */
export const shouldRun = (suite: string): boolean => {
  if (isInstalled()) return true
  if (process.env["CI"]) return true
  console.warn(`\n!!! SKIPPING ${suite}: \`${BINARY}\` is not installed (apt-get install opentracker). !!!\n`)
  return false
}

export interface Opentracker {
  readonly port: number
  readonly pid: number
  readonly httpUrl: string
  readonly udpUrl: string
  readonly stop: () => Promise<void>
}

/** A port free for both TCP and UDP on 127.0.0.1 right now (opentracker takes both). */
const freePort = async (): Promise<number> => {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = Net.createServer()
      s.once("error", reject)
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as Net.AddressInfo).port
        s.close(() => resolve(p))
      })
    })
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = Dgram.createSocket("udp4")
      u.once("error", () => resolve(false))
      u.bind(port, "127.0.0.1", () => u.close(() => resolve(true)))
    })
    if (udpFree) return port
  }
}

/**
 * Ready means: HTTP answers, and the whitelist (loaded by a background thread after start-up) admits an extra
 * info-hash listed only for this check (a `stopped` announce is not checked against the whitelist, and a real
 * announce for a caller's info-hash would add a peer to its swarm).
 */
const waitUntilReady = (port: number, child: ChildProcess, probeHash: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000
    const query = `info_hash=${probeHash.replace(/../g, "%$&")}&peer_id=-ET0000-readinesschk&port=1&uploaded=0` +
      "&downloaded=0&left=0&compact=1"
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`opentracker exited with code ${child.exitCode}`))
      Http.get(`http://127.0.0.1:${port}/announce?${query}`, (res) => {
        let body = ""
        res.on("data", (c: Buffer) => (body += c.toString("latin1")))
        res.on("end", () => (body.includes("failure reason") ? retry() : resolve()))
      }).on("error", retry)
    }
    const retry = () => {
      if (Date.now() > deadline) reject(new Error("opentracker was not ready within 10 s"))
      else setTimeout(attempt, 50)
    }
    attempt()
  })

/** Starts opentracker serving `infoHashesHex` (and one info-hash of its own, for the readiness check). */
const READINESS_HASH = "e7".repeat(20)

export const start = async (infoHashesHex: ReadonlyArray<string>): Promise<Opentracker> => {
  const dir = mkdtempSync(join(tmpdir(), "opentracker-"))
  // opentracker chroots into `dir` and drops to `nobody` before reading the whitelist: both must be readable.
  chmodSync(dir, 0o755)
  writeFileSync(join(dir, "whitelist.txt"), [...infoHashesHex, READINESS_HASH].map((h) => `${h.toLowerCase()}\n`).join(""), { mode: 0o644 })
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const child = spawn(
      BINARY,
      ["-i", "127.0.0.1", "-p", String(port), "-P", String(port), "-d", dir, "-u", "nobody", "-w", "/whitelist.txt"],
      { stdio: ["ignore", "ignore", "pipe"] }
    )
    let stderr = ""
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString()
    })
    const spawned = await new Promise<boolean>((resolve) => {
      child.once("spawn", () => resolve(true))
      child.once("error", (e) => {
        lastError = e
        resolve(false)
      })
    })
    if (!spawned || child.pid === undefined) break
    try {
      await waitUntilReady(port, child, READINESS_HASH)
    } catch (e) {
      lastError = new Error(`${String(e)}; stderr: ${stderr}`)
      child.kill("SIGKILL")
      continue
    }
    const pid = child.pid
    const stop = () =>
      new Promise<void>((resolve) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true })
          resolve()
        }
        if (child.exitCode !== null || child.signalCode !== null) return done()
        child.once("exit", done)
        process.kill(pid, "SIGTERM")
      })
    return { port, pid, httpUrl: `http://127.0.0.1:${port}/announce`, udpUrl: `udp://127.0.0.1:${port}`, stop }
  }
  rmSync(dir, { recursive: true, force: true })
  throw new Error(`cannot start ${BINARY}: ${String(lastError)}`)
}
