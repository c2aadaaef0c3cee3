// WebTorrent 3 as a leecher for bench/download.ts (not a test): node webtorrent-leech.mjs TORRENT OUT PORT
// Loaded from the bench's own install of webtorrent (WEBTORRENT_DIR, see bench/harness.ts `ensureWebTorrent`).
// Plaintext (secure 0: the libtorrent seeder speaks plain BitTorrent), TCP only, no DHT/LSD/NAT traversal/web seeds:
// it finds the seeder through the torrent's tracker, like the other leechers. Exits 0 once every piece is verified
// and the store has written it.
import { createRequire, register } from "node:module"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"

const [torrentPath, out, port] = process.argv.slice(2)
// WebRTC (node-datachannel) is native and its binary comes from an install script we skip; the bench uses TCP only,
// so its import is served by a stub with the names webrtc-polyfill takes.
const stub = "export class PeerConnection {}; export class RtcpReceivingSession {}; export class Video {}; " +
  "export class Audio {}; export const cleanup = () => {}; export default {}"
register(`data:text/javascript,${encodeURIComponent(`
  export async function resolve(specifier, context, next) {
    if (specifier === "node-datachannel" || specifier.startsWith("node-datachannel/")) {
      return { url: "data:text/javascript,${encodeURIComponent(stub)}", shortCircuit: true }
    }
    return next(specifier, context)
  }`)}`)
const require = createRequire(Path.join(process.env.WEBTORRENT_DIR, "package.json"))
const { default: WebTorrent } = await import(pathToFileURL(require.resolve("webtorrent")).href)
const client = new WebTorrent({
  dht: false, lsd: false, utp: false, natUpnp: false, natPmp: false, webSeeds: false, secure: 0,
  torrentPort: Number(port)
})
client.on("error", (e) => {
  console.error(`webtorrent: ${e.message ?? e}`)
  process.exit(1)
})
client.add(torrentPath, { path: out, deselect: false }, (torrent) => {
  torrent.on("error", (e) => {
    console.error(`webtorrent: ${e.message ?? e}`)
    process.exit(1)
  })
  torrent.on("done", () => {
    // the chunk store writes before a piece counts as done; destroy closes its descriptors
    client.destroy(() => process.exit(0))
  })
})
