// Builds two single-file ESM bundles:
// - dist/cli.mjs: the CLI, every dependency inlined. One file loads in ~0.2 s instead of ~0.5 s for Effect's ESM
//   graph file by file (STACK.md §3). The banner gives @effect/cli's CJS dependencies a `require`.
// - dist/index.mjs: the library (src/index.ts) for plain Node consumers, with `effect` and `@effect/*` left as
//   imports so an embedding program shares one copy of Effect. Types come from src/ (package.json `exports`).
import { build } from "esbuild"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
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
await Promise.all([
  build({
    ...common,
    entryPoints: ["src/cli/main.ts"],
    outfile: "dist/cli.mjs",
    minify: true,
    banner: { js: 'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);' }
  }),
  build({ ...common, entryPoints: ["src/index.ts"], outfile: "dist/index.mjs", packages: "external" })
])
