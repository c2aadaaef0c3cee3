/**
 * `effect-torrent demo [--size 64MiB]`: the whole client in one command, with nothing to set up. It writes a random
 * two-file payload into a temp directory, makes a torrent of it, seeds it from one in-process client (listening on
 * 127.0.0.1, any free port) and downloads it with another into a separate directory — the real wire protocol over
 * loopback, with the download progress bar — then compares both copies by SHA-256 and removes the temp directory.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Bytes from "../core/Bytes.ts"
import * as Create from "../metainfo/Create.ts"
import * as Client from "../session/Client.ts"
import * as Creator from "../storage/Creator.ts"
import * as Hasher from "../storage/Hasher.ts"
import * as RateLimit from "../torrent/RateLimit.ts"
import * as TorrentEvent from "../torrent/TorrentEvent.ts"
import { statusLine, type View } from "./DownloadCommand.ts"
import { columns } from "./Progress.ts"
import { CliFailure, colorEnabled, formatBytes, sanitizeText, style } from "./Output.ts"

const sizeOpt = Options.text("size").pipe(
  Options.withDescription("payload size, e.g. 64MiB (default), 500K, 1GiB"),
  Options.withDefault("64MiB")
)

const MAX_SIZE = 16 * 1024 * 1024 * 1024

/** Writes `length` random bytes to `path`, 1 MiB at a time. */
const writeRandom = (path: string, length: number): void => {
  Fs.mkdirSync(Path.dirname(path), { recursive: true })
  const fd = Fs.openSync(path, "w")
  try {
    for (let left = length; left > 0;) {
      const n = Math.min(left, 1024 * 1024)
      Fs.writeSync(fd, randomBytes(n))
      left -= n
    }
  } finally {
    Fs.closeSync(fd)
  }
}

const sha256 = (path: string): string => createHash("sha256").update(Fs.readFileSync(path)).digest("hex")

const run = (input: { readonly size: string }) =>
  Effect.gen(function*() {
    const parsed = RateLimit.parseRate(input.size.replace(/\/s$/i, ""))
    if (Either.isLeft(parsed) || parsed.right < 2 || parsed.right > MAX_SIZE) {
      const message = `--size ${sanitizeText(input.size)}: expected 2 bytes..16GiB`
      return yield* new CliFailure({ message, exitCode: 2 })
    }
    const size = parsed.right
    const out = process.stdout
    const tty = out.isTTY === true
    const color = colorEnabled(out)
    const s = style(color)
    const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-torrent-demo-"))
    yield* Effect.gen(function*() {
      // The payload: two files, one in a subdirectory.
      const seedDir = Path.join(root, "seed")
      const payload = Path.join(seedDir, "demo-payload")
      const big = Math.max(1, Math.floor((size * 3) / 4))
      const files = [{ path: ["video.bin"], length: big }, { path: ["extras", "notes.bin"], length: size - big }]
      for (const f of files) writeRandom(Path.join(payload, ...f.path), f.length)
      // Pieces of at least 256 KiB: per-piece costs (hash, write, have) stay small next to the bytes.
      const pieceLength = Math.max(Create.autoPieceLength(size), 256 * 1024)
      const created = yield* Creator.create(payload, { pieceLength }).pipe(
        Effect.provide(Hasher.layer),
        Effect.mapError((e) => new CliFailure({ message: sanitizeText(e.message), exitCode: 1 }))
      )
      const m = created.metainfo
      out.write(
        `payload: ${formatBytes(size)} in ${files.length} files under ${root}\n` +
          `torrent: ${m.pieceCount} pieces of ${formatBytes(m.pieceLength)}, info-hash ${Bytes.toHex(m.infoHash)}\n`
      )

      yield* Effect.scoped(Effect.gen(function*() {
        // Seeder: one client, listening on loopback.
        const seeder = yield* Layer.build(Client.layer({ listen: { host: "127.0.0.1", port: 0 } }))
        const seeding = yield* Client.seed(m, { dataDir: seedDir, trackers: false }).pipe(Effect.provide(seeder))
        const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(seeder))
        const port = listener?.address.port ?? 0
        out.write(`seeder: listening on 127.0.0.1:${port}\n`)

        // Downloader: another client, its own peer id and output directory.
        const leecher = yield* Layer.build(Client.layer({}))
        const downloadDir = Path.join(root, "download")
        const startedAt = Date.now()
        const d = yield* Client.download(m, {
          outputDir: downloadDir,
          peers: [{ host: "127.0.0.1", port }],
          trackers: false
        }).pipe(Effect.provide(leecher))
        const view: View = { checking: undefined, downRate: 0, peers: 0 }
        yield* Effect.forkScoped(Stream.runForEach(d.events, (e) =>
          Effect.sync(() => {
            if (TorrentEvent.$is("Checking")(e)) view.checking = { checked: e.checked, total: e.total }
            else if (TorrentEvent.$is("Started")(e)) view.checking = undefined
            else if (TorrentEvent.$is("Progress")(e)) {
              view.downRate = e.downRate
              view.peers = e.peers
            }
          })))
        const draw = tty
          ? Effect.sync(() => out.write(`\r\x1b[K${statusLine(d, view, columns(out), true, color)}`))
          : Effect.sync(() => out.write(`${statusLine(d, view, Number.POSITIVE_INFINITY, false, false)}\n`))
        yield* Effect.forkScoped(
          Effect.sleep(tty ? "250 millis" : "1 second").pipe(Effect.andThen(draw), Effect.forever)
        )
        const done = yield* Effect.either(d.done)
        if (tty) out.write("\r\x1b[K")
        if (Either.isLeft(done)) {
          return yield* new CliFailure({ message: `demo download failed: ${done.left.message}`, exitCode: 1 })
        }
        const secs = Math.max(0.001, (Date.now() - startedAt) / 1000)
        out.write(
          `downloaded ${formatBytes(size)} in ${secs.toFixed(2)} s (${formatBytes(size / secs)}/s); ` +
            `the seeder uploaded ${formatBytes(seeding.stats().uploaded)}\n`
        )

        // Verify: every file byte-identical.
        for (const f of files) {
          const a = sha256(Path.join(payload, ...f.path))
          const b = sha256(Path.join(downloadDir, "demo-payload", ...f.path))
          if (a !== b) {
            return yield* new CliFailure({ message: `demo: ${f.path.join("/")} differs after download`, exitCode: 1 })
          }
          const shown = `${formatBytes(f.length).padStart(10)}  ${f.path.join("/")}`
          out.write(`  ${s.green("✓")} ${shown}  sha256 ${a.slice(0, 16)}…\n`)
        }
        out.write(`verified: ${files.length} files byte-identical\n`)
      }))
    }).pipe(
      Effect.catchTag("TorrentError", (e) =>
        Effect.fail(new CliFailure({ message: sanitizeText(e.message), exitCode: 1 }))),
      Effect.ensuring(Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
    )
  })

export const demo = Command.make("demo", { size: sizeOpt }, run).pipe(
  Command.withDescription("seed a random payload and download it again over loopback, in one process")
)
