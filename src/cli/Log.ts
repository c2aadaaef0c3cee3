/**
 * Where the CLI's log lines go: stderr, one line each (`effect-torrent: warning: peer banned: … peer=1.2.3.4:6881`),
 * so stdout stays the command's own output (a progress bar, `--json` events, `info --json`). Warnings and errors
 * by default; `EFFECT_TORRENT_LOG=info|debug` shows more (e.g. each misbehaving peer once, reconnects).
 */
import * as Cause from "effect/Cause"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { sanitizeText } from "./Output.ts"

const levelOf = (text: string | undefined): LogLevel.LogLevel => {
  switch ((text ?? "").toLowerCase()) {
    case "debug":
      return LogLevel.Debug
    case "info":
      return LogLevel.Info
    case "error":
      return LogLevel.Error
    case "none":
      return LogLevel.None
    default:
      return LogLevel.Warning
  }
}

const stderrLogger = Logger.make(({ annotations, cause, logLevel, message }) => {
  const text = (Array.isArray(message) ? message : [message]).map((m) => (typeof m === "string" ? m : String(m))).join(" ")
  const fields = [...HashMap.toEntries(annotations)].map(([k, v]) => `${k}=${String(v)}`)
  const why = Cause.isEmpty(cause) ? "" : ` (${Cause.pretty(cause).split("\n")[0]})`
  const level = logLevel._tag === "Warning" ? "warning" : logLevel.label.toLowerCase()
  const line = `effect-torrent: ${level}: ${text}${why}${fields.length > 0 ? ` ${fields.join(" ")}` : ""}`
  // On a terminal, clear a progress line first so the two do not run together.
  process.stderr.write(`${process.stderr.isTTY === true ? "\r\x1b[K" : ""}${sanitizeText(line.replace(/\s*\n\s*/g, " "))}\n`)
})

export const layer: Layer.Layer<never> = Layer.merge(
  Logger.replace(Logger.defaultLogger, stderrLogger),
  Logger.minimumLogLevel(levelOf(process.env["EFFECT_TORRENT_LOG"]))
)
