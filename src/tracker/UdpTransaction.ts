/**
 * One BEP 15 request/response exchange: register a transaction id, send, and retransmit on the schedule until a
 * reply arrives or the schedule is exhausted (anacrolix's transaction.go + timeout.go).
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import type { UdpError } from "../net/Udp.ts"
import type { Dispatcher } from "./UdpDispatcher.ts"

/**
 * The wait after each (re)transmission: 15·2^n seconds for n = 0…8 (BEP 15), then give up. `base` and `maxN` are
 * configurable so tests and the probe can run short.
 */
export const retransmitSchedule = (
  base: Duration.DurationInput = Duration.seconds(15),
  maxN = 8
): Schedule.Schedule<Duration.Duration> =>
  Schedule.exponential(base, 2).pipe(Schedule.intersect(Schedule.recurs(maxN)), Schedule.map(([d]) => d))

/** The BEP 15 default. */
export const bep15Retransmit = retransmitSchedule()

export class TransactionTimeout extends Data.TaggedError("TransactionTimeout")<{ readonly attempts: number }> {}

/**
 * Sends `build(transactionId)` to `address:port` and waits for the reply, retransmitting after each delay of
 * `schedule`. Fails with `TransactionTimeout` when the schedule ends without a reply.
 */
export const run = (
  dispatcher: Dispatcher,
  address: string,
  port: number,
  build: (transactionId: number) => Uint8Array,
  schedule: Schedule.Schedule<unknown> = bep15Retransmit
): Effect.Effect<Uint8Array, UdpError | TransactionTimeout> =>
  Effect.scoped(
    Effect.gen(function*() {
      const pending = yield* dispatcher.register(address, port)
      const packet = build(pending.transactionId)
      const driver = yield* Schedule.driver(schedule)
      let attempts = 0
      for (;;) {
        attempts++
        yield* dispatcher.socket.send(packet, port, address)
        const waited = yield* Effect.raceFirst(
          Deferred.await(pending.reply).pipe(Effect.map(Either.right)),
          driver.next(undefined).pipe(
            Effect.as(Either.left(true)),
            Effect.orElseSucceed(() => Either.left(false))
          )
        )
        if (Either.isRight(waited)) return waited.right
        if (!waited.left) return yield* new TransactionTimeout({ attempts })
      }
    })
  )
