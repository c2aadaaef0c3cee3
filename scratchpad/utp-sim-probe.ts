import * as Sim from "../test/net/utpSim.ts"
import * as UtpConnection from "../src/net/UtpConnection.ts"

const run = (link: Sim.LinkParams, size: number, seed: number) => {
  const p = Sim.pair({ seed, ab: link, ba: link, configA: { maxTransmissions: 12 }, configB: { maxTransmissions: 12 } })
  const data = Sim.randomBytes(seed, size)
  let closed = false
  p.sim.at(0, () => {})
  // write once connected
  const t0 = Date.now()
  const ok = p.sim.run(600_000_000, () => {
    if (p.a.connected && !closed && p.a.state!.unsentBytes === 0 && p.a.taken === 0) {
      for (let i = 0; i < size; i += 5000) p.a.write(data.subarray(i, Math.min(size, i + 5000)))
      p.a.dispatch(UtpConnection.Event.Close())
      p.a.scheduleFlush()
      closed = true
    }
    return p.a.released && p.b.released
  })
  const got = p.b.bytes()
  const same = got.length === data.length && got.every((x, i) => x === data[i])
  console.log(JSON.stringify({ ok, same, got: got.length, t: p.sim.now / 1e6, ea: p.a.ended, eb: p.b.ended, wall: Date.now() - t0, stA: p.a.state!.stats, cwnd: p.a.state!.cwnd, rtt: p.a.state!.rtt }))
}
run(Sim.perfectLink, 200_000, 1)
run({ loss: 0.1, duplicate: 0.05, delay: 30_000, jitter: 20_000 }, 200_000, 2)
run({ loss: 0.25, duplicate: 0.1, delay: 50_000, jitter: 60_000 }, 100_000, 3)
run({ loss: 0, duplicate: 0, delay: 20_000, jitter: 0, rate: 1, queueLimit: 400_000 }, 5_000_000, 4)
