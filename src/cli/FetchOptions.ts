/**
 * The options of a metadata fetch (`info --fetch`, `magnet-to-torrent`), apart from the fetch itself (Fetch.ts), so
 * that `info FILE.torrent` does not load the peer code.
 */
import * as Options from "@effect/cli/Options"
import type * as Option from "effect/Option"
import { type PeerSourceInput, peerSourceOpts } from "./PeerSources.ts"
import { stateDirOpt } from "./Seeding.ts"

export const fetchOptions = {
  peer: Options.text("peer").pipe(
    Options.withDescription("a peer to ask for the metadata, host:port (repeatable)"),
    Options.repeated
  ),
  timeout: Options.integer("timeout").pipe(
    Options.withDescription("seconds without any peer offering the metadata before giving up (default 60)"),
    Options.optional
  ),
  noTrackers: Options.boolean("no-trackers").pipe(Options.withDescription("do not ask the magnet's trackers")),
  ...peerSourceOpts,
  stateDir: stateDirOpt
} as const

export interface FetchInput extends PeerSourceInput {
  readonly peer: ReadonlyArray<string>
  readonly timeout: Option.Option<number>
  readonly noTrackers: boolean
  readonly stateDir: Option.Option<string>
}

