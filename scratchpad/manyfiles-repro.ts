/**
 * Repro of issue 13, its exact scenario: a 512 MiB torrent of 100 files (~5 MiB each, odd sizes, 7 folders, 1 MiB
 * pieces), one libtorrent seeder found through opentracker, `effect-torrent download T -o OUT --state-dir S` run
 * several times in a row (fresh OUT and state dir each run), each result compared with the seeder's files (sha256
 * per file, sizes, nothing extra).
 *
 *   npx tsx scratchpad/manyfiles-repro.ts [--runs 20] [--cache DIR] [--keep] [--timeout 300]
 *       [--files 100] [--size-mib 512] [--folders 7] [--piece-kib 1024] [--tiny] [--cli bin/effect-torrent.js]
 *
 * The payload (and its .torrent, without tracker) is generated once into `--cache` (default
 * $TMPDIR/effect-torrent-manyfiles-cache) and reused while its manifest matches the parameters. The CLI is the built
 * bundle (`node scripts/build.mjs` first). Everything binds to 127.0.0.1 and the CLI runs with
 * EFFECT_TORRENT_LOOPBACK_ONLY=1. Every process started here is ended by its PID at the end, on Ctrl-C and on
 * SIGTERM; temporary directories (outputs, state dirs, the torrent, the tracker's) are removed unless --keep (the
 * cache stays: it is the cache).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash, randomFillSync } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Either from "effect/Either"
import * as Bencode from "../src/bencode/Bencode.ts"
import * as Bytes from "../src/core/Bytes.ts"
import * as Metainfo from "../src/metainfo/Metainfo.ts"
import * as ManyFiles from "../test/support/manyFiles.ts"
import * as Opentracker from "../test/support/opentracker.ts"

// --- flags ---
const argv = process.argv.slice(2)
const flag = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback
}
const has = (name: string) => argv.includes(`--${name}`)
const projectRoot = Path.resolve(import.meta.dirname, "..")
const RUNS = Number(flag("runs", "20"))
const CACHE = Path.resolve(flag("cache", Path.join(Os.tmpdir(), "effect-torrent-manyfiles-cache")))
const KEEP = has("keep")
const TIMEOUT_S = Number(flag("timeout", "300"))
const FILES = Number(flag("files", "100"))
const SIZE = Number(flag("size-mib", "512")) * 1024 * 1024
const FOLDERS = Number(flag("folders", "7"))
const PIECE = Number(flag("piece-kib", "1024")) * 1024
const TINY = has("tiny") // the issue's payload had no empty or tiny files
const CLI = Path.resolve(projectRoot, flag("cli", "bin/effect-torrent.js"))
const NAME = "pay"

const log = (s: string) => process.stdout.write(`${s}\n`)

// --- what is running, ended by PID in `cleanup` ---
const children: Array<ChildProcess> = []
const tempDirs: Array<string> = []
let tracker: Opentracker.Opentracker | undefined
const tempDir = (prefix: string) => {
  const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), `manyfiles-repro-${prefix}-`))
  tempDirs.push(d)
  return d
}
const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null
const exited = (c: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (!alive(c)) return resolve(true)
    const timer = setTimeout(() => resolve(!alive(c)), ms)
    c.once("exit", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
/** The PIDs of `pid`'s children (the CLI launcher re-executes itself once: bin/effect-torrent.js). */
const childrenOf = (pid: number): Array<number> => {
  try {
    return Fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((s) => s !== "")
      .map(Number)
  } catch {
    return []
  }
}
const killPid = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}
/** SIGTERM by PID, then SIGKILL (the process and the children it started) after `graceMs`. */
const end = async (c: ChildProcess, graceMs = 5_000) => {
  if (!alive(c) || c.pid === undefined) return
  const pid = c.pid
  const grandchildren = childrenOf(pid)
  killPid(pid, "SIGTERM")
  if (await exited(c, graceMs)) return
  for (const g of [...grandchildren, ...childrenOf(pid)]) killPid(g, "SIGKILL")
  killPid(pid, "SIGKILL")
  await exited(c, 2_000)
}

let stopping = false
let cleaning: Promise<void> | undefined
const cleanup = () =>
  (cleaning ??= (async () => {
    await Promise.all(children.map((c) => end(c)))
    if (tracker !== undefined) await tracker.stop()
    if (!KEEP) for (const d of tempDirs) Fs.rmSync(d, { recursive: true, force: true })
    else if (tempDirs.length > 0) log(`kept: ${tempDirs.join(" ")}`)
  })())
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    log(`\n${signal}: stopping`)
    stopping = true
    void cleanup().then(() => process.exit(signal === "SIGINT" ? 130 : 143))
  })
}

// --- the payload, generated once into the cache ---
interface Manifest {
  readonly params: string
  readonly files: ReadonlyArray<{ readonly path: string; readonly length: number; readonly sha256: string }>
}
const params = JSON.stringify({ FILES, SIZE, FOLDERS, PIECE, TINY, v: 2 })
const payloadDir = Path.join(CACHE, "payload")
const manifestPath = Path.join(CACHE, "manifest.json")
const baseTorrent = Path.join(CACHE, "base.torrent")

const cached = (): Manifest | undefined => {
  try {
    const m = JSON.parse(Fs.readFileSync(manifestPath, "utf8")) as Manifest
    if (m.params !== params || !Fs.existsSync(baseTorrent)) return undefined
    for (const f of m.files) if (Fs.statSync(Path.join(payloadDir, f.path)).size !== f.length) return undefined
    return m
  } catch {
    return undefined
  }
}

const generate = (): Manifest => {
  log(`generating ${(SIZE / 2 ** 20).toFixed(0)} MiB in ${FILES} files into ${CACHE} (once)`)
  Fs.rmSync(CACHE, { recursive: true, force: true })
  Fs.mkdirSync(payloadDir, { recursive: true })
  // Sizes around the mean (odd); the last file takes up the rounding so the total is SIZE (or one byte less: odd).
  const drawn = ManyFiles.layout({ files: FILES, folders: FOLDERS, totalBytes: SIZE, tiny: TINY })
  const rest = SIZE - drawn.slice(0, -1).reduce((n, e) => n + e.length, 0)
  const layout = [...drawn.slice(0, -1), { ...drawn.at(-1)!, length: rest % 2 === 1 ? rest : rest - 1 }]
  const pieces: Array<Buffer> = []
  let piece = createHash("sha1")
  let inPiece = 0
  const chunk = Buffer.allocUnsafe(4 * 1024 * 1024)
  const files = layout.map((e) => {
    const rel = Path.join(NAME, ...e.path)
    const full = Path.join(payloadDir, rel)
    Fs.mkdirSync(Path.dirname(full), { recursive: true })
    const fd = Fs.openSync(full, "w")
    const sha = createHash("sha256")
    for (let left = e.length; left > 0;) {
      const n = Math.min(left, chunk.length)
      const b = chunk.subarray(0, n)
      randomFillSync(b)
      Fs.writeSync(fd, b)
      sha.update(b)
      for (let at = 0; at < n;) {
        const take = Math.min(n - at, PIECE - inPiece)
        piece.update(b.subarray(at, at + take))
        inPiece += take
        at += take
        if (inPiece === PIECE) {
          pieces.push(piece.digest())
          piece = createHash("sha1")
          inPiece = 0
        }
      }
      left -= n
    }
    Fs.closeSync(fd)
    return { path: rel, length: e.length, sha256: sha.digest("hex"), components: e.path }
  })
  if (inPiece > 0) pieces.push(piece.digest())
  const info = {
    name: NAME,
    "piece length": PIECE,
    pieces: new Uint8Array(Buffer.concat(pieces)),
    files: files.map((f) => ({ length: f.length, path: [...f.components] }))
  }
  Fs.writeFileSync(baseTorrent, Bencode.encode({ info }))
  const manifest: Manifest = { params, files: files.map(({ components: _, ...f }) => f) }
  Fs.writeFileSync(manifestPath, JSON.stringify(manifest))
  return manifest
}

/** The cached torrent with `announce` set (the info dict unchanged: the same info-hash). */
const withAnnounce = (url: string): { bytes: Uint8Array; infoHash: string } => {
  const decoded = Bencode.decode(new Uint8Array(Fs.readFileSync(baseTorrent)))
  if (Either.isLeft(decoded) || !Bencode.isDict(decoded.right)) throw new Error("cannot read the cached torrent")
  const top = new Map(decoded.right)
  top.set("announce", Bytes.encodeUtf8(url))
  const bytes = Bencode.encode(top)
  const m = Metainfo.decode(bytes)
  if (Either.isLeft(m)) throw new Error(m.left.message)
  return { bytes, infoHash: Bytes.toHex(m.right.infoHash) }
}

// --- the seeder: python3-libtorrent seeding the cache in place (seed mode), announcing to the tracker ---
const SEED = `
import libtorrent as lt, sys, json, time, select
torrent, save = sys.argv[1], sys.argv[2]
s = lt.high_performance_seed()
s.update({"listen_interfaces": "127.0.0.1:0", "allow_multiple_connections_per_ip": True,
  "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
  "enable_incoming_utp": False, "enable_outgoing_utp": False, "in_enc_policy": 2, "out_enc_policy": 2,
  "announce_to_all_trackers": True, "announce_to_all_tiers": True})
ses = lt.session(s)
h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save, "flags": lt.torrent_flags.seed_mode})
for _ in range(400):
    if ses.listen_port() != 0 and h.status().state == lt.torrent_status.seeding: break
    time.sleep(0.05)
print(json.dumps({"port": ses.listen_port()}), flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r and not sys.stdin.read(1): break
`

const startSeeder = (torrent: string): Promise<number> => {
  const child = spawn("/usr/bin/python3", ["-c", SEED, torrent, payloadDir], {
    stdio: ["pipe", "pipe", "pipe"],
    detached: true // its own process group: a terminal's Ctrl-C reaches this script only, which ends it by PID
  })
  children.push(child)
  let err = ""
  child.stderr!.on("data", (d: Buffer) => void (err += d.toString()))
  return new Promise((resolve, reject) => {
    let out = ""
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf("\n")
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port)
    })
    child.once("exit", (c) => reject(new Error(`the libtorrent seeder exited with ${c}: ${err}`)))
  })
}

const untilSeeders = async (port: number, infoHash: string) => {
  const ih = infoHash.replace(/../g, "%$&")
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const body = await fetch(`http://127.0.0.1:${port}/scrape?info_hash=${ih}`).then((r) => r.text(), () => "")
    const m = /8:completei(\d+)e/.exec(body)
    if (m !== null && Number(m[1]) >= 1) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error("the tracker did not count the seeder within 60 s")
}

// --- one run of the CLI ---
interface RunResult {
  readonly code: number | null
  readonly signal: string | null
  readonly seconds: number
  readonly stdout: string
  readonly stderr: string
}
const runCli = (args: ReadonlyArray<string>): Promise<RunResult> =>
  new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, NO_COLOR: "1", EFFECT_TORRENT_LOOPBACK_ONLY: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true
    })
    children.push(child)
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (d: Buffer) => void (stdout += d.toString()))
    child.stderr!.on("data", (d: Buffer) => void (stderr += d.toString()))
    const timer = setTimeout(() => void end(child), TIMEOUT_S * 1000)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      children.splice(children.indexOf(child), 1)
      resolve({ code, signal, seconds: (Date.now() - started) / 1000, stdout, stderr })
    })
  })

const sha256File = (path: string): string => {
  const h = createHash("sha256")
  const fd = Fs.openSync(path, "r")
  const b = Buffer.allocUnsafe(4 * 1024 * 1024)
  try {
    for (;;) {
      const n = Fs.readSync(fd, b, 0, b.length, null)
      if (n === 0) break
      h.update(b.subarray(0, n))
    }
  } finally {
    Fs.closeSync(fd)
  }
  return h.digest("hex")
}

type Kind = "missing" | "short" | "long" | "wrong bytes" | "extra"

/**
 * What differs between `out` and the manifest (the seeder's files), file by file: missing, short, long (more bytes
 * than the torrent says: never what an unfinished download leaves), the right size with other bytes (an unfinished
 * download leaves those too: holes in sparse files), or a file the torrent does not list.
 */
const compare = (m: Manifest, out: string): Array<{ kind: Kind; line: string }> => {
  const bad: Array<{ kind: Kind; line: string }> = []
  for (const f of m.files) {
    const p = Path.join(out, f.path)
    const st = Fs.lstatSync(p, { throwIfNoEntry: false })
    if (st === undefined || !st.isFile()) {
      bad.push({ kind: "missing", line: `${f.path}: ${st === undefined ? "missing" : "not a regular file"}` })
    } else if (st.size !== f.length) {
      bad.push({
        kind: st.size < f.length ? "short" : "long",
        line: `${f.path}: ${st.size} bytes, the torrent says ${f.length}`
      })
    } else if (sha256File(p) !== f.sha256) bad.push({ kind: "wrong bytes", line: `${f.path}: sha256 differs` })
  }
  const listed = new Set(m.files.map((f) => f.path))
  for (const extra of ManyFiles.filesUnder(out)) {
    if (!listed.has(extra)) bad.push({ kind: "extra", line: `${extra}: not in the torrent` })
  }
  return bad
}

const main = async () => {
  if (!Fs.existsSync(Path.join(projectRoot, "dist/cli.mjs"))) {
    throw new Error("dist/cli.mjs is missing: run `node scripts/build.mjs` first")
  }
  const manifest = cached() ?? generate()
  const total = manifest.files.reduce((n, f) => n + f.length, 0)
  const dirs = new Set(manifest.files.map((f) => Path.dirname(f.path)))
  log(
    `payload: ${manifest.files.length} files, ${(total / 2 ** 20).toFixed(1)} MiB, ${dirs.size - 1} folders below ` +
      `${NAME}/, pieces ${PIECE / 1024} KiB; cache ${CACHE}`
  )
  const pre = withAnnounce("http://127.0.0.1:1/announce")
  tracker = await Opentracker.start([pre.infoHash])
  const t = withAnnounce(tracker.httpUrl)
  const work = tempDir("work")
  const torrent = Path.join(work, `${NAME}.torrent`)
  Fs.writeFileSync(torrent, t.bytes)
  const seederPort = await startSeeder(torrent)
  await untilSeeders(tracker.port, t.infoHash)
  log(`opentracker pid ${tracker.pid} port ${tracker.port}; libtorrent seeder pid ${children[0]!.pid} ` +
    `port ${seederPort}`)
  log(`CLI: node ${Path.relative(projectRoot, CLI)} download T -o OUT --state-dir S (${RUNS} runs)`)

  let identical = 0
  for (let run = 1; run <= RUNS; run++) {
    const out = tempDir(`out${run}`)
    const state = tempDir(`state${run}`)
    const r = await runCli(["download", torrent, "-o", out, "--state-dir", state])
    if (stopping) return
    const warnings = r.stderr.split("\n").filter((l) => l.trim() !== "")
    const bad = compare(manifest, out)
    if (bad.length === 0) identical++
    const complete = new RegExp(`^${NAME}: complete`, "m").test(r.stdout)
    const kinds = new Map<Kind, number>()
    for (const b of bad) kinds.set(b.kind, (kinds.get(b.kind) ?? 0) + 1)
    const byKind = [...kinds].map(([k, n]) => `${n} ${k}`).join(", ")
    log(
      `run ${run}: exit ${r.code ?? r.signal}, ${r.seconds.toFixed(1)} s, ` +
        `${complete ? "printed complete" : "no 'complete'"}, ${warnings.length} stderr line(s), ` +
        `${bad.length} file(s) differing${bad.length > 0 ? ` (${byKind})` : ""}`
    )
    for (const w of warnings.slice(0, 5)) log(`  stderr: ${w}`)
    if (warnings.length > 5) log(`  stderr: … ${warnings.length - 5} more`)
    // Long and extra files first (corruption whatever the exit code), then wrong bytes, then short and missing.
    const rank = (k: Kind) => (k === "long" || k === "extra" ? 0 : k === "wrong bytes" ? 1 : 2)
    const shown = [...bad].sort((a, b) => rank(a.kind) - rank(b.kind)).slice(0, 8)
    for (const b of shown) log(`  differs: ${b.line}`)
    if (bad.length > 8) log(`  differs: … ${bad.length - 8} more`)
    if (!KEEP) {
      Fs.rmSync(out, { recursive: true, force: true })
      Fs.rmSync(state, { recursive: true, force: true })
    }
  }
  log(`${identical}/${RUNS} byte-identical`)
}

main().then(
  () => cleanup().then(() => process.exit(0)),
  (e) => {
    process.stderr.write(`manyfiles-repro: ${e instanceof Error ? e.message : String(e)}\n`)
    void cleanup().then(() => process.exit(1))
  }
)
