/**
 * BEP 10 extension handshake (extended message id 0) and the per-connection extension id {@link Registry}.
 *
 * The handshake is a bencoded dict. `decode` is strict about the bencode (sorted keys, no trailing bytes) but
 * tolerant about content, as libtorrent is: unknown keys are ignored, and an optional key of the wrong type or out
 * of range is dropped rather than failing the whole handshake. Limits (exported below):
 * - `m`: at most 64 entries (more is an error: no real client announces that many), names of 1..64 bytes and ids
 *   0..255 (other entries are dropped). Id 0 means "disabled" (BEP 10), kept so a re-handshake can turn one off.
 * - `v`: valid UTF-8 of at most 256 bytes. `p`: 1..65535. `reqq`: positive, clamped to 65535.
 * - `yourip`: 4 or 16 bytes; `ipv4`: 4; `ipv6`: 16.
 * - `metadata_size` (BEP 9): 1..16 MiB. libtorrent's default `max_metadata_size` is 30 MiB (3 * 1024 * 10240);
 *   real info dicts of that size are pathological (100k+ pieces), and 16 MiB keeps a magnet fetch's memory small.
 * - `upload_only` (BEP 21): any integer, nonzero = true.
 *
 * The other extension codecs of wire/ (`UtMetadata`, `UtPex`, `UtHolepunch`) share {@link ExtensionError}.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bytes from "../core/Bytes.ts"

export type Reason =
  | "bad-bencode" // the payload (or its dict prefix) is not valid bencode
  | "not-a-dict" // the payload is bencode but not a dictionary
  | "too-many-extensions" // `m` lists more than maxExtensions entries
  | "bad-message" // a required key is missing or has the wrong type or range
  | "unknown-message" // a ut_metadata msg_type we do not know (BEP 9: ignore the message)
  | "bad-piece" // a metadata piece index outside the metadata, or a data piece of the wrong length
  | "bad-size" // a metadata size outside 1..maxMetadataSize
  | "trailing-bytes" // bytes after a message that carries none

export class ExtensionError extends Data.TaggedError("ExtensionError")<{
  readonly reason: Reason
  readonly detail: string
}> {
  override get message(): string {
    return `invalid extension message (${this.reason}): ${this.detail}`
  }
}

export const maxExtensions = 64
export const maxNameLength = 64
export const maxClientNameLength = 256
export const maxReqq = 65535
/** Largest info dict we fetch or accept as BEP 9 `metadata_size` (libtorrent allows 30 MiB by default). */
export const maxMetadataSize = 16 * 1024 * 1024

/** The extension names this project knows. */
export const UtMetadata = "ut_metadata"
export const UtPex = "ut_pex"
/** BEP 55 (wire/UtHolepunch.ts). */
export const UtHolepunch = "ut_holepunch"

export interface ExtensionHandshake {
  /** Extension name (binary string, as bencode keys decode) → the sender's id for it; 0 = disabled. */
  readonly m: ReadonlyMap<string, number>
  /** Client name and version, e.g. "effect-torrent 0.1.0". */
  readonly v?: string
  /** The sender's listening port. */
  readonly p?: number
  /** How many outstanding requests the sender queues. */
  readonly reqq?: number
  /** Our address as the sender sees it: 4 or 16 bytes. */
  readonly yourip?: Uint8Array
  readonly ipv4?: Uint8Array
  readonly ipv6?: Uint8Array
  /** BEP 9: size of the info dict in bytes. */
  readonly metadataSize?: number
  /** BEP 21: the sender only uploads (a seed or a partial seed). */
  readonly uploadOnly?: boolean
}

const fail = (reason: Reason, detail: string) => Either.left(new ExtensionError({ reason, detail }))

const isIdInt = (v: Bencode.BValue | undefined): v is number => typeof v === "number" && Number.isInteger(v)

/** The handshake's bencoded payload (canonical: sorted keys). Throws `RangeError` on ids outside 0..255. */
export const encode = (h: ExtensionHandshake): Uint8Array => {
  for (const [name, id] of h.m) {
    if (!Number.isInteger(id) || id < 0 || id > 255) throw new RangeError(`extension ${name}: id ${id} not in 0..255`)
  }
  return Bencode.encode({
    m: h.m,
    v: h.v,
    p: h.p,
    reqq: h.reqq,
    yourip: h.yourip,
    ipv4: h.ipv4,
    ipv6: h.ipv6,
    metadata_size: h.metadataSize,
    upload_only: h.uploadOnly === undefined ? undefined : h.uploadOnly ? 1 : 0
  })
}

export interface DecodeOptions {
  /** Accept unsorted or duplicate keys (first wins), as libtorrent does. Default strict. */
  readonly lenient?: boolean | undefined
}

const bytesOf = (v: Bencode.BValue | undefined, ...lengths: ReadonlyArray<number>): Uint8Array | undefined =>
  Bencode.isBytes(v) && lengths.includes(v.length) ? new Uint8Array(v) : undefined

/** Decodes a handshake payload. Never throws. */
export const decode = (
  payload: Uint8Array,
  options?: DecodeOptions
): Either.Either<ExtensionHandshake, ExtensionError> => {
  const decoded = Bencode.decode(payload, { mode: options?.lenient === true ? "lenient" : "strict" })
  if (Either.isLeft(decoded)) return fail("bad-bencode", decoded.left.message)
  const d = decoded.right
  if (!Bencode.isDict(d)) return fail("not-a-dict", "extension handshake is not a dictionary")
  const m = new Map<string, number>()
  const md = d.get("m")
  if (Bencode.isDict(md)) {
    if (md.size > maxExtensions) return fail("too-many-extensions", `${md.size} extensions, at most ${maxExtensions}`)
    for (const [name, id] of md) {
      if (name.length >= 1 && name.length <= maxNameLength && isIdInt(id) && id >= 0 && id <= 255) m.set(name, id)
    }
  }
  const out: { -readonly [K in keyof ExtensionHandshake]: ExtensionHandshake[K] } = { m }
  const v = d.get("v")
  if (Bencode.isBytes(v) && v.length <= maxClientNameLength) {
    const text = Bytes.decodeUtf8(v)
    if (text !== undefined) out.v = text
  }
  const p = d.get("p")
  if (isIdInt(p) && p >= 1 && p <= 65535) out.p = p
  const reqq = d.get("reqq")
  if (Bencode.isInt(reqq) && reqq > 0) out.reqq = reqq > maxReqq ? maxReqq : Number(reqq)
  const yourip = bytesOf(d.get("yourip"), 4, 16)
  if (yourip !== undefined) out.yourip = yourip
  const ipv4 = bytesOf(d.get("ipv4"), 4)
  if (ipv4 !== undefined) out.ipv4 = ipv4
  const ipv6 = bytesOf(d.get("ipv6"), 16)
  if (ipv6 !== undefined) out.ipv6 = ipv6
  const size = d.get("metadata_size")
  if (isIdInt(size) && size >= 1 && size <= maxMetadataSize) out.metadataSize = size
  const uploadOnly = d.get("upload_only")
  if (Bencode.isInt(uploadOnly)) out.uploadOnly = uploadOnly !== 0 && uploadOnly !== 0n
  return Either.right(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Registry: our ids (what peers must use to send to us) and the peer's ids (what we use to send to it).

export interface Registry {
  /** Extension name → our id (1..255). Received messages carry these. */
  readonly ours: ReadonlyMap<string, number>
  /** Extension name → the peer's id (never 0: disabled extensions are removed). We send with these. */
  readonly theirs: ReadonlyMap<string, number>
}

/** A registry for the given extension names, numbered 1, 2, … in order (at most 255, no duplicates). */
export const makeRegistry = (names: ReadonlyArray<string>): Registry => {
  if (names.length > 255 || new Set(names).size !== names.length) {
    throw new RangeError(`extension names must be unique and at most 255, got ${names.length}`)
  }
  return { ours: new Map(names.map((n, i) => [n, i + 1])), theirs: new Map() }
}

/** The registry this project uses: ut_metadata = 1, ut_pex = 2, ut_holepunch = 3. */
export const defaultRegistry = (): Registry => makeRegistry([UtMetadata, UtPex, UtHolepunch])

/** Our id for an extension (put it in our handshake's `m`). */
export const ourId = (r: Registry, name: string): number | undefined => r.ours.get(name)

/** The id to send an extension's messages with, or `undefined` when the peer has not enabled it. */
export const theirId = (r: Registry, name: string): number | undefined => r.theirs.get(name)

/** Which of our extensions a received extended message (id ≠ 0) belongs to, to dispatch it. */
export const nameOf = (r: Registry, id: number): string | undefined => {
  for (const [name, ours] of r.ours) if (ours === id) return name
  return undefined
}

/**
 * Applies a peer's (re-)handshake: names with an id set or change it, names with id 0 are disabled, names
 * absent keep their previous id (BEP 10: later handshakes may update single extensions). Only names we know are
 * tracked.
 */
export const withPeer = (r: Registry, h: ExtensionHandshake): Registry => {
  const theirs = new Map(r.theirs)
  for (const [name, id] of h.m) {
    if (!r.ours.has(name)) continue
    if (id === 0) theirs.delete(name)
    else theirs.set(name, id)
  }
  return { ours: r.ours, theirs }
}

/** Our handshake: `m` from the registry plus the given fields. */
export const ours = (r: Registry, fields: Omit<ExtensionHandshake, "m">): ExtensionHandshake => ({
  ...fields,
  m: r.ours
})
