import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Create from "../../src/metainfo/Create.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"

const KiB = 1024
const MiB = 1024 * 1024
const GiB = 1024 * MiB

/** Deterministic bytes. */
const bytesOf = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

const piecesOf = (data: Uint8Array, pieceLength: number): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (let at = 0; at < data.length; at += pieceLength) parts.push(Bytes.sha1(data.subarray(at, at + pieceLength)))
  return Bytes.concat(parts)
}

interface TreeFile extends Create.InputFile {
  readonly data: Uint8Array
}

/** Builds the torrent of `files` (any order) the way Creator does: data concatenated in sorted order. */
const buildTree = (
  name: string,
  files: ReadonlyArray<TreeFile>,
  pieceLength: number,
  extra: Partial<Create.Options> = {}
) => {
  const sorted = Create.sortFiles(files)
  const payload = Bytes.concat(sorted.map((f) => f.data))
  const built = Create.build({
    name,
    single: false,
    files: files.map((f) => ({ path: f.path, length: f.length })),
    pieceLength,
    pieces: piecesOf(payload, pieceLength),
    ...extra
  })
  return { built, payload }
}

const file = (path: string, length: number, seed = length): TreeFile => ({
  path: path.split("/"),
  length,
  data: bytesOf(length, seed)
})

const right = <A, E>(e: Either.Either<A, E>): A => {
  if (Either.isLeft(e)) throw new Error(`expected Right, got ${String(e.left)}`)
  return e.right
}
const leftReason = <A>(e: Either.Either<A, Create.CreateError>): string => {
  if (Either.isRight(e)) throw new Error("expected Left")
  return e.left.reason
}

describe("autoPieceLength", () => {
  it("follows libtorrent 2.0's rule: the smallest power of two ≥ 16 KiB and ≥ 10 × √size, capped at 16 MiB", () => {
    const table: ReadonlyArray<readonly [number, number]> = [
      [1, 16 * KiB],
      [100 * KiB, 16 * KiB],
      [2_600_000, 16 * KiB],
      [2_700_000, 32 * KiB],
      [22 * MiB, 64 * KiB],
      [700 * MiB, 512 * KiB],
      [GiB, 512 * KiB],
      [4.7 * GiB, 1 * MiB],
      [32 * GiB, 2 * MiB],
      [1024 * GiB, 16 * MiB],
      [32 * 1024 * GiB + 1, 32 * MiB]
    ]
    for (const [total, want] of table) expect([total, Create.autoPieceLength(total)]).toEqual([total, want])
  })

  it.prop("always a valid power of two, growing with the size, within readers' piece limit", {
    total: FastCheck.integer({ min: 1, max: 2 ** 48 })
  }, ({ total }) => {
    const p = Create.autoPieceLength(total)
    expect(Either.isRight(Create.validatePieceLength(p))).toBe(true)
    if (total <= 32 * 1024 * GiB) expect(p).toBeLessThanOrEqual(Create.MAX_AUTO_PIECE_LENGTH)
    expect(Create.autoPieceLength(total * 2)).toBeGreaterThanOrEqual(p)
    expect(Create.pieceCount(total, p)).toBeLessThanOrEqual(Create.MAX_PIECES)
  })
})

describe("parsePieceLength", () => {
  it("accepts bytes, K/M suffixes and mktorrent-style exponents", () => {
    for (const t of ["262144", "256K", "256k", "256KiB", "18", " 256 KiB "]) {
      expect(right(Create.parsePieceLength(t))).toBe(256 * KiB)
    }
    expect(right(Create.parsePieceLength("1M"))).toBe(MiB)
    expect(right(Create.parsePieceLength("16384"))).toBe(16 * KiB)
    expect(right(Create.parsePieceLength("128MiB"))).toBe(128 * MiB)
  })
  it("refuses what is not a power of two in 16 KiB – 128 MiB", () => {
    for (const t of ["0", "13", "8K", "100000", "256M", "1.5M", "abc", "", "-16K", "28"]) {
      expect([t, leftReason(Create.parsePieceLength(t))]).toEqual([t, "invalid-piece-length"])
    }
  })
})

describe("parseTrackers / parseWebSeeds", () => {
  it("makes one tier per value and splits commas inside a tier", () => {
    expect(right(Create.parseTrackers(["http://a/ann", "udp://b:1,udp://c:2", " http://d/ , "]))).toEqual([
      ["http://a/ann"],
      ["udp://b:1", "udp://c:2"],
      ["http://d/"]
    ])
    expect(right(Create.parseTrackers([]))).toEqual([])
    expect(right(Create.parseTrackers([",", ""]))).toEqual([])
  })
  it("refuses bad and repeated URLs", () => {
    expect(leftReason(Create.parseTrackers(["not a url"]))).toBe("invalid-url")
    expect(leftReason(Create.parseTrackers(["relative/path"]))).toBe("invalid-url")
    expect(leftReason(Create.parseTrackers(["http://a/", "udp://b:1,http://a/"]))).toBe("invalid-url")
    expect(leftReason(Create.parseWebSeeds(["ftp ://x"]))).toBe("invalid-url")
    expect(right(Create.parseWebSeeds(["http://w/", "http://w/", "https://v/x"]))).toEqual(["http://w/", "https://v/x"])
  })
})

describe("names", () => {
  it("accepts ordinary names, hidden files, spaces, non-ASCII and Windows-reserved ones", () => {
    for (const n of ["a.txt", ".hidden", "with space", "Ünïcødé ✓", "CON", "a:b", "x".repeat(240)]) {
      expect([n, Create.nameProblem(n)]).toEqual([n, undefined])
    }
  })
  it("refuses names readers would change", () => {
    for (const n of ["", ".", "..", "a/b", "tab\there", "bidi\u202eevil", "x".repeat(241), "nul\u0000"]) {
      expect(Create.nameProblem(n)).toBeDefined()
    }
  })
  it("refuses paths that differ only in ASCII case, as files or directories", () => {
    const e1 = Create.validateNames("t", [{ path: ["A.txt"], length: 1 }, { path: ["a.txt"], length: 1 }])
    expect(leftReason(e1)).toBe("unsafe-name")
    const e2 = Create.validateNames("t", [{ path: ["Sub", "x"], length: 1 }, { path: ["sub", "y"], length: 1 }])
    expect(leftReason(e2)).toBe("unsafe-name")
    const nonAscii = Create.validateNames("t", [{ path: ["Ä"], length: 1 }, { path: ["ä"], length: 1 }])
    expect(Either.isRight(nonAscii)).toBe(true)
    expect(leftReason(Create.validateNames("..", [{ path: ["a"], length: 1 }]))).toBe("unsafe-name")
  })
})

describe("build", () => {
  const tree = [file("b.bin", 40_000), file("a/z.txt", 1), file("a/y/x", 30_000), file("a.txt", 5), file("empty", 0)]

  it("orders files by path bytes and round-trips through Metainfo.decode", () => {
    const { built, payload } = buildTree("tree", tree, 16 * KiB, {
      trackers: [["http://t1/ann"], ["udp://t2:80", "udp://t3:80"]],
      webSeeds: ["http://ws/files/"],
      private: true,
      comment: "hello",
      creationDate: 1_700_000_000
    })
    const created = right(built)
    const m = created.metainfo
    expect(m.name).toBe("tree")
    expect(m.isMultiFile).toBe(true)
    // "a.txt" < "a/y/x" < "a/z.txt": '.' (0x2e) sorts before '/' (0x2f), as mktorrent's strcmp does
    expect(m.files.map((f) => f.path.join("/"))).toEqual([
      "tree/a.txt", "tree/a/y/x", "tree/a/z.txt", "tree/b.bin", "tree/empty"
    ])
    expect(m.files.map((f) => f.length)).toEqual([5, 30_000, 1, 40_000, 0])
    expect(m.trackers).toEqual([["http://t1/ann"], ["udp://t2:80", "udp://t3:80"]])
    expect(m.webSeeds).toEqual(["http://ws/files/"])
    expect(m.private).toBe(true)
    expect(m.comment).toBe("hello")
    expect(m.createdBy).toBe(Create.CREATED_BY)
    expect(m.creationDate).toBe(1_700_000_000)
    expect(m.pieceLength).toBe(16 * KiB)
    expect(m.totalLength).toBe(payload.length)
    expect(Bytes.equals(m.pieces, piecesOf(payload, 16 * KiB))).toBe(true)
    // the info dict holds exactly mktorrent's keys
    const top = right(Bencode.decode(created.torrent))
    const info = (top as Bencode.BDict).get("info") as Bencode.BDict
    expect([...info.keys()]).toEqual(["files", "name", "piece length", "pieces", "private"])
    expect([...(top as Bencode.BDict).keys()]).toEqual([
      "announce", "announce-list", "comment", "created by", "creation date", "info", "url-list"
    ])
  })

  it("is deterministic: the same files in any order give the same bytes; no date when none is given", () => {
    const a = right(buildTree("tree", tree, 16 * KiB).built)
    const b = right(buildTree("tree", [...tree].reverse(), 16 * KiB).built)
    expect(Bytes.equals(a.torrent, b.torrent)).toBe(true)
    expect(a.metainfo.creationDate).toBeUndefined()
    expect(a.metainfo.trackers).toEqual([])
    // one tracker: `announce` only
    const one = right(buildTree("tree", tree, 16 * KiB, { trackers: [["http://only/"]] }).built)
    expect((right(Bencode.decode(one.torrent)) as Bencode.BDict).has("announce-list")).toBe(false)
    expect(one.metainfo.trackers).toEqual([["http://only/"]])
    // private changes the info-hash, trackers do not
    const p = right(buildTree("tree", tree, 16 * KiB, { private: true }).built)
    expect(Bytes.equals(p.infoHash, a.infoHash)).toBe(false)
    expect(Bytes.equals(one.infoHash, a.infoHash)).toBe(true)
  })

  it("builds single-file torrents", () => {
    const data = bytesOf(50_000, 7)
    const c = right(Create.build({
      name: "one.bin",
      single: true,
      files: [{ path: [], length: data.length }],
      pieceLength: 32 * KiB,
      pieces: piecesOf(data, 32 * KiB)
    }))
    expect(c.metainfo.isMultiFile).toBe(false)
    expect(c.metainfo.files.map((f) => [f.path, f.length])).toEqual([[["one.bin"], 50_000]])
    expect(c.metainfo.pieceCount).toBe(2)
  })

  it("refuses empty input, wrong hash counts, too many pieces and unsafe names", () => {
    const base = { name: "t", single: false, pieceLength: 16 * KiB, pieces: new Uint8Array(20) }
    expect(leftReason(Create.build({ ...base, files: [] }))).toBe("empty")
    const zero = Create.build({ ...base, files: [{ path: ["a"], length: 0 }], pieces: new Uint8Array(0) })
    expect(leftReason(zero)).toBe("empty")
    expect(leftReason(Create.build({ ...base, files: [{ path: ["a"], length: 40_000 }] }))).toBe("invalid-option")
    const odd = Create.build({ ...base, files: [{ path: ["a"], length: 10 }], pieceLength: 1000 })
    expect(leftReason(odd)).toBe("invalid-piece-length")
    const huge = (Create.MAX_PIECES + 1) * 16 * KiB
    expect(leftReason(Create.build({ ...base, files: [{ path: ["a"], length: huge }] }))).toBe("too-many-pieces")
    expect(leftReason(Create.build({ ...base, files: [{ path: ["a\u202e"], length: 10 }] }))).toBe("unsafe-name")
  })

  const treeArb = FastCheck.uniqueArray(
    FastCheck.record({
      dirs: FastCheck.array(FastCheck.constantFrom("x", "y", "sub dir", ".h"), { maxLength: 3 }),
      base: FastCheck.stringMatching(/^[a-z0-9._-]{1,8}$/).filter((s) => s !== "." && s !== ".."),
      length: FastCheck.oneof(
        FastCheck.integer({ min: 0, max: 70_000 }),
        FastCheck.constantFrom(0, 1, 16_383, 16_384, 16_385)
      )
    }),
    { minLength: 1, maxLength: 12, selector: (f) => [...f.dirs, f.base].join("/") }
  ).filter((fs) => fs.some((f) => f.length > 0))

  it.prop("random trees: create → decode gives the same files, and every piece hash verifies", {
    files: treeArb,
    exp: FastCheck.integer({ min: 14, max: 16 })
  }, ({ exp, files }) => {
    // "f_" keeps file names apart from directory names (x, y, ...), which a real tree cannot mix either
    const tree = files.map((f, i) => file([...f.dirs, `f_${f.base}`].join("/"), f.length, i + 1))
    const pieceLength = 2 ** exp
    const { built, payload } = buildTree("root", tree, pieceLength)
    const m = right(built).metainfo
    const sorted = Create.sortFiles(tree)
    const want = sorted.map((f) => [["root", ...f.path].join("/"), f.length])
    expect(m.files.map((f) => [f.path.join("/"), f.length])).toEqual(want)
    expect(m.totalLength).toBe(payload.length)
    for (let i = 0; i < m.pieceCount; i++) {
      const start = i * pieceLength
      const hash = Metainfo.pieceHash(m, i)!
      expect(Bytes.equals(hash, Bytes.sha1(payload.subarray(start, start + Metainfo.pieceLengthAt(m, i)!)))).toBe(true)
    }
  }, { fastCheck: { numRuns: 60 } })
})

describe("v2 and hybrid", () => {
  it("sortFilesTree orders component by component (a directory's files together), unlike v1's joined paths", () => {
    const files = ["a.txt", "a/b", "a-b", "a/c/d", "b", "a/c.x"].map((p) => ({ path: p.split("/"), length: 1 }))
    expect(Create.sortFiles(files).map((f) => f.path.join("/"))).toEqual(["a-b", "a.txt", "a/b", "a/c.x", "a/c/d", "b"])
    expect(Create.sortFilesTree(files).map((f) => f.path.join("/"))).toEqual(["a/b", "a/c/d", "a/c.x", "a-b", "a.txt", "b"])
  })

  it("alignedLayout: a pad after every non-empty file not ending on a piece boundary, the last one too; none for one file", () => {
    const L = 16 * KiB
    const layout = Create.alignedLayout(
      [{ path: ["a"], length: 5 }, { path: ["b"], length: 0 }, { path: ["c"], length: L }, { path: ["d"], length: L + 1 }],
      L
    )
    expect(layout.slots).toEqual([
      { _tag: "File", index: 0, offset: 0, length: 5 },
      { _tag: "Pad", offset: 5, length: L - 5 },
      { _tag: "File", index: 1, offset: L, length: 0 },
      { _tag: "File", index: 2, offset: L, length: L },
      { _tag: "File", index: 3, offset: 2 * L, length: L + 1 },
      { _tag: "Pad", offset: 3 * L + 1, length: L - 1 }
    ])
    expect(layout.total).toBe(4 * L)
    expect(Create.alignedLayout([{ path: [], length: 5 }], L)).toEqual({
      slots: [{ _tag: "File", index: 0, offset: 0, length: 5 }],
      total: 5
    })
    expect(Create.pieceCountOf([{ path: ["a"], length: 5 }, { path: ["b"], length: 5 }], L, "v1")).toBe(1)
    expect(Create.pieceCountOf([{ path: ["a"], length: 5 }, { path: ["b"], length: 5 }], L, "hybrid")).toBe(2)
  })

  /** Files with their Merkle hashes, and a hybrid's v1 pieces over the aligned layout. */
  const hashed = (tree: ReadonlyArray<TreeFile>, pieceLength: number) => {
    const sorted = Create.sortFilesTree(tree)
    const files = sorted.map((f) => {
      const leaves = Merkle.leafHashes(f.data)
      return {
        path: f.path,
        length: f.length,
        ...(f.length > 0 ? { piecesRoot: Merkle.fileRoot(leaves) } : {}),
        ...(f.length > pieceLength ? { pieceLayer: Merkle.pieceLayer(leaves, pieceLength) } : {})
      }
    })
    const layout = Create.alignedLayout(sorted, pieceLength)
    const payload = Bytes.concat(layout.slots.map((s) => s._tag === "Pad" ? new Uint8Array(s.length) : sorted[s.index]!.data))
    return { files, payload, pieces: piecesOf(payload, pieceLength) }
  }

  it("refuses a file without its pieces root, or with a piece layer that is missing, short or wrong", () => {
    const pieceLength = 16 * KiB
    const { files, pieces } = hashed([file("a", 40_000, 1), file("b", 10, 2)], pieceLength)
    const base = { name: "t", single: false, pieceLength, pieces: new Uint8Array(0), format: "v2" as const }
    expect(Either.isRight(Create.build({ ...base, files }))).toBe(true)
    const without = files.map((f) => ({ path: f.path, length: f.length }))
    expect(leftReason(Create.build({ ...base, files: without }))).toBe("invalid-option")
    const noLayer = [{ ...files[0]!, pieceLayer: undefined }, files[1]!]
    expect(leftReason(Create.build({ ...base, files: noLayer }))).toBe("invalid-option")
    const short = [{ ...files[0]!, pieceLayer: files[0]!.pieceLayer!.subarray(32) }, files[1]!]
    expect(leftReason(Create.build({ ...base, files: short }))).toBe("invalid-option")
    const flipped = files[0]!.pieceLayer!.slice()
    flipped[0]! ^= 1
    const wrong = Create.build({ ...base, files: [{ ...files[0]!, pieceLayer: flipped }, files[1]!] })
    expect(wrong.pipe(Either.mapLeft((e) => e.detail), Either.flip, Either.getOrThrow)).toMatch(/do not hash up/)
    // a hybrid needs its v1 hashes
    expect(leftReason(Create.build({ ...base, format: "hybrid", files }))).toBe("invalid-option")
    expect(Either.isRight(Create.build({ ...base, format: "hybrid", files, pieces }))).toBe(true)
  })

  const v2TreeArb = FastCheck.uniqueArray(
    FastCheck.record({
      dirs: FastCheck.array(FastCheck.constantFrom("x", "y", "sub dir", ".h"), { maxLength: 3 }),
      base: FastCheck.stringMatching(/^[a-z0-9._-]{1,8}$/).filter((s) => s !== "." && s !== ".."),
      length: FastCheck.oneof(
        FastCheck.integer({ min: 0, max: 70_000 }),
        FastCheck.constantFrom(0, 1, 16_383, 16_384, 16_385, 32_768, 65_536)
      )
    }),
    { minLength: 1, maxLength: 10, selector: (f) => [...f.dirs, f.base].join("/") }
  ).filter((fs) => fs.some((f) => f.length > 0))

  it.prop("random trees: build → decode gives the files in tree order, piece-aligned, with their roots; v1 pieces verify", {
    files: v2TreeArb,
    exp: FastCheck.integer({ min: 14, max: 16 }),
    hybrid: FastCheck.boolean()
  }, ({ exp, files, hybrid }) => {
    const tree = files.map((f, i) => file([...f.dirs, `f_${f.base}`].join("/"), f.length, i + 1))
    const pieceLength = 2 ** exp
    const h = hashed(tree, pieceLength)
    const built = right(Create.build({
      name: "root",
      single: false,
      pieceLength,
      format: hybrid ? "hybrid" : "v2",
      files: h.files,
      pieces: hybrid ? h.pieces : new Uint8Array(0)
    }))
    const m = built.metainfo
    expect(m.version).toBe(hybrid ? "hybrid" : "v2")
    const real = m.files.filter((f) => !f.pad)
    // as libtorrent reads it: a v2-only file tree of one top-level file is a single-file torrent named after it
    const single = !hybrid && h.files.length === 1 && h.files[0]!.path.length === 1
    expect(m.isMultiFile).toBe(!single)
    expect(real.map((f) => f.path.slice(single ? 0 : 1).join("/"))).toEqual(h.files.map((f) => f.path.join("/")))
    real.forEach((f, i) => {
      if (f.length > 0) expect(f.offset % pieceLength).toBe(0)
      expect(f.piecesRoot === undefined ? undefined : Bytes.toHex(f.piecesRoot)).toBe(
        h.files[i]!.piecesRoot === undefined ? undefined : Bytes.toHex(h.files[i]!.piecesRoot!)
      )
    })
    if (hybrid) {
      expect(m.totalLength).toBe(h.payload.length)
      for (let i = 0; i < m.pieceCount; i++) {
        const start = i * pieceLength
        const want = Bytes.sha1(h.payload.subarray(start, start + Metainfo.pieceLengthAt(m, i)!))
        expect(Bytes.equals(Metainfo.pieceHash(m, i)!, want)).toBe(true)
      }
    } else expect(m.pieces.length).toBe(0)
  }, { fastCheck: { numRuns: 40 } })
})
