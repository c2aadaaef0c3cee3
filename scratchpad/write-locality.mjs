// Which thread writes a piece matters on this VM (issue 16, docs/PERFORMANCE.md "Where the download's CPU goes"):
// 1024 pieces of 1 MiB, each filled on the main thread (as blocks are copied in), hashed (SHA-1) in a worker, then
// written to a new file either by the libuv threadpool after the buffer came back (`pool`, what FileStorage does) or
// by the worker itself right after hashing (`worker`). Prints wall, user and sys ms. Run alternately:
//   for m in pool worker pool worker pool worker; do rm -f /tmp/wb/xw.bin; node scratchpad/write-locality.mjs $m; done
import { mkdirSync } from "node:fs"
mkdirSync("/tmp/wb", { recursive: true })
import fs from "node:fs"
import { Worker } from "node:worker_threads"
const mode = process.argv[2] // "pool": worker hashes, main fs.write (threadpool); "worker": worker hashes + writeSync
const P = 1 << 20, N = 1024
const fd = fs.openSync("/tmp/wb/xw.bin", "w")
const w = new Worker(`
const { parentPort } = require("node:worker_threads"); const crypto = require("node:crypto"); const fs = require("node:fs")
parentPort.on("message", ({ buf, i, fd, write }) => {
  const d = crypto.createHash("sha1").update(new Uint8Array(buf)).digest()
  if (write) fs.writeSync(fd, new Uint8Array(buf), 0, buf.byteLength, i * ${P})
  parentPort.postMessage({ buf, i }, [buf])
})`, { eval: true })
const src = new Uint8Array(65536); for (let i = 0; i < src.length; i++) src[i] = i * 7
const free = Array.from({ length: 32 }, () => new ArrayBuffer(P))
let next = 0, done = 0, inflight = 0
const cpu0 = process.cpuUsage(); const t0 = performance.now()
const finish = () => { if (++done === N) { const c = process.cpuUsage(cpu0); console.log(`${mode}: wall ${(performance.now()-t0)|0} ms user ${c.user/1000|0} sys ${c.system/1000|0}`); w.terminate(); fs.closeSync(fd) } }
w.on("message", ({ buf, i }) => {
  if (mode === "worker") { free.push(buf); finish(); pump() }
  else fs.write(fd, new Uint8Array(buf), 0, P, i * P, () => { free.push(buf); finish(); pump() })
})
const pump = () => {
  while (free.length > 0 && next < N) {
    const buf = free.pop(); const u = new Uint8Array(buf)
    for (let o = 0; o < P; o += 65536) u.set(src, o)  // as blocks are copied in from socket reads
    w.postMessage({ buf, i: next++, fd, write: mode === "worker" }, [buf])
  }
}
pump()
