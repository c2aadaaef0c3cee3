// N libtorrent seeders of a random payload on loopback, then one command against them (its output shown):
// npx tsx scratchpad/swarm-n.ts SIZE N -- <command with {torrent} and {out}>
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Opentracker from "../test/support/opentracker.ts"
import { infoHashOf, makeTorrent, parseSize, startLibtorrentSeeder, stopChild, writePayload, writeScripts } from "../bench/harness.ts"
const [sizeArg, nArg, , ...cmd] = process.argv.slice(2)
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-swarm-"))
const data = Path.join(dir, "data"); Fs.mkdirSync(data)
await writePayload(Path.join(data, "payload.bin"), parseSize(sizeArg!))
writeScripts(dir)
const torrent = Path.join(dir, "payload.torrent")
makeTorrent(Path.join(data, "payload.bin"), torrent, "http://127.0.0.1:1/announce")
const tracker = await Opentracker.start([infoHashOf(torrent)])
makeTorrent(Path.join(data, "payload.bin"), torrent, tracker.httpUrl)
const seeders = []
for (let i = 0; i < Number(nArg); i++) seeders.push((await startLibtorrentSeeder(dir, torrent, data)).child)
const out = Path.join(dir, "out")
const argv = cmd.map((a) => a.replace("{torrent}", torrent).replace("{out}", out))
const t0 = Date.now()
const r = spawnSync(argv[0]!, argv.slice(1), { stdio: "inherit" })
console.log(`exit ${r.status} in ${((Date.now() - t0) / 1000).toFixed(2)} s`)
for (const c of seeders) await stopChild(c, "stdin")
await tracker.stop()
Fs.rmSync(dir, { recursive: true, force: true })
