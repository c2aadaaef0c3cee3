/**
 * `effect-torrent seed`, the `FILE -s DIR` shorthand, `download --seed` and `demo` as a user runs them: the built
 * CLI (dist/cli.mjs) on 127.0.0.1 with the loopback-only guard on; our in-process client downloads from the CLI
 * seeder. Children are killed by PID; every wait is bounded.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import { writeData } from "../support/data.ts"
import { download, readFile, tempDir, testClient } from "../support/download.ts"
import { build, seed as stubSeed, type Built, type Seeder } from "../support/seeder.ts"

const root = Path.resolve(import.meta.dirname, "../..")
const cliPath = Path.join(root, "dist", "cli.mjs")
const env = { ...process.env, EFFECT_TORRENT_LOOPBACK_ONLY: "1", NO_COLOR: "1" }

const children: Array<ChildProcess> = []
const stubs: Array<Seeder> = []
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
  await Promise.all(stubs.map((s) => s.stop()))
})

interface Running {
  readonly child: ChildProcess
  stdout: string
  stderr: string
  readonly exit: Promise<number | null>
}

const start = (args: ReadonlyArray<string>, timeoutMs = 60_000): Running => {
  const child = spawn(process.execPath, [cliPath, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
  children.push(child)
  const r: Running = {
    child,
    stdout: "",
    stderr: "",
    exit: new Promise((resolve) => {
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), timeoutMs)
      child.on("exit", (code, signal) => {
        clearTimeout(timer)
        resolve(code ?? (signal === null ? null : -1))
      })
    })
  }
  child.stdout!.on("data", (d: Buffer) => void (r.stdout += d.toString()))
  child.stderr!.on("data", (d: Buffer) => void (r.stderr += d.toString()))
  return r
}

/** Waits (bounded) until `re` matches the child's stdout. */
const waitFor = async (r: Running, re: RegExp, ms = 20_000): Promise<RegExpMatchArray> => {
  const until = Date.now() + ms
  for (;;) {
    const m = re.exec(r.stdout)
    if (m !== null) return m
    if (Date.now() > until || r.child.exitCode !== null) {
      throw new Error(`no ${re} in stdout: ${r.stdout} / stderr: ${r.stderr}`)
    }
    await new Promise((res) => setTimeout(res, 50))
  }
}

const album = build({
  name: "album",
  pieceLength: 32768,
  files: [
    { path: ["one.bin"], length: 200_003 },
    { path: ["notes", "two.txt"], length: 777 },
    { path: ["three.bin"], length: 90_000 }
  ]
})

const torrentFile = (b: Built): string => {
  const p = Path.join(tempDir("torrent"), `${b.metainfo.name}.torrent`)
  Fs.writeFileSync(p, b.bytes)
  return p
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

describe("effect-torrent seed", () => {
  it("seeds checked data until SIGINT; our client downloads it byte-identical", async () => {
    const data = tempDir("seed-data")
    writeData(album, data)
    const r = start(["seed", "--port", "0", "--bind", "127.0.0.1", "--no-trackers", torrentFile(album), data])
    const port = Number((await waitFor(r, /on port (\d+)/))[1])
    const out = tempDir("seed-dl")
    await Effect.runPromise(download(album, out, [port]).pipe(Effect.provide(testClient())))
    album.metainfo.files.forEach((f, i) => {
      if (!f.pad) expect(sha(readFile(album, out, i))).toBe(sha(album.files[i]!))
    })
    process.kill(r.child.pid!, "SIGINT")
    expect(await r.exit).toBe(130)
    expect(r.stderr).toBe("")
  })

  it("exits 1 naming the first missing file, and the -s shorthand does the same", async () => {
    const data = tempDir("seed-missing")
    writeData(album, data)
    Fs.rmSync(Path.join(data, "album", "notes", "two.txt"))
    const file = torrentFile(album)
    const a = start(["seed", "--port", "0", "--no-trackers", file, data])
    expect(await a.exit).toBe(1)
    expect(a.stderr).toMatch(/incomplete data .*"album\/notes\/two\.txt" is missing/)
    expect(a.stderr.trim().split("\n").length).toBe(1)
    const b = start([file, "-s", data, "--port", "0", "--no-trackers"])
    expect(await b.exit).toBe(1)
    expect(b.stderr).toBe(a.stderr)
  })

  it("names a file whose content does not match", async () => {
    const data = tempDir("seed-bad")
    writeData(album, data)
    const p = Path.join(data, "album", "three.bin")
    const bytes = Fs.readFileSync(p)
    bytes[50_000] = bytes[50_000]! ^ 0xff
    Fs.writeFileSync(p, bytes)
    const r = start(["seed", "--port", "0", "--no-trackers", torrentFile(album), data])
    expect(await r.exit).toBe(1)
    expect(r.stderr).toMatch(/"album\/three\.bin" does not match the torrent/)
  })
})

describe("effect-torrent download --seed", () => {
  it("keeps seeding after completion for --seed-time, then exits 0", async () => {
    const s = await stubSeed(album)
    stubs.push(s)
    const out = tempDir("dl-seed")
    const r = start([
      "download",
      torrentFile(album),
      "-o",
      out,
      "--peer",
      `127.0.0.1:${s.port}`,
      "--port",
      "0",
      "--seed",
      "--seed-time",
      "1"
    ])
    expect(await r.exit).toBe(0)
    expect(r.stdout).toMatch(/album: complete/)
    expect(r.stdout).toMatch(/album: seeding/)
    expect(r.stdout).toMatch(/album: seeded .*stopping/)
  })

  it("stops once --seed-ratio is reached: our client downloads everything from it, exit 0", async () => {
    const s = await stubSeed(album)
    stubs.push(s)
    const out = tempDir("dl-ratio")
    const r = start([
      "download",
      torrentFile(album),
      "-o",
      out,
      "--peer",
      `127.0.0.1:${s.port}`,
      "--port",
      "0",
      "--bind",
      "127.0.0.1",
      "--seed",
      "--seed-ratio",
      "1"
    ])
    const port = Number((await waitFor(r, /album: seeding on port (\d+)/))[1])
    await s.stop() // only the CLI has the data now
    const again = tempDir("dl-ratio-2")
    await Effect.runPromise(download(album, again, [port]).pipe(Effect.provide(testClient())))
    album.metainfo.files.forEach((f, i) => {
      if (!f.pad) expect(sha(readFile(album, again, i))).toBe(sha(album.files[i]!))
    })
    expect(await r.exit).toBe(0)
    expect(r.stdout).toMatch(/album: seeded .*stopping/)
  })

  it("refuses --seed-time without --seed", async () => {
    const r = start(["download", torrentFile(album), "--seed-time", "5"])
    expect(await r.exit).toBe(2)
    expect(r.stderr).toMatch(/need --seed/)
  })
})

describe("effect-torrent demo", () => {
  it("seeds and downloads a random payload in process, verifies it, exits 0", async () => {
    const r = start(["demo", "--size", "3MiB"])
    expect(await r.exit).toBe(0)
    expect(r.stdout).toMatch(/verified: 2 files byte-identical/)
    const dir = /under (\S+)/.exec(r.stdout)?.[1]
    expect(dir !== undefined && !Fs.existsSync(dir)).toBe(true) // cleaned up
  })
})
