/**
 * Encryption benchmark (not a test): what message stream encryption costs. Figures go to docs/ENCRYPTION.md.
 *
 *   npx tsx bench/encryption.ts [--rc4-mib 512] [--connects 100] [--size 256MiB] [--no-libtorrent]
 *
 * 1. RC4 throughput, CPU seconds per GiB (process.cpuUsage, best of 5, variants interleaved): in place over aligned 1 MiB buffers; over
 *    16 KiB + 13 byte views at odd offsets (what socket chunks look like, the read path); copy-then-encrypt of
 *    16 KiB blocks (the write path, Encryption.ts encrypts into a copy); and the textbook byte loop over a
 *    Uint8Array state for comparison.
 * 2. The Diffie-Hellman work per connection (Y and S), ms.
 * 3. Connect time over loopback, median and p90 of N sequential connections: from the dial until the peer's
 *    BitTorrent handshake is in (ours sent after the MSE handshake, as peer sessions do, unless a row says IA), against our own listener (prefer, or off for a plain-only peer): plain; MSE with
 *    plaintext selected; MSE with rc4; "prefer" against a plain-only peer on first contact (MSE refused, then a
 *    second dial) and once remembered; scenarios interleaved. With python3-libtorrent installed, also against
 *    libtorrent with encryption enabled (plain, prefer, require) and "prefer" first contact against a libtorrent
 *    peer with encryption disabled.
 * 4. A whole download between two in-process clients (one process: both sides' CPU), wall and CPU seconds, under
 *    off (plain), prefer (MSE, plaintext selected) and require (rc4 both ways).
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type { InfoHashV1, PeerId } from "../src/core/InfoHash.ts"
import * as Tcp from "../src/net/Tcp.ts"
import * as Encryption from "../src/peer/Encryption.ts"
import * as Client from "../src/session/Client.ts"
import * as Listener from "../src/session/Listener.ts"
import * as Handshake from "../src/wire/Handshake.ts"
import * as Mse from "../src/wire/Mse.ts"
import { Rc4 } from "../src/wire/Rc4.ts"
import { writeData } from "../test/support/data.ts"
import { download, tempDir, testClient } from "../test/support/download.ts"
import { isInstalled as libtorrentInstalled } from "../test/support/libtorrentSeeder.ts"
import * as Lt from "../test/support/libtorrentSession.ts"
import { build } from "../test/support/seeder.ts"
import * as Fs from "node:fs"
import * as Os from "node:os"

const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const parseSize = (text: string): number => {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(text)
  if (m === null) throw new Error(`--size ${text}: expected e.g. 256MiB`)
  const unit = (m[2] ?? "B").toLowerCase()
  const mult = unit === "gib" ? 2 ** 30 : unit === "mib" ? 2 ** 20 : unit === "kib" ? 2 ** 10 : 1
  return Math.round(Number(m[1]) * mult)
}
const rc4Bytes = Number(argValue("--rc4-mib") ?? "512") * 2 ** 20
const connects = Number(argValue("--connects") ?? "100")
const size = parseSize(argValue("--size") ?? "256MiB")
const withLibtorrent = !process.argv.includes("--no-libtorrent") && libtorrentInstalled()

const cpu = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}
const perGiB = (seconds: number, bytes: number) => (seconds * 2 ** 30) / bytes
const quantile = (xs: ReadonlyArray<number>, q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}

// ---------------------------------------------------------------------------------------------------------------
// 1. RC4

/** The textbook loop (Uint8Array state, one byte at a time): what Rc4.ts was before it was made fast. */
const textbook = (key: Uint8Array) => {
  const s = new Uint8Array(256).map((_, n) => n)
  let j = 0
  for (let n = 0; n < 256; n++) {
    const t = s[n]!
    j = (j + t + key[n % key.length]!) & 0xff
    s[n] = s[j]!
    s[j] = t
  }
  let i = 0
  j = 0
  return (buf: Uint8Array) => {
    for (let k = 0; k < buf.length; k++) {
      i = (i + 1) & 0xff
      const t = s[i]!
      j = (j + t) & 0xff
      const u = s[j]!
      s[i] = u
      s[j] = t
      buf[k] = buf[k]! ^ s[(t + u) & 0xff]!
    }
  }
}

const rc4Figures = () => {
  const key = Uint8Array.from({ length: 20 }, (_, n) => n * 7)
  const big = new Uint8Array(1 << 20)
  const backing = new Uint8Array(16 * 1024 + 13 + 1)
  const chunk = backing.subarray(1)
  const block = new Uint8Array(16 * 1024)
  const a = new Rc4(key)
  const b = new Rc4(key)
  const c = new Rc4(key)
  const old = textbook(key)
  const variants: ReadonlyArray<readonly [bytesPerCall: number, call: () => void]> = [
    [big.length, () => a.process(big)],
    [chunk.length, () => b.process(chunk)],
    [block.length, () => {
      const out = Buffer.allocUnsafe(block.length) // as Encryption.ts does
      out.set(block)
      c.process(out)
    }],
    [big.length, () => old(big)]
  ]
  for (const [per, call] of variants) for (let n = 0; n < Math.min(2000, rc4Bytes / per); n++) call() // warm up
  // Round-robin over the variants, best of 5 each: the machine's noise then falls on all of them alike.
  const bestOf = variants.map(() => Number.POSITIVE_INFINITY)
  for (let rep = 0; rep < 5; rep++) {
    variants.forEach(([per, call], v) => {
      const calls = Math.max(1, Math.round(rc4Bytes / per))
      const t = cpu()
      for (let n = 0; n < calls; n++) call()
      bestOf[v] = Math.min(bestOf[v]!, perGiB(cpu() - t, calls * per))
    })
  }
  const [inPlace, readPath, writePath, textbookLoop] = bestOf as [number, number, number, number]
  return { inPlace, readPath, writePath, textbook: textbookLoop }
}

const dhFigure = () => {
  Mse.prepare()
  const y = Mse.publicKey(Uint8Array.of(3, 4))
  const n = 500
  const t = performance.now()
  for (let k = 0; k < n; k++) {
    const x = crypto.getRandomValues(new Uint8Array(20))
    Mse.publicKey(x)
    Mse.sharedSecret(x, y)
  }
  return (performance.now() - t) / n
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Connect time

const infoHash = Uint8Array.from({ length: 20 }, (_, n) => n + 1) as InfoHashV1
const ours = Handshake.encode({
  reserved: new Uint8Array(8),
  infoHash,
  peerId: new Uint8Array(20).fill(1) as PeerId
})
const theirs = Handshake.encode({
  reserved: new Uint8Array(8),
  infoHash,
  peerId: new Uint8Array(20).fill(2) as PeerId
})

/** Our listener under `policy` with one torrent that answers every handshake with its own. */
const answering = (policy: Encryption.Policy) =>
  Effect.gen(function*() {
    const listener = yield* Listener.make({ peerId: new Uint8Array(20).fill(3) as PeerId, host: "127.0.0.1", encryption: policy })
    yield* listener.register(infoHash, (conn, _prefix, release) =>
      Effect.gen(function*() {
        conn.onData(() => {})
        conn.write(theirs)
        yield* Effect.forkDaemon(Effect.andThen(Effect.ignore(conn.closed), release))
        return true
      }))
    return listener.address.port
  })

/**
 * One connection: dial under `outbound`, until the peer's 68-byte handshake is in; ms. `handshake` is ours, or (a
 * function) a fresh one per connection: libtorrent drops a peer id it still has connected.
 */
const connectOnce = (
  port: number,
  hash: InfoHashV1,
  handshakeOf: Uint8Array | (() => Uint8Array),
  outbound: Encryption.Outbound,
  ia = false
) =>
  Effect.scoped(Effect.gen(function*() {
    const handshake = typeof handshakeOf === "function" ? handshakeOf() : handshakeOf
    const t0 = performance.now()
    const c = yield* Encryption.connect({
      address: `127.0.0.1:${port}`,
      infoHash: hash,
      outbound,
      dial: Tcp.dial({ host: "127.0.0.1", port }),
      initialPayload: ia ? handshake : undefined,
      timeout: "10 seconds"
    })
    if (c.sentInHandshake === undefined) c.connection.write(handshake)
    const got = yield* Deferred.make<void>()
    let n = 0
    c.connection.onData((chunk) => {
      n += chunk.length
      if (n >= Handshake.length) Deferred.unsafeDone(got, Exit.void)
    })
    yield* Deferred.await(got).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no handshake") }))
    return performance.now() - t0
  }))

interface Scenario {
  readonly label: string
  readonly run: () => Effect.Effect<number, unknown>
}

/** Every scenario `connects` times, round-robin (so JIT warm-up and the machine's noise fall on all alike). */
const measure = (scenarios: ReadonlyArray<Scenario>) =>
  Effect.gen(function*() {
    const times = scenarios.map(() => [] as Array<number>)
    for (let k = 0; k < 20; k++) for (const sc of scenarios) yield* sc.run() // warm up
    for (let k = 0; k < connects; k++) {
      for (let i = 0; i < scenarios.length; i++) times[i]!.push(yield* scenarios[i]!.run())
    }
    return scenarios.map((sc, i) => ({ label: sc.label, median: quantile(times[i]!, 0.5), p90: quantile(times[i]!, 0.9) }))
  })

const connectFigures = Effect.scoped(Effect.gen(function*() {
  const both = yield* answering("prefer")
  const plainOnly = yield* answering("off")
  const memory = Encryption.plainOnlyMemory()
  const scenarios: Array<Scenario> = [
    { label: "plain BitTorrent (off)", run: () => connectOnce(both, infoHash, ours, { policy: "off" }) },
    {
      label: "MSE, plaintext selected (prefer ↔ prefer)",
      run: () => connectOnce(both, infoHash, ours, { policy: "prefer" })
    },
    { label: "MSE, rc4 (require)", run: () => connectOnce(both, infoHash, ours, { policy: "require" }) },
    {
      label: "prefer → plain-only peer, first contact",
      run: () => connectOnce(plainOnly, infoHash, ours, { policy: "prefer", plainOnly: Encryption.plainOnlyMemory() })
    },
    {
      label: "prefer → plain-only peer, remembered",
      run: () => connectOnce(plainOnly, infoHash, ours, { policy: "prefer", plainOnly: memory })
    }
  ]
  if (withLibtorrent) {
    const b = build({ name: "lt.bin", single: true, files: [{ path: ["lt.bin"], length: 100_000 }], pieceLength: 16384 })
    const lt = yield* Effect.acquireRelease(
      Effect.promise(() => Lt.start({ in_enc_policy: 2, out_enc_policy: 2 })),
      (s) => Effect.promise(() => s.stop())
    )
    yield* Effect.promise(() => lt.seed("t", b))
    const ltEnc = yield* Effect.acquireRelease(
      Effect.promise(() => Lt.start({ in_enc_policy: 1, out_enc_policy: 1 })),
      (s) => Effect.promise(() => s.stop())
    )
    yield* Effect.promise(() => ltEnc.seed("t", b))
    const hash = b.metainfo.infoHash
    const hs = () =>
      Handshake.encode({
        reserved: new Uint8Array(8),
        infoHash: hash,
        peerId: crypto.getRandomValues(new Uint8Array(20)) as PeerId
      })
    scenarios.push(
      { label: "libtorrent (encryption on), plain", run: () => connectOnce(ltEnc.port, hash, hs, { policy: "off" }) },
      { label: "libtorrent (encryption on), prefer", run: () => connectOnce(ltEnc.port, hash, hs, { policy: "prefer" }) },
      { label: "libtorrent (encryption on), require", run: () => connectOnce(ltEnc.port, hash, hs, { policy: "require" }) },
      {
        label: "libtorrent (encryption on), require, handshake as IA",
        run: () => connectOnce(ltEnc.port, hash, hs, { policy: "require" }, true)
      },
      {
        label: "libtorrent (encryption on), prefer, handshake as IA",
        run: () => connectOnce(ltEnc.port, hash, hs, { policy: "prefer" }, true)
      },
      {
        label: "libtorrent (encryption disabled), prefer first contact",
        run: () => connectOnce(lt.port, hash, hs, { policy: "prefer", plainOnly: Encryption.plainOnlyMemory() })
      }
    )
  }
  return yield* measure(scenarios)
}))

// ---------------------------------------------------------------------------------------------------------------
// 4. A whole download

const downloadFigures = Effect.gen(function*() {
  const b = build({ name: "bench.bin", single: true, files: [{ path: ["bench.bin"], length: size }], pieceLength: 1 << 20 })
  const data = tempDir("bench-seed")
  writeData(b, data)
  const policies = ["off", "prefer", "require"] as const
  const runs = policies.map(() => [] as Array<{ wall: number; cpu: number }>)
  for (let run = 0; run < 3; run++) {
    for (let p = 0; p < policies.length; p++) {
      const policy = policies[p]!
      const out = tempDir("bench-dl")
      const r = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(testClient({ listen: { host: "127.0.0.1", port: 0 }, encryption: policy }))
        yield* Client.seed(b.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(context))
        const port = (yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(context)))!.address.port
        const t0 = performance.now()
        const c0 = cpu()
        yield* download(b, out, [port]).pipe(Effect.provide(testClient({ encryption: policy, resume: false })))
        return { wall: (performance.now() - t0) / 1000, cpu: cpu() - c0 }
      }))
      runs[p]!.push(r)
      Fs.rmSync(out, { recursive: true, force: true })
    }
  }
  const rows = policies.map((policy, p) => {
    const xs = [...runs[p]!].sort((x, y) => x.wall - y.wall)
    return { policy, ...xs[1]! }
  })
  Fs.rmSync(data, { recursive: true, force: true })
  return rows
})

// ---------------------------------------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  Mse.prepare()
  console.log(`machine: ${Os.cpus()[0]?.model ?? "?"} × ${Os.cpus().length}, node ${process.version}, ` +
    `load ${Os.loadavg()[0]!.toFixed(2)}`)
  const r = rc4Figures()
  console.log(`\nRC4, CPU s per GiB (best of 5 over ${rc4Bytes / 2 ** 20} MiB):`)
  console.log(`  in place, aligned 1 MiB buffers     ${r.inPlace.toFixed(2)}`)
  console.log(`  read path, 16 KiB+13 at odd offsets ${r.readPath.toFixed(2)}`)
  console.log(`  write path, copy + encrypt 16 KiB   ${r.writePath.toFixed(2)}`)
  console.log(`  textbook byte loop (for comparison) ${r.textbook.toFixed(2)}`)
  console.log(`\nDH per connection (Y + S): ${dhFigure().toFixed(3)} ms`)
  const rows = yield* connectFigures
  console.log(`\nConnect time until the peer's handshake, ms (${connects} connections, loopback):`)
  for (const row of rows) {
    console.log(`  ${row.label.padEnd(56)} median ${row.median.toFixed(2).padStart(6)}  p90 ${row.p90.toFixed(2).padStart(6)}`)
  }
  const dl = yield* downloadFigures
  console.log(`\nDownload of ${(size / 2 ** 20).toFixed(0)} MiB between two in-process clients (median of 3):`)
  for (const row of dl) {
    console.log(`  ${row.policy.padEnd(8)} wall ${row.wall.toFixed(2)} s  CPU ${row.cpu.toFixed(2)} s (both sides)`)
  }
  console.log(`load after: ${Os.loadavg()[0]!.toFixed(2)}`)
})

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
