/**
 * The status lines of `download`, `seed` and `demo`, fitted to the terminal: fields are added in order of
 * priority (percentage, sizes, download rate, ETA, peers, upload rate, name, bar) while they fit in `width - 1`
 * columns (a line filling the last column makes some terminals scroll on every redraw), then shown in reading
 * order. Rates always with three significant digits, so the line does not jitter.
 */
import { formatBytes, style } from "./Output.ts"

/** Terminal columns: the TTY's own, else `$COLUMNS`, else 80. */
export const columns = (stream: { readonly columns?: number | undefined }): number => {
  if (typeof stream.columns === "number" && stream.columns > 0) return stream.columns
  const env = Number(process.env["COLUMNS"])
  return Number.isInteger(env) && env > 0 ? env : 80
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const

/** `0 B/s`, `512 B/s`, `1.50 KiB/s`, `12.3 MiB/s`, `123 MiB/s`. */
export const formatRate = (bytesPerSecond: number): string => {
  let v = Math.max(0, bytesPerSecond)
  let u = 0
  while (v >= 1000 && u < UNITS.length - 1) {
    v /= 1024
    u++
  }
  const text = u === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)
  return `${text} ${UNITS[u]}/s`
}

/** `1 peer`, `3 peers`; with seeds among them: `5 peers (2 seeds)`. */
export const formatPeers = (peers: number, seeds: number | undefined): string => {
  const p = `${peers} ${peers === 1 ? "peer" : "peers"}`
  return seeds === undefined || peers === 0 ? p : `${p} (${seeds} ${seeds === 1 ? "seed" : "seeds"})`
}

export const formatEta = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--"
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0")
  const ss = String(s % 60).padStart(2, "0")
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

/** Seconds as `12.3 s`, `4 min 05 s`, `2 h 03 min`. */
export const formatDuration = (seconds: number): string => {
  if (seconds < 60) return `${seconds.toFixed(1)} s`
  const s = Math.round(seconds)
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`
}

interface Field {
  /** Lower is more important. */
  readonly priority: number
  readonly text: string
  /** Printed width (text may hold colour escapes). */
  readonly width: number
}

const plain = (priority: number, text: string): Field => ({ priority, text, width: text.length })

/**
 * Keeps the fields that fit in `width - 1` columns, most important first, and shows them in their given order after
 * the name. At its priority the name reserves up to 12 columns (left out when fewer than 8 remain); whatever is left
 * at the end widens it, up to 40 (cut with "…").
 */
export const fit = (
  fields: ReadonlyArray<Field>,
  width: number,
  name?: { readonly text: string; readonly priority: number }
): string => {
  const room = Math.max(1, width - 1)
  const items = [
    ...fields.map((f) => ({ priority: f.priority, field: f as Field | undefined })),
    ...(name === undefined ? [] : [{ priority: name.priority, field: undefined }])
  ].sort((a, b) => a.priority - b.priority)
  const kept = new Set<Field>()
  let used = 0
  let nameWidth = 0
  for (const { field } of items) {
    const sep = used > 0 ? 2 : 0
    if (field !== undefined) {
      if (used + sep + field.width <= room) {
        kept.add(field)
        used += sep + field.width
      }
    } else if (name !== undefined) {
      const w = Math.min(name.text.length, 12, room - used - sep)
      if (w >= Math.min(8, name.text.length)) {
        nameWidth = w
        used += sep + w
      }
    }
  }
  if (name !== undefined && nameWidth > 0) nameWidth = Math.min(name.text.length, 40, nameWidth + room - used)
  const parts = fields.filter((f) => kept.has(f)).map((f) => f.text)
  if (name !== undefined && nameWidth > 0) parts.unshift(cut(name.text, nameWidth))
  return parts.join("  ")
}

const cut = (s: string, n: number): string => (s.length <= n ? s : `${s.slice(0, n - 1)}…`)

export interface DownloadView {
  readonly name: string
  readonly done: number
  readonly total: number
  readonly downRate: number
  readonly upRate: number
  readonly peers: number
  /** Connected peers that have every piece; unknown: not shown. */
  readonly seeds?: number | undefined
}

/** The download's line for a terminal of `width` columns (Infinity: everything, for a log). */
export const downloadLine = (v: DownloadView, width: number, options: { readonly bar: boolean; readonly color: boolean }): string => {
  const s = style(options.color)
  const pct = v.total === 0 ? 100 : (v.done * 100) / v.total
  const eta = v.downRate > 0 ? (v.total - v.done) / v.downRate : Number.POSITIVE_INFINITY
  const fields: Array<Field> = []
  if (options.bar) {
    const cells = 20
    const filled = Math.round((pct / 100) * cells)
    fields.push({ priority: 8, text: `${s.cyan("█".repeat(filled))}${s.dim("░".repeat(cells - filled))}`, width: cells })
  }
  fields.push(
    plain(0, `${pct.toFixed(1)}%`),
    plain(1, `${formatBytes(v.done)}/${formatBytes(v.total)}`),
    plain(2, `↓ ${formatRate(v.downRate)}`),
    plain(6, `↑ ${formatRate(v.upRate)}`),
    plain(4, formatPeers(v.peers, v.seeds)),
    plain(3, `ETA ${formatEta(eta)}`)
  )
  return fit(fields, width, { text: v.name, priority: 5 })
}

export interface SeedView {
  readonly name: string
  readonly uploaded: number
  readonly total: number
  readonly upRate: number
  readonly peers: number
}

/** While seeding: name, upload rate, uploaded and ratio, peers. */
export const seedLine = (v: SeedView, width: number): string => {
  const ratio = v.total > 0 ? v.uploaded / v.total : 0
  return fit([
    plain(0, "seeding"),
    plain(1, `↑ ${formatRate(v.upRate)}`),
    plain(2, `${formatBytes(v.uploaded)} up`),
    plain(4, `ratio ${ratio.toFixed(2)}`),
    plain(3, formatPeers(v.peers, undefined))
  ], width, { text: v.name, priority: 5 })
}

export interface WaitingView {
  readonly name: string
  readonly done: number
  readonly total: number
  /** Peer addresses known, connections being set up, and how the latest attempt ended. */
  readonly candidates: number
  readonly dialling: number
  readonly lastAttempt: string | undefined
  /** Each tracker's state: "working" ones answered; an error carries its message. */
  readonly trackers: ReadonlyArray<{ readonly url: string; readonly status: string; readonly message: string }>
  readonly dht: boolean
  readonly lsd: boolean
  readonly webSeeds: number
}

const CODES: Record<string, string> = {
  ECONNREFUSED: "refused",
  ECONNRESET: "reset",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "not found (DNS)",
  EAI_AGAIN: "DNS failed"
}

/**
 * The gist of a connection error for a status line: a known system code in words, else the last clause of a
 * message that repeats its context ("peer a closed (x): tcp x (a): connect ECONNREFUSED a" → "refused").
 */
export const brief = (message: string): string => {
  const code = /\b(E[A-Z_]{3,})\b/.exec(message)?.[1]
  if (code !== undefined) return CODES[code] ?? code
  if (/time(d)? ?out/i.test(message)) return "timed out"
  const last = message.slice(message.lastIndexOf(": ") + 1).trim()
  return last === "" ? message : last
}

/**
 * What is being tried while no peer is connected, most telling first: connection attempts and how the last one
 * ended, then the trackers (a failing one with its error), then the other sources.
 */
export const waitingText = (v: WaitingView): string => {
  const parts: Array<string> = []
  if (v.candidates === 0) parts.push("no peer address yet")
  else {
    const dialling = v.dialling > 0 ? `trying ${v.dialling} of ${v.candidates} known` : `${v.candidates} known`
    const last = v.lastAttempt === undefined ? undefined : /^(\S+?): (.*)$/s.exec(v.lastAttempt)
    parts.push(last == null ? dialling : `${dialling}, last ${last[1]} ${brief(last[2]!)}`)
  }
  if (v.trackers.length > 0) {
    const answered = v.trackers.filter((t) => t.status === "working").length
    const failing = v.trackers.find((t) => t.status === "error" && t.message !== "")
    const n = v.trackers.length
    parts.push(
      `${answered}/${n} ${n === 1 ? "tracker" : "trackers"} answered` +
        (failing === undefined ? "" : ` (${failing.url} ${brief(failing.message)})`)
    )
  }
  const more = [v.dht ? "DHT" : "", v.lsd ? "LSD" : "", v.webSeeds > 0 ? `${v.webSeeds} web seed${v.webSeeds === 1 ? "" : "s"}` : ""]
    .filter((s) => s !== "")
  if (more.length > 0) parts.push(`asking ${more.join(", ")}`)
  return `waiting for peers: ${parts.join("; ")}`
}

/**
 * The line while no peer is connected: what is being tried matters more than sizes that do not move, so a terminal
 * line is the name (≤ 12 columns, from 60 columns up), the percentage and `waitingText` cut to the width; a log line
 * (infinite width) has everything.
 */
export const waitingLine = (v: WaitingView, width: number): string => {
  const pct = `${(v.total === 0 ? 100 : (v.done * 100) / v.total).toFixed(1)}%`
  if (!Number.isFinite(width)) return `${v.name}  ${pct}  ${formatBytes(v.done)}/${formatBytes(v.total)}  ${waitingText(v)}`
  const head = width >= 60 ? `${cut(v.name, 12)}  ${pct}` : pct
  return `${head}  ${cut(waitingText(v), Math.max(1, width - 1 - head.length - 2))}`
}
