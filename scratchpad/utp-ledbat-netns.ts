// LEDBAT against TCP through a bottleneck: run inside a network namespace whose loopback has a tbf qdisc, e.g.
//   ip netns add utpq; ip netns exec utpq ip link set lo up
//   ip netns exec utpq ip link set lo mtu 1500   (tbf drops packets larger than its burst: no 64 KiB TCP segments)
//   ip netns exec utpq tc qdisc add dev lo root tbf rate 8mbit burst 16kb latency 400ms
//   ip netns exec utpq npx tsx scratchpad/utp-ledbat-netns.ts 15
//   ip netns del utpq
// Phases of N seconds: uTP alone, TCP alone, both at once. Prints each flow's goodput per phase (and the RTT of a
// small UDP echo sampled every 100 ms: the queueing delay the flows cause).
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import * as Effect from "effect/Effect"
import * as UtpSocket from "../src/net/UtpSocket.ts"

const secs = Number(process.argv[2] ?? 15)
const host = "127.0.0.1"
const chunk = new Uint8Array(64 * 1024).fill(7)

const echoRtt = async (ms: number): Promise<Array<number>> => {
  const a = Dgram.createSocket("udp4"), b = Dgram.createSocket("udp4")
  await new Promise<void>((r) => a.bind(0, host, () => r()))
  await new Promise<void>((r) => b.bind(0, host, () => r()))
  b.on("message", (m, r) => b.send(m, r.port, r.address))
  const rtts: Array<number> = []
  a.on("message", (m) => rtts.push(performance.now() - m.readDoubleBE(0)))
  const t = setInterval(() => { const m = Buffer.alloc(8); m.writeDoubleBE(performance.now()); a.send(m, b.address().port, host) }, 100)
  await new Promise((r) => setTimeout(r, ms))
  clearInterval(t); a.close(); b.close()
  return rtts.sort((x, y) => x - y)
}

const program = Effect.gen(function*() {
  const s1 = yield* UtpSocket.make({ host })
  const s2 = yield* UtpSocket.make({ host })
  const [utpTx, utpRx] = yield* Effect.all([s1.dial({ host, port: s2.local.port }), s2.accept], { concurrency: 2 })
  let utpBytes = 0
  utpRx.onData((c) => { utpBytes += c.length })
  let utpOn = false
  const pumpUtp = () => { if (utpOn) for (let i = 0; i < 64 && utpTx.writeBacklog!() < 2 * 1024 * 1024; i++) utpTx.write(chunk); setTimeout(pumpUtp, 5) }
  pumpUtp()
  // TCP pair, connected at the start of its first phase (an idle connection beside a saturated queue was seen to
  // end with ETIMEDOUT).
  let tcpBytes = 0
  const server = Net.createServer((s) => {
    s.on("data", (d) => { tcpBytes += d.length })
    s.on("error", (e) => console.error("tcp server side:", e.message))
  })
  yield* Effect.promise(() => new Promise<void>((r) => server.listen(0, host, () => r())))
  let tcp: Net.Socket | undefined
  let tcpOn = false
  const pumpTcp = () => {
    if (tcpOn) {
      tcp ??= Net.connect((server.address() as Net.AddressInfo).port, host).on("error", (e) => console.error("tcp client side:", e.message))
      while (!tcp.destroyed && tcp.writableLength < 2 * 1024 * 1024) tcp.write(chunk)
    }
    setTimeout(pumpTcp, 5)
  }
  pumpTcp()
  const phase = async (name: string, u: boolean, t: boolean) => {
    utpOn = u; tcpOn = t
    await new Promise((r) => setTimeout(r, 5000)) // settle
    const u0 = utpBytes, t0 = tcpBytes, start = performance.now()
    const rtts = await echoRtt(secs * 1000)
    const dt = (performance.now() - start) / 1000
    const out = { phase: name, utpMBps: +((utpBytes - u0) / dt / 1e6).toFixed(3), tcpMBps: +((tcpBytes - t0) / dt / 1e6).toFixed(3), rttMedianMs: +(rtts[rtts.length >> 1] ?? -1).toFixed(1), rttP90Ms: +(rtts[Math.floor(rtts.length * 0.9)] ?? -1).toFixed(1) }
    console.log(JSON.stringify(out))
    utpOn = false; tcpOn = false
    await new Promise((r) => setTimeout(r, 3000)) // drain
  }
  yield* Effect.promise(async () => {
    await phase("idle", false, false)
    await phase("uTP alone", true, false)
    await phase("TCP alone", false, true)
    await phase("uTP + TCP", true, true)
    await phase("uTP alone again", true, false)
  })
  console.log(JSON.stringify({ utp: s1.stats() }))
  tcp?.destroy(); server.close()
}).pipe(Effect.scoped)
Effect.runPromise(program).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
