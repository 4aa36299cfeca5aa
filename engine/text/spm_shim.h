/* C API of libbptserve_spm, the one place that links Debian's libsentencepiece. That library
 * carries its own protobuf 3.14 and exports its symbols; linked beside gRPC's protobuf it aborts
 * the process at start. The engine therefore dlopen()s this shim with RTLD_LOCAL|RTLD_DEEPBIND
 * (engine/text/sentencepiece_tokenizer.cpp), and nothing else includes sentencepiece headers. */
#ifndef BPTSERVE_ENGINE_SPM_SHIM_H_
#define BPTSERVE_ENGINE_SPM_SHIM_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bpt_spm bpt_spm;

/* Returns NULL on failure and writes a message into err. */
bpt_spm* bpt_spm_load(const char* model_path, char* err, size_t err_capacity);
void bpt_spm_free(bpt_spm* spm);
int bpt_spm_vocab_size(const bpt_spm* spm);
int bpt_spm_bos_id(const bpt_spm* spm); /* -1 when the model has none */
int bpt_spm_eos_id(const bpt_spm* spm);
/* The id of the piece spelled piece[0, length); -1 when no piece is spelled so. */
int bpt_spm_piece_id(const bpt_spm* spm, const char* piece, size_t length);
/* 1 for control and unknown pieces (what HF's converted tokenizers mark special). */
int bpt_spm_is_special(const bpt_spm* spm, int id);
/* The most bytes of text one id stands for: a text of n bytes has at least n / this many ids.
 * 0 when no such bound holds (normalization may shrink the text, or <unk> may cover a run). */
int bpt_spm_max_piece_bytes(const bpt_spm* spm);
/* 1 when a text cut just before a ' ' that follows another character encodes as the ids of its
 * parts, concatenated (the part after the cut encoded as the continuation of a text); 0 when
 * the model cannot promise it. */
int bpt_spm_splits_before_spaces(const bpt_spm* spm);
/* Encodes text without BOS/EOS. Writes up to capacity ids; returns how many the text needs,
 * or -1 on error. */
long bpt_spm_encode(const bpt_spm* spm, const char* text, size_t length, int* ids, size_t capacity);
/* Decodes ids to UTF-8. Writes up to capacity bytes; returns how many the text needs, or -1 on
 * error (an id outside the vocabulary). */
long bpt_spm_decode(const bpt_spm* spm, const int* ids, size_t count, char* text, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif /* BPTSERVE_ENGINE_SPM_SHIM_H_ */
