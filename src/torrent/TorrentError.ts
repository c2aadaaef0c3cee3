/** Why a torrent could not finish. */
import * as Data from "effect/Data"
import type { StorageError } from "../storage/Storage.ts"

export type Reason =
  | "no-peers" // nobody to download from within the no-peers timeout (see Torrent.ts for the rule)
  | "no-space" // the disk is full (data written so far stays valid and resumable)
  | "read-only" // the output directory cannot be written
  | "storage" // any other storage failure (unsafe paths, I/O errors)
  | "metadata-needed" // a magnet link without metadata (fetching it, BEP 9, is not implemented yet)
  | "invalid-selection" // a file selection names no file of the torrent
  | "incomplete" // seeding data that is missing or does not match the torrent
  | "listen-failed" // the listening socket could not be opened
  | "stopped" // the torrent was stopped (its scope closed) before what was waited for happened

export class TorrentError extends Data.TaggedError("TorrentError")<{
  readonly reason: Reason
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.detail
  }
}

/** A storage failure as the one line a user reads: what happened, the path, the system's word for it. */
export const fromStorage = (e: StorageError): TorrentError => {
  const reason = e.reason === "no-space" ? "no-space" : e.reason === "read-only" ? "read-only" : "storage"
  const what = e.reason === "no-space"
    ? "disk full"
    : e.reason === "read-only"
    ? "cannot write to the output directory"
    : e.reason === "too-many-files"
    ? "out of file descriptors"
    : e.reason === "changed"
    ? "a file changed on disk"
    : e.reason === "internal"
    ? "internal error"
    : e.reason === "unsafe-path"
    ? "unsafe path"
    : e.reason === "path-conflict"
    ? "path conflict"
    : "storage failed"
  const where = e.path === "" ? "" : `${e.path}: `
  return new TorrentError({ reason, detail: `${what}: ${where}${e.detail}`, cause: e })
}
