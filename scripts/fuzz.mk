# fuzz.mk: libFuzzer (clang) on the safetensors parser, for a bounded time.
#   make fuzz                     60 s
#   make fuzz FUZZ_TIME=600       longer (FUZZ_JOBS=2: two processes, logs in build/fuzz/fuzz-*.log)
# Builds into build/fuzz; the corpus grows in build/fuzz/corpus (seeded with a few
# valid and invalid files written here); crashes land in build/fuzz/crash-*.
# Not part of make test / CI.
CLANG     ?= clang
FUZZ_TIME ?= 60
FUZZ_JOBS ?= 1
FZ        := build/fuzz
FZ_CFLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags libcjson) \
             -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wall -Wextra
FZ_LIBS   := $(shell pkg-config --libs libcjson) -lm

.PHONY: fuzz
fuzz: $(FZ)/fuzz_safetensors $(FZ)/corpus/.seeded
	cd $(FZ) && ./fuzz_safetensors -max_total_time=$(FUZZ_TIME) $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) \
	    -dict=safetensors.dict -print_final_stats=1 -artifact_prefix=./ corpus

$(FZ)/fuzz_safetensors: tests/fuzz_safetensors.c src/safetensors.c src/safetensors.h src/status.c src/status.h scripts/fuzz.mk
	@mkdir -p $(FZ)
	$(CLANG) $(FZ_CFLAGS) -o $@ tests/fuzz_safetensors.c src/safetensors.c src/status.c $(FZ_LIBS)

# Seeds: an 8-byte length, a JSON header, data bytes (printf with octal escapes, as dash's printf has no \x,
# keeps binary files out of git).
$(FZ)/corpus/.seeded: scripts/fuzz.mk
	@mkdir -p $(FZ)/corpus
	@printf '\070\0\0\0\0\0\0\0{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  \0\0\200\077\0\0\0\300' > $(FZ)/corpus/f32
	@printf '\130\0\0\0\0\0\0\0{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]}}\200\077\001\200' > $(FZ)/corpus/bf16
	@printf '\160\0\0\0\0\0\0\0{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"d":{"dtype":"F64","shape":[],"data_offsets":[4,12]}}     \001\0\0\174\0\0\0\0\0\0\360\077' > $(FZ)/corpus/f16f64
	@printf '\070\0\0\0\0\0\0\0{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}  \007\0\0\0\0\0\0\0' > $(FZ)/corpus/i64
	@printf '\010\0\0\0\0\0\0\0{}      ' > $(FZ)/corpus/empty
	@printf '"dtype"\n"shape"\n"data_offsets"\n"__metadata__"\n"F32"\n"F16"\n"BF16"\n"F64"\n"I64"\n"U8"\n"BOOL"\n"F8_E4M3"\n"1e400"\n"-1"\n"18446744073709551616"\n"4294967296"\n' > $(FZ)/safetensors.dict
	@touch $@
