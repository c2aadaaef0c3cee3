/**
 * The typed failure of the peer wire codec: what was wrong with the peer's bytes, and where in its stream.
 * Every reason is a protocol violation; the session closes the connection (and may ban for repeated offences).
 */
import * as Data from "effect/Data"

export type Reason =
  | "protocol-mismatch" // handshake: first byte is not 19 or the string is not "BitTorrent protocol" (maybe MSE)
  | "bad-handshake" // handshake: not exactly 68 bytes where a whole handshake was expected
  | "frame-too-large" // a length prefix above the bound for its id (piece: 9 + max block; others: max frame)
  | "bad-length" // a fixed-size message with the wrong length (have ≠ 5, request ≠ 13, piece < 9, ...)
  | "bad-bitfield" // a bitfield of the wrong size for the torrent, or with a spare bit set
  | "bad-index" // a piece index at or past the piece count (only checked when the count is known)
  | "request-too-large" // a request for more than the max block length (BEP 3: close such connections)
  | "not-negotiated" // a fast-extension or extension-protocol message without the reserved bit negotiated
  | "truncated" // `decodeAll`: the input ends inside a frame

export class WireError extends Data.TaggedError("WireError")<{
  readonly reason: Reason
  /** Byte offset in the peer's stream (after the handshake) where the offending frame starts. */
  readonly offset: number
  readonly detail: string
}> {
  override get message(): string {
    return `peer wire protocol violation at byte ${this.offset} (${this.reason}): ${this.detail}`
  }
}
