// Main-thread cost of the Finisher per piece, with storage calls that complete on the next macrotask (as a worker
// reply or a pool write would): npx tsx scratchpad/finisher-bench.ts [pieces]
import * as Effect from "effect/Effect"
import * as Bitfield from "../src/core/Bitfield.ts"
import * as PiecePool from "../src/storage/PiecePool.ts"
import * as Finisher from "../src/torrent/Finisher.ts"

const N = Number(process.argv[2] ?? 20000)
const later = <A>(a: A) => Effect.async<A>((resume) => { setImmediate(() => resume(Effect.succeed(a))) })
const program = Effect.gen(function*() {
  let done = 0
  let finished: (() => void) | undefined
  const pool = PiecePool.make({ pieceLength: 1 << 14, budget: 1 << 30 } as never)
  const f = yield* Finisher.make({
    storage: {
      verifyPiece: (_i, data) => later({ ok: true, data }),
      writePiece: () => later(undefined)
    },
    picker: () => ({ pieceVerified: () => {} }) as never,
    have: Bitfield.make(N),
    pool: { release: () => {} } as never,
    budget: 1 << 30,
    concurrency: 4,
    publish: () => {},
    sendHave: () => {},
    ban: () => Effect.void,
    kickAll: () => {},
    onBacklog: () => {},
    onVerified: () => { if (++done === N) finished?.() },
    after: Effect.void,
    failStorage: () => Effect.void,
    storageFailed: () => false
  })
  void pool
  yield* Effect.forkScoped(f.run)
  const data = new Uint8Array(16)
  const t0 = process.cpuUsage()
  const w0 = performance.now()
  yield* Effect.async<void>((resume) => {
    finished = () => resume(Effect.void)
    let i = 0
    const feed = () => { for (let k = 0; k < 8 && i < N; k++) f.offer(i++, data); if (i < N) setImmediate(feed) }
    feed()
  })
  const u = process.cpuUsage(t0)
  console.log(`${N} pieces: ${((performance.now() - w0) * 1000 / N).toFixed(1)} µs wall, ${((u.user + u.system) / N).toFixed(1)} µs CPU per piece`)
})
Effect.runPromise(Effect.scoped(program))
