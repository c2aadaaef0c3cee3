/**
 * Making a `.torrent` (BEP 3, 12, 19, 27; BEP 52 v2-only and v1/v2 hybrids with BEP 47 pads): the pure half of
 * `effect-torrent create`. The I/O half (walking the input, reading and hashing pieces) is `storage/Creator.ts`;
 * `docs/CREATE.md` records the decisions:
 *
 * - piece length: {@link autoPieceLength} picks what libtorrent 2.0's `create_torrent` picks (√size × 10, a power of
 *   two, 16 KiB – 16 MiB);
 * - files are sorted by their path bytes (`a/b` joined with `/`, compared bytewise, as mktorrent does), so the
 *   same tree always gives the same info-hash; empty files are kept (mktorrent and libtorrent keep them too);
 * - no pad files (BEP 47), no file attributes, no `md5sum`: the info dict is exactly `files`/`length`, `name`,
 *   `piece length`, `pieces` and `private` (only when set), which is what mktorrent writes for the same input;
 * - names are refused ({@link nameProblem}) when a reader would store them under another name: not UTF-8, or
 *   changed by libtorrent's sanitizer (`SafePath.sanitizeComponent`), or equal to another path but for ASCII case;
 * - v2 and hybrid (`format`): exactly what libtorrent 2.0.8's `create_torrent` writes with its default flags
 *   (`v2_only` for v2), so both give the same info-hashes for the same files (tested byte for byte): files in
 *   file-tree order ({@link sortFilesTree}), `file tree` entries of `length`, `pieces root` and `attr` `x` for an
 *   executable file (as libtorrent does; v1 torrents keep mktorrent's no-attributes), `meta version` 2, `piece
 *   layers` for files longer than a piece; a hybrid's v1 `files` list has a pad (`attr p`, path `.pad/<size>`)
 *   after every non-empty file that does not end on a piece boundary, the last one included, when there is more
 *   than one file ({@link alignedLayout}).
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bytes from "../core/Bytes.ts"
import * as InfoHash from "../core/InfoHash.ts"
import * as Merkle from "../core/Merkle.ts"
import * as Metainfo from "./Metainfo.ts"
import { sanitizeComponent, unsafeComponentReason } from "./SafePath.ts"

export type Reason =
  | "empty" // no files, or every file is empty (a torrent of zero bytes is invalid)
  | "not-found" // the input path does not exist
  | "read" // a file could not be read, or changed size while being read
  | "unsafe-name" // a name readers would change (see nameProblem)
  | "invalid-piece-length" // not a power of two in [MIN_PIECE_LENGTH, MAX_PIECE_LENGTH]
  | "too-many-pieces" // more than Metainfo.MAX_PIECES pieces: choose a larger piece length
  | "invalid-url" // a tracker or web seed that is not an absolute URL
  | "invalid-option" // anything else about the options (bad date, ...)

export class CreateError extends Data.TaggedError("CreateError")<{
  readonly reason: Reason
  /** The file or directory concerned; "" when none. */
  readonly path: string
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.path === "" ? this.detail : `${this.path}: ${this.detail}`
  }
}

const error = (reason: Reason, detail: string, path = ""): CreateError => new CreateError({ reason, path, detail })

// ---------------------------------------------------------------------------------------------------------------
// Piece length

export const MIN_PIECE_LENGTH = 16 * 1024
/** Largest piece length chosen automatically. */
export const MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024
/** Largest piece length accepted from `--piece-length` (libtorrent's create_torrent stops at 128 MiB too). */
export const MAX_PIECE_LENGTH = 128 * 1024 * 1024
/** Most pieces readers accept (libtorrent's default `max_pieces`). */
export const MAX_PIECES = Metainfo.MAX_PIECES

/**
 * The automatic piece length, as libtorrent 2.0.8's `create_torrent` chooses it (measured against it in
 * test/metainfo/Create.interop.test.ts): the smallest power of two of at least 16 KiB and at least 10 × √size,
 * capped at 16 MiB. So 22 MiB gets 64 KiB pieces (352), 1 GiB 512 KiB (2048), 4 GiB 1 MiB (4096): the count grows
 * as √size, fewer pieces than a fixed target for small torrents and not thousands of 16 MiB ones for large. Past
 * 32 TiB, whatever larger power of two (up to 128 MiB) keeps the count within readers' 2^21-piece limit.
 */
export const autoPieceLength = (totalSize: number): number => {
  let p = MIN_PIECE_LENGTH
  const target = 10 * Math.sqrt(totalSize)
  while (p < MAX_AUTO_PIECE_LENGTH && p < target) p *= 2
  // beyond 32 TiB, 16 MiB pieces would exceed what readers load: grow as far as needed
  while (p < MAX_PIECE_LENGTH && p * MAX_PIECES < totalSize) p *= 2
  return p
}

const isPowerOfTwo = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n

/**
 * Parses a `--piece-length` value: bytes (`262144`), with a binary suffix (`256K`, `256KiB`, `1M`, `1MiB`), or,
 * like mktorrent's `-l`, an exponent from 14 to 27 (`18` = 256 KiB). Must be a power of two in 16 KiB – 128 MiB.
 */
export const parsePieceLength = (text: string): Either.Either<number, CreateError> => {
  const what = `--piece-length ${JSON.stringify(text)}`
  const fail = (detail: string) => Either.left(error("invalid-piece-length", `${what}: ${detail}`))
  const m = /^\s*(\d+)\s*(k|kib|m|mib)?\s*$/i.exec(text)
  if (m === null) return fail("expected bytes (262144), 256K, 1M or an exponent (18)")
  const n = Number(m[1])
  const unit = (m[2] ?? "").toLowerCase()
  const bytes = unit.startsWith("k")
    ? n * 1024
    : unit.startsWith("m")
    ? n * 1024 * 1024
    : n >= 14 && n <= 27
    ? 2 ** n
    : n
  return validatePieceLength(bytes).pipe(Either.mapLeft((e) => error(e.reason, `${what}: ${e.detail}`)))
}

export const validatePieceLength = (bytes: number): Either.Either<number, CreateError> =>
  isPowerOfTwo(bytes) && bytes >= MIN_PIECE_LENGTH && bytes <= MAX_PIECE_LENGTH
    ? Either.right(bytes)
    : Either.left(error("invalid-piece-length", "must be a power of two from 16 KiB to 128 MiB"))

// ---------------------------------------------------------------------------------------------------------------
// Trackers and web seeds

const checkUrl = (url: string, what: string): Either.Either<string, CreateError> => {
  const bad = (detail: string) => Either.left(error("invalid-url", `${what} ${JSON.stringify(url)}: ${detail}`))
  if (url === "" || /\s/.test(url)) return bad("URLs may not be empty or contain spaces")
  if (!URL.canParse(url)) return bad("not an absolute URL")
  return Either.right(url)
}

/**
 * BEP 12 tiers from `--tracker` values, in order: each value is its own tier; a value holding several URLs
 * separated by commas is one tier of those URLs (mktorrent's `-a`). Empty items (`a,,b`, a trailing comma) are
 * ignored; a URL repeated anywhere is an error (readers would drop it silently).
 */
export const parseTrackers = (values: ReadonlyArray<string>): Either.Either<Array<Array<string>>, CreateError> => {
  const tiers: Array<Array<string>> = []
  const seen = new Set<string>()
  for (const v of values) {
    const tier: Array<string> = []
    for (const raw of v.split(",")) {
      const url = raw.trim()
      if (url === "") continue
      const ok = checkUrl(url, "--tracker")
      if (Either.isLeft(ok)) return Either.left(ok.left)
      if (seen.has(url)) {
        return Either.left(error("invalid-url", `--tracker ${JSON.stringify(url)} given twice`))
      }
      seen.add(url)
      tier.push(url)
    }
    if (tier.length > 0) tiers.push(tier)
  }
  return Either.right(tiers)
}

/** BEP 19 web seeds (`url-list`), in order, duplicates removed. */
export const parseWebSeeds = (values: ReadonlyArray<string>): Either.Either<Array<string>, CreateError> => {
  const out: Array<string> = []
  for (const v of values) {
    const url = v.trim()
    const ok = checkUrl(url, "--web-seed")
    if (Either.isLeft(ok)) return Either.left(ok.left)
    if (!out.includes(url)) out.push(url)
  }
  return Either.right(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Files and names

/** A file to put in the torrent: its path components below the torrent's directory (`[]` for a single file). */
export interface InputFile {
  readonly path: ReadonlyArray<string>
  readonly length: number
}

const utf8 = new TextEncoder()

/** Path bytes of `file` joined with `/`: the sort key (mktorrent's `strcmp` on the relative path). */
const sortKey = (file: InputFile): Uint8Array => utf8.encode(file.path.join("/"))

/** The files in torrent order: by path bytes. */
export const sortFiles = <F extends InputFile>(files: ReadonlyArray<F>): Array<F> =>
  files
    .map((f) => [sortKey(f), f] as const)
    .sort((a, b) => Bytes.compare(a[0], b[0]))
    .map(([, f]) => f)

const componentKeys = (file: InputFile): Array<Uint8Array> => file.path.map((c) => utf8.encode(c))

/**
 * The files in v2 file-tree order: compared component by component as bytes, a directory's files together
 * wherever the directory's name sorts (so `a/b` comes before `a.txt`, whose name sorts after `a`). This is the
 * order of a bencoded `file tree`, so a hybrid's v1 list must follow it too.
 */
export const sortFilesTree = <F extends InputFile>(files: ReadonlyArray<F>): Array<F> =>
  files
    .map((f) => [componentKeys(f), f] as const)
    .sort((a, b) => {
      const n = Math.min(a[0].length, b[0].length)
      for (let i = 0; i < n; i++) {
        const d = Bytes.compare(a[0][i]!, b[0][i]!)
        if (d !== 0) return d
      }
      return a[0].length - b[0].length
    })
    .map(([, f]) => f)

/** Which torrent `create` makes: v1 (BEP 3), v2-only (BEP 52) or both in one info dict (hybrid). */
export type Format = "v1" | "v2" | "hybrid"

/** A stretch of a v2 or hybrid torrent's piece-aligned data: a file (its index in tree order) or a pad of zeros. */
export type Slot =
  | { readonly _tag: "File"; readonly index: number; readonly offset: number; readonly length: number }
  | { readonly _tag: "Pad"; readonly offset: number; readonly length: number }

/**
 * The piece-aligned layout of `files` (already in tree order), as libtorrent 2.0.8's `create_torrent` lays out a v2
 * or hybrid torrent (`file_storage::canonicalize`): when there is more than one file, a pad after every non-empty
 * file that does not end on a piece boundary, the last file included; a single file is never padded. So every
 * non-empty file starts a piece. `total` counts the pads: it is what a hybrid's v1 pieces cover.
 */
export const alignedLayout = (
  files: ReadonlyArray<InputFile>,
  pieceLength: number
): { readonly slots: ReadonlyArray<Slot>; readonly total: number } => {
  const slots: Array<Slot> = []
  let offset = 0
  files.forEach((f, index) => {
    slots.push({ _tag: "File", index, offset, length: f.length })
    offset += f.length
    if (files.length > 1 && f.length > 0 && offset % pieceLength !== 0) {
      const length = pieceLength - (offset % pieceLength)
      slots.push({ _tag: "Pad", offset, length })
      offset += length
    }
  })
  return { slots, total: offset }
}

/**
 * Why readers would not store a file under `component` as is, or `undefined` when it is fine: it is not a plain
 * POSIX name (`.`, `..`, `/`, control characters), or libtorrent's sanitizer changes it (bidi controls, over 240
 * bytes, ...). Names Windows refuses (`CON`, `a:b`) are accepted: they are ordinary names elsewhere, and Windows
 * readers rename them (docs/CREATE.md).
 */
export const nameProblem = (component: string): string | undefined => {
  const why = unsafeComponentReason(component, "posix")
  if (why !== undefined) return why
  if (sanitizeComponent(utf8.encode(component)) !== component) return "readers would rename it (libtorrent's sanitizer)"
  return undefined
}

const lowerAscii = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase())

/**
 * Checks the name and every file path: see {@link nameProblem}, plus paths that differ only in ASCII case
 * (libtorrent renames the second one `x.1.ext`, and case-insensitive file systems cannot hold both).
 */
export const validateNames = (name: string, files: ReadonlyArray<InputFile>): Either.Either<void, CreateError> => {
  const unsafe = (path: string, detail: string) =>
    Either.left(new CreateError({ reason: "unsafe-name", path, detail }))
  const nameWhy = nameProblem(name)
  if (nameWhy !== undefined) return unsafe(name, `cannot be a torrent name: ${nameWhy}`)
  const seen = new Map<string, string>() // lower-case path -> path as given
  for (const f of files) {
    for (const c of f.path) {
      const why = nameProblem(c)
      if (why !== undefined) return unsafe([name, ...f.path].join("/"), `${JSON.stringify(c)}: ${why}`)
    }
    for (let i = 1; i <= f.path.length; i++) {
      const p = f.path.slice(0, i).join("/")
      const other = seen.get(lowerAscii(p))
      if (other !== undefined && other !== p) {
        const detail = `differs from ${JSON.stringify(other)} only in letter case; readers would rename it`
        return unsafe(`${name}/${p}`, detail)
      }
      seen.set(lowerAscii(p), p)
    }
  }
  return Either.right(undefined)
}

// ---------------------------------------------------------------------------------------------------------------
// Building

/** `created by` of every torrent we write. */
export const CREATED_BY = "effect-torrent 0.1.0"

/** A file with its BEP 52 hashes (what `Creator` computes), for v2 and hybrid torrents. */
export interface HashedFile extends InputFile {
  /** `Merkle.fileRoot` of the file: required for every non-empty file. */
  readonly piecesRoot?: Uint8Array | undefined
  /** `Merkle.pieceLayer` of the file: required for every file longer than a piece. */
  readonly pieceLayer?: Uint8Array | undefined
  /** Written as BEP 47 `attr` `x` (v2 and hybrid only, as libtorrent does). */
  readonly executable?: boolean | undefined
}

export interface Options {
  /** The torrent's name: the file name (single-file) or directory name (multi-file). */
  readonly name: string
  /** `true`: one file, `files[0]` with path `[]`. `false`: a directory of `files` (in any order; they are sorted). */
  readonly single: boolean
  /** With their `piecesRoot` and `pieceLayer` for `v2` and `hybrid`. */
  readonly files: ReadonlyArray<HashedFile>
  readonly pieceLength: number
  /** Default `v1`. */
  readonly format?: Format | undefined
  /**
   * The concatenated 20-byte SHA-1 of every piece, in order: of the files in {@link sortFiles} order for `v1`, of
   * the {@link alignedLayout} (pads as zeros) for `hybrid`; unused (pass an empty array) for `v2`.
   */
  readonly pieces: Uint8Array
  /** BEP 12 tiers (see {@link parseTrackers}). */
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>> | undefined
  readonly webSeeds?: ReadonlyArray<string> | undefined
  readonly private?: boolean | undefined
  readonly comment?: string | undefined
  /** Default {@link CREATED_BY}. */
  readonly createdBy?: string | undefined
  /** Seconds since the epoch; `undefined` leaves `creation date` out (reproducible output). */
  readonly creationDate?: number | undefined
}

export interface Created {
  /** The `.torrent` file's bytes. */
  readonly torrent: Uint8Array
  /** The 20-byte swarm id: the SHA-1 info-hash (v1, hybrid), the truncated SHA-256 one (v2). */
  readonly infoHash: InfoHash.InfoHashV1
  /** The SHA-256 info-hash (v2, hybrid). */
  readonly infoHashV2?: InfoHash.InfoHashV2 | undefined
  /** The torrent as every reader will see it (decoded back from `torrent`). */
  readonly metainfo: Metainfo.Metainfo
}

/** The detail of a `too-many-pieces` error. */
export const tooManyPieces = (count: number): string =>
  `${count} pieces is more than readers accept (${MAX_PIECES}); use a larger piece length`

export const totalSize = (files: ReadonlyArray<InputFile>): number => files.reduce((n, f) => n + f.length, 0)

/** Pieces needed for `total` bytes. */
export const pieceCount = (total: number, pieceLength: number): number => Math.ceil(total / pieceLength)

/** Pieces of a torrent of `files` in `format`: a v2 or hybrid torrent counts its alignment pads. */
export const pieceCountOf = (files: ReadonlyArray<InputFile>, pieceLength: number, format: Format): number =>
  pieceCount(format === "v1" ? totalSize(files) : alignedLayout(sortFilesTree(files), pieceLength).total, pieceLength)

const key = (component: string): string => Bytes.toBinaryString(utf8.encode(component))

/** The `file tree` of `files` (tree order): nested dicts of path components, `""` holding length and root. */
const fileTree = (name: string, single: boolean, files: ReadonlyArray<HashedFile>): Map<string, Bencode.Encodable> => {
  const tree = new Map<string, Bencode.Encodable>()
  for (const f of files) {
    const path = single ? [name] : f.path
    let node = tree
    for (const dir of path.slice(0, -1)) {
      let next = node.get(key(dir)) as Map<string, Bencode.Encodable> | undefined
      if (next === undefined) {
        next = new Map()
        node.set(key(dir), next)
      }
      node = next
    }
    const entry = {
      ...(f.executable === true ? { attr: "x" } : {}),
      length: f.length,
      ...(f.length > 0 ? { "pieces root": f.piecesRoot! } : {})
    }
    node.set(key(path[path.length - 1]!), new Map([["", entry]]))
  }
  return tree
}

/** A hybrid's v1 `files` list: the files in tree order with BEP 47 pads where {@link alignedLayout} puts them. */
const paddedList = (files: ReadonlyArray<HashedFile>, pieceLength: number): Array<Bencode.Encodable> =>
  alignedLayout(files, pieceLength).slots.map((s) =>
    s._tag === "Pad"
      ? { attr: "p", length: s.length, path: [".pad", String(s.length)] }
      : { ...(files[s.index]!.executable === true ? { attr: "x" } : {}), length: s.length, path: [...files[s.index]!.path] }
  )

/**
 * The info dict. v1: exactly what mktorrent writes for the same files, piece length and privacy. v2 and hybrid:
 * exactly what libtorrent 2.0.8 writes (module comment).
 */
export const infoDict = (options: Options): Bencode.Encodable => {
  const format = options.format ?? "v1"
  if (format !== "v1") {
    const files = sortFilesTree(options.files)
    return {
      "file tree": fileTree(options.name, options.single, files),
      "meta version": 2,
      name: options.name,
      "piece length": options.pieceLength,
      ...(options.private === true ? { private: 1 } : {}),
      ...(format === "hybrid"
        ? {
          pieces: options.pieces,
          ...(options.single
            ? { ...(files[0]?.executable === true ? { attr: "x" } : {}), length: files[0]?.length ?? 0 }
            : { files: paddedList(files, options.pieceLength) })
        }
        : {})
    }
  }
  const files = sortFiles(options.files)
  return {
    name: options.name,
    "piece length": options.pieceLength,
    pieces: options.pieces,
    ...(options.private === true ? { private: 1 } : {}),
    ...(options.single
      ? { length: files[0]?.length ?? 0 }
      : { files: files.map((f) => ({ length: f.length, path: [...f.path] })) })
  }
}

/**
 * The whole torrent: validates names, sizes and piece hashes, encodes canonically, and decodes the result back with
 * `Metainfo.decode` (what every reader does), so what is returned is known to load.
 */
export const build = (options: Options): Either.Either<Created, CreateError> => {
  const fail = (reason: Reason, detail: string) => Either.left(new CreateError({ reason, path: options.name, detail }))
  if (options.files.length === 0) return fail("empty", "no files")
  if (options.single && (options.files.length !== 1 || options.files[0]!.path.length !== 0)) {
    return fail("invalid-option", "a single-file torrent has exactly one file, with an empty path")
  }
  if (!options.single && options.files.some((f) => f.path.length === 0)) {
    return fail("invalid-option", "every file of a multi-file torrent needs a path")
  }
  const names = validateNames(options.name, options.files)
  if (Either.isLeft(names)) return Either.left(names.left)
  const pl = validatePieceLength(options.pieceLength)
  if (Either.isLeft(pl)) return Either.left(pl.left)
  const total = totalSize(options.files)
  if (total === 0) return fail("empty", "all files are empty: a torrent needs at least one byte")
  const format = options.format ?? "v1"
  const count = pieceCountOf(options.files, options.pieceLength, format)
  if (count > MAX_PIECES) {
    return fail("too-many-pieces", tooManyPieces(count))
  }
  if (format !== "v2" && options.pieces.length !== count * 20) {
    return fail("invalid-option", `expected ${count} piece hashes, got ${options.pieces.length / 20}`)
  }
  if (format === "hybrid" && !options.single && options.files.some((f) => f.path[0] === ".pad")) {
    return fail("unsafe-name", "a top-level \".pad\" would clash with the pad files of a hybrid torrent")
  }
  const layers = new Map<string, Uint8Array>()
  if (format !== "v1") {
    for (const f of options.files) {
      const what = [options.name, ...f.path].join("/")
      if (f.length === 0) continue
      if (f.piecesRoot === undefined || f.piecesRoot.length !== 32) {
        return fail("invalid-option", `${what}: a v2 file needs its 32-byte pieces root`)
      }
      if (f.length <= options.pieceLength) continue
      const why = f.pieceLayer === undefined
        ? "a v2 file longer than a piece needs its piece layer"
        : Merkle.checkPieceLayer(f.pieceLayer, f.piecesRoot, f.length, options.pieceLength)
      if (why !== undefined) return fail("invalid-option", `${what}: piece layer: ${why}`)
      layers.set(Bytes.toBinaryString(f.piecesRoot), f.pieceLayer!)
    }
  }
  const date = options.creationDate
  if (date !== undefined && !(Number.isSafeInteger(date) && date >= 0)) {
    return fail("invalid-option", `creation date must be whole seconds since 1970, got ${options.creationDate}`)
  }
  const tiers = (options.trackers ?? []).filter((t) => t.length > 0)
  const urls = tiers.flat()
  const webSeeds = options.webSeeds ?? []
  const torrent = Bencode.encode({
    info: infoDict(options),
    ...(urls.length > 0 ? { announce: urls[0]! } : {}),
    // announce-list only when it says more than `announce` (mktorrent does the same)
    ...(urls.length > 1 ? { "announce-list": tiers.map((t) => [...t]) } : {}),
    ...(webSeeds.length > 0 ? { "url-list": [...webSeeds] } : {}),
    ...(options.comment !== undefined && options.comment !== "" ? { comment: options.comment } : {}),
    "created by": options.createdBy ?? CREATED_BY,
    ...(options.creationDate !== undefined ? { "creation date": options.creationDate } : {}),
    ...(format !== "v1" ? { "piece layers": layers } : {})
  })
  const decoded = Metainfo.decode(torrent, { v2Only: true })
  if (Either.isLeft(decoded)) return fail("invalid-option", `the result does not load: ${decoded.left.message}`)
  const m = decoded.right
  return Either.right({
    torrent,
    infoHash: m.infoHash,
    ...(m.infoHashV2 !== undefined ? { infoHashV2: m.infoHashV2 } : {}),
    metainfo: m
  })
}
