import { build } from "esbuild"
await build({ absWorkingDir: process.cwd(), bundle: true, platform: "node", format: "esm", target: "node20", keepNames: true,
  entryPoints: ["src/cli/main.ts"], outfile: "/tmp/prof/dist/cli.mjs", logLevel: "warning",
  banner: { js: 'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);' } })
