import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"

type Dict = { readonly [key: string]: Bencode.Encodable | undefined }

const hashes = (n: number) => new Uint8Array(20 * n).map((_, i) => i & 0xff)

const torrent = (info: Dict, top: Dict = {}): Uint8Array => Bencode.encode({ announce: "http://t/a", ...top, info })

const single = (over: Dict = {}): Dict => ({
  name: "file.bin",
  "piece length": 16384,
  length: 40000,
  pieces: hashes(3),
  ...over
})

const multi = (files: ReadonlyArray<Dict>, over: Dict = {}): Dict => {
  const total = files.reduce((n, f) => n + (typeof f.length === "number" ? f.length : 0), 0)
  return { name: "dir", "piece length": 16384, files, pieces: hashes(Math.ceil(total / 16384)), ...over }
}

const ok = (bytes: Uint8Array): Metainfo.Metainfo => {
  const r = Metainfo.decode(bytes)
  if (Either.isLeft(r)) throw new Error(`expected success, got ${r.left.reason}: ${r.left.message}`)
  return r.right
}

const err = (bytes: Uint8Array): Metainfo.MetainfoError => {
  const r = Metainfo.decode(bytes)
  if (Either.isRight(r)) throw new Error("expected a failure")
  return r.left
}

describe("Metainfo.decode: v1", () => {
  it("decodes a single-file torrent", () => {
    const bytes = torrent(single({ private: 1 }), {
      "announce-list": [["http://a/1", "http://a/2"], [], ["udp://b/3"]],
      "url-list": "http://seed/file.bin",
      httpseeds: ["http://hs/1", "http://hs/1", ""],
      comment: "hi",
      "created by": "me",
      "creation date": 1700000000,
      encoding: "UTF-8"
    })
    const m = ok(bytes)
    expect(m.version).toBe("v1")
    expect(m.name).toBe("file.bin")
    expect(m.isMultiFile).toBe(false)
    expect(m.pieceLength).toBe(16384)
    expect(m.pieceCount).toBe(3)
    expect(m.totalLength).toBe(40000)
    expect(m.files).toEqual([
      {
        path: ["file.bin"],
        rawPath: ["file.bin"],
        length: 40000,
        offset: 0,
        pad: false,
        attributes: { executable: false, hidden: false }
      }
    ])
    expect(m.trackers).toEqual([["http://a/1", "http://a/2"], ["udp://b/3"]])
    expect(m.webSeeds).toEqual(["http://seed/file.bin"])
    expect(m.httpSeeds).toEqual(["http://hs/1"])
    expect(m.private).toBe(true)
    expect(m.comment).toBe("hi")
    expect(m.createdBy).toBe("me")
    expect(m.creationDate).toBe(1700000000)
    expect(m.encoding).toBe("UTF-8")
    expect(Metainfo.pieceHash(m, 1)).toEqual(hashes(3).subarray(20, 40))
    expect(Metainfo.pieceHash(m, 3)).toBeUndefined()
    expect(Metainfo.pieceLengthAt(m, 2)).toBe(40000 - 2 * 16384)
  })

  it("hashes the info dict's original bytes, never a re-encoding", () => {
    // unsorted keys: a re-encoding would sort them and change the hash
    const info = "d6:lengthi5e12:piece lengthi16384e4:name1:x6:pieces20:" + "a".repeat(20) + "e"
    const bytes = Bytes.encodeUtf8(`d4:info${info}e`)
    const m = ok(bytes)
    expect(Bytes.toHex(m.infoHash)).toBe(Bytes.toHex(Bytes.sha1(Bytes.encodeUtf8(info))))
    expect(Bytes.toBinaryString(m.rawInfo)).toBe(info)
    expect(m.infoHashV2).toBeUndefined()
  })

  it("uses announce when there is no usable announce-list", () => {
    expect(ok(torrent(single(), { "announce-list": [[]] })).trackers).toEqual([["http://t/a"]])
    expect(ok(torrent(single(), { announce: undefined })).trackers).toEqual([])
  })

  it("decodes a multi-file torrent with offsets, pad files and attributes", () => {
    const m = ok(torrent(multi([
      { length: 1000, path: ["a", "one.txt"], attr: "x" },
      { length: 15384, path: [".pad", "15384"], attr: "p" },
      { length: 20000, path: ["two.txt"], attr: "h" },
      { length: 10, path: ["_____padding_file_0"] },
      { length: 0, path: ["link"], attr: "l", "symlink path": ["a", "one.txt"] }
    ]), { "url-list": ["http://ws/", "http://ws/", "http://ws2"] }))
    expect(m.isMultiFile).toBe(true)
    expect(m.totalLength).toBe(36394)
    expect(m.files.map((f) => [f.path.join("/"), f.offset, f.length, f.pad])).toEqual([
      ["dir/a/one.txt", 0, 1000, false],
      ["dir/.pad/15384", 1000, 15384, true],
      ["dir/two.txt", 16384, 20000, false],
      ["dir/_____padding_file_0", 36384, 10, true],
      ["dir/link", 36394, 0, false]
    ])
    expect(m.files[0]!.attributes.executable).toBe(true)
    expect(m.files[2]!.attributes.hidden).toBe(true)
    expect(m.files[4]!.attributes.symlink).toEqual(["dir", "a", "one.txt"])
    expect(m.files[0]!.rawPath).toEqual(["dir", "a", "one.txt"])
    expect(m.webSeeds).toEqual(["http://ws/", "http://ws2/"])
  })

  it("sanitizes unsafe paths instead of writing outside the directory", () => {
    const m = ok(torrent(multi([
      { length: 1, path: ["..", "..", "etc", "passwd"] },
      { length: 1, path: ["/abs"] },
      { length: 1, path: ["", "."] },
      { length: 1, path: ["a\\b"] }
    ])))
    expect(m.files.map((f) => f.path.join("/"))).toEqual(["dir/etc/passwd", "dir/abs", "dir/_", "dir/ab"])
    expect(m.files[0]!.rawPath).toEqual(["dir", "..", "..", "etc", "passwd"])
  })

  it("renames duplicate paths and files that collide with a directory", () => {
    const m = ok(torrent(multi([
      { length: 1, path: ["x.txt"] },
      { length: 1, path: ["X.TXT"] },
      { length: 1, path: ["a"] },
      { length: 1, path: ["a", "b"] }
    ])))
    expect(m.files.map((f) => f.path.join("/"))).toEqual(["dir/x.txt", "dir/X.1.TXT", "dir/a.1", "dir/a/b"])
  })

  it("replaces a multi-file name of '..' by the info-hash, and prefers valid name.utf-8 / path.utf-8", () => {
    const m = ok(torrent(multi([{ length: 1, path: ["p"], "path.utf-8": ["ü"] }], { name: ".." })))
    expect(m.name).toBe(Bytes.toHex(m.infoHash))
    expect(m.files[0]!.path).toEqual([m.name, "ü"])
    const n = ok(torrent(single({ "name.utf-8": "ñ.bin" })))
    expect(n.name).toBe("ñ.bin")
  })

  it("gives a symlink with an outside target a harmless self-target", () => {
    const m = ok(torrent(multi([
      { length: 5, path: ["f"] },
      { length: 0, path: ["l"], attr: "l", "symlink path": ["..", "..", "etc"] }
    ])))
    expect(m.files[1]!.attributes.symlink).toEqual(["dir", "l"])
  })

  it("ignores bytes after the top-level dictionary, as libtorrent does", () => {
    const bytes = Bytes.concat([torrent(single()), Bytes.encodeUtf8("\n")])
    expect(ok(bytes).name).toBe("file.bin")
  })

  it("has an Effect variant", () =>
    Effect.gen(function*() {
      const m = yield* Metainfo.decodeEffect(torrent(single()))
      expect(m.name).toBe("file.bin")
      const e = yield* Effect.flip(Metainfo.decodeEffect(Bytes.encodeUtf8("i1e")))
      expect(e.reason).toBe("not-a-dictionary")
    }).pipe(Effect.runPromise))
})

describe("Metainfo.decode: validation errors name their field", () => {
  const cases: ReadonlyArray<readonly [string, Uint8Array, Metainfo.MetainfoError["reason"], string | undefined]> = [
    ["not bencode", Bytes.encodeUtf8("d4:info"), "not-bencode", undefined],
    ["not a dict", Bytes.encodeUtf8("l1:ae"), "not-a-dictionary", undefined],
    ["no info", Bencode.encode({ announce: "x" }), "missing-info", "info"],
    ["no piece length", torrent(single({ "piece length": undefined })), "missing-field", "info.piece length"],
    ["zero piece length", torrent(single({ "piece length": 0 })), "invalid-field", "info.piece length"],
    ["negative piece length", torrent(single({ "piece length": -16384 })), "invalid-field", "info.piece length"],
    ["huge piece length", torrent(single({ "piece length": 2n ** 40n })), "invalid-field", "info.piece length"],
    ["no name", torrent(single({ name: undefined })), "missing-field", "info.name"],
    ["empty name", torrent(single({ name: "" })), "missing-field", "info.name"],
    ["name '..' (single-file)", torrent(single({ name: ".." })), "invalid-field", "info.name"],
    ["negative length", torrent(single({ length: -1 })), "invalid-field", "info.length"],
    ["bigint length", torrent(single({ length: 2n ** 60n })), "invalid-field", "info.length"],
    ["string length", torrent(single({ length: "5" })), "invalid-field", "info.length"],
    ["pieces not a multiple of 20", torrent(single({ pieces: new Uint8Array(59) })), "invalid-field", "info.pieces"],
    ["piece count mismatch", torrent(single({ pieces: hashes(2) })), "invalid-field", "info.pieces"],
    ["no pieces", torrent(single({ pieces: undefined })), "missing-field", "info.pieces"],
    ["zero total", torrent(single({ length: 0, pieces: hashes(0) })), "invalid-field", "info.length"],
    [
      "too many pieces",
      torrent(single({ "piece length": 1, length: 0x200001, pieces: new Uint8Array(20 * 0x200001) })),
      "too-many-pieces",
      "info.pieces"
    ],
    [
      "file length",
      torrent(multi([{ length: 1, path: ["a"] }, { length: -5, path: ["b"] }])),
      "invalid-field",
      "info.files[1].length"
    ],
    ["missing path", torrent(multi([{ length: 1 }])), "missing-field", "info.files[0].path"],
    ["non-string path", torrent(multi([{ length: 1, path: ["a", 4] }])), "invalid-field", "info.files[0].path[1]"],
    ["file entry not a dict", torrent({ ...multi([]), files: [1] }), "invalid-field", "info.files[0]"],
    ["no files", torrent(multi([], { pieces: hashes(0) })), "invalid-field", "info.files"],
    ["meta version 3", torrent(single({ "meta version": 3 })), "unsupported-version", "info.meta version"],
    ["file tree without meta version", torrent(single({ "file tree": {} })), "invalid-field", "info.meta version"]
  ]
  for (const [title, bytes, reason, field] of cases) {
    it(title, () => {
      const e = err(bytes)
      expect(e._tag).toBe("MetainfoError")
      expect(e.reason).toBe(reason)
      expect(e.field).toBe(field)
      expect(e.message.length).toBeGreaterThan(0)
      if (field !== undefined) expect(e.message).toContain(field)
    })
  }
  it("keeps the BencodeError inside not-bencode", () => {
    const e = err(Bytes.encodeUtf8("d4:info"))
    expect(e.cause?._tag).toBe("BencodeError")
  })
})

// --- v2 / hybrid -------------------------------------------------------------------------------------------------

const root = (seed: number) => new Uint8Array(32).fill(seed)
/** a.bin's piece layer (two pieces) and the root it hashes up to (BEP 52: layers must match their roots). */
const layerA = Uint8Array.from({ length: 64 }, (_, i) => i + 1)
const rootA = Merkle.rootFromPieceLayer(layerA, 16384)

const hybridInfo = (): Dict => ({
  name: "h",
  "piece length": 16384,
  "meta version": 2,
  "file tree": new Map<string, Bencode.Encodable>([
    ["a.bin", { "": { length: 20000, "pieces root": rootA } }],
    ["b.bin", { "": { length: 100, "pieces root": root(2) } }]
  ]),
  files: [
    { length: 20000, path: ["a.bin"] },
    { length: 12768, path: [".pad", "12768"], attr: "p" },
    { length: 100, path: ["b.bin"] }
  ],
  pieces: hashes(3)
})

const layers = () => new Map<string, Bencode.Encodable>([[Bytes.toBinaryString(rootA), layerA]])

describe("Metainfo.decode: v2 and hybrid (BEP 52)", () => {
  it("decodes the v1 side of a hybrid torrent and reports both info-hashes", () => {
    const bytes = torrent(hybridInfo(), { "piece layers": layers() })
    const m = ok(bytes)
    expect(m.version).toBe("hybrid")
    expect(m.infoHashV2).toBeDefined()
    expect(Bytes.toHex(m.infoHashV2!)).toBe(Bytes.toHex(Bytes.sha256(m.rawInfo)))
    expect(m.files.map((f) => [f.path.join("/"), f.offset, f.pad])).toEqual([
      ["h/a.bin", 0, false],
      ["h/.pad/12768", 20000, true],
      ["h/b.bin", 32768, false]
    ])
    expect(m.files[0]!.piecesRoot).toEqual(rootA)
  })

  it("rejects a hybrid whose v1 and v2 file lists disagree", () => {
    const info = { ...hybridInfo(), files: [{ length: 20100, path: ["a.bin"] }], pieces: hashes(2) }
    const e = err(torrent(info))
    expect(e.reason).toBe("invalid-v2")
    expect(e.field).toBe("info.file tree")
    expect(e.infoHashV2).toBeDefined()
  })

  it("rejects a piece layer of the wrong size", () => {
    const bad = new Map<string, Bencode.Encodable>([[Bytes.toBinaryString(rootA), new Uint8Array(96)]])
    expect(err(torrent(hybridInfo(), { "piece layers": bad })).reason).toBe("invalid-v2")
  })

  it("requires a power-of-two piece length of at least 16 KiB for v2", () => {
    const e = err(torrent({ ...hybridInfo(), "piece length": 20000 }))
    expect([e.reason, e.field]).toEqual(["invalid-field", "info.piece length"])
  })

  it("recognizes a v2-only torrent and fails with v2-only, reporting its v2 info-hash and name", () => {
    const { files: _files, pieces: _pieces, ...v2only } = hybridInfo()
    const bytes = torrent(v2only, { "piece layers": layers() })
    const e = err(bytes)
    expect(e.reason).toBe("v2-only")
    expect(e.message).toBe("v2-only torrents are not supported yet")
    expect(e.name).toBe("h")
    const raw = Bencode.encode(v2only)
    expect(Bytes.toHex(e.infoHashV2!)).toBe(Bytes.toHex(Bytes.sha256(raw)))
  })
})

// --- properties --------------------------------------------------------------------------------------------------

const valid = [
  torrent(single()),
  torrent(multi([{ length: 1000, path: ["a", "b"] }, { length: 40000, path: ["c"], attr: "x" }])),
  torrent(hybridInfo(), { "piece layers": layers() })
]

describe("Metainfo.decode: never throws", () => {
  it.prop("on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 300 })], ([bytes]) => {
    const r = Metainfo.decode(bytes)
    expect(Either.isLeft(r) || Either.isRight(r)).toBe(true)
  })

  it.prop(
    "on mutated valid torrents, and any failure is a typed MetainfoError",
    [
      FastCheck.integer({ min: 0, max: valid.length - 1 }),
      FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4
      }),
      FastCheck.option(FastCheck.nat(), { nil: undefined })
    ],
    ([which, edits, cut]) => {
      const bytes = new Uint8Array(valid[which]!)
      for (const [at, value] of edits) bytes[at % bytes.length] = value
      const input = cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1))
      const r = Metainfo.decode(input)
      if (Either.isLeft(r)) {
        expect(r.left._tag).toBe("MetainfoError")
        expect(r.left.detail).not.toMatch(/internal error/)
      } else {
        const m = r.right
        expect(m.files.reduce((n, f) => n + f.length, 0)).toBe(m.totalLength)
        expect(m.pieces.length).toBe(m.pieceCount * 20)
      }
    },
    { fastCheck: { numRuns: 500 } }
  )
})
