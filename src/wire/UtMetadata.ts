/**
 * BEP 9 `ut_metadata`: fetching the info dict from peers (magnet links), and serving it.
 *
 * Messages are a bencoded dict `{msg_type, piece[, total_size]}`; a data message (msg_type 1) is followed by the
 * piece's raw bytes. The metadata is cut in 16 KiB pieces, the last one shorter. `decode` checks that the piece
 * index lies inside `total_size` and that a data piece has exactly its length; the assembler also checks that
 * `total_size` matches the size it is fetching.
 *
 * The {@link Assembler} is pure (times are passed in, no I/O): sessions ask `nextRequest` for each peer that
 * announced `ut_metadata` and a `metadata_size`, feed it data, rejects and departures, and get `Done(info)` once the
 * SHA-1 of the assembled bytes equals the info-hash (the SHA-256 for a `btmh` magnet, both for a hybrid with both). On a mismatch every piece is discarded and the attempt's
 * contributors are reported. The first attempt spreads pieces over all peers; after a failure, each attempt takes
 * all its pieces from one peer, so the next failure names exactly one liar, who is banned (never asked again and
 * reported for the session to drop). Honest peers are therefore never banned, and with one honest peer present the
 * fetch ends `Done`.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Bencode from "../bencode/Bencode.ts"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1, InfoHashV2 } from "../core/InfoHash.ts"
import { ExtensionError, maxMetadataSize, type Reason } from "./ExtensionHandshake.ts"

/** BEP 9 piece size. */
export const pieceLength = 16 * 1024

const MsgType = { Request: 0, Data: 1, Reject: 2 } as const

export type Message = Data.TaggedEnum<{
  Request: { readonly piece: number }
  /** `bytes` of a decoded message is an owned copy. */
  Data: { readonly piece: number; readonly totalSize: number; readonly bytes: Uint8Array }
  Reject: { readonly piece: number }
}>

const M = Data.taggedEnum<Message>()
export const Request = M.Request
export const Reject = M.Reject
const DataMessage = M.Data
export { DataMessage as Data }

/** Number of pieces of metadata of `size` bytes. */
export const pieceCountOf = (size: number): number => Math.ceil(size / pieceLength)

/** Length of piece `i` of metadata of `size` bytes (assumes `i` is in range). */
export const pieceLengthOf = (size: number, i: number): number => Math.min(pieceLength, size - i * pieceLength)

/** The message's payload (what follows the extended message id). */
export const encode = (m: Message): Uint8Array => {
  switch (m._tag) {
    case "Request":
      return Bencode.encode({ msg_type: MsgType.Request, piece: m.piece })
    case "Reject":
      return Bencode.encode({ msg_type: MsgType.Reject, piece: m.piece })
    case "Data":
      return Bytes.concat([
        Bencode.encode({ msg_type: MsgType.Data, piece: m.piece, total_size: m.totalSize }),
        m.bytes
      ])
  }
}

const fail = (reason: Reason, detail: string) => Either.left(new ExtensionError({ reason, detail }))

const maxPieces = pieceCountOf(maxMetadataSize)

/** Decodes a ut_metadata payload. Never throws. */
export const decode = (payload: Uint8Array): Either.Either<Message, ExtensionError> => {
  const decoded = Bencode.decodePrefix(payload)
  if (Either.isLeft(decoded)) return fail("bad-bencode", decoded.left.message)
  const { value: d, end } = decoded.right
  if (!Bencode.isDict(d)) return fail("not-a-dict", "ut_metadata message is not a dictionary")
  const type = d.get("msg_type")
  const piece = d.get("piece")
  if (typeof type !== "number") return fail("bad-message", "msg_type missing or not an integer")
  if (type !== MsgType.Request && type !== MsgType.Data && type !== MsgType.Reject) {
    return fail("unknown-message", `msg_type ${type}`)
  }
  if (typeof piece !== "number" || piece < 0 || piece >= maxPieces) {
    return fail("bad-piece", `piece ${String(piece)} not in 0..${maxPieces - 1}`)
  }
  if (type !== MsgType.Data) {
    if (end !== payload.length) return fail("trailing-bytes", `${payload.length - end} bytes after the message`)
    return Either.right(type === MsgType.Request ? Request({ piece }) : Reject({ piece }))
  }
  const total = d.get("total_size")
  if (typeof total !== "number" || total < 1 || total > maxMetadataSize) {
    return fail("bad-size", `total_size ${String(total)} not in 1..${maxMetadataSize}`)
  }
  if (piece >= pieceCountOf(total)) return fail("bad-piece", `piece ${piece} of ${pieceCountOf(total)}`)
  const want = pieceLengthOf(total, piece)
  if (payload.length - end !== want) {
    return fail("bad-piece", `piece ${piece} carries ${payload.length - end} bytes, expected ${want}`)
  }
  return Either.right(DataMessage({ piece, totalSize: total, bytes: payload.slice(end) }))
}

// ---------------------------------------------------------------------------------------------------------------
// Serving

/** How many pieces the info dict is served in. */
export const piecesOf = (info: Uint8Array): number => pieceCountOf(info.length)

/** The data message for piece `i` of the info dict, or `undefined` when `i` is out of range. */
export const servePiece = (info: Uint8Array, i: number): Message | undefined =>
  Number.isInteger(i) && i >= 0 && i < piecesOf(info)
    ? DataMessage({ piece: i, totalSize: info.length, bytes: info.subarray(i * pieceLength, (i + 1) * pieceLength) })
    : undefined

/** The answer to a request: the piece, or a reject when we lack the metadata or the piece does not exist. */
export const answer = (info: Uint8Array | undefined, piece: number): Message =>
  (info === undefined ? undefined : servePiece(info, piece)) ?? Reject({ piece })

// ---------------------------------------------------------------------------------------------------------------
// Assembler

/** A peer as the session names it (e.g. "ip:port"); any stable string. */
export type PeerKey = string

export interface Options {
  /** Requests outstanding at one peer at once. */
  readonly maxOutstandingPerPeer: number
  /** A request unanswered this long (ms) is given to another peer. */
  readonly requestTimeout: number
  /** After a reject, the peer is not asked for that piece again for this long (ms). */
  readonly rejectBackoff: number
}

export const defaultOptions: Options = { maxOutstandingPerPeer: 4, requestTimeout: 20_000, rejectBackoff: 30_000 }

interface InFlight {
  readonly peer: PeerKey
  readonly deadline: number
}

/**
 * The hashes the assembled info dict must have: its SHA-1 (`btih`) and/or its SHA-256 (`btmh`, BEP 52); a magnet
 * with both (a hybrid) needs both to match.
 */
export interface Expected {
  readonly v1?: InfoHashV1 | undefined
  readonly v2?: InfoHashV2 | undefined
}

/** Whether `info` has the expected hashes (at least one must be given). */
export const matches = (expected: Expected, info: Uint8Array): boolean =>
  (expected.v1 !== undefined || expected.v2 !== undefined) &&
  (expected.v1 === undefined || Bytes.equals(Bytes.sha1(info), expected.v1)) &&
  (expected.v2 === undefined || Bytes.equals(Bytes.sha256(info), expected.v2))

export interface Assembler {
  readonly expected: Expected
  readonly metadataSize: number
  readonly pieceCount: number
  readonly options: Options
  /** Received pieces (index → bytes) and who sent each. */
  readonly pieces: ReadonlyMap<number, { readonly bytes: Uint8Array; readonly peer: PeerKey }>
  readonly inFlight: ReadonlyMap<number, InFlight>
  /** peer → piece → time until which that peer is not asked for that piece. */
  readonly rejected: ReadonlyMap<PeerKey, ReadonlyMap<number, number>>
  /** Peers that sent metadata failing the hash check on their own: never asked again. */
  readonly banned: ReadonlySet<PeerKey>
  /** After a failed attempt: all pieces of an attempt come from `source`, the first peer asked. */
  readonly singleSource: boolean
  readonly source: PeerKey | undefined
  readonly failures: number
}

/** What a data message did. */
export type Outcome = Data.TaggedEnum<{
  /** Stored, or ignored (duplicate, unrequested in single-source mode); more pieces are needed. */
  Pending: {}
  /** All pieces in and the hashes match: the raw info dict. */
  Done: { readonly info: Uint8Array }
  /**
   * All pieces in but a hash does not match: every piece was discarded. `contributors` sent them; `liar` is
   * set when one peer sent all of them (it is banned: drop it).
   */
  Failed: { readonly contributors: ReadonlyArray<PeerKey>; readonly liar: PeerKey | undefined }
  /** The data does not fit the metadata (wrong total size, piece index or length): a protocol violation. */
  Invalid: { readonly detail: string }
}>

export const Outcome = Data.taggedEnum<Outcome>()

/**
 * Starts a fetch of `metadataSize` bytes (1..16 MiB) whose SHA-1 must be `infoHash` (a v1 info-hash), or whose
 * hashes must be those of `expected` (SHA-256 for a v2 info-hash).
 */
export const make = (
  infoHash: InfoHashV1 | Expected,
  metadataSize: number,
  options: Options = defaultOptions
): Either.Either<Assembler, ExtensionError> => {
  if (!Number.isInteger(metadataSize) || metadataSize < 1 || metadataSize > maxMetadataSize) {
    return fail("bad-size", `metadata size ${metadataSize} not in 1..${maxMetadataSize}`)
  }
  return Either.right({
    expected: infoHash instanceof Uint8Array ? { v1: infoHash } : infoHash,
    metadataSize,
    pieceCount: pieceCountOf(metadataSize),
    options,
    pieces: new Map(),
    inFlight: new Map(),
    rejected: new Map(),
    banned: new Set(),
    singleSource: false,
    source: undefined,
    failures: 0
  })
}

/** Bytes of metadata held: never more than `metadataSize`. */
export const heldBytes = (a: Assembler): number => {
  let n = 0
  for (const p of a.pieces.values()) n += p.bytes.length
  return n
}

const outstanding = (a: Assembler, peer: PeerKey): number => {
  let n = 0
  for (const f of a.inFlight.values()) if (f.peer === peer) n++
  return n
}

/** Single-source mode: the source is gone, so are its pieces and requests; the next peer asked takes over. */
const releaseSource = (a: Assembler): Assembler =>
  ({ ...a, source: undefined, pieces: new Map(), inFlight: new Map() })

/** Frees requests whose deadline has passed (`now` ≥ deadline); in single-source mode a late source is released. */
export const expire = (a: Assembler, now: number): Assembler => {
  let late = false
  for (const f of a.inFlight.values()) if (f.deadline <= now) late = true
  if (!late) return a
  if (a.singleSource) return releaseSource(a)
  return { ...a, inFlight: new Map([...a.inFlight].filter(([, f]) => f.deadline > now)) }
}

/**
 * The next piece to request from `peer` (and the new state), or `undefined` when it should not be asked now:
 * banned, at its outstanding limit, every missing piece in flight elsewhere or recently rejected by it, or (single
 * source) another peer is the source. Timed-out requests are freed first.
 */
export const nextRequest = (a0: Assembler, peer: PeerKey, now: number): readonly [Assembler, number | undefined] => {
  const a = expire(a0, now)
  if (a.banned.has(peer)) return [a, undefined]
  if (a.singleSource && a.source !== undefined && a.source !== peer) return [a, undefined]
  if (outstanding(a, peer) >= a.options.maxOutstandingPerPeer) return [a, undefined]
  const rejected = a.rejected.get(peer)
  for (let i = 0; i < a.pieceCount; i++) {
    if (a.pieces.has(i) || a.inFlight.has(i)) continue
    const until = rejected?.get(i)
    if (until !== undefined && now < until) continue
    const inFlight = new Map(a.inFlight).set(i, { peer, deadline: now + a.options.requestTimeout })
    return [{ ...a, inFlight, source: a.singleSource ? peer : a.source }, i]
  }
  return [a, undefined]
}

/**
 * The peer refused piece `piece`: it goes back to the pool, and this peer is not asked for it for a while. In
 * single-source mode the source gives up its attempt (its pieces are discarded) and the next peer asked takes over.
 */
export const onReject = (a: Assembler, peer: PeerKey, piece: number, now: number): Assembler => {
  const f = a.inFlight.get(piece)
  if (f === undefined || f.peer !== peer) return a
  const inFlight = new Map(a.inFlight)
  inFlight.delete(piece)
  const mine = new Map(a.rejected.get(peer)).set(piece, now + a.options.rejectBackoff)
  const next = { ...a, inFlight, rejected: new Map(a.rejected).set(peer, mine) }
  return a.singleSource ? releaseSource(next) : next
}

/** The peer disconnected: its requests go back to the pool (its pieces stay, except in single-source mode). */
export const peerLeft = (a: Assembler, peer: PeerKey): Assembler => {
  if (a.singleSource && a.source === peer) return releaseSource(a)
  const rejected = new Map(a.rejected)
  rejected.delete(peer)
  return { ...a, inFlight: new Map([...a.inFlight].filter(([, f]) => f.peer !== peer)), rejected }
}

/** A data message from `peer`. `totalSize` is the message's, checked against the size being fetched. */
export const onData = (
  a: Assembler,
  peer: PeerKey,
  piece: number,
  totalSize: number,
  bytes: Uint8Array
): readonly [Assembler, Outcome] => {
  if (totalSize !== a.metadataSize) {
    return [a, Outcome.Invalid({ detail: `total_size ${totalSize}, the metadata has ${a.metadataSize} bytes` })]
  }
  if (!Number.isInteger(piece) || piece < 0 || piece >= a.pieceCount) {
    return [a, Outcome.Invalid({ detail: `piece ${piece} of ${a.pieceCount}` })]
  }
  if (bytes.length !== pieceLengthOf(a.metadataSize, piece)) {
    return [a, Outcome.Invalid({ detail: `piece ${piece} of ${bytes.length} bytes` })]
  }
  const ignored = a.pieces.has(piece) || a.banned.has(peer) || (a.singleSource && a.source !== peer)
  if (ignored) return [a, Outcome.Pending()]
  const inFlight = new Map(a.inFlight)
  inFlight.delete(piece)
  const pieces = new Map(a.pieces).set(piece, { bytes: new Uint8Array(bytes), peer })
  if (pieces.size < a.pieceCount) return [{ ...a, pieces, inFlight }, Outcome.Pending()]
  const info = new Uint8Array(a.metadataSize)
  for (const [i, p] of pieces) info.set(p.bytes, i * pieceLength)
  const next: Assembler = { ...a, pieces: new Map(), inFlight: new Map(), source: undefined }
  if (matches(a.expected, info)) return [next, Outcome.Done({ info })]
  const contributors = [...new Set([...pieces.values()].map((p) => p.peer))].sort()
  const liar = contributors.length === 1 ? contributors[0] : undefined
  const banned = liar === undefined ? a.banned : new Set(a.banned).add(liar)
  return [
    { ...next, banned, singleSource: true, failures: a.failures + 1 },
    Outcome.Failed({ contributors, liar })
  ]
}

/** Whether the assembler is still useful for `peer` (not banned). */
export const isBanned = (a: Assembler, peer: PeerKey): boolean => a.banned.has(peer)

