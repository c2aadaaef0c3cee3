/**
 * Run inside the client namespace by PortMapping.test.ts: maps port argv[2] with the methods in argv[3]
 * (comma-separated), prints the mapping as one JSON line, then keeps it until stdin closes and removes it on exit.
 */
import * as Effect from "effect/Effect"
import * as PortMapping from "../../src/net/PortMapping.ts"

const [port, methods] = [Number(process.argv[2]), process.argv[3]!.split(",") as Array<PortMapping.Method>]

const program = Effect.scoped(Effect.gen(function*() {
  const pm = yield* PortMapping.make({ port, methods })
  const m = yield* pm.ready
  console.log(JSON.stringify({ mapping: m ?? null }))
  yield* Effect.async<void>((resume) => {
    process.stdin.on("end", () => resume(Effect.void))
    process.stdin.resume()
  })
}))

Effect.runPromise(program).then(() => {
  console.log(JSON.stringify({ closed: true }))
  process.exit(0)
}, (e: unknown) => {
  console.error(e)
  process.exit(1)
})
