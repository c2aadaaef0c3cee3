// uTP download rate on loopback: one libtorrent 2.0.8 seeder (TCP and uTP on), leeched in turn by a uTP-only
// libtorrent, by our client over uTP, and by our client over TCP (reference). Prints seconds, MB/s and our CPU.
// Usage: npx tsx scratchpad/utp-bench-libtorrent.ts [MiB] [rounds]
import * as Effect from "effect/Effect"
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
      await leecher.command({ op: "connect", id: "t", ip: "127.0.0.1", port: seeder.port })
      await leecher.waitFor("t", (s) => s.seeding, 600_000)
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
  } finally {
    await seeder.stop()
  }
  for (const r of results) console.log(JSON.stringify(r))
}
void Client
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
