// Runs random scenarios of the property one by one with a wall-clock guard, printing slow or failing ones.
import * as FastCheck from "effect/FastCheck"
import * as Sim from "../test/net/utpSim.ts"
import * as UtpConnection from "../src/net/UtpConnection.ts"
const E = UtpConnection.Event
const link = FastCheck.record({
  loss: FastCheck.double({ min: 0, max: 0.2, noNaN: true }),
  duplicate: FastCheck.double({ min: 0, max: 0.1, noNaN: true }),
  delay: FastCheck.integer({ min: 1_000, max: 80_000 }),
  jitter: FastCheck.integer({ min: 0, max: 60_000 })
})
const scenario = FastCheck.record({
  seed: FastCheck.integer(), link, back: link,
  sizeA: FastCheck.integer({ min: 0, max: 120_000 }),
  sizeB: FastCheck.oneof(FastCheck.constant(0), FastCheck.integer({ min: 0, max: 60_000 })),
  chunk: FastCheck.integer({ min: 1, max: 20_000 }),
  seqA: FastCheck.integer({ min: 0, max: 0xffff }), seqB: FastCheck.integer({ min: 0, max: 0xffff }),
  pauses: FastCheck.array(FastCheck.tuple(FastCheck.integer({ min: 0, max: 3_000_000 }), FastCheck.integer({ min: 1, max: 2_000_000 })), { maxLength: 3 }),
  receiveWindow: FastCheck.constantFrom(16 * 1024, 64 * 1024, 1024 * 1024)
})
const samples = FastCheck.sample(scenario, { numRuns: Number(process.argv[2] ?? 200), seed: Number(process.argv[3] ?? 1) })
for (const sc of samples) {
  const config = { maxTransmissions: 16, synTransmissions: 16, receiveWindow: sc.receiveWindow, closeTimeout: 120_000_000, ackDelay: Number(process.env.ACK_DELAY ?? 0) }
  const p = Sim.pair({ seed: sc.seed, ab: sc.link, ba: sc.back, configA: config, configB: config, seqA: sc.seqA, seqB: sc.seqB })
  const dataA = Sim.randomBytes(sc.seed, sc.sizeA), dataB = Sim.randomBytes(sc.seed + 1, sc.sizeB)
  let started = false, closed = false, steps = 0
  for (const [at, length] of sc.pauses) {
    p.sim.at(at, () => p.b.dispatch(E.Pause()))
    p.sim.at(at + length, () => { p.b.dispatch(E.Resume()); p.b.scheduleFlush() })
  }
  const t0 = Date.now()
  const fin = p.sim.run(3_600_000_000, () => {
    if (++steps % 100000 === 0 && Date.now() - t0 > 5000) return true
    if (!started && p.a.connected && p.b.state !== undefined) {
      started = true
      for (let i = 0; i < dataA.length; i += sc.chunk) p.a.write(dataA.subarray(i, Math.min(dataA.length, i + sc.chunk)), () => {})
      for (let i = 0; i < dataB.length; i += sc.chunk) p.b.write(dataB.subarray(i, Math.min(dataB.length, i + sc.chunk)), () => {})
    }
    if (started && !closed && p.a.received === sc.sizeB) { closed = true; p.a.dispatch(E.Close()) }
    return p.a.released && p.b.released
  })
  const ok = fin && p.a.released && p.b.released && p.b.received === sc.sizeA && p.a.received === sc.sizeB
  const wall = Date.now() - t0
  if (!ok || wall > 1000) console.log(JSON.stringify({ ok, wall, vt: p.sim.now / 1e6, steps, a: { rel: p.a.released, end: p.a.ended, rcv: p.a.received, ph: p.a.state?.phase, st: p.a.state?.stats, unsent: p.a.state?.unsentBytes, pw: p.a.state?.peerWindow }, b: { rel: p.b.released, end: p.b.ended, rcv: p.b.received, ph: p.b.state?.phase, st: p.b.state?.stats, held: p.b.state?.heldBytes, deliv: p.b.state?.delivering }, sc }))
}
console.log("done")
