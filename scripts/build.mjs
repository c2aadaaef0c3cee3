// Builds what the package ships (package.json `files`, `exports`, `bin`):
// - dist/cli.mjs and dist/cli/: the CLI, every dependency inlined, so it needs nothing installed beside it. Bundled
//   files load in ~0.2 s instead of ~0.5 s for Effect's ESM graph file by file (STACK.md §3). The entry answers
//   --help alone; the commands are dist/cli/run.cjs, CommonJS so that the entry can run it with V8's code cache
//   (src/cli/CodeCache.ts: Node 20 caches no ES module's compilation), each command's modules started only when it
//   runs (src/cli/Run.ts). Rebuilding removes dist/cli/, and with it the caches of the old bundle.
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
    define: { EFFECT_TORRENT_VERSION: JSON.stringify(version), EFFECT_TORRENT_RUN_BUNDLE: JSON.stringify("./cli/run.cjs") }
  }),
  // The commands (src/cli/Run.ts and what it loads), CommonJS so that main.ts can run them with V8's code cache
  // (src/cli/CodeCache.ts). Each command's module still starts only when that command runs (esbuild's lazy init).
  build({
    ...common,
    entryPoints: { "cli/run": "src/cli/Run.ts" },
    outdir: "dist",
    format: "cjs",
    outExtension: { ".js": ".cjs" },
    minify: true,
    define: { "import.meta.url": "__importMetaUrl" },
    banner: { js: 'const __importMetaUrl=require("node:url").pathToFileURL(__filename).href;' }
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
