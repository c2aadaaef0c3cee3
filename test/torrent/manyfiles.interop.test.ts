/**
 * Issue 13: a torrent of more files than the storage keeps descriptors open for (FileStorage's `maxOpenFiles`),
 * downloaded while fast-resume records are saved every few MiB (each save flushes the storage: fdatasync of the
 * files written since the last one). A flush that synced, and then closed, descriptors the LRU had already evicted
 * (and the kernel had meanwhile handed to another file) logged "resume record not saved: ... EBADF" and wrote blocks
 * into the wrong files, sometimes while the download still reported complete.
 *
 * The payload: 300 files of odd sizes (one empty, four tiny) over the top level and 7 nested folders, ~64 MiB in
 * 1 MiB pieces (most pieces span several files). One python3-libtorrent seeder announces to a real opentracker, and
 * our client is given no peer: it finds the seeder through its own announce, as in the issue (the tracker costs a
 * few ms and keeps the scenario the user ran). Each download gets a fresh output and state directory and is then
 * compared byte for byte with the seeder's copy: every file present, exactly the torrent's size, the same bytes,
 * nothing else on disk; no warning logged (in particular no "resume record not saved"); a resume record written;
 * and `effect-torrent verify T OUT` exits 0.
 *
 * Three downloads: the library (`Client.download`) with `maxOpenFiles: 8` and a save every 1 MiB (every piece),
 * the library with the default bound (64) and a save every 16 MiB (more dirty data per flush, so that the fdatasyncs
 * of one flush take longer than the evictions of its handles), and the built CLI (`download T -o OUT --state-dir S
 * --resume-interval 0.5`; the CLI has no flag for the descriptor bound or the save size). Why these: each flush
 * syncs the dirty handles one after another, and the bug needs a handle evicted while the flush has yet to reach it;
 * 4 descriptors give a flush fewer handles to be late on than 8 (4 failed 9 runs of 10, 8 and 16 every run), and
 * with 64 and 300 files a save every 2 MiB failed 4 of 10, every 16 MiB 10 of 10.
 *
 * The library runs in a child process (support/manyFilesDownload.ts, bundled with esbuild): the bug closes
 * descriptor numbers the storage no longer owns, and in the test runner's process that closed the runner's IPC
 * channel (the file died with "Channel closed", no report). Children are bounded (40 s) and killed by PID: a
 * storage in that state sometimes never finishes closing.
 *
 * Against the FileStorage of commit 7004bda every download fails in most runs: see the commit message.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { build as esbuild } from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { runChild } from "../support/children.ts"
import { bundle, cliEnv } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { projectRoot } from "../support/fixtures.ts"
import * as ManyFiles from "../support/manyFiles.ts"
import type { Job, Result } from "../support/manyFilesDownload.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"

const MiB = 1024 * 1024
const NAME = "many"
const FILES = ManyFiles.layout({ files: 300, folders: 7, totalBytes: 64 * MiB })

const enabled = Real.shouldRun("libtorrent") && Opentracker.shouldRun("many-files interop through opentracker")

const stops: Array<() => Promise<void>> = []
const children: Array<ChildProcess> = []
const dirs: Array<string> = []
afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
  }
  await Promise.all(stops.map((s) => s()))
  for (const d of dirs) Fs.rmSync(d, { recursive: true, force: true })
})

let torrent: Built
let seeder: Real.RealSeeder
let torrentFile: string
/** support/manyFilesDownload.ts bundled (as scripts/build.mjs bundles the CLI): starts in ~0.2 s, tsx in ~5 s. */
let runner: string

beforeAll(async () => {
  if (!enabled) return
  const bin = tempDir("manyfiles-runner")
  dirs.push(bin)
  runner = Path.join(bin, "manyFilesDownload.mjs")
  await esbuild({
    absWorkingDir: projectRoot,
    entryPoints: ["test/support/manyFilesDownload.ts"],
    outfile: runner,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
    banner: { js: 'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);' }
  })
  const pre = build({ name: NAME, pieceLength: MiB, files: FILES.map((f) => ({ path: f.path, length: f.length })) })
  const tracker = await Opentracker.start([Tracked.hexOf(pre)])
  stops.push(tracker.stop)
  torrent = Tracked.withAnnounce(pre, tracker.httpUrl)
  seeder = await Real.libtorrent(torrent)
  stops.push(seeder.stop)
  await Tracked.untilSeeders(tracker.port, torrent, 1)
  const t = tempDir("manyfiles-torrent")
  dirs.push(t)
  torrentFile = Path.join(t, `${NAME}.torrent`)
  Fs.writeFileSync(torrentFile, torrent.bytes)
}, 120_000)

/** The data files, relative to the output directory (`many/d0/f3.bin`), with their lengths. */
const expected = () =>
  torrent.metainfo.files.filter((f) => !f.pad).map((f) => ({ path: Path.join(...f.path), length: f.length }))

const fresh = (name: string) => {
  const out = tempDir(name)
  const state = tempDir(`${name}-state`)
  dirs.push(out, state)
  return { out, state }
}

/**
 * What is wrong with the data in `out` and the state in `state` after a download: differences from the seeder's
 * copy, no resume record, and `effect-torrent verify T OUT` (docs/VERIFY.md) not exiting 0.
 */
const onDisk = async (out: string, state: string): Promise<Array<string>> => {
  const v = await runCli(["verify", torrentFile, out])
  return [
    ...ManyFiles.differences(expected(), seeder.dataDir, out),
    ...(Fs.existsSync(Path.join(state, `${Tracked.hexOf(torrent)}.resume`)) ? [] : ["no resume record was saved"]),
    ...(v.code === 0 ? [] : [
      `verify exited ${v.code ?? v.signal}: ${v.stderr.trim()}`,
      ...v.stdout.split("\n").filter((l) => l !== "" && !/^\s*ok\s/.test(l)).slice(0, 20).map((l) => `verify: ${l}`)
    ])
  ]
}

/** `Client.download` in a child process (support/manyFilesDownload.ts), then everything wrong; expected empty. */
const viaLibrary = async (name: string, options: Pick<Job, "maxOpenFiles" | "resumeSave">) => {
  const { out, state } = fresh(name)
  const job: Job = { torrent: torrentFile, outputDir: out, stateDir: state, timeoutMs: 30_000, ...options }
  const r = await runChild(
    children,
    process.execPath,
    [runner, JSON.stringify(job)],
    40_000 // a storage that closed what it did not own can hang its scope's close: killed by PID
  )
  const line = r.log.split("\n").reverse().find((l) => l.startsWith("{\"") && l.includes("\"warnings\""))
  const result = line === undefined ? undefined : (JSON.parse(line) as Result)
  const problems = [
    ...(result === undefined ? [`node ${runner} ended with ${r.code}, no result: ${r.log.slice(-2000)}`] : []),
    ...(result?.failure === undefined ? [] : [`download failed: ${result.failure}`]),
    ...(result?.warnings ?? []).map((w) => `logged ${w}`),
    ...(await onDisk(out, state))
  ]
  expect(problems).toEqual([])
}

/** The built CLI with `args` (colours off, loopback only), killed by PID after 40 s. */
const runCli = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bundle, ...args], { env: cliEnv, stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => void (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => void (stderr += d.toString()))
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 40_000)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

describe("many files (issue 13): more files than open descriptors, resume saves every few MiB", () => {
  it("the payload: 300 files, 7 nested folders, odd sizes, an empty and tiny files, pieces across files", () => {
    expect(FILES.length).toBe(300)
    expect(new Set(FILES.map((f) => f.path.slice(0, -1).join("/"))).size).toBe(8) // top level + 7 folders
    expect(Math.max(...FILES.map((f) => f.path.length))).toBe(4) // d0/d1/d2/f.bin
    expect(FILES.filter((f) => f.length === 0)).toHaveLength(1)
    expect(FILES.filter((f) => f.length > 0 && f.length < 20_000).length).toBeGreaterThanOrEqual(4)
    expect(FILES.filter((f) => f.length > 0 && f.length % 2 === 0)).toHaveLength(0)
    const total = FILES.reduce((n, f) => n + f.length, 0)
    expect(total).toBeGreaterThan(48 * MiB)
    expect(total).toBeLessThan(96 * MiB)
    // Almost every file ends inside a piece: pieces span file boundaries.
    let at = 0
    let inside = 0
    for (const f of FILES) {
      at += f.length
      if (at % MiB !== 0) inside++
    }
    expect(inside).toBeGreaterThan(290)
  })

  it.skipIf(!enabled)(
    "library, maxOpenFiles 8, a resume save every 1 MiB: byte-identical to the seeder, no warning",
    () => viaLibrary("manyfiles-8", { maxOpenFiles: 8, resumeSave: { bytes: MiB, intervalMs: 10 } }),
    90_000
  )

  it.skipIf(!enabled)(
    "library, default maxOpenFiles (64), a resume save every 16 MiB: byte-identical to the seeder, no warning",
    () => viaLibrary("manyfiles-64", { resumeSave: { bytes: 16 * MiB, intervalMs: 1_000 } }),
    90_000
  )

  it.skipIf(!enabled)(
    "CLI `download T -o OUT --state-dir S`: exit 0, no warning, byte-identical to the seeder",
    async () => {
      const { out, state } = fresh("manyfiles-cli")
      // The CLI sets neither the resume save size (256 MiB by default: never, here) nor the descriptor bound (64):
      // a save every 0.5 s, a few during the download and one at the end.
      const r = await runCli(["download", torrentFile, "-o", out, "--state-dir", state, "--resume-interval", "0.5"])
      const problems = [
        ...(r.code === 0 ? [] : [`exit ${r.code ?? r.signal}`]),
        ...r.stderr.split("\n").filter((l) => l.trim() !== "").map((l) => `stderr: ${l}`),
        ...(await onDisk(out, state))
      ]
      expect(problems).toEqual([])
      expect(r.stdout).toMatch(new RegExp(`^${NAME}: complete`, "m"))
    },
    90_000
  )
})
