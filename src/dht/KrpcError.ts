/**
 * The typed failure of KRPC decoding. A datagram that fails is dropped, except a query whose transaction id could
 * be read (`transactionId` set, `isQuery` true): the node answers it with error 203 (protocol error).
 */
import * as Data from "effect/Data"

export type Reason =
  | "too-large" // datagram above the size limit
  | "bencode" // not one strict bencode value
  | "not-a-dict" // the top-level value is not a dictionary
  | "missing-field" // a required key is absent
  | "invalid-field" // a key holds the wrong type, length or range

export class KrpcError extends Data.TaggedError("KrpcError")<{
  readonly reason: Reason
  readonly detail: string
  /** The `t` of the offending message, when it was readable. */
  readonly transactionId?: Uint8Array | undefined
  /** Whether the message said it was a query (`y` = `q`). */
  readonly isQuery: boolean
}> {
  override get message(): string {
    return `invalid KRPC message (${this.reason}): ${this.detail}`
  }
}
