/**
 * A v2 or hybrid torrent's BEP 52 hash traffic beyond its piece layers (LeafBlame.ts has the pure parts):
 *
 * - **leaf-level requests answered from our data**: a peer asking for hashes below the piece layer gets them when
 *   we have every piece the proof needs; those pieces are read from disk and their 16 KiB blocks hashed (off the
 *   byte path: one fiber per request, at most 8 per session — PeerSession), then the proof is built over them and
 *   the piece layer above;
 * - **asking for a failed piece's leaves** (per-block blame): the request goes to a connected peer that has the
 *   piece (those that sent none of its blocks first, three at most, all at once), and the first answer that checks
 *   out against the piece's trusted node is taken; a reject, a bad proof or no answer within `timeout` (10 s)
 *   from every one of them leaves the piece to fail as a whole.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Bitfield from "../core/Bitfield.ts"
import * as Bytes from "../core/Bytes.ts"
import * as Merkle from "../core/Merkle.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"
import type { HashAnswer, PeerControl, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import type { StorageError } from "../storage/Storage.ts"
import * as LeafBlame from "./LeafBlame.ts"

export interface Options {
  readonly metainfo: Metainfo.Metainfo
  readonly readPiece: (index: number) => Effect.Effect<Uint8Array, StorageError>
  /** Our verified pieces. */
  readonly have: Bitfield.Bitfield
  /** The connected peers' controls. */
  readonly peers: () => ReadonlyMap<PeerKey, { readonly control: PeerControl }>
  /** Whether a peer announced a piece. */
  readonly hasPiece: (peer: PeerKey, index: number) => boolean
  /** How long a peer has to answer a leaf request (default 10 s). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Peers asked for one piece's leaves, at most (default 3). */
  readonly tries?: number | undefined
}

export interface HashExchange {
  /** For `TorrentHandle.v2HashesLater`. */
  readonly later: NonNullable<TorrentHandle["v2HashesLater"]>
  /** For `TorrentHandle.onHashes`. */
  readonly onHashes: NonNullable<TorrentHandle["onHashes"]>
  /**
   * The verified leaf hashes of piece `index` (one per block of file data), asked of peers (`suspects`, those that
   * sent its blocks, last); `undefined` when no peer gave a valid answer.
   */
  readonly askLeaves: (index: number, suspects: ReadonlyArray<PeerKey>) => Effect.Effect<Uint8Array | undefined>
  /** Whether a connected peer other than `exclude` has piece `index` to ask its leaves of. */
  readonly canAsk: (index: number, exclude: ReadonlyArray<PeerKey>) => boolean
}

const keyOf = (peer: PeerKey, r: Metainfo.HashRequest): string =>
  `${peer}|${Bytes.toHex(r.piecesRoot)}/${r.base}/${r.index}/${r.length}/${r.proofLayers}`

export const make = (options: Options): Effect.Effect<HashExchange, never, Scope.Scope> =>
  Effect.gen(function*() {
    const m = options.metainfo
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const waiters = new Map<string, (answer: HashAnswer) => void>()
    const timeout = options.timeout ?? Duration.seconds(10)
    const tries = options.tries ?? 3

    /** The leaf hashes of a verified piece's file data, from disk. */
    const leavesFromDisk = (index: number) =>
      Effect.map(options.readPiece(index), (data) => {
        const p = Metainfo.v2Piece(m, index)
        return p === undefined ? undefined : Merkle.leafHashes(data.subarray(0, p.dataLength))
      })

    const later: HashExchange["later"] = (request, answer) => {
      const need = LeafBlame.leafNeed(m, request)
      if (need === undefined || need.pieces.some((p) => !Bitfield.has(options.have, p))) return false
      run(
        Effect.forEach(need.pieces, (p) => Effect.map(leavesFromDisk(p), (l) => [p, l] as const)).pipe(
          Effect.map((pairs) => {
            const leaves = new Map(pairs)
            return LeafBlame.leafProof(m, request, (p) => leaves.get(p))
          }),
          Effect.catchAll(() => Effect.succeed(undefined)),
          Effect.tap((hashes) =>
            Effect.logDebug(
              `leaf hashes ${hashes === undefined ? "rejected" : "answered"}: base ${request.base}, ${request.index}..${
                request.index + request.length - 1
              }, ${request.proofLayers} proof layers`
            )
          ),
          Effect.flatMap((hashes) => Effect.sync(() => answer(hashes)))
        )
      )
      return true
    }

    const onHashes: HashExchange["onHashes"] = (peer, answer) => {
      const key = keyOf(peer, answer)
      const waiter = waiters.get(key)
      if (waiter === undefined) return
      waiters.delete(key)
      waiter(answer)
    }

    const askOne = (peer: PeerKey, control: PeerControl, request: Metainfo.HashRequest) =>
      Effect.async<HashAnswer>((resume) => {
        const key = keyOf(peer, request)
        waiters.set(key, (a) => resume(Effect.succeed(a)))
        control.requestHashes!(request)
        return Effect.sync(() => waiters.delete(key))
      }).pipe(Effect.timeoutOption(timeout))

    const askLeaves: HashExchange["askLeaves"] = (index, suspects) =>
      Effect.gen(function*() {
        const request = LeafBlame.leafRequest(m, index)
        if (request === undefined) return undefined
        const candidates = [...options.peers()]
          .filter(([peer, r]) => r.control.requestHashes !== undefined && options.hasPiece(peer, index))
          .sort(([a], [b]) => Number(suspects.includes(a)) - Number(suspects.includes(b)))
          .slice(0, tries)
        if (candidates.length === 0) return undefined
        // asked of all at once (a liar cannot forge a proof, and one that stays silent costs no time): the first
        // answer that verifies wins
        const one = (peer: PeerKey, control: PeerControl) =>
          Effect.flatMap(askOne(peer, control, request), (answer) => {
            const leaves = Option.isSome(answer) && answer.value._tag === "Hashes"
              ? LeafBlame.verifiedLeaves(m, index, request, answer.value.hashes)
              : undefined
            if (leaves !== undefined) return Effect.succeed(leaves)
            const why = Option.isNone(answer)
              ? "no answer"
              : answer.value._tag === "HashReject"
              ? "rejected"
              : "a proof that does not verify"
            return Effect.zipRight(
              Effect.logDebug(`leaf hashes of piece ${index} from ${peer}: ${why}`),
              Effect.fail(why)
            )
          })
        return yield* Effect.raceAll(candidates.map(([peer, r]) => one(peer, r.control))).pipe(
          Effect.orElseSucceed(() => undefined)
        )
      })

    const canAsk: HashExchange["canAsk"] = (index, exclude) => {
      for (const [peer, r] of options.peers()) {
        if (!exclude.includes(peer) && r.control.requestHashes !== undefined && options.hasPiece(peer, index)) return true
      }
      return false
    }

    return { later, onHashes, askLeaves, canAsk }
  })
