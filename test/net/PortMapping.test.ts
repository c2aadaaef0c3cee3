/**
 * Port mapping against a real gateway: Debian's miniupnpd (its iptables backend, PCP/NAT-PMP and UPnP IGD on) as the NAT
 * router of a home network built from three network namespaces (created and removed here; root needed):
 *
 *     LAN host 10.88.0.2 ──veth── 10.88.0.1 [gateway: miniupnpd, masquerade] 5.5.5.1 ──veth── 5.5.5.2 outside
 *
 * (5.5.5.0/24 is only ever routed between these namespaces; miniupnpd refuses private or reserved addresses as its
 * external one.) Nothing outside can reach the LAN host until a mapping exists.
 * - PortMapping by PCP, by NAT-PMP and by UPnP: TCP and UDP mapped, the external address reported, a connection from
 *   outside reaches a server on the LAN host through it, and the mapping is gone when the scope closes.
 * - `effect-torrent seed` on the LAN host maps its port by itself (PCP, the first method); a libtorrent leecher outside connects to the
 *   gateway's address and downloads the torrent byte-identical; SIGTERM removes the mapping.
 * Skipped loudly without root, ip, iptables-legacy, miniupnpd (miniupnpd-iptables) or python3-libtorrent.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { createInterface } from "node:readline"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { bundle, cliEnv } from "../support/cli.ts"
import * as LibtorrentSeeder from "../support/libtorrentSeeder.ts"
import * as LibtorrentSession from "../support/libtorrentSession.ts"
import { build } from "../support/seeder.ts"

const MINIUPNPD = "/usr/sbin/miniupnpd"
const IPT = "iptables-legacy"

const canRun = (() => {
  try {
    if (process.getuid?.() !== 0) return false
    execFileSync("ip", ["-V"], { stdio: "ignore" })
    execFileSync(IPT, ["-V"], { stdio: "ignore" })
    const v = execFileSync(MINIUPNPD, ["--version"], { stdio: "pipe" }).toString()
    if (!v.includes("iptables")) return false
    return LibtorrentSeeder.shouldRun("port mapping")
  } catch {
    return false
  }
})()
if (!canRun && process.env["CI"]) throw new Error("port mapping tests need root, ip, iptables-legacy, miniupnpd-iptables")
if (!canRun) console.warn("\n!!! SKIPPING port mapping: needs root, ip, iptables-legacy and miniupnpd-iptables !!!\n")

const tag = process.pid % 100000
const GW = `pm-gw-${tag}`
const LAN = `pm-lan-${tag}`
const WAN = `pm-wan-${tag}`
const EXTERNAL = "5.5.5.1"
const sh = (args: ReadonlyArray<string>) => execFileSync(args[0]!, args.slice(1), { stdio: "pipe" }).toString()
const netns = (ns: string) => ["ip", "netns", "exec", ns]

/** The gateway's DNAT rules for `port` (what miniupnpd added). */
const dnatRules = (port: number) =>
  sh([...netns(GW), IPT, "-t", "nat", "-S", "MINIUPNPD"]).split("\n").filter((l) => l.includes(`--dport ${port} `))

/** From outside: connects to the gateway's external address and reads what the LAN host's server says. */
const fromOutside = (port: number) =>
  new Promise<string>((resolve) =>
    execFile(netns(WAN)[0]!, [...netns(WAN).slice(1), process.execPath, "-e", `
      const s = require("net").connect(${port}, "${EXTERNAL}")
      s.on("data", (d) => { process.stdout.write(String(d)); process.exit(0) })
      s.on("error", (e) => { process.stdout.write("error: " + e.code); process.exit(0) })
      setTimeout(() => { process.stdout.write("timeout"); process.exit(0) }, 5000)
    `], (_e, stdout) => resolve(stdout.trim()))
  )

/** A server on the LAN host greeting whoever connects, until killed. */
const greeter = (port: number): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(netns(LAN)[0]!, [...netns(LAN).slice(1), process.execPath, "-e", `
      require("net").createServer((s) => s.end("hello from the LAN")).listen(${port}, "0.0.0.0", () => console.log("up"))
    `], { stdio: ["ignore", "pipe", "inherit"] })
    child.stdout!.once("data", () => resolve(child))
    child.once("error", reject)
  })

const ended = (child: ChildProcess) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.once("exit", (c) => resolve(c))
  )

describe.runIf(canRun)("port mapping through miniupnpd", () => {
  const dir = mkdtempSync(Path.join(tmpdir(), "portmap-"))
  let miniupnpd: ChildProcess | undefined
  let miniupnpdLog = ""

  beforeAll(async () => {
    for (const ns of [GW, LAN, WAN]) {
      sh(["ip", "netns", "add", ns])
      sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    }
    sh(["ip", "link", "add", "pmgl", "netns", GW, "type", "veth", "peer", "name", "pmlan", "netns", LAN])
    sh(["ip", "link", "add", "pmgw", "netns", GW, "type", "veth", "peer", "name", "pmwan", "netns", WAN])
    sh(["ip", "-n", GW, "addr", "add", "10.88.0.1/24", "dev", "pmgl"])
    sh(["ip", "-n", LAN, "addr", "add", "10.88.0.2/24", "dev", "pmlan"])
    sh(["ip", "-n", GW, "addr", "add", `${EXTERNAL}/24`, "dev", "pmgw"])
    sh(["ip", "-n", WAN, "addr", "add", "5.5.5.2/24", "dev", "pmwan"])
    for (const [ns, dev] of [[GW, "pmgl"], [GW, "pmgw"], [LAN, "pmlan"], [WAN, "pmwan"]] as const) {
      sh(["ip", "-n", ns, "link", "set", dev, "up"])
    }
    sh(["ip", "-n", LAN, "route", "add", "default", "via", "10.88.0.1"])
    sh([...netns(GW), "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    // The chains miniupnpd fills (as its iptables_init.sh makes them), and the LAN's masquerade.
    for (const rule of [
      ["-t", "nat", "-N", "MINIUPNPD"],
      ["-t", "nat", "-A", "PREROUTING", "-i", "pmgw", "-j", "MINIUPNPD"],
      ["-t", "nat", "-N", "MINIUPNPD-POSTROUTING"],
      ["-t", "nat", "-A", "POSTROUTING", "-o", "pmgw", "-j", "MINIUPNPD-POSTROUTING"],
      ["-t", "nat", "-A", "POSTROUTING", "-s", "10.88.0.0/24", "-o", "pmgw", "-j", "MASQUERADE"],
      ["-t", "filter", "-N", "MINIUPNPD"],
      ["-t", "filter", "-A", "FORWARD", "-i", "pmgw", "!", "-o", "pmgw", "-j", "MINIUPNPD"]
    ]) sh([...netns(GW), IPT, ...rule])
    const conf = Path.join(dir, "miniupnpd.conf")
    writeFileSync(conf, [
      "ext_ifname=pmgw",
      "listening_ip=pmgl",
      "http_port=5000",
      "enable_natpmp=yes",
      "enable_upnp=yes",
      "secure_mode=yes",
      "system_uptime=yes",
      "uuid=3b1a5c2e-0000-4000-8000-000000000001",
      "allow 1024-65535 10.88.0.0/24 1024-65535",
      "deny 0-65535 0.0.0.0/0 0-65535",
      ""
    ].join("\n"))
    miniupnpd = spawn(netns(GW)[0]!, [...netns(GW).slice(1), MINIUPNPD, "-f", conf, "-d", "-P", Path.join(dir, "pid")], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`miniupnpd did not start: ${miniupnpdLog}`)), 10_000)
      const onLine = (line: string) => {
        miniupnpdLog += line + "\n"
        if (line.includes("Listening for NAT-PMP")) {
          clearTimeout(timer)
          resolve()
        }
      }
      createInterface({ input: miniupnpd!.stdout! }).on("line", onLine)
      createInterface({ input: miniupnpd!.stderr! }).on("line", onLine)
    })
  }, 30_000)

  afterAll(async () => {
    if (miniupnpd?.pid !== undefined && miniupnpd.exitCode === null) {
      process.kill(miniupnpd.pid, "SIGTERM")
      await ended(miniupnpd)
    }
    for (const ns of [GW, LAN, WAN]) {
      try {
        sh(["ip", "netns", "del", ns])
      } catch (e) {
        console.warn(`port mapping: could not delete ${ns}: ${String(e)}`)
      }
    }
    rmSync(dir, { recursive: true, force: true })
  })

  for (const [method, port] of [["pcp", 7103], ["natpmp", 7100], ["upnp", 7101]] as const) {
    it(`${method}: maps TCP and UDP, outside reaches the LAN host through it, removed when the scope closes`, async () => {
      const server = await greeter(port)
      try {
        expect(await fromOutside(port)).toMatch(/^error: ECONNREFUSED|^timeout/)
        const child = spawn(netns(LAN)[0]!, [
          ...netns(LAN).slice(1), process.execPath, "--import", "tsx",
          Path.join(import.meta.dirname, "PortMapping.child.ts"), String(port), method
        ], { stdio: ["pipe", "pipe", "inherit"] })
        const lines = createInterface({ input: child.stdout! })
        // its own log lines go to stdout too: the first JSON line is the answer
        const first = await new Promise<string>((resolve) => lines.on("line", (l) => l.startsWith("{") && resolve(l)))
        const { mapping } = JSON.parse(first) as { mapping: { method: string; externalAddress: string; externalPort: number } | null }
        expect(mapping).toEqual({ method, externalAddress: EXTERNAL, externalPort: port })
        expect(dnatRules(port).map((r) => /-p (tcp|udp)/.exec(r)?.[1])).toEqual(expect.arrayContaining(["tcp", "udp"]))
        expect(await fromOutside(port)).toBe("hello from the LAN")
        child.stdin!.end()
        expect(await ended(child)).toBe(0)
        expect(dnatRules(port)).toEqual([])
        expect(await fromOutside(port)).toMatch(/^error: ECONNREFUSED|^timeout/)
      } finally {
        server.kill("SIGKILL")
        await ended(server)
      }
    }, 60_000)
  }

  it("`seed` behind the NAT maps its port; a libtorrent leecher outside downloads through it; SIGTERM unmaps", async () => {
    const built = build({
      name: "nat-payload",
      files: [{ path: ["x.bin"], length: 900_000 }, { path: ["y", "z.bin"], length: 1_100_000 }],
      pieceLength: 65536
    })
    const data = Path.join(dir, "data")
    built.metainfo.files.forEach((f, i) => {
      const p = Path.join(data, ...f.path)
      execFileSync("mkdir", ["-p", Path.dirname(p)])
      writeFileSync(p, built.files[i]!)
    })
    const torrent = Path.join(dir, "nat.torrent")
    writeFileSync(torrent, built.bytes)
    const port = 7102
    const env = { ...cliEnv, EFFECT_TORRENT_LOOPBACK_ONLY: "", EFFECT_TORRENT_LOG: "info" }
    const seeder = spawn(netns(LAN)[0]!, [
      ...netns(LAN).slice(1), process.execPath, bundle, "seed", torrent, data, "--port", String(port), "--no-dht",
      "--no-lsd", "--no-trackers", "--quiet", "--state-dir", Path.join(dir, "state")
    ], { env, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    seeder.stdout!.on("data", (d: Buffer) => (output += d.toString()))
    seeder.stderr!.on("data", (d: Buffer) => (output += d.toString()))
    const lt = await LibtorrentSession.start({ listen_interfaces: "5.5.5.2:0" }, netns(WAN))
    try {
      // The signal: the seeder logs its mapping once the gateway granted it.
      for (let waited = 0; !/port mapping: .*→ 5\.5\.5\.1:7102 \(PCP\)/.test(output); waited += 100) {
        if (waited > 20_000 || seeder.exitCode !== null) throw new Error(`no port mapping logged: ${output}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(dnatRules(port).length).toBeGreaterThanOrEqual(1)
      const save = await lt.leech("t", built)
      await lt.command({ op: "connect", id: "t", ip: EXTERNAL, port })
      await lt.waitFor("t", (s) => s.progress >= 1, 60_000)
      built.metainfo.files.forEach((f, i) => {
        expect(Buffer.compare(readFileSync(Path.join(save, ...f.path)), Buffer.from(built.files[i]!))).toBe(0)
      })
    } finally {
      await lt.stop()
      if (seeder.exitCode === null) process.kill(seeder.pid!, "SIGTERM")
    }
    // 143: stopped by SIGTERM, as the CLI reports it (128 + 15), after its finalizers ran
    expect(await ended(seeder)).toBe(143)
    expect(dnatRules(port)).toEqual([])
  }, 120_000)
})
