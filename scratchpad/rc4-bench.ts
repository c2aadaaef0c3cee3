// Throwaway: RC4 throughput and MSE handshake cost per connection. Run: npx tsx scratchpad/rc4-bench.ts
import type { InfoHashV1 } from "../src/core/InfoHash.ts"
import * as Mse from "../src/wire/Mse.ts"
import { Rc4 } from "../src/wire/Rc4.ts"

const buf = new Uint8Array(16 * 1024 + 13)
const rc4 = new Rc4(Uint8Array.of(1, 2, 3, 4, 5))
for (let i = 0; i < 2000; i++) rc4.process(buf)
const total = 512 * 1024 * 1024
let t = performance.now()
for (let done = 0; done < total; done += buf.length) rc4.process(buf)
let ms = performance.now() - t
console.log(`rc4 16 KiB chunks: ${((total / 1e6) / (ms / 1000)).toFixed(0)} MB/s`)

const x = new Uint8Array(20).fill(9)
const first = performance.now()
Mse.publicKey(x)
console.log(`first DH use (creates the shared OpenSSL DH, checks the prime): ${(performance.now() - first).toFixed(1)} ms`)
const y = Mse.publicKey(Uint8Array.of(3, 4))
t = performance.now()
for (let i = 0; i < 200; i++) {
  const k = crypto.getRandomValues(new Uint8Array(20))
  Mse.publicKey(k)
  Mse.sharedSecret(k, y)
}
console.log(`DH per connection (Y + S): ${((performance.now() - t) / 200).toFixed(3)} ms`)

const modPow = (b: bigint, e: bigint, m: bigint) => {
  let r = 1n
  b %= m
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m
    b = (b * b) % m
    e >>= 1n
  }
  return r
}
const P = BigInt("0x" + Buffer.from(Mse.prime).toString("hex"))
const yb = BigInt("0x" + Buffer.from(y).toString("hex"))
t = performance.now()
for (let i = 0; i < 200; i++) {
  const k = BigInt("0x" + Buffer.from(crypto.getRandomValues(new Uint8Array(20))).toString("hex"))
  modPow(2n, k, P)
  modPow(yb, k, P)
}
console.log(`BigInt square-and-multiply per connection (Y + S): ${((performance.now() - t) / 200).toFixed(3)} ms`)

const infoHash = new Uint8Array(20).fill(1) as InfoHashV1
t = performance.now()
const n = 200
for (let i = 0; i < n; i++) {
  const a = Mse.initiator({ infoHash, cryptoProvide: 3 })
  const b = Mse.responder({ lookupInfoHash: () => infoHash, cryptoAllowed: 3 })
  const s1 = b.push(a.start())
  const s2 = a.push(Buffer.concat(s1.send))
  const s3 = b.push(Buffer.concat(s2.send))
  const s4 = a.push(Buffer.concat(s3.send))
  if (s4.done === undefined) throw new Error("no handshake")
}
console.log(`full handshake, both sides in one process: ${((performance.now() - t) / n).toFixed(3)} ms`)
