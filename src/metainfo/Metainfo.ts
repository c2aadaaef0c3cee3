/**
 * `.torrent` metainfo (BEP 3, BEP 52) decoded into a typed model: v1 single- and multi-file torrents, v1/v2
 * hybrids, and v2-only torrents. Every v2 part is checked: the file tree, a `pieces root` per non-empty file, each
 * `piece layers` entry against its root (the Merkle tree of `core/Merkle.ts`), piece alignment, and for hybrids
 * that both file lists describe the same files at the same offsets. By default a v2-only torrent still fails, after
 * full validation, with `reason: "v2-only"` (the download path cannot use it yet); that error carries its v2
 * info-hash and name. `decode(bytes, { v2Only: true })` returns it as `version: "v2"` (what `info` shows).
 *
 * What is accepted and how values are read follows libtorrent 2.0.8 (`torrent_info::parse_torrent_file`), checked
 * against real torrents in `test/metainfo/conformance.test.ts`; `docs/METAINFO.md` lists the rules and the few
 * deliberate differences. Highlights:
 * - the info-hash is SHA-1 (v2: SHA-256) of the info dict's original bytes, never of a re-encoding;
 * - file paths are sanitized component by component (see `SafePath.ts`), duplicates renamed `x.1.ext`, `x.2.ext`;
 * - pad files (BEP 47 `attr` containing `p`, or BitComet's `_____padding_file_`) are kept in the list with
 *   `pad: true`, under the synthetic path `<name>/.pad/<size>`; they take space in the piece data but are never
 *   written to disk;
 * - symlinks (`attr` `l`) have length 0 and a target that is checked to stay inside the torrent;
 * - numbers: sizes must be non-negative safe integers below libtorrent's limits (a file below 2^44 bytes, the
 *   torrent below 2^48), the piece length positive and at most 2^30 - 1 (v2: a power of two of at least 16 KiB),
 *   and at most 0x200000 pieces;
 * - v2: files are laid out piece-aligned, with the pads libtorrent 2.0.8 inserts (before every file that does not
 *   start on a piece boundary, and after the last file of a v2-only torrent), so piece indices mean the same as
 *   for libtorrent; the v1 list of a hybrid must have the same layout.
 *
 * `decode` never throws: every problem is a {@link MetainfoError} naming the field.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Bencode from "../bencode/Bencode.ts"
import type { BencodeError } from "../bencode/BencodeError.ts"
import * as Bytes from "../core/Bytes.ts"
import * as InfoHash from "../core/InfoHash.ts"
import * as Merkle from "../core/Merkle.ts"
import { type Entry, fullPath, resolveDuplicates, sanitizeSymlinks } from "./internal/files.ts"
import { MetainfoError, type Reason } from "./MetainfoError.ts"
import { lossyUtf8, sanitizeComponent } from "./SafePath.ts"

export { MetainfoError } from "./MetainfoError.ts"

// ---------------------------------------------------------------------------------------------------------------
// Model

const Size = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

export const FileAttributes = Schema.Struct({
  executable: Schema.Boolean,
  hidden: Schema.Boolean,
  /** Symlink target as components relative to the output directory (like `path`); absent for regular files. */
  symlink: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
})
export interface FileAttributes extends Schema.Schema.Type<typeof FileAttributes> {}

export const FileEntry = Schema.Struct({
  /** Sanitized components relative to the output directory, the torrent's directory name first if multi-file. */
  path: Schema.Array(Schema.String),
  /** The components exactly as the torrent states them (name first if multi-file), decoded as UTF-8 (U+FFFD). */
  rawPath: Schema.Array(Schema.String),
  length: Size,
  /** Byte offset of the file in the torrent's concatenated data. */
  offset: Size,
  pad: Schema.Boolean,
  attributes: FileAttributes,
  /** BEP 47 `mtime` (seconds), when given. */
  mtime: Schema.optionalWith(Schema.Number, { exact: true }),
  /** BEP 52 `pieces root` of this file (v2 and hybrid torrents; absent for empty files, pads and symlinks). */
  piecesRoot: Schema.optionalWith(Schema.Uint8ArrayFromSelf, { exact: true }),
  /**
   * BEP 52: this file's piece layer from `piece layers` (a view into the input), checked against `piecesRoot`: one
   * 32-byte hash per piece of the file. Only for files longer than one piece, and absent when the torrent leaves it
   * out (libtorrent loads such torrents; peers supply the hashes).
   */
  pieceLayer: Schema.optionalWith(Schema.Uint8ArrayFromSelf, { exact: true })
})
export interface FileEntry extends Schema.Schema.Type<typeof FileEntry> {}

export const Metainfo = Schema.Struct({
  /** `v1` (BEP 3), `hybrid` (both, one info dict), `v2` (BEP 52 only: only with `decode`'s `v2Only`). */
  version: Schema.Literal("v1", "hybrid", "v2"),
  /** The sanitized name (the directory of a multi-file torrent, the file of a single-file one). */
  name: Schema.String,
  /**
   * The 20-byte id of the torrent's swarm on the v1 wire, in tracker announces and in the DHT: the SHA-1 info-hash
   * for `v1` and `hybrid`, the SHA-256 one truncated to 20 bytes for `v2` (BEP 52). A hybrid's v2 swarm uses
   * `InfoHash.truncatedV2(infoHashV2)` as well.
   */
  infoHash: Schema.Uint8ArrayFromSelf.pipe(Schema.fromBrand(InfoHash.InfoHashV1)),
  infoHashV2: Schema.optionalWith(Schema.Uint8ArrayFromSelf.pipe(Schema.fromBrand(InfoHash.InfoHashV2)), {
    exact: true
  }),
  /** The info dict's original bytes (a view into the decoded input). */
  rawInfo: Schema.Uint8ArrayFromSelf,
  pieceLength: Schema.Number.pipe(Schema.int(), Schema.positive()),
  pieceCount: Size,
  /** The concatenated 20-byte SHA-1 piece hashes (a view into the decoded input; empty for `v2`); see {@link pieceHash}. */
  pieces: Schema.Uint8ArrayFromSelf,
  totalLength: Size,
  isMultiFile: Schema.Boolean,
  files: Schema.Array(FileEntry),
  /** BEP 12 tiers in order; empty tiers are left out. Just `[[announce]]` when there is no announce-list. */
  trackers: Schema.Array(Schema.Array(Schema.String)),
  /** BEP 19 `url-list`. */
  webSeeds: Schema.Array(Schema.String),
  /** BEP 17 `httpseeds`. */
  httpSeeds: Schema.Array(Schema.String),
  private: Schema.Boolean,
  comment: Schema.optionalWith(Schema.String, { exact: true }),
  createdBy: Schema.optionalWith(Schema.String, { exact: true }),
  /** Seconds since the epoch. */
  creationDate: Schema.optionalWith(Schema.Number, { exact: true }),
  encoding: Schema.optionalWith(Schema.String, { exact: true })
})
export interface Metainfo extends Schema.Schema.Type<typeof Metainfo> {}

/** The SHA-1 of piece `index` (a view), or `undefined` outside `[0, pieceCount)` and for a v2-only torrent. */
export const pieceHash = (metainfo: Metainfo, index: number): Uint8Array | undefined =>
  Number.isInteger(index) && index >= 0 && index < metainfo.pieceCount && metainfo.pieces.length >= index * 20 + 20
    ? metainfo.pieces.subarray(index * 20, index * 20 + 20)
    : undefined

/** What the v2 half says a piece must hash to ({@link v2Piece}). */
export interface V2Piece {
  /** Index in `files` of the file holding the piece (v2 files are piece-aligned: a piece holds one file's data). */
  readonly fileIndex: number
  /** The piece's index within that file. */
  readonly filePiece: number
  /** Blocks (16 KiB leaves) of the whole file. */
  readonly fileBlocks: number
  /**
   * The hash `Merkle.pieceRoot(leaves of the piece, fileBlocks, pieceLength)` must equal: the piece layer's entry,
   * or the file's root for a file of one piece. `undefined` when the torrent lacks that file's piece layer.
   */
  readonly expected: Uint8Array | undefined
  /** Bytes of the file in this piece (the rest of the piece, if any, is pad). */
  readonly dataLength: number
  /**
   * Leaves the piece's subtree spans: `pieceLength / 16 KiB` for a file longer than a piece, else the file's blocks
   * rounded up to a power of two. `expected` is `Merkle.rootOf(leaves of the data, 0, width)`.
   */
  readonly width: number
}

/**
 * The v2 facts of piece `index` of a v2 or hybrid torrent: its file and the hash its leaves must reach. `undefined`
 * for a v1 torrent, an index out of range, or a piece holding no file data (cannot happen in a valid torrent).
 */
export const v2Piece = (metainfo: Metainfo, index: number): V2Piece | undefined => {
  if (metainfo.version === "v1" || !Number.isInteger(index) || index < 0 || index >= metainfo.pieceCount) return undefined
  const start = index * metainfo.pieceLength
  const files = metainfo.files
  let lo = 0
  let hi = files.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (files[mid]!.offset <= start) lo = mid
    else hi = mid - 1
  }
  // the file starting at or before `start` that holds data there (pads and empty files hold none)
  for (let i = lo; i >= 0; i--) {
    const f = files[i]!
    if (f.piecesRoot === undefined || f.length === 0) continue
    if (f.offset + f.length <= start) return undefined
    const filePiece = (start - f.offset) / metainfo.pieceLength
    const fileBlocks = Merkle.blockCount(f.length)
    const expected = f.length <= metainfo.pieceLength
      ? f.piecesRoot
      : f.pieceLayer?.subarray(filePiece * 32, filePiece * 32 + 32)
    const perPiece = metainfo.pieceLength / Merkle.BLOCK_SIZE
    return {
      fileIndex: i,
      filePiece,
      fileBlocks,
      expected,
      dataLength: Math.min(metainfo.pieceLength, f.length - filePiece * metainfo.pieceLength),
      width: fileBlocks > perPiece ? perPiece : Merkle.nextPowerOfTwo(fileBlocks)
    }
  }
  return undefined
}

/**
 * What verifying a piece needs, in the shape `storage/Storage.ts`'s options take: the SHA-1 hashes (empty for a
 * v2-only torrent) and, for v2 and hybrid torrents, each piece's Merkle root from {@link v2Piece} (a hybrid is then
 * verified on both hashes). `root` is `undefined` for a file whose piece layer the torrent lacks.
 */
export const pieceVerification = (metainfo: Metainfo): {
  readonly pieceHashes: Uint8Array
  readonly v2:
    | ((index: number) => { readonly root: Uint8Array | undefined; readonly dataLength: number; readonly width: number } | undefined)
    | undefined
} => ({
  pieceHashes: metainfo.pieces,
  v2: metainfo.version === "v1" ? undefined : (index) => {
    const p = v2Piece(metainfo, index)
    return p === undefined ? undefined : { root: p.expected, dataLength: p.dataLength, width: p.width }
  }
})

/** A BEP 52 `hash request`: which file (by its root) and which hashes (`Merkle.Range`). */
export interface HashRequest extends Merkle.Range {
  readonly piecesRoot: Uint8Array
}

/**
 * What answers BEP 52 `hash request`s from the torrent's own hashes: for a request about one of its files, the
 * hashes a `hashes` message carries (`Merkle.proof`: base hashes, then uncles), or `undefined` (answer with
 * `hash reject`): an unknown root, an invalid range, or hashes below the piece layer (leaves are not kept). Each
 * file's tree is built from its piece layer on first use and kept. `undefined` for a v1 torrent.
 */
export const hashServer = (metainfo: Metainfo): ((request: HashRequest) => Uint8Array | undefined) | undefined => {
  if (metainfo.version === "v1") return undefined
  const files = new Map<string, FileEntry>()
  for (const f of metainfo.files) if (f.piecesRoot !== undefined) files.set(Bytes.toHex(f.piecesRoot), f)
  const trees = new Map<string, Merkle.Tree>()
  const base = Merkle.pieceLayerIndex(metainfo.pieceLength)
  return (request) => {
    const key = Bytes.toHex(request.piecesRoot)
    const f = files.get(key)
    if (f === undefined) return undefined
    let tree = trees.get(key)
    if (tree === undefined) {
      const blocks = Merkle.blockCount(f.length)
      // a file of one piece: its tree above the leaves is just the root, nothing to serve
      if (f.pieceLayer === undefined || f.length <= metainfo.pieceLength) return undefined
      tree = Merkle.fromLayer(f.pieceLayer, base, blocks)
      trees.set(key, tree)
    }
    return Merkle.proof(tree, request)
  }
}

/** Files of a v2 or hybrid torrent longer than one piece, and how many of them come with their piece layer. */
export const pieceLayerStatus = (metainfo: Metainfo): { readonly needed: number; readonly present: number } => {
  let needed = 0
  let present = 0
  for (const f of metainfo.files) {
    if (f.piecesRoot === undefined || f.length <= metainfo.pieceLength) continue
    needed++
    if (f.pieceLayer !== undefined) present++
  }
  return { needed, present }
}

/** Length of piece `index` (the last one may be short), or `undefined` outside `[0, pieceCount)`. */
export const pieceLengthAt = (metainfo: Metainfo, index: number): number | undefined =>
  Number.isInteger(index) && index >= 0 && index < metainfo.pieceCount
    ? Math.min(metainfo.pieceLength, metainfo.totalLength - index * metainfo.pieceLength)
    : undefined

// ---------------------------------------------------------------------------------------------------------------
// Limits (libtorrent's)

/** Most pieces a torrent may have (libtorrent's default `max_pieces`). */
export const MAX_PIECES = 0x200000
const MAX_PIECE_LENGTH = 0x3fffffff // INT_MAX / 2
const MAX_TOTAL = 2 ** 48 - 1 // file_storage::max_file_size
const MAX_FILE_BLOCKS = 0x3fffffff // file size / 16 KiB must stay below INT_MAX / 2
const BLOCK = 16384

// ---------------------------------------------------------------------------------------------------------------
// Decoding

class Fail {
  readonly error: MetainfoError
  constructor(error: MetainfoError) {
    this.error = error
  }
}

interface Extra {
  readonly cause?: BencodeError
  readonly infoHashV2?: InfoHash.InfoHashV2 | undefined
  readonly name?: string
}

const fail = (reason: Reason, field: string | undefined, detail: string, extra?: Extra): never => {
  throw new Fail(new MetainfoError({ reason, field, detail, ...extra }))
}

const str = (d: Bencode.BDict, key: string): Uint8Array | undefined => {
  const v = d.get(key)
  return Bencode.isBytes(v) ? v : undefined
}
const int = (d: Bencode.BDict, key: string): number | bigint | undefined => {
  const v = d.get(key)
  return Bencode.isInt(v) ? v : undefined
}
const list = (d: Bencode.BDict, key: string): Bencode.BList | undefined => {
  const v = d.get(key)
  return Bencode.isList(v) ? v : undefined
}
const dict = (d: Bencode.BDict, key: string): Bencode.BDict | undefined => {
  const v = d.get(key)
  return Bencode.isDict(v) ? v : undefined
}

const text = new TextDecoder()

interface Flags {
  pad: boolean
  symlink: boolean
  executable: boolean
  hidden: boolean
}
const flagsOf = (d: Bencode.BDict): Flags => {
  const attr = str(d, "attr")
  const f = { pad: false, symlink: false, executable: false, hidden: false }
  if (attr !== undefined) {
    for (const c of attr) {
      if (c === 0x70) f.pad = true
      else if (c === 0x6c) f.symlink = true
      else if (c === 0x78) f.executable = true
      else if (c === 0x68) f.hidden = true
    }
  }
  return f
}

/** A file length as libtorrent checks it (symlinks are 0 whatever they say). */
const fileLength = (d: Bencode.BDict, flags: Flags, field: string): number => {
  if (flags.symlink) return 0
  const v = d.get("length")
  if (v === undefined) return fail("missing-field", `${field}.length`, "file length is missing")
  if (typeof v === "bigint") return fail("invalid-field", `${field}.length`, `file length ${v} is too large`)
  if (typeof v !== "number") return fail("invalid-field", `${field}.length`, "file length must be an integer")
  if (v < 0) return fail("invalid-field", `${field}.length`, `file length ${v} is negative`)
  if (Math.floor(v / BLOCK) >= MAX_FILE_BLOCKS) {
    return fail("invalid-field", `${field}.length`, `file length ${v} is too large`)
  }
  return v
}

const mtimeOf = (d: Bencode.BDict): number => {
  const v = int(d, "mtime")
  return typeof v === "number" ? v : 0
}

/** Sanitized symlink target (joined with "/"), or undefined if absent or empty once sanitized. */
const symlinkOf = (d: Bencode.BDict, flags: Flags, field: string): string | undefined => {
  if (!flags.symlink) return undefined
  const sp = list(d, "symlink path")
  if (sp === undefined) return undefined
  const parts: Array<string> = []
  sp.forEach((c, k) => {
    if (!Bencode.isBytes(c)) {
      return fail("invalid-field", `${field}.symlink path[${k}]`, "path components must be strings")
    }
    const s = sanitizeComponent(c)
    if (s !== undefined) parts.push(s)
  })
  return parts.length === 0 ? undefined : parts.join("/")
}

const sanitizeList = (components: ReadonlyArray<Uint8Array>): Array<string> => {
  const out: Array<string> = []
  for (const c of components) {
    const s = sanitizeComponent(c)
    if (s !== undefined) out.push(s)
  }
  return out
}

const BITCOMET_PAD = "_____padding_file_"

/** A list of byte strings, preferring the `.utf-8` variant when it is well-formed and valid UTF-8. */
const pathList = (
  d: Bencode.BDict,
  field: string
): { readonly parts: ReadonlyArray<Uint8Array>; readonly key: string } | undefined => {
  const u = list(d, "path.utf-8")
  if (u !== undefined && u.length > 0 && u.every((c) => Bencode.isBytes(c) && Bytes.decodeUtf8(c) !== undefined)) {
    return { parts: u as ReadonlyArray<Uint8Array>, key: "path.utf-8" }
  }
  const p = list(d, "path")
  if (p === undefined || p.length === 0) return undefined
  p.forEach((c, k) => {
    if (!Bencode.isBytes(c)) fail("invalid-field", `${field}.path[${k}]`, "path components must be strings")
  })
  return { parts: p as ReadonlyArray<Uint8Array>, key: "path" }
}

/** `name.utf-8` when it is a valid UTF-8 string, else `name`. */
const nameBytes = (info: Bencode.BDict): Uint8Array | undefined => {
  const u = str(info, "name.utf-8")
  if (u !== undefined && u.length > 0 && Bytes.decodeUtf8(u) !== undefined) return u
  return str(info, "name")
}

const v1Files = (info: Bencode.BDict, name: string): { entries: Array<Entry>; multi: boolean } | undefined => {
  const files = list(info, "files")
  if (files === undefined) {
    if (info.get("files") !== undefined) return fail("invalid-field", "info.files", "files must be a list")
    return undefined
  }
  const entries = files.map((f, i): Entry => {
    const field = `info.files[${i}]`
    if (!Bencode.isDict(f)) return fail("invalid-field", field, "a file entry must be a dictionary")
    const flags = flagsOf(f)
    const length = fileLength(f, flags, field)
    const p = pathList(f, field)
    let parts: Array<string>
    let rawPath: ReadonlyArray<string>
    if (p !== undefined) {
      parts = sanitizeList(p.parts)
      if (parts.length === 0) parts = ["_"]
      rawPath = p.parts.map((c) => text.decode(c))
    } else if (flags.pad) {
      parts = [".pad", String(length)]
      rawPath = []
    } else {
      return fail("missing-field", `${field}.path`, "file path is missing or empty")
    }
    const internal = parts.join("/")
    const pad = flags.pad || `${name}/${internal}`.includes(BITCOMET_PAD)
    const symlink = symlinkOf(f, flags, field)
    return {
      internal,
      rooted: true,
      length,
      pad,
      executable: flags.executable,
      hidden: flags.hidden,
      symlink,
      mtime: mtimeOf(f),
      rawPath,
      piecesRoot: undefined
    }
  })
  sanitizeSymlinks(entries)
  return { entries, multi: true }
}

const singleFile = (info: Bencode.BDict): Entry => {
  const flags = flagsOf(info)
  const length = fileLength(info, flags, "info")
  const raw = nameBytes(info)
  if (raw === undefined || raw.length === 0) return fail("missing-field", "info.name", "the torrent has no name")
  const name = sanitizeComponent(raw)
  if (name === undefined) return fail("invalid-field", "info.name", "the name is empty once made safe")
  return {
    internal: name,
    rooted: false,
    length,
    pad: flags.pad || name.includes(BITCOMET_PAD),
    executable: flags.executable,
    hidden: flags.hidden,
    symlink: symlinkOf(info, flags, "info"),
    mtime: mtimeOf(info),
    rawPath: [text.decode(raw)],
    piecesRoot: undefined
  }
}

// --- v2 (BEP 52) ---------------------------------------------------------------------------------------------------

interface V2File {
  readonly entry: Entry
  readonly offset: number
}

/** Walks a v2 `file tree` like libtorrent's `extract_files2`, inserting the alignment pads v2 implies. */
const v2Files = (
  tree: Bencode.BDict,
  name: string,
  hasV1Files: boolean,
  pieceLength: number,
  tailPad: boolean
): Array<V2File> => {
  const out: Array<V2File> = []
  let total = 0
  const bad = (field: string, detail: string): never => fail("invalid-v2", field, detail)
  const walk = (
    node: Bencode.BDict,
    dir: ReadonlyArray<string>,
    rooted: boolean,
    raw: ReadonlyArray<string>,
    depth: number,
    field: string
  ) => {
    if (depth > 100) bad(field, "file tree nested too deeply")
    for (const [key, value] of node) {
      const keyBytes = Bytes.fromBinaryString(key)
      if (!Bencode.isDict(value) || key.length === 0) {
        bad(field, "file tree entries must be non-empty names mapping to dictionaries")
      }
      const v = value as Bencode.BDict
      const leaf = v.size === 1 && v.has("")
      const single = leaf && !hasV1Files && node.size === 1 && depth === 0
      const s = sanitizeComponent(keyBytes)
      const parts = s === undefined ? [...dir] : [...dir, s]
      const rawParts = [...raw, text.decode(keyBytes)]
      const sub = `${field}[${JSON.stringify(text.decode(keyBytes))}]`
      if (!leaf) {
        walk(v, parts, rooted, rawParts, depth + 1, sub)
        continue
      }
      const f = v.get("")
      if (!Bencode.isDict(f)) return bad(sub, "a file entry must be a dictionary")
      const flags = flagsOf(f)
      if (flags.pad) bad(sub, "a v2 file may not have the pad attribute")
      const length = fileLength(f, flags, sub)
      const symlink = symlinkOf(f, flags, sub)
      let root: Uint8Array | undefined
      if (symlink === undefined) {
        // BEP 52: empty files have no pieces root
        root = str(f, "pieces root")
        if (length > 0 && (root === undefined || root.length !== 32)) {
          return bad(`${sub}.pieces root`, "missing or not 32 bytes")
        }
        if (root !== undefined && root.length !== 32) return bad(`${sub}.pieces root`, "not 32 bytes")
        if (length > 0 && root!.every((b) => b === 0)) bad(`${sub}.pieces root`, "all zeros")
        if (total % pieceLength !== 0) {
          const padSize = pieceLength - (total % pieceLength)
          out.push({ entry: padEntry(padSize), offset: total })
          total += padSize
        }
      }
      if (total + length > MAX_TOTAL) bad(`${sub}.length`, "the torrent is too large")
      const isRooted = single ? false : rooted
      out.push({
        entry: {
          // a file whose components all vanish once made safe is called `_`, as in a v1 list
          internal: parts.join("/") || (isRooted ? "_" : name),
          rooted: isRooted,
          length,
          pad: false,
          executable: flags.executable,
          hidden: flags.hidden,
          symlink,
          mtime: mtimeOf(f),
          rawPath: rawParts,
          piecesRoot: root
        },
        offset: total
      })
      total += length
    }
  }
  walk(tree, [], true, [], 0, "info.file tree")
  // libtorrent 2.0.8 also pads the end of a v2-only torrent to a whole piece (its last piece is then full length)
  if (tailPad && total % pieceLength !== 0) out.push({ entry: padEntry(pieceLength - (total % pieceLength)), offset: total })
  sanitizeSymlinks(out.map((f) => f.entry))
  return out
}

const padEntry = (size: number): Entry => ({
  internal: `.pad/${size}`,
  rooted: true,
  length: size,
  pad: true,
  executable: false,
  hidden: false,
  symlink: undefined,
  mtime: 0,
  rawPath: [],
  piecesRoot: undefined
})

/**
 * Why the v1 and v2 lists of a hybrid do not describe the same layout, or `undefined` when they do (libtorrent
 * refuses such a torrent: "the v1 and v2 file metadata does not match"). Pads and empty files are left out of the
 * comparison: libtorrent 2.0.8 accepts hybrids whose v1 list places empty files on the other side of a pad.
 */
const filesMismatch = (v1: ReadonlyArray<Entry>, v2: ReadonlyArray<V2File>, name: string): string | undefined => {
  const real: Array<{ readonly e: Entry; readonly offset: number }> = []
  let offset = 0
  for (const e of v1) {
    if (!e.pad && e.length > 0) real.push({ e, offset })
    offset += e.length
  }
  const other = v2.filter((f) => !f.entry.pad && f.entry.length > 0)
  const show = (e: Entry) => JSON.stringify(fullPath(e, name))
  for (let i = 0; i < Math.max(real.length, other.length); i++) {
    const a = real[i]
    const b = other[i]
    if (a === undefined) return `the v2 file tree has ${show(b!.entry)}, the v1 file list has no file there`
    if (b === undefined) return `the v1 file list has ${show(a.e)}, the v2 file tree has no file there`
    const differs = (what: string, x: unknown, y: unknown) =>
      `file ${show(a.e)}: ${what} ${String(x)} in the v1 list, ${String(y)} in the v2 tree`
    if (fullPath(a.e, name) !== fullPath(b.entry, name)) {
      return `the v1 file list has ${show(a.e)} where the v2 file tree has ${show(b.entry)}`
    }
    if (a.e.length !== b.entry.length) return differs("length", a.e.length, b.entry.length)
    if (a.offset !== b.offset) return differs("offset", a.offset, b.offset) + " (v2 files are piece-aligned)"
    if (a.e.executable !== b.entry.executable) return differs("executable", a.e.executable, b.entry.executable)
    if (a.e.hidden !== b.entry.hidden) return differs("hidden", a.e.hidden, b.entry.hidden)
    if (a.e.mtime !== b.entry.mtime) return differs("mtime", a.e.mtime, b.entry.mtime)
  }
  return undefined
}

/**
 * Checks `piece layers` (BEP 52): a dictionary of 32-byte roots to strings of 32-byte hashes; the entry of every
 * file longer than a piece must have one hash per piece and hash up to the file's root. Returns the checked layers
 * by root. Absent entries are tolerated, as by libtorrent 2.0.8 (peers can supply them); entries under no file's
 * root are ignored (libtorrent 2.0.8 too).
 */
const checkPieceLayers = (
  top: Bencode.BDict,
  files: ReadonlyArray<V2File>,
  pieceLength: number
): Map<string, Uint8Array> => {
  const checked = new Map<string, Uint8Array>()
  const layers = dict(top, "piece layers")
  if (layers === undefined) {
    if (top.has("piece layers")) fail("invalid-v2", "piece layers", "piece layers must be a dictionary")
    return checked
  }
  for (const [key, value] of layers) {
    if (key.length !== 32 || !Bencode.isBytes(value) || value.length % 32 !== 0) {
      const field = `piece layers[${Bytes.toHex(Bytes.fromBinaryString(key))}]`
      fail("invalid-v2", field, "a piece layer must be a string of 32-byte hashes under a 32-byte root")
    }
  }
  for (const { entry } of files) {
    if (entry.pad || entry.piecesRoot === undefined || entry.length <= pieceLength) continue
    const key = Bytes.toBinaryString(entry.piecesRoot)
    const layer = layers.get(key)
    if (!Bencode.isBytes(layer) || checked.has(key)) continue
    const why = Merkle.checkPieceLayer(layer, entry.piecesRoot, entry.length, pieceLength)
    if (why !== undefined) fail("invalid-v2", `piece layers[${Bytes.toHex(entry.piecesRoot)}]`, why)
    checked.set(key, layer)
  }
  return checked
}

// --- top level -------------------------------------------------------------------------------------------------

const URL_UNSAFE = /[\x00-\x20\x7f-\uffff"<>\\^`{|}]/

/** libtorrent's `maybe_url_encode`: percent-encode the path of a URL that has unsafe characters in it. */
const maybeUrlEncode = (url: string): string => {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*)(\/.*)?$/.exec(url)
  if (m === null || m[2] === undefined || !URL_UNSAFE.test(m[2])) return url
  let path = ""
  for (const b of Bytes.encodeUtf8(m[2])) {
    const c = String.fromCharCode(b)
    const escape = b <= 0x20 || b >= 0x7f || "\"<>\\^`{|}%".includes(c)
    path += escape ? `%${b.toString(16).toUpperCase().padStart(2, "0")}` : c
  }
  return m[1] + path
}

const ltrim = (s: string): string => s.replace(/^[ \t\n\r\f\v]+/, "")

const trackersOf = (top: Bencode.BDict): Array<Array<string>> => {
  const tiers: Array<Array<string>> = []
  const al = list(top, "announce-list")
  if (al !== undefined) {
    for (const tier of al) {
      if (!Bencode.isList(tier)) continue
      const urls: Array<string> = []
      for (const u of tier) {
        const url = Bencode.isBytes(u) ? ltrim(text.decode(u)) : ""
        if (url !== "") urls.push(url)
      }
      if (urls.length > 0) tiers.push(urls)
    }
  }
  if (tiers.length === 0) {
    const a = str(top, "announce")
    const url = a === undefined ? "" : ltrim(text.decode(a))
    if (url !== "") tiers.push([url])
  }
  return tiers
}

const seedsOf = (top: Bencode.BDict, key: string, slash: boolean): Array<string> => {
  const v = top.get(key)
  const raw = Bencode.isBytes(v) ? (v.length > 0 ? [v] : []) : Bencode.isList(v) ? v.filter(Bencode.isBytes) : []
  const out: Array<string> = []
  for (const b of raw) {
    if (b.length === 0) continue
    let url = maybeUrlEncode(text.decode(b))
    if (slash && !url.endsWith("/")) url += "/"
    if (!out.includes(url)) out.push(url)
  }
  return out
}

const optionalText = (top: Bencode.BDict, key: string): string | undefined => {
  const u = str(top, `${key}.utf-8`)
  const v = u !== undefined && u.length > 0 ? u : str(top, key)
  return v === undefined || v.length === 0 ? undefined : lossyUtf8(v)
}

/** Runs {@link body}, adding the v2 info-hash (once known) to any failure, so `info` can show it for v2 torrents. */
const run = (input: Uint8Array, options: DecodeOptions): Metainfo => {
  const known: { infoHashV2?: InfoHash.InfoHashV2 } = {}
  try {
    return body(input, known, options)
  } catch (e) {
    if (e instanceof Fail && e.error.infoHashV2 === undefined && known.infoHashV2 !== undefined) {
      const { cause, detail, field, name, reason } = e.error
      throw new Fail(new MetainfoError({ reason, field, detail, cause, name, infoHashV2: known.infoHashV2 }))
    }
    throw e
  }
}

const body = (input: Uint8Array, known: { infoHashV2?: InfoHash.InfoHashV2 }, options: DecodeOptions): Metainfo => {
  // bytes after the top-level dict are ignored, as libtorrent does (real torrents end with a stray newline)
  const decoded = Bencode.decodePrefix(input, { mode: "lenient" })
  if (Either.isLeft(decoded)) {
    return fail("not-bencode", undefined, decoded.left.message, { cause: decoded.left })
  }
  const top = decoded.right.value
  if (!Bencode.isDict(top)) return fail("not-a-dictionary", undefined, "a torrent file must be a bencoded dictionary")
  const info = dict(top, "info")
  if (info === undefined) return fail("missing-info", "info", "no info dictionary (not a torrent file, or a magnet)")
  const rawInfo = Bencode.rawOf(input, info)!
  const infoHash = InfoHash.v1Of(rawInfo)

  const metaVersion = int(info, "meta version")
  const version = typeof metaVersion === "number" ? metaVersion : typeof metaVersion === "bigint" ? 3 : -1
  if (version > 2) return fail("unsupported-version", "info.meta version", `meta version ${String(metaVersion)}`)
  const isV2 = version === 2
  const infoHashV2 = isV2 ? InfoHash.v2Of(rawInfo) : undefined
  if (infoHashV2 !== undefined) known.infoHashV2 = infoHashV2
  if (version > 0 && Either.isLeft(Bencode.decode(rawInfo, { mode: "strict" }))) {
    fail("invalid-v2", "info", "a v2 info dictionary must be canonical bencode (sorted, unique keys)", { infoHashV2 })
  }

  const pl = int(info, "piece length")
  if (pl === undefined) return fail("missing-field", "info.piece length", "the piece length is missing")
  if (typeof pl === "bigint" || pl <= 0 || pl > MAX_PIECE_LENGTH) {
    return fail("invalid-field", "info.piece length", `piece length ${pl} is not in [1, ${MAX_PIECE_LENGTH}]`)
  }
  if (isV2 && (pl < BLOCK || (pl & (pl - 1)) !== 0)) {
    return fail("invalid-field", "info.piece length", `a v2 piece length must be a power of two >= 16 KiB, not ${pl}`)
  }

  const nameRaw = nameBytes(info)
  if (nameRaw === undefined) return fail("missing-field", "info.name", "the torrent has no name")
  const name = sanitizeComponent(nameRaw) ?? InfoHash.toHex(infoHash)

  // v1 file list (also the v1 side of a hybrid)
  const tree = dict(info, "file tree")
  if (!isV2 && tree !== undefined) {
    return fail("invalid-field", "info.meta version", "a file tree needs meta version 2")
  }
  if (isV2 && tree === undefined) return fail("invalid-v2", "info.file tree", "missing file tree", { infoHashV2 })
  let entries: Array<Entry> | undefined
  let multi = false
  const multiFiles = v1Files(info, name)
  if (multiFiles !== undefined) {
    entries = multiFiles.entries
    multi = true
  } else if (!isV2 || info.has("length")) {
    entries = [singleFile(info)]
  }
  const v2 = tree !== undefined ? v2Files(tree, name, multiFiles !== undefined, pl, entries === undefined) : undefined
  if (entries === undefined && v2 !== undefined) {
    // v2-only: the tree is the file list (with its alignment pads)
    entries = v2.map((f) => f.entry)
    multi = !(v2.filter((f) => !f.entry.pad).length === 1 && v2.every((f) => f.entry.pad || !f.entry.rooted))
  }

  const files = entries ?? []
  if (files.length === 0) return fail("invalid-field", "info.files", "the torrent has no files")
  const mismatch = multiFiles !== undefined || info.has("length")
    ? v2 === undefined ? undefined : filesMismatch(files, v2, name)
    : undefined
  if (mismatch !== undefined) {
    return fail("invalid-v2", "info.file tree", `the v1 and v2 file lists do not match: ${mismatch}`, { infoHashV2 })
  }

  let total = 0
  files.forEach((f, i) => {
    total += f.length
    if (total > MAX_TOTAL) {
      fail("invalid-field", multi ? `info.files[${i}].length` : "info.length", "the torrent is too large")
    }
  })
  const pieceCount = Math.ceil(total / pl)
  if (pieceCount > MAX_PIECES) {
    return fail("too-many-pieces", "info.pieces", `${pieceCount} pieces, more than the limit of ${MAX_PIECES}`)
  }
  const isV2Only = v2 !== undefined && multiFiles === undefined && !info.has("length")
  const pieces = str(info, "pieces")
  if (pieces === undefined && !isV2Only) {
    return fail("missing-field", "info.pieces", "the piece hashes are missing")
  }
  if (pieces !== undefined) {
    if (pieces.length % 20 !== 0) {
      return fail("invalid-field", "info.pieces", `${pieces.length} bytes is not a multiple of 20`)
    }
    if (pieces.length !== pieceCount * 20) {
      return fail(
        "invalid-field",
        "info.pieces",
        `${pieces.length / 20} piece hashes, but ${total} bytes in pieces of ${pl} make ${pieceCount}`
      )
    }
  }
  if (total === 0) return fail("invalid-field", multi ? "info.files" : "info.length", "the torrent holds no data")
  const layers = v2 !== undefined ? checkPieceLayers(top, v2, pl) : new Map<string, Uint8Array>()

  if (isV2Only && options.v2Only !== true) {
    return fail("v2-only", undefined, "v2-only torrents are not supported yet", { infoHashV2, name })
  }

  const paths = resolveDuplicates(files, name)
  // each data file's root: its own (v2-only), or its v2 twin's (a hybrid's lists hold the same data files in order)
  const roots = new Map<Entry, Uint8Array>()
  if (v2 !== undefined) {
    const twins = v2.filter((f) => !f.entry.pad && f.entry.length > 0)
    files.filter((e) => !e.pad && e.length > 0).forEach((e, i) => {
      const root = twins[i]?.entry.piecesRoot
      if (root !== undefined) roots.set(e, root)
    })
  }
  let offset = 0
  const out = files.map((e, i): FileEntry => {
    const path = paths[i]!.split("/")
    const target = e.symlink?.split("/")
    const symlink = target === undefined ? undefined : e.rooted ? [name, ...target] : target
    const f: FileEntry = {
      path,
      rawPath: e.rooted && e.rawPath.length > 0 ? [text.decode(nameRaw), ...e.rawPath] : e.rawPath,
      length: e.length,
      offset,
      pad: e.pad,
      attributes: symlink === undefined
        ? { executable: e.executable, hidden: e.hidden }
        : { executable: e.executable, hidden: e.hidden, symlink },
      ...(e.mtime !== 0 ? { mtime: e.mtime } : {})
    }
    const root = roots.get(e)
    if (root !== undefined) {
      const layer = e.length > pl ? layers.get(Bytes.toBinaryString(root)) : undefined
      Object.assign(f, layer === undefined ? { piecesRoot: root } : { piecesRoot: root, pieceLayer: layer })
    }
    offset += e.length
    return f
  })

  const slash = multi && out.length > 1
  const creation = int(top, "creation date")
  const comment = optionalText(top, "comment")
  const createdBy = optionalText(top, "created by")
  const encoding = str(top, "encoding")
  const priv = int(info, "private")
  return {
    version: isV2Only ? "v2" : v2 !== undefined ? "hybrid" : "v1",
    name: multi ? name : paths[0]!,
    infoHash: isV2Only ? InfoHash.truncatedV2(infoHashV2!) : infoHash,
    ...(infoHashV2 !== undefined ? { infoHashV2 } : {}),
    rawInfo,
    pieceLength: pl,
    pieceCount,
    pieces: isV2Only ? new Uint8Array(0) : pieces!,
    totalLength: total,
    isMultiFile: multi,
    files: out,
    trackers: trackersOf(top),
    webSeeds: seedsOf(top, "url-list", slash),
    httpSeeds: seedsOf(top, "httpseeds", false),
    private: priv !== undefined && priv !== 0 && priv !== 0n,
    ...(comment !== undefined ? { comment } : {}),
    ...(createdBy !== undefined ? { createdBy } : {}),
    ...(typeof creation === "number" && creation >= 0 ? { creationDate: creation } : {}),
    ...(encoding !== undefined ? { encoding: lossyUtf8(encoding) } : {})
  }
}

export interface DecodeOptions {
  /**
   * Return a valid v2-only torrent as `version: "v2"` instead of failing with `reason: "v2-only"`. Off by default
   * until downloads can use one (docs/V2.md); `info` turns it on.
   */
  readonly v2Only?: boolean | undefined
}

/** Decodes a `.torrent` file. Never throws. */
export const decode = (bytes: Uint8Array, options: DecodeOptions = {}): Either.Either<Metainfo, MetainfoError> => {
  try {
    return Either.right(run(bytes, options))
  } catch (e) {
    if (e instanceof Fail) return Either.left(e.error)
    // a bug, not bad input; still never escape as a throw
    return Either.left(new MetainfoError({ reason: "invalid-field", detail: `internal error: ${String(e)}` }))
  }
}

/** {@link decode} as an Effect. */
export const decodeEffect = (bytes: Uint8Array, options: DecodeOptions = {}): Effect.Effect<Metainfo, MetainfoError> =>
  Effect.suspend(() => decode(bytes, options))
