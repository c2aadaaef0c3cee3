export interface WebUiBuild {
  readonly outdir: string
  readonly js: string
  readonly css: string
  readonly sizes: Readonly<Record<string, { readonly bytes: number; readonly gzip: number }>>
}
export declare const buildWebUi: (options: { readonly outdir: string }) => Promise<WebUiBuild>
