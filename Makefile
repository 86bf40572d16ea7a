# LoRA subspace toolkit: build, test, demo.
#   make            library + tools into bin/
#   make deps       installs the missing Debian packages (scripts/deps.sh; apt-get as root)
#   make test       every unit and CLI test (runs make deps first)
#   make test SANITIZE=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       the main job on the shipped data and model (runs make deps first)
#   make base       re-creates data/base.h5 (about an hour on 2 cores)
#   make fuzz       libFuzzer on the safetensors parser, bounded time (not in CI)
#   make clean      removes build/ and bin/
#   make MPI=0 BUILD=build/nompi   the same tools without MPI (see src/mpi_env.h)
# Every src/*.c goes into the library; every tools/lora-NAME.c becomes bin/lora-NAME;
# every tests/test_*.c becomes a cmocka test binary; tests/cli_*.sh are CLI tests.

.DEFAULT_GOAL := all
PKGS    := openblas lapacke hdf5 cmocka libcjson libpcre2-8
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

# build/config.mk holds the pkg-config flags, and MPI's when mpicc is there. Generating it installs nothing: with a
# package missing it stops and names `make deps`. The set-up goals (test, demo, base)
# run `make deps` first, so that `make demo` and `make test` work on a fresh Debian 12;
# clean and deps read no configuration. GNU make restarts after remaking an included file;
# the file is only rewritten when its contents change, so objects depending on it are not
# rebuilt by a rerun of deps.
SETUP_GOALS := test demo base
NOCONF_GOALS := clean deps fuzz
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(NOCONF_GOALS),$(MAKECMDGOALS)),)
NO_CONFIG := 1
endif
endif
ifndef NO_CONFIG
include build/config.mk
endif
# MPI (src/mpi_env.h): compiled in when build/config.mk found OpenMPI's mpicc (its
# --showme flags, with the plain compiler); MPI=0 builds without it (use another BUILD).
ifeq ($(MPI),0)
MPI_CFLAGS :=
MPI_LIBS :=
endif
DEP_CFLAGS += $(MPI_CFLAGS)
DEP_LIBS += $(MPI_LIBS)
build/config.mk: scripts/deps.sh $(if $(filter $(SETUP_GOALS),$(MAKECMDGOALS)),deps)
	@sh scripts/deps.sh --check || { echo "make: run 'make deps' (as root) to install them" >&2; exit 1; }
	@mkdir -p build
	@{ echo "DEP_CFLAGS := $$(pkg-config --cflags $(PKGS))"; \
	   echo "DEP_LIBS := $$(pkg-config --libs $(PKGS)) -lm -lpthread"; \
	   if command -v mpicc >/dev/null 2>&1 && mpicc --showme:compile >/dev/null 2>&1; then \
	     echo "MPI_CFLAGS := $$(mpicc --showme:compile) -DLK_HAVE_MPI=1"; \
	     echo "MPI_LIBS := $$(mpicc --showme:link)"; \
	   else echo "MPI_CFLAGS :="; echo "MPI_LIBS :="; fi; } > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

deps:
	@sh scripts/deps.sh

LIB_SRC   := $(wildcard src/*.c)
LIB_OBJ   := $(LIB_SRC:src/%.c=$(O)/obj/%.o)
LIB       := $(O)/liblora.a
TOOL_SRC  := $(wildcard tools/lora-*.c)
TOOLS     := $(TOOL_SRC:tools/%.c=$(BIN)/%)
TEST_SRC  := $(wildcard tests/test_*.c)
TESTS     := $(TEST_SRC:tests/%.c=$(O)/tests/%)
# -MMD -MP: each compile writes the headers it read to a .d file next to its output
# (tools' and tests' under $(O)/dep), included below; -MP adds empty rules for the
# headers so that removing one does not break the build.
DEPFLAGS   = -MMD -MP -MF $(O)/dep/$(notdir $@).d -MT $@

.PHONY: all test demo base fuzz clean deps
all: $(LIB) $(TOOLS)

$(O)/obj/%.o: src/%.c $(O)/dep/%.o.d build/config.mk
	@mkdir -p $(dir $@) $(O)/dep
	$(CC) $(CFLAGS) $(DEP_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: tools/%.c $(O)/dep/%.d $(LIB) build/config.mk
	@mkdir -p $(dir $@) $(O)/dep
	$(CC) $(CFLAGS) $(DEP_CFLAGS) $(DEPFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(DEP_LIBS)

$(O)/tests/%: tests/%.c $(O)/dep/%.d $(LIB) build/config.mk
	@mkdir -p $(dir $@) $(O)/dep
	$(CC) $(CFLAGS) $(DEP_CFLAGS) $(DEPFLAGS) -Itests -o $@ $< $(LIB) $(LDFLAGS) $(DEP_LIBS)

# Each .d is named as an explicit target without a recipe: a missing one (a first build,
# or output made before the .d files existed) counts as changed, so its output rebuilds.
DEPFILES := $(LIB_OBJ:$(O)/obj/%=$(O)/dep/%.d) $(TOOLS:$(BIN)/%=$(O)/dep/%.d) $(TESTS:$(O)/tests/%=$(O)/dep/%.d)
$(DEPFILES):
-include $(wildcard $(DEPFILES))

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
