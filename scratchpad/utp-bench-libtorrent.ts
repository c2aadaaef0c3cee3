// uTP download rate on loopback: one libtorrent 2.0.8 seeder (TCP and uTP on), leeched in turn by a uTP-only
// libtorrent, by our client over uTP, and by our client over TCP (reference); then our seeder (transport utp)
// leeched by a uTP-only libtorrent (upload). Prints seconds, MB/s and our CPU.
// Usage: npx tsx scratchpad/utp-bench-libtorrent.ts [MiB] [rounds]
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import * as Hasher from "../src/storage/Hasher.ts"
import { noTracker } from "../test/support/download.ts"
import { writeData } from "../test/support/data.ts"
import * as Client from "../src/session/Client.ts"
import type * as UtpTransport from "../src/net/UtpTransport.ts"
import { download, tempDir, testClient } from "../test/support/download.ts"
import * as Lt from "../test/support/libtorrentSession.ts"
import { build } from "../test/support/seeder.ts"
import * as Fs from "node:fs"

const mib = Number(process.argv[2] ?? 64)
const rounds = Number(process.argv[3] ?? 1)
const b = build({ name: "bench", pieceLength: 1024 * 1024, files: [{ path: ["bench.bin"], length: mib * 1024 * 1024 }] })
const utpOnly = { enable_outgoing_tcp: false, enable_incoming_tcp: false, enable_outgoing_utp: true, enable_incoming_utp: true }

const main = async () => {
  const seeder = await Lt.start({ enable_incoming_utp: true, enable_outgoing_utp: true })
  await seeder.seed("t", b)
  const results: Array<Record<string, unknown>> = []
  try {
    for (let r = 0; r < rounds; r++) {
      // libtorrent's own uTP leecher
      const leecher = await Lt.start(utpOnly)
      const save = await leecher.leech("t", b)
      const t0 = performance.now()
      // libtorrent's uTP leecher sometimes sits on a first connect that went nowhere: ask again every 3 s while it
      // has no peer.
      await leecher.command({ op: "connect", id: "t", ip: "127.0.0.1", port: seeder.port })
      await leecher.waitFor("t", (s) => {
        if (s.peers.length === 0) void leecher.command({ op: "connect", id: "t", ip: "127.0.0.1", port: seeder.port })
        return s.seeding
      }, 600_000)
      const lt = (performance.now() - t0) / 1000
      await leecher.stop()
      Fs.rmSync(save, { recursive: true, force: true })
      results.push({ who: "libtorrent uTP leecher", seconds: +lt.toFixed(2), MBps: +(b.payload.length / lt / 1e6).toFixed(1) })
      for (const transport of ["utp", "tcp"] as Array<UtpTransport.Transport>) {
        const dir = tempDir("utp-bench")
        const cpu0 = process.cpuUsage()
        const t1 = performance.now()
        await Effect.runPromise(download(b, dir, [seeder.port]).pipe(Effect.provide(testClient({ transport, encryption: "off", noPeersTimeout: "60 seconds" }))))
        const s = (performance.now() - t1) / 1000
        const cpu = process.cpuUsage(cpu0)
        Fs.rmSync(dir, { recursive: true, force: true })
        results.push({ who: `effect-torrent ${transport}`, seconds: +s.toFixed(2), MBps: +(b.payload.length / s / 1e6).toFixed(1), cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(2) })
      }
    }
    // Upload: our seeder over uTP, a uTP-only libtorrent leecher.
    const data = tempDir("utp-bench-seed")
    writeData(b, data)
    const scope = await Effect.runPromise(Scope.make())
    const port = await Effect.runPromise(Effect.gen(function*() {
      const ctx = yield* Layer.build(Client.layerWith({ listen: { host: "127.0.0.1", port: 0 }, transport: "utp", encryption: "off" }).pipe(Layer.provide(noTracker), Layer.provide(Hasher.layerInline)))
      yield* Client.seed(b.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(ctx))
      const c = yield* Effect.provide(Client.Client, ctx)
      return (yield* c.listener)!.address.port
    }).pipe(Scope.extend(scope)))
    for (let r = 0; r < rounds; r++) {
      const leecher = await Lt.start(utpOnly)
      const save = await leecher.leech("t", b)
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      await leecher.command({ op: "connect", id: "t", ip: "127.0.0.1", port })
      await leecher.waitFor("t", (s) => s.seeding, 600_000)
      const sec = (performance.now() - t0) / 1000
      const cpu = process.cpuUsage(cpu0)
      await leecher.stop()
      Fs.rmSync(save, { recursive: true, force: true })
      results.push({ who: "libtorrent uTP leecher from effect-torrent (utp)", seconds: +sec.toFixed(2), MBps: +(b.payload.length / sec / 1e6).toFixed(1), cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(2) })
    }
    await Effect.runPromise(Scope.close(scope, Exit.void))
    Fs.rmSync(data, { recursive: true, force: true })
  } finally {
    await seeder.stop()
  }
  for (const r of results) console.log(JSON.stringify(r))
}
void Client
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
