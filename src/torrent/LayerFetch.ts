/**
 * Fetching the piece layers of a v2 or hybrid torrent from peers (BEP 52 `hash request` / `hashes` / `hash reject`),
 * for a torrent whose info dict came from a magnet link: `piece layers` live outside the info dict, so BEP 9 does
 * not carry them, and without them no piece of a file longer than a piece can be checked against its Merkle root.
 *
 * Pure (times are passed in, no I/O), like `wire/UtMetadata.ts`'s assembler. Each file's piece layer is asked in
 * libtorrent's shape (`hash_picker::pick_hashes`): 512 hashes at a time from index 0, the last request only as
 * many as are left, each with the uncle hashes up to the file's `pieces root` (`proofLayers` to the root), so every
 * answer is verified on its own against the root from the info dict before it is kept. A peer:
 * - answering with a proof that does not verify is *banned* (the caller drops it; its answers are never taken);
 * - rejecting a request, or leaving it unanswered for `requestTimeout`, is not asked for that range again for
 *   `retryAfter` (others are; libtorrent rejects until it has the layer itself);
 * - has at most `maxOutstandingPerPeer` requests in flight, and one range is in flight at one peer at a time.
 * A verified answer is kept whoever sent it (a late answer after a timeout included). When every range is in,
 * {@link layers} gives each file's layer, checked once more as a whole (`Merkle.checkPieceLayer`).
 */
import * as Data from "effect/Data"
import * as Bytes from "../core/Bytes.ts"
import * as Merkle from "../core/Merkle.ts"
import type { HashRequest } from "../metainfo/Metainfo.ts"

/** A peer as the session names it (e.g. "ip:port"). */
export type PeerKey = string

/** A file whose piece layer is wanted: longer than one piece, its root from the info dict. */
export interface File {
  readonly piecesRoot: Uint8Array
  readonly length: number
}

export interface Options {
  /** Requests in flight at one peer at once. */
  readonly maxOutstandingPerPeer: number
  /** A request unanswered this long (ms) may be asked of another peer. */
  readonly requestTimeout: number
  /** After a reject or a timeout, the peer is not asked for that range again for this long (ms). */
  readonly retryAfter: number
  /** Hashes per request (libtorrent's 512). */
  readonly chunk: number
}

export const defaultOptions: Options = { maxOutstandingPerPeer: 4, requestTimeout: 10_000, retryAfter: 5_000, chunk: 512 }

/** One request's range of one file's piece layer. */
export interface Job {
  readonly key: string
  readonly file: number
  readonly request: HashRequest
}

export interface State {
  readonly pieceLength: number
  readonly files: ReadonlyArray<File>
  readonly options: Options
  readonly jobs: ReadonlyArray<Job>
  /** Verified hashes of each finished job (its `length` base hashes). */
  readonly got: ReadonlyMap<string, Uint8Array>
  readonly inFlight: ReadonlyMap<string, { readonly peer: PeerKey; readonly deadline: number }>
  /** peer → job → time until which that peer is not asked for that job. */
  readonly refused: ReadonlyMap<PeerKey, ReadonlyMap<string, number>>
  /** Peers that sent a proof that does not verify. */
  readonly banned: ReadonlySet<PeerKey>
}

/** What an answer did. */
export type Outcome = Data.TaggedEnum<{
  /** Verified and kept. */
  Accepted: {}
  /** Not about a range still wanted (a duplicate, or never asked): ignored. */
  Ignored: {}
  /** A proof that does not verify against the file's root (or the wrong number of hashes): the peer is banned. */
  Bad: { readonly detail: string }
}>
export const Outcome = Data.taggedEnum<Outcome>()

const keyOf = (r: HashRequest): string => `${Bytes.toHex(r.piecesRoot)}/${r.base}/${r.index}/${r.length}/${r.proofLayers}`

/** The requests covering each file's piece layer (in file order, then by index). */
export const jobsOf = (files: ReadonlyArray<File>, pieceLength: number, chunk = defaultOptions.chunk): ReadonlyArray<Job> => {
  const base = Merkle.pieceLayerIndex(pieceLength)
  const jobs: Array<Job> = []
  files.forEach((f, file) => {
    const pieces = Merkle.pieceLayerCount(f.length, pieceLength)
    const blocks = Merkle.blockCount(f.length)
    for (let index = 0; index < pieces; index += chunk) {
      const request: HashRequest = {
        piecesRoot: f.piecesRoot,
        base,
        index,
        length: Math.min(chunk, pieces - index),
        proofLayers: Merkle.proofLayersToRoot(base, blocks)
      }
      jobs.push({ key: keyOf(request), file, request })
    }
  })
  return jobs
}

/** A fetch of the piece layers of `files` (files with the same root, i.e. the same content, are asked once). */
export const make = (files: ReadonlyArray<File>, pieceLength: number, options: Partial<Options> = {}): State => {
  const o = { ...defaultOptions, ...options }
  const unique = [...new Map(files.map((f) => [Bytes.toHex(f.piecesRoot), f])).values()]
  return {
    pieceLength,
    files: unique,
    options: o,
    jobs: jobsOf(unique, pieceLength, o.chunk),
    got: new Map(),
    inFlight: new Map(),
    refused: new Map(),
    banned: new Set()
  }
}

/** Every range is in. */
export const isDone = (s: State): boolean => s.got.size === s.jobs.length

/** Requests in flight at `peer`. */
export const outstanding = (s: State, peer: PeerKey): number => {
  let n = 0
  for (const f of s.inFlight.values()) if (f.peer === peer) n++
  return n
}

/**
 * Requests to send `peer` now (they count as in flight there until answered, rejected, timed out or the peer
 * leaves). None for a banned peer.
 */
export const nextRequests = (s: State, peer: PeerKey, now: number): readonly [State, ReadonlyArray<HashRequest>] => {
  if (s.banned.has(peer)) return [s, []]
  let room = s.options.maxOutstandingPerPeer - outstanding(s, peer)
  if (room <= 0) return [s, []]
  const refused = s.refused.get(peer)
  const picked: Array<Job> = []
  for (const job of s.jobs) {
    if (room === 0) break
    if (s.got.has(job.key) || s.inFlight.has(job.key)) continue
    if ((refused?.get(job.key) ?? -Infinity) > now) continue
    picked.push(job)
    room--
  }
  if (picked.length === 0) return [s, []]
  const inFlight = new Map(s.inFlight)
  for (const job of picked) inFlight.set(job.key, { peer, deadline: now + s.options.requestTimeout })
  return [{ ...s, inFlight }, picked.map((j) => j.request)]
}

const refuse = (s: State, peer: PeerKey, key: string, now: number): State => {
  const refused = new Map(s.refused)
  refused.set(peer, new Map(refused.get(peer) ?? []).set(key, now + s.options.retryAfter))
  return { ...s, refused }
}

const release = (s: State, key: string, peer: PeerKey): State => {
  if (s.inFlight.get(key)?.peer !== peer) return s
  const inFlight = new Map(s.inFlight)
  inFlight.delete(key)
  return { ...s, inFlight }
}

/** A `hash reject` from `peer`: the range goes back to be asked elsewhere; not this peer for `retryAfter`. */
export const onReject = (s: State, peer: PeerKey, request: HashRequest, now: number): State => {
  const key = keyOf(request)
  if (s.inFlight.get(key)?.peer !== peer) return s
  return refuse(release(s, key, peer), peer, key, now)
}

/** A `hashes` answer from `peer`, verified against the file's root before anything is kept. */
export const onHashes = (
  s: State,
  peer: PeerKey,
  request: HashRequest,
  hashes: Uint8Array
): readonly [State, Outcome] => {
  const key = keyOf(request)
  const job = s.jobs.find((j) => j.key === key)
  if (job === undefined || s.got.has(key) || s.banned.has(peer)) return [s, Outcome.Ignored()]
  const f = s.files[job.file]!
  if (!Merkle.verify(f.piecesRoot, Merkle.blockCount(f.length), job.request, hashes)) {
    const banned = new Set(s.banned).add(peer)
    const inFlight = new Map([...s.inFlight].filter(([, v]) => v.peer !== peer))
    const detail = `hashes ${request.index}..${request.index + request.length - 1} of the piece layer of ` +
      `${Bytes.toHex(f.piecesRoot).slice(0, 16)}… do not verify against its pieces root`
    return [{ ...s, banned, inFlight }, Outcome.Bad({ detail })]
  }
  const inFlight = new Map(s.inFlight)
  inFlight.delete(key)
  const got = new Map(s.got).set(key, hashes.slice(0, request.length * Merkle.HASH_LENGTH))
  return [{ ...s, inFlight, got }, Outcome.Accepted()]
}

/** Requests past their deadline go back to be asked elsewhere; returns the peers that let one time out. */
export const expire = (s: State, now: number): readonly [State, ReadonlyArray<PeerKey>] => {
  const late = [...s.inFlight].filter(([, f]) => f.deadline <= now)
  if (late.length === 0) return [s, []]
  let next = s
  for (const [key, f] of late) next = refuse(release(next, key, f.peer), f.peer, key, now)
  return [next, [...new Set(late.map(([, f]) => f.peer))]]
}

/** `peer` left: its requests go back. */
export const peerLeft = (s: State, peer: PeerKey): State => {
  if (![...s.inFlight.values()].some((f) => f.peer === peer)) return s
  return { ...s, inFlight: new Map([...s.inFlight].filter(([, f]) => f.peer !== peer)) }
}

/**
 * Each file's piece layer (by its root, hex) once {@link isDone}: the verified ranges concatenated, checked as a
 * whole against the root. `undefined` before.
 */
export const layers = (s: State): ReadonlyMap<string, Uint8Array> | undefined => {
  if (!isDone(s)) return undefined
  const out = new Map<string, Uint8Array>()
  s.files.forEach((f, file) => {
    const layer = Bytes.concat(s.jobs.filter((j) => j.file === file).map((j) => s.got.get(j.key)!))
    // every range verified against the root already: a failure here is a bug, not a peer's fault
    const why = Merkle.checkPieceLayer(layer, f.piecesRoot, f.length, s.pieceLength)
    if (why !== undefined) throw new Error(`piece layer of ${Bytes.toHex(f.piecesRoot)}: ${why}`)
    out.set(Bytes.toHex(f.piecesRoot), layer)
  })
  return out
}
