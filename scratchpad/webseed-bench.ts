/**
 * Web seed throughput: downloads a .torrent whose url-list points at a running HTTP server (no peers), and prints
 * wall time and CPU. Usage: tsx scratchpad/webseed-bench.ts FILE.torrent OUTDIR [connections] [requestMiB]
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { readFileSync, rmSync } from "node:fs"
import * as Metainfo from "../src/metainfo/Metainfo.ts"
import * as Client from "../src/session/Client.ts"
import { testClient } from "../test/support/download.ts"

const [file, out, conns, reqMiB] = process.argv.slice(2)
const m = Either.getOrThrow(Metainfo.decode(new Uint8Array(readFileSync(file!))))
rmSync(out!, { recursive: true, force: true })
const t0 = performance.now()
const c0 = process.cpuUsage()
await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const d = yield* Client.download(m, { outputDir: out!, trackers: false })
  yield* d.done
})).pipe(Effect.provide(testClient({
  webSeedConfig: {
    ...(conns === undefined ? {} : { connections: Number(conns) }),
    ...(reqMiB === undefined ? {} : { requestBytes: Number(reqMiB) * 1024 * 1024 })
  }
}))))
const c = process.cpuUsage(c0)
console.log(`wall ${((performance.now() - t0) / 1000).toFixed(2)} s, cpu user ${(c.user / 1e6).toFixed(2)} s sys ${(c.system / 1e6).toFixed(2)} s`)
