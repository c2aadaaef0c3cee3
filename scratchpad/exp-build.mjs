// Builds the CLI bundle exactly as scripts/build.mjs does (minified) into OUT/dist/cli.mjs, to A/B a working-tree
// change against dist/: node scratchpad/exp-build.mjs /tmp/exp
import { build } from "esbuild"
const out = process.argv[2] ?? "/tmp/exp"
await build({
  absWorkingDir: process.cwd(), bundle: true, platform: "node", format: "esm", target: "node20", minify: true,
  legalComments: "none", logLevel: "warning", entryPoints: ["src/cli/main.ts"], outfile: `${out}/dist/cli.mjs`,
  banner: { js: 'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);' }
})
