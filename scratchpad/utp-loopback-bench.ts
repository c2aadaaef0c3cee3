// One-way uTP transfer over loopback between two UtpSockets in one process; prints MB/s and stats.
import * as Effect from "effect/Effect"
import * as UtpSocket from "../src/net/UtpSocket.ts"

const size = Number(process.argv[2] ?? 64) * 1024 * 1024
const piece = Number(process.argv[3] ?? 16 * 1024 + 13)
const host = "127.0.0.1"
const program = Effect.gen(function*() {
  const a = yield* UtpSocket.make({ host, config: JSON.parse(process.env.UTPCFG ?? "{}") })
  const b = yield* UtpSocket.make({ host })
  const [client, server] = yield* Effect.all([a.dial({ host, port: b.local.port }), b.accept], { concurrency: 2 })
  const data = new Uint8Array(size).map((_, i) => (i * 7) & 0xff)
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  yield* Effect.async<void>((resume) => {
    let got = 0
    server.onData((c) => {
      got += c.length
      if (got >= size) resume(Effect.void)
    })
    // Keep at most 4 MiB queued, like a peer session's write budget.
    let at = 0
    const pump = () => {
      while (at < size && client.writeBacklog!() < 4 * 1024 * 1024) {
        const n = Math.min(piece, size - at)
        client.write(data.subarray(at, at + n))
        at += n
      }
      if (at < size) setTimeout(pump, 1)
    }
    pump()
  })
  const secs = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  console.log(JSON.stringify({ MBps: +(size / secs / 1e6).toFixed(1), secs: +secs.toFixed(2), cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(2), a: a.stats(), b: b.stats() }))
}).pipe(Effect.scoped)
Effect.runPromise(program).then(() => process.exit(0))
