// Conformance of model/jinja with @huggingface/jinja (the JavaScript Jinja port of Hugging
// Face, pinned in tests/npm/package-lock.json) on real chat templates (testdata/*.jinja) over
// the conversations of testdata/conversations.json: every rendering must be the identical
// string, and a conversation the template rejects with raise_exception must raise the same
// message in both. Runs node through popen; skips when node or tests/npm/node_modules is
// missing (scripts/install-deps.sh installs both; CI has them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/file.h"
#include "model/jinja/template.h"
#include "tests/testing/command.h"

namespace moe::model::jinja {
namespace {

using nlohmann::ordered_json;
namespace fs = std::filesystem;

const std::string kNpmDir = std::string(MOE_SOURCE_DIR) + "/tests/npm";
const std::string kTestdata = std::string(MOE_SOURCE_DIR) + "/model/jinja/testdata";

// Runs a shell command; returns its stdout and sets *exit_code.
std::string RunCommand(const std::string& command, int* exit_code) {
  test_util::CommandResult r = test_util::RunCommand(command);
  *exit_code = r.exit_code;
  return r.output;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

struct Request {
  std::string name;  // case/template
  std::string template_name;
  std::string source;
  ordered_json context;
};

std::vector<Request> LoadRequests() {
  const ordered_json doc =
      ordered_json::parse(ReadFile(kTestdata + "/conversations.json").value_or(""));
  std::vector<Request> requests;
  for (const auto& c : doc.at("cases")) {
    for (const auto& t : c.at("templates")) {
      const std::string name = t.get<std::string>();
      const auto& info = doc.at("templates").at(name);
      Request r;
      r.name = c.at("name").get<std::string>() + "/" + name;
      r.template_name = name;
      r.source = ReadFile(kTestdata + "/" + info.at("file").get<std::string>()).value_or("");
      r.context = ordered_json::object();
      r.context["bos_token"] = info.at("bos_token");
      r.context["eos_token"] = info.at("eos_token");
      for (auto it = c.at("context").begin(); it != c.at("context").end(); ++it) {
        r.context[it.key()] = it.value();
      }
      requests.push_back(std::move(r));
    }
  }
  return requests;
}

// Runs tests/npm/jinja_render.mjs on `js_requests`; returns its results, or a null json and
// sets *skip when node or the npm modules are missing.
ordered_json RunReference(const ordered_json& js_requests, std::string* skip) {
  int code = 0;
  std::string node = RunCommand("command -v node", &code);
  while (!node.empty() && (node.back() == '\n' || node.back() == '\r')) node.pop_back();
  if (code != 0 || node.empty()) {
    *skip = "node is not installed (scripts/install-deps.sh)";
    return nullptr;
  }
  if (!fs::exists(kNpmDir + "/node_modules/@huggingface/jinja/package.json")) {
    *skip = "tests/npm/node_modules is missing: run npm ci in tests/npm";
    return nullptr;
  }
  const fs::path input =
      fs::temp_directory_path() / ("moe_jinja_npm_" + std::to_string(getpid()) + ".json");
  const fs::path stderr_path =
      fs::temp_directory_path() / ("moe_jinja_npm_stderr_" + std::to_string(getpid()) + ".txt");
  std::ofstream(input, std::ios::binary) << js_requests.dump();
  const std::string out =
      RunCommand(Quote(node) + " " + Quote(kNpmDir + "/jinja_render.mjs") + " " +
                     Quote(input.string()) + " 2>" + Quote(stderr_path.string()),
                 &code);
  fs::remove(input);
  EXPECT_EQ(code, 0) << "node failed: " << ReadFile(stderr_path.string()).value_or("");
  fs::remove(stderr_path);
  ordered_json reference = ordered_json::parse(out, nullptr, false);
  EXPECT_TRUE(reference.is_array()) << out.substr(0, 500);
  EXPECT_EQ(reference.size(), js_requests.size());
  if (!reference.is_array() || reference.size() != js_requests.size()) return ordered_json();
  return reference;
}

TEST(JinjaNpmConformanceTest, RealChatTemplatesMatchHuggingFaceJinja) {
  const std::vector<Request> requests = LoadRequests();
  ASSERT_GE(requests.size(), 80u);
  ordered_json js_requests = ordered_json::array();
  for (const Request& r : requests) {
    js_requests.push_back({{"template", r.source}, {"context", r.context}});
  }
  std::string skip;
  const ordered_json reference = RunReference(js_requests, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(reference.is_array());

  std::map<std::string, std::pair<int, int>> per_template;  // matched, total
  int mismatches = 0;
  int rendered = 0;
  int raised = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    const ordered_json& js = reference[i];
    auto tmpl = Template::Parse(r.source);
    ASSERT_TRUE(tmpl.ok()) << r.name << ": " << tmpl.status();
    auto ours = tmpl->Render(r.context);
    bool match;
    if (js.at("ok").get<bool>()) {
      match = ours.ok() && *ours == js.at("output").get<std::string>();
      rendered += match ? 1 : 0;
    } else {
      match =
          !ours.ok() && std::string(ours.status().message()) == js.at("error").get<std::string>();
      raised += match ? 1 : 0;
    }
    auto& counts = per_template[r.template_name];
    counts.second += 1;
    counts.first += match ? 1 : 0;
    if (!match && ++mismatches <= 8) {
      ADD_FAILURE() << r.name << "\n  js:   " << js.dump() << "\n  ours: "
                    << (ours.ok() ? ordered_json(*ours).dump()
                                  : "error: " + std::string(ours.status().message()));
    }
  }
  for (const auto& [name, counts] : per_template) {
    std::printf("%-16s %d/%d conversations identical to @huggingface/jinja\n", name.c_str(),
                counts.first, counts.second);
  }
  std::printf("rendered identically: %d, raised identically: %d\n", rendered, raised);
  EXPECT_EQ(mismatches, 0);
  EXPECT_GE(raised, 6);  // Mixtral's role checks
  EXPECT_GE(rendered, 70);
}

// The language pieces of template_test.cc (literals, whitespace control, loops, macros, filters,
// tests, methods, slicing, operators) rendered by both implementations: identical output, or
// both fail.
TEST(JinjaNpmConformanceTest, LanguageCasesMatchHuggingFaceJinja) {
  const ordered_json cases =
      ordered_json::parse(ReadFile(kTestdata + "/language_cases.json").value_or(""));
  ASSERT_GE(cases.size(), 60u);
  std::string skip;
  const ordered_json reference = RunReference(cases, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(reference.is_array());
  int matched = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string source = cases[i].at("template").get<std::string>();
    auto tmpl = Template::Parse(source);
    absl::StatusOr<std::string> ours = tmpl.ok() ? tmpl->Render(cases[i].at("context"))
                                                 : absl::StatusOr<std::string>(tmpl.status());
    const ordered_json& js = reference[i];
    const bool match = js.at("ok").get<bool>()
                           ? ours.ok() && *ours == js.at("output").get<std::string>()
                           : !ours.ok();
    matched += match ? 1 : 0;
    EXPECT_TRUE(match) << "case " << i << ": " << ordered_json(source).dump()
                       << "\n  js:   " << js.dump() << "\n  ours: "
                       << (ours.ok() ? ordered_json(*ours).dump()
                                     : "error: " + std::string(ours.status().message()));
  }
  std::printf("language cases identical to @huggingface/jinja: %d/%zu\n", matched, cases.size());
}

}  // namespace
}  // namespace moe::model::jinja
