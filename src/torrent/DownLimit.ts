/**
 * `--down-limit`: a token bucket charged for every block received; when it runs dry every session stops reading
 * (TCP flow control then slows the senders) until the debt is paid. Wraps a `TorrentHandle` so the torrent's own
 * backpressure (`pauseReading`/`resumeReading` for its hash/write backlog) still works: a session reads only when
 * neither the torrent nor the limit holds it.
 *
 * Two buckets may govern the torrent: its own (`rate`, changed at run time with `setRate`, at once: a lower rate
 * holds the next block, a higher or no limit settles the debt and resumes reading now) and one shared by every
 * torrent of a session (`shared`, whose rate the session changes; a wait for it is re-checked at least every
 * 250 ms, so a change there takes effect within that). A block is charged to both; a debt is paid when both have
 * the tokens. Without any limit, `onBlock` costs one call and two comparisons per block.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import type { PeerControl, PeerKey, TorrentHandle } from "../peer/TorrentHandle.ts"
import * as RateLimit from "./RateLimit.ts"

interface Peer {
  readonly control: PeerControl
  held: boolean
}

export interface DownLimit {
  readonly wrap: (inner: TorrentHandle) => TorrentHandle
  /** The torrent's own limit, bytes/s (0: none); takes effect at once. */
  readonly setRate: (rate: number) => void
  readonly rate: () => number
}

/** The longest a wait for tokens sleeps before looking again (a shared bucket's rate may change meanwhile). */
const RECHECK_MS = 250

/** A limiter for `rate` bytes/s (0: none for now) and the session's `shared` bucket, if any. */
export const makeAdjustable = (
  rate: number,
  shared?: RateLimit.Bucket | undefined
): Effect.Effect<DownLimit, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const own = RateLimit.makeAdjustable(rate, { now: now() })
    const buckets = shared === undefined ? [own] : [own, shared]
    const peers = new Map<PeerKey, Peer>()
    let debt = 0
    let limited = false
    let sleeping = false

    const apply = (p: Peer) => (p.held || limited ? p.control.pauseReading() : p.control.resumeReading())
    const wakeUp = (): void => {
      sleeping = false
      settle()
    }
    const settle = (): void => {
      debt -= RateLimit.tryTakeAll(buckets, debt, now())
      if (debt > 0) {
        if (sleeping) return
        sleeping = true
        const ms = Math.min(RECHECK_MS, Math.max(1, RateLimit.delayForAll(buckets, debt, now())))
        run(Effect.sleep(Duration.millis(ms)).pipe(Effect.andThen(Effect.sync(wakeUp))))
        return
      }
      limited = false
      for (const p of peers.values()) apply(p)
    }

    const wrap = (inner: TorrentHandle): TorrentHandle => ({
      ...inner,
      onConnected: (peer, info, control) => {
        const p: Peer = { control, held: false }
        peers.set(peer, p)
        const wrapped: PeerControl = {
          ...control,
          pauseReading: () => {
            p.held = true
            apply(p)
          },
          resumeReading: () => {
            p.held = false
            apply(p)
          }
        }
        if (limited) control.pauseReading()
        inner.onConnected(peer, info, wrapped)
      },
      onBlock: (peer, index, begin, length) => {
        const kept = inner.onBlock(peer, index, begin, length)
        if (own.rate === 0 && (shared === undefined || shared.rate === 0)) return kept
        const short = length - RateLimit.tryTakeAll(buckets, length, now())
        if (short > 0) {
          debt += short
          if (!limited) {
            limited = true
            for (const p of peers.values()) apply(p)
            settle()
          }
        }
        return kept
      },
      onClosed: (peer, error, outstanding) => {
        peers.delete(peer)
        inner.onClosed(peer, error, outstanding)
      }
    })

    return {
      wrap,
      setRate: (r) => {
        RateLimit.setRate(own, r, now())
        if (limited) settle()
      },
      rate: () => own.rate
    }
  })

/** A wrapper for `rate` bytes/s (0: the handle unchanged). */
export const make = (rate: number): Effect.Effect<(inner: TorrentHandle) => TorrentHandle, never, Scope.Scope> =>
  rate <= 0 ? Effect.succeed((inner: TorrentHandle) => inner) : Effect.map(makeAdjustable(rate), (d) => d.wrap)
