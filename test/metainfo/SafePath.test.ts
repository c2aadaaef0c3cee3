import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as NodePath from "node:path"
import * as SafePath from "../../src/metainfo/SafePath.ts"

const enc = (s: string) => new TextEncoder().encode(s)
const san = (s: string | Uint8Array) => SafePath.sanitizeComponent(typeof s === "string" ? enc(s) : s)

describe("sanitizeComponent (libtorrent-compatible)", () => {
  it("drops '.', '..' and components that vanish", () => {
    expect(san(".")).toBeUndefined()
    expect(san("..")).toBeUndefined()
    expect(san("/")).toBeUndefined()
    expect(san("\\/")).toBeUndefined()
    expect(san("\0\0")).toBeUndefined()
    expect(san("/..")).toBeUndefined()
  })
  it("keeps '...', replaces an empty component with '_'", () => {
    expect(san("...")).toBe("...")
    expect(san("")).toBe("_")
  })
  it("removes separators, NUL and bidi overrides inside a component", () => {
    expect(san("temp/../../abc")).toBe("temp....abc")
    expect(san("a\\b")).toBe("ab")
    expect(san("a\0b")).toBe("ab")
    expect(san("evil\u202Etxt.exe")).toBe("eviltxt.exe")
  })
  it("replaces control characters and invalid UTF-8 with '_'", () => {
    expect(san("a\x01b")).toBe("a_b")
    expect(san(Uint8Array.of(0x61, 0xff, 0x62))).toBe("a_b")
    expect(san(Uint8Array.of(0xe6, 0x6f, 0x6f))).toBe("_") // a 3-byte lead swallows its two bad followers
    expect(san(Uint8Array.of(0xed, 0xa0, 0x80))).toBe("_") // an encoded surrogate
    expect(san("日本語")).toBe("日本語")
  })
  it("truncates long components, keeping a short extension", () => {
    const long = "a".repeat(300) + ".txt"
    const s = san(long)!
    expect(s.endsWith(".txt")).toBe(true)
    expect(enc(s).length).toBeLessThanOrEqual(255)
    expect(enc(san("b".repeat(1000))!).length).toBe(240)
    expect(enc(san(new Uint8Array(5000).fill(0xff))!).length).toBeLessThanOrEqual(255)
  })
  it.prop("always yields a plain, bounded name or nothing", [FastCheck.uint8Array({ maxLength: 600 })], ([bytes]) => {
    const s = SafePath.sanitizeComponent(bytes)
    if (s === undefined) return
    expect(SafePath.unsafeComponentReason(s, "posix")).toBeUndefined()
    expect(enc(s).length).toBeLessThanOrEqual(255)
  })
})

describe("lossyUtf8", () => {
  it("keeps valid text and replaces invalid sequences with '_'", () => {
    expect(SafePath.lossyUtf8(enc("héllo"))).toBe("héllo")
    expect(SafePath.lossyUtf8(Uint8Array.of(0x6c, 0x69, 0x7f, 0xff, 0xc6))).toBe("li\x7f__")
  })
})

describe("resolveInside", () => {
  it("joins plain components under the output directory", () => {
    expect(SafePath.resolveInside("/out", ["t", "a.txt"], "posix")).toEqual(Either.right("/out/t/a.txt"))
  })
  it("rejects anything that is not a plain name", () => {
    for (const bad of [[], [""], ["."], [".."], ["a", ".."], ["/etc"], ["a/b"], ["a\0b"], ["a\nb"]]) {
      const r = SafePath.resolveInside("/out", bad, "posix")
      expect(Either.isLeft(r), JSON.stringify(bad)).toBe(true)
      if (Either.isLeft(r)) expect(r.left.reason).toBe("unsafe-path")
    }
  })
  it("rejects Windows-only hazards on win32 (drive letters, reserved names, backslashes)", () => {
    for (const bad of [["C:"], ["C:evil"], ["a\\b"], ["CON"], ["nul.txt"], ["trailing."]]) {
      expect(Either.isLeft(SafePath.resolveInside("C:\\out", bad, "win32")), JSON.stringify(bad)).toBe(true)
    }
    expect(SafePath.resolveInside("C:\\out", ["t", "a.txt"], "win32")).toEqual(Either.right("C:\\out\\t\\a.txt"))
  })

  const component = FastCheck.oneof(
    FastCheck.constantFrom(".", "..", "", "/", "\\", "C:", "c:\\", "\0", "a/../..", "..\\..", "/etc/passwd", "CON"),
    FastCheck.string({ maxLength: 12 }),
    FastCheck.string({ unit: FastCheck.constantFrom(".", "/", "\\", ":", "a", "\0"), maxLength: 8 })
  )
  for (const platform of ["posix", "win32"] as const) {
    it.prop(
      `never escapes the output directory (${platform})`,
      [FastCheck.array(component, { maxLength: 8 })],
      ([components]) => {
        const p = platform === "win32" ? NodePath.win32 : NodePath.posix
        const root = platform === "win32" ? "C:\\data\\out" : "/data/out"
        const r = SafePath.resolveInside(root, components, platform)
        if (Either.isRight(r)) {
          const rel = p.relative(root, r.right)
          expect(rel.length).toBeGreaterThan(0)
          expect(rel.split(p.sep)).not.toContain("..")
          expect(p.isAbsolute(rel)).toBe(false)
          expect(r.right.startsWith(root + p.sep)).toBe(true)
        }
      }
    )
  }
  it.prop(
    "sanitized components are always accepted (posix)",
    [FastCheck.array(FastCheck.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 6 })],
    ([raw]) => {
      const parts = raw.map(SafePath.sanitizeComponent).filter((s): s is string => s !== undefined)
      if (parts.length === 0) return
      expect(Either.isRight(SafePath.resolveInside("/out", parts, "posix"))).toBe(true)
    }
  )
})
