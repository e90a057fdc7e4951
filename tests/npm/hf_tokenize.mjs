// Reference tokenization with @huggingface/tokenizers (the JavaScript port of HF tokenizers),
// used by model/tokenizer/tokenizer_npm_test.cc.
//
// Usage: node hf_tokenize.mjs TOKENIZER_JSON (TOKENIZER_CONFIG_JSON | -) CORPUS_JSON
// CORPUS_JSON holds an array of strings. Prints one JSON array with, per string:
//   ids      encode(text) with add_special_tokens = true
//   plain    encode(text) with add_special_tokens = false
//   decoded  decode(plain, skip_special_tokens = true), without clean-up of spaces
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const [tokenizerPath, configPath, corpusPath] = process.argv.slice(2);
if (!corpusPath) {
  console.error("usage: node hf_tokenize.mjs TOKENIZER_JSON (CONFIG_JSON|-) CORPUS_JSON");
  process.exit(2);
}
const tokenizerJson = JSON.parse(readFileSync(tokenizerPath, "utf8"));
const config = configPath === "-" ? {} : JSON.parse(readFileSync(configPath, "utf8"));
// Compare the tokenizers-level decode, not transformers' optional clean-up pass.
config.clean_up_tokenization_spaces = false;
const tokenizer = new Tokenizer(tokenizerJson, config);
const corpus = JSON.parse(readFileSync(corpusPath, "utf8"));

const results = corpus.map((text) => {
  const ids = tokenizer.encode(text, { add_special_tokens: true }).ids;
  const plain = tokenizer.encode(text, { add_special_tokens: false }).ids;
  const decoded =
    plain.length > 0
      ? tokenizer.decode(plain, { skip_special_tokens: true, clean_up_tokenization_spaces: false })
      : "";
  return { ids, plain, decoded };
});
process.stdout.write(JSON.stringify(results));
