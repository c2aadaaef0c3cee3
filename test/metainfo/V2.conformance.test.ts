/**
 * The v2 half of the shared fixtures against libtorrent 2.0.8 itself (python3-libtorrent, run once): for every v2
 * and hybrid torrent it loads, the `pieces root` of every file, and how many files longer than a piece have their
 * piece layer in the torrent (read with libtorrent's own bdecode). The v2 info-hashes, names and file lists are in
 * conformance.test.ts (against the manifest). A missing python3-libtorrent skips loudly outside CI.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import { manifest, requireFixtures, torrentsDir } from "../support/fixtures.ts"

const PYTHON = "/usr/bin/python3"

const haveLibtorrent = (): boolean => {
  try {
    execFileSync(PYTHON, ["-c", "import libtorrent"], { stdio: "ignore" })
    return true
  } catch {
    if (process.env["CI"]) throw new Error("python3-libtorrent is missing (required in CI)")
    console.warn("\n!!! SKIPPED: python3-libtorrent is not installed; v2 conformance with libtorrent did not run !!!\n")
    return false
  }
}

const SCRIPT = `
import json, sys, libtorrent as lt
out = {}
for path in sys.argv[1:]:
    try:
        ti = lt.torrent_info(path)
    except Exception as e:
        out[path] = {"error": str(e)}
        continue
    fs = ti.files()
    pl = fs.piece_length()
    top = lt.bdecode(open(path, "rb").read())
    layers = top.get(b"piece layers", {}) or {}
    roots = {}
    with_layer = set()
    for i in range(fs.num_files()):
        if fs.file_flags(i) & fs.flag_pad_file:
            continue
        r = fs.root(i)
        zero = r.is_all_zeros()
        roots[fs.file_path(i)] = None if zero else str(r)
        if not zero and fs.file_size(i) > pl and r.to_bytes() in layers:
            with_layer.add(r.to_bytes())
    out[path] = {"roots": roots, "layers": len(with_layer)}
print(json.dumps(out))
`

describe("v2 conformance with libtorrent 2.0.8 (pieces roots, piece layers)", () => {
  const run = requireFixtures("v2 conformance") && haveLibtorrent()
  it.skipIf(!run)("every file's pieces root and the number of piece layers agree", () => {
    const entries = manifest().filter((e) => e.accepted_by_libtorrent && (e.category === "v2-only" || e.category === "hybrid"))
    expect(entries.length).toBeGreaterThanOrEqual(15)
    const paths = entries.map((e) => join(torrentsDir, e.file))
    const theirs = JSON.parse(execFileSync(PYTHON, ["-c", SCRIPT, ...paths], { encoding: "utf8", maxBuffer: 1 << 26 })) as Record<
      string,
      { readonly roots: Record<string, string | null>; readonly layers: number; readonly error?: string }
    >
    const rejected: Array<string> = []
    let compared = 0
    for (const e of entries) {
      const t = theirs[join(torrentsDir, e.file)]!
      expect(t.error, e.file).toBeUndefined()
      const r = Metainfo.decode(new Uint8Array(readFileSync(join(torrentsDir, e.file))), { v2Only: true })
      if (Either.isLeft(r)) {
        // the two whose layers do not hash to their roots (conformance.test.ts DIFFERENCES)
        expect(r.left.message, e.file).toMatch(/^piece layers\[[0-9a-f]{64}\]: the hashes do not hash up/)
        rejected.push(e.file)
        continue
      }
      const m = r.right
      const ours: Record<string, string | null> = {}
      const withLayer = new Set<string>()
      for (const f of m.files) {
        if (f.pad) continue
        ours[f.path.join("/")] = f.piecesRoot === undefined ? null : Bytes.toHex(f.piecesRoot)
        if (f.pieceLayer !== undefined) withLayer.add(Bytes.toHex(f.piecesRoot!))
      }
      if (e.file.endsWith("v2_invalid_filename2.torrent")) {
        // the one file we name differently (conformance.test.ts DIFFERENCES): compare the roots as a multiset
        expect(Object.values(ours).sort(), e.file).toEqual(Object.values(t.roots).sort())
      } else {
        expect(ours, e.file).toEqual(t.roots)
      }
      expect(withLayer.size, e.file).toBe(t.layers)
      compared++
    }
    expect(rejected.sort()).toEqual([
      "libtorrent/v2_invalid_piece_layer_root.torrent",
      "libtorrent/v2_invalid_root_hash.torrent"
    ])
    expect(compared).toBe(entries.length - 2)
  }, 60_000)
})
