/**
 * The CLI and web seeds end to end: `create --web-seed URL` writes the `url-list`, `download` fetches the torrent
 * from nginx alone (byte-identical), and `--no-web-seeds` leaves nginx alone (the download has nobody to ask).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { cli, expectOneLineError } from "../support/cli.ts"
import * as Nginx from "../support/nginx.ts"

const running: Array<{ stop: () => Promise<void> }> = []
afterAll(() => Promise.all(running.map((r) => r.stop())))

describe.runIf(Nginx.shouldRun())("download from web seeds (CLI)", () => {
  it("create --web-seed, then download from nginx alone; --no-web-seeds does not ask it", async () => {
    const work = mkdtempSync(join(tmpdir(), "et-ws-cli-"))
    const src = join(work, "src", "pay load")
    mkdirSync(join(src, "sub"), { recursive: true })
    const files = { "a #1.bin": randomBytes(300_001), "sub/b.bin": randomBytes(70_000) }
    for (const [p, b] of Object.entries(files)) writeFileSync(join(src, p), b)
    const n = await Nginx.start(Object.entries(files).map(([p, bytes]) => ({ path: `pub/pay load/${p}`, bytes })))
    running.push(n)
    const torrent = join(work, "t.torrent")
    const made = await cli(["create", src, "-o", torrent, "--web-seed", n.url("/pub/"), "-l", "32K", "--no-date"])
    expect(made.code, made.stderr).toBe(0)
    const info = await cli(["info", torrent])
    expect(info.stdout).toContain(n.url("/pub/"))

    const out = join(work, "out")
    const r = await cli(["download", torrent, "-o", out, "--no-trackers", "--no-dht", "--quiet"])
    expect(r.code, r.stderr).toBe(0)
    for (const [p, b] of Object.entries(files)) expect(readFileSync(join(out, "pay load", p)).equals(b)).toBe(true)
    const served = n.access().length
    expect(n.access().filter((l) => l.status === 206).length).toBeGreaterThan(0)

    const off = await cli([
      "download", torrent, "-o", join(work, "out2"), "--no-trackers", "--no-dht", "--quiet", "--no-web-seeds",
      "--no-peers-timeout", "2"
    ])
    expectOneLineError(off, 1)
    expect(off.stderr).toMatch(/no peers/)
    expect(n.access().length).toBe(served)
  }, 60_000)
})
