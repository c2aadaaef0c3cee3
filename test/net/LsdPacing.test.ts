/**
 * LSD pacing under random sequences of registrations, removals and time passing, driven the way Lsd.ts drives it
 * (step until it says wait, sleep until then or until a registration wakes it):
 * - no two datagrams closer than `gap`, and only registered torrents announced;
 * - each torrent: announced at once (as soon as the gap allows), resent after 2 s and 4 s, then every interval —
 *   never sooner, and never later than its turn allows (interval + one gap per other torrent);
 * - the intake's per-host bucket: never more than burst + elapsed/refill announces taken from one host, a quiet host
 *   regains its burst, and the table of hosts stays bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as LsdPacing from "../../src/net/LsdPacing.ts"

type Event =
  | { readonly _tag: "Register"; readonly id: number }
  | { readonly _tag: "Unregister"; readonly id: number }
  | { readonly _tag: "Pass"; readonly ms: number }

const event: FastCheck.Arbitrary<Event> = FastCheck.oneof(
  FastCheck.record({ _tag: FastCheck.constant("Register" as const), id: FastCheck.integer({ min: 0, max: 7 }) }),
  FastCheck.record({ _tag: FastCheck.constant("Unregister" as const), id: FastCheck.integer({ min: 0, max: 7 }) }),
  FastCheck.record({ _tag: FastCheck.constant("Pass" as const), ms: FastCheck.integer({ min: 0, max: 400_000 }) })
)

const config: LsdPacing.ScheduleConfig = { interval: 300_000, gap: 200, resends: [2_000, 4_000] }

describe("LsdPacing schedule", () => {
  it("keeps the gap, the resends and the interval, and gives every torrent its turn", () => {
    FastCheck.assert(FastCheck.property(FastCheck.array(event, { maxLength: 60 }), (events) => {
      const s = LsdPacing.makeSchedule<number>(config)
      let now = 0
      let lastSend = Number.NEGATIVE_INFINITY
      const registered = new Map<number, { since: number; sends: Array<number> }>()
      let most = 0
      const sendUntil = (until: number) => {
        for (;;) {
          const st = LsdPacing.step(s, now)
          if (st._tag === "Send") {
            expect(registered.has(st.key)).toBe(true)
            expect(now - lastSend).toBeGreaterThanOrEqual(config.gap)
            lastSend = now
            registered.get(st.key)!.sends.push(now)
            continue
          }
          if (st.at === undefined || st.at > until) break
          expect(st.at).toBeGreaterThan(now)
          now = st.at
        }
        now = until
      }
      const check = (id: number) => {
        const r = registered.get(id)!
        // Its turn may wait behind every torrent registered at the same time (the most there ever were).
        const slack = most * config.gap
        const times = [r.since, ...r.sends]
        const wait = [0, ...config.resends]
        for (let i = 1; i < times.length; i++) {
          const min = wait[i - 1] ?? config.interval
          expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(min)
          expect(times[i]! - times[i - 1]!).toBeLessThanOrEqual(min + slack)
        }
        // and it is not overdue now
        const last = times[times.length - 1]!
        const next = wait[times.length - 1] ?? config.interval
        expect(now - last).toBeLessThanOrEqual(next + slack)
      }
      for (const e of events) {
        if (e._tag === "Register") {
          LsdPacing.register(s, String(e.id), e.id, now)
          registered.set(e.id, { since: now, sends: [] })
          most = Math.max(most, registered.size)
          sendUntil(now)
        } else if (e._tag === "Unregister") {
          LsdPacing.unregister(s, String(e.id))
          registered.delete(e.id)
        } else {
          sendUntil(now + e.ms)
        }
        for (const id of registered.keys()) check(id)
      }
    }))
  })

  it("waits for a registration when nothing is registered", () => {
    const s = LsdPacing.makeSchedule<number>(config)
    expect(LsdPacing.step(s, 0)).toEqual({ _tag: "Wait", at: undefined })
    LsdPacing.register(s, "a", 1, 10)
    expect(LsdPacing.step(s, 10)).toEqual({ _tag: "Send", key: 1 })
    expect(LsdPacing.step(s, 10)).toEqual({ _tag: "Wait", at: 2_010 })
    LsdPacing.unregister(s, "a")
    expect(LsdPacing.step(s, 5_000)).toEqual({ _tag: "Wait", at: undefined })
  })
})

describe("LsdPacing intake", () => {
  const intakeConfig: LsdPacing.IntakeConfig = { burst: 10, refill: 6_000, maxHosts: 4 }

  it("takes at most burst + elapsed/refill from a host, whatever the timing", () => {
    FastCheck.assert(FastCheck.property(
      FastCheck.array(FastCheck.tuple(FastCheck.integer({ min: 0, max: 5 }), FastCheck.integer({ min: 0, max: 20_000 })), {
        maxLength: 200
      }),
      (arrivals) => {
        // Room for every host (6), so none is forgotten and the bound is exact.
        const intake = LsdPacing.makeIntake({ ...intakeConfig, maxHosts: 6 })
        let now = 0
        const taken = new Map<number, { first: number; count: number }>()
        for (const [host, dt] of arrivals) {
          now += dt
          if (LsdPacing.admit(intake, `10.0.0.${host}`, now)) {
            const t = taken.get(host) ?? { first: now, count: 0 }
            t.count++
            taken.set(host, t)
          }
        }
        for (const t of taken.values()) {
          expect(t.count).toBeLessThanOrEqual(intakeConfig.burst + (now - t.first) / intakeConfig.refill)
        }
      }
    ))
  })

  it("one remembered host: a burst, then one per refill, and a quiet host regains its burst", () => {
    const intake = LsdPacing.makeIntake(intakeConfig)
    const took = (t: number) => LsdPacing.admit(intake, "10.0.0.1", t)
    for (let i = 0; i < 10; i++) expect(took(0)).toBe(true)
    expect(took(0)).toBe(false)
    expect(took(5_999)).toBe(false)
    expect(took(6_000 + 5_999)).toBe(true)
    expect(took(6_000 + 5_999)).toBe(false)
    let n = 0
    while (took(1_000_000)) n++
    expect(n).toBe(10)
  })

  it("the table of hosts stays bounded, whoever sends", () => {
    FastCheck.assert(FastCheck.property(FastCheck.array(FastCheck.integer({ min: 0, max: 50 }), { maxLength: 300 }), (hosts) => {
      const intake = LsdPacing.makeIntake(intakeConfig)
      hosts.forEach((h, t) => LsdPacing.admit(intake, `h${h}`, t))
      expect(intake.hosts.size).toBeLessThanOrEqual(intakeConfig.maxHosts)
    }))
  })

  it("forgets the least recently heard host first", () => {
    const intake = LsdPacing.makeIntake(intakeConfig)
    for (const h of ["a", "b", "c", "d"]) LsdPacing.admit(intake, h, 0)
    LsdPacing.admit(intake, "a", 1)
    LsdPacing.admit(intake, "e", 2)
    expect([...intake.hosts.keys()]).toEqual(["c", "d", "a", "e"])
  })
})
