/**
 * The typed failure of bencode decoding: what went wrong and at which byte offset.
 */
import * as Data from "effect/Data"

export type Reason =
  | "truncated" // input ended inside a value
  | "trailing-bytes" // bytes after the single top-level value
  | "unexpected-byte" // a byte that cannot start or continue a value here
  | "leading-zero" // `i03e`, or (strict) `03:abc`
  | "negative-zero" // `i-0e`
  | "invalid-integer" // `ie`, `i-e`, `i1.5e`, non-digits
  | "integer-overflow" // outside the signed 64-bit range (libtorrent's limit as well)
  | "invalid-length" // a string length that is not a run of digits
  | "unsorted-keys" // (strict) dictionary keys not in ascending byte order
  | "duplicate-key" // (strict) the same key twice in one dictionary
  | "non-string-key" // a dictionary key that is not a byte string
  | "depth-exceeded" // nesting deeper than the limit

export class BencodeError extends Data.TaggedError("BencodeError")<{
  readonly reason: Reason
  /** Byte offset in the input where the problem was found. */
  readonly offset: number
  readonly detail: string
}> {
  override get message(): string {
    return `invalid bencode at byte ${this.offset}: ${this.detail}`
  }
}
