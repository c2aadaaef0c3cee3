/**
 * Our peer id (BEP 20 Azureus style): `-ET0100-` followed by 12 random bytes printable as text. The prefix names
 * the client and version so other clients' peer lists show "effect-torrent 0.1.0".
 */
import { randomBytes } from "node:crypto"
import type { PeerId } from "./InfoHash.ts"

export const clientPrefix = "-ET0100-"

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_."

/** A fresh random peer id. */
export const generate = (): PeerId => {
  const out = new Uint8Array(20)
  for (let i = 0; i < clientPrefix.length; i++) out[i] = clientPrefix.charCodeAt(i)
  const rnd = randomBytes(12)
  for (let i = 0; i < 12; i++) out[8 + i] = ALPHABET.charCodeAt(rnd[i]! % ALPHABET.length)
  return out as PeerId
}

/** A random 32-bit `key` for tracker announces (lets a tracker recognise us across IP changes). */
export const trackerKey = (): number => randomBytes(4).readUInt32BE(0)
