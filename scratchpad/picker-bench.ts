/**
 * Micro-benchmark of the picker: a whole download driven through nextRequests / blockReceived / pieceVerified.
 * Run: npx tsx scratchpad/picker-bench.ts
 */
import * as Bitfield from "../src/core/Bitfield.ts"
import * as Picker from "../src/picker/Picker.ts"

const rng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const run = (
  label: string,
  pieces: number,
  pieceLength: number,
  peers: number,
  batch: number,
  seedShare: number,
  share = 0.5
) => {
  const random = rng(42)
  const p = Picker.make({ pieceCount: pieces, pieceLength, totalLength: pieces * pieceLength, random })
  const ids: Array<string> = []
  for (let k = 0; k < peers; k++) {
    const id = `peer${k}`
    ids.push(id)
    p.peerJoined(id)
    if (k < peers * seedShare) p.peerHaveAll(id)
    else {
      const bf = Bitfield.make(pieces)
      // every piece is somewhere: peer k also has the pieces i ≡ k (mod peers)
      for (let i = 0; i < pieces; i++) if (random() < share || i % peers === k) Bitfield.set(bf, i)
      p.peerBitfield(id, bf)
    }
  }
  const queues = new Map<string, Array<Picker.BlockRequest>>(ids.map((id) => [id, []]))
  let requests = 0
  let pickNs = 0n
  const t0 = process.hrtime.bigint()
  while (!p.isComplete()) {
    for (const id of ids) {
      const q = queues.get(id)!
      const s = process.hrtime.bigint()
      const reqs = p.nextRequests(id, batch - q.length)
      pickNs += process.hrtime.bigint() - s
      requests += reqs.length
      q.push(...reqs)
    }
    for (const id of ids) {
      const q = queues.get(id)!
      // each peer answers half its pipeline per round
      const n = Math.ceil(q.length / 2)
      for (const r of q.splice(0, n)) {
        const res = p.blockReceived(id, r.piece, r.begin, r.length)
        for (const c of res.cancels) {
          const cq = queues.get(c.peer)!
          const k = cq.findIndex((x) => x.piece === c.piece && x.begin === c.begin)
          if (k >= 0) cq.splice(k, 1)
        }
        if (res.kind === "piece-complete") p.pieceVerified(r.piece)
      }
    }
  }
  if (label === "") return
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  const blocks = Math.ceil((pieces * pieceLength) / Picker.BLOCK)
  console.log(
    `${label}: ${blocks} blocks, ${requests} requests in ${secs.toFixed(2)} s → ` +
      `${Math.round(requests / secs).toLocaleString("en")} requested+received blocks/s end to end; ` +
      `nextRequests alone ${Math.round(requests / (Number(pickNs) / 1e9)).toLocaleString("en")} requests/s`
  )
}

// warm the JIT up first
for (let k = 0; k < 3; k++) run("", 2048, 1 << 18, 50, 64, 0.5)
run("1024 pieces × 1 MiB, 50 peers (half seeds)", 1024, 1 << 20, 50, 64, 0.5)
run("100k pieces × 256 KiB, 50 peers (half seeds)", 100_000, 256 << 10, 50, 64, 0.5)
run("100k pieces × 256 KiB, 50 peers (no seeds, 50 % each)", 100_000, 256 << 10, 50, 64, 0)
run("20k pieces × 16 KiB, 50 peers (no seeds, 50 % each)", 20_000, 16 << 10, 50, 64, 0)
run("100k pieces × 256 KiB, 50 peers (no seeds, 5 % each)", 100_000, 256 << 10, 50, 64, 0, 0.05)
