// A/B of two builds of bench/perblock.ts in one process: their runs alternate (ABBA...), and each pair's ratio of
// ns per block in the fastest tenth of rounds (AB_METRIC=cpu: whole-run CPU) is reported. On a loaded machine this
// was the only comparison that held still (docs/PERFORMANCE.md, "Issue 16"). Each build is the bench bundled over
// one commit's src/, e.g. for the working tree:
//   npx esbuild bench/perblock.ts --bundle --platform=node --format=esm --target=node20 --keep-names \
//     --outfile=/tmp/b.mjs --banner:js='import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);'
// Run: node scratchpad/perblock-ab.mjs PAIRS /tmp/a.mjs /tmp/b.mjs [bench options]
const [n, a, b] = process.argv.slice(2, 5)
process.argv.splice(2, 3)
const A = await import(a)
const B = await import(b)
const med = (xs) => {
  const s = [...xs].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const per = (r) => (process.env.AB_METRIC === "cpu" ? r.cpuNs / r.blocks : A.quantile(r.rounds, 0.1))
await A.runOnce()
await B.runOnce()
await A.runOnce()
await B.runOnce() // warm-up
const ra = []
const rb = []
const ratio = []
for (let i = 0; i < Number(n); i++) {
  let x
  let y
  if (i % 2 === 0) {
    x = per(await A.runOnce())
    y = per(await B.runOnce())
  } else {
    y = per(await B.runOnce())
    x = per(await A.runOnce())
  }
  ra.push(x)
  rb.push(y)
  ratio.push(y / x)
}
const f = (xs) => xs.map((x) => x.toFixed(0)).join(" ")
console.log(`A ${a}: median ${med(ra).toFixed(0)} min ${Math.min(...ra).toFixed(0)} ns/block [${f(ra)}]`)
console.log(`B ${b}: median ${med(rb).toFixed(0)} min ${Math.min(...rb).toFixed(0)} ns/block [${f(rb)}]`)
console.log(`B/A paired: median ${med(ratio).toFixed(3)} [${ratio.map((x) => x.toFixed(2)).join(" ")}]`)
