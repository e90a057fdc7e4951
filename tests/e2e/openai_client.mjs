// Drives a running `moe up` with the official `openai` npm client (tests/npm, openai@6).
// Environment: MOE_BASE_URL (http://127.0.0.1:PORT/v1), MOE_MODEL (the served model id),
// MOE_GOLDEN (expected-f32.json), OPENAI_MODULE (path of openai's index.mjs).
// Prints one line per check ("ok <name>") and "ALL OK" at the end;
// exits 1 at the first failed check.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const { default: OpenAI, BadRequestError, NotFoundError } =
    await import(pathToFileURL(process.env.OPENAI_MODULE).href);
const golden = JSON.parse(readFileSync(process.env.MOE_GOLDEN, 'utf8'));
const model = process.env.MOE_MODEL;
const client = new OpenAI({ baseURL: process.env.MOE_BASE_URL, apiKey: 'unused', maxRetries: 0,
                            timeout: 60000 });

function check(cond, what) {
  if (!cond) {
    console.log(`FAIL ${what}`);
    process.exit(1);
  }
}
function eq(a, b, what) {
  check(JSON.stringify(a) === JSON.stringify(b),
        `${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
}
const ok = (name) => console.log(`ok ${name}`);
const c0 = golden.cases[0];
const nGen = golden.n_gen;

// models.list
const models = await client.models.list();
eq(models.data.map((m) => m.id), [model], 'models.list');
ok('models.list');

// Greedy completions equal the golden completion text, for every case.
for (const c of golden.cases) {
  const r = await client.completions.create({ model, prompt: c.prompt, max_tokens: nGen,
                                              temperature: 0 });
  eq(r.object, 'text_completion', 'completion object');
  eq(r.choices[0].text, c.completion_text, `greedy text of ${JSON.stringify(c.prompt)}`);
  eq(r.choices[0].finish_reason, c.stop_type === 'eos' ? 'stop' : 'length', 'finish_reason');
  eq(r.usage.prompt_tokens, c.prompt_ids.length, 'usage.prompt_tokens');
  eq(r.usage.completion_tokens, c.completion_ids.length, 'usage.completion_tokens');
}
ok('completions greedy == golden');

// Echo logprobs of prompt_ids + completion_ids match the golden log-probabilities (1e-4).
for (const c of golden.cases) {
  const ids = c.prompt_ids.concat(c.completion_ids);
  const r = await client.completions.create({ model, prompt: ids, echo: true, logprobs: 5,
                                              max_tokens: 0, temperature: 0 });
  const lp = r.choices[0].logprobs;
  eq(lp.token_logprobs.length, ids.length, 'echo logprobs length');
  eq(lp.token_logprobs[0], null, 'first echoed logprob');
  c.steps.forEach((s, k) => {
    const got = lp.token_logprobs[c.prompt_ids.length + k];
    check(Math.abs(got - s.logprob) <= 1e-4, `step ${k}: logprob ${got} vs golden ${s.logprob}`);
    const values = Object.values(lp.top_logprobs[c.prompt_ids.length + k]);
    if (values.length === 5) {
      for (const t of s.top5) {
        check(values.some((v) => Math.abs(v - t.logprob) <= 1e-4),
              `step ${k}: golden top-5 logprob ${t.logprob} missing`);
      }
    }
  });
}
ok('echo logprobs == golden');

// Streamed completion: the same text, the finish reason in the last chunk, usage at the end.
{
  const stream = await client.completions.create({
    model, prompt: c0.prompt, max_tokens: nGen, temperature: 0, stream: true,
    stream_options: { include_usage: true } });
  let text = '';
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const usage = chunks.pop();
  eq(usage.choices, [], 'usage chunk choices');
  eq(usage.usage.completion_tokens, nGen, 'streamed usage');
  chunks.forEach((ch, i) => {
    text += ch.choices[0].text;
    eq(ch.choices[0].finish_reason !== null, i === chunks.length - 1, `finish_reason of chunk ${i}`);
  });
  eq(text, c0.completion_text, 'streamed text');
  check(chunks.length > 1, 'more than one chunk');
}
ok('completions stream + include_usage');

// n = 2 with a seed: two choices in index order; the same seed reproduces them.
{
  const req = { model, prompt: c0.prompt, max_tokens: 10, temperature: 1.0, n: 2, seed: 7 };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  eq(a.choices.map((c) => c.index), [0, 1], 'n=2 indices');
  eq(a.choices.map((c) => c.text), b.choices.map((c) => c.text), 'seed reproducibility');
  eq(a.usage.completion_tokens, 20, 'n=2 usage');
  const other = await client.completions.create({ ...req, seed: 8 });
  check(JSON.stringify(other.choices.map((c) => c.text)) !==
        JSON.stringify(a.choices.map((c) => c.text)), 'another seed gives other text');
}
ok('n=2 + seed');

// Stop strings: the text ends before the stop string; finish_reason stop.
{
  const full = c0.completion_text;
  const stop = full.substring(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
  const want = full.substring(0, full.indexOf(stop));
  const r = await client.completions.create({ model, prompt: c0.prompt, max_tokens: nGen,
                                              temperature: 0, stop: ['zzzz', stop] });
  eq(r.choices[0].text, want, 'stop text');
  eq(r.choices[0].finish_reason, 'stop', 'stop finish_reason');
  const s = await client.completions.create({ model, prompt: c0.prompt, max_tokens: nGen,
                                              temperature: 0, stop, stream: true });
  let text = '';
  let finish = null;
  for await (const ch of s) {
    text += ch.choices[0].text;
    if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
  }
  eq(text, want, 'streamed stop text');
  eq(finish, 'stop', 'streamed stop finish');
}
ok('stop strings');

// Completion logprobs (not echoed): one entry per generated token, equal to the golden steps.
{
  const r = await client.completions.create({ model, prompt: c0.prompt_ids, max_tokens: 5,
                                              temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  eq(lp.tokens.length, 5, 'logprobs tokens');
  lp.token_logprobs.forEach((v, k) => check(Math.abs(v - c0.steps[k].logprob) <= 1e-4,
                                            `generated logprob ${k}`));
}
ok('completions logprobs');

// Chat completions, plain and streamed.
{
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }];
  const r = await client.chat.completions.create({ model, messages, max_completion_tokens: 8,
                                                   temperature: 0, logprobs: true,
                                                   top_logprobs: 3 });
  eq(r.object, 'chat.completion', 'chat object');
  eq(r.choices[0].message.role, 'assistant', 'chat role');
  eq(r.choices[0].logprobs.content.length, 8, 'chat logprobs entries');
  eq(r.choices[0].logprobs.content[0].top_logprobs.length, 3, 'chat top_logprobs');
  const s = await client.chat.completions.create({ model, messages, max_completion_tokens: 8,
                                                   temperature: 0, stream: true,
                                                   stream_options: { include_usage: true } });
  const chunks = [];
  for await (const ch of s) chunks.push(ch);
  eq(chunks[0].choices[0].delta.role, 'assistant', 'first chunk has the role');
  const usage = chunks.pop();
  eq(usage.choices, [], 'chat usage chunk');
  eq(usage.usage.completion_tokens, 8, 'chat streamed usage');
  let text = '';
  for (const ch of chunks) text += ch.choices[0].delta.content ?? '';
  eq(text, r.choices[0].message.content, 'chat streamed text == plain text');
  eq(chunks[chunks.length - 1].choices[0].finish_reason, 'length', 'chat finish in last chunk');
  const n2 = await client.chat.completions.create({ model, messages, max_completion_tokens: 4,
                                                    n: 2, seed: 3, temperature: 1 });
  eq(n2.choices.map((c) => c.index), [0, 1], 'chat n=2');
}
ok('chat completions');

// Invalid requests raise the right error classes.
try {
  await client.completions.create({ model, prompt: 'x', temperature: 5 });
  check(false, 'temperature 5 accepted');
} catch (e) {
  check(e instanceof BadRequestError, `BadRequestError expected, got ${e?.constructor?.name}`);
  eq(e.status, 400, 'status');
  eq(e.param, 'temperature', 'param');
}
try {
  await client.completions.create({ model: 'no-such-model', prompt: 'x' });
  check(false, 'unknown model accepted');
} catch (e) {
  check(e instanceof NotFoundError, `NotFoundError expected, got ${e?.constructor?.name}`);
}
try {
  await client.chat.completions.create({ model, messages: [] });
  check(false, 'empty messages accepted');
} catch (e) {
  check(e instanceof BadRequestError, `BadRequestError expected, got ${e?.constructor?.name}`);
}
ok('error classes');
console.log('ALL OK');
