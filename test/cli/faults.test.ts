/**
 * Disk faults as a user meets them, on real file systems the test mounts (tmpfs; we run as root here and in CI):
 * - disk full: `effect-torrent download` into a 1 MiB tmpfs of a 3 MiB torrent stops with one line ("disk full"),
 *   exit 1; every piece the resume record then claims verifies on disk (nothing corrupt is vouched for); after the
 *   file system grows (remount, same contents) a rerun completes byte-identical, fetching only what was missing;
 * - a read-only output directory (a tmpfs mounted `ro`: as root, `chmod` would not stop us): one line, exit 1,
 *   nothing written, whether the directory is the mount itself or a directory still to create under it.
 * When mounting is impossible (no privileges, outside CI) the suite says so loudly and skips; disk full is then
 * covered only by the fault-injecting storage of test/torrent/TorrentRuntime.test.ts. In CI it must mount.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as ResumeRecord from "../../src/storage/ResumeRecord.ts"
import { cli, expectOneLineError } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const mounted: Array<string> = []
const seeders: Array<Seeder> = []
afterAll(async () => {
  await Promise.all(seeders.map((s) => s.stop()))
  for (const m of mounted.reverse()) {
    try {
      execFileSync("umount", [m])
      rmdirSync(m)
    } catch (e) {
      console.warn(`could not unmount ${m}: ${String(e)}`)
    }
  }
})

const mount = (options: string): string => {
  const dir = tempDir("mnt")
  execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir])
  mounted.push(dir)
  return dir
}

/** Whether this process may mount a tmpfs; outside CI a refusal skips loudly, in CI it fails. */
const canMount = (() => {
  try {
    const dir = tempDir("mnt-probe")
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "ignore" })
    execFileSync("umount", [dir])
    rmdirSync(dir)
    return true
  } catch (e) {
    if (process.env["CI"]) return true // run anyway: the mount in the test fails and says why
    console.warn(
      `\n!!! SKIPPING real-filesystem faults: cannot mount a tmpfs here (${String(e).split("\n")[0]}). Disk full is ` +
        `covered only by the fault-injecting storage of test/torrent/TorrentRuntime.test.ts. !!!\n`
    )
    return false
  }
})()

const torrentFile = (b: ReturnType<typeof build>): string => {
  const p = join(tempDir("faults-torrent"), `${b.metainfo.name}.torrent`)
  writeFileSync(p, b.bytes)
  return p
}

const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest()

describe.skipIf(!canMount)("disk faults on real file systems (tmpfs)", () => {
  it("disk full: one line, exit 1, the record vouches only for good pieces; with space a rerun completes", async () => {
    const built = build({
      name: "full.bin",
      single: true,
      files: [{ path: ["full.bin"], length: 3 * 1024 * 1024 + 4321 }],
      pieceLength: 65536
    })
    const m = built.metainfo
    const disk = mount("size=1m")
    const state = tempDir("faults-state")
    const torrent = torrentFile(built)
    const first = await seed(built)
    seeders.push(first)
    const args = ["download", torrent, "-o", disk, "--no-trackers", "--state-dir", state, "--quiet"]
    const r = await cli([...args, "--peer", `127.0.0.1:${first.port}`])
    expectOneLineError(r, 1)
    expect(r.stderr).toMatch(/^effect-torrent: disk full: .*full\.bin/)

    // What the record claims is on disk and verifies.
    const record = ResumeRecord.decode(readFileSync(ResumeRecord.pathFor(state, m.infoHash)))
    if (record._tag === "Left") throw new Error(record.left.message)
    const claimed = [...Bitfield.indices(record.right.verified)]
    expect(claimed.length).toBeGreaterThan(0)
    expect(claimed.length).toBeLessThan(m.pieceCount)
    const onDisk = readFileSync(join(disk, "full.bin"))
    for (const i of claimed) {
      const piece = onDisk.subarray(i * m.pieceLength, (i + 1) * m.pieceLength)
      expect(sha1(piece).equals(Buffer.from(m.pieces.subarray(i * 20, (i + 1) * 20))), `piece ${i}`).toBe(true)
    }

    // More space (tmpfs keeps its contents across a remount): the rerun completes, fetching only the rest.
    execFileSync("mount", ["-o", "remount,size=8m", disk])
    const second = await seed(built)
    seeders.push(second)
    const again = await cli([...args, "--peer", `127.0.0.1:${second.port}`])
    expect(again.stderr).toBe("")
    expect(again.code).toBe(0)
    expect(Buffer.compare(readFileSync(join(disk, "full.bin")), Buffer.from(built.files[0]!))).toBe(0)
    for (const i of claimed) expect(second.servedOf(i), `piece ${i} fetched again`).toBe(0)
  }, 120_000)

  const small = build({
    name: "ro",
    pieceLength: 32768,
    files: [{ path: ["a.bin"], length: 100_000 }, { path: ["sub", "b.bin"], length: 5_000 }]
  })

  for (const where of ["the read-only mount itself", "a directory to create under it"] as const) {
    it(`read-only output directory (${where}): one line, exit 1, nothing written`, async () => {
      const ro = mount("ro,size=64k")
      const out = where === "the read-only mount itself" ? ro : join(ro, "new")
      const s = await seed(small)
      seeders.push(s)
      const r = await cli([
        "download", torrentFile(small), "-o", out, "--peer", `127.0.0.1:${s.port}`, "--no-trackers", "--quiet",
        "--state-dir", tempDir("faults-state")
      ])
      expectOneLineError(r, 1)
      expect(r.stderr).toMatch(/read-only|cannot write/)
      expect(readdirSync(ro)).toEqual([])
      expect(existsSync(out) && out !== ro).toBe(false)
    }, 60_000)
  }

  it("the output directory on a mount that is full from the start: one line, nothing half-written vouched for", async () => {
    const disk = mount("size=4k")
    mkdirSync(join(disk, "filler"))
    // Fill it: a tmpfs of one page takes one small file.
    try {
      writeFileSync(join(disk, "filler", "x"), new Uint8Array(64 * 1024))
    } catch {
      // ENOSPC is the point
    }
    const s = await seed(small)
    seeders.push(s)
    const state = tempDir("faults-state")
    const r = await cli([
      "download", torrentFile(small), "-o", join(disk, "out"), "--peer", `127.0.0.1:${s.port}`, "--no-trackers",
      "--quiet", "--state-dir", state
    ])
    expectOneLineError(r, 1)
    expect(r.stderr).toMatch(/^effect-torrent: disk full/)
    const path = ResumeRecord.pathFor(state, small.metainfo.infoHash)
    if (existsSync(path)) {
      const record = ResumeRecord.decode(readFileSync(path))
      expect(record._tag === "Right" && Bitfield.count(record.right.verified)).toBe(0)
    }
  }, 60_000)
})
