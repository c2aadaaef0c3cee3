/**
 * BEP 55 hole punching through real NATs: five network namespaces (created and removed here; root needed) —
 *
 *     lan1 10.1.0.2 ─ [gw1: masquerade, drops unsolicited] 6.6.1.2 ─┐
 *                                                                  pub 6.6.1.1 / 6.6.2.1 (router; the relay lives here)
 *     lan2 10.2.0.2 ─ [gw2: masquerade, drops unsolicited] 6.6.2.2 ─┘
 *
 * Each gateway forwards and accepts only what belongs to a connection its LAN side opened (conntrack
 * ESTABLISHED/RELATED), like a home router: a peer behind one cannot be reached from outside, but a uTP SYN it sends
 * opens the way back for the address it went to — which is what a `connect` from the relay has both sides do at once.
 * Skipped loudly without root, ip, iptables-legacy or python3-libtorrent.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { createInterface } from "node:readline"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as LibtorrentSeeder from "../support/libtorrentSeeder.ts"
import * as LibtorrentSession from "../support/libtorrentSession.ts"
import { build } from "../support/seeder.ts"

const IPT = "iptables-legacy"

const canRun = (() => {
  try {
    if (process.getuid?.() !== 0) return false
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" })
    execFileSync(IPT, ["-V"], { stdio: "ignore" })
    return LibtorrentSeeder.shouldRun("hole punching")
  } catch {
    return false
  }
})()
if (!canRun && process.env["CI"]) throw new Error("hole punching tests need root, ip netns, iptables-legacy")
if (!canRun) console.warn("\n!!! SKIPPING hole punching: needs root, `ip netns` and iptables-legacy !!!\n")

const tag = process.pid % 100000
const PUB = `hp-pub-${tag}`
const GW1 = `hp-gw1-${tag}`
const GW2 = `hp-gw2-${tag}`
const LAN1 = `hp-lan1-${tag}`
const LAN2 = `hp-lan2-${tag}`
const ALL = [PUB, GW1, GW2, LAN1, LAN2]
const GW1_EXT = "6.6.1.2"
const GW2_EXT = "6.6.2.2"
const sh = (args: ReadonlyArray<string>) => execFileSync(args[0]!, args.slice(1), { stdio: "pipe" }).toString()
const netns = (ns: string) => ["ip", "netns", "exec", ns]

/** libtorrent over uTP only, PEX on (its default plugins), holepunch on (always in 2.0). */
const ltSettings = {
  listen_interfaces: "0.0.0.0:6881",
  enable_incoming_utp: true,
  enable_outgoing_utp: true,
  enable_incoming_tcp: false,
  enable_outgoing_tcp: false,
  utp_connect_timeout: 1500,
  alert_mask: 0x7fffffff
}

/** Sends one uTP SYN from `ns` to `host:port`; true when anything answers within 3 s. */
const synProbe = (ns: string, host: string, port: number) =>
  execFileSync(netns(ns)[0]!, [...netns(ns).slice(1), process.execPath, "-e", `
    const s = require("dgram").createSocket("udp4")
    const syn = Buffer.alloc(20); syn[0] = 0x41; syn.writeUInt16BE(4242, 2); syn.writeUInt32BE(65535, 12); syn.writeUInt16BE(1, 16)
    s.on("message", () => { process.stdout.write("answered"); process.exit(0) })
    s.send(syn, ${port}, "${host}")
    setTimeout(() => { process.stdout.write("silence"); process.exit(0) }, 3000)
  `]).toString()

interface Child {
  readonly child: ChildProcess
  readonly output: () => string
  readonly waitFor: (re: RegExp, ms: number) => Promise<void>
  readonly stop: () => Promise<void>
}

/** Our client (Holepunch.child.ts) in `ns`. */
const ours = (ns: string, args: Record<string, unknown>): Child => {
  const child = spawn(netns(ns)[0]!, [
    ...netns(ns).slice(1), process.execPath, "--import", "tsx", Path.join(import.meta.dirname, "Holepunch.child.ts"),
    JSON.stringify(args)
  ], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, EFFECT_TORRENT_LOOPBACK_ONLY: "" } })
  let output = ""
  createInterface({ input: child.stdout! }).on("line", (l) => void (output += l + "\n"))
  createInterface({ input: child.stderr! }).on("line", (l) => void (output += l + "\n"))
  return {
    child,
    output: () => output,
    waitFor: async (re, ms) => {
      for (let waited = 0; !re.test(output); waited += 100) {
        if (waited > ms || child.exitCode !== null) throw new Error(`no ${re} from our client: ${output.slice(-6000)}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      child.stdin!.end()
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000)
      await exited
      clearTimeout(timer)
    }
  }
}

describe.runIf(canRun)("hole punching (BEP 55) through namespace NATs", () => {
  const dir = mkdtempSync(Path.join(tmpdir(), "holepunch-"))

  const removeAll = () => {
    for (const ns of ALL) {
      try {
        sh(["ip", "netns", "del", ns])
      } catch {
        // not there
      }
    }
  }

  beforeAll(() => {
    removeAll()
    for (const ns of ALL) {
      sh(["ip", "netns", "add", ns])
      sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    }
    for (const [n, gw, lan] of [[1, GW1, LAN1], [2, GW2, LAN2]] as const) {
      sh(["ip", "link", "add", `hpp${n}`, "netns", PUB, "type", "veth", "peer", "name", `hpg${n}`, "netns", gw])
      sh(["ip", "link", "add", `hpl${n}`, "netns", gw, "type", "veth", "peer", "name", `hpa${n}`, "netns", lan])
      sh(["ip", "-n", PUB, "addr", "add", `6.6.${n}.1/24`, "dev", `hpp${n}`])
      sh(["ip", "-n", gw, "addr", "add", `6.6.${n}.2/24`, "dev", `hpg${n}`])
      sh(["ip", "-n", gw, "addr", "add", `10.${n}.0.1/24`, "dev", `hpl${n}`])
      sh(["ip", "-n", lan, "addr", "add", `10.${n}.0.2/24`, "dev", `hpa${n}`])
      for (const [ns, dev] of [[PUB, `hpp${n}`], [gw, `hpg${n}`], [gw, `hpl${n}`], [lan, `hpa${n}`]] as const) {
        sh(["ip", "-n", ns, "link", "set", dev, "up"])
      }
      sh(["ip", "-n", gw, "route", "add", "default", "via", `6.6.${n}.1`])
      sh(["ip", "-n", lan, "route", "add", "default", "via", `10.${n}.0.1`])
      sh([...netns(gw), "sysctl", "-qw", "net.ipv4.ip_forward=1"])
      const ext = `hpg${n}`
      for (const rule of [
        ["-t", "nat", "-A", "POSTROUTING", "-s", `10.${n}.0.0/24`, "-o", ext, "-j", "MASQUERADE"],
        ["-A", "INPUT", "-i", ext, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", "INPUT", "-i", ext, "-j", "DROP"],
        ["-A", "FORWARD", "-i", ext, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", "FORWARD", "-i", ext, "-j", "DROP"]
      ]) sh([...netns(gw), IPT, ...rule])
    }
    sh([...netns(PUB), "sysctl", "-qw", "net.ipv4.ip_forward=1"])
  }, 30_000)

  afterAll(() => {
    removeAll()
    rmSync(dir, { recursive: true, force: true })
  })

  const payload = (name: string) =>
    build({ name, files: [{ path: [`${name}.bin`], length: 3 * 1024 * 1024 + 4321 }], pieceLength: 65536, single: true })

  it("relay: two libtorrent peers behind their own NATs meet through our client and download from each other", async () => {
    const built = payload("hp-relay")
    const torrent = Path.join(dir, "relay.torrent")
    writeFileSync(torrent, built.bytes)
    // Nothing from outside gets through a gateway: a uTP SYN from the relay's side to lan1's libtorrent port.
    // lan1 uploads at 1 MB/s, so the download takes a few seconds and lan2's peer list can be seen with lan1 in it
    const a = await LibtorrentSession.start({ ...ltSettings, upload_rate_limit: 1_000_000 }, netns(LAN1))
    const b = await LibtorrentSession.start(ltSettings, netns(LAN2))
    // the relay downloads too, slowly: what lan2 gets it gets from lan1
    const relay = ours(PUB, { torrent, dir: Path.join(dir, "relay-data"), port: 6890, peers: [], seed: false, downLimit: 8192 })
    try {
      await a.seed("t", built)
      expect(synProbe(PUB, GW1_EXT, 6881)).toBe("silence")
      expect(synProbe(LAN2, GW1_EXT, 6881)).toBe("silence")
      await relay.waitFor(/"event":"ready"/, 20_000)
      const bSave = await b.leech("t", built)
      await a.command({ op: "connect", id: "t", ip: "6.6.1.1", port: 6890 })
      await a.waitFor("t", (st) => st.peers.length > 0, 20_000)
      // From now on lan1 seeds and dials nobody (libtorrent's `seeding_outgoing_connections`): were both to dial each
      // other the moment our PEX names them, their crossing SYNs would open both NATs with no rendezvous at all (seen
      // here). Now only lan2 dials, fails, and asks us.
      await a.command({ op: "settings", settings: { seeding_outgoing_connections: false } })
      await b.command({ op: "connect", id: "t", ip: "6.6.2.1", port: 6890 })
      await relay.waitFor(/holepunch: relayed rendezvous from 6\.6\.2\.2:6881 .* to 6\.6\.1\.2:6881/, 60_000)
      // lan2 is connected to lan1's NAT address: through the hole the two `connect`s punched
      const during = await b.waitFor("t", (st) => st.peers.some((p) => p.ip === GW1_EXT && p.down > 0) || st.progress >= 1, 60_000)
      const s = await b.waitFor("t", (st) => st.progress >= 1, 60_000)
      console.log(`relay log:\n${relay.output().split("\n").filter((l) => l.includes("holepunch")).join("\n")}`)
      console.log(`lan2's peers while downloading: ${JSON.stringify(during.peers)}; at the end: ${JSON.stringify(s.peers)}`)
      expect(during.peers.map((p) => `${p.ip}:${p.port}`)).toContain(`${GW1_EXT}:6881`)
      expect(readFileSync(Path.join(bSave, ...built.metainfo.files[0]!.path)).equals(built.payload)).toBe(true)
      // the relay held (and gave) little of the data: the rest came from lan1
      const fromRelay = s.peers.find((p) => p.ip === "6.6.2.1")?.down ?? 0
      expect(fromRelay).toBeLessThan(built.payload.length / 4)
      expect(b.log()).toMatch(/==> HOLEPUNCH \[ msg: rendezvous to: 6\.6\.1\.2/)
      expect(a.log()).toMatch(/<== HOLEPUNCH \[ msg:connect to: 6\.6\.2\.2/)
    } catch (e) {
      const pick = (log: string) => log.split("\n").filter((l) => /holepunch|HOLEPUNCH|PEX|connect|6\.6\./i.test(l)).slice(-80).join("\n")
      if (process.env["HP_DEBUG"]) {
        writeFileSync(Path.join(process.env["HP_DEBUG"], "a.log"), a.log())
        writeFileSync(Path.join(process.env["HP_DEBUG"], "b.log"), b.log())
        writeFileSync(Path.join(process.env["HP_DEBUG"], "relay.log"), relay.output())
      }
      console.log(`lan1 libtorrent:\n${pick(a.log())}\n\nlan2 libtorrent:\n${pick(b.log())}\n\nrelay:\n${relay.output().slice(-3000)}`)
      throw e
    } finally {
      await relay.stop()
      await a.stop()
      await b.stop()
    }
  }, 180_000)

  it("initiator and target over uTP: our client behind one NAT downloads from a libtorrent seeder behind another, through a libtorrent relay", async () => {
    const built = payload("hp-initiator")
    const torrent = Path.join(dir, "initiator.torrent")
    writeFileSync(torrent, built.bytes)
    // the relay: libtorrent in the middle, downloading slowly itself (what we get, we get from the seeder)
    const relay = await LibtorrentSession.start({ ...ltSettings, listen_interfaces: "0.0.0.0:6891", download_rate_limit: 8192 }, netns(PUB))
    // other ports than the first test's: the gateways' conntrack still holds that test's mappings for minutes
    const seeder = await LibtorrentSession.start(
      { ...ltSettings, listen_interfaces: "0.0.0.0:6886", upload_rate_limit: 1_000_000 },
      netns(LAN2)
    )
    const out = Path.join(dir, "initiator-data")
    let client: Child | undefined
    try {
      await seeder.seed("t", built)
      await relay.leech("t", built)
      await seeder.command({ op: "connect", id: "t", ip: "6.6.2.1", port: 6891 })
      await seeder.waitFor("t", (st) => st.peers.length > 0, 20_000)
      // the seeder dials nobody from now on (else its dial, crossing ours after the relay's PEX, would open both NATs)
      await seeder.command({ op: "settings", settings: { seeding_outgoing_connections: false } })
      // No direct way in: a uTP SYN from lan1 to the seeder's NAT address goes unanswered.
      expect(synProbe(LAN1, GW2_EXT, 6886)).toBe("silence")
      client = ours(LAN1, { torrent, dir: out, port: 6885, peers: [{ host: "6.6.1.1", port: 6891 }], seed: false })
      // our direct dial of the address the relay's PEX gave fails first; then the rendezvous, the relay's connect
      await client.waitFor(/holepunch: dialling 6\.6\.2\.2:6886 failed; rendezvous sent through 6\.6\.1\.1:6891/, 60_000)
      await client.waitFor(/holepunch: connect from 6\.6\.1\.1:6891 to 6\.6\.2\.2:6886/, 30_000)
      await client.waitFor(/"event":"done"/, 90_000)
      const done = JSON.parse(client.output().split("\n").find((l) => l.includes('"event":"done"'))!) as {
        transfers: ReadonlyArray<{ address: string; downloaded: number }>
      }
      console.log(`our client's log:\n${client.output().split("\n").filter((l) => l.includes("holepunch")).join("\n")}`)
      console.log(`downloaded from: ${JSON.stringify(done.transfers)}`)
      const fromSeeder = done.transfers.filter((t) => t.address.startsWith(`${GW2_EXT}:`)).reduce((n, t) => n + t.downloaded, 0)
      expect(fromSeeder).toBeGreaterThan(built.payload.length / 2)
      expect(readFileSync(Path.join(out, ...built.metainfo.files[0]!.path)).equals(built.payload)).toBe(true)
      expect(relay.log()).toMatch(/<== HOLEPUNCH \[ msg: ?rendezvous to: 6\.6\.2\.2/)
    } catch (e) {
      if (process.env["HP_DEBUG"]) {
        writeFileSync(Path.join(process.env["HP_DEBUG"], "relay-lt.log"), relay.log())
        writeFileSync(Path.join(process.env["HP_DEBUG"], "seeder-lt.log"), seeder.log())
        writeFileSync(Path.join(process.env["HP_DEBUG"], "client.log"), client?.output() ?? "")
      }
      throw e
    } finally {
      await client?.stop()
      await relay.stop()
      await seeder.stop()
    }
  }, 180_000)

  it("target over uTP: a libtorrent leecher behind one NAT downloads from our seeder behind another, through a libtorrent relay", async () => {
    const built = payload("hp-target")
    const torrent = Path.join(dir, "target.torrent")
    writeFileSync(torrent, built.bytes)
    const data = Path.join(dir, "target-data")
    mkdirSync(data, { recursive: true })
    writeFileSync(Path.join(data, ...built.metainfo.files[0]!.path), built.payload)
    // Fresh ports (the gateways still hold the earlier tests' mappings). libtorrent sends a connection its first PEX
    // once the torrent has another peer, then once a minute. A bystander on the relay's loopback (an address nobody
    // else can dial) makes the relay's first PEX to our seeder go out before the leecher exists, so our seeder hears
    // of the leecher only a minute later and cannot dial it first (its SYN would cross the leecher's and punch both
    // NATs with no rendezvous): the leecher's rendezvous, and the relay's connect to us, are what connect them.
    const relay = await LibtorrentSession.start({ ...ltSettings, listen_interfaces: "0.0.0.0:6892", download_rate_limit: 8192 }, netns(PUB))
    const bystander = await LibtorrentSession.start({ ...ltSettings, listen_interfaces: "0.0.0.0:6893", download_rate_limit: 8192 }, netns(PUB))
    const leecher = await LibtorrentSession.start({ ...ltSettings, listen_interfaces: "0.0.0.0:6887" }, netns(LAN1))
    let seeder: Child | undefined
    try {
      await relay.leech("t", built)
      await bystander.leech("t", built)
      await bystander.command({ op: "connect", id: "t", ip: "127.0.0.1", port: 6892 })
      await relay.waitFor("t", (st) => st.peers.length > 0, 20_000)
      seeder = ours(LAN2, { torrent, dir: data, port: 6888, peers: [{ host: "6.6.2.1", port: 6892 }], seed: true, upLimit: 1_000_000 })
      await relay.waitForLog((l) => /\[6\.6\.2\.2:6888\] ==> PEX_FULL/.test(l), 30_000)
      const save = await leecher.leech("t", built)
      await leecher.command({ op: "connect", id: "t", ip: "6.6.1.1", port: 6892 })
      // the relay's connect names the leecher; we did not ask for it (no rendezvous of ours for that address)
      await seeder.waitFor(/holepunch: connect from [0-9.:]+ to 6\.6\.1\.2:6887/, 60_000)
      const during = await leecher.waitFor("t", (st) => st.peers.some((p) => p.ip === GW2_EXT && p.down > 0) || st.progress >= 1, 60_000)
      const s = await leecher.waitFor("t", (st) => st.progress >= 1, 60_000)
      expect(during.peers.map((p) => `${p.ip}:${p.port}`)).toContain(`${GW2_EXT}:6888`)
      const log = seeder.output().split("\n").filter((l) => l.includes("holepunch"))
      console.log(`our seeder's log:\n${log.join("\n")}\nleecher's peers while downloading: ${JSON.stringify(during.peers)}`)
      expect(log.some((l) => /dialling 6\.6\.1\.2:6887 failed/.test(l))).toBe(false)
      expect(leecher.log()).toMatch(/==> HOLEPUNCH \[ msg: rendezvous to: 6\.6\.2\.2/)
      expect(readFileSync(Path.join(save, ...built.metainfo.files[0]!.path)).equals(built.payload)).toBe(true)
      const fromMiddle = s.peers.filter((p) => p.ip.startsWith("6.6.") && p.ip !== GW2_EXT).reduce((n, p) => n + p.down, 0)
      expect(fromMiddle).toBeLessThan(built.payload.length / 4)
    } catch (e) {
      if (process.env["HP_DEBUG"]) {
        writeFileSync(Path.join(process.env["HP_DEBUG"], "t-relay.log"), relay.log())
        writeFileSync(Path.join(process.env["HP_DEBUG"], "t-leecher.log"), leecher.log())
        writeFileSync(Path.join(process.env["HP_DEBUG"], "t-seeder.log"), seeder?.output() ?? "")
      }
      throw e
    } finally {
      await seeder?.stop()
      await relay.stop()
      await bystander.stop()
      await leecher.stop()
    }
  }, 180_000)
})
