/**
 * Branded identifiers: v1 info-hash (SHA-1, 20 bytes), v2 info-hash (SHA-256, 32 bytes), peer id (20 bytes).
 */
import * as Brand from "effect/Brand"
import * as Bytes from "./Bytes.ts"

/** SHA-1 of a v1 info dict's original bytes. */
export type InfoHashV1 = Uint8Array & Brand.Brand<"InfoHashV1">
/** SHA-256 of a v2 info dict's original bytes. */
export type InfoHashV2 = Uint8Array & Brand.Brand<"InfoHashV2">

export const InfoHashV1 = Brand.refined<InfoHashV1>(
  (b) => b.length === 20,
  (b) => Brand.error(`a v1 info-hash is 20 bytes, got ${b.length}`)
)
export const InfoHashV2 = Brand.refined<InfoHashV2>(
  (b) => b.length === 32,
  (b) => Brand.error(`a v2 info-hash is 32 bytes, got ${b.length}`)
)

/** Info-hash v1 of the raw bytes of an info dictionary. */
export const v1Of = (rawInfo: Uint8Array): InfoHashV1 => Bytes.sha1(rawInfo) as InfoHashV1
/** Info-hash v2 of the raw bytes of an info dictionary. */
export const v2Of = (rawInfo: Uint8Array): InfoHashV2 => Bytes.sha256(rawInfo) as InfoHashV2

/** Lower-case hex form, as trackers' web pages and magnet links show it. */
export const toHex = (h: InfoHashV1 | InfoHashV2): string => Bytes.toHex(h)

/** The 20-byte id a v2 info-hash uses on the v1 wire and in trackers (BEP 52: truncated SHA-256). */
export const truncatedV2 = (h: InfoHashV2): InfoHashV1 => h.slice(0, 20) as InfoHashV1

/** A 20-byte peer id (BEP 20 style). */
export type PeerId = Uint8Array & Brand.Brand<"PeerId">
export const PeerId = Brand.refined<PeerId>(
  (b) => b.length === 20,
  (b) => Brand.error(`a peer id is 20 bytes, got ${b.length}`)
)
