/**
 * The README's library example, verbatim below the marker (only the import of the package differs: the README
 * says `from "effect-torrent"`), typechecked with the project and run against an in-process seeder.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { tempDir } from "./support/download.ts"
import { build, seed, type Seeder } from "./support/seeder.ts"

// --- README example ---------------------------------------------------------------------------------------------
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs/promises"
import { Client, Metainfo, TorrentEvent } from "../src/index.ts"

const download = (torrentFile: string, outputDir: string, peers: ReadonlyArray<{ host: string; port: number }>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const bytes = yield* Effect.promise(() => Fs.readFile(torrentFile))
      const metainfo = yield* Metainfo.decodeEffect(bytes)
      const d = yield* Client.download(metainfo, { outputDir, peers })
      // Events: Checking, Started, PieceVerified, PeerConnected, Progress (once a second), Completed, ...
      yield* Effect.forkScoped(
        Stream.runForEach(d.events, (event) =>
          TorrentEvent.$is("Progress")(event)
            ? Console.log(`${event.total - event.bytesLeft}/${event.total} bytes, ${event.peers} peers`)
            : TorrentEvent.$is("Completed")(event)
            ? Console.log(`${d.name}: done`)
            : Effect.void)
      )
      yield* d.done // fails with a TorrentError ("no-peers", "no-space", ...) when it cannot finish
    })
  ).pipe(Effect.provide(Client.layer()))
// --- end of README example ---------------------------------------------------------------------------------------

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

describe("README example", () => {
  it.live("downloads a torrent from a local seeder", () =>
    Effect.gen(function*() {
      const built = build({
        name: "readme",
        pieceLength: 16384,
        files: [{ path: ["a.txt"], length: 40_000 }, { path: ["b.bin"], length: 12_345 }]
      })
      const s = yield* Effect.promise(() => seed(built))
      seeders.push(s)
      const dir = tempDir("readme")
      const file = join(dir, "readme.torrent")
      writeFileSync(file, built.bytes)
      const out = join(dir, "out")
      yield* download(file, out, [{ host: "127.0.0.1", port: s.port }])
      const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
      expect(sha(readFileSync(join(out, "readme", "a.txt")))).toBe(sha(built.files[0]!))
      expect(sha(readFileSync(join(out, "readme", "b.bin")))).toBe(sha(built.files[1]!))
    }))

  it("the README shows this exact code (importing from the package name)", () => {
    const self = readFileSync(fileURLToPath(import.meta.url), "utf8")
    const start = self.indexOf("// --- README example")
    const example = self
      .slice(self.indexOf("\n", start) + 1, self.indexOf("// --- end of README example"))
      .replace(`from "../src/index.ts"`, `from "effect-torrent"`)
      .trim()
    const readme = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8")
    expect(readme).toContain("```ts\n" + example + "\n```")
  })
})
