/**
 * `effect-torrent verify <torrent> <dir> [--only INDEX|GLOB]... [--json]`: re-hashes the torrent's data in `dir`
 * (read-only; storage/Verify.ts) and prints every file's status — ok, missing, short, long, corrupt or
 * unverifiable — and a summary line; `--json` prints the report as one JSON document (VerifyReport.Report).
 * Exit 0 when every (selected) file is complete and correct, else 1 with one line on stderr naming the problem.
 * docs/VERIFY.md has the statuses and how pieces spanning several files are attributed.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Hasher from "../storage/Hasher.ts"
import * as Verify from "../storage/Verify.ts"
import * as VerifyReport from "../storage/VerifyReport.ts"
import * as FileSelection from "../torrent/FileSelection.ts"
import { selectFiles } from "./DownloadCommand.ts"
import { CliFailure, colorEnabled, groupDigits, sanitizeText, style, type Style } from "./Output.ts"
import * as Source from "./Source.ts"

/** Piece indices shown in text before "…" (`--json` lists them all). */
const SHOWN_PIECES = 5

const listPieces = (pieces: ReadonlyArray<number>): string =>
  pieces.slice(0, SHOWN_PIECES).join(", ") + (pieces.length > SHOWN_PIECES ? ", …" : "")

const plural = (n: number, word: string) => `${groupDigits(n)} ${word}${n === 1 ? "" : "s"}`

/** The detail after a file's path: sizes, failing pieces, the files a piece is shared with. */
const detail = (f: VerifyReport.FileReport, statusOf: (path: string) => string | undefined): string => {
  const t = sanitizeText
  const parts: Array<string> = []
  const size = f.size ?? 0
  if (f.status === "missing" && f.problem !== null) parts.push(t(f.problem))
  if (f.status === "short") parts.push(`${groupDigits(size)} of ${groupDigits(f.expectedSize)} bytes`)
  if (f.size !== null && f.size > f.expectedSize) {
    parts.push(`longer than expected: ${groupDigits(size)} bytes, the torrent says ${groupDigits(f.expectedSize)}`)
  }
  if (f.failedPieces.length > 0) {
    const shared = f.sharedWith.length === 0
      ? ""
      : ` (shared with ${f.sharedWith.map(t).join(", ")}: the wrong bytes may be in ${
        f.sharedWith.length === 1 ? "either file" : "any of them"
      })`
    const of = `${f.failedPieces.length} of ${plural(f.pieces, "piece")}`
    parts.push(`${of} failed: ${listPieces(f.failedPieces)}${shared}`)
  }
  if (f.uncheckedPieces.length > 0) {
    const by = f.blockedBy.map((p) => `${t(p)} (${statusOf(p) ?? "missing or short"})`).join(", ")
    parts.push(
      `${f.uncheckedPieces.length} of ${plural(f.pieces, "piece")} cannot be checked: ${
        listPieces(f.uncheckedPieces)
      }, shared with ${by}`
    )
  }
  return parts.join("; ")
}

const paint = (s: Style, status: VerifyReport.Status): string => {
  const label = status.padEnd(12)
  if (status === "ok") return s.green(label)
  return status === "unverifiable" || status === "long" ? s.yellow(label) : s.red(label)
}

/** The report as text: one line per file, then the summary line. */
export const reportText = (report: VerifyReport.Report, color: boolean): string => {
  const s = style(color)
  const status = new Map(report.files.map((f) => [f.path, f.status]))
  const lines: Array<string> = []
  if (!report.dirExists) lines.push(`${sanitizeText(report.dir)} does not exist: every file is missing`)
  for (const f of report.files) {
    const more = detail(f, (p) => status.get(p))
    lines.push(`  ${paint(s, f.status)}  ${sanitizeText(f.path)}${more === "" ? "" : s.dim(`  ${more}`)}`)
  }
  const m = report.summary
  const notOk = [
    m.piecesFailed > 0 ? `${groupDigits(m.piecesFailed)} failed` : "",
    m.piecesUnchecked > 0 ? `${groupDigits(m.piecesUnchecked)} not checkable` : ""
  ].filter((x) => x !== "")
  const pieces = `pieces ${groupDigits(m.piecesOk)}/${groupDigits(m.pieces)} ok` +
    (notOk.length > 0 ? ` (${notOk.join(", ")})` : "")
  const bytes = `bytes ${groupDigits(m.bytesOk)}/${groupDigits(m.bytes)} verified`
  lines.push(s.bold(`${pieces}, ${bytes}, files ${groupDigits(m.filesOk)}/${groupDigits(m.files)} ok`))
  return lines.join("\n")
}

/** The one stderr line when something is wrong. */
export const problemLine = (report: VerifyReport.Report): string => {
  if (!report.dirExists) return `${report.dir}: no such directory (all ${plural(report.files.length, "file")} missing)`
  const bad = report.files.filter((f) => f.status !== "ok")
  const named = bad.slice(0, 3).map((f) => `${f.path} (${f.status})`).join(", ")
  return `${bad.length} of ${plural(report.files.length, "file")} not ok: ${named}${bad.length > 3 ? ", …" : ""}`
}

const run = (input: {
  readonly torrent: string
  readonly dir: string
  readonly only: ReadonlyArray<string>
  readonly json: boolean
}) =>
  Effect.gen(function*() {
    const loaded = yield* Source.load(input.torrent)
    if (loaded._tag === "Magnet") {
      return yield* new CliFailure({ message: "verify needs a .torrent file, not a magnet link", exitCode: 2 })
    }
    const m = loaded.metainfo
    const only = yield* selectFiles(m, input.only)
    const err = process.stderr
    const progress = err.isTTY === true && !input.json
    let shownAt = 0
    const onProgress = (checked: number, total: number) => {
      const now = Date.now()
      if (now - shownAt < 100 && checked < total) return
      shownAt = now
      err.write(`\r\x1b[Kverifying ${groupDigits(checked)}/${groupDigits(total)} pieces`)
    }
    const report = yield* Verify.verify(m, {
      dir: input.dir,
      selected: FileSelection.wantedFiles(m, only),
      ...(progress ? { onProgress } : {})
    }).pipe(
      Effect.ensuring(Effect.sync(() => progress && shownAt > 0 && err.write("\r\x1b[K"))),
      Effect.catchTag("StorageError", (e) =>
        Effect.fail(new CliFailure({ message: sanitizeText(e.message), exitCode: 1 }))),
      Effect.provide(Hasher.layer)
    )
    yield* Console.log(input.json ? VerifyReport.toJson(report) : reportText(report, colorEnabled(process.stdout)))
    if (!report.summary.ok) return yield* new CliFailure({ message: sanitizeText(problemLine(report)), exitCode: 1 })
  })

export const verify = Command.make(
  "verify",
  {
    torrent: Args.text({ name: "torrent" }).pipe(Args.withDescription("the .torrent file")),
    dir: Args.text({ name: "dir" }).pipe(
      Args.withDescription("directory holding the torrent's data (where `download -o` put it); never written to")
    ),
    only: Options.text("only").pipe(
      Options.withDescription("check only this file: a number as `info` lists them, or a glob over its path"),
      Options.repeated
    ),
    json: Options.boolean("json").pipe(Options.withDescription("print the report as one JSON document"))
  },
  run
).pipe(Command.withDescription("re-hash a torrent's data in a directory and report every file (read-only)"))
