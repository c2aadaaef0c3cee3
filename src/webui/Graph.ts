/**
 * The speed graph in the header: the total download and upload rates sampled once a second (from what the event
 * stream last said per torrent: no request), the last five minutes drawn as two lines on a canvas.
 */
import { cssVar, fitCanvas } from "./Dom.ts"

const SAMPLES = 300

export const make = (canvas: HTMLCanvasElement) => {
  const down: Array<number> = []
  const up: Array<number> = []

  const draw = () => {
    const ctx = fitCanvas(canvas)
    if (ctx === null) return
    const w = canvas.width
    const hgt = canvas.height
    ctx.clearRect(0, 0, w, hgt)
    const peak = Math.max(1, ...down, ...up)
    canvas.dataset["samples"] = String(down.length)
    canvas.dataset["peak"] = String(Math.max(0, ...down, ...up))
    const line = (values: ReadonlyArray<number>, colour: string) => {
      if (values.length < 2) return
      ctx.strokeStyle = colour
      ctx.lineWidth = Math.max(1, window.devicePixelRatio || 1)
      ctx.beginPath()
      values.forEach((v, i) => {
        const x = w - (values.length - 1 - i) * (w / (SAMPLES - 1))
        const y = hgt - 1 - (v / peak) * (hgt - 2)
        if (i === 0) ctx.moveTo(x, y)
        else ctx.lineTo(x, y)
      })
      ctx.stroke()
    }
    line(up, cssVar("--up"))
    line(down, cssVar("--accent"))
  }

  const sample = (rates: { readonly down: number; readonly up: number }) => {
    down.push(rates.down)
    up.push(rates.up)
    if (down.length > SAMPLES) down.shift()
    if (up.length > SAMPLES) up.shift()
    draw()
  }

  return { sample, draw }
}
