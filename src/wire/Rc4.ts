/**
 * RC4, the stream cipher of message stream encryption (MSE/PE). Written out here because Node 20's OpenSSL 3 only
 * offers `rc4` with `--openssl-legacy-provider`. Plain synchronous code for the byte path: `process` encrypts or
 * decrypts in place and allocates nothing per byte.
 *
 * Speed (bench/encryption.ts, docs/ENCRYPTION.md): the state is an `Int32Array` (small integers, no uint8
 * conversions), `i`/`j` live in locals for the whole call, and the aligned middle of the buffer is XORed a 32-bit
 * word at a time (four keystream bytes packed little-endian into one word, one load and one store instead of four
 * of each). About 4.5 CPU s per GiB on this project's machine, against about 8 for the textbook byte loop over a
 * `Uint8Array` state. Big-endian hosts take the byte loop throughout.
 */

export interface StreamCipher {
  /** Encrypts (or decrypts: the same thing) `length` bytes of `buf` from `offset`, in place. */
  process(buf: Uint8Array, offset?: number, length?: number): void
}

const littleEndian = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1

export class Rc4 implements StreamCipher {
  private readonly s: Int32Array
  private i: number
  private j: number

  /** Key scheduling; keys of 1 to 256 bytes. */
  constructor(key: Uint8Array) {
    if (key.length === 0 || key.length > 256) throw new RangeError(`RC4 key of ${key.length} bytes`)
    const s = new Int32Array(256)
    for (let k = 0; k < 256; k++) s[k] = k
    let j = 0
    for (let k = 0; k < 256; k++) {
      const t = s[k]!
      j = (j + t + key[k % key.length]!) & 0xff
      s[k] = s[j]!
      s[j] = t
    }
    this.s = s
    this.i = 0
    this.j = 0
  }

  process(buf: Uint8Array, offset = 0, length = buf.length - offset): void {
    const s = this.s
    let i = this.i
    let j = this.j
    const end = offset + length
    let k = offset
    if (littleEndian && length >= 16) {
      // Bytes up to a 4-byte boundary of the underlying buffer, then whole words, then the tail.
      const head = Math.min(end, offset + ((4 - ((buf.byteOffset + offset) & 3)) & 3))
      for (; k < head; k++) {
        i = (i + 1) & 0xff
        const t = s[i]!
        j = (j + t) & 0xff
        const u = s[j]!
        s[i] = u
        s[j] = t
        buf[k] = buf[k]! ^ s[(t + u) & 0xff]!
      }
      const words = (end - k) >> 2
      const w = new Int32Array(buf.buffer, buf.byteOffset + k, words)
      for (let n = 0; n < words; n++) {
        i = (i + 1) & 0xff
        let t = s[i]!
        j = (j + t) & 0xff
        let u = s[j]!
        s[i] = u
        s[j] = t
        let x = s[(t + u) & 0xff]!
        i = (i + 1) & 0xff
        t = s[i]!
        j = (j + t) & 0xff
        u = s[j]!
        s[i] = u
        s[j] = t
        x |= s[(t + u) & 0xff]! << 8
        i = (i + 1) & 0xff
        t = s[i]!
        j = (j + t) & 0xff
        u = s[j]!
        s[i] = u
        s[j] = t
        x |= s[(t + u) & 0xff]! << 16
        i = (i + 1) & 0xff
        t = s[i]!
        j = (j + t) & 0xff
        u = s[j]!
        s[i] = u
        s[j] = t
        x |= s[(t + u) & 0xff]! << 24
        w[n] = w[n]! ^ x
      }
      k += words << 2
    }
    for (; k < end; k++) {
      i = (i + 1) & 0xff
      const t = s[i]!
      j = (j + t) & 0xff
      const u = s[j]!
      s[i] = u
      s[j] = t
      buf[k] = buf[k]! ^ s[(t + u) & 0xff]!
    }
    this.i = i
    this.j = j
  }

  /** Advances the keystream by `n` bytes (MSE drops the first 1024). */
  discard(n: number): void {
    const s = this.s
    let i = this.i
    let j = this.j
    for (let k = 0; k < n; k++) {
      i = (i + 1) & 0xff
      const t = s[i]!
      j = (j + t) & 0xff
      s[i] = s[j]!
      s[j] = t
    }
    this.i = i
    this.j = j
  }
}

/** The identity cipher, for a connection that negotiated plaintext after the MSE handshake. */
export const plaintext: StreamCipher = { process() {} }
