// The floor: the least a Node 20 leecher can do for a one-file torrent from one seeder, to show what Node itself
// costs on this machine (issue 16: "if a target turns out impossible on Node 20, show the measurement that proves
// it"). Plain Node, no Effect, no generality: one HTTP announce, one TCP peer, plaintext, no extensions, blocks
// requested in order with 250 in flight, pieces assembled into recycled buffers, SHA-1 in one worker thread (the
// buffer transferred there and back), each piece written inline in 32 KiB calls, reading paused over 24 MiB
// of pieces waiting — the same choices effect-torrent makes, minus everything else. Not a client: it trusts the
// seeder (a piece that fails its hash is fatal), ignores chokes after the first unchoke and every other message.
//
//   node bench/floor-leech.mjs FILE.torrent OUT_DIR PORT
import bencode from "bencode"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import { Worker } from "node:worker_threads"

const [torrentPath, outDir, portText] = process.argv.slice(2)
const die = (message) => {
  process.stderr.write(`floor-leech: ${message}\n`)
  process.exit(1)
}
const meta = bencode.decode(Fs.readFileSync(torrentPath))
const info = meta.info
if (info.files !== undefined) die("one-file torrents only")
const infoHash = createHash("sha1").update(bencode.encode(info)).digest()
const total = info.length
const pieceLength = info["piece length"]
const hashes = info.pieces
const pieceCount = Math.ceil(total / pieceLength)
const pieceSize = (i) => (i === pieceCount - 1 ? total - i * pieceLength : pieceLength)
const BLOCK = 16384
const PIPELINE = 250
const CHUNK = 32 * 1024
const BACKLOG = 24 * 1024 * 1024
const peerId = Buffer.concat([Buffer.from("-FL0001-"), randomBytes(12)])

// --- the tracker: one announce, the first peer it names --------------------------------------------------------
const pct = (b) => [...b].map((x) => "%" + x.toString(16).padStart(2, "0")).join("")
const announce = new TextDecoder().decode(meta.announce)
const url = `${announce}?info_hash=${pct(infoHash)}&peer_id=${pct(peerId)}&port=${portText}&uploaded=0&downloaded=0&left=${total}&compact=1&event=started`
const answer = await new Promise((resolve, reject) =>
  Http.get(url, (res) => {
    const parts = []
    res.on("data", (d) => parts.push(d))
    res.on("end", () => resolve(Buffer.concat(parts)))
  }).on("error", reject)
)
const peers = bencode.decode(answer).peers
// Every peer but us (opentracker may list the announcing peer itself, and leechers of earlier runs that are gone):
// the first that accepts the connection is the seeder.
const candidates = []
for (let i = 0; peers instanceof Uint8Array && i + 6 <= peers.length; i += 6) {
  const p = (peers[i + 4] << 8) | peers[i + 5]
  if (p !== Number(portText)) candidates.push({ host: `${peers[i]}.${peers[i + 1]}.${peers[i + 2]}.${peers[i + 3]}`, port: p })
}
const connectAny = async () => {
  for (const c of candidates) {
    const s = await new Promise((resolve) => {
      const s = Net.connect(c)
      s.once("connect", () => resolve(s))
      s.once("error", () => resolve(undefined))
    })
    if (s !== undefined) return s
  }
  die("no peer the tracker named accepted a connection")
}

// --- storage and hashing ----------------------------------------------------------------------------------------
Fs.mkdirSync(outDir, { recursive: true })
const fd = Fs.openSync(Path.join(outDir, new TextDecoder().decode(info.name)), "w")
const hasher = new Worker(
  `const { parentPort } = require("node:worker_threads"); const { createHash } = require("node:crypto")
   parentPort.on("message", (m) => {
     const digest = createHash("sha1").update(new Uint8Array(m.buffer, 0, m.length)).digest()
     parentPort.postMessage({ index: m.index, digest, buffer: m.buffer }, [m.buffer])
   })`,
  { eval: true }
)
const free = []
let backlog = 0
let written = 0
let socket
// Inline, in 32 KiB calls, as effect-torrent writes (FileStorage.WRITE_CHUNK says why: large calls get large
// page-cache folios, which this VM often charges a host fault per page).
const writePiece = (index, data) => {
  const position = index * pieceLength
  for (let at = 0; at < data.length; ) {
    const n = Fs.writeSync(fd, data, at, Math.min(CHUNK, data.length - at), position + at)
    if (n === 0) die("write made no progress")
    at += n
  }
  pieceDone(index, data)
}
const pieceDone = (index, data) => {
  backlog -= data.length
  if (data.length === pieceLength) free.push(data)
  if (backlog < BACKLOG / 2 && socket.isPaused()) {
    stats.pausedMs += performance.now() - stats.since
    socket.resume()
  }
  if (++written === pieceCount) {
    Fs.closeSync(fd)
    void hasher.terminate()
    socket.destroy()
  }
}
hasher.on("message", (m) => {
  const data = new Uint8Array(m.buffer, 0, pieceSize(m.index))
  if (!Buffer.from(m.digest).equals(hashes.subarray(m.index * 20, m.index * 20 + 20))) die(`piece ${m.index} failed its hash`)
  writePiece(m.index, data)
})
// FLOOR_STATS=1: how long reading sat paused on the backlog, printed at exit (to compare with effect-torrent's
// scratchpad/pause-probe.patch).
const stats = { pauses: 0, pausedMs: 0, since: 0, t0: performance.now() }
if (process.env.FLOOR_STATS) {
  process.on("exit", () => process.stderr.write(`FLOOR pauses=${stats.pauses} pausedMs=${stats.pausedMs.toFixed(0)} life=${(performance.now() - stats.t0).toFixed(0)}\n`))
}
const completed = (index, data) => {
  backlog += data.length
  if (backlog > BACKLOG && !socket.isPaused()) {
    stats.pauses++
    stats.since = performance.now()
    socket.pause()
  }
  hasher.postMessage({ index, buffer: data.buffer, length: data.length }, [data.buffer])
}

// --- the peer ---------------------------------------------------------------------------------------------------
const buffers = new Map() // piece -> { data, left }
let nextBlock = 0 // next block to request, counted over the whole torrent
const blocksIn = (i) => Math.ceil(pieceSize(i) / BLOCK)
const totalBlocks = Array.from({ length: pieceCount }, (_, i) => blocksIn(i)).reduce((a, b) => a + b, 0)
let outstanding = 0
let unchoked = false
const blockAt = (n) => {
  const piece = Math.floor((n * BLOCK) / pieceLength)
  const begin = n * BLOCK - piece * pieceLength
  return { piece, begin, length: Math.min(BLOCK, pieceSize(piece) - begin) }
}
const request = () => {
  if (!unchoked) return
  const out = []
  while (outstanding < PIPELINE && nextBlock < totalBlocks) {
    const b = blockAt(nextBlock++)
    const m = Buffer.allocUnsafe(17)
    m.writeUInt32BE(13, 0)
    m[4] = 6
    m.writeUInt32BE(b.piece, 5)
    m.writeUInt32BE(b.begin, 9)
    m.writeUInt32BE(b.length, 13)
    out.push(m)
    outstanding++
  }
  if (out.length > 0) socket.write(Buffer.concat(out))
}
/** The piece buffer for a block of piece `index` (a recycled one for a new piece). */
const bufferOf = (index) => {
  let p = buffers.get(index)
  if (p === undefined) {
    const size = pieceSize(index)
    const reuse = size === pieceLength ? free.pop() : undefined
    p = { index, data: reuse ?? new Uint8Array(size), left: blocksIn(index) }
    buffers.set(index, p)
  }
  return p
}
const blockDone = (p) => {
  outstanding--
  if (--p.left === 0) {
    buffers.delete(p.index)
    completed(p.index, p.data)
  }
}

// A streaming parser: block payloads are copied straight from the socket's chunks into piece buffers, once.
let handshake = 68 // bytes of the peer's handshake still to skip
const head = Buffer.alloc(13) // a frame's length, id, and for a piece its index and begin
let headGot = 0
let body = 0 // bytes of the current frame's body still to come
let target // the piece buffer a piece body goes to
let targetAt = 0
const feed = (chunk) => {
  let i = 0
  while (i < chunk.length) {
    if (handshake > 0) {
      const n = Math.min(handshake, chunk.length - i)
      handshake -= n
      i += n
      continue
    }
    if (body > 0) {
      const n = Math.min(body, chunk.length - i)
      if (target !== undefined) {
        chunk.copy(target.data, targetAt, i, i + n)
        targetAt += n
      }
      body -= n
      i += n
      if (body === 0 && target !== undefined) {
        blockDone(target)
        target = undefined
      }
      continue
    }
    head[headGot++] = chunk[i++]
    if (headGot < 4) continue
    const length = head.readUInt32BE(0)
    if (length === 0) { // keep-alive
      headGot = 0
      continue
    }
    if (headGot === 4) continue
    if (head[4] !== 7) { // not a piece: unchoke is the only one that matters here
      if (head[4] === 1) unchoked = true
      body = length - 1
      headGot = 0
      continue
    }
    if (headGot < 13) continue
    target = bufferOf(head.readUInt32BE(5))
    targetAt = head.readUInt32BE(9)
    body = length - 9
    headGot = 0
  }
}

socket = await connectAny()
socket.setNoDelay(true)
{
  const hs = Buffer.alloc(68)
  hs[0] = 19
  hs.write("BitTorrent protocol", 1, "latin1")
  infoHash.copy(hs, 28)
  peerId.copy(hs, 48)
  socket.write(Buffer.concat([hs, Buffer.from([0, 0, 0, 1, 2])])) // handshake, interested
}
socket.on("data", (chunk) => {
  feed(chunk)
  request()
})
socket.on("error", (e) => {
  if (written < pieceCount) die(e.message)
})
socket.on("close", () => {
  if (written < pieceCount) die("the peer closed the connection")
})
