// Renders chat templates with @huggingface/jinja (the reference for model/jinja's conformance
// test). Usage: node jinja_render.mjs <requests.json>
//   requests.json: [{"template": "<jinja source>", "context": {...}}, ...]
// Prints a JSON array with, for each request, {"ok": true, "output": "..."} or
// {"ok": false, "error": "..."} (a parse error, raise_exception or any other runtime error).
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const requests = JSON.parse(readFileSync(process.argv[2], "utf8"));
const parsed = new Map();
const results = requests.map(({ template, context }) => {
	try {
		let compiled = parsed.get(template);
		if (compiled === undefined) {
			compiled = new Template(template);
			parsed.set(template, compiled);
		}
		return { ok: true, output: compiled.render(context) };
	} catch (err) {
		return { ok: false, error: String(err && err.message ? err.message : err) };
	}
});
process.stdout.write(JSON.stringify(results));
