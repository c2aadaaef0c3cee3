// Our seeder over uTP, a uTP-only libtorrent leecher: prints libtorrent's progress and our uTP socket's stats every
// 2 s until it completes (or 120 s pass).
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Client from "../src/session/Client.ts"
import * as Hasher from "../src/storage/Hasher.ts"
import { writeData } from "../test/support/data.ts"
import { noTracker, tempDir } from "../test/support/download.ts"
import * as Lt from "../test/support/libtorrentSession.ts"
import { build } from "../test/support/seeder.ts"

const mib = Number(process.argv[2] ?? 64)
const b = build({ name: "up", pieceLength: 1024 * 1024, files: [{ path: ["up.bin"], length: mib * 1024 * 1024 }] })
const main = async () => {
  const data = tempDir("utp-up")
  writeData(b, data)
  const scope = await Effect.runPromise(Scope.make())
  const { port, stats } = await Effect.runPromise(Effect.gen(function*() {
    const ctx = yield* Layer.build(Client.layerWith({ listen: { host: "127.0.0.1", port: 0 }, transport: "utp", encryption: "off" }).pipe(Layer.provide(noTracker), Layer.provide(Hasher.layerInline)))
    yield* Client.seed(b.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(ctx))
    const c = yield* Effect.provide(Client.Client, ctx)
    const utp = (yield* c.utp)!
    return { port: (yield* c.listener)!.address.port, stats: utp.stats }
  }).pipe(Scope.extend(scope)))
  const lt = await Lt.start({ enable_outgoing_tcp: false, enable_incoming_tcp: false, enable_outgoing_utp: true, enable_incoming_utp: true })
  await lt.leech("t", b)
  const t0 = performance.now()
  await lt.command({ op: "connect", id: "t", ip: "127.0.0.1", port })
  for (;;) {
    await new Promise((r) => setTimeout(r, 2000))
    const s = await lt.status("t")
    const t = ((performance.now() - t0) / 1000).toFixed(1)
    console.log(JSON.stringify({ t, progress: s.progress.toFixed(3), state: s.state, peers: s.peers.length, ours: stats() }))
    if (s.seeding || performance.now() - t0 > 120_000) break
  }
  console.log(lt.log().slice(-2000))
  await lt.stop()
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
