/**
 * Magnet links on the command line: `download <magnet>` fetching the metadata from a peer, `--save-torrent`,
 * `info --fetch`, `magnet-to-torrent`, and their one-line errors. The peer is an in-process seeder on loopback that
 * serves ut_metadata (BEP 9).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Either from "effect/Either"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import { cli, expectOneLineError } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const b = build({
  name: "cli-magnet",
  pieceLength: 16384,
  files: [{ path: ["one.bin"], length: 16384 * 900 + 5 }, { path: ["two", "three.txt"], length: 4321 }]
})
const hex = Bytes.toHex(b.metainfo.infoHash)
let s: Seeder
beforeAll(async () => {
  s = await seed(b, { metadata: "honest" })
})
afterAll(() => s.stop())

const magnet = () => `magnet:?xt=urn:btih:${hex}&dn=cli-magnet&x.pe=127.0.0.1:${s.port}`
const sha = (x: Uint8Array) => createHash("sha256").update(x).digest("hex")
const decodeFile = (path: string) => Either.getOrThrow(Metainfo.decode(new Uint8Array(Fs.readFileSync(path))))

describe("effect-torrent with magnet links", () => {
  it("download <magnet> fetches the metadata, downloads, and --save-torrent writes the .torrent", async () => {
    const out = tempDir("cli-mag-out")
    const saved = Path.join(tempDir("cli-mag-t"), "saved.torrent")
    const r = await cli([
      "download", magnet(), "-o", out, "--save-torrent", saved, "--no-trackers", "--quiet",
      "--state-dir", tempDir("cli-mag-state"), "--port", "0"
    ])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    b.metainfo.files.forEach((f, i) => {
      expect(sha(Fs.readFileSync(Path.join(out, ...f.path)))).toBe(sha(b.files[i]!))
    })
    expect(Bytes.toHex(decodeFile(saved).infoHash)).toBe(hex)
  })

  it("download <magnet> --json reports the metadata phase; --only globs apply once files are known", async () => {
    const out = tempDir("cli-mag-json")
    const r = await cli([
      "download", magnet(), "-o", out, "--json", "--only", "**/three.txt", "--no-trackers",
      "--state-dir", tempDir("cli-mag-state2"), "--port", "0"
    ])
    expect(r.code).toBe(0)
    const events = r.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { event: string }).event)
    expect(events).toContain("MetadataReceived")
    expect(events.at(-1)).toBe("Completed")
    expect(Fs.existsSync(Path.join(out, "cli-magnet", "one.bin"))).toBe(false)
    expect(sha(Fs.readFileSync(Path.join(out, "cli-magnet", "two", "three.txt")))).toBe(sha(b.files[1]!))
  })

  it("info --fetch shows the whole torrent; without --fetch a magnet shows only what it says", async () => {
    const r = await cli(["info", "--fetch", "--json", "--no-trackers", magnet(), "--state-dir", tempDir("cli-mag-info")])
    expect(r.code).toBe(0)
    const j = JSON.parse(r.stdout) as { source: string; name: string; files: Array<{ path: string }>; pieceCount: number }
    expect(j.source).toBe("torrent")
    expect(j.name).toBe("cli-magnet")
    expect(j.files.map((f) => f.path)).toEqual(["cli-magnet/one.bin", "cli-magnet/two/three.txt"])
    expect(j.pieceCount).toBe(b.metainfo.pieceCount)
    const plain = await cli(["info", "--json", magnet()])
    expect((JSON.parse(plain.stdout) as { source: string }).source).toBe("magnet")
  })

  it("magnet-to-torrent writes <name>.torrent or -o FILE, and refuses to overwrite without --force", async () => {
    const dir = tempDir("cli-m2t")
    const file = Path.join(dir, "x.torrent")
    const state = tempDir("cli-m2t-state")
    const r = await cli(["magnet-to-torrent", magnet(), "-o", file, "--no-trackers", "--state-dir", state])
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe(`${hex}  ${file}`)
    expect(Bytes.toHex(decodeFile(file).infoHash)).toBe(hex)
    const again = await cli(["magnet-to-torrent", magnet(), "-o", file, "--no-trackers", "--state-dir", state])
    expectOneLineError(again, 1)
    expect(again.stderr).toContain("--force")
    const forced = await cli(["magnet-to-torrent", magnet(), "-o", file, "--force", "--no-trackers", "--state-dir", state])
    expect(forced.code).toBe(0)
  })

  it("nobody serving the metadata: one line and exit 1 within --timeout; bad options exit 2", async () => {
    const lonely = `magnet:?xt=urn:btih:${"ab".repeat(20)}`
    const r = await cli(["info", "--fetch", lonely, "--timeout", "1", "--no-trackers", "--state-dir", tempDir("cli-none")])
    expectOneLineError(r, 1)
    expect(r.stderr).toContain("metadata")
    expectOneLineError(await cli(["info", "--fetch", lonely, "--dht-bootstrap", "nonsense"]), 2)
    expectOneLineError(await cli(["magnet-to-torrent", "not-a-magnet.torrent"]), 1)
    expectOneLineError(await cli(["download", lonely, "--no-dht", "--dht-bootstrap", "127.0.0.1:1"]), 2)
  })
})
