// Builds what the package ships (package.json `files`, `exports`, `bin`):
// - dist/cli.mjs and dist/cli/: the CLI, every dependency inlined, so it needs nothing installed beside it. Bundled
//   files load in ~0.2 s instead of ~0.5 s for Effect's ESM graph file by file (STACK.md §3); split so that the
//   entry answers --help alone and each command loads only its own code (src/cli/Run.ts). The banner gives
//   @effect/cli's CJS dependencies a `require`.
// - dist/index.mjs and dist/api.mjs: the library's two entries (src/index.ts, src/api.ts) with their shared code in
//   dist/chunks/ (one copy of each module, so a class is the same class from either entry), `effect` and
//   `@effect/*` left as imports (peer dependencies): an application and the library share one copy of Effect.
// - with --types (the `prepack` script): dist/types/, the declarations of both entries (tsc, tsconfig.build.json),
//   their relative imports rewritten from `.ts` to `.js` as a consumer's `module: nodenext` resolves them.
// - dist/webui/: the daemon's web UI (scripts/webui.mjs), which `effect-torrent daemon` serves at `/`.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { buildWebUi } from "./webui.mjs"

const root = fileURLToPath(new URL("..", import.meta.url))
const dist = join(root, "dist")
const common = {
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning"
}
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
for (const dir of ["chunks", "cli"]) rmSync(join(dist, dir), { recursive: true, force: true })
await Promise.all([
  build({
    ...common,
    entryPoints: { cli: "src/cli/main.ts" },
    outdir: "dist",
    splitting: true,
    chunkNames: "cli/[name]-[hash]",
    outExtension: { ".js": ".mjs" },
    minify: true,
    define: { EFFECT_TORRENT_VERSION: JSON.stringify(version) },
    banner: { js: 'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);' }
  }),
  build({
    ...common,
    entryPoints: { index: "src/index.ts", api: "src/api.ts" },
    outdir: "dist",
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    outExtension: { ".js": ".mjs" },
    packages: "external"
  }),
  buildWebUi({ outdir: join(dist, "webui") })
])

if (process.argv.includes("--types")) {
  const types = join(dist, "types")
  rmSync(types, { recursive: true, force: true })
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })
  const walk = (dir) =>
    readdirSync(dir).flatMap((name) => {
      const p = join(dir, name)
      return statSync(p).isDirectory() ? walk(p) : p.endsWith(".d.ts") ? [p] : []
    })
  for (const file of walk(types)) {
    const text = readFileSync(file, "utf8")
    const fixed = text.replace(/(["'])(\.\.?\/[^"']*)\.ts\1/g, "$1$2.js$1")
    if (fixed !== text) writeFileSync(file, fixed)
  }
}
