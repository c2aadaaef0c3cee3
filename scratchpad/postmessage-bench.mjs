// Cost on the sender of postMessage with a transferred 1 MiB ArrayBuffer (round trip through an echo worker).
import { Worker } from "node:worker_threads"
const w = new Worker(`const { parentPort } = require("node:worker_threads"); parentPort.on("message", (m) => parentPort.postMessage(m, [m.buffer]))`, { eval: true })
const N = 2000
let buf = new ArrayBuffer(1 << 20)
let spent = 0n, i = 0
await new Promise((resolve) => {
  w.on("message", (m) => { buf = process.env.FRESH ? new Uint8Array(1 << 20).buffer : m.buffer; if (++i === N) resolve(); else send() })
  const send = () => { const t = process.hrtime.bigint(); w.postMessage({ id: i, buffer: buf, offset: 0, length: buf.byteLength }, [buf]); spent += process.hrtime.bigint() - t }
  send()
})
console.log(`postMessage with transfer: ${(Number(spent) / N / 1000).toFixed(1)} µs per call`)
await w.terminate()
