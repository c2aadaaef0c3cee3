/** How numbers read in the UI: binary units, rates, durations, times ago. Pure (tested under Node). */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const

/** `1023 B`, `1.5 KiB`, `12.3 MiB`, `123 GiB`: three significant digits at most above bytes. */
export const bytes = (n: number): string => {
  if (!Number.isFinite(n) || n < 0) return "–"
  let v = n
  let u = 0
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024
    u++
  }
  if (u === 0) return `${Math.round(v)} B`
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2
  return `${v.toFixed(digits)} ${UNITS[u]}`
}

export const rate = (n: number): string => (n > 0 ? `${bytes(n)}/s` : "0 B/s")

/** `42.5 %` (one decimal, never 100 % before it is complete). */
export const percent = (p: number): string => {
  const clamped = Math.min(1, Math.max(0, p))
  const v = Math.floor(clamped * 1000) / 10
  return `${v.toFixed(1)} %`
}

/** A duration in seconds as its two largest units: `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`; "∞" unknown. */
export const duration = (seconds: number | null): string => {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return "∞"
  const s = Math.round(seconds)
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`
  const h = Math.floor(m / 60)
  if (h < 24) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`
  const d = Math.floor(h / 24)
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`
}

/** A time (ms since the epoch) relative to `now`: `12 s ago`, `in 3 min`, "never" for null. */
export const relative = (at: number | null, now: number): string => {
  if (at === null) return "never"
  const delta = (at - now) / 1000
  if (Math.abs(delta) < 1) return "now"
  return delta < 0 ? `${duration(-delta)} ago` : `in ${duration(delta)}`
}

/** The ratio with two decimals, "∞" when infinite. */
export const ratio = (r: number): string => (Number.isFinite(r) ? r.toFixed(2) : "∞")

/** Seconds left at `rate` for `left` bytes; null when nothing moves or nothing is left. */
export const eta = (left: number, rate: number): number | null => (left > 0 && rate > 0 ? left / rate : null)

export const stateLabel: Readonly<Record<string, string>> = {
  "fetching-metadata": "Fetching metadata",
  checking: "Checking",
  queued: "Queued",
  downloading: "Downloading",
  seeding: "Seeding",
  paused: "Paused",
  finished: "Finished",
  error: "Error"
}
