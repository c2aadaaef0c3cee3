/**
 * The typed end of every peer connection: why it closed, which peer, and one line of detail. The torrent decides
 * from `reason` whether to retry later with backoff or ban (wrong info-hash, protocol violations).
 */
import * as Data from "effect/Data"

export type Reason =
  | "connect-failed" // TCP connect refused or unreachable
  | "connect-timeout" // TCP connect past its deadline
  | "encryption" // the MSE handshake failed under --encryption require (or the peer refused it)
  | "handshake-timeout" // no complete handshake within the deadline
  | "introduction-timeout" // handshake done but no first message within the deadline
  | "choked-timeout" // interested but never unchoked within the (optional) deadline
  | "wrong-info-hash" // the peer's handshake names another torrent
  | "self-connection" // the peer's id is our own
  | "protocol" // a wire or state violation (bad frame, bitfield not first, unsolicited data, ...)
  | "idle" // nothing received for the idle deadline
  | "snubbed" // requests went unanswered for too many request deadlines in a row
  | "closed" // the remote closed the connection (or it failed)
  | "local" // we closed it (the torrent dropped the peer)

export class PeerError extends Data.TaggedError("PeerError")<{
  readonly reason: Reason
  /** `host:port` of the peer. */
  readonly address: string
  readonly detail: string
}> {
  override get message(): string {
    return `peer ${this.address} closed (${this.reason}): ${this.detail}`
  }
}
