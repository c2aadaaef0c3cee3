/**
 * A torrent's announces as a `Stream` of peer batches (BEP 3 + BEP 12). Each pull announces to the first tracker
 * that answers (Tiers.ts decides the order), waiting first for that tracker's interval (never less than its
 * `min interval`); when a whole round fails it backs off with jittered exponential delays. The first announce to a
 * tracker says `started`, the first one after `left` reaches 0 says `completed`, and when the stream's scope closes
 * every tracker that heard `started` is sent `stopped`, bounded by `stopTimeout` so shutdown never hangs.
 *
 * The torrent's counters come in through `Stats`; this module knows nothing about torrents.
 *
 * A `Board` (optional) shows each tracker's state as the stream sees it — idle until tried, announcing, working
 * (with the last answer's counts and when the next announce is due) or error (with the message) — and takes
 * `reannounce()`: the wait for the next announce (an interval, or a backoff after failures) ends at once, once.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
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

export type TrackerStatus = "idle" | "announcing" | "working" | "error"

/** One tracker as the announce stream last saw it. Times are ms since the epoch (the Clock's). */
export interface TrackerState {
  readonly url: string
  /** Its tier (0 first), as the torrent lists them. */
  readonly tier: number
  readonly status: TrackerStatus
  readonly lastAnnounceAt: number | null
  /** When the next announce to it is due (only for the tracker in use). */
  readonly nextAnnounceAt: number | null
  /** From its last answer; null when it never said. */
  readonly seeders: number | null
  readonly leechers: number | null
  /** Peers its last answer gave. */
  readonly peers: number | null
  /** The last error or warning; "" when none. */
  readonly message: string
}

/** What a running announce stream shows and takes while it runs (see the header). */
export interface Board {
  /** Every tracker, tier by tier in the torrent's order (a snapshot). */
  readonly trackers: () => ReadonlyArray<TrackerState>
  /** Announce now: ends the current wait (interval or backoff) once. Nothing when no stream runs on the board. */
  readonly reannounce: () => void
}

interface Entry {
  url: string
  tier: number
  status: TrackerStatus
  lastAnnounceAt: number | null
  nextAnnounceAt: number | null
  seeders: number | null
  leechers: number | null
  peers: number | null
  message: string
}

interface BoardImpl extends Board {
  readonly entries: Map<string, Entry>
  readonly kicks: Queue.Queue<void>
}

/** A board for these tiers (blank and repeated URLs dropped, as the stream does). */
export const makeBoard = (tiers: ReadonlyArray<ReadonlyArray<string>>): Effect.Effect<Board> =>
  Effect.map(Queue.sliding<void>(1), (kicks): BoardImpl => {
    const entries = new Map<string, Entry>()
    for (const e of Tiers.entries(Tiers.make(tiers))) {
      entries.set(e.url, {
        url: e.url,
        tier: e.tier,
        status: "idle",
        lastAnnounceAt: null,
        nextAnnounceAt: null,
        seeders: null,
        leechers: null,
        peers: null,
        message: ""
      })
    }
    return {
      entries,
      kicks,
      trackers: () => Array.from(entries.values(), (e) => ({ ...e })),
      reannounce: () => void kicks.unsafeOffer(undefined)
    }
  })

export interface Options {
  readonly tiers: ReadonlyArray<ReadonlyArray<string>>
  readonly infoHash: Uint8Array
  readonly peerId: Uint8Array
  readonly port: number
  /** The port to announce now, when it can change (a port mapped on the router); `port` when it says undefined. */
  readonly currentPort?: (() => number | undefined) | undefined
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
  /** Shows the trackers' states and takes `reannounce` (made with {@link makeBoard} from the same tiers). */
  readonly board?: Board | undefined
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

    const board = (options.board ?? (yield* makeBoard(options.tiers))) as BoardImpl
    const entryOf = (url: string): Entry | undefined => board.entries.get(url)
    const now = Clock.currentTimeMillis

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
          port: options.currentPort?.() ?? options.port,
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
        Effect.ensuring(Effect.sync(() => {
          for (const e of board.entries.values()) {
            if (e.status !== "error") e.status = "idle"
            e.nextAnnounceAt = null
          }
        })),
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
        const shown = entryOf(entry.url)
        if (shown !== undefined) shown.status = "announcing"
        const result = yield* Effect.either(announce(entry.url, event))
        const at = yield* now
        if (shown !== undefined) {
          shown.lastAnnounceAt = at
          shown.nextAnnounceAt = null
          if (result._tag === "Right") {
            const res = result.right.res
            shown.status = "working"
            shown.seeders = res.complete ?? shown.seeders
            shown.leechers = res.incomplete ?? shown.leechers
            shown.peers = res.peers.length
            shown.message = res.warning ?? ""
          } else {
            shown.status = "error"
            shown.message = result.left.message
          }
        }
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
    /** A `reannounce` ends the wait it races with (kicks made during an announce are dropped: it answered them). */
    const orKick = <A, E, R>(sleep: Effect.Effect<A, E, R>): Effect.Effect<unknown, E, R> =>
      Effect.zipRight(Queue.takeAll(board.kicks), Effect.race(sleep, Queue.take(board.kicks)))
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
        if (completed === undefined || completedHeard) yield* orKick(sleep)
        else {
          yield* orKick(Effect.race(sleep, Effect.tap(completed, () => Effect.sync(() => completedHeard = true))))
        }
      }
      for (;;) {
        const ok = yield* round
        if (Option.isSome(ok)) {
          yield* retry.reset
          const { entry, res } = ok.value
          wait = delayOf(res, floor)
          minWait = Duration.min(minDelayOf(res, starvingFloor), wait)
          const shown = entryOf(entry.url)
          if (shown !== undefined) shown.nextAnnounceAt = (yield* now) + Duration.toMillis(wait)
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
        yield* orKick(Effect.catchAll(retry.next(undefined), () => Effect.sleep(floor)))
      }
    })

    return Stream.repeatEffectOption(pull)
  }))
