/**
 * Probe every tracker of a torrent at once: announce (event none, left = total size) and scrape concurrently, each
 * tracker bounded by one short deadline, so the whole probe ends within about `timeout` even offline.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Bytes from "../core/Bytes.ts"
import * as Tiers from "./Tiers.ts"
import { Tracker } from "./Tracker.ts"
import { TrackerError } from "./TrackerError.ts"
import * as TrackerLive from "./TrackerLive.ts"
import * as UdpTransaction from "./UdpTransaction.ts"

export interface Options {
  /** BEP 12 tiers of tracker URLs (a torrent's announce-list, or `[[announce]]`). */
  readonly tiers: ReadonlyArray<ReadonlyArray<string>>
  readonly infoHash: Uint8Array
  /** The torrent's total size: sent as `left`. */
  readonly totalSize: number
  readonly peerId: Uint8Array
  readonly port: number
  /** Deadline per tracker, announce and scrape included (default 10 s). Trackers are probed concurrently. */
  readonly timeout?: Duration.DurationInput | undefined
  readonly numwant?: number | undefined
}

export const defaultTimeout = Duration.seconds(10)

export interface Answer {
  /** From the scrape when it answered, else from the announce (`complete`). */
  readonly seeders: number
  /** From the scrape when it answered, else from the announce (`incomplete`). */
  readonly leechers: number
  /** Only a scrape reports completed downloads. */
  readonly completed?: number | undefined
  /** How many peers the announce returned. */
  readonly peers: number
  /** Seconds. */
  readonly interval: number
  readonly warning?: string | undefined
}

export interface Failed {
  readonly error: TrackerError
}

export interface Result {
  readonly url: string
  readonly tier: number
  readonly result: Answer | Failed
}

export const isFailed = (r: Answer | Failed): r is Failed => "error" in r

/**
 * Tracker options suited to probing: UDP retransmits after 2 s and 4 s (not BEP 15's 15 s, which would outlast the
 * probe), HTTP bounded by the default probe deadline.
 */
export const trackerOptions: TrackerLive.Options = {
  http: { timeout: defaultTimeout },
  udp: { retransmit: UdpTransaction.retransmitSchedule(Duration.seconds(2), 2) }
}

/** The live Tracker configured with `trackerOptions`: provide this to `probe` in the CLI. */
export const trackerLayer: Layer.Layer<Tracker> = TrackerLive.layer(trackerOptions)

/** Probes every tracker (in tier order, duplicates removed); never fails: each tracker's error is in its result. */
export const probe = (options: Options): Effect.Effect<ReadonlyArray<Result>, never, Tracker> =>
  Effect.gen(function*() {
    const tracker = yield* Tracker
    const timeout = Duration.decode(options.timeout ?? defaultTimeout)
    const deadline = <A>(url: string, what: string, self: Effect.Effect<A, TrackerError>) =>
      Effect.timeoutFail(self, {
        duration: timeout,
        onTimeout: () =>
          new TrackerError({ reason: "timeout", url, detail: `no ${what} answer within ${Duration.format(timeout)}` })
      })
    const one = (entry: Tiers.Entry): Effect.Effect<Result> =>
      Effect.all([
        deadline(
          entry.url,
          "announce",
          tracker.announce(entry.url, {
            infoHash: options.infoHash,
            peerId: options.peerId,
            port: options.port,
            uploaded: 0,
            downloaded: 0,
            left: options.totalSize,
            event: "none",
            numwant: options.numwant
          })
        ),
        tracker.scrape(entry.url, [options.infoHash]).pipe(
          Effect.timeoutOption(timeout),
          Effect.map(Option.flatMap((s) => Option.fromNullable(s.get(Bytes.toHex(options.infoHash))))),
          Effect.orElseSucceed(() => Option.none())
        )
      ], { concurrency: 2 }).pipe(
        Effect.either,
        Effect.map((r): Result => {
          if (Either.isLeft(r)) return { url: entry.url, tier: entry.tier, result: { error: r.left } }
          const [a, s] = r.right
          const scraped = Option.getOrUndefined(s)
          return {
            url: entry.url,
            tier: entry.tier,
            result: {
              seeders: scraped?.seeders ?? a.complete ?? 0,
              leechers: scraped?.leechers ?? a.incomplete ?? 0,
              ...(scraped !== undefined ? { completed: scraped.completed } : {}),
              peers: a.peers.length,
              interval: a.interval,
              ...(a.warning !== undefined ? { warning: a.warning } : {})
            }
          }
        })
      )
    return yield* Effect.forEach(Tiers.entries(Tiers.make(options.tiers)), one, { concurrency: 16 })
  })
