/**
 * A torrent's announces as a `Stream` of peer batches (BEP 3 + BEP 12). Each pull announces to the first tracker
 * that answers (Tiers.ts decides the order), waiting first for that tracker's interval (never less than its
 * `min interval`); when a whole round fails it backs off with jittered exponential delays. The first announce to a
 * tracker says `started`, the first one after `left` reaches 0 says `completed`, and when the stream's scope closes
 * every tracker that heard `started` is sent `stopped`, bounded by `stopTimeout` so shutdown never hangs.
 *
 * The torrent's counters come in through `Stats`; this module knows nothing about torrents.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Tiers from "./Tiers.ts"
import { type AnnounceRequest, type AnnounceResponse, type Event, type Peer, Tracker } from "./Tracker.ts"
import { TrackerError } from "./TrackerError.ts"

/** Backoff after a round in which every tracker failed: 15 s, 30 s, 60 s… jittered, capped at 30 minutes. */
export const retryPolicy: Schedule.Schedule<unknown> = Schedule.exponential("15 seconds", 2).pipe(
  Schedule.jittered,
  Schedule.either(Schedule.spaced("30 minutes"))
)

/** The torrent's transfer counters, read at each announce. */
export interface Stats {
  readonly uploaded: Effect.Effect<number>
  readonly downloaded: Effect.Effect<number>
  readonly left: Effect.Effect<number>
}

export interface Options {
  readonly tiers: ReadonlyArray<ReadonlyArray<string>>
  readonly infoHash: Uint8Array
  readonly peerId: Uint8Array
  readonly port: number
  readonly stats: Stats
  readonly numwant?: number | undefined
  /** Defaults to a random 32-bit value, fixed for the stream's life. */
  readonly key?: number | undefined
  /** Our encryption, for HTTP trackers (`AnnounceRequest.crypto`). */
  readonly crypto?: AnnounceRequest["crypto"]
  /** Backoff between failed rounds (default `retryPolicy`). */
  readonly retry?: Schedule.Schedule<unknown> | undefined
  /** Deadline of one announce (default 30 s; UDP retransmissions alone could last an hour). */
  readonly announceTimeout?: Duration.DurationInput | undefined
  /** Floor for a tracker's interval, against trackers that ask for 0 (default 30 s). */
  readonly minimumInterval?: Duration.DurationInput | undefined
  /** Deadline for the `stopped` announces on close (default 5 s). */
  readonly stopTimeout?: Duration.DurationInput | undefined
  /**
   * Completes when the download finishes: the wait for the next announce is cut short once, so `completed` is
   * reported at once instead of an interval later (a client that keeps seeding may not close for hours).
   */
  readonly completed?: Effect.Effect<void> | undefined
  /**
   * Completes when the torrent has no peer left (run afresh for each wait): the next announce then comes
   * `starvingInterval` after the last one (or the tracker's `min interval` if longer) instead of a whole interval
   * later.
   */
  readonly starving?: Effect.Effect<void> | undefined
  /** Default 5 minutes (libtorrent's `min_announce_interval`). */
  readonly starvingInterval?: Duration.DurationInput | undefined
}

export interface PeerBatch {
  readonly url: string
  readonly tier: number
  readonly peers: ReadonlyArray<Peer>
  readonly interval: number
  readonly seeders?: number | undefined
  readonly leechers?: number | undefined
  readonly warning?: string | undefined
}

const delayOf = (r: AnnounceResponse, floor: Duration.Duration): Duration.Duration =>
  Duration.max(Duration.seconds(Math.max(r.interval, r.minInterval ?? 0)), floor)

/** The soonest a tracker is asked again early. */
const minDelayOf = (r: AnnounceResponse, floor: Duration.Duration): Duration.Duration =>
  Duration.max(Duration.seconds(r.minInterval ?? 0), floor)

export const stream = (options: Options): Stream.Stream<PeerBatch, never, Tracker> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const tracker = yield* Tracker
    // Effect's Random (deterministic under TestRandom) feeds the pure shuffle.
    const draws = yield* Effect.replicateEffect(Random.next, options.tiers.reduce((n, t) => n + t.length, 0))
    let drawn = 0
    let tiers = Tiers.make(Tiers.shuffle(options.tiers, () => draws[drawn++] ?? 0))
    const key = options.key ?? (yield* Random.nextIntBetween(0, 0x7fffffff))
    const timeout = Duration.decode(options.announceTimeout ?? Duration.seconds(30))
    const floor = Duration.decode(options.minimumInterval ?? Duration.seconds(30))
    const stopTimeout = options.stopTimeout ?? Duration.seconds(5)
    const starvingFloor = Duration.max(Duration.decode(options.starvingInterval ?? Duration.minutes(5)), floor)
    const retry = yield* Schedule.driver(options.retry ?? retryPolicy)

    const started = new Set<string>()
    const trackerIds = new Map<string, string>()
    let completedPending = false
    let lastLeft: number | undefined

    const request = (url: string, event: Event) =>
      Effect.gen(function*() {
        const left = yield* options.stats.left
        return {
          infoHash: options.infoHash,
          peerId: options.peerId,
          port: options.port,
          uploaded: yield* options.stats.uploaded,
          downloaded: yield* options.stats.downloaded,
          left,
          event,
          key,
          numwant: options.numwant,
          trackerId: trackerIds.get(url),
          crypto: options.crypto
        } satisfies AnnounceRequest
      })

    const announce = (url: string, event: Event) =>
      request(url, event).pipe(
        Effect.flatMap((req) =>
          tracker.announce(url, req).pipe(
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () =>
                new TrackerError({ reason: "timeout", url, detail: `no answer within ${Duration.format(timeout)}` })
            }),
            Effect.map((res) => ({ req, res }))
          )
        )
      )

    // On close: a download that finished since the last announce reports `completed` first (trackers count
    // completions only from that event), then `stopped`, to every tracker told `started`; bounded by stopTimeout.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const left = yield* options.stats.left
        const unreported = completedPending || (lastLeft !== undefined && lastLeft > 0 && left === 0)
        yield* Effect.forEach(
          started,
          (url) =>
            Effect.ignore(unreported ? announce(url, "completed") : Effect.void).pipe(
              Effect.zipRight(Effect.ignore(announce(url, "stopped")))
            ),
          { concurrency: "unbounded" }
        )
      }).pipe(
        // Finalizers run uninterruptibly: make the announces interruptible, or the timeout could not cut them off.
        Effect.interruptible,
        Effect.timeoutOption(stopTimeout),
        Effect.asVoid
      )
    )

    // One round: trackers in tier order until one answers; None when all failed.
    const round = Effect.gen(function*() {
      for (;;) {
        const entry = Tiers.current(tiers)
        if (entry === undefined) return Option.none()
        const left = yield* options.stats.left
        if (lastLeft !== undefined && lastLeft > 0 && left === 0) completedPending = true
        const event: Event = !started.has(entry.url) ? "started" : completedPending ? "completed" : "none"
        const result = yield* Effect.either(announce(entry.url, event))
        if (result._tag === "Right") {
          const { req, res } = result.right
          started.add(entry.url)
          if (res.trackerId !== undefined) trackerIds.set(entry.url, res.trackerId)
          if (event === "completed" || req.left === 0) completedPending = false
          lastLeft = req.left
          tiers = Tiers.succeeded(tiers)
          if (res.warning !== undefined) yield* Effect.logWarning(`tracker ${entry.url} warns: ${res.warning}`)
          return Option.some({ entry, res })
        }
        yield* Effect.logDebug(result.left.message)
        const next = Tiers.failed(tiers)
        tiers = next.tiers
        if (next.exhausted) return Option.none()
      }
    }).pipe(Effect.annotateLogs({ module: "Announcer" }))

    // Each pull: wait (interval of the previous success), then rounds with backoff until one succeeds.
    let wait: Duration.Duration = Duration.zero
    let minWait: Duration.Duration = Duration.zero
    let completedHeard = false
    const pull = Effect.gen(function*() {
      if (Duration.greaterThan(wait, Duration.zero)) {
        const completed = options.completed
        const starving = options.starving
        // Without peers, the rest of the interval is cut short once the tracker's min interval has passed.
        const sleep = starving === undefined
          ? Effect.sleep(wait)
          : Effect.zipRight(
            Effect.sleep(minWait),
            Effect.race(Effect.sleep(Duration.subtract(wait, minWait)), starving)
          )
        if (completed === undefined || completedHeard) yield* sleep
        else {
          yield* Effect.race(sleep, Effect.tap(completed, () => Effect.sync(() => completedHeard = true)))
        }
      }
      for (;;) {
        const ok = yield* round
        if (Option.isSome(ok)) {
          yield* retry.reset
          const { entry, res } = ok.value
          wait = delayOf(res, floor)
          minWait = Duration.min(minDelayOf(res, starvingFloor), wait)
          return {
            url: entry.url,
            tier: entry.tier,
            peers: res.peers,
            interval: res.interval,
            seeders: res.complete,
            leechers: res.incomplete,
            warning: res.warning
          } satisfies PeerBatch
        }
        if (Tiers.size(tiers) === 0) return yield* Effect.fail(Option.none()) // no trackers: the stream ends
        // A finite custom schedule that ends keeps its last pace.
        yield* Effect.catchAll(retry.next(undefined), () => Effect.sleep(floor))
      }
    })

    return Stream.repeatEffectOption(pull)
  }))
