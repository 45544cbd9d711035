// Renders a Helm chart's templates with its values.yaml (deep-merged with an optional JSON file of overrides, as `helm -f`) through
// Go's own text/template (compiled to WebAssembly: @evertdespiegeleer/go-template), since helm itself cannot be installed here.
// Prints {"<template file>": "<rendered text>", ...} as JSON. Usage: node render-chart.mjs CHART_DIR [OVERRIDES.json]
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { parse as render } from "@evertdespiegeleer/go-template";

const [chartDir, overridesPath] = process.argv.slice(2);
const chart = parseYaml(readFileSync(join(chartDir, "Chart.yaml"), "utf8"));
let values = parseYaml(readFileSync(join(chartDir, "values.yaml"), "utf8")) ?? {};

function merge(base, over) {
  if (over === null || typeof over !== "object" || Array.isArray(over)) return over;
  const out = { ...(base ?? {}) };
  for (const [k, v] of Object.entries(over)) out[k] = merge(out[k], v);
  return out;
}

if (overridesPath) values = merge(values, JSON.parse(readFileSync(overridesPath, "utf8")));
const context = {
  Values: values,
  Release: { Name: chart.name, Namespace: "default", Service: "Helm" },
  Chart: { Name: chart.name, Version: chart.version },
};
const out = {};
for (const file of readdirSync(join(chartDir, "templates")).filter((f) => f.endsWith(".yaml")).sort()) {
  out[file] = await render(readFileSync(join(chartDir, "templates", file), "utf8"), context);
}
process.stdout.write(JSON.stringify(out));
