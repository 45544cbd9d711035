// Field trees of Istio kinds, read from the TypeScript declarations that @kubernetes-models/istio generates from
// Istio's CRD schemas: { fields: Map<name, node>, hasMap, map: node } for objects (hasMap: a string-keyed index
// signature, whose values are map), { array: node } for arrays, or null for a leaf. Used to reject unknown fields, which the JSON-schema validators allow.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The package's exports do not list its .d.ts files, so they are read from node_modules beside this script.
const packageDir = join(dirname(fileURLToPath(import.meta.url)), "node_modules", "@kubernetes-models", "istio");

export function istioFieldTree(apiVersion, kind) {
  const file = join(packageDir, apiVersion, `${kind}.d.ts`);
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const start = text.indexOf(`export interface I${kind} {`);
  if (start < 0) return null;
  const parser = new Parser(text, text.indexOf("{", start));
  return parser.object();
}

class Parser {
  constructor(text, pos) {
    this.t = text;
    this.i = pos;
  }
  ws() {
    while (this.i < this.t.length && /\s/.test(this.t[this.i])) this.i++;
  }
  eat(s) {
    this.ws();
    if (!this.t.startsWith(s, this.i)) throw new Error(`expected ${s} at ${this.i}: ${this.t.slice(this.i, this.i + 40)}`);
    this.i += s.length;
  }
  peek(s) {
    this.ws();
    return this.t.startsWith(s, this.i);
  }
  // { "a"?: T; [key: string]: U; }
  object() {
    this.eat("{");
    const fields = new Map();
    let hasMap = false;
    let map = null;
    while (!this.peek("}")) {
      if (this.peek("[")) {
        this.eat("[");
        while (this.t[this.i] !== "]") this.i++;
        this.eat("]");
        this.eat(":");
        hasMap = true;
        map = this.type();
      } else {
        this.eat('"');
        const end = this.t.indexOf('"', this.i);
        const name = this.t.slice(this.i, end);
        this.i = end + 1;
        if (this.peek("?")) this.eat("?");
        this.eat(":");
        fields.set(name, this.type());
      }
      this.ws();
      if (this.t[this.i] === ";" || this.t[this.i] === ",") this.i++;
    }
    this.eat("}");
    return { fields, hasMap, map };
  }
  type() {
    this.ws();
    if (this.peek("{")) {
      const obj = this.object();
      // "{ all fields } & (oneOf constraints)": the first object already lists every field.
      if (this.peek("&")) {
        this.i++;
        this.skip();
      }
      return obj;
    }
    if (this.peek("Array<")) {
      this.eat("Array<");
      const item = this.type();
      this.eat(">");
      return { array: item };
    }
    // A leaf (string, number, boolean, a union of literals, ...).
    this.skip();
    return null;
  }
  // Skips to the end of the current type.
  skip() {
    let depth = 0;
    let quote = null;
    for (; this.i < this.t.length; this.i++) {
      const c = this.t[this.i];
      if (quote) {
        if (c === quote) quote = null;
        continue;
      }
      if (c === '"' || c === "'") quote = c;
      else if (c === "(" || c === "<" || c === "{") depth++;
      else if ((c === ")" || c === ">" || c === "}") && depth > 0) depth--;
      else if (depth === 0 && (c === ";" || c === ">" || c === "}" || c === ",")) break;
    }
  }
}

export function unknownIstioFields(value, node, path, out) {
  if (node === null || value === null || typeof value !== "object") return;
  if (node.array !== undefined) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownIstioFields(v, node.array, `${path}[${i}]`, out));
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (node.fields.has(k)) unknownIstioFields(v, node.fields.get(k), `${path}.${k}`, out);
    else if (node.hasMap) unknownIstioFields(v, node.map, `${path}.${k}`, out);
    else out.push(`${path}.${k}: unknown field`);
  }
}
