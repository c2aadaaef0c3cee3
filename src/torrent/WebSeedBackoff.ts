/**
 * A web seed server's health, as a pure state machine (times are the caller's clock, in ms):
 *
 * - `Up`: requests may go out.
 * - `Waiting(until)`: after an error (network, timeout, 5xx, too many redirects) nothing goes out before `until`.
 *   The wait doubles with each error in a row — `base`, 2·`base`, 4·`base` … at most `max` — and is at least a
 *   `Retry-After` the server gave (itself capped at `max`). A success resets the count.
 * - `Dropped(reason)`: bad data (a wrong length or range, data that failed hash checks): never used again.
 */
export interface Policy {
  /** The first wait, ms. */
  readonly base: number
  /** The longest wait, ms. */
  readonly max: number
}

export const defaultPolicy: Policy = { base: 1_000, max: 300_000 }

export type State =
  | { readonly _tag: "Up"; readonly failures: number }
  | { readonly _tag: "Waiting"; readonly failures: number; readonly until: number }
  | { readonly _tag: "Dropped"; readonly reason: string }

export const initial: State = { _tag: "Up", failures: 0 }

/** The wait after the `failures`-th error in a row (1-based). */
export const delay = (policy: Policy, failures: number): number =>
  Math.min(policy.max, policy.base * 2 ** Math.min(40, Math.max(0, failures - 1)))

/** An error at `now`; `retryAfter` in seconds when the server said. */
export const failed = (state: State, now: number, policy: Policy, retryAfter?: number | undefined): State => {
  if (state._tag === "Dropped") return state
  const failures = state.failures + 1
  const asked = retryAfter === undefined ? 0 : Math.min(policy.max, retryAfter * 1000)
  return { _tag: "Waiting", failures, until: now + Math.max(delay(policy, failures), asked) }
}

/** A request answered well. */
export const succeeded = (state: State): State => (state._tag === "Dropped" ? state : initial)

/** Bad data: the server is never used again. */
export const dropped = (state: State, reason: string): State =>
  state._tag === "Dropped" ? state : { _tag: "Dropped", reason }

/** Ms until requests may go out (0: now), or undefined when dropped. */
export const waitFor = (state: State, now: number): number | undefined =>
  state._tag === "Dropped" ? undefined : state._tag === "Up" ? 0 : Math.max(0, state.until - now)

/** The wait is over at `now`: `Up` again (the error count is kept until a success). */
export const wake = (state: State, now: number): State =>
  state._tag === "Waiting" && now >= state.until ? { _tag: "Up", failures: state.failures } : state
