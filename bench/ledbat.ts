/**
 * LEDBAT against TCP, measured (not a test; issue 19 item 1, docs/UTP.md): does our uTP flow yield when a TCP flow
 * fills the same bottleneck, and take the link back when it leaves?
 *
 *   npm run bench:ledbat -- [--rate 8mbit] [--queue-ms 500] [--cc reno] [--phase 20] [--target-ms 100]
 *
 * Three network namespaces made (and removed) by the script: a sender, a router and a receiver, joined by two veth
 * pairs. The router's egress toward the receiver is the bottleneck: `tbf rate R latency Q` (a queue of about R·Q
 * bytes, tail drop), like a home router's uplink buffer. The bottleneck must sit in a router: on the sender's own
 * interface, Linux TCP Small Queues keep a socket's bytes in the local qdisc short, so TCP never fills the buffer
 * (that, and this machine's default congestion control BBR, which aims at an empty queue, is why an earlier attempt
 * on a namespace's loopback showed no back-off). The sender's TCP uses `--cc`, reno by default: loss-based, it fills
 * the buffer until a drop, as most TCP stacks do (cubic too, but a namespace may only take a default from
 * `net.ipv4.tcp_allowed_congestion_control`, here "reno bbr"; `--cc bbr` shows the machine's default).
 *
 * The sender runs one uTP connection (our UtpSocket) and, in some phases, one TCP connection to the receiver, both
 * writing as fast as allowed; the receiver counts bytes every 250 ms. A small UDP echo every 100 ms crosses the
 * bottleneck forward and returns unshaped: its RTT is the forward queueing delay (plus well under 1 ms).
 * Phases of `--phase` seconds: uTP alone, uTP + TCP, uTP alone again, TCP alone; the first 5 s of each are left
 * out of its figures (settling). Prints a table per phase and a timeline (2 s steps) of both rates and the delay.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import * as Readline from "node:readline"
import * as Effect from "effect/Effect"
import * as UtpSocket from "../src/net/UtpSocket.ts"
import { argValue, median, ROOT } from "./harness.ts"

const NS = { a: "conn-ledbat-a", r: "conn-ledbat-r", b: "conn-ledbat-b" }
const ADDR = { a: "10.231.1.1", ra: "10.231.1.2", rb: "10.231.2.2", b: "10.231.2.1" }
const PORTS = { utp: 7001, tcp: 7002, echo: 7003 }

const rate = argValue("--rate") ?? "8mbit"
const queueMs = Number(argValue("--queue-ms") ?? "500")
const cc = argValue("--cc") ?? "reno"
const phaseS = Number(argValue("--phase") ?? "20")
const targetMs = Number(argValue("--target-ms") ?? "100")
const SETTLE_S = 5

interface Phase {
  readonly name: string
  readonly utp: boolean
  readonly tcp: boolean
}
const PHASES: ReadonlyArray<Phase> = [
  { name: "uTP alone", utp: true, tcp: false },
  { name: "uTP + TCP", utp: true, tcp: true },
  { name: "uTP alone again", utp: true, tcp: false },
  { name: "TCP alone", utp: false, tcp: true }
]

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const line = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`)
const chunk = new Uint8Array(64 * 1024).fill(7)

// ---------------------------------------------------------------------------------------------------------------
// Receiver (in the receiver's namespace)

const receiver = Effect.gen(function*() {
  const utp = yield* UtpSocket.make({ host: ADDR.b, port: PORTS.utp })
  let utpBytes = 0
  let tcpBytes = 0
  yield* Effect.forkScoped(Effect.forever(Effect.flatMap(utp.accept, (c) => Effect.sync(() => c.onData((d) => void (utpBytes += d.length))))))
  const server = Net.createServer((s) => {
    s.on("data", (d) => void (tcpBytes += d.length))
    s.on("error", () => {})
  })
  yield* Effect.promise(() => new Promise<void>((r) => server.listen(PORTS.tcp, ADDR.b, () => r())))
  const echo = Dgram.createSocket("udp4")
  echo.on("message", (m, from) => echo.send(m, from.port, from.address))
  yield* Effect.promise(() => new Promise<void>((r) => echo.bind(PORTS.echo, ADDR.b, () => r())))
  const timer = setInterval(() => line({ t: Date.now(), utp: utpBytes, tcp: tcpBytes }), 250)
  line({ ready: true })
  // Until the orchestrator closes our stdin.
  yield* Effect.promise(() => new Promise<void>((r) => process.stdin.on("end", r).resume()))
  clearInterval(timer)
  server.close()
  echo.close()
}).pipe(Effect.scoped)

// ---------------------------------------------------------------------------------------------------------------
// Sender (in the sender's namespace)

const sender = Effect.gen(function*() {
  const utp = yield* UtpSocket.make({ host: ADDR.a, config: { targetDelay: targetMs * 1000 } })
  const conn = yield* utp.dial({ host: ADDR.b, port: PORTS.utp })
  let utpOn = false
  let tcpOn = false
  let tcp: Net.Socket | undefined
  const pump = setInterval(() => {
    if (utpOn) for (let i = 0; i < 64 && conn.writeBacklog!() < 2 * 1024 * 1024; i++) conn.write(chunk)
    if (tcpOn) {
      // connected when its first phase starts (an idle connection beside a saturated queue may time out)
      tcp ??= Net.connect({ port: PORTS.tcp, host: ADDR.b }).on("error", (e) => line({ tcpError: e.message }))
      while (!tcp.destroyed && tcp.writableLength < 4 * 1024 * 1024) tcp.write(chunk)
    }
  }, 5)
  const echo = Dgram.createSocket("udp4")
  echo.on("message", (m) => line({ t: Date.now(), rttMs: performance.now() - m.readDoubleBE(0) }))
  yield* Effect.promise(() => new Promise<void>((r) => echo.bind(0, ADDR.a, () => r())))
  const probe = setInterval(() => {
    const m = Buffer.alloc(8)
    m.writeDoubleBE(performance.now())
    echo.send(m, PORTS.echo, ADDR.b)
  }, 100)
  yield* Effect.promise(async () => {
    for (const p of PHASES) {
      utpOn = p.utp
      tcpOn = p.tcp
      if (!p.tcp && tcp !== undefined) {
        tcp.destroy()
        tcp = undefined
      }
      line({ phase: p.name, t: Date.now() })
      await sleep(phaseS * 1000)
    }
    line({ phase: "end", t: Date.now() })
  })
  clearInterval(pump)
  clearInterval(probe)
  echo.close()
  tcp?.destroy()
  line({ utpStats: utp.stats() })
}).pipe(Effect.scoped)

// ---------------------------------------------------------------------------------------------------------------
// Orchestrator

const sh = (...argv: Array<string>) => execFileSync(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] }).toString()
const inNs = (ns: string, ...argv: Array<string>) => sh("ip", "netns", "exec", ns, ...argv)

const teardownNet = () => {
  for (const ns of Object.values(NS)) {
    try {
      sh("ip", "netns", "del", ns)
    } catch {
      // not there
    }
  }
}

const setupNet = () => {
  teardownNet()
  for (const ns of Object.values(NS)) {
    sh("ip", "netns", "add", ns)
    inNs(ns, "ip", "link", "set", "lo", "up")
  }
  sh("ip", "link", "add", "cl-a0", "netns", NS.a, "type", "veth", "peer", "name", "cl-ra", "netns", NS.r)
  sh("ip", "link", "add", "cl-rb", "netns", NS.r, "type", "veth", "peer", "name", "cl-b0", "netns", NS.b)
  inNs(NS.a, "ip", "addr", "add", `${ADDR.a}/24`, "dev", "cl-a0")
  inNs(NS.r, "ip", "addr", "add", `${ADDR.ra}/24`, "dev", "cl-ra")
  inNs(NS.r, "ip", "addr", "add", `${ADDR.rb}/24`, "dev", "cl-rb")
  inNs(NS.b, "ip", "addr", "add", `${ADDR.b}/24`, "dev", "cl-b0")
  for (const [ns, dev] of [[NS.a, "cl-a0"], [NS.r, "cl-ra"], [NS.r, "cl-rb"], [NS.b, "cl-b0"]] as const) {
    inNs(ns, "ip", "link", "set", dev, "up")
  }
  inNs(NS.a, "ip", "route", "add", "default", "via", ADDR.ra)
  inNs(NS.b, "ip", "route", "add", "default", "via", ADDR.rb)
  inNs(NS.r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
  inNs(NS.a, "sysctl", "-q", "-w", `net.ipv4.tcp_congestion_control=${cc}`)
  // The bottleneck: the router's way to the receiver. tbf's burst must hold a whole (GSO-merged) packet.
  inNs(NS.r, "tc", "qdisc", "add", "dev", "cl-rb", "root", "tbf", "rate", rate, "burst", "64kb", "latency", `${queueMs}ms`)
}

/** Runs this script in `ns` with `role`; resolves with the child once it printed `{"ready":true}` (or at once). */
const startRole = (ns: string, role: string, onLine: (o: Record<string, unknown>) => void): ChildProcess => {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", `${ROOT}/bench/ledbat.ts`, "--role", role, ...process.argv.slice(2)], {
    stdio: ["pipe", "pipe", "inherit"],
    cwd: ROOT
  })
  Readline.createInterface({ input: child.stdout! }).on("line", (l) => {
    try {
      onLine(JSON.parse(l) as Record<string, unknown>)
    } catch {
      process.stderr.write(`${role}: ${l}\n`)
    }
  })
  return child
}

const orchestrate = async () => {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces)")
  console.log(`bottleneck: tbf ${rate}, queue ${queueMs} ms, sender TCP ${cc}, uTP target ${targetMs} ms, phases of ${phaseS} s`)
  try {
    setupNet()
  } catch (e) {
    teardownNet()
    throw e
  }
  const counts: Array<{ t: number; utp: number; tcp: number }> = []
  const rtts: Array<{ t: number; rtt: number }> = []
  const phases: Array<{ name: string; t: number }> = []
  let stats: unknown
  let ready!: () => void
  const isReady = new Promise<void>((r) => (ready = r))
  const recv = startRole(NS.b, "receiver", (o) => {
    if (o["ready"] === true) ready()
    else if (typeof o["utp"] === "number") counts.push(o as { t: number; utp: number; tcp: number })
  })
  let send: ChildProcess | undefined
  try {
    await Promise.race([isReady, sleep(30_000).then(() => Promise.reject(new Error("receiver not ready in 30 s")))])
    send = startRole(NS.a, "sender", (o) => {
      if (typeof o["phase"] === "string") phases.push({ name: o["phase"], t: o["t"] as number })
      else if (typeof o["rttMs"] === "number") rtts.push({ t: o["t"] as number, rtt: o["rttMs"] })
      else if (o["utpStats"] !== undefined) stats = o["utpStats"]
      else process.stderr.write(`sender: ${JSON.stringify(o)}\n`)
    })
    const child = send
    const deadline = (PHASES.length * phaseS + 60) * 1000
    const code = await Promise.race([
      new Promise<number | null>((r) => child.once("exit", (c) => r(c))),
      sleep(deadline).then(() => "timeout" as const)
    ])
    if (code !== 0) throw new Error(`sender ended with ${code}`)
  } finally {
    recv.stdin?.end()
    await Promise.race([new Promise((r) => recv.once("exit", r)), sleep(3000)])
    for (const c of [recv, send]) if (c?.pid !== undefined && c.exitCode === null) process.kill(c.pid, "SIGKILL")
    teardownNet()
  }

  const rateBetween = (from: number, to: number, key: "utp" | "tcp") => {
    const inside = counts.filter((c) => c.t >= from && c.t <= to)
    if (inside.length < 2) return 0
    const a = inside[0]!
    const b = inside[inside.length - 1]!
    return (b[key] - a[key]) / ((b.t - a.t) / 1000) / 1e6
  }
  const rttsBetween = (from: number, to: number) => rtts.filter((r) => r.t >= from && r.t < to).map((r) => r.rtt)
  const pct = (xs: ReadonlyArray<number>, p: number) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * p)] ?? NaN

  console.log(`\n| phase (last ${phaseS - SETTLE_S} s of ${phaseS}) | uTP MB/s | TCP MB/s | queueing delay median / p90 ms |`)
  console.log("|---|---|---|---|")
  for (let i = 0; i + 1 < phases.length; i++) {
    const from = phases[i]!.t + SETTLE_S * 1000
    const to = phases[i + 1]!.t
    const d = rttsBetween(from, to)
    console.log(
      `| ${phases[i]!.name} | ${rateBetween(from, to, "utp").toFixed(2)} | ${rateBetween(from, to, "tcp").toFixed(2)} | ` +
        `${median(d).toFixed(0)} / ${pct(d, 0.9).toFixed(0)} |`
    )
  }
  console.log(`\ntimeline (2 s steps): t s, phase, uTP MB/s, TCP MB/s, delay median ms`)
  const t0 = phases[0]!.t
  const end = phases[phases.length - 1]!.t
  for (let t = t0; t + 2000 <= end; t += 2000) {
    const phase = [...phases].reverse().find((p) => p.t <= t)!.name
    const d = rttsBetween(t, t + 2000)
    console.log(
      `${((t - t0) / 1000).toFixed(0).padStart(4)}  ${phase.padEnd(16)} ${rateBetween(t, t + 2000, "utp").toFixed(2).padStart(6)} ` +
        `${rateBetween(t, t + 2000, "tcp").toFixed(2).padStart(6)} ${median(d).toFixed(0).padStart(6)}`
    )
  }
  console.log(`\nuTP sender: ${JSON.stringify(stats)}`)
}

const role = argValue("--role")
const run = role === "receiver"
  ? Effect.runPromise(receiver)
  : role === "sender"
  ? Effect.runPromise(sender)
  : orchestrate()
run.then(() => process.exit(0), (e: unknown) => {
  console.error(e)
  process.exit(1)
})
