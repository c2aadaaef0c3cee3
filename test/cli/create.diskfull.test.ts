/**
 * `create` writing its .torrent onto a full disk (a tmpfs the test mounts, with one page left): the command fails
 * with one line and leaves no partial .torrent; with --force the old file stays whole. (The output used to be
 * written with `fs.writeFile` straight to its name: a partial file stayed, and --force truncated the old one first.)
 * The command runs in-process (CreateCommand.create under NodeContext), not the bundle. Skips loudly when mounting
 * is impossible outside CI, as test/cli/faults.test.ts does.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as CreateCommand from "../../src/cli/CreateCommand.ts"

const work = mkdtempSync(join(tmpdir(), "et-create-full-"))
const mounted: Array<string> = []
afterAll(() => {
  for (const m of mounted.reverse()) {
    try {
      execFileSync("umount", [m])
      rmdirSync(m)
    } catch (e) {
      console.warn(`could not unmount ${m}: ${String(e)}`)
    }
  }
  rmSync(work, { recursive: true, force: true })
})

const canMount = (() => {
  try {
    const dir = mkdtempSync(join(tmpdir(), "et-mnt-probe-"))
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "ignore" })
    execFileSync("umount", [dir])
    rmdirSync(dir)
    return true
  } catch (e) {
    if (process.env["CI"]) return true // run anyway: the mount in the test fails and says why
    console.warn(`\n!!! SKIPPING create on a full disk: cannot mount a tmpfs here (${String(e).split("\n")[0]}) !!!\n`)
    return false
  }
})()

/** A 64 KiB tmpfs with `free` bytes left (whole pages). */
const fullDisk = (free: number): string => {
  const dir = mkdtempSync(join(tmpdir(), "et-mnt-"))
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir])
  mounted.push(dir)
  writeFileSync(join(dir, "filler"), new Uint8Array(64 * 1024 - free))
  return dir
}

/** 300 pieces of 16 KiB: a .torrent of about 6 KB, more than the page left. */
const input = join(work, "in.bin")
writeFileSync(input, new Uint8Array(300 * 16384).map((_, i) => (i * 7) & 0xff))

const create = (args: ReadonlyArray<string>) =>
  Command.run(CreateCommand.create, { name: "effect-torrent", version: "0" })([
    "node",
    "effect-torrent",
    ...args
  ]).pipe(Effect.provide(NodeContext.layer), Effect.exit)

const failureMessage = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "(succeeded)"
  const f = Cause.failureOption(exit.cause)
  return f._tag === "Some" ? String((f.value as { readonly message?: unknown }).message) : Cause.pretty(exit.cause)
}

describe.skipIf(!canMount)("create onto a full disk (tmpfs)", () => {
  it.live("fails with ENOSPC and leaves no partial .torrent", () =>
    Effect.gen(function*() {
      const disk = fullDisk(4096)
      const out = join(disk, "in.torrent")
      const exit = yield* create([input, "-o", out, "--piece-length", "16K"])
      expect(failureMessage(exit)).toBe(`${out}: cannot write: ENOSPC`)
      expect(readdirSync(disk)).toEqual(["filler"])
    }))

  it.live("with --force, the old .torrent stays whole and no temp file is left", () =>
    Effect.gen(function*() {
      const disk = fullDisk(8192)
      const out = join(disk, "in.torrent")
      writeFileSync(out, "old torrent") // one page
      const exit = yield* create([input, "-o", out, "--piece-length", "16K", "--force"])
      expect(failureMessage(exit)).toBe(`${out}: cannot write: ENOSPC`)
      expect(readFileSync(out, "utf8")).toBe("old torrent")
      expect(readdirSync(disk).sort()).toEqual(["filler", "in.torrent"])
    }))

  it.live("with room, the .torrent is written whole", () =>
    Effect.gen(function*() {
      const disk = fullDisk(32768)
      const out = join(disk, "in.torrent")
      const exit = yield* create([input, "-o", out, "--piece-length", "16K"])
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(readFileSync(out).subarray(0, 1).toString()).toBe("d")
      expect(readdirSync(disk).sort()).toEqual(["filler", "in.torrent"])
    }))
})
