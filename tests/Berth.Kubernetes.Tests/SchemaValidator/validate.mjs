// Validates every object in the YAML files under the given folders against the schemas that
// kubernetes-models publishes (Kubernetes OpenAPI, Istio CRDs). Prints one line per problem and a
// closing count; exits 1 when any object is invalid or of an unknown kind.
import { readdirSync, readFileSync, statSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { parseAllDocuments } from "yaml";

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
    }
  }
}
console.log(`validated ${objects} objects, ${problems} problems`);
process.exit(problems > 0 ? 1 : 0);
