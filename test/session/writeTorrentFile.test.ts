/**
 * `Client.writeTorrentFile` (download --save-torrent, magnet): through AtomicFile, so a failure leaves neither a
 * partial file nor its temp file behind (the temp file `<path>.<pid>.tmp` used to stay when the rename failed).
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Client from "../../src/session/Client.ts"

const tmpDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "save-torrent-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

describe("Client.writeTorrentFile", () => {
  it.scoped("writes the file whole, replacing an old one, with no temp file left", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "x.torrent")
      Fs.writeFileSync(path, "old")
      yield* Client.writeTorrentFile(path, new Uint8Array([100, 101]))
      expect(Fs.readFileSync(path, "utf8")).toBe("de")
      expect(Fs.readdirSync(dir)).toEqual(["x.torrent"])
    }))

  it.scoped("a rename that fails (a directory in the way) is one typed error, and no temp file is left", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "y.torrent")
      Fs.mkdirSync(path)
      Fs.writeFileSync(Path.join(path, "keep"), "k")
      const e = yield* Effect.flip(Client.writeTorrentFile(path, new Uint8Array([1])))
      expect(e.reason).toBe("storage")
      expect(e.detail).toContain(`cannot write ${path}`)
      expect(Fs.readdirSync(dir)).toEqual(["y.torrent"])
      expect(Fs.readdirSync(path)).toEqual(["keep"])
    }))
})
