/**
 * Run by UtpNetns.test.ts inside a network namespace (`ip netns exec`): sends `argv[2]` bytes over uTP between two
 * UtpSockets on 127.0.0.1 and prints one JSON line: whether the bytes arrived exact, the seconds taken and the
 * sender's loss statistics.
 */
import * as Effect from "effect/Effect"
import * as UtpSocket from "../../src/net/UtpSocket.ts"

const size = Number(process.argv[2] ?? 4_000_000)
const host = "127.0.0.1"
const data = new Uint8Array(size)
let x = 0x2545f491
for (let i = 0; i < size; i++) {
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  data[i] = x & 0xff
}

const program = Effect.gen(function*() {
  const a = yield* UtpSocket.make({ host })
  const b = yield* UtpSocket.make({ host })
  const [tx, rx] = yield* Effect.all([a.dial({ host, port: b.local.port, timeout: "20 seconds" }), b.accept], {
    concurrency: 2
  })
  const t0 = performance.now()
  const got = new Uint8Array(size)
  let at = 0
  yield* Effect.async<void>((resume) => {
    rx.onData((c) => {
      got.set(c, at)
      at += c.length
      if (at >= size) resume(Effect.void)
    })
    for (let i = 0; i < size; i += 16_384) tx.write(data.subarray(i, Math.min(size, i + 16_384)))
  })
  const seconds = (performance.now() - t0) / 1000
  const exact = at === size && Buffer.from(got).equals(Buffer.from(data))
  console.log(JSON.stringify({ exact, seconds, sender: a.stats() }))
}).pipe(Effect.scoped)

Effect.runPromise(program).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
