/**
 * `effect-torrent download` as a user runs it: the built CLI (dist/cli.mjs) against in-process seeders on
 * 127.0.0.1, with the loopback-only guard on.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { tempDir } from "../support/download.ts"
import { bundle, cli, cliEnv as env } from "../support/cli.ts"
import { build, deadPort, seed, type Seeder } from "../support/seeder.ts"

const run = (args: ReadonlyArray<string>) => cli(args)

const seeders: Array<Seeder> = []
const children: Array<ChildProcess> = []
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
  await Promise.all(seeders.map((s) => s.stop()))
})

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const payload = build({
  name: "album",
  pieceLength: 32768,
  files: [
    { path: ["one.bin"], length: 200_003 },
    { path: ["notes", "two.txt"], length: 777 },
    { path: ["three.bin"], length: 90_000 }
  ]
})
const big = build({
  name: "big.bin",
  single: true,
  files: [{ path: ["big.bin"], length: 24_000_000 }],
  pieceLength: 262144
})

const torrentFile = (b: typeof payload): string => {
  const p = join(tempDir("torrent"), `${b.metainfo.name}.torrent`)
  writeFileSync(p, b.bytes)
  return p
}

describe("effect-torrent download", () => {
  it("downloads from a local seeder: exit 0, identical files", async () => {
    const s = await seed(payload)
    seeders.push(s)
    const out = tempDir("cli")
    const r = await run(["download", torrentFile(payload), "-o", out, "--peer", `127.0.0.1:${s.port}`])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/album: complete/)
    payload.metainfo.files.forEach((f, i) => {
      expect(sha(readFileSync(join(out, ...f.path)))).toBe(sha(payload.files[i]!))
    })
  })

  it("--json prints one event per line; --only selects by glob; the -d shorthand works", async () => {
    const s = await seed(payload)
    seeders.push(s)
    const out = tempDir("cli-json")
    const r = await run([torrentFile(payload), "-d", out, "--peer", `127.0.0.1:${s.port}`, "--json", "--only", "*.txt"])
    expect(r.code).toBe(0)
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { event: string })
    expect(events[0]!.event).toBe("Checking")
    expect(events.at(-1)!.event).toBe("Completed")
    expect(readFileSync(join(out, "album", "notes", "two.txt")).length).toBe(777)
    expect(existsSync(join(out, "album", "three.bin"))).toBe(false)
  })

  it("-s DIR is `seed FILE DIR`: without the data, one line naming the missing file, exit 1", async () => {
    const r = await run([torrentFile(payload), "-s", tempDir("seed"), "--port", "0"])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^effect-torrent: incomplete data in .*: "album\/one\.bin" is missing\n$/)
  })

  it("exits 1 with one line when there are no peers", async () => {
    const port = await deadPort()
    const r = await run([
      "download", torrentFile(payload), "-o", tempDir("none"), "--peer", `127.0.0.1:${port}`, "--no-peers-timeout", "2"
    ])
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split("\n")).toHaveLength(1)
    expect(r.stderr).toMatch(/^effect-torrent: no peers/)
  })

  it("exits 2 on a bad --peer", async () => {
    const r = await run(["download", torrentFile(payload), "--peer", "nonsense"])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--peer nonsense/)
  })

  it("SIGTERM mid-download exits 143 and leaves resumable data", async () => {
    const s = await seed(big)
    seeders.push(s)
    const out = tempDir("term")
    const torrent = torrentFile(big)
    const args = [bundle, "download", torrent, "-o", out, "--peer", `127.0.0.1:${s.port}`, "--json"]
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    let verified = 0
    let killed = false
    const code = await new Promise<number | null>((resolve) => {
      let buf = ""
      child.stdout!.on("data", (d: Buffer) => {
        buf += d.toString()
        verified = buf.split("\n").filter((l) => l.includes("\"PieceVerified\"")).length
        if (verified >= 5 && !killed) {
          killed = true // once: a second signal would kill the process outright
          child.kill("SIGTERM")
        }
      })
      child.once("exit", (c) => resolve(c))
    })
    expect(code).toBe(143)
    // Resume: the next run starts from what the first one verified.
    const served = s.served()
    const r = await run(["download", torrent, "-o", out, "--peer", `127.0.0.1:${s.port}`, "--json"])
    expect(r.code).toBe(0)
    const started = r.stdout.split("\n").filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { event: string; have?: number })
      .find((e) => e.event === "Started")
    expect(started?.have ?? 0).toBeGreaterThanOrEqual(5)
    expect(s.served() - served).toBeLessThan(Math.ceil(big.payload.length / 16384))
    expect(sha(readFileSync(join(out, "big.bin")))).toBe(sha(big.files[0]!))
  })
})
