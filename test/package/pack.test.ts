/**
 * The package as a user gets it from npm: `npm pack` (which runs `prepack`: bundles and declarations) in a copy of
 * the project, the tarball installed into a fresh project beside the peer dependencies at the versions we use
 * (from npm's cache), then the CLI run through `npx` and a consumer program type-checked with `tsc --init`'s
 * defaults (`module: nodenext`) and run: it composes the library's services from both entries.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { exec } from "../support/cli.ts"
import { projectRoot } from "../support/fixtures.ts"

const work = mkdtempSync(join(tmpdir(), "effect-torrent-pack-"))
afterAll(() => rmSync(work, { recursive: true, force: true }))

const env = {
  ...process.env,
  NO_COLOR: "1",
  EFFECT_TORRENT_LOOPBACK_ONLY: "1",
  XDG_STATE_HOME: join(work, "state"),
  npm_config_update_notifier: "false"
}
const npm = (args: ReadonlyArray<string>, cwd: string) =>
  exec("sh", ["-c", `cd "${cwd}" && exec npm "$@"`, "npm", ...args], { env, timeout: 180_000 })
const installed = (name: string): string =>
  (JSON.parse(readFileSync(join(projectRoot, "node_modules", name, "package.json"), "utf8")) as { version: string }).version

// A program an application would write: make a torrent, seed it with one client and download it with another,
// then run the many-torrents Session behind the HTTP API and drive it with the typed remote client.
const consumer = `
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Client, Creator, Hasher, Metainfo, Session, SessionLive, TorrentError } from "effect-torrent"
import { RemoteClient, Server } from "effect-torrent/api"

const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "consumer-"))
const payload = Path.join(root, "seed", "payload.bin")
Fs.mkdirSync(Path.dirname(payload), { recursive: true })
Fs.writeFileSync(payload, Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251))

const program = Effect.scoped(Effect.gen(function*() {
  const created = yield* Creator.create(payload).pipe(Effect.provide(Hasher.layer))
  const metainfo = yield* Metainfo.decodeEffect(created.torrent)
  const seeder = yield* Layer.build(Client.layer({ listen: { host: "127.0.0.1", port: 0 } }))
  yield* Client.seed(metainfo, { dataDir: Path.dirname(payload), trackers: false }).pipe(Effect.provide(seeder))
  const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(seeder))
  const out = Path.join(root, "out")
  const d = yield* Client.download(metainfo, {
    outputDir: out,
    peers: [{ host: "127.0.0.1", port: listener?.address.port ?? 0 }],
    trackers: false
  }).pipe(Effect.provide(Client.layer()))
  yield* d.done
  const same = Buffer.compare(Fs.readFileSync(payload), Fs.readFileSync(Path.join(out, "payload.bin"))) === 0
  console.log(\`downloaded \${d.name}: \${same ? "identical" : "DIFFERENT"}\`)

  const stateDir = Path.join(root, "state")
  const session = yield* Layer.build(
    SessionLive.layer({ stateDir }).pipe(Layer.provide(Client.layer({ stateDir, listen: { host: "127.0.0.1", port: 0 } })))
  )
  const server = yield* Server.start({ port: 0 }).pipe(Effect.provide(session))
  const remote = yield* RemoteClient.RemoteClient.pipe(Effect.provide(RemoteClient.layer({ baseUrl: server.url })))
  const added = yield* remote.add({ _tag: "Metainfo", bytes: created.torrent }, { paused: true })
  const listed = yield* Effect.flatMap(Session.Session, (s) => s.list).pipe(Effect.provide(session))
  console.log(\`session: \${listed.length} torrent, \${added.name}\`)
}))

const failed = (e: TorrentError.TorrentError | { readonly message: string }) => Effect.sync(() => {
  console.error(\`failed: \${e.message}\`)
  process.exitCode = 1
})
Effect.runPromise(program.pipe(Effect.catchAll(failed))).finally(() => Fs.rmSync(root, { recursive: true, force: true }))
`

describe("the npm package", () => {
  it("packs, installs into a fresh project, runs the CLI and a consumer program", async () => {
    // A copy of the project (node_modules linked), so the build `npm pack` runs never rewrites the bundle that
    // other test files are running.
    const src = join(work, "src")
    cpSync(projectRoot, src, {
      recursive: true,
      filter: (p) => !/^(node_modules|dist|\.git|coverage)(\/|$)/.test(relative(projectRoot, p))
    })
    symlinkSync(join(projectRoot, "node_modules"), join(src, "node_modules"))
    const pack = await npm(["pack", "--json", "--pack-destination", work], src)
    expect(pack.code, pack.stderr).toBe(0)
    const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as Array<
      { filename: string; files: Array<{ path: string }> }
    >
    const files = packed!.files.map((f) => f.path)
    expect(files.filter((f) => /^(test|scratchpad|bench|\.ci|fuzz|src|stubs|docs|dist\/cli\/code-cache)\//.test(f))).toEqual([])
    expect(files).toEqual(expect.arrayContaining([
      "LICENSE",
      "README.md",
      "package.json",
      "bin/effect-torrent.js",
      "dist/cli.mjs",
      "dist/cli/run.cjs",
      "dist/index.mjs",
      "dist/api.mjs",
      "dist/types/index.d.ts",
      "dist/types/api.d.ts",
      "dist/webui/index.html"
    ]))

    const app = join(work, "app")
    mkdirSync(app)
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
    const deps = ["effect", "@effect/platform", "@effect/platform-node", "@types/node"].map((n) => `${n}@${installed(n)}`)
    const install = await npm(
      ["install", "--prefer-offline", "--no-audit", "--no-fund", join(work, packed!.filename), ...deps],
      app
    )
    expect(install.code, install.stderr).toBe(0)

    const version = await npm(["exec", "--no", "--", "effect-torrent", "--version"], app)
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")).version)
    const demo = await npm(["exec", "--no", "--", "effect-torrent", "demo", "--size", "1MiB"], app)
    expect(demo.code, demo.stderr).toBe(0)
    expect(demo.stdout).toContain("verified: 2 files byte-identical")

    // TypeScript's own defaults (`tsc --init`: module nodenext, strict, exactOptionalPropertyTypes, …), with Node's types.
    const tsc = join(projectRoot, "node_modules/typescript/bin/tsc")
    writeFileSync(join(app, "main.ts"), consumer)
    const init = await exec("sh", ["-c", `cd "${app}" && "${process.execPath}" "${tsc}" --init`], { env })
    expect(init.code, init.stdout).toBe(0)
    const check = await exec("sh", ["-c", `cd "${app}" && "${process.execPath}" "${tsc}" -p . --types node`], { env })
    expect(check.stdout + check.stderr).toBe("")
    const run = await exec(process.execPath, [join(app, "main.js")], { env })
    expect(run.stderr).toBe("")
    expect(run.stdout).toBe("downloaded payload.bin: identical\nsession: 1 torrent, payload.bin\n")
  }, 240_000)
})
