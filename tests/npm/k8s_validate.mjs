// Validates Kubernetes manifests against the API schemas of the npm package kubernetes-models.
//
//   node tests/npm/k8s_validate.mjs [--allow-kind GROUP/VERSION/KIND ...] FILE.yaml ...
//
// Every document of every (multi-document) YAML file must be an object whose apiVersion and kind
// kubernetes-models knows, and must pass its JSON-schema validation (types, required fields,
// enums, unknown fields). Kinds the package has no schema for (custom resources) fail, unless
// named with --allow-kind (then only apiVersion, kind and metadata.name are checked).
// Prints one line per object; exits 1 on any failure, 2 on bad usage.
import fs from 'node:fs';
import yaml from 'js-yaml';

const args = process.argv.slice(2);
const allowed = new Set();
const files = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--allow-kind') {
    allowed.add(args[++i]);
  } else {
    files.push(args[i]);
  }
}
if (files.length === 0) {
  console.error('usage: k8s_validate.mjs [--allow-kind GROUP/VERSION/KIND ...] FILE.yaml ...');
  process.exit(2);
}

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const path = `kubernetes-models/${group ? `${group}/` : ''}${version}/${kind}`;
  try {
    const mod = await import(path);
    return mod[kind] ?? mod.default;
  } catch {
    return null;
  }
}

let failures = 0;
let valid = 0;
for (const file of files) {
  let docs;
  try {
    docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((d) => d !== null);
  } catch (e) {
    console.log(`FAIL ${file}: not YAML: ${e.message}`);
    ++failures;
    continue;
  }
  for (const doc of docs) {
    const what = `${file}: ${doc?.kind ?? '?'}/${doc?.metadata?.name ?? '?'}`;
    if (typeof doc !== 'object' || !doc.apiVersion || !doc.kind || !doc.metadata?.name) {
      console.log(`FAIL ${what}: needs apiVersion, kind and metadata.name`);
      ++failures;
      continue;
    }
    const Model = await modelFor(doc.apiVersion, doc.kind);
    if (Model === null) {
      if (allowed.has(`${doc.apiVersion}/${doc.kind}`)) {
        console.log(`ok   ${what} (custom resource: no schema, allowed)`);
        ++valid;
      } else {
        console.log(`FAIL ${what}: no schema for ${doc.apiVersion} ${doc.kind}`);
        ++failures;
      }
      continue;
    }
    try {
      new Model(doc).validate();
      console.log(`ok   ${what}`);
      ++valid;
    } catch (e) {
      const details = (e.errors ?? []).map((x) => `${x.instancePath} ${x.message}`).join('; ');
      console.log(`FAIL ${what}: ${e.message}${details ? `: ${details}` : ''}`);
      ++failures;
    }
  }
}
console.log(`${valid} valid, ${failures} invalid`);
process.exit(failures === 0 && valid > 0 ? 0 : 1);
