/**
 * A `Tracker` decorator that refuses, before any DNS lookup or packet, trackers whose host is not allowed. Used with
 * `EFFECT_TORRENT_LOOPBACK_ONLY` (tests, sandboxes) so a torrent's public trackers are never contacted.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Destination from "../net/Destination.ts"
import { Tracker } from "./Tracker.ts"
import { TrackerError } from "./TrackerError.ts"

const refuse = (url: string) =>
  new TrackerError({ reason: "network", url, detail: "not contacted: only loopback trackers are allowed (EFFECT_TORRENT_LOOPBACK_ONLY)" })

/** Wraps the Tracker in context so that only URLs whose host passes `allowed` are contacted. */
export const restrict = (allowed: (host: string) => boolean): Layer.Layer<Tracker, never, Tracker> =>
  Layer.effect(
    Tracker,
    Effect.map(Tracker, (inner) => {
      const ok = (url: string) => {
        const host = Destination.hostOf(url)
        return host !== undefined && allowed(host)
      }
      return Tracker.of({
        announce: (url, request) => (ok(url) ? inner.announce(url, request) : Effect.fail(refuse(url))),
        scrape: (url, hashes) => (ok(url) ? inner.scrape(url, hashes) : Effect.fail(refuse(url)))
      })
    })
  )

/** `layer` restricted to loopback when the environment asks for it, unchanged otherwise. */
export const fromEnvironment = (layer: Layer.Layer<Tracker>): Layer.Layer<Tracker> =>
  Destination.loopbackOnly() ? restrict(Destination.isLoopbackHost).pipe(Layer.provide(layer)) : layer
