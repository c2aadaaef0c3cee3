/**
 * `effect-torrent trackers <file.torrent | magnet>`: announce to and scrape every tracker at once and print one line
 * per tracker, a diagnostic most clients don't offer.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PeerIdentity from "../core/PeerIdentity.ts"
import * as Probe from "../tracker/Probe.ts"
import * as ProbeFormat from "../tracker/ProbeFormat.ts"
import * as Restricted from "../tracker/Restricted.ts"
import { CliFailure, sanitizeText } from "./Output.ts"
import * as Source from "./Source.ts"

const sourceArg = Args.text({ name: "torrent | magnet" }).pipe(Args.withDescription("a .torrent file or a magnet: URI"))
const jsonOpt = Options.boolean("json").pipe(Options.withDescription("print a JSON array, one object per tracker"))
const timeoutOpt = Options.integer("timeout").pipe(
  Options.withDescription("seconds to wait for each tracker (default 10)"),
  Options.optional
)
const portOpt = Options.integer("port").pipe(
  Options.withDescription("the port announced to trackers (default 6881)"),
  Options.withDefault(6881)
)

export const trackers = Command.make(
  "trackers",
  { source: sourceArg, json: jsonOpt, timeout: timeoutOpt, port: portOpt },
  ({ json, port, source, timeout }) =>
    Effect.gen(function* () {
      const loaded = yield* Source.load(source)
      const target = loaded._tag === "Torrent"
        ? { tiers: loaded.metainfo.trackers, infoHash: loaded.metainfo.infoHash, totalSize: loaded.metainfo.totalLength }
        : {
          tiers: loaded.magnet.trackers.map((t) => [t]),
          infoHash: loaded.magnet.infoHashes.v1 ?? loaded.magnet.infoHashes.v2?.slice(0, 20),
          totalSize: loaded.magnet.exactLength ?? 0
        }
      if (target.infoHash === undefined) return yield* new CliFailure({ message: "the magnet has no info-hash", exitCode: 1 })
      if (target.tiers.length === 0) {
        return yield* new CliFailure({ message: `${source}: no trackers (a trackerless torrent)`, exitCode: 1 })
      }
      if (port < 0 || port > 65535) return yield* new CliFailure({ message: `--port ${port} is out of range`, exitCode: 2 })
      const seconds = Option.getOrElse(timeout, () => 10)
      if (seconds <= 0) return yield* new CliFailure({ message: "--timeout must be positive", exitCode: 2 })
      const results = yield* Probe.probe({
        tiers: target.tiers,
        infoHash: target.infoHash,
        totalSize: target.totalSize,
        peerId: PeerIdentity.generate(),
        port,
        timeout: Duration.seconds(seconds)
      }).pipe(Effect.provide(Restricted.fromEnvironment(Probe.trackerLayer)))
      if (json) yield* Console.log(JSON.stringify(ProbeFormat.toJsonArray(results), null, 2))
      else {
        for (const l of ProbeFormat.lines(results)) yield* Console.log(sanitizeText(l))
        yield* Console.log(ProbeFormat.summary(results))
      }
      // Exit status for scripts: 0 when at least one tracker answered, 1 when none did.
      if (results.every((r) => Probe.isFailed(r.result))) {
        return yield* new CliFailure({ message: "no tracker answered", exitCode: 1 })
      }
    })
).pipe(Command.withDescription("announce to and scrape every tracker of a torrent, one line per tracker"))
