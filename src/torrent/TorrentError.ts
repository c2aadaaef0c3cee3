/** Why a torrent could not finish. */
import * as Data from "effect/Data"

export type Reason =
  | "no-peers" // nobody to download from within the no-peers timeout (see Torrent.ts for the rule)
  | "no-space" // the disk is full (data written so far stays valid and resumable)
  | "read-only" // the output directory cannot be written
  | "storage" // any other storage failure (unsafe paths, I/O errors)
  | "metadata-needed" // a magnet link without metadata (fetching it, BEP 9, is not implemented yet)
  | "invalid-selection" // a file selection names no file of the torrent
  | "incomplete" // seeding data that is missing or does not match the torrent
  | "listen-failed" // the listening socket could not be opened

export class TorrentError extends Data.TaggedError("TorrentError")<{
  readonly reason: Reason
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.detail
  }
}
