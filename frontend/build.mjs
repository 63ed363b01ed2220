// Builds the console islands into core/static/ulak/console/ (committed; CI rebuilds and compares
// byte for byte). Deterministic: no sourcemaps, no timestamps, no absolute paths in the output.
// That folder holds build output only: files there that the build does not produce are removed.
import { build } from "esbuild";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(here, "../core/static/ulak/console");

// One entry per island: output name -> source. Later islands (React) are added here.
const entries = [
  { name: "charts", source: "src/charts.js" },
  { name: "progress", source: "src/progress.js" },
  { name: "segment-builder", source: "src/segment-builder/index.jsx" },
  { name: "message-editor", source: "src/message-editor/index.js" },
  { name: "journey-canvas", source: "src/journey-canvas/index.jsx" },
  { name: "journey-path", source: "src/journey-canvas/path.jsx" },
];

const result = await build({
  absWorkingDir: here,
  entryPoints: Object.fromEntries(entries.map((e) => [e.name, e.source])),
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  platform: "browser",
  target: "es2020",
  sourcemap: false,
  legalComments: "eof",
  charset: "ascii",
  define: { "process.env.NODE_ENV": '"production"' },
  write: false,
  logLevel: "warning",
});

await mkdir(outdir, { recursive: true });
const produced = new Set(result.outputFiles.map((f) => path.basename(f.path)));
for (const name of await readdir(outdir)) {
  if (!produced.has(name)) await rm(path.join(outdir, name), { recursive: true });
}
for (const file of result.outputFiles) {
  await writeFile(file.path, file.contents);
  console.log(`${path.relative(path.resolve(here, ".."), file.path)}  ${file.contents.length} bytes`);
}
