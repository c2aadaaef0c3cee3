import * as Sim from "../test/net/utpSim.ts"
import * as UtpConnection from "../src/net/UtpConnection.ts"

const run = (target: number, rate: number, secs: number) => {
  const link = { loss: 0, duplicate: 0, delay: 20_000, jitter: 0, rate, queueLimit: 10_000_000 }
  const p = Sim.pair({ seed: 9, ab: link, ba: { ...link, rate: undefined }, configA: { targetDelay: target } })
  const size = Math.floor(rate * secs * 1e6 * 1.2)
  const data = Sim.randomBytes(1, size)
  let wrote = false
  const samples: Array<[number, number, number]> = []
  const sampler = () => { if (p.a.state) samples.push([p.sim.now / 1e6, p.a.state.cwnd, p.a.state.queuingDelay ?? -1]); p.sim.at(p.sim.now + 1_000_000, sampler) }
  p.sim.at(0, sampler)
  p.sim.run(secs * 1e6, () => {
    if (p.a.connected && !wrote) { p.a.write(data); wrote = true }
    return false
  })
  const qd = p.ab.log.queueDelays
  const tail = qd.slice(Math.floor(qd.length / 2)).sort((a, b) => a - b)
  console.log(target, "median queue delay 2nd half", tail[tail.length >> 1], "max", p.ab.log.maxQueueDelay, "recv", p.b.received)
  console.log(samples.filter((_, i) => i % 5 === 0).map(([t, c, d]) => `${t.toFixed(0)}s cwnd=${c.toFixed(0)} d=${(d/1000).toFixed(0)}ms`).join(" | "))
}
run(100_000, 0.5, 60)
run(25_000, 0.5, 60)
