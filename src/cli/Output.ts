/**
 * Terminal presentation shared by the commands: colour policy, sizes and dates, and the one-line error form.
 */
import * as Data from "effect/Data"

/** Colours only on a TTY and only without `NO_COLOR` (https://no-color.org). */
export const colorEnabled = (stream: { readonly isTTY?: boolean | undefined }): boolean =>
  stream.isTTY === true && (process.env["NO_COLOR"] ?? "") === "" && process.env["TERM"] !== "dumb"

export interface Style {
  readonly bold: (s: string) => string
  readonly dim: (s: string) => string
  readonly red: (s: string) => string
  readonly green: (s: string) => string
  readonly cyan: (s: string) => string
  readonly yellow: (s: string) => string
}

const wrap = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`
const id = (s: string) => s

export const style = (enabled: boolean): Style =>
  enabled
    ? { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39), cyan: wrap(36, 39), yellow: wrap(33, 39) }
    : { bold: id, dim: id, red: id, green: id, cyan: id, yellow: id }

/** Removes ANSI escape sequences (for @effect/cli's help and errors, which are always coloured). */
export const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "")

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const

/** `1536` → `1.5 KiB`; whole numbers stay whole (`16 KiB`). */
export const formatBytes = (n: number): string => {
  let v = n
  let u = 0
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024
    u++
  }
  const text = u === 0 || Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1)
  return `${text} ${UNITS[u]}`
}

/**
 * `1234567` → `1,234,567` (integers; what `toLocaleString("en-US")` gives, without its first call's ~20 ms of ICU
 * set-up, a tenth of `info`'s run).
 */
export const groupDigits = (n: number): string => {
  if (!Number.isSafeInteger(n)) return n.toLocaleString("en-US")
  const digits = String(Math.abs(n))
  let out = digits.slice(0, ((digits.length - 1) % 3) + 1)
  for (let i = out.length; i < digits.length; i += 3) out += `,${digits.slice(i, i + 3)}`
  return n < 0 || Object.is(n, -0) ? `-${out}` : out
}

/** Seconds since the epoch → ISO 8601 UTC without milliseconds; `undefined` for values outside Date's range. */
export const formatDate = (seconds: number): string | undefined => {
  const d = new Date(seconds * 1000)
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString().replace(".000Z", "Z")
}

/** Control characters in torrent-provided text would move the cursor or recolour the terminal: show them escaped. */
export const sanitizeText = (s: string): string =>
  s.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)

/**
 * A failure the CLI reports as one line on stderr and an exit code (1: the input or the operation failed,
 * 2: usage).
 */
export class CliFailure extends Data.TaggedError("CliFailure")<{
  readonly message: string
  readonly exitCode: number
}> {}
