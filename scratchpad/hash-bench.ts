/**
 * SHA-1 per piece size: inline (node:crypto on the loop) against the worker pool (ArrayBuffer transferred and
 * returned), to pick Hasher's `inlineMax`. Run: `npx tsx scratchpad/hash-bench.ts`.
 *
 * For each size: µs per piece and MB/s for inline; for the pool with 1 and 2 workers, µs per piece with one piece
 * in flight (latency) and with 8 in flight (throughput), and the event loop's longest stall (p99/max of
 * `monitorEventLoopDelay`, 1 ms resolution included) while hashing, yielding to the loop after every round.
 *
 * Results (Node 20.20, 2 vCPU, shared: load average 6–7 from other sessions' tests, so ±50 %), 3 runs:
 * - inline: 16 KiB 87–189 µs (setup-dominated), 256 KiB 210–510 µs, 1 MiB 660–1880 µs, 4 MiB 2.6–7.4 ms,
 *   16 MiB 10–25 ms per piece; i.e. 0.6–1.0 ms/MiB when it gets the CPU (≈ THROUGHPUT.md's 0.5–0.9).
 * - pool, one piece in flight: about the same wall time as inline from 256 KiB up (the round trip with transfer is
 *   ~50–100 µs), 3–6× slower at 16–64 KiB. With 8 in flight, 2 workers beat 1 only at 16 MiB; on 2 shared cores
 *   there is no idle core to win, as THROUGHPUT.md found.
 * - Decision: `inlineMax` = 1 MiB. Pieces up to 1 MiB block the loop for ≲ 1 ms (harmless per rule 7); 4–16 MiB
 *   pieces would stall it 3–25 ms per piece, so they go to the pool, which keeps the loop free at equal cost.
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Effect from "effect/Effect"
import * as Hasher from "../src/storage/Hasher.ts"

const SIZES = [16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]
const BYTES_PER_SIZE = 256 << 20

const fill = (n: number) => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24
  return b
}

const eld = () => {
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  return () => {
    h.disable()
    return `${(h.percentile(99) / 1e6).toFixed(1)}/${(h.max / 1e6).toFixed(1)}`
  }
}

const tick = Effect.promise(() => new Promise<void>((r) => setImmediate(r)))

const run = (hasher: Hasher.HasherShape, size: number, inFlight: number) =>
  Effect.gen(function*() {
    const count = Math.max(8, Math.floor(BYTES_PER_SIZE / size))
    let bufs = Array.from({ length: inFlight }, () => fill(size))
    // warm up
    bufs = yield* Effect.forEach(bufs, (b) => Effect.map(hasher.sha1(b), (r) => r.data), { concurrency: "unbounded" })
    const stop = eld()
    const t0 = performance.now()
    for (let done = 0; done < count; done += inFlight) {
      bufs = yield* Effect.forEach(bufs, (b) => Effect.map(hasher.sha1(b), (r) => r.data), {
        concurrency: "unbounded"
      })
      yield* tick // let the loop (and its delay monitor) run between rounds, as a real client's loop would
    }
    const ms = performance.now() - t0
    const stall = stop()
    return { us: (ms * 1000) / count, mbs: (count * size) / ms / 1000, stall }
  })

const program = Effect.gen(function*() {
  const pool1 = yield* Hasher.makePool({ workers: 1, inlineMax: 0 })
  const pool2 = yield* Hasher.makePool({ workers: 2, inlineMax: 0 })
  console.log("size      | inline µs  MB/s  eld p99/max ms | pool1 x1 µs | pool1 x8 µs MB/s eld | pool2 x8 µs MB/s eld")
  for (const size of SIZES) {
    const a = yield* run(Hasher.inline, size, 1)
    const b = yield* run(pool1, size, 1)
    const c = yield* run(pool1, size, 8)
    const d = yield* run(pool2, size, 8)
    const kib = `${size >> 10} KiB`.padEnd(9)
    console.log(
      `${kib} | ${a.us.toFixed(0).padStart(6)} ${a.mbs.toFixed(0).padStart(5)} ${a.stall.padStart(10)} | ` +
        `${b.us.toFixed(0).padStart(8)} | ${c.us.toFixed(0).padStart(6)} ${c.mbs.toFixed(0).padStart(5)} ${c.stall} | ` +
        `${d.us.toFixed(0).padStart(6)} ${d.mbs.toFixed(0).padStart(5)} ${d.stall}`
    )
  }
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  console.error(e)
  process.exit(1)
})
