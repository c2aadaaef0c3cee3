/**
 * `--encryption prefer|require|off` as a user runs it: the built CLI (dist/cli.mjs) seeding with `seed` and
 * downloading with `download`, both on 127.0.0.1 with the loopback-only guard on. A `require` seeder refuses plain
 * connections, so a download that completes from it was encrypted. Children are killed by PID; waits are bounded.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { writeData } from "../support/data.ts"
import { tempDir } from "../support/download.ts"
import { bundle, cli, cliEnv, expectOneLineError } from "../support/cli.ts"
import { build, type Built } from "../support/seeder.ts"

const children: Array<ChildProcess> = []
afterAll(() => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
  }
})

const album = build({
  name: "album",
  pieceLength: 32768,
  files: [
    { path: ["one.bin"], length: 300_007 },
    { path: ["notes", "two.txt"], length: 777 }
  ]
})

const torrentFile = (b: Built): string => {
  const p = Path.join(tempDir("enc-torrent"), `${b.metainfo.name}.torrent`)
  Fs.writeFileSync(p, b.bytes)
  return p
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const sameFiles = (b: Built, dir: string) =>
  b.metainfo.files.forEach((f, i) => {
    if (!f.pad) expect(sha(Fs.readFileSync(Path.join(dir, ...f.path)))).toBe(sha(b.files[i]!))
  })

/** Starts `effect-torrent seed` with `extra` flags; resolves with its port once it says it is seeding. */
const startSeed = async (b: Built, extra: ReadonlyArray<string>) => {
  const data = tempDir("enc-seed")
  writeData(b, data)
  const args = ["seed", "--port", "0", "--bind", "127.0.0.1", "--no-trackers", "--no-dht", ...extra, torrentFile(b), data]
  const child = spawn(process.execPath, [bundle, ...args], { env: cliEnv, stdio: ["ignore", "pipe", "pipe"] })
  children.push(child)
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d: Buffer) => void (stdout += d.toString()))
  child.stderr!.on("data", (d: Buffer) => void (stderr += d.toString()))
  const until = Date.now() + 30_000
  for (;;) {
    const m = /on port (\d+)/.exec(stdout)
    if (m !== null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      const stop = async () => {
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGINT")
        await exited
      }
      return { port: Number(m[1]), stop, stderr: () => stderr }
    }
    if (Date.now() > until || child.exitCode !== null) throw new Error(`seed did not start: ${stdout} / ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const downloadArgs = (b: Built, out: string, port: number, extra: ReadonlyArray<string>) => [
  "download",
  torrentFile(b),
  "-o",
  out,
  "--peer",
  `127.0.0.1:${port}`,
  "--no-trackers",
  "--no-dht",
  "--no-resume",
  ...extra
]

describe("effect-torrent --encryption", () => {
  it("download --encryption require from seed --encryption require: exit 0, identical files", async () => {
    const seeder = await startSeed(album, ["--encryption", "require"])
    const out = tempDir("enc-dl")
    const r = await cli(downloadArgs(album, out, seeder.port, ["--encryption", "require"]))
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    sameFiles(album, out)
    // The default (prefer) reaches the same encrypted-only seeder too.
    const out2 = tempDir("enc-dl-prefer")
    const r2 = await cli(downloadArgs(album, out2, seeder.port, []))
    expect(r2.code).toBe(0)
    sameFiles(album, out2)
    await seeder.stop()
    expect(seeder.stderr()).toBe("")
  }, 60_000)

  it("download --encryption off cannot reach a require seeder: one line, exit 1", async () => {
    const seeder = await startSeed(album, ["--encryption", "require"])
    const out = tempDir("enc-dl-off")
    const r = await cli(downloadArgs(album, out, seeder.port, ["--encryption", "off", "--no-peers-timeout", "2"]))
    expectOneLineError(r, 1)
    expect(r.stderr).toMatch(/peer/)
    await seeder.stop()
  }, 60_000)

  it("a bad --encryption value: one line naming it, exit 2 (download and seed)", async () => {
    const t = torrentFile(album)
    const dl = await cli(["download", t, "-o", tempDir("enc-bad"), "--encryption", "always"])
    expectOneLineError(dl, 2)
    expect(dl.stderr).toMatch(/--encryption always: expected prefer, require or off/)
    const sd = await cli(["seed", t, tempDir("enc-bad-seed"), "--encryption", "RC4"])
    expectOneLineError(sd, 2)
    expect(sd.stderr).toMatch(/--encryption RC4/)
  })
})
