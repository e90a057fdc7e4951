// Subcommands of the one `moe` binary. Each takes the arguments after its name and returns the
// process exit code (0 ok, 1 runtime failure, 2 usage error).
#ifndef MOE_TOOLS_COMMANDS_H_
#define MOE_TOOLS_COMMANDS_H_

namespace moe::tools {

int RunVersion(int argc, const char* const* argv);  // tools/moe_main.cc
int RunDemoModel(int argc, const char* const* argv);  // tools/cmd_demo_model.cc
int RunInspect(int argc, const char* const* argv);    // tools/cmd_inspect.cc
int RunAttention(int argc, const char* const* argv);  // tools/cmd_attention.cc
int RunUp(int argc, const char* const* argv);         // tools/cmd_up.cc
int RunGenerate(int argc, const char* const* argv);  // tools/cmd_generate.cc
int RunBench(int argc, const char* const* argv);     // tools/cmd_bench.cc
int RunExpert(int argc, const char* const* argv);    // tools/cmd_expert.cc
int RunGateway(int argc, const char* const* argv);   // tools/cmd_gateway.cc
int RunScheduler(int argc, const char* const* argv);  // tools/cmd_scheduler.cc
int RunLoadgen(int argc, const char* const* argv);    // tools/cmd_loadgen.cc
int RunPlace(int argc, const char* const* argv);      // tools/cmd_place.cc

}  // namespace moe::tools

#endif  // MOE_TOOLS_COMMANDS_H_
