/**
 * Message stream encryption (MSE/PE, the "Vuze MSE spec" spoken by libtorrent, Transmission, aria2 and WebTorrent)
 * as two pure incremental state machines: feed them socket chunks split anywhere, send what they return, and take
 * the ciphers and the first BitTorrent bytes when `done` appears. No sockets, no Effect, synchronous.
 *
 * ```
 * A → B  Ya, PadA
 * B → A  Yb, PadB
 * A → B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S), ENCRYPT(VC, crypto_provide, len(PadC), PadC,
 *        len(IA)), ENCRYPT(IA)
 * B → A  ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
 * A → B  ENCRYPT2(payload)
 * ```
 *
 * DH over the 768-bit MSE prime with G = 2 and 160-bit private keys; S and Y are 96 bytes big-endian. ENCRYPT is
 * RC4 keyed HASH('keyA', S, SKEY) from A and HASH('keyB', S, SKEY) from B, first 1024 bytes discarded; ENCRYPT2 is
 * the same RC4 stream when rc4 was selected, nothing when plaintext was. SKEY is the info-hash. Buffering is bounded:
 * a peer gets 512 bytes of padding before the sync hash / VC must appear, PadC and PadD at most 512 bytes, IA at
 * most 65535 (its length field is 16 bits).
 */
import { createDiffieHellman, createHash, randomBytes } from "node:crypto"
import type { DiffieHellman } from "node:crypto"
import type { InfoHashV1 } from "../core/InfoHash.ts"
import { MseError } from "./MseError.ts"
import { plaintext, Rc4 } from "./Rc4.ts"
import type { StreamCipher } from "./Rc4.ts"

/** crypto_provide / crypto_select bits. */
export const CRYPTO_PLAINTEXT = 0x01
export const CRYPTO_RC4 = 0x02

export type Cipher = "rc4" | "plaintext"

/**
 * `--encryption`: prefer (try MSE first, offer/accept rc4 and plaintext; plain BitTorrent too), require (MSE with
 * rc4 only), off (no MSE at all). Which cipher a responder picks when offered both is its `prefer` option
 * (peer/Encryption.ts picks plaintext under "prefer", as libtorrent does with its default `prefer_rc4 = false`).
 */
export type Policy = "prefer" | "require" | "off"

/** The crypto bits a policy offers (outgoing) and accepts (incoming); undefined: do not speak MSE. */
export const cryptoFor = (policy: Policy): number | undefined =>
  policy === "prefer" ? CRYPTO_RC4 | CRYPTO_PLAINTEXT : policy === "require" ? CRYPTO_RC4 : undefined

/** The well-known 768-bit MSE prime P, big-endian. */
export const prime: Uint8Array = Uint8Array.from(
  Buffer.from(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A4" +
      "31B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    "hex"
  )
)
export const generator = 2
/** Bytes of Ya, Yb and S. */
export const keyLength = 96
/** Bytes of a private key (160 bits, as the spec recommends). */
export const privateKeyLength = 20
export const maxPadding = 512

const VC_LENGTH = 8
const RC4_DISCARD = 1024

export interface Done {
  readonly cipher: Cipher
  /** Encrypts what we send from now on, in place (RC4 continuing the handshake stream, or the identity). */
  readonly encrypt: StreamCipher
  /** Decrypts what we receive after `initialPayload`, in place. */
  readonly decrypt: StreamCipher
  readonly infoHash: InfoHashV1
  /**
   * The first bytes of the peer's BitTorrent stream, already decrypted: the responder gets IA plus whatever followed
   * it, the initiator whatever followed PadD. Owned (a copy), possibly empty.
   */
  readonly initialPayload: Uint8Array
}

export interface Step {
  /** Bytes to write to the socket, in order. */
  readonly send: ReadonlyArray<Uint8Array>
  readonly done?: Done
  readonly error?: MseError
}

export interface Handshaker {
  /** The first bytes to send: Ya + PadA for the initiator, nothing for the responder (it waits for Ya). */
  readonly start: () => Uint8Array
  /** Feeds bytes from the peer. After `done` or `error`, further pushes return an error. Never throws. */
  readonly push: (chunk: Uint8Array) => Step
  /** Bytes currently held while waiting for more (bounded; for tests and metrics). */
  readonly buffered: () => number
}

export type Random = (n: number) => Uint8Array

const defaultRandom: Random = (n) => new Uint8Array(randomBytes(n))

export interface InitiatorOptions {
  readonly infoHash: InfoHashV1
  /** CRYPTO_RC4 and/or CRYPTO_PLAINTEXT. */
  readonly cryptoProvide: number
  /** Sent encrypted inside the handshake (typically our BitTorrent handshake), at most 65535 bytes. */
  readonly initialPayload?: Uint8Array | undefined
  /** Upper bound for the random PadA and PadC lengths, 0..512. Default 512. */
  readonly maxPadding?: number | undefined
  readonly random?: Random | undefined
  /**
   * Fail with "leading-zero-secret" (before sending anything more) when S begins with a zero byte, so the caller can
   * redial with fresh keys. libtorrent before its 2026 fix (arvidn/libtorrent#8434; 2.0.8 here, qBittorrent 4.x)
   * hashes HASH('req3', S) over S without its leading zeros and then does not find the torrent: one connection in
   * 256 would be refused (measured against 2.0.8: every refusal had S[0] = 0, and only those). Default false.
   */
  readonly rejectLeadingZeroSecret?: boolean | undefined
}

export interface ResponderOptions {
  /** Our torrent whose HASH('req2', infoHash) (see `req2Hash`) equals the argument, if any. */
  readonly lookupInfoHash: (req2: Uint8Array) => InfoHashV1 | undefined
  /** Methods we accept, CRYPTO_RC4 and/or CRYPTO_PLAINTEXT. */
  readonly cryptoAllowed: number
  /** Chosen when the initiator offers both and both are allowed. Default "rc4". */
  readonly prefer?: Cipher | undefined
  /** Upper bound for the random PadB and PadD lengths, 0..512. Default 512. */
  readonly maxPadding?: number | undefined
  readonly random?: Random | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Detection

const PLAIN_PREFIX = Uint8Array.from("\x13BitTorrent protocol", (c) => c.charCodeAt(0))

/**
 * Whether the bytes seen so far could start a plain BitTorrent handshake (19, "BitTorrent protocol"). With fewer
 * than 20 bytes a `true` is provisional; a `false` is final, and the connection is an MSE handshake (or garbage).
 */
export const looksLikePlainHandshake = (firstBytes: Uint8Array): boolean => {
  const n = Math.min(firstBytes.length, PLAIN_PREFIX.length)
  for (let i = 0; i < n; i++) if (firstBytes[i] !== PLAIN_PREFIX[i]) return false
  return true
}

/** "plain" / "encrypted" once decided; "undecided" while every byte so far matches the plain prefix. */
export const classify = (firstBytes: Uint8Array): "plain" | "encrypted" | "undecided" =>
  !looksLikePlainHandshake(firstBytes)
    ? "encrypted"
    : firstBytes.length >= PLAIN_PREFIX.length
    ? "plain"
    : "undecided"

// ---------------------------------------------------------------------------------------------------------------
// Primitives

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))
const REQ1 = ascii("req1")
const REQ2 = ascii("req2")
const REQ3 = ascii("req3")
const KEY_A = ascii("keyA")
const KEY_B = ascii("keyB")

/** SHA-1 of the concatenation. */
const hash = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const h = createHash("sha1")
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** HASH('req2', infoHash): what `lookupInfoHash` receives; a session keys its torrents by it. */
export const req2Hash = (infoHash: Uint8Array): Uint8Array => hash(REQ2, infoHash)

const leftPad = (bytes: Uint8Array, length: number): Uint8Array => {
  if (bytes.length === length) return bytes
  const out = new Uint8Array(length)
  out.set(bytes.subarray(Math.max(0, bytes.length - length)), Math.max(0, length - bytes.length))
  return out
}

const toBigInt = (bytes: Uint8Array): bigint => {
  let hex = "0x0"
  for (const b of bytes) hex += b.toString(16).padStart(2, "0")
  return BigInt(hex)
}
const P = toBigInt(prime)

/** Whether a peer's public key lies in 2..P-2 (0, 1 and P-1 would make S guessable). */
export const validPublicKey = (y: Uint8Array): boolean => {
  if (y.length !== keyLength) return false
  const v = toBigInt(y)
  return v > 1n && v < P - 1n
}

// One OpenSSL DH object, created on first use: creating one checks the prime (20-30 ms, once per process); with a
// fresh 160-bit private key, Y and S together then cost about 0.1 ms (BigInt square-and-multiply: 0.8 ms). Safe to
// share: each use sets the key and computes synchronously, nothing interleaves.
let sharedDh: DiffieHellman | undefined
const dh = (): DiffieHellman => (sharedDh ??= createDiffieHellman(Buffer.from(prime), generator))

/** Pays the one-time DH setup (the prime check) now, e.g. at session start, rather than on the first connection. */
export const prepare = (): void => {
  dh()
}
const G = Buffer.from([generator])

/** Y = G^x mod P, 96 bytes. */
export const publicKey = (privateKey: Uint8Array): Uint8Array => {
  const d = dh()
  d.setPrivateKey(Buffer.from(privateKey))
  return leftPad(new Uint8Array(d.computeSecret(G)), keyLength)
}

/** S = Y^x mod P, 96 bytes. `y` must pass `validPublicKey`. */
export const sharedSecret = (privateKey: Uint8Array, y: Uint8Array): Uint8Array => {
  const d = dh()
  d.setPrivateKey(Buffer.from(privateKey))
  return leftPad(new Uint8Array(d.computeSecret(Buffer.from(y))), keyLength)
}

const rc4For = (name: Uint8Array, s: Uint8Array, skey: Uint8Array): Rc4 => {
  const r = new Rc4(hash(name, s, skey))
  r.discard(RC4_DISCARD)
  return r
}

/** A random length in 0..max. */
const padLength = (random: Random, max: number): number => {
  if (max <= 0) return 0
  const r = random(2)
  return ((r[0]! << 8) | r[1]!) % (max + 1)
}

const clampPadding = (max: number | undefined): number =>
  max === undefined ? maxPadding : Math.max(0, Math.min(maxPadding, Math.floor(max)))

const u16 = (buf: Uint8Array, at: number): number => (buf[at]! << 8) | buf[at + 1]!
const u32 = (buf: Uint8Array, at: number): number =>
  ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0

/** Index of `needle` in `hay[from, to)` as a start position, or -1. */
const indexOf = (hay: Uint8Array, needle: Uint8Array, from: number, to: number): number => {
  outer: for (let i = from; i < to; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer
    return i
  }
  return -1
}

/** A growable receive buffer with a read position; compacts as it goes. */
class Inbox {
  buf: Uint8Array
  /** Bytes held. */
  end: number
  constructor() {
    this.buf = new Uint8Array(1024)
    this.end = 0
  }
  append(chunk: Uint8Array): void {
    if (this.end + chunk.length > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.end + chunk.length))
      next.set(this.buf.subarray(0, this.end))
      this.buf = next
    }
    this.buf.set(chunk, this.end)
    this.end += chunk.length
  }
  /** Forgets everything (the handshake is over). */
  clear(): void {
    this.buf = new Uint8Array(0)
    this.end = 0
  }
  /** Drops the first `n` bytes. */
  consume(n: number): void {
    this.buf.copyWithin(0, n, this.end)
    this.end -= n
  }
}

const fail = (reason: MseError["reason"], detail: string): Step => ({
  send: [],
  error: new MseError({ reason, detail })
})

const selectedCipher = (select: number): Cipher => (select === CRYPTO_RC4 ? "rc4" : "plaintext")

// ---------------------------------------------------------------------------------------------------------------
// Initiator (A)

/** The outgoing side: sends Ya first, then the sync hash, the info-hash proof and crypto_provide. */
export const initiator = (options: InitiatorOptions): Handshaker => {
  const random = options.random ?? defaultRandom
  const maxPad = clampPadding(options.maxPadding)
  const ia = options.initialPayload ?? new Uint8Array(0)
  if (ia.length > 0xffff) throw new RangeError(`MSE initial payload of ${ia.length} bytes`)
  const provide = options.cryptoProvide & (CRYPTO_RC4 | CRYPTO_PLAINTEXT)
  const x = random(privateKeyLength)
  const inbox = new Inbox()
  // "yb": waiting for Yb; "vc": scanning for ENCRYPT(VC); "select": crypto_select + len(PadD); "padd": PadD
  let state: "init" | "yb" | "vc" | "select" | "padd" | "over" = "init"
  let failed: Step | undefined
  let encrypt: Rc4 | undefined
  let decrypt: Rc4 | undefined
  let encryptedVc: Uint8Array = new Uint8Array(0)
  let select = 0
  let padD = 0

  const start = (): Uint8Array => {
    if (state !== "init") return new Uint8Array(0)
    state = "yb"
    const ya = publicKey(x)
    const pad = random(padLength(random, maxPad))
    const out = new Uint8Array(keyLength + pad.length)
    out.set(ya)
    out.set(pad, keyLength)
    return out
  }

  const push = (chunk: Uint8Array): Step => {
    if (failed !== undefined) return failed
    if (state === "over" || state === "init") {
      return fail("finished", state === "init" ? "push before start" : "push after the handshake")
    }
    inbox.append(chunk)
    const send: Array<Uint8Array> = []
    const stop = (step: Step): Step => {
      state = "over"
      inbox.clear()
      failed = step.error !== undefined ? step : fail("finished", "handshake already completed")
      return { ...step, send: [...send, ...step.send] }
    }
    for (;;) {
      const buf = inbox.buf
      if (state === "yb") {
        if (inbox.end < keyLength) return { send }
        const yb = buf.slice(0, keyLength)
        if (!validPublicKey(yb)) return stop(fail("bad-public-key", "Yb is not in 2..P-2"))
        const s = sharedSecret(x, yb)
        if (s[0] === 0 && options.rejectLeadingZeroSecret === true) {
          return stop(fail("leading-zero-secret", "S begins with a zero byte (old libtorrent would refuse it)"))
        }
        inbox.consume(keyLength)
        encrypt = rc4For(KEY_A, s, options.infoHash)
        decrypt = rc4For(KEY_B, s, options.infoHash)
        // VC is zeros, so its encryption is the first 8 bytes of B's keystream; `decrypt` moves past it.
        encryptedVc = new Uint8Array(VC_LENGTH)
        decrypt.process(encryptedVc)
        const req3 = hash(REQ3, s)
        const proof = req2Hash(options.infoHash)
        for (let i = 0; i < 20; i++) proof[i] = proof[i]! ^ req3[i]!
        const padC = padLength(random, maxPad)
        const body = new Uint8Array(VC_LENGTH + 4 + 2 + padC + 2 + ia.length)
        const view = new DataView(body.buffer)
        view.setUint32(VC_LENGTH, provide)
        view.setUint16(VC_LENGTH + 4, padC)
        body.set(random(padC), VC_LENGTH + 6)
        view.setUint16(VC_LENGTH + 6 + padC, ia.length)
        body.set(ia, VC_LENGTH + 8 + padC)
        encrypt.process(body)
        const out = new Uint8Array(40 + body.length)
        out.set(hash(REQ1, s))
        out.set(proof, 20)
        out.set(body, 40)
        send.push(out)
        state = "vc"
      } else if (state === "vc") {
        // PadB (≤ 512 bytes) precedes the VC; everything before the match is padding.
        const limit = maxPadding + VC_LENGTH
        const at = indexOf(buf, encryptedVc, 0, Math.min(inbox.end, limit) - VC_LENGTH + 1)
        if (at < 0) {
          if (inbox.end >= limit) return stop(fail("sync-not-found", "no encrypted VC within 512 bytes after Yb"))
          return { send }
        }
        inbox.consume(at + VC_LENGTH)
        state = "select"
      } else if (state === "select") {
        if (inbox.end < 6) return { send }
        decrypt!.process(buf, 0, 6)
        select = u32(buf, 0)
        padD = u16(buf, 4)
        inbox.consume(6)
        if ((select !== CRYPTO_RC4 && select !== CRYPTO_PLAINTEXT) || (select & provide) === 0) {
          return stop(fail("bad-crypto-select", `crypto_select ${select} for crypto_provide ${provide}`))
        }
        if (padD > maxPadding) return stop(fail("padding-too-long", `len(PadD) = ${padD}`))
        state = "padd"
      } else if (state === "padd") {
        if (inbox.end < padD) return { send }
        decrypt!.process(buf, 0, padD)
        inbox.consume(padD)
        const cipher = selectedCipher(select)
        const rest = buf.slice(0, inbox.end)
        if (cipher === "rc4") decrypt!.process(rest)
        inbox.consume(inbox.end)
        return stop({
          send: [],
          done: {
            cipher,
            encrypt: cipher === "rc4" ? encrypt! : plaintext,
            decrypt: cipher === "rc4" ? decrypt! : plaintext,
            infoHash: options.infoHash,
            initialPayload: rest
          }
        })
      } else {
        return { send }
      }
    }
  }

  return { start, push, buffered: () => inbox.end }
}

// ---------------------------------------------------------------------------------------------------------------
// Responder (B)

/** The incoming side: answers Ya with Yb, finds the torrent from the initiator's proof, selects the crypto. */
export const responder = (options: ResponderOptions): Handshaker => {
  const random = options.random ?? defaultRandom
  const maxPad = clampPadding(options.maxPadding)
  const allowed = options.cryptoAllowed & (CRYPTO_RC4 | CRYPTO_PLAINTEXT)
  const prefer = options.prefer ?? "rc4"
  const x = random(privateKeyLength)
  const inbox = new Inbox()
  // "ya": Ya; "req1": scanning for HASH('req1', S); "req2": the info-hash proof; "vc": VC, crypto_provide,
  // len(PadC); "padc": PadC + len(IA); "ia": IA
  let state: "ya" | "req1" | "req2" | "vc" | "padc" | "ia" | "over" = "ya"
  let failed: Step | undefined
  let s: Uint8Array = new Uint8Array(0)
  let req1: Uint8Array = new Uint8Array(0)
  let infoHash: InfoHashV1 | undefined
  let encrypt: Rc4 | undefined
  let decrypt: Rc4 | undefined
  let select = 0
  let padC = 0
  let iaLength = 0

  const push = (chunk: Uint8Array): Step => {
    if (failed !== undefined) return failed
    if (state === "over") return fail("finished", "push after the handshake")
    inbox.append(chunk)
    const send: Array<Uint8Array> = []
    const stop = (step: Step): Step => {
      state = "over"
      inbox.clear()
      failed = step.error !== undefined ? step : fail("finished", "handshake already completed")
      return { ...step, send: [...send, ...step.send] }
    }
    for (;;) {
      const buf = inbox.buf
      if (state === "ya") {
        if (inbox.end < keyLength) return { send }
        const ya = buf.slice(0, keyLength)
        if (!validPublicKey(ya)) return stop(fail("bad-public-key", "Ya is not in 2..P-2"))
        s = sharedSecret(x, ya)
        req1 = hash(REQ1, s)
        inbox.consume(keyLength)
        const pad = random(padLength(random, maxPad))
        const out = new Uint8Array(keyLength + pad.length)
        out.set(publicKey(x))
        out.set(pad, keyLength)
        send.push(out)
        state = "req1"
      } else if (state === "req1") {
        // PadA (≤ 512 bytes) precedes HASH('req1', S).
        const limit = maxPadding + 20
        const at = indexOf(buf, req1, 0, Math.min(inbox.end, limit) - 20 + 1)
        if (at < 0) {
          if (inbox.end >= limit) return stop(fail("sync-not-found", "no HASH('req1', S) within 512 bytes after Ya"))
          return { send }
        }
        inbox.consume(at + 20)
        state = "req2"
      } else if (state === "req2") {
        if (inbox.end < 20) return { send }
        const req2 = hash(REQ3, s)
        for (let i = 0; i < 20; i++) req2[i] = req2[i]! ^ buf[i]!
        infoHash = options.lookupInfoHash(req2)
        const significant = s.findIndex((b) => b !== 0)
        if (infoHash === undefined && significant > 0) {
          // An initiator with libtorrent's old bug (see `rejectLeadingZeroSecret`) masked its proof with
          // HASH('req3', S without leading zeros): accept that too (it names the torrent all the same).
          const alt = hash(REQ3, s.subarray(significant))
          for (let i = 0; i < 20; i++) alt[i] = alt[i]! ^ buf[i]!
          infoHash = options.lookupInfoHash(alt)
        }
        inbox.consume(20)
        if (infoHash === undefined) return stop(fail("unknown-info-hash", "HASH('req2', SKEY) matches no torrent"))
        decrypt = rc4For(KEY_A, s, infoHash)
        encrypt = rc4For(KEY_B, s, infoHash)
        state = "vc"
      } else if (state === "vc") {
        if (inbox.end < VC_LENGTH + 6) return { send }
        decrypt!.process(buf, 0, VC_LENGTH + 6)
        for (let i = 0; i < VC_LENGTH; i++) {
          if (buf[i] !== 0) return stop(fail("bad-vc", "VC does not decrypt to zeros"))
        }
        const provide = u32(buf, VC_LENGTH)
        padC = u16(buf, VC_LENGTH + 4)
        inbox.consume(VC_LENGTH + 6)
        const common = provide & allowed
        if (common === 0) {
          return stop(fail("no-common-crypto", `crypto_provide ${provide}, we allow ${allowed}`))
        }
        select = common === (CRYPTO_RC4 | CRYPTO_PLAINTEXT)
          ? (prefer === "rc4" ? CRYPTO_RC4 : CRYPTO_PLAINTEXT)
          : common
        if (padC > maxPadding) return stop(fail("padding-too-long", `len(PadC) = ${padC}`))
        state = "padc"
      } else if (state === "padc") {
        if (inbox.end < padC + 2) return { send }
        decrypt!.process(buf, 0, padC + 2)
        iaLength = u16(buf, padC)
        inbox.consume(padC + 2)
        state = "ia"
      } else if (state === "ia") {
        if (inbox.end < iaLength) return { send }
        const cipher = selectedCipher(select)
        // IA is always RC4; what follows it only when rc4 was selected.
        decrypt!.process(buf, 0, cipher === "rc4" ? inbox.end : iaLength)
        const payload = buf.slice(0, inbox.end)
        inbox.consume(inbox.end)
        const pad = padLength(random, maxPad)
        const out = new Uint8Array(VC_LENGTH + 6 + pad)
        const view = new DataView(out.buffer)
        view.setUint32(VC_LENGTH, select)
        view.setUint16(VC_LENGTH + 4, pad)
        out.set(random(pad), VC_LENGTH + 6)
        encrypt!.process(out)
        return stop({
          send: [out],
          done: {
            cipher,
            encrypt: cipher === "rc4" ? encrypt! : plaintext,
            decrypt: cipher === "rc4" ? decrypt! : plaintext,
            infoHash: infoHash!,
            initialPayload: payload
          }
        })
      } else {
        return { send }
      }
    }
  }

  return { start: () => new Uint8Array(0), push, buffered: () => inbox.end }
}
