/**
 * `--down-limit`: a token bucket charged for every block received; when it runs dry every session stops reading
 * (TCP flow control then slows the senders) until the debt is paid. Wraps a `TorrentHandle` so the torrent's own
 * backpressure (`pauseReading`/`resumeReading` for its hash/write backlog) still works: a session reads only when
 * neither the torrent nor the limit holds it.
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

/** A wrapper for `rate` bytes/s (0: the handle unchanged). */
export const make = (rate: number): Effect.Effect<(inner: TorrentHandle) => TorrentHandle, never, Scope.Scope> =>
  Effect.gen(function*() {
    if (rate <= 0) return (inner: TorrentHandle) => inner
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const bucket = RateLimit.make(rate, { now: now() })
    const peers = new Map<PeerKey, Peer>()
    let debt = 0
    let limited = false

    const apply = (p: Peer) => (p.held || limited ? p.control.pauseReading() : p.control.resumeReading())
    const settle = (): void => {
      debt -= RateLimit.tryTake(bucket, debt, now())
      if (debt > 0) {
        run(Effect.sleep(Duration.millis(Math.max(1, RateLimit.delayFor(bucket, debt, now())))).pipe(
          Effect.andThen(Effect.sync(settle))
        ))
        return
      }
      limited = false
      for (const p of peers.values()) apply(p)
    }

    return (inner: TorrentHandle): TorrentHandle => ({
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
        const short = length - RateLimit.tryTake(bucket, length, now())
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
  })
