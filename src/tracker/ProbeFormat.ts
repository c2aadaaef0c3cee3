/**
 * Presentation of probe results (pure): one plain-text line per tracker, a summary line, and a JSON shape.
 */
import { isFailed, type Result } from "./Probe.ts"
import type { Reason } from "./TrackerError.ts"

/** `tier 0  udp://host:6969  ok  seeders 3  leechers 1  completed 7  peers 4  interval 1800s` */
export const line = (r: Result): string => {
  const head = `tier ${r.tier}  ${r.url}`
  if (isFailed(r.result)) {
    const e = r.result.error
    return `${head}  error (${e.reason}${e.status !== undefined ? ` ${e.status}` : ""}): ${e.detail || e.message}`
  }
  const a = r.result
  const parts = [
    `seeders ${a.seeders}`,
    `leechers ${a.leechers}`,
    ...(a.completed !== undefined ? [`completed ${a.completed}`] : []),
    `peers ${a.peers}`,
    `interval ${a.interval}s`
  ]
  return `${head}  ok  ${parts.join("  ")}${a.warning !== undefined ? `  warning: ${a.warning}` : ""}`
}

export const lines = (results: ReadonlyArray<Result>): ReadonlyArray<string> => results.map(line)

/** `2 of 3 trackers answered` */
export const summary = (results: ReadonlyArray<Result>): string => {
  const ok = results.filter((r) => !isFailed(r.result)).length
  return `${ok} of ${results.length} tracker${results.length === 1 ? "" : "s"} answered`
}

export type Json =
  | {
    readonly url: string
    readonly tier: number
    readonly ok: true
    readonly seeders: number
    readonly leechers: number
    readonly completed: number | null
    readonly peers: number
    readonly interval: number
    readonly warning: string | null
  }
  | {
    readonly url: string
    readonly tier: number
    readonly ok: false
    readonly error: { readonly reason: Reason; readonly message: string; readonly status: number | null }
  }

/** A JSON-safe value per tracker (stable keys; `null` for absent values). */
export const toJson = (r: Result): Json => {
  if (isFailed(r.result)) {
    const e = r.result.error
    return {
      url: r.url,
      tier: r.tier,
      ok: false,
      error: { reason: e.reason, message: e.message, status: e.status ?? null }
    }
  }
  const a = r.result
  return {
    url: r.url,
    tier: r.tier,
    ok: true,
    seeders: a.seeders,
    leechers: a.leechers,
    completed: a.completed ?? null,
    peers: a.peers,
    interval: a.interval,
    warning: a.warning ?? null
  }
}

export const toJsonArray = (results: ReadonlyArray<Result>): ReadonlyArray<Json> => results.map(toJson)
