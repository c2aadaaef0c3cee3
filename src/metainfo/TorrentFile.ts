/**
 * A `.torrent` file around an info dict fetched from peers (BEP 9): the info dict's bytes are kept exactly as
 * received (its SHA-1 is the info-hash, so it is never re-encoded), with the magnet's trackers as `announce` /
 * `announce-list` (one tier each, as libtorrent does) and its web seeds as `url-list`; for a v2 or hybrid torrent,
 * the `piece layers` fetched from peers (BEP 52 hash requests, `torrent/LayerFetch.ts`), so the file is complete.
 */
import * as Either from "effect/Either"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bytes from "../core/Bytes.ts"
import * as Metainfo from "./Metainfo.ts"

export interface Extras {
  readonly trackers?: ReadonlyArray<string> | undefined
  readonly webSeeds?: ReadonlyArray<string> | undefined
  readonly createdBy?: string | undefined
  /** Seconds since the epoch. */
  readonly creationDate?: number | undefined
  /** BEP 52 `piece layers`: each file's piece layer by its `pieces root` (hex). */
  readonly pieceLayers?: ReadonlyMap<string, Uint8Array> | undefined
}

/** The bencoded torrent: keys sorted, the info dict spliced in verbatim. */
export const encode = (info: Uint8Array, extras: Extras = {}): Uint8Array => {
  const fields: Array<readonly [string, Uint8Array]> = [["info", info]]
  const trackers = extras.trackers ?? []
  if (trackers.length > 0) {
    fields.push(["announce", Bencode.encode(trackers[0]!)])
    if (trackers.length > 1) fields.push(["announce-list", Bencode.encode(trackers.map((t) => [t]))])
  }
  if ((extras.webSeeds ?? []).length > 0) fields.push(["url-list", Bencode.encode([...extras.webSeeds!])])
  if (extras.createdBy !== undefined) fields.push(["created by", Bencode.encode(extras.createdBy)])
  if (extras.creationDate !== undefined) fields.push(["creation date", Bencode.encode(extras.creationDate)])
  const layers = [...(extras.pieceLayers ?? [])]
  if (layers.length > 0) {
    const dict = new Map(layers.map(([root, layer]) => [Bytes.toBinaryString(Bytes.fromHex(root)!), layer]))
    fields.push(["piece layers", Bencode.encode(dict)])
  }
  // Bencode orders keys by their raw bytes; these keys are ASCII.
  fields.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const parts: Array<Uint8Array> = [Bytes.encodeUtf8("d")]
  for (const [k, v] of fields) parts.push(Bencode.encode(k), v)
  parts.push(Bytes.encodeUtf8("e"))
  return Bytes.concat(parts)
}

/**
 * The torrent's bytes and its decoded model (fails like any `.torrent`, e.g. for a v2-only info dict unless
 * `options.v2Only`).
 */
export const fromInfo = (
  info: Uint8Array,
  extras: Extras = {},
  options: Metainfo.DecodeOptions = {}
): Either.Either<{ readonly bytes: Uint8Array; readonly metainfo: Metainfo.Metainfo }, Metainfo.MetainfoError> => {
  const bytes = encode(info, extras)
  return Either.map(Metainfo.decode(bytes, options), (metainfo) => ({ bytes, metainfo }))
}
