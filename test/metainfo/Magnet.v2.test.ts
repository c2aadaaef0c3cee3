/**
 * BEP 52 magnets: `xt=urn:btmh:1220…` alone (v2-only) and beside `xt=urn:btih:…` (hybrids), for every v2 and
 * hybrid fixture: our magnet of the torrent parses back to its info-hashes, libtorrent 2.0.8 reads our magnet as the
 * same torrent, and we read libtorrent's `make_magnet_uri` as the same torrent.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Magnet from "../../src/metainfo/Magnet.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import { manifest, requireFixtures, torrentsDir } from "../support/fixtures.ts"

const PYTHON = "/usr/bin/python3"
const hex = (b: Uint8Array | undefined) => (b === undefined ? null : Bytes.toHex(b))
const hashes = (m: Magnet.Magnet) => ({ v1: hex(m.infoHashes.v1), v2: hex(m.infoHashes.v2) })

const haveLibtorrent = (): boolean => {
  try {
    execFileSync(PYTHON, ["-c", "import libtorrent"], { stdio: "ignore" })
    return true
  } catch {
    if (process.env["CI"]) throw new Error("python3-libtorrent is missing (required in CI)")
    console.warn("\n!!! SKIPPED: python3-libtorrent is not installed; v2 magnet interop did not run !!!\n")
    return false
  }
}

/** For each `path\tmagnet` line: libtorrent's make_magnet_uri of the torrent, and how it parses `magnet`. */
const SCRIPT = `
import json, sys, libtorrent as lt
out = []
for line in sys.stdin.read().splitlines():
    path, uri = line.split("\\t")
    ti = lt.torrent_info(path)
    p = lt.parse_magnet_uri(uri)
    ih = p.info_hashes
    out.append({
        "theirs": lt.make_magnet_uri(ti),
        "parsed": {"v1": str(ih.v1) if ih.has_v1() else None, "v2": str(ih.v2) if ih.has_v2() else None, "name": p.name},
        "torrent": {"v1": str(ti.info_hashes().v1) if ti.info_hashes().has_v1() else None,
                    "v2": str(ti.info_hashes().v2) if ti.info_hashes().has_v2() else None}
    })
print(json.dumps(out))
`

describe("BEP 52 magnets (btmh, and btih + btmh for hybrids)", () => {
  const entries = manifest().filter((e) => e.category === "v2-only" || e.category === "hybrid")
  const decoded = entries.flatMap((e) => {
    const r = Metainfo.decode(new Uint8Array(readFileSync(join(torrentsDir, e.file))), { v2Only: true })
    return Either.isRight(r) ? [{ entry: e, m: r.right }] : []
  })

  it.skipIf(!requireFixtures("v2 magnets"))("fromMetainfo: btmh for v2-only, both for hybrids; format/parse round-trips", () => {
    expect(decoded.length).toBeGreaterThanOrEqual(15)
    for (const { entry, m } of decoded) {
      const magnet = Magnet.fromMetainfo(m)
      const uri = Magnet.format(magnet)
      const v2 = `xt=urn:btmh:1220${entry.info_hash_v2}`
      if (entry.category === "v2-only") {
        expect(uri, entry.file).toMatch(new RegExp(`^magnet:\\?${v2}&dn=`))
        expect(uri).not.toMatch(/btih/)
      } else {
        expect(uri, entry.file).toMatch(new RegExp(`^magnet:\\?xt=urn:btih:${entry.info_hash_v1}&${v2}&dn=`))
      }
      const back = Either.getOrThrow(Magnet.parse(uri))
      expect(back).toEqual(magnet)
      expect(hashes(back)).toEqual({ v1: entry.info_hash_v1, v2: entry.info_hash_v2 })
    }
  })

  it.skipIf(!(requireFixtures("v2 magnet interop") && haveLibtorrent()))(
    "libtorrent reads our magnets as the same torrent, and we read libtorrent's",
    () => {
      const input = decoded.map(({ entry, m }) => `${join(torrentsDir, entry.file)}\t${Magnet.format(Magnet.fromMetainfo(m))}`)
      const out = JSON.parse(execFileSync(PYTHON, ["-c", SCRIPT], { input: input.join("\n"), encoding: "utf8" })) as Array<{
        readonly theirs: string
        readonly parsed: { readonly v1: string | null; readonly v2: string | null; readonly name: string }
        readonly torrent: { readonly v1: string | null; readonly v2: string | null }
      }>
      out.forEach((o, i) => {
        const { entry, m } = decoded[i]!
        expect({ v1: o.parsed.v1, v2: o.parsed.v2 }, entry.file).toEqual(o.torrent)
        expect(o.parsed.name, entry.file).toBe(m.name)
        const theirs = Either.getOrThrow(Magnet.parse(o.theirs))
        expect(hashes(theirs), entry.file).toEqual(o.torrent)
      })
    }
  )
})
