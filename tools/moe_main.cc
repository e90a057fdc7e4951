// The `moe` binary: one subcommand per role and tool (DESIGN.md section 2).
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/commands.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int, const char* const*);
};

constexpr Command kCommands[] = {
    {"up", "run the whole system on this machine (all roles on loopback)", moe::tools::RunUp},
    {"attention", "serve an attention worker (gRPC Generate)", moe::tools::RunAttention},
    {"generate", "generate a completion with the single-process engine", moe::tools::RunGenerate},
    {"bench", "measure single-process prompt and decode throughput", moe::tools::RunBench},
    {"demo-model", "write a deterministic random-weight demo model (HF format)",
     moe::tools::RunDemoModel},
    {"inspect", "describe a model folder: config, weights, tokenizer", moe::tools::RunInspect},
    {"expert", "serve a set of (layer, expert) FFNs over gRPC", moe::tools::RunExpert},
    {"scheduler", "serve expert placement plans, membership and load stats",
     moe::tools::RunScheduler},
    {"gateway", "serve the OpenAI-compatible HTTP API", moe::tools::RunGateway},
    {"loadgen", "benchmark client: concurrent Generate calls to an attention worker",
     moe::tools::RunLoadgen},
    {"place", "plan expert placement offline from a load trace (greedy vs ILP)",
     moe::tools::RunPlace},
    {"version", "print the version", moe::tools::RunVersion},
};

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "usage: moe <command> [flags]\n\n"
               "A disaggregated Mixture-of-Experts serving system.\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
  std::fprintf(out, "\n'moe <command> --help' describes a command's flags.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(stdout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (name == c.name) return c.run(argc - 2, argv + 2);
  }
  std::fprintf(stderr, "moe: unknown command '%s'\n\n", name.c_str());
  PrintUsage(stderr);
  return 2;
}

namespace moe::tools {
int RunVersion(int argc, const char* const* argv) {
  std::printf("moe 0.1.0\n");
  return argc == 0 ? 0 : 2;
}
}  // namespace moe::tools
