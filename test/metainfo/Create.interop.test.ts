/**
 * The automatic piece length against libtorrent 2.0.8's own choice (`create_torrent` with piece size 0) for sizes
 * from 1 byte to 30 TiB, on both sides of every breakpoint.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Create from "../../src/metainfo/Create.ts"
import { PYTHON, shouldRun } from "../support/libtorrentSeeder.ts"

const script = `
import sys, libtorrent as lt
for line in sys.stdin:
    n = int(line)
    fs = lt.file_storage()
    k = 0
    while n > 0:
        c = min(n, 2**40); fs.add_file("t/f%d" % k, c); n -= c; k += 1
    print(lt.create_torrent(fs, 0).piece_length())
`

describe.runIf(shouldRun("autoPieceLength vs libtorrent"))("autoPieceLength vs libtorrent", () => {
  it("picks the piece length libtorrent's create_torrent picks", () => {
    const sizes: Array<number> = [1, 1000, 16384]
    for (let p = 16 * 1024; p <= 16 * 1024 * 1024; p *= 2) {
      const edge = Math.floor((p / 10) ** 2)
      // libtorrent's own rounding decides a byte or two either side of (p / 10)²: compare just off the edge
      sizes.push(edge * 0.999, edge * 1.001, edge * 2, edge * 3)
    }
    // Up to 32 TiB: beyond, we grow pieces past 16 MiB to stay within readers' 2^21-piece limit (libtorrent does not).
    sizes.push(22 * 1024 * 1024, 700 * 1024 * 1024, 4.7 * 2 ** 30, 30 * 2 ** 40)
    const ours = sizes.map((n) => Create.autoPieceLength(Math.floor(n)))
    const theirs = execFileSync(PYTHON, ["-c", script], { input: sizes.map((n) => String(Math.floor(n))).join("\n") })
      .toString().trim().split("\n").map(Number)
    expect(sizes.map((n, i) => [Math.floor(n), ours[i]])).toEqual(sizes.map((n, i) => [Math.floor(n), theirs[i]]))
  })
})
