/** Log lines (a banned peer, say) go to stderr as single lines; stdout keeps only the command's output. */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { cli } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const b = build({ name: "logs", pieceLength: 16384, files: [{ path: ["x.bin"], length: 16384 * 40 }] })

describe("CLI logging", () => {
  it("a corrupt peer is banned with a warning on stderr while --json stays parseable on stdout", async () => {
    const liar = await seed(b, { corrupt: true })
    const honest = await seed(b, { blockDelayMs: 5 })
    seeders.push(liar, honest)
    const dir = tempDir("cli-logs")
    const torrent = Path.join(dir, "t.torrent")
    Fs.writeFileSync(torrent, b.bytes)
    const r = await cli([
      "download", torrent, "-o", Path.join(dir, "out"), "--json", "--no-trackers", "--no-dht", "--port", "0",
      "--state-dir", Path.join(dir, "state"), "--peer", `127.0.0.1:${liar.port}`, "--peer", `127.0.0.1:${honest.port}`
    ])
    expect(r.code, r.stderr).toBe(0)
    const bad = r.stdout.trim().split("\n").filter((l) => !l.startsWith("{"))
    expect(bad, r.stdout.slice(0, 2000)).toEqual([])
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { event: string })
    expect(events.at(-1)?.event).toBe("Completed")
    const warnings = r.stderr.trim().split("\n").filter((l) => l !== "")
    expect(warnings.length).toBeGreaterThan(0)
    for (const w of warnings) expect(w).toMatch(/^effect-torrent: (warning|error): /)
    expect(r.stderr).toContain(`peer=127.0.0.1:${liar.port}`)
  })
})
