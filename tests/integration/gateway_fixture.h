// Shared by the gateway integration tests: a real `moe attention` worker and a real
// `moe gateway` on 127.0.0.1 with run-time ports (both stopped by pid when the object goes
// away), a copy of the golden tiny-mixtral folder with a ChatML chat template, and parsers for
// Server-Sent Events and Prometheus text.
#ifndef MOE_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
#define MOE_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/testing/child_process.h"

namespace moe::test_util {

inline std::string GoldenMixtral() { return std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral"; }

inline const char kChatMlTemplate[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

// A temporary copy of golden tiny-mixtral hf-f32 (weights linked) whose tokenizer_config.json
// has a ChatML chat_template. Removed on destruction.
class ChatModelDir {
 public:
  ChatModelDir() {
    char tmpl[] = "/tmp/moe-gw-model-XXXXXX";
    root_ = mkdtemp(tmpl);
    dir_ = root_ + "/hf-f32";
    const std::string src = GoldenMixtral() + "/hf-f32";
    std::filesystem::create_directories(dir_);
    for (const auto& e : std::filesystem::directory_iterator(src)) {
      const std::string name = e.path().filename().string();
      if (name == "model.safetensors") {
        std::filesystem::create_symlink(e.path(), dir_ + "/" + name);
      } else {
        std::filesystem::copy_file(e.path(), dir_ + "/" + name);
      }
    }
    std::ifstream in(dir_ + "/tokenizer_config.json");
    nlohmann::json tc = nlohmann::json::parse(in);
    tc["chat_template"] = kChatMlTemplate;
    std::ofstream(dir_ + "/tokenizer_config.json") << tc.dump(2);
  }
  ~ChatModelDir() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string root_;
  std::string dir_;
};

// `moe attention` + `moe gateway` on `model_dir`.
class GatewayCluster {
 public:
  // Returns "" on success, else what failed.
  std::string Start(const std::string& model_dir, std::vector<std::string> gateway_args = {},
                    std::vector<std::string> worker_args = {}) {
    std::vector<std::string> w = {MoeBin(),       "attention", "--model",     model_dir,
                                  "--host",       "127.0.0.1", "--port",      "0",
                                  "--admin-port", "0",         "--log-level", "warn"};
    w.insert(w.end(), worker_args.begin(), worker_args.end());
    worker_ = std::make_unique<ChildProcess>(w);
    worker_address_ = worker_->WaitForLine("listening on ", std::chrono::seconds(60));
    if (worker_address_.empty()) return "moe attention did not start";
    std::vector<std::string> g = {MoeBin(),        "gateway", "--model",   model_dir, "--attention",
                                  worker_address_, "--host",  "127.0.0.1", "--port",  "0",
                                  "--log-level",   "warn"};
    g.insert(g.end(), gateway_args.begin(), gateway_args.end());
    gateway_ = std::make_unique<ChildProcess>(g);
    const std::string addr = gateway_->WaitForLine("listening on ", std::chrono::seconds(60));
    if (addr.empty()) return "moe gateway did not start";
    port_ = PortOf(addr);
    return "";
  }
  // Exit codes of the gateway and the worker (0 and 0 for a clean stop).
  std::pair<int, int> Stop() {
    int g = gateway_ ? gateway_->Stop() : 0;
    int w = worker_ ? worker_->Stop() : 0;
    return {g, w};
  }
  int port() const { return port_; }
  ChildProcess& gateway() { return *gateway_; }
  ChildProcess& worker() { return *worker_; }

 private:
  std::unique_ptr<ChildProcess> worker_;
  std::unique_ptr<ChildProcess> gateway_;
  std::string worker_address_;
  int port_ = 0;
};

// The `data:` payloads of an SSE body, parsed as JSON; `[DONE]` is returned as the string
// "[DONE]". Anything that is not an SSE line makes the result contain a string "BAD: <line>".
inline std::vector<nlohmann::json> SseEvents(const std::string& body) {
  std::vector<nlohmann::json> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("data: ", 0) != 0) {
      out.push_back("BAD: " + line);
      continue;
    }
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      out.push_back("[DONE]");
      continue;
    }
    nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
    out.push_back(j.is_discarded() ? nlohmann::json("BAD: " + line) : j);
  }
  return out;
}

// The value of the sample `name` (with labels, e.g. `x{a="b"}`) in Prometheus text, or -1.
inline double MetricValue(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

}  // namespace moe::test_util

#endif  // MOE_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
