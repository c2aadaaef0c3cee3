/**
 * Experiment helper (not a test): keeps the download bench's swarm up (random payload, opentracker, one
 * python3-libtorrent seeder on 127.0.0.1) and writes /tmp/swarm.json {torrent, dir, sha256}, so a leecher can be
 * run by hand many times (strace, perf, --cpu-prof). Stops on SIGTERM/SIGINT or after 2 hours.
 *   npx tsx scratchpad/swarm-up.ts --size 1GiB &
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Opentracker from "../test/support/opentracker.ts"
import {
  argValue, infoHashOf, makeTorrent, parseSize, startLibtorrentSeeder, stopChild, writePayload, writeScripts
} from "../bench/harness.ts"

const size = parseSize(argValue("--size") ?? "1GiB")
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-swarm-"))
const dataDir = Path.join(dir, "data")
Fs.mkdirSync(dataDir)
const payload = Path.join(dataDir, "payload.bin")
const sha256 = await writePayload(payload, size)
writeScripts(dir)
const torrent = Path.join(dir, "payload.torrent")
makeTorrent(payload, torrent, "http://127.0.0.1:1/announce")
const tracker = await Opentracker.start([infoHashOf(torrent)])
makeTorrent(payload, torrent, tracker.httpUrl)
const { child } = await startLibtorrentSeeder(dir, torrent, dataDir)
Fs.writeFileSync("/tmp/swarm.json", JSON.stringify({ torrent, dir, sha256 }))
console.log(`swarm up: ${torrent}`)
const stop = async () => {
  await stopChild(child, "stdin")
  await tracker.stop()
  Fs.rmSync(dir, { recursive: true, force: true })
  Fs.rmSync("/tmp/swarm.json", { force: true })
  process.exit(0)
}
process.once("SIGTERM", () => void stop())
process.once("SIGINT", () => void stop())
setTimeout(() => void stop(), 2 * 3600_000)
