/**
 * announce_peer tokens (BEP 5): the first `TOKEN_LENGTH` bytes of SHA-1(secret ‖ requester IP). The secret rotates
 * every `ROTATE_MS`; tokens made with the current or the previous secret are accepted, so a token lives 5 to 10
 * minutes. Pure: the caller passes the time (and, for tests, the randomness) and keeps the returned state.
 */
import { randomBytes, timingSafeEqual } from "node:crypto"
import * as Bytes from "../core/Bytes.ts"

export const ROTATE_MS = 5 * 60_000
export const TOKEN_LENGTH = 8
const SECRET_LENGTH = 16

export type Random = (n: number) => Uint8Array

const defaultRandom: Random = (n) => new Uint8Array(randomBytes(n))

export interface Tokens {
  readonly current: Uint8Array
  readonly previous: Uint8Array
  /** When `current` was made. */
  readonly rotatedAt: number
}

export const make = (now: number, random: Random = defaultRandom): Tokens => {
  const current = random(SECRET_LENGTH)
  return { current, previous: current, rotatedAt: now }
}

/** Rotates the secrets if a period has passed (both are replaced after two or more idle periods). */
export const rotate = (tokens: Tokens, now: number, random: Random = defaultRandom): Tokens => {
  const periods = Math.floor((now - tokens.rotatedAt) / ROTATE_MS)
  if (periods < 1) return tokens
  const current = random(SECRET_LENGTH)
  return {
    current,
    previous: periods === 1 ? tokens.current : random(SECRET_LENGTH),
    rotatedAt: tokens.rotatedAt + periods * ROTATE_MS
  }
}

const tokenFor = (secret: Uint8Array, ip: string): Uint8Array =>
  Bytes.sha1(Bytes.concat([secret, Bytes.encodeUtf8(ip)])).slice(0, TOKEN_LENGTH)

/** The token to hand `ip` in a get_peers response (call `rotate` first). */
export const issue = (tokens: Tokens, ip: string): Uint8Array => tokenFor(tokens.current, ip)

/** Whether `token` was issued to `ip` under the current or the previous secret (call `rotate` first). */
export const verify = (tokens: Tokens, token: Uint8Array, ip: string): boolean => {
  if (token.length !== TOKEN_LENGTH) return false
  return timingSafeEqual(token, tokenFor(tokens.current, ip)) || timingSafeEqual(token, tokenFor(tokens.previous, ip))
}
