// Validates every object in the YAML files under the given folders against the schemas that
// kubernetes-models publishes (Kubernetes OpenAPI, Istio CRDs): types, enums, required fields, formats.
// Those schemas allow unknown fields, so Kubernetes objects are also walked against the field lists of the
// official JavaScript client's OpenAPI-generated models (@kubernetes/client-node), and Istio objects against the
// field trees of @kubernetes-models/istio's type declarations (istio-fields.mjs): a misspelled or invented field fails. Prints one line per problem and a closing count; exits 1 on any problem.
import { readdirSync, readFileSync, statSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { parseAllDocuments } from "yaml";
// The models only: the package's root also loads an HTTP stack that this node need not support.
import * as openapi from "@kubernetes/client-node/dist/gen/models/all.js";
import { istioFieldTree, unknownIstioFields } from "./istio-fields.mjs";

const istioTrees = new Map();

const leafTypes = new Set(["string", "number", "boolean", "Date", "any", "object", "IntOrString", "RawExtension"]);

function unknownFields(value, type, path, out) {
  if (value === null || value === undefined || leafTypes.has(type)) return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, m[1], `${path}[${i}]`, out));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    for (const [k, v] of Object.entries(value)) unknownFields(v, m[1], `${path}.${k}`, out);
    return;
  }
  const model = openapi[type];
  if (typeof model?.getAttributeTypeMap !== "function" || typeof value !== "object") return;
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) out.push(`${path}.${k}: unknown field (${type} has no '${k}')`);
    else unknownFields(v, fields.get(k), `${path}.${k}`, out);
  }
}

// apps/v1 Deployment → V1Deployment; autoscaling/v2 HorizontalPodAutoscaler → V2HorizontalPodAutoscaler.
function openapiType(apiVersion, kind) {
  const version = apiVersion.split("/").pop();
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

const roots = process.argv.slice(2);
if (roots.length === 0) {
  console.error("usage: node validate.mjs DIR...");
  process.exit(2);
}

function* yamlFiles(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* yamlFiles(path);
    else if (name.endsWith(".yaml") || name.endsWith(".yml")) yield path;
  }
}

function modulePath(apiVersion, kind) {
  if (apiVersion.startsWith("networking.istio.io/")) {
    return `@kubernetes-models/istio/${apiVersion}/${kind}`;
  }
  return `kubernetes-models/${apiVersion}/${kind}`;
}

let objects = 0;
let problems = 0;
for (const root of roots) {
  for (const file of yamlFiles(root)) {
    const docs = parseAllDocuments(readFileSync(file, "utf8"));
    for (const doc of docs) {
      if (doc.errors.length > 0) {
        problems++;
        console.log(`${file}: not valid YAML: ${doc.errors[0].message}`);
        continue;
      }
      const data = doc.toJS();
      if (data === null || data === undefined) continue;
      if (data.kind === "Kustomization") {
        for (const resource of data.resources ?? []) {
          if (!existsSync(join(dirname(file), resource))) {
            problems++;
            console.log(`${file}: lists ${resource}, which does not exist`);
          }
        }
        continue;
      }
      objects++;
      const where = `${file}: ${data.kind}/${data.metadata?.name}`;
      let Model;
      try {
        const mod = await import(modulePath(data.apiVersion, data.kind));
        Model = mod[data.kind];
      } catch {
        Model = undefined;
      }
      if (!Model) {
        problems++;
        console.log(`${where}: no schema for apiVersion ${data.apiVersion} kind ${data.kind}`);
        continue;
      }
      try {
        new Model(data).validate();
      } catch (e) {
        problems++;
        console.log(`${where}: ${e.message}`);
      }
      if (data.apiVersion.startsWith("networking.istio.io/")) {
        const key = `${data.apiVersion}/${data.kind}`;
        if (!istioTrees.has(key)) istioTrees.set(key, istioFieldTree(data.apiVersion, data.kind));
        const unknown = [];
        unknownIstioFields({ ...data, metadata: undefined }, istioTrees.get(key), "data", unknown);
        for (const u of unknown) {
          problems++;
          console.log(`${where}: ${u}`);
        }
      } else {
        const type = openapiType(data.apiVersion, data.kind);
        if (!openapi[type]) {
          problems++;
          console.log(`${where}: no field list for ${type}`);
          continue;
        }
        const unknown = [];
        unknownFields(data, type, "data", unknown);
        for (const u of unknown) {
          problems++;
          console.log(`${where}: ${u}`);
        }
      }
    }
  }
}
console.log(`validated ${objects} objects, ${problems} problems`);
process.exit(problems > 0 ? 1 : 0);
