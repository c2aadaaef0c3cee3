import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync } from "node:fs"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1 } from "../../src/core/InfoHash.ts"
import * as Mse from "../../src/wire/Mse.ts"
import type { MseError } from "../../src/wire/MseError.ts"
import { Rc4 } from "../../src/wire/Rc4.ts"

// --- helpers ----------------------------------------------------------------------------------------------------

/** A seeded byte source (mulberry32), so a fast-check seed fixes keys and paddings. */
const seeded = (seed: number): Mse.Random => {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) & 0xff
  }
  return (n) => Uint8Array.from({ length: n }, next)
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))
const sha1 = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const h = createHash("sha1")
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
const hashOf = (n: number) => Uint8Array.from({ length: 20 }, (_, i) => (i * 7 + n) & 0xff) as InfoHashV1
const infoHash = hashOf(1)
const other = hashOf(2)
const lookupIn = (hashes: ReadonlyArray<InfoHashV1>) => (req2: Uint8Array) =>
  hashes.find((h) => Bytes.equals(Mse.req2Hash(h), req2))

/** Independent DH over BigInt (square and multiply), to check the node:crypto path. */
const toBig = (b: Uint8Array) => BigInt("0x0" + Bytes.toHex(b))
const fromBig = (v: bigint) => Bytes.fromHex(v.toString(16).padStart(192, "0"))!
const P = toBig(Mse.prime)
const modPow = (base: bigint, exp: bigint, m: bigint): bigint => {
  let r = 1n
  let b = base % m
  let e = exp
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m
    b = (b * b) % m
    e >>= 1n
  }
  return r
}

/** Splits a byte stream into chunks whose sizes cycle through `sizes`. */
const chunked = (bytes: Uint8Array, sizes: ReadonlyArray<number>): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let at = 0
  let k = 0
  while (at < bytes.length) {
    const n = sizes.length === 0 ? bytes.length : Math.max(1, sizes[k++ % sizes.length]!)
    out.push(bytes.subarray(at, at + n))
    at += n
  }
  return out
}

interface Outcome {
  readonly a: Mse.Step
  readonly b: Mse.Step
  /** Application bytes each side received after the handshake (initialPayload + decrypted rest). */
  readonly aReceived: Uint8Array
  readonly bReceived: Uint8Array
  /** What B's application data looked like on the wire. */
  readonly bWire: Uint8Array
}

/**
 * Runs an initiator against a responder over in-memory pipes, chunked by `cutsAB` / `cutsBA`. Each side sends
 * `dataA` / `dataB` (encrypted) as soon as its handshake is done, in the same write as its last handshake bytes.
 */
const run = (
  a: Mse.Handshaker,
  b: Mse.Handshaker,
  cutsAB: ReadonlyArray<number>,
  cutsBA: ReadonlyArray<number>,
  dataA: Uint8Array,
  dataB: Uint8Array
): Outcome => {
  let toB: Array<Uint8Array> = [a.start(), b.start()].filter((x) => x.length > 0)
  let toA: Array<Uint8Array> = []
  let aStep: Mse.Step = { send: [] }
  let bStep: Mse.Step = { send: [] }
  const aRecv: Array<Uint8Array> = []
  const bRecv: Array<Uint8Array> = []
  let bWire = new Uint8Array(0)
  for (let round = 0; round < 20; round++) {
    const forB = chunked(Bytes.concat(toB), cutsAB)
    toB = []
    for (const c of forB) {
      if (bStep.done !== undefined) {
        const copy = c.slice()
        bStep.done.decrypt.process(copy)
        bRecv.push(copy)
        continue
      }
      if (bStep.error !== undefined) break
      bStep = b.push(c)
      toA.push(...bStep.send)
      if (bStep.done !== undefined) {
        bRecv.push(bStep.done.initialPayload)
        const wire = dataB.slice()
        bStep.done.encrypt.process(wire)
        bWire = wire
        toA.push(wire)
      }
    }
    const forA = chunked(Bytes.concat(toA), cutsBA)
    toA = []
    for (const c of forA) {
      if (aStep.done !== undefined) {
        const copy = c.slice()
        aStep.done.decrypt.process(copy)
        aRecv.push(copy)
        continue
      }
      if (aStep.error !== undefined) break
      aStep = a.push(c)
      toB.push(...aStep.send)
      if (aStep.done !== undefined) {
        aRecv.push(aStep.done.initialPayload)
        const wire = dataA.slice()
        aStep.done.encrypt.process(wire)
        toB.push(wire)
      }
    }
    if (toA.length === 0 && toB.length === 0) break
  }
  return { a: aStep, b: bStep, aReceived: Bytes.concat(aRecv), bReceived: Bytes.concat(bRecv), bWire }
}

const errorOf = (step: Mse.Step): MseError["reason"] | undefined => step.error?.reason

/**
 * A hand-written initiator built from the spec with BigInt DH, for malformed handshakes: returns Ya + PadA and,
 * given Yb, the third message with whatever fields the test chooses.
 */
const manualInitiator = (x: Uint8Array) => {
  const ya = fromBig(modPow(2n, toBig(x), P))
  return {
    ya,
    third: (
      yb: Uint8Array,
      fields: {
        skey: Uint8Array
        vc?: Uint8Array
        provide: number
        padC: number
        ia?: Uint8Array
        /** Mask the proof as libtorrent before its fix did: HASH('req3', S without leading zero bytes). */
        strippedReq3?: boolean
      }
    ) => {
      const s = fromBig(modPow(toBig(yb), toBig(x), P))
      const significant = s.findIndex((b) => b !== 0)
      const req3 = sha1(ascii("req3"), fields.strippedReq3 === true ? s.subarray(significant) : s)
      const proof = sha1(ascii("req2"), fields.skey).map((v, i) => v ^ req3[i]!)
      const ia = fields.ia ?? new Uint8Array(0)
      const body = new Uint8Array(8 + 4 + 2 + fields.padC + 2 + ia.length)
      if (fields.vc) body.set(fields.vc)
      const view = new DataView(body.buffer)
      view.setUint32(8, fields.provide)
      view.setUint16(12, fields.padC)
      view.setUint16(14 + fields.padC, ia.length)
      body.set(ia, 16 + fields.padC)
      const rc4 = new Rc4(sha1(ascii("keyA"), s, fields.skey))
      rc4.discard(1024)
      rc4.process(body)
      return { s, bytes: Bytes.concat([sha1(ascii("req1"), s), proof, body]) }
    }
  }
}

// --- tests ------------------------------------------------------------------------------------------------------

describe("Mse", () => {
  it("node:crypto DH agrees with BigInt square-and-multiply", () => {
    const random = seeded(42)
    for (let i = 0; i < 5; i++) {
      const xa = random(20)
      const xb = random(20)
      const ya = Mse.publicKey(xa)
      expect(Bytes.toHex(ya)).toBe(Bytes.toHex(fromBig(modPow(2n, toBig(xa), P))))
      const yb = Mse.publicKey(xb)
      const s = Mse.sharedSecret(xa, yb)
      expect(s.length).toBe(96)
      expect(s).toEqual(Mse.sharedSecret(xb, ya))
      expect(s).toEqual(fromBig(modPow(toBig(yb), toBig(xa), P)))
    }
  })

  it("validPublicKey rejects 0, 1, P-1, P and wrong lengths", () => {
    expect(Mse.validPublicKey(fromBig(0n))).toBe(false)
    expect(Mse.validPublicKey(fromBig(1n))).toBe(false)
    expect(Mse.validPublicKey(fromBig(2n))).toBe(true)
    expect(Mse.validPublicKey(fromBig(P - 2n))).toBe(true)
    expect(Mse.validPublicKey(fromBig(P - 1n))).toBe(false)
    expect(Mse.validPublicKey(Mse.prime)).toBe(false)
    expect(Mse.validPublicKey(new Uint8Array(95).fill(5))).toBe(false)
  })

  it("tells a plain handshake from an encrypted one by its first bytes", () => {
    const plain = Bytes.concat([Uint8Array.of(19), ascii("BitTorrent protocol"), new Uint8Array(48)])
    expect(Mse.looksLikePlainHandshake(plain)).toBe(true)
    expect(Mse.classify(plain)).toBe("plain")
    expect(Mse.classify(plain.subarray(0, 5))).toBe("undecided")
    expect(Mse.classify(new Uint8Array(0))).toBe("undecided")
    expect(Mse.classify(Uint8Array.of(19, 66, 0))).toBe("encrypted")
    expect(Mse.classify(Mse.publicKey(Uint8Array.of(1, 2, 3)))).toBe("encrypted")
    expect(Mse.looksLikePlainHandshake(Uint8Array.of(20))).toBe(false)
  })

  it("maps --encryption policies to crypto bits", () => {
    expect(Mse.cryptoFor("prefer")).toBe(Mse.CRYPTO_RC4 | Mse.CRYPTO_PLAINTEXT)
    expect(Mse.cryptoFor("require")).toBe(Mse.CRYPTO_RC4)
    expect(Mse.cryptoFor("off")).toBeUndefined()
  })

  const crypto = FastCheck.constantFrom(Mse.CRYPTO_RC4, Mse.CRYPTO_PLAINTEXT, Mse.CRYPTO_RC4 | Mse.CRYPTO_PLAINTEXT)
  const cuts = FastCheck.array(FastCheck.integer({ min: 1, max: 700 }), { maxLength: 6 })

  it.prop(
    "initiator and responder agree for random keys, paddings, chunkings, crypto and IA; data round-trips both ways",
    [
      FastCheck.integer(),
      FastCheck.integer(),
      crypto,
      crypto,
      FastCheck.constantFrom<Mse.Cipher>("rc4", "plaintext"),
      FastCheck.constantFrom(0, 1, 16, 512),
      FastCheck.option(FastCheck.uint8Array({ maxLength: 200 }), { nil: undefined }),
      cuts,
      cuts,
      FastCheck.uint8Array({ maxLength: 300 }),
      FastCheck.uint8Array({ minLength: 8, maxLength: 300 })
    ],
    ([seedA, seedB, provide, allowed, prefer, maxPadding, ia, cutsAB, cutsBA, dataA, dataB]) => {
      const a = Mse.initiator({
        infoHash,
        cryptoProvide: provide,
        initialPayload: ia,
        maxPadding,
        random: seeded(seedA)
      })
      const b = Mse.responder({
        lookupInfoHash: lookupIn([other, infoHash]),
        cryptoAllowed: allowed,
        prefer,
        maxPadding,
        random: seeded(seedB)
      })
      const out = run(a, b, cutsAB, cutsBA, dataA, dataB)
      const common = provide & allowed
      if (common === 0) {
        expect(errorOf(out.b)).toBe("no-common-crypto")
        expect(out.a.done).toBeUndefined()
        return
      }
      const expected: Mse.Cipher = common === Mse.CRYPTO_RC4 || (common === 3 && prefer === "rc4") ? "rc4" : "plaintext"
      expect(out.a.error).toBeUndefined()
      expect(out.b.error).toBeUndefined()
      expect(out.a.done?.cipher).toBe(expected)
      expect(out.b.done?.cipher).toBe(expected)
      expect(out.a.done?.infoHash).toEqual(infoHash)
      expect(out.b.done?.infoHash).toEqual(infoHash)
      expect(out.bReceived).toEqual(Bytes.concat([ia ?? new Uint8Array(0), dataA]))
      expect(out.aReceived).toEqual(dataB)
      // rc4: the application bytes on the wire are not the plaintext (8+ random-looking bytes); plaintext: they are
      expect(Bytes.equals(out.bWire, dataB)).toBe(expected === "plaintext")
      expect(a.buffered()).toBe(0)
      expect(b.buffered()).toBe(0)
      expect(errorOf(a.push(new Uint8Array(1)))).toBe("finished")
      expect(errorOf(b.push(new Uint8Array(1)))).toBe("finished")
    },
    { fastCheck: { numRuns: 60 } }
  )

  it("the responder rejects an info-hash it does not serve", () => {
    const a = Mse.initiator({ infoHash, cryptoProvide: 3, random: seeded(1) })
    const b = Mse.responder({ lookupInfoHash: lookupIn([other]), cryptoAllowed: 3, random: seeded(2) })
    const out = run(a, b, [], [], new Uint8Array(0), new Uint8Array(8))
    expect(errorOf(out.b)).toBe("unknown-info-hash")
    expect(out.a.done).toBeUndefined()
    expect(out.a.error).toBeUndefined() // still waiting; the session's timeout or the closed socket ends it
  })

  it("an rc4-only responder and a plaintext-only initiator fail with no-common-crypto", () => {
    const a = Mse.initiator({ infoHash, cryptoProvide: Mse.CRYPTO_PLAINTEXT, random: seeded(3) })
    const b = Mse.responder({ lookupInfoHash: lookupIn([infoHash]), cryptoAllowed: Mse.CRYPTO_RC4, random: seeded(4) })
    const out = run(a, b, [7], [13], new Uint8Array(0), new Uint8Array(8))
    expect(errorOf(out.b)).toBe("no-common-crypto")
    expect(errorOf(b.push(new Uint8Array(3)))).toBe("no-common-crypto") // sticky
  })

  const responder = (seed = 9) =>
    Mse.responder({ lookupInfoHash: lookupIn([infoHash]), cryptoAllowed: 3, random: seeded(seed) })

  /** A private key of ours whose shared secret with `peerKey` begins with a zero byte (about 1 in 256). */
  const leadingZeroKey = (peerKey: Uint8Array): Uint8Array => {
    const random = seeded(4242)
    for (;;) {
      const x = random(20)
      if (Mse.sharedSecret(x, Mse.publicKey(peerKey))[0] === 0) return x
    }
  }

  it("S with a leading zero byte: the responder also takes libtorrent's old proof (req3 over S without it)", () => {
    const xb = seeded(9)(20) // what responder() draws first: its private key
    const xa = leadingZeroKey(xb)
    for (const stripped of [false, true]) {
      const m = manualInitiator(xa)
      const b = responder()
      const first = b.push(m.ya)
      const yb = Bytes.concat(first.send).subarray(0, 96)
      const third = m.third(yb, { skey: infoHash, provide: Mse.CRYPTO_RC4, padC: 3, strippedReq3: stripped })
      expect(third.s[0]).toBe(0)
      const last = b.push(third.bytes)
      expect(last.error).toBeUndefined()
      expect(last.done?.cipher).toBe("rc4")
      expect(Bytes.toHex(last.done!.infoHash)).toBe(Bytes.toHex(infoHash))
    }
    // Without a leading zero the stripped mask is the same thing, so nothing else is accepted by accident.
    const other = manualInitiator(seeded(12)(20))
    const b = responder()
    const yb = Bytes.concat(b.push(other.ya).send).subarray(0, 96)
    const wrong = other.third(yb, { skey: hashOf(3), provide: Mse.CRYPTO_RC4, padC: 0 })
    expect(errorOf(b.push(wrong.bytes))).toBe("unknown-info-hash")
  })

  it("rejectLeadingZeroSecret: the initiator stops before its third message when S begins with zero", () => {
    const xb = seeded(9)(20)
    const xa = leadingZeroKey(xb)
    const yb = Mse.publicKey(xb)
    const keyFirst = (): Mse.Random => {
      let first = true
      const rest = seeded(5)
      return (n) => {
        if (first && n === 20) {
          first = false
          return xa
        }
        return rest(n)
      }
    }
    const strict = Mse.initiator({ infoHash, cryptoProvide: 3, random: keyFirst(), rejectLeadingZeroSecret: true })
    strict.start()
    const step = strict.push(yb)
    expect(errorOf(step)).toBe("leading-zero-secret")
    expect(step.send).toEqual([])
    const lenient = Mse.initiator({ infoHash, cryptoProvide: 3, random: keyFirst() })
    lenient.start()
    const ok = lenient.push(yb)
    expect(ok.error).toBeUndefined()
    expect(ok.send.length).toBe(1)
  })

  it("the responder rejects public keys 0, 1, P-1 and ≥ P", () => {
    for (const y of [0n, 1n, P - 1n, P, (1n << 768n) - 1n]) {
      expect(errorOf(responder().push(fromBig(y)))).toBe("bad-public-key")
    }
    const a = Mse.initiator({ infoHash, cryptoProvide: 3, random: seeded(5) })
    a.start()
    expect(errorOf(a.push(fromBig(1n)))).toBe("bad-public-key")
  })

  it("a hand-written spec initiator (BigInt DH) completes against our responder, IA and all", () => {
    const m = manualInitiator(seeded(11)(20))
    const b = responder()
    const first = b.push(Bytes.concat([m.ya, new Uint8Array(512).fill(0xaa)])) // PadA of exactly 512 bytes
    expect(first.error).toBeUndefined()
    const yb = Bytes.concat(first.send).subarray(0, 96)
    const ia = ascii("hello, initial payload")
    const third = m.third(yb, { skey: infoHash, provide: Mse.CRYPTO_RC4, padC: 512, ia })
    const last = b.push(third.bytes)
    expect(last.done?.cipher).toBe("rc4")
    expect(last.done?.initialPayload).toEqual(ia)
    // B's answer: ENCRYPT(VC, crypto_select, len(PadD), PadD) under keyB, after PadB
    const fromB = Bytes.concat([...first.send, ...last.send]).subarray(96)
    const rc4 = new Rc4(sha1(ascii("keyB"), third.s, infoHash))
    rc4.discard(1024)
    const vc = new Uint8Array(8)
    rc4.process(vc)
    const at = Array.from({ length: 513 }, (_, i) => i).find((i) => Bytes.equals(fromB.subarray(i, i + 8), vc))!
    expect(at).toBeGreaterThanOrEqual(0)
    const rest = fromB.slice(at + 8)
    rc4.process(rest)
    expect(new DataView(rest.buffer).getUint32(0)).toBe(Mse.CRYPTO_RC4)
    expect(rest.length).toBe(6 + new DataView(rest.buffer).getUint16(4))
  })

  it("plaintext selected: IA is decrypted, the bytes after it are taken as they are", () => {
    const m = manualInitiator(seeded(18)(20))
    const b = responder()
    const yb = Bytes.concat(b.push(m.ya).send).subarray(0, 96)
    const ia = ascii("IA")
    const third = m.third(yb, { skey: infoHash, provide: Mse.CRYPTO_PLAINTEXT, padC: 3, ia })
    const done = b.push(Bytes.concat([third.bytes, ascii(" and more")])).done
    expect(done?.cipher).toBe("plaintext")
    expect(done?.initialPayload).toEqual(ascii("IA and more"))
  })

  const python = "/usr/bin/python3"
  // An independent MSE responder (own DH, own RC4). Stateless: it runs once per step with everything the initiator
  // has sent so far (hex) and replays the handshake from a fixed private key.
  const pythonPeer = `
import hashlib, sys

P = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A4"
        "31B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563", 16)
XB = int.from_bytes(bytes(range(1, 21)), "big")
SKEY = bytes.fromhex(sys.argv[1])
sent = [bytes.fromhex(h) for h in sys.argv[2:]]

def sha1(*parts): return hashlib.sha1(b"".join(parts)).digest()

class RC4:
    def __init__(self, key):
        s = list(range(256)); j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) & 255; s[i], s[j] = s[j], s[i]
        self.s, self.i, self.j = s, 0, 0
    def crypt(self, data):
        s, i, j, out = self.s, self.i, self.j, bytearray()
        for b in data:
            i = (i + 1) & 255; j = (j + s[i]) & 255; s[i], s[j] = s[j], s[i]; out.append(b ^ s[(s[i] + s[j]) & 255])
        self.i, self.j = i, j
        return bytes(out)

stream = b"".join(sent)
ya = int.from_bytes(stream[:96], "big")
yb = pow(2, XB, P).to_bytes(96, "big")
if len(sent) == 1:
    print((yb + b"\\x07" * 33).hex())  # Yb + PadB
    sys.exit(0)
S = pow(ya, XB, P).to_bytes(96, "big")
at = stream.index(sha1(b"req1", S), 96)
proof = stream[at + 20:at + 40]
req2 = bytes(a ^ b for a, b in zip(proof, sha1(b"req3", S)))
assert req2 == sha1(b"req2", SKEY), "info-hash proof"
dec = RC4(sha1(b"keyA", S, SKEY)); dec.crypt(bytes(1024))
enc = RC4(sha1(b"keyB", S, SKEY)); enc.crypt(bytes(1024))
rest = dec.crypt(stream[at + 40:])
assert rest[:8] == bytes(8), "VC"
provide = int.from_bytes(rest[8:12], "big")
pad_c = int.from_bytes(rest[12:14], "big")
ia_len = int.from_bytes(rest[14 + pad_c:16 + pad_c], "big")
ia = rest[16 + pad_c:16 + pad_c + ia_len]
assert provide & 2, "rc4 offered"
answer = enc.crypt(bytes(8) + (2).to_bytes(4, "big") + (5).to_bytes(2, "big") + b"\\x00" * 5)
payload = enc.crypt(b"hello from python")
print((answer + payload).hex(), ia.hex())
`
  it.skipIf(!existsSync(python))("interoperates with an independent Python responder (own DH and RC4)", () => {
    const peer = (sent: ReadonlyArray<Uint8Array>) =>
      execFileSync(python, ["-c", pythonPeer, Bytes.toHex(infoHash), ...sent.map(Bytes.toHex)], {
        encoding: "utf8"
      }).trim().split(" ")
    const ia = ascii("BitTorrent handshake goes here")
    const a = Mse.initiator({ infoHash, cryptoProvide: 3, initialPayload: ia, random: seeded(19) })
    const m1 = a.start()
    const [ybPadB] = peer([m1])
    const s2 = a.push(Bytes.fromHex(ybPadB!)!)
    expect(s2.send.length).toBe(1)
    const [answer, iaSeen] = peer([m1, s2.send[0]!])
    expect(iaSeen).toBe(Bytes.toHex(ia))
    const done = a.push(Bytes.fromHex(answer!)!).done
    expect(done?.cipher).toBe("rc4")
    expect(done?.initialPayload).toEqual(ascii("hello from python"))
  })

  it("the responder gives up when HASH('req1', S) is not within 512 bytes of padding", () => {
    const m = manualInitiator(seeded(12)(20))
    const b = responder()
    const first = b.push(Bytes.concat([m.ya, new Uint8Array(513).fill(0xaa)]))
    const yb = Bytes.concat(first.send).subarray(0, 96)
    const third = m.third(yb, { skey: infoHash, provide: 3, padC: 0 })
    const step = b.push(third.bytes)
    expect(errorOf(step)).toBe("sync-not-found")
    expect(b.buffered()).toBe(0)
  })

  it("the responder rejects a bad VC and an oversized PadC", () => {
    const x = seeded(13)(20)
    const bad = (fields: { vc?: Uint8Array; padC: number }) => {
      const m = manualInitiator(x)
      const b = responder()
      const yb = Bytes.concat(b.push(m.ya).send).subarray(0, 96)
      return b.push(m.third(yb, { skey: infoHash, provide: 3, ...fields }).bytes)
    }
    expect(errorOf(bad({ vc: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1), padC: 0 }))).toBe("bad-vc")
    expect(errorOf(bad({ padC: 513 }))).toBe("padding-too-long")
    expect(bad({ padC: 512 }).done?.cipher).toBe("rc4")
  })

  /** A hand-written responder for the initiator's error paths: answers with a chosen crypto_select / PadD length. */
  const manualResponder = (a: Mse.Handshaker, select: number, padD: number, padB = 0) => {
    const xb = seeded(14)(20)
    const ya = a.start().subarray(0, 96)
    const yb = fromBig(modPow(2n, toBig(xb), P))
    const first = a.push(Bytes.concat([yb, new Uint8Array(padB).fill(0x55)]))
    expect(first.send.length).toBe(1)
    const s = fromBig(modPow(toBig(ya), toBig(xb), P))
    const rc4 = new Rc4(sha1(ascii("keyB"), s, infoHash))
    rc4.discard(1024)
    const msg = new Uint8Array(8 + 6 + Math.min(padD, 600))
    new DataView(msg.buffer).setUint32(8, select)
    new DataView(msg.buffer).setUint16(12, padD)
    rc4.process(msg)
    return a.push(msg)
  }

  it("the initiator checks crypto_select, len(PadD) and the VC search window", () => {
    const a = () => Mse.initiator({ infoHash, cryptoProvide: Mse.CRYPTO_RC4, random: seeded(15) })
    expect(manualResponder(a(), Mse.CRYPTO_RC4, 0).done?.cipher).toBe("rc4")
    expect(manualResponder(a(), Mse.CRYPTO_RC4, 512, 512).done?.cipher).toBe("rc4")
    expect(errorOf(manualResponder(a(), Mse.CRYPTO_PLAINTEXT, 0))).toBe("bad-crypto-select")
    expect(errorOf(manualResponder(a(), 3, 0))).toBe("bad-crypto-select")
    expect(errorOf(manualResponder(a(), 0, 0))).toBe("bad-crypto-select")
    expect(errorOf(manualResponder(a(), Mse.CRYPTO_RC4, 513))).toBe("padding-too-long")
    expect(errorOf(manualResponder(a(), Mse.CRYPTO_RC4, 0, 513))).toBe("sync-not-found")
  })

  it.prop(
    "arbitrary bytes never throw, either side, and buffering stays bounded",
    [FastCheck.uint8Array({ maxLength: 3000 }), cuts, FastCheck.boolean()],
    ([bytes, at, asInitiator]) => {
      const h = asInitiator
        ? Mse.initiator({ infoHash, cryptoProvide: 3, random: seeded(16) })
        : responder(17)
      h.start()
      let error: MseError | undefined
      for (const c of chunked(bytes, at)) {
        const step = h.push(c)
        expect(step.done).toBeUndefined()
        error ??= step.error
        expect(h.buffered()).toBeLessThanOrEqual(96 + 532)
      }
      if (bytes.length >= 96 + 532) expect(error).toBeDefined()
    },
    { fastCheck: { numRuns: 200 } }
  )

  it("a megabyte of garbage after a valid Ya ends in sync-not-found with a small buffer", () => {
    const b = responder()
    b.push(Mse.publicKey(Uint8Array.of(7)))
    const step = b.push(new Uint8Array(1 << 20).fill(1))
    expect(errorOf(step)).toBe("sync-not-found")
    expect(b.buffered()).toBe(0)
  })
})
