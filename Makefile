# LoRA subspace toolkit: build, test, demo.
#   make            library + tools into bin/
#   make test       every unit and CLI test (installs missing Debian packages first)
#   make test SANITIZE=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       the main job on the shipped data and model
#   make base       re-creates data/base.h5 (about an hour on 2 cores)
#   make fuzz       libFuzzer on the safetensors parser, bounded time (not in CI)
# Every src/*.c goes into the library; every tools/lora-NAME.c becomes bin/lora-NAME;
# every tests/test_*.c becomes a cmocka test binary; tests/cli_*.sh are CLI tests.

.DEFAULT_GOAL := all
PKGS    := openblas lapacke hdf5 cmocka libcjson
CC      ?= cc
OPT     ?= -O2 -march=native
CFLAGS  := -std=c11 -g $(OPT) -Wall -Wextra -D_GNU_SOURCE -Isrc
# BUILD=build/NAME gives a private build tree (objects, tests and tools), so that
# several people can build in one checkout at once; the default puts tools in bin/.
BUILD   ?= build
ifeq ($(SANITIZE),1)
O       := $(BUILD)/san
BIN     := $(O)/bin
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
O       := $(BUILD)/rel
BIN     := $(if $(filter build,$(BUILD)),bin,$(BUILD)/bin)
endif

# build/config.mk holds the pkg-config flags; making it first runs scripts/deps.sh,
# which installs what is missing. GNU make restarts after remaking an included file.
-include build/config.mk
build/config.mk: scripts/deps.sh
	@sh scripts/deps.sh
	@mkdir -p build
	@{ echo "DEP_CFLAGS := $$(pkg-config --cflags $(PKGS))"; \
	   echo "DEP_LIBS := $$(pkg-config --libs $(PKGS)) -lm -lpthread"; } > $@.tmp && mv $@.tmp $@

LIB_SRC   := $(wildcard src/*.c)
LIB_OBJ   := $(LIB_SRC:src/%.c=$(O)/obj/%.o)
LIB       := $(O)/liblora.a
TOOL_SRC  := $(wildcard tools/lora-*.c)
TOOLS     := $(TOOL_SRC:tools/%.c=$(BIN)/%)
TEST_SRC  := $(wildcard tests/test_*.c)
TESTS     := $(TEST_SRC:tests/%.c=$(O)/tests/%)

.PHONY: all test demo base fuzz clean deps
all: $(LIB) $(TOOLS)

$(O)/obj/%.o: src/%.c $(wildcard src/*.h) build/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: tools/%.c $(LIB) $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(DEP_LIBS)

$(O)/tests/%: tests/%.c $(LIB) $(wildcard src/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) -Itests -o $@ $< $(LIB) $(LDFLAGS) $(DEP_LIBS)

test: $(LIB) $(TOOLS) $(TESTS)
	@BIN_DIR=$(BIN) TEST_DIR=$(O)/tests sh scripts/run-tests.sh

demo: all
	sh scripts/demo.sh $(BIN)

base: all
	sh scripts/make-base.sh $(BIN)

fuzz:
	$(MAKE) -f scripts/fuzz.mk

clean:
	rm -rf build bin
