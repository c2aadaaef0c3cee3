/**
 * RC4, the stream cipher of message stream encryption (MSE/PE). Written out here because Node 20's OpenSSL 3 only
 * offers `rc4` with `--openssl-legacy-provider`. Plain synchronous code for the byte path: the state is one
 * 256-byte array, `process` encrypts or decrypts in place and allocates nothing.
 */

export interface StreamCipher {
  /** Encrypts (or decrypts: the same thing) `length` bytes of `buf` from `offset`, in place. */
  process(buf: Uint8Array, offset?: number, length?: number): void
}

export class Rc4 implements StreamCipher {
  private readonly s: Uint8Array
  private i: number
  private j: number

  /** Key scheduling; keys of 1 to 256 bytes. */
  constructor(key: Uint8Array) {
    if (key.length === 0 || key.length > 256) throw new RangeError(`RC4 key of ${key.length} bytes`)
    const s = new Uint8Array(256)
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
    for (let k = offset; k < end; k++) {
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
