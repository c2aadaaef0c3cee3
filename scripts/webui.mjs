// Builds the web UI (src/webui/) into a directory the daemon serves (src/api/WebUi.ts): `app-<hash>.js` (one
// minified ES module, no framework: type-only imports of the API's Schemas vanish), `app_style-<hash>.css`, and
// `index.html` naming both. The content hash in the names lets the daemon mark them cacheable for a year; only
// index.html is revalidated. Also the bundle's sizes (raw and gzip), for docs/WEBUI.md.
import { build } from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Zlib from "node:zlib"

const root = fileURLToPath(new URL("..", import.meta.url))

/** @param {{ outdir: string }} options */
export const buildWebUi = async ({ outdir }) => {
  Fs.rmSync(outdir, { recursive: true, force: true })
  const result = await build({
    absWorkingDir: root,
    entryPoints: { app: "src/webui/main.ts", app_style: "src/webui/style.css" },
    bundle: true,
    platform: "browser",
    format: "esm",
    target: ["chrome109", "firefox115", "safari16"],
    minify: true,
    entryNames: "[name]-[hash]",
    outdir,
    metafile: true,
    legalComments: "none",
    logLevel: "warning",
    write: true
  })
  const outputs = Object.keys(result.metafile.outputs).map((p) => Path.basename(p))
  const js = outputs.find((f) => f.endsWith(".js"))
  const css = outputs.find((f) => f.endsWith(".css"))
  if (js === undefined || css === undefined) throw new Error(`web UI build: expected a .js and a .css, got ${outputs.join(", ")}`)
  const template = Fs.readFileSync(Path.join(root, "src/webui/index.html"), "utf8")
  const html = template.replace("%APP_JS%", `/webui/${js}`).replace("%APP_CSS%", `/webui/${css}`)
  Fs.writeFileSync(Path.join(outdir, "index.html"), html)
  const sizes = Object.fromEntries(["index.html", js, css].map((f) => {
    const bytes = Fs.readFileSync(Path.join(outdir, f))
    return [f, { bytes: bytes.length, gzip: Zlib.gzipSync(bytes, { level: 9 }).length }]
  }))
  return { outdir, js, css, sizes }
}
