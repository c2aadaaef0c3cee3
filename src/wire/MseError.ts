/**
 * The typed failure of a message stream encryption (MSE/PE) handshake. Every reason is the peer's fault, a policy
 * mismatch, or the connection going away; the session closes the connection.
 */
import * as Data from "effect/Data"

export type Reason =
  | "bad-public-key" // the peer's Ya/Yb is not in 2..P-2
  | "sync-not-found" // HASH('req1', S) (responder) or the encrypted VC (initiator) not within 512 bytes of padding
  | "unknown-info-hash" // responder: HASH('req2', SKEY) matches none of our torrents
  | "bad-vc" // responder: the verification constant does not decrypt to 8 zero bytes
  | "padding-too-long" // len(PadC) or len(PadD) above 512
  | "no-common-crypto" // responder: crypto_provide offers nothing our policy allows
  | "bad-crypto-select" // initiator: crypto_select is not exactly one of the methods we offered
  | "leading-zero-secret" // initiator, when asked to: S begins with a zero byte (libtorrent before arvidn/libtorrent#8434 refuses it)
  | "finished" // push after the handshake completed or failed (a caller bug, reported rather than thrown)
  // Over a socket (peer/Encryption.ts):
  | "closed" // the connection ended before the peer sent an MSE answer (initiator: no Yb; typical of plain-only peers)
  | "refused" // initiator: the peer answered Yb, then closed (it speaks MSE but turned us down)
  | "timeout" // the handshake did not complete within its deadline

export class MseError extends Data.TaggedError("MseError")<{
  readonly reason: Reason
  readonly detail: string
}> {
  override get message(): string {
    return `encrypted handshake failed (${this.reason}): ${this.detail}`
  }
}
