// Sums a `perf report --sort sym --no-children -g none --stdio` listing into categories (parse, compile, GC, ...).
// Usage: perf report -i perf.data --sort sym --stdio --no-children -g none | node scratchpad/perf-categories.mjs [cpuSeconds]
import { readFileSync } from "node:fs"
const total = Number(process.argv[2] ?? 0)
const cats = [
  ["sha1", /sha1_block/],
  ["kernel", /\[k\]/],
  ["compile (TurboFan)", /compiler::|Turbofan|turboshaft|OptimizedCompilationJob|PipelineImpl|InstructionSelector|RegisterAllocat|LiveRange|MoveOptimizer|JumpThreading|CodeGenerator|Assembler::|Maglev|maglev/],
  ["parse/bytecode", /Scanner|Parser|Preparse|PreParse|AstValueFactory|CalculateLineEnds|ExpressionScope|BytecodeGenerator|interpreter::|AstNode|DeclarationScope|Scope::|FuncNameInferrer|Zone::|ScanIdentifier|Utf16CharacterStream|AstRaw|SharedFunctionInfo::|Compiler::Compile|BytecodeArrayBuilder|ConstantArrayBuilder/],
  ["GC", /Scavenge|Marking|Mark|Sweeper|Heap::|Evacuat|GCTracer|Remembered|SlotSet|Worklist|PagedSpace|NewSpace|MemoryAllocator|Compactor/],
  ["JIT code (JS:)", /JS:|\[JIT\]/],
  ["baseline/interp builtins", /Builtins_(Baseline|Interpreter|Ignition)|BytecodeHandler|Builtins_.*Handler/],
  ["IC builtins", /Builtins_.*IC/],
  ["other builtins", /Builtins_/],
  ["libc malloc/memmove", /malloc|_int_free|memmove|memcpy|memset|free|pthread/],
  ["other", /./],
]
const sums = new Map(cats.map(([n]) => [n, 0]))
for (const line of readFileSync(0, "utf8").split("\n")) {
  const m = /^\s+([\d.]+)%\s+(.*)$/.exec(line)
  if (!m) continue
  const pct = Number(m[1]), sym = m[2]
  for (const [n, re] of cats) if (re.test(sym)) { sums.set(n, sums.get(n) + pct); break }
}
for (const [n, v] of sums) console.log(`${n.padEnd(26)} ${v.toFixed(1).padStart(5)} %${total ? `  ${(v * total / 100).toFixed(2)} s` : ""}`)
