// The storage and kernel flags (--weight-dtype, --kv-dtype, --cpu-isa, --attention-backend) of every binary that builds
// EngineOptions from a command line: the server, bench and bptserve-generate. One help text each,
// and the spellings are engine_options' own (ParseElementType, ParseCpuIsa), so a value means the
// same everywhere. Header-only: only binaries that already link CLI11 include it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "engine_options.h"

namespace bpt {
namespace flags_internal {

// A flag whose value is one of an enum's spellings, bound to *out; any other value stops the
// command line with "--flag: 'value' is not one of a, b, c".
template <typename Enum>
CLI::Option* AddEnumFlag(CLI::App& app, const std::string& name, const std::string& help, Enum last,
                         bool (*parse)(std::string_view, Enum*), const char* (*spell)(Enum), Enum* out) {
  std::string names;
  for (int i = 0; i <= static_cast<int>(last); ++i) names += (i > 0 ? ", " : "") + std::string(spell(static_cast<Enum>(i)));
  CLI::Validator one_of(
      [parse, names](std::string& value) {
        Enum parsed;
        return parse(value, &parsed) ? std::string() : "'" + value + "' is not one of " + names;
      },
      names);
  return app.add_option_function<std::string>(name, [parse, out](const std::string& value) { parse(value, out); }, help)
      ->check(one_of)
      ->default_str(spell(*out));
}

}  // namespace flags_internal

inline void AddStorageFlags(CLI::App& app, EngineOptions* options) {
  using flags_internal::AddEnumFlag;
  AddEnumFlag(app, "--weight-dtype",
              "How the weights are stored: auto (the device's own: fp32 on the CPU, the exact reference; bf16 on "
              "CUDA), fp32, or bf16 (half the weight bytes read per decoded token). CUDA takes only auto or bf16",
              ElementType::kBFloat16, ParseElementType, ElementTypeName, &options->weight_dtype);
  AddEnumFlag(app, "--kv-dtype",
              "How the KV cache is stored: auto (fp32 on the CPU, the exact reference; bf16 on CUDA), fp32, or bf16 "
              "(half the bytes per cached token: twice the context in the same memory). CUDA takes only auto or bf16",
              ElementType::kBFloat16, ParseElementType, ElementTypeName, &options->kv_dtype);
  AddEnumFlag(app, "--cpu-isa",
              "Instruction set of the CPU kernels: auto (the best this CPU has), portable, avx2, avx512 or "
              "avx512-bf16 (bf16 weights meet activations rounded to bf16 in dot products: every product on AMD, one-row products on Intel); a level the CPU lacks fails at load",
              CpuIsa::kAvx512Bf16, ParseCpuIsa, CpuIsaName, &options->cpu.isa);
  AddEnumFlag(app, "--attention-backend",
              "Attention kernels on CUDA: auto (cuDNN's SDPA when libcudnn.so.9 loads and supports the model's shape, "
              "else the own kernels), cudnn (cuDNN or a load error), or own. GetModelInfo's attention_kernels names "
              "the choice; the CPU has only its own",
              AttentionBackend::kOwn, ParseAttentionBackend, AttentionBackendName, &options->cuda.attention_backend);
}

}  // namespace bpt
