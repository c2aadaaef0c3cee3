/**
 * Resume that survives crashes: `download` is SIGKILLed at (seeded) random moments five times and restarted each
 * time, then left to finish. The files must be byte-identical, and no piece that the last resume record written
 * before a kill claimed as verified may be served again after that kill. Needs `npm run build` (dist/cli.mjs).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Either from "effect/Either"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as ResumeRecord from "../../src/storage/ResumeRecord.ts"
import { tempDir } from "../support/download.ts"
import { bundle, cli, cliEnv as env } from "../support/cli.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
const children: Array<ChildProcess> = []
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) c.kill("SIGKILL")
  await Promise.all(seeders.map((s) => s.stop()))
})

/** mulberry32: a small seeded PRNG, so a failure can be replayed. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const payload = build({
  name: "crash",
  pieceLength: 32768,
  files: [
    { path: ["a.bin"], length: 2_500_000 },
    { path: ["sub", "b.bin"], length: 1_700_001 },
    { path: ["c.bin"], length: 2_000_000 }
  ]
})

/** The record in `stateDir`, or undefined when none was written yet. */
const recordIn = (stateDir: string): ResumeRecord.ResumeRecord | undefined => {
  const path = ResumeRecord.pathFor(stateDir, payload.metainfo.infoHash)
  if (!existsSync(path)) return undefined
  const r = ResumeRecord.decode(new Uint8Array(readFileSync(path)), {
    infoHash: payload.metainfo.infoHash,
    pieceCount: payload.metainfo.pieceCount,
    pieceLength: payload.metainfo.pieceLength
  })
  if (Either.isLeft(r)) throw new Error(`a crash left an unreadable record: ${r.left.message}`)
  return r.right
}

describe("effect-torrent download: SIGKILL and restart", () => {
  it("five kills at random moments: byte-identical files, recorded pieces never fetched again", async () => {
    const s = await seed(payload)
    seeders.push(s)
    const out = tempDir("crash-out")
    const stateDir = tempDir("crash-state")
    const torrent = join(tempDir("crash-t"), "crash.torrent")
    writeFileSync(torrent, payload.bytes)
    const n = payload.metainfo.pieceCount
    const args = [
      "download", torrent, "-o", out, "--peer", `127.0.0.1:${s.port}`, "--quiet", "--no-trackers",
      "--state-dir", stateDir, "--down-limit", "700K", "--resume-interval", "0.2", "--port", "0"
    ]
    const random = prng(20261124)
    /** Per kill: the pieces the last record claimed, and how often each had been served by then. */
    const kills: Array<{ readonly claimed: ReadonlyArray<number>; readonly servedThen: ReadonlyArray<number> }> = []
    let finishedEarly = false
    for (let k = 0; k < 5 && !finishedEarly; k++) {
      const child = spawn(process.execPath, [bundle, ...args], { env, stdio: ["ignore", "ignore", "pipe"] })
      children.push(child)
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      // The random moment counts from the child's first block, not from its spawn: on a loaded CI machine the
      // start-up alone can take longer than the whole window, and a kill before any block proves nothing.
      const servedBefore = s.served()
      const receiving = new Promise<"receiving">((resolve) => {
        const poll = setInterval(() => {
          if (s.served() > servedBefore) {
            clearInterval(poll)
            resolve("receiving")
          }
        }, 20)
        void exited.then(() => clearInterval(poll))
      })
      const started = await Promise.race([exited, receiving])
      const after = 300 + Math.floor(random() * 900)
      const first = started !== "receiving"
        ? started
        : await Promise.race([exited, new Promise<"kill">((r) => setTimeout(() => r("kill"), after))])
      if (first !== "kill") {
        expect(first).toBe(0) // finished before its kill: fine, nothing left to crash
        finishedEarly = true
        break
      }
      child.kill("SIGKILL")
      const code = await Promise.race([exited, new Promise<"stuck">((r) => setTimeout(() => r("stuck"), 5_000))])
      expect(code).not.toBe("stuck")
      const record = recordIn(stateDir)
      kills.push({
        claimed: record === undefined ? [] : Bitfield.indices(record.verified),
        servedThen: Array.from({ length: n }, (_, i) => s.servedOf(i))
      })
    }
    // Restarted once more and left to finish.
    const r = await cli(args, { timeout: 30_000 })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    payload.metainfo.files.forEach((f, i) => {
      expect(sha(readFileSync(join(out, ...f.path)))).toBe(sha(payload.files[i]!))
    })
    // The test means something only if records were written between kills.
    expect(kills.some((k) => k.claimed.length > 0)).toBe(true)
    for (const k of kills) {
      for (const i of k.claimed) {
        expect({ piece: i, served: s.servedOf(i) }).toEqual({ piece: i, served: k.servedThen[i] })
      }
    }
    expect(Bitfield.count(recordIn(stateDir)!.verified)).toBe(n)
  }, 45_000)
})
