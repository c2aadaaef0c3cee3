/**
 * BEP 14 local service discovery against python3-libtorrent's, on a real link: two network namespaces joined by a
 * veth pair (created and removed by the test; root needed), so multicast has an interface to travel on. No tracker,
 * no DHT, no peer given: LSD is the only way the two sides can learn of each other.
 * - Our Lsd (LsdNetns.child.ts in namespace B) hears libtorrent's announces from namespace A, and libtorrent hears
 *   ours (its `lsd_peer_alert`, "received peer from local service discovery", for our address and port), on both
 *   groups: 239.192.152.143 and ff15::efc0:988f.
 * - `effect-torrent download` in B finds libtorrent's seeder in A through LSD alone; the files are byte-identical.
 * Skipped loudly without root, `ip` or python3-libtorrent.
 */
import { execFile, execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Bytes from "../../src/core/Bytes.ts"
import { bundle, cliEnv, exec } from "../support/cli.ts"
import * as LibtorrentSeeder from "../support/libtorrentSeeder.ts"
import * as LibtorrentSession from "../support/libtorrentSession.ts"
import { build } from "../support/seeder.ts"

const canRun = (() => {
  try {
    if (process.getuid?.() !== 0) return false
    execFileSync("ip", ["-V"], { stdio: "ignore" })
    return LibtorrentSeeder.shouldRun("LSD netns interop")
  } catch {
    return false
  }
})()
if (!canRun) console.warn("\n!!! SKIPPING LSD netns interop: needs root, ip and python3-libtorrent !!!\n")

const tag = process.pid % 100000
const nsA = `lsd-a-${tag}`
const nsB = `lsd-b-${tag}`
const A = "10.77.0.1"
const B = "10.77.0.2"
// Unique local IPv6 addresses (not link-local: an announce from fe80:: could not be dialled without its scope).
const A6 = "fd77::1"
const B6 = "fd77::2"
const sh = (args: ReadonlyArray<string>) => execFileSync(args[0]!, args.slice(1), { stdio: "pipe" })
const inB = ["ip", "netns", "exec", nsB]

describe.runIf(canRun)("LSD with libtorrent across a veth pair", () => {
  let lt: LibtorrentSession.Session | undefined
  const dir = mkdtempSync(Path.join(tmpdir(), "lsd-netns-"))
  const built = build({
    name: "lsd-payload",
    files: [{ path: ["a.bin"], length: 700_000 }, { path: ["sub", "b.bin"], length: 1_300_000 }],
    pieceLength: 65536
  })
  const hex = Bytes.toHex(built.metainfo.infoHash)

  beforeAll(async () => {
    sh(["ip", "netns", "add", nsA])
    sh(["ip", "netns", "add", nsB])
    sh(["ip", "link", "add", `lva${tag}`, "netns", nsA, "type", "veth", "peer", "name", `lvb${tag}`, "netns", nsB])
    sh(["ip", "-n", nsA, "addr", "add", `${A}/24`, "dev", `lva${tag}`])
    sh(["ip", "-n", nsB, "addr", "add", `${B}/24`, "dev", `lvb${tag}`])
    sh(["ip", "-n", nsA, "addr", "add", `${A6}/64`, "dev", `lva${tag}`, "nodad"])
    sh(["ip", "-n", nsB, "addr", "add", `${B6}/64`, "dev", `lvb${tag}`, "nodad"])
    for (const [ns, dev] of [[nsA, `lva${tag}`], [nsB, `lvb${tag}`]] as const) {
      sh(["ip", "-n", ns, "link", "set", dev, "up"])
      sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    }
    // libtorrent announces when the torrent is added, 2 s and 4 s later, then every `local_service_announce_interval`
    // (5 min by default): 1 s here, so that a listener started later, on a loaded machine, still hears it.
    lt = await LibtorrentSession.start({
      listen_interfaces: `${A}:6881,[${A6}]:6881`,
      enable_lsd: true,
      local_service_announce_interval: 1
    }, ["ip", "netns", "exec", nsA])
    await lt.seed("s", built)
  }, 60_000)

  afterAll(async () => {
    await lt?.stop()
    for (const ns of [nsA, nsB]) {
      try {
        sh(["ip", "netns", "del", ns])
      } catch (e) {
        console.warn(`LSD netns: could not delete ${ns}: ${String(e)}`)
      }
    }
    rmSync(dir, { recursive: true, force: true })
  })

  it("each side hears the other's announce, over IPv4 and IPv6: ours decoded by libtorrent, libtorrent's by ours", async () => {
    const child = Path.join(import.meta.dirname, "LsdNetns.child.ts")
    const out = await new Promise<string>((resolve, reject) =>
      execFile(inB[0]!, [...inB.slice(1), process.execPath, "--import", "tsx", child, hex, "7000", "3"], {
        timeout: 60_000
      }, (error, stdout, stderr) => (error === null ? resolve(stdout) : reject(new Error(`${error.message}\n${stderr}`))))
    )
    const result = JSON.parse(out.trim().split("\n").at(-1)!) as {
      peers: ReadonlyArray<string>
      counters: { sent: number; received: number }
    }
    expect(result.peers).toContain(`${A}:6881`)
    expect(result.peers).toContain(`${A6}:6881`)
    expect(result.counters.sent).toBeGreaterThanOrEqual(2)
    const heard = (log: string, address: string) =>
      log.split("\n").some((l) => l.includes(`peer [ ${address}:7000 `) && l.includes("received peer from local service discovery"))
    await lt!.waitForLog((log) => heard(log, B) && heard(log, `[${B6}]`), 10_000)
  }, 90_000)

  it("`download` finds libtorrent's seeder through LSD alone (no tracker, no DHT), byte-identical", async () => {
    const torrent = Path.join(dir, "t.torrent")
    writeFileSync(torrent, built.bytes)
    const outDir = Path.join(dir, "out")
    // Inside the namespaces we created, not loopback: the loopback-only guard (which turns LSD off) is lifted.
    const env = { ...cliEnv, EFFECT_TORRENT_LOOPBACK_ONLY: "" }
    const r = await exec(inB[0]!, [...inB.slice(1), process.execPath, bundle, "download", torrent, "-o", outDir, "--no-dht",
      "--port", "7001", "--json"], { env, timeout: 90_000 })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    // --json says where each peer came from: dialled because LSD named it, or libtorrent dialling us (it heard ours)
    const connected = r.stdout.split("\n").filter((l) => l.includes('"PeerConnected"'))
      .map((l) => JSON.parse(l) as { source: string; transport: string })
    expect(connected.length).toBeGreaterThanOrEqual(1)
    for (const e of connected) expect(["lsd tcp", "incoming tcp"]).toContain(`${e.source} ${e.transport}`)
    built.metainfo.files.forEach((f, i) => {
      const got = readFileSync(Path.join(outDir, ...f.path))
      expect(Buffer.compare(got, Buffer.from(built.files[i]!))).toBe(0)
    })
  }, 120_000)
})
