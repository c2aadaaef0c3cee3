/**
 * `effect-torrent magnet-to-torrent <magnet> [-o FILE] [--force] [--peer host:port]... [--timeout S] ...`: fetches
 * the magnet link's metadata from peers (BEP 9) and writes a `.torrent` file (the info dict exactly as received,
 * the magnet's trackers and web seeds around it). Default output: `<name>.torrent` in the current directory.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as InfoHash from "../core/InfoHash.ts"
import * as Client from "../session/Client.ts"
import * as Fetch from "./Fetch.ts"
import * as FetchOptions from "./FetchOptions.ts"
import { CliFailure, sanitizeText } from "./Output.ts"
import * as Source from "./Source.ts"

/** A file name from a torrent's name: no separators or control characters, never empty or a dot name. */
const fileNameOf = (name: string, fallback: string): string => {
  const cleaned = name.replace(/[/\\\x00-\x1f\x7f]/g, "_").trim()
  return cleaned === "" || cleaned === "." || cleaned === ".." ? fallback : cleaned
}

export const magnetToTorrent = Command.make(
  "magnet-to-torrent",
  {
    magnet: Args.text({ name: "magnet" }).pipe(Args.withDescription("a magnet: URI")),
    output: Options.text("output").pipe(
      Options.withAlias("o"),
      Options.withDescription("the .torrent file to write (default: <name>.torrent here)"),
      Options.optional
    ),
    force: Options.boolean("force").pipe(Options.withDescription("overwrite an existing file")),
    quiet: Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("print only errors")),
    ...FetchOptions.fetchOptions
  },
  (input) =>
    Effect.gen(function*() {
      const loaded = yield* Source.load(input.magnet)
      if (loaded._tag !== "Magnet") {
        return yield* new CliFailure({ message: `${sanitizeText(input.magnet)}: not a magnet link`, exitCode: 2 })
      }
      const out = Option.getOrUndefined(input.output)
      if (out !== undefined && !input.force && Fs.existsSync(out)) {
        return yield* new CliFailure({ message: `${sanitizeText(out)} exists (--force to overwrite)`, exitCode: 1 })
      }
      const fetched = yield* Fetch.fetch(loaded.magnet, input)
      const m = fetched.metainfo
      const path = out ?? `${fileNameOf(m.name, InfoHash.toHex(m.infoHash))}.torrent`
      if (out === undefined && !input.force && Fs.existsSync(path)) {
        return yield* new CliFailure({ message: `${sanitizeText(path)} exists (--force to overwrite)`, exitCode: 1 })
      }
      yield* Client.writeTorrentFile(path, fetched.bytes).pipe(
        Effect.mapError((e) => new CliFailure({ message: sanitizeText(e.message), exitCode: 1 }))
      )
      if (!input.quiet) process.stdout.write(`${InfoHash.toHex(m.infoHash)}  ${sanitizeText(path)}\n`)
    })
).pipe(Command.withDescription("fetch a magnet link's metadata from peers and write it as a .torrent file"))
