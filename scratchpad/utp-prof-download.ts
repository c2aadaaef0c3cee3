// One uTP download from a uTP-only libtorrent seeder: seconds, our CPU, and our uTP socket's datagram counts (run
// with node --cpu-prof --import tsx to profile). UTP_ACK_DELAY (µs) overrides the socket's delayed-ack setting.
import * as Effect from "effect/Effect"
import * as Client from "../src/session/Client.ts"
import { download, tempDir, testClient } from "../test/support/download.ts"
import * as Lt from "../test/support/libtorrentSession.ts"
import { build } from "../test/support/seeder.ts"
const mib = Number(process.argv[2] ?? 64)
const b = build({ name: "bench", pieceLength: 1024 * 1024, files: [{ path: ["bench.bin"], length: mib * 1024 * 1024 }] })
const main = async () => {
  const seeder = await Lt.start({ enable_outgoing_tcp: false, enable_incoming_tcp: false, enable_incoming_utp: true, enable_outgoing_utp: true })
  await seeder.seed("t", b)
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const stats = await Effect.runPromise(Effect.gen(function*() {
    const client = yield* Client.Client
    yield* download(b, tempDir("utp-prof"), [seeder.port])
    return (yield* client.utp)?.stats()
  }).pipe(Effect.scoped, Effect.provide(testClient({ transport: "utp", encryption: "off" }))))
  const c = process.cpuUsage(c0)
  console.log(JSON.stringify({ s: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6, in: stats?.datagramsIn, out: stats?.datagramsOut }))
  await seeder.stop()
}
main().then(() => process.exit(0))
