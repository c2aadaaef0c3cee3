/**
 * Light and dark: by default the system's (`prefers-color-scheme`, CSS only); the toggle cycles system → dark →
 * light, kept in localStorage and set as `<html data-theme>`, which the style sheet lets win over the system's.
 */
export type Choice = "system" | "dark" | "light"

const KEY = "effect-torrent.theme"
const next: Record<Choice, Choice> = { system: "dark", dark: "light", light: "system" }

const stored = (): Choice => {
  try {
    const v = localStorage.getItem(KEY)
    return v === "dark" || v === "light" ? v : "system"
  } catch {
    return "system"
  }
}

export const make = (button: HTMLButtonElement, onChange: () => void) => {
  let choice = stored()
  const apply = () => {
    if (choice === "system") delete document.documentElement.dataset["theme"]
    else document.documentElement.dataset["theme"] = choice
    button.textContent = choice === "system" ? "Theme: auto" : choice === "dark" ? "Theme: dark" : "Theme: light"
    button.title = `Theme: ${choice === "system" ? "follows the system" : choice} (t)`
    onChange()
  }
  const cycle = () => {
    choice = next[choice]
    try {
      if (choice === "system") localStorage.removeItem(KEY)
      else localStorage.setItem(KEY, choice)
    } catch {
      // private mode: the choice lasts as long as the page
    }
    apply()
  }
  button.addEventListener("click", cycle)
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", onChange)
  apply()
  return { cycle }
}
