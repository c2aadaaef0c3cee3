/** The few DOM helpers the views share: an element by id (present, or the page is broken), and `h` to build. */

export const byId = <E extends HTMLElement>(id: string): E => {
  const e = document.getElementById(id)
  if (e === null) throw new Error(`the page has no #${id}`)
  return e as E
}

type Props = Readonly<Record<string, string | number | boolean | undefined>>

/** An element with attributes (`class`, `data-*`, …; false/undefined left out) and children (text or nodes). */
export const h = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: ReadonlyArray<Node | string>
): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue
    e.setAttribute(k, v === true ? "" : String(v))
  }
  e.append(...children)
  return e
}

/** Sets a text only when it differs (no layout work for the many values that did not move). */
export const text = (e: Element, value: string): void => {
  if (e.textContent !== value) e.textContent = value
}

/** Device pixels for a canvas drawn at its CSS size (sharp on phones). */
export const fitCanvas = (canvas: HTMLCanvasElement): CanvasRenderingContext2D | null => {
  const ratio = window.devicePixelRatio || 1
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio))
  const hgt = Math.max(1, Math.round(canvas.clientHeight * ratio))
  if (canvas.width !== w || canvas.height !== hgt) {
    canvas.width = w
    canvas.height = hgt
  }
  return canvas.getContext("2d")
}

/** A CSS custom property of the page (theme colours for canvases). */
export const cssVar = (name: string): string => getComputedStyle(document.documentElement).getPropertyValue(name).trim()
