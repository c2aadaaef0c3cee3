/**
 * Run inside a network namespace by LsdNetns.test.ts: an Lsd on the namespace's interfaces, registered for one
 * info-hash (argv[2], hex) and announcing port argv[3]; prints one JSON line with the peers it was handed for that
 * hash and its counters, once a peer arrived and argv[4] more seconds passed (to keep announcing), or after 30 s.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Lsd from "../../src/net/Lsd.ts"

const [hex, port, linger] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4] ?? 0)]

const program = Effect.scoped(Effect.gen(function*() {
  const found: Array<string> = []
  const first = yield* Deferred.make<void>()
  const lsd = yield* Lsd.make({ port })
  yield* lsd.register(Bytes.fromHex(hex)!, (host, p) => {
    found.push(`${host}:${p}`)
    Deferred.unsafeDone(first, Effect.void)
  })
  yield* Deferred.await(first).pipe(
    Effect.zipRight(Effect.sleep(`${linger} seconds`)),
    Effect.timeout("30 seconds"),
    Effect.ignore
  )
  console.log(JSON.stringify({ peers: found, counters: lsd.counters() }))
}))

Effect.runPromise(program).then(() => process.exit(0), (e: unknown) => {
  console.error(e)
  process.exit(1)
})
