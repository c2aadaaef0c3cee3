/**
 * Where a download's wall time goes (issue 16): one libtorrent seeder via opentracker, our CLI with --json, each
 * event stamped from spawn: first event, Started, first PieceVerified, Completed, exit. The tail after Completed is
 * the final flush (fdatasync of every file written), the stopped announce and the resume save.
 *   npx tsx scratchpad/download-timeline.ts [--size 1GiB] [--runs 2]
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { createInterface } from "node:readline"
import * as Opentracker from "../test/support/opentracker.ts"
import {
  argValue, CLI, effectEnv, infoHashOf, makeTorrent, parseSize, startLibtorrentSeeder, stopChild, writePayload, writeScripts
} from "../bench/harness.ts"

const size = parseSize(argValue("--size") ?? "1GiB")
const runs = Number(argValue("--runs") ?? "2")
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-timeline-"))
const data = Path.join(dir, "data")
Fs.mkdirSync(data)
await writePayload(Path.join(data, "payload.bin"), size)
writeScripts(dir)
const torrent = Path.join(dir, "payload.torrent")
makeTorrent(Path.join(data, "payload.bin"), torrent, "http://127.0.0.1:1/announce")
const tracker = await Opentracker.start([infoHashOf(torrent)])
makeTorrent(Path.join(data, "payload.bin"), torrent, tracker.httpUrl)
const { child: seeder } = await startLibtorrentSeeder(dir, torrent, data)
try {
  for (let run = 1; run <= runs; run++) {
    const out = Path.join(dir, `out${run}`)
    const t0 = performance.now()
    const marks: Record<string, number> = {}
    const child = spawn(process.execPath, [CLI, "download", torrent, "-o", out, "--json", "--state-dir", `${out}.state`], {
      env: effectEnv(),
      stdio: ["ignore", "pipe", "inherit"]
    })
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const at = performance.now() - t0
      const e = (JSON.parse(line) as { event: string }).event
      marks["first event"] ??= at
      const key = e === "PieceVerified" ? "first piece" : e
      marks[key] ??= at
    })
    await new Promise((r) => child.once("exit", r))
    marks["exit"] = performance.now() - t0
    console.log(`run ${run}: ` + ["first event", "Started", "PeerConnected", "first piece", "Completed", "exit"]
      .map((k) => `${k} ${marks[k]?.toFixed(0) ?? "-"} ms`).join(", "))
    Fs.rmSync(out, { recursive: true, force: true })
    Fs.rmSync(`${out}.state`, { recursive: true, force: true })
  }
} finally {
  await stopChild(seeder, "stdin")
  await tracker.stop()
  Fs.rmSync(dir, { recursive: true, force: true })
}
