/**
 * `effect-torrent create` as a user runs it (the built bundle in a child process), checked against other
 * implementations: libtorrent (python3-libtorrent) and transmission-show load the result with the same info-hash,
 * and mktorrent makes byte-identical info dicts for the same input and piece length. Each tool is required in CI;
 * elsewhere a missing one skips its test with a loud message.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { execFile, execFileSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { bundle, cli as runCli, cliEnv, exec as execIn, expectOneLineError, type Run } from "../support/cli.ts"

const PYTHON = "/usr/bin/python3"

const exec = (cmd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  execIn(cmd, args, { env: { ...cliEnv, ...env }, timeout: 30_000 })

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => runCli(args, { env, timeout: 30_000 })

const hasTool = (what: string, probe: () => void): boolean => {
  try {
    probe()
    return true
  } catch {
    if (process.env["CI"]) throw new Error(`${what} is missing (required in CI; .ci/run installs it)`)
    console.warn(`\n!!! SKIPPED: ${what} is not installed; the create interop test with it did not run !!!\n`)
    return false
  }
}
const probe = (cmd: string, args: ReadonlyArray<string>) => () => void execFileSync(cmd, [...args], { stdio: "ignore" })
const haveLibtorrent = () => hasTool("python3-libtorrent", probe(PYTHON, ["-c", "import libtorrent"]))
const haveTransmission = () => hasTool("transmission-show", probe("transmission-show", ["--version"]))
const haveMktorrent = () => hasTool("mktorrent", probe("mktorrent", ["-h"]))

const work = mkdtempSync(join(tmpdir(), "et-create-cli-"))
afterAll(() => rmSync(work, { recursive: true, force: true }))

let seed = 12345
const bytes = (n: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    out[i] = seed >>> 24
  }
  return out
}

const writeTree = (root: string, files: Record<string, number>) => {
  for (const [rel, size] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true })
    writeFileSync(join(root, rel), bytes(size))
  }
}

const tree = join(work, "My Tree")
writeTree(tree, {
  "b.bin": 100_003,
  "a/z.txt": 1,
  "a/y/x": 65_537,
  "a.txt": 5,
  "empty": 0,
  ".hidden": 4_321,
  "ü/é.dat": 20_000
})
const single = join(work, "single.iso")
writeTree(work, { "single.iso": 333_333 })

const infoHashLine = (stdout: string): string => /^info-hash\s+([0-9a-f]{40})$/m.exec(stdout)?.[1] ?? "(none)"
const transmissionHash = async (path: string): Promise<string> =>
  /^\s*Hash( v1)?:\s*([0-9a-f]{40})\s*$/m.exec((await exec("transmission-show", [path])).stdout)?.[2] ?? "(none)"
const libtorrent = async (path: string) => {
  const script = [
    "import json, sys, libtorrent as lt",
    "ti = lt.torrent_info(sys.argv[1])",
    "fs = ti.files()",
    "print(json.dumps({'hash': str(ti.info_hash()), 'pieces': ti.num_pieces(), 'pl': ti.piece_length(),",
    "  'files': [[fs.file_path(i), fs.file_size(i)] for i in range(fs.num_files())],",
    "  'trackers': [[t.url, t.tier] for t in ti.trackers()], 'private': ti.priv(),",
    "  'web': [w['url'] for w in ti.web_seeds()]}))"
  ].join("\n")
  const r = await exec(PYTHON, ["-c", script, path])
  if (r.code !== 0) throw new Error(`libtorrent refused ${path}: ${r.stderr}`)
  return JSON.parse(r.stdout) as {
    hash: string
    pieces: number
    pl: number
    files: Array<[string, number]>
    trackers: Array<[string, number]>
    private: boolean
    web: Array<string>
  }
}

describe("effect-torrent create", { timeout: 90_000 }, () => {
  const full = join(work, "full.torrent")
  let created: Run | undefined
  const createFull = async () => {
    created ??= await cli([
      "create", tree, "-o", full, "-t", "http://tracker.one/announce", "-t", "udp://two:6969,udp://three:6969",
      "--web-seed", "http://seed.example/files/", "--private", "--comment", "made by a test", "-l", "32K"
    ])
    return created
  }

  it("writes a multi-file torrent and prints its info-hash and path; `info` agrees", async () => {
    const r = await createFull()
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`torrent       ${full}`)
    expect(r.stdout).toMatch(/pieces\s+6 × 32 KiB/)
    const hash = infoHashLine(r.stdout)
    const info = await cli(["info", "--json", full])
    expect(info.code).toBe(0)
    const j = JSON.parse(info.stdout) as Record<string, unknown>
    expect(j["infoHash"]).toBe(hash)
    expect(j["private"]).toBe(true)
    expect(j["comment"]).toBe("made by a test")
    expect(j["createdBy"]).toBe("effect-torrent 0.1.0")
    expect(j["trackers"]).toEqual([["http://tracker.one/announce"], ["udp://two:6969", "udp://three:6969"]])
    expect((j["files"] as Array<{ path: string }>).map((f) => f.path)).toEqual([
      "My Tree/.hidden", "My Tree/a.txt", "My Tree/a/y/x", "My Tree/a/z.txt",
      "My Tree/b.bin", "My Tree/empty", "My Tree/ü/é.dat"
    ])
  })

  it("libtorrent loads it with the same info-hash, files, trackers, tiers and web seed", async () => {
    if (!haveLibtorrent()) return
    const r = await createFull()
    const lt = await libtorrent(full)
    expect(lt.hash).toBe(infoHashLine(r.stdout))
    expect(lt.pieces).toBe(6)
    expect(lt.pl).toBe(32768)
    expect(lt.private).toBe(true)
    expect(lt.files.map(([p]) => p)).toContain("My Tree/ü/é.dat")
    expect(lt.files.reduce((n, [, s]) => n + s, 0)).toBe(100_003 + 1 + 65_537 + 5 + 4_321 + 20_000)
    // libtorrent shuffles the URLs inside a tier (BEP 12), so compare them as sets per tier
    expect([...lt.trackers].sort()).toEqual([
      ["http://tracker.one/announce", 0], ["udp://three:6969", 1], ["udp://two:6969", 1]
    ])
    expect(lt.web).toEqual(["http://seed.example/files/"])
  })

  it("transmission-show reads the same info-hash", async () => {
    if (!haveTransmission()) return
    const r = await createFull()
    expect(await transmissionHash(full)).toBe(infoHashLine(r.stdout))
    const single1 = join(work, "single-t.torrent")
    const s = await cli(["create", single, "-o", single1, "--no-date"])
    expect(s.code).toBe(0)
    expect(await transmissionHash(single1)).toBe(infoHashLine(s.stdout))
  })

  it("mktorrent makes the same info-hash for the same input, piece length and private flag", async () => {
    if (!haveMktorrent()) return
    for (const [input, flags] of [[tree, ["-p"]], [tree, []], [single, []]] as const) {
      const ours = join(work, "ours.torrent")
      const theirs = join(work, "theirs.torrent")
      rmSync(theirs, { force: true })
      const m = await exec("mktorrent", ["-l", "16", ...flags, "-a", "http://t/ann", "-o", theirs, input])
      expect(m.code).toBe(0)
      const priv = flags.length > 0 ? ["--private"] : []
      const r = await cli(["create", input, "-l", "16", ...priv, "-o", ours, "--force", "--json"])
      expect(r.code).toBe(0)
      const j = JSON.parse(r.stdout) as { infoHash: string }
      const info = await cli(["info", "--json", theirs])
      expect(JSON.parse(info.stdout).infoHash).toBe(j.infoHash)
    }
  })

  it("--json prints infoHash, path, pieces, pieceLength, totalSize; the piece length is automatic", async () => {
    const out = join(work, "auto.torrent")
    const r = await cli(["create", single, "--json", "-o", out])
    expect(r.code).toBe(0)
    const j = JSON.parse(r.stdout) as Record<string, unknown>
    expect(j).toMatchObject({ path: out, pieces: 21, pieceLength: 16384, totalSize: 333_333, name: "single.iso" })
    expect(j["files"]).toBe(1)
    expect(j["infoHash"]).toMatch(/^[0-9a-f]{40}$/)
  })

  it("--no-date is reproducible; the date comes from --date or SOURCE_DATE_EPOCH otherwise", async () => {
    const a = join(work, "r1.torrent")
    const b = join(work, "r2.torrent")
    expect((await cli(["create", tree, "--no-date", "-o", a])).code).toBe(0)
    expect((await cli(["create", tree, "--no-date", "-o", b])).code).toBe(0)
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true)
    const c = join(work, "r3.torrent")
    expect((await cli(["create", tree, "-o", c], { SOURCE_DATE_EPOCH: "1600000000" })).code).toBe(0)
    const d = join(work, "r4.torrent")
    expect((await cli(["create", tree, "-o", d, "--date", "2020-09-13T12:26:40Z"])).code).toBe(0)
    expect(readFileSync(c).equals(readFileSync(d))).toBe(true)
    expect(JSON.parse((await cli(["info", "--json", c])).stdout).creationDate).toBe("2020-09-13T12:26:40Z")
  })

  it("refuses to overwrite without --force, and overwrites with it", async () => {
    const out = join(work, "exists.torrent")
    writeFileSync(out, "keep me")
    expectOneLineError(await cli(["create", single, "-o", out]), 1)
    expect(readFileSync(out, "utf8")).toBe("keep me")
    const r = await cli(["create", single, "-o", out, "--force"])
    expect(r.code).toBe(0)
    expect(readFileSync(out).subarray(0, 1).toString()).toBe("d")
  })

  it("writes <name>.torrent in the current directory by default", async () => {
    const cwd = mkdtempSync(join(work, "cwd-"))
    const r = await new Promise<number>((resolve) =>
      execFile(process.execPath, [bundle, "create", single], { cwd }, (e: Error | null) => resolve(e === null ? 0 : 1))
    )
    expect(r).toBe(0)
    expect(existsSync(join(cwd, "single.iso.torrent"))).toBe(true)
  })

  it("fails with one line: exit 2 for bad options, 1 for bad input", async () => {
    expectOneLineError(await cli(["create", single, "--piece-length", "1000"]), 2)
    expectOneLineError(await cli(["create", single, "-t", "no url"]), 2)
    expectOneLineError(await cli(["create", single, "--date", "yesterday-ish"]), 2)
    expectOneLineError(await cli(["create", join(work, "does-not-exist")]), 1)
    const empty = join(work, "hollow")
    writeTree(empty, { "zero": 0 })
    expectOneLineError(await cli(["create", empty, "-o", join(work, "hollow.torrent")]), 1)
  })
})

describe("effect-torrent create --v2 / --hybrid", { timeout: 90_000 }, () => {
  const v2Line = (stdout: string): string => /^info-hash v2\s+([0-9a-f]{64})$/m.exec(stdout)?.[1] ?? "(none)"
  /** libtorrent's info-hashes for a .torrent, and for its own create_torrent of `input` (default flags / v2_only). */
  const libtorrentHashes = async (torrent: string, input: string, format: "v2" | "hybrid", pieceLength: number) => {
    const script = [
      "import json, os, sys, libtorrent as lt",
      "torrent, path, fmt, pl = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])",
      "ti = lt.torrent_info(torrent)",
      "flags = lt.create_torrent.v2_only if fmt == 'v2' else 0",
      "fs = lt.file_storage()",
      "lt.add_files(fs, path, flags=flags)",
      "ct = lt.create_torrent(fs, pl, flags)",
      "lt.set_piece_hashes(ct, os.path.dirname(path))",
      "own = lt.torrent_info(ct.generate())",
      "h = lambda t: {'v1': str(t.info_hashes().v1) if t.info_hashes().has_v1() else None,",
      "  'v2': str(t.info_hashes().v2) if t.info_hashes().has_v2() else None}",
      "print(json.dumps({'ours': h(ti), 'theirs': h(own), 'pieces': ti.num_pieces(), 'files': ti.files().num_files()}))"
    ].join("\n")
    const r = await exec(PYTHON, ["-c", script, torrent, input, format, String(pieceLength)])
    if (r.code !== 0) throw new Error(`libtorrent refused ${torrent}: ${r.stderr}`)
    return JSON.parse(r.stdout) as {
      ours: { v1: string | null; v2: string | null }
      theirs: { v1: string | null; v2: string | null }
      pieces: number
    }
  }

  it("libtorrent loads both with the info-hashes we print, the ones its own create_torrent gives the same files", async () => {
    if (!haveLibtorrent()) return
    for (const format of ["v2", "hybrid"] as const) {
      for (const input of [tree, single]) {
        const out = join(work, `${format}-${input === tree ? "tree" : "single"}.torrent`)
        const r = await cli(["create", input, `--${format}`, "-l", "32K", "-o", out, "--force"])
        expect(r.stderr).toBe(
          "effect-torrent: warning: no --tracker given: peers will find it only through the DHT, PEX and local discovery (add -t URL)\n"
        )
        expect(r.code).toBe(0)
        const lt = await libtorrentHashes(out, input, format, 32768)
        expect(lt.ours).toEqual(lt.theirs)
        expect(lt.ours.v2).toBe(v2Line(r.stdout))
        if (format === "hybrid") expect(lt.ours.v1).toBe(infoHashLine(r.stdout))
        else {
          expect(lt.ours.v1).toBeNull()
          expect(infoHashLine(r.stdout)).toBe("(none)")
        }
        expect(r.stdout).toMatch(new RegExp(`pieces\\s+${lt.pieces} × 32 KiB`))
      }
    }
  })

  it("--json gives the format and both info-hashes; --no-date is reproducible", async () => {
    const a = join(work, "v2-r1.torrent")
    const b = join(work, "v2-r2.torrent")
    const r = await cli(["create", tree, "--v2", "--no-date", "--json", "-o", a])
    expect(r.code).toBe(0)
    const j = JSON.parse(r.stdout) as Record<string, unknown>
    expect(j["format"]).toBe("v2")
    expect(j["infoHashV2"]).toMatch(/^[0-9a-f]{64}$/)
    // a v2-only torrent's 20-byte swarm id: the v2 info-hash truncated
    expect(j["infoHash"]).toBe((j["infoHashV2"] as string).slice(0, 40))
    expect((await cli(["create", tree, "--v2", "--no-date", "-o", b])).code).toBe(0)
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true)
    const h = JSON.parse((await cli(["create", tree, "--hybrid", "--json", "-o", join(work, "h.torrent")])).stdout)
    expect(h.format).toBe("hybrid")
    expect(h.infoHash).toMatch(/^[0-9a-f]{40}$/)
    expect(h.infoHashV2).toMatch(/^[0-9a-f]{64}$/)
  })

  it("--v2 with --hybrid is a usage error", async () => {
    expectOneLineError(await cli(["create", single, "--v2", "--hybrid", "-o", join(work, "both.torrent")]), 2)
    expect(existsSync(join(work, "both.torrent"))).toBe(false)
  })
})

describe("verify on v2 and hybrid data", { timeout: 90_000 }, () => {
  it("the data a torrent was created from verifies; a flipped byte fails only its file", async () => {
    const data = join(work, "verify-v2")
    writeTree(join(data, "T"), { "a.bin": 100_000, "b/c.bin": 40_000, "d.txt": 5 })
    for (const format of ["v2", "hybrid"] as const) {
      const torrent = join(work, `verify-${format}.torrent`)
      expect((await cli(["create", join(data, "T"), `--${format}`, "-l", "16K", "-o", torrent, "--force"])).code).toBe(0)
      const good = await cli(["verify", torrent, data, "--json"])
      expect(good.code).toBe(0)
      const path = join(data, "T", "a.bin")
      const bytes = readFileSync(path)
      bytes[50_000]! ^= 1
      writeFileSync(path, bytes)
      const bad = await cli(["verify", torrent, data, "--json"])
      bytes[50_000]! ^= 1
      writeFileSync(path, bytes)
      expect(bad.code).toBe(1)
      const report = JSON.parse(bad.stdout) as { files: Array<{ path: string; status: string }> }
      const notOk = report.files.filter((f) => f.status !== "ok").map((f) => f.path)
      expect(notOk).toEqual(["T/a.bin"])
    }
  })
})
