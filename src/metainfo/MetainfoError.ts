/**
 * The typed failure of metainfo (`.torrent`) decoding. `field` names the offending key as a dotted path
 * (`info.piece length`, `info.files[3].path`), so the CLI can print one line that points at the problem.
 */
import * as Data from "effect/Data"
import type { BencodeError } from "../bencode/BencodeError.ts"
import type { InfoHashV2 } from "../core/InfoHash.ts"

export type Reason =
  | "not-bencode" // the bytes are not one valid bencoded value (`cause` holds the BencodeError)
  | "not-a-dictionary" // the top-level value is not a dictionary
  | "missing-info" // no `info` dictionary
  | "missing-field" // a required key is absent (or has the wrong type, as libtorrent reads it)
  | "invalid-field" // a key is present but its value is unusable
  | "too-many-pieces" // more than 0x200000 pieces (libtorrent's default load limit)
  | "unsupported-version" // `meta version` above 2
  | "invalid-v2" // BEP 52 structure (file tree, pieces root, piece layers, v1/v2 agreement) is broken
  | "v2-only" // a valid v2-only torrent: not supported yet; `infoHashV2` and `name` are reported
  | "unsafe-path" // a path that would leave the output directory (SafePath.resolveInside)

export class MetainfoError extends Data.TaggedError("MetainfoError")<{
  readonly reason: Reason
  /** Dotted path of the offending key, when one key is to blame. */
  readonly field?: string | undefined
  readonly detail: string
  /** The bencode failure, for `not-bencode`. */
  readonly cause?: BencodeError | undefined
  /** For `v2-only` (and `invalid-v2` when the info dict was found): the SHA-256 info-hash. */
  readonly infoHashV2?: InfoHashV2 | undefined
  /** For `v2-only`: the torrent's (sanitized) name. */
  readonly name?: string | undefined
}> {
  override get message(): string {
    if (this.reason === "not-bencode" && this.cause !== undefined) return `not a torrent file: ${this.cause.message}`
    return this.field === undefined ? this.detail : `${this.field}: ${this.detail}`
  }
}
