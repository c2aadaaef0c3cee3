/**
 * The metrics the daemon exports (`GET /metrics`, written by api/Prometheus.ts from the `effect/Metric` registry).
 *
 * Who updates what:
 * - sampled from the {@link Session} when the metrics are read ({@link makeSampler}): the rates, connected peers,
 *   torrents by state, and the payload byte counters (increased by the growth of `stats.downloaded`/`uploaded`
 *   since the last sample; nobody else increments them);
 * - counted where the thing happens (the session's implementation): {@link piecesVerified}, {@link piecesFailed},
 *   {@link errors} (tagged `reason`);
 * - {@link eventLoopLag}: a scoped fiber ({@link sampleEventLoopLag}) reads `perf_hooks.monitorEventLoopDelay`
 *   every second and records that second's worst delay.
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { SessionShape } from "./Session.ts"
import * as TorrentInfo from "./TorrentInfo.ts"

export const downloadedBytes = Metric.counter("effect_torrent_downloaded_bytes_total", {
  description: "Payload bytes received from peers since the client started",
  incremental: true
})
export const uploadedBytes = Metric.counter("effect_torrent_uploaded_bytes_total", {
  description: "Payload bytes sent to peers since the client started",
  incremental: true
})
export const downloadRate = Metric.gauge("effect_torrent_download_rate_bytes_per_second", {
  description: "Payload bytes per second received, all torrents, over the last few seconds"
})
export const uploadRate = Metric.gauge("effect_torrent_upload_rate_bytes_per_second", {
  description: "Payload bytes per second sent, all torrents, over the last few seconds"
})
export const peers = Metric.gauge("effect_torrent_peers", { description: "Connected peers, all torrents" })
/** Tagged `state` (one of TorrentInfo.State). */
export const torrents = Metric.gauge("effect_torrent_torrents", { description: "Torrents in the client, by state" })
export const piecesVerified = Metric.counter("effect_torrent_pieces_verified_total", {
  description: "Pieces that passed their hash check",
  incremental: true
})
export const piecesFailed = Metric.counter("effect_torrent_pieces_failed_total", {
  description: "Pieces that failed their hash check",
  incremental: true
})
/** Tag with `reason` (a TorrentError or SessionError reason): `Metric.increment(Metric.tagged(errors, "reason", r))`. */
export const errors = Metric.counter("effect_torrent_errors_total", {
  description: "Failures that stopped a torrent or an operation, by reason",
  incremental: true
})
export const eventLoopLag = Metric.histogram(
  "effect_torrent_event_loop_lag_seconds",
  MetricBoundaries.fromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]),
  "The event loop's worst delay in each second (perf_hooks.monitorEventLoopDelay)"
)

const states: ReadonlyArray<TorrentInfo.State> = TorrentInfo.State.literals

/**
 * Makes the registry list every metric above from the start (a metric appears in a snapshot once used), so that a
 * scrape shows zeros rather than nothing.
 */
export const register: Effect.Effect<void> = Effect.all([
  Metric.value(downloadedBytes),
  Metric.value(uploadedBytes),
  Metric.value(downloadRate),
  Metric.value(uploadRate),
  Metric.value(peers),
  Metric.value(piecesVerified),
  Metric.value(piecesFailed),
  Metric.value(eventLoopLag),
  ...states.map((s) => Metric.value(Metric.tagged(torrents, "state", s)))
], { discard: true })

/**
 * A sampler of the session's gauges and byte counters (see the module comment); each sampler remembers the totals
 * it last saw, so make one per session.
 */
export const makeSampler = (session: SessionShape): Effect.Effect<Effect.Effect<void>> =>
  Effect.sync(() => {
    let lastDownloaded = 0
    let lastUploaded = 0
    return Effect.gen(function*() {
      const [stats, list] = yield* Effect.all([session.stats, session.list])
      yield* Metric.set(downloadRate, stats.downloadRate)
      yield* Metric.set(uploadRate, stats.uploadRate)
      yield* Metric.set(peers, stats.peers)
      if (stats.downloaded > lastDownloaded) {
        yield* Metric.incrementBy(downloadedBytes, stats.downloaded - lastDownloaded)
        lastDownloaded = stats.downloaded
      }
      if (stats.uploaded > lastUploaded) {
        yield* Metric.incrementBy(uploadedBytes, stats.uploaded - lastUploaded)
        lastUploaded = stats.uploaded
      }
      const counts = new Map<TorrentInfo.State, number>(states.map((s) => [s, 0]))
      for (const t of list) counts.set(t.state, (counts.get(t.state) ?? 0) + 1)
      for (const [state, n] of counts) yield* Metric.set(Metric.tagged(torrents, "state", state), n)
    })
  })

/**
 * Records the event loop's worst delay of every `interval` (default 1 s) into {@link eventLoopLag}, for as long as
 * the scope lives; the monitor is disabled when it closes.
 */
export const sampleEventLoopLag = (
  options?: { readonly interval?: Duration.DurationInput | undefined; readonly resolutionMs?: number | undefined }
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const histogram = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const h = monitorEventLoopDelay({ resolution: options?.resolutionMs ?? 10 })
        h.enable()
        return h
      }),
      (h) => Effect.sync(() => h.disable())
    )
    const sample = Effect.suspend(() => {
      if (histogram.count === 0) return Effect.void
      const worst = histogram.max / 1e9
      histogram.reset()
      return Metric.update(eventLoopLag, worst)
    })
    yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(options?.interval ?? Duration.seconds(1))))
  })

/** {@link sampleEventLoopLag} as a layer. */
export const layerEventLoopLag = (
  options?: { readonly interval?: Duration.DurationInput | undefined }
): Layer.Layer<never> => Layer.scopedDiscard(sampleEventLoopLag(options))
