/**
 * When Local Service Discovery speaks and whom it listens to: two small pure state machines (times in ms, given).
 *
 * Sending (`Schedule`). A torrent is announced when registered, again 2 s and 4 s later (a multicast datagram may be
 * lost; libtorrent resends the same way), then every `interval` (5 min). One info-hash per datagram, as libtorrent and
 * Transmission send, and never two datagrams less than `gap` apart across all torrents (200 ms: at most 5 a second
 * on the LAN): with many torrents the most overdue goes first, so each still gets its turn.
 *
 * Listening (`Intake`). Any host on the LAN can multicast; each source address gets a token bucket (a burst of 10
 * announces, then one every 6 s) so a noisy or hostile host cannot flood the swarms with candidates, and at most
 * `maxHosts` sources are remembered (the least recently heard is forgotten first).
 */

export interface ScheduleConfig {
  readonly interval: number
  readonly gap: number
  /** Delays of the resends after the first announce. */
  readonly resends: ReadonlyArray<number>
}

export const defaultScheduleConfig: ScheduleConfig = { interval: 5 * 60_000, gap: 200, resends: [2_000, 4_000] }

interface Entry<K> {
  readonly key: K
  /** Announces made since registration. */
  sent: number
  due: number
}

export interface Schedule<K> {
  readonly config: ScheduleConfig
  readonly entries: Map<string, Entry<K>>
  /** When the last datagram went out (−∞ before the first). */
  lastSend: number
}

export const makeSchedule = <K>(config: ScheduleConfig = defaultScheduleConfig): Schedule<K> => ({
  config,
  entries: new Map(),
  lastSend: Number.NEGATIVE_INFINITY
})

/** Announce `key` (named `id`) from `now` on; registering it again starts its resends afresh. */
export const register = <K>(s: Schedule<K>, id: string, key: K, now: number): void => {
  s.entries.set(id, { key, sent: 0, due: now })
}

export const unregister = <K>(s: Schedule<K>, id: string): void => {
  s.entries.delete(id)
}

export type Step<K> =
  | { readonly _tag: "Send"; readonly key: K }
  /** Nothing to send before `at` (undefined: nothing registered, wait for a registration). */
  | { readonly _tag: "Wait"; readonly at: number | undefined }

/** What to do at `now`: send the most overdue key (and record it), or wait. */
export const step = <K>(s: Schedule<K>, now: number): Step<K> => {
  let first: Entry<K> | undefined
  for (const e of s.entries.values()) if (first === undefined || e.due < first.due) first = e
  if (first === undefined) return { _tag: "Wait", at: undefined }
  const at = Math.max(first.due, s.lastSend + s.config.gap)
  if (at > now) return { _tag: "Wait", at }
  const resend = s.config.resends[first.sent]
  first.sent++
  first.due = now + (resend ?? s.config.interval)
  s.lastSend = now
  return { _tag: "Send", key: first.key }
}

export interface IntakeConfig {
  readonly burst: number
  /** One more announce accepted per this many ms. */
  readonly refill: number
  readonly maxHosts: number
}

export const defaultIntakeConfig: IntakeConfig = { burst: 10, refill: 6_000, maxHosts: 256 }

export interface Intake {
  readonly config: IntakeConfig
  /** Insertion order is recency order (a host heard is moved to the end). */
  readonly hosts: Map<string, { tokens: number; at: number }>
}

export const makeIntake = (config: IntakeConfig = defaultIntakeConfig): Intake => ({ config, hosts: new Map() })

/** Whether an announce from `host` at `now` is taken (and counted) or dropped. */
export const admit = (intake: Intake, host: string, now: number): boolean => {
  const { burst, refill, maxHosts } = intake.config
  const known = intake.hosts.get(host)
  const tokens = known === undefined
    ? burst
    : Math.min(burst, known.tokens + Math.max(0, now - known.at) / refill)
  intake.hosts.delete(host)
  if (known === undefined && intake.hosts.size >= maxHosts) {
    const oldest = intake.hosts.keys().next().value
    if (oldest !== undefined) intake.hosts.delete(oldest)
  }
  const ok = tokens >= 1
  intake.hosts.set(host, { tokens: ok ? tokens - 1 : tokens, at: now })
  return ok
}
