/**
 * Starts an aria2c 1.36 seeder on 127.0.0.1 for one payload (PEERS.md flags): writes the payload into a temporary
 * directory, makes a torrent with `mktorrent`, runs aria2c with integrity check, DHT/LPD/PEX off, and waits on its
 * JSON-RPC until it reports itself a seeder. `stop()` kills it by PID and removes the directory.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"

const has = (binary: string): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${binary}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

export const isInstalled = (): boolean => has("aria2c") && has("mktorrent")

/** `true` to run the suite; absent binaries skip loudly outside CI and fail in CI. */
export const shouldRun = (suite: string): boolean => {
  if (isInstalled()) return true
  if (process.env["CI"]) return true
  console.warn(`\n!!! SKIPPING ${suite}: aria2c or mktorrent is not installed (apt-get install aria2 mktorrent)!!!\n`)
  return false
}

export interface Seeder {
  readonly port: number
  readonly pid: number
  /** Lower-case hex v1 info-hash. */
  readonly infoHash: string
  readonly log: () => string
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = Net.createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

/** SHA-1 of the raw `info` dictionary of a .torrent file. */
const infoHashOf = (torrent: Uint8Array): string => {
  const decoded = Bencode.decode(torrent, { mode: "lenient" })
  if (decoded._tag === "Left" || !Bencode.isDict(decoded.right)) throw new Error("mktorrent wrote an invalid torrent")
  const info = decoded.right.get("info")
  const raw = info === undefined ? undefined : Bencode.rawOf(torrent, info)
  if (raw === undefined) throw new Error("torrent without info")
  return Bytes.toHex(Bytes.sha1(raw))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const start = async (payload: Uint8Array, log2PieceLength: number): Promise<Seeder> => {
  const dir = mkdtempSync(join(tmpdir(), "aria2-seed-"))
  const data = join(dir, "data")
  mkdirSync(data)
  writeFileSync(join(data, "payload.bin"), payload)
  const torrentPath = join(dir, "payload.torrent")
  execFileSync("mktorrent", ["-a", "http://127.0.0.1:1/announce", "-l", String(log2PieceLength), "-o", torrentPath,
    join(data, "payload.bin")], { stdio: "ignore" })
  const infoHash = infoHashOf(new Uint8Array(readFileSync(torrentPath)))
  const [port, rpc] = [await freePort(), await freePort()]
  const child: ChildProcess = spawn("aria2c", [
    `--dir=${data}`,
    "--check-integrity=true",
    "--seed-ratio=0.0",
    `--listen-port=${port}`,
    "--interface=127.0.0.1",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--bt-max-peers=0",
    "--summary-interval=0",
    "--enable-rpc",
    `--rpc-listen-port=${rpc}`,
    torrentPath
  ], { stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      process.kill(child.pid, "SIGTERM")
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 3000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  // Ready when aria2 reports the download as a seeder.
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) break
    try {
      const res = await fetch(`http://127.0.0.1:${rpc}/jsonrpc`, {
        method: "POST",
        body: JSON.stringify({ jsonrpc: "2.0", id: "1", method: "aria2.tellActive", params: [["seeder"]] })
      })
      const body = (await res.json()) as { result?: Array<{ seeder?: string }> }
      if (body.result?.some((d) => d.seeder === "true")) {
        return { port, pid: child.pid!, infoHash, log: () => output, stop }
      }
    } catch {
      // not listening yet
    }
    await sleep(50)
  }
  await stop()
  throw new Error(`aria2c did not start seeding: ${output}`)
}
