/**
 * `effect-torrent create <path>`: makes a .torrent of a file or directory (docs/CREATE.md): v1 by default, BEP 52
 * v2-only with `--v2`, a v1/v2 hybrid with `--hybrid` (as libtorrent 2.0.8 writes them). Pieces are hashed in
 * worker threads while the next ones are read; a TTY gets a redrawn progress line on stderr, pipes nothing until
 * the end. Prints the info-hash and where the torrent was written (`--json`: one object).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Fsp from "node:fs/promises"
import * as NodePath from "node:path"
import * as InfoHash from "../core/InfoHash.ts"
import * as Create from "../metainfo/Create.ts"
import * as Creator from "../storage/Creator.ts"
import * as AtomicFile from "../storage/AtomicFile.ts"
import * as Hasher from "../storage/Hasher.ts"
import { CliFailure, colorEnabled, formatBytes, groupDigits, sanitizeText, style } from "./Output.ts"

const pathArg = Args.text({ name: "path" }).pipe(Args.withDescription("the file or directory to make a torrent of"))
const outputOpt = Options.text("output").pipe(
  Options.withAlias("o"),
  Options.withDescription("where to write the .torrent (default: <name>.torrent in the current directory)"),
  Options.optional
)
const pieceLengthOpt = Options.text("piece-length").pipe(
  Options.withAlias("l"),
  Options.withDescription("piece size: bytes, 256K, 1M, or an exponent 14-27 (default: automatic, as libtorrent picks)"),
  Options.optional
)
const trackerOpt = Options.text("tracker").pipe(
  Options.withAlias("t"),
  Options.withDescription("an announce URL; each --tracker is a tier, \"URL1,URL2\" puts several in one (repeatable)"),
  Options.repeated
)
const webSeedOpt = Options.text("web-seed").pipe(
  Options.withAlias("w"),
  Options.withDescription("a web seed URL, BEP 19 (repeatable)"),
  Options.repeated
)
const privateOpt = Options.boolean("private").pipe(
  Options.withAlias("p"),
  Options.withDescription("set the private flag")
)
const commentOpt = Options.text("comment").pipe(
  Options.withAlias("c"),
  Options.withDescription("a comment"),
  Options.optional
)
const dateOpt = Options.text("date").pipe(
  Options.withDescription("creation date: seconds since 1970 or an ISO date (default: now, or $SOURCE_DATE_EPOCH)"),
  Options.optional
)
const noDateOpt = Options.boolean("no-date").pipe(Options.withDescription("leave the creation date out (reproducible)"))
const forceOpt = Options.boolean("force").pipe(Options.withAlias("f"), Options.withDescription("overwrite the output"))
const v2Opt = Options.boolean("v2").pipe(
  Options.withDescription("make a BitTorrent v2 torrent (BEP 52; only v2-capable clients such as libtorrent 2 load it)")
)
const hybridOpt = Options.boolean("hybrid").pipe(
  Options.withDescription("make a v1/v2 hybrid torrent (BEP 52 with BEP 47 pad files: every client loads it)")
)
const jsonOpt = Options.boolean("json").pipe(Options.withDescription("print one JSON object at the end"))

const usage = (message: string) => new CliFailure({ message: sanitizeText(message), exitCode: 2 })
const failure = (message: string) => new CliFailure({ message: sanitizeText(message), exitCode: 1 })

const USAGE_REASONS: ReadonlySet<Create.Reason> = new Set(["invalid-piece-length", "invalid-url", "invalid-option"])
const toCli = (e: Create.CreateError): CliFailure =>
  USAGE_REASONS.has(e.reason) ? usage(e.message) : failure(e.message)

const fromEither = <A>(e: Either.Either<A, Create.CreateError>): Effect.Effect<A, CliFailure> =>
  Either.isLeft(e) ? Effect.fail(toCli(e.left)) : Effect.succeed(e.right)

/** `--date`, else `$SOURCE_DATE_EPOCH`, else now; `undefined` with `--no-date`. */
const creationDate = (date: Option.Option<string>, noDate: boolean): Effect.Effect<number | undefined, CliFailure> => {
  if (noDate) {
    return Option.isSome(date)
      ? Effect.fail(usage("--date and --no-date exclude each other"))
      : Effect.succeed(undefined)
  }
  const text = Option.getOrUndefined(date)
  if (text === undefined) {
    const env = process.env["SOURCE_DATE_EPOCH"]
    if (env !== undefined && /^\d+$/.test(env)) return Effect.succeed(Number(env))
    return Effect.succeed(Math.floor(Date.now() / 1000))
  }
  if (/^\d+$/.test(text) && Number.isSafeInteger(Number(text))) return Effect.succeed(Number(text))
  const ms = Date.parse(text)
  return Number.isNaN(ms) || ms < 0
    ? Effect.fail(usage(`--date ${JSON.stringify(text)}: expected seconds since 1970 or an ISO date`))
    : Effect.succeed(Math.floor(ms / 1000))
}

const exists = (path: string): Promise<boolean> =>
  Fsp.lstat(path).then(() => true, () => false)

export const create = Command.make(
  "create",
  {
    path: pathArg,
    output: outputOpt,
    pieceLength: pieceLengthOpt,
    tracker: trackerOpt,
    webSeed: webSeedOpt,
    private: privateOpt,
    comment: commentOpt,
    date: dateOpt,
    noDate: noDateOpt,
    force: forceOpt,
    v2: v2Opt,
    hybrid: hybridOpt,
    json: jsonOpt
  },
  (input) =>
    Effect.gen(function*() {
      // Every option is checked before anything is read.
      const pieceLength = Option.isSome(input.pieceLength)
        ? yield* fromEither(Create.parsePieceLength(input.pieceLength.value))
        : undefined
      const trackers = yield* fromEither(Create.parseTrackers(input.tracker))
      const webSeeds = yield* fromEither(Create.parseWebSeeds(input.webSeed))
      const date = yield* creationDate(input.date, input.noDate)
      if (input.v2 && input.hybrid) return yield* usage("--v2 and --hybrid exclude each other")
      const format: Create.Format = input.v2 ? "v2" : input.hybrid ? "hybrid" : "v1"
      const name = NodePath.basename(NodePath.resolve(input.path))
      const output = NodePath.resolve(Option.getOrElse(input.output, () => `${name}.torrent`))
      if (!input.force && (yield* Effect.promise(() => exists(output)))) {
        return yield* failure(`${output} already exists (use --force to overwrite)`)
      }

      const err = process.stderr
      const tty = err.isTTY === true && !input.json
      const color = colorEnabled(err)
      const s = style(color)
      let lastPercent = -1
      const onProgress = (p: Creator.Progress) =>
        Effect.sync(() => {
          const percent = p.pieceCount === 0 ? 100 : Math.floor((p.piecesHashed * 100) / p.pieceCount)
          if (percent === lastPercent) return
          lastPercent = percent
          err.write(
            `\r\x1b[K${s.bold("hashing")} ${String(percent).padStart(3)}%  ${groupDigits(p.piecesHashed)}/${
              groupDigits(p.pieceCount)
            } pieces  ${formatBytes(p.bytesHashed)} / ${formatBytes(p.totalSize)}`
          )
        })
      const onScan = (scan: Creator.Scan) =>
        Effect.forEach(
          scan.skipped,
          (k) => Console.error(`effect-torrent: warning: ${sanitizeText(k.path)}: ${k.reason}`),
          { discard: true }
        )

      const result = yield* Creator.create(input.path, {
        format,
        pieceLength,
        trackers,
        webSeeds,
        private: input.private,
        comment: Option.getOrUndefined(input.comment),
        creationDate: date,
        onScan,
        ...(tty ? { onProgress } : {})
      }).pipe(
        Effect.provide(Hasher.layerPool({ inlineMax: 64 * 1024 })),
        Effect.ensuring(Effect.sync(() => tty && lastPercent >= 0 && err.write("\r\x1b[K"))),
        Effect.mapError(toCli)
      )

      // AtomicFile: never a partial .torrent left behind on failure (disk full, interruption waits for the write);
      // without --force the kernel refuses an existing file (O_EXCL), with it the old one is replaced by a rename.
      yield* AtomicFile.write(output, result.torrent, { exclusive: !input.force }).pipe(
        Effect.mapError((e) =>
          failure(
            e.code === "EEXIST"
              ? `${output} already exists (use --force to overwrite)`
              : `${output}: cannot write: ${e.code ?? e.message}`
          )
        )
      )

      // Once the torrent is written (a failure stays one line).
      if (trackers.length === 0) {
        const reach = input.private
          ? "a private torrent without a tracker cannot be found by anyone"
          : "peers will find it only through the DHT, PEX and local discovery"
        yield* Console.error(`effect-torrent: warning: no --tracker given: ${reach} (add -t URL)`)
      }
      const infoHash = InfoHash.toHex(result.infoHash)
      const infoHashV2 = result.infoHashV2 === undefined ? undefined : InfoHash.toHex(result.infoHashV2)
      const files = result.scan.files.length
      if (input.json) {
        return yield* Console.log(JSON.stringify({
          infoHash,
          ...(infoHashV2 !== undefined ? { infoHashV2 } : {}),
          format,
          path: output,
          name: result.metainfo.name,
          files,
          pieces: result.pieceCount,
          pieceLength: result.pieceLength,
          totalSize: result.scan.totalSize,
          skipped: result.scan.skipped
        }))
      }
      const out = style(colorEnabled(process.stdout))
      const field = (label: string, value: string) => `${out.bold(label.padEnd(13))} ${value}`
      const size = result.scan.totalSize
      yield* Console.log([
        field("name", sanitizeText(result.metainfo.name)),
        field("size", `${groupDigits(size)} bytes (${formatBytes(size)}) in ${files} file${files === 1 ? "" : "s"}`),
        field("pieces", `${groupDigits(result.pieceCount)} × ${formatBytes(result.pieceLength)}`),
        ...(format !== "v2" ? [field("info-hash", out.cyan(infoHash))] : []),
        ...(infoHashV2 !== undefined ? [field("info-hash v2", out.cyan(infoHashV2))] : []),
        field("torrent", sanitizeText(output))
      ].join("\n"))
    })
).pipe(Command.withDescription("make a .torrent (v1, --v2 or --hybrid) of a file or directory"))
