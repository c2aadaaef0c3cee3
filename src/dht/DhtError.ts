/**
 * The typed failure of one outgoing DHT query. Lookups and announces swallow these per node (a DHT is full of
 * silent nodes); they reach callers only from single-node calls such as `ping`.
 */
import * as Data from "effect/Data"

export type Reason =
  | "timeout" // no answer within the query timeout
  | "error-response" // the node answered with a KRPC error (`code`, `detail` its message)
  | "network" // the datagram could not be sent, or the host name did not resolve

export class DhtError extends Data.TaggedError("DhtError")<{
  readonly reason: Reason
  /** `ip:port` of the node queried. */
  readonly node: string
  readonly detail: string
  readonly code?: number | undefined
}> {
  override get message(): string {
    return `dht node ${this.node}: ${this.detail}`
  }
}
