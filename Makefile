# Catzilla: one non-recursive Makefile.
#   make [all]            build/catzilla and build/libcatzilla.a
#   make test             install missing deps, build, run every Criterion test
#   make run              install missing deps, build, serve on :8080
#   make bench | fuzz | container-test | fmt | clean | deps
# Options: ALLOCATOR=jemalloc|libc  SANITIZE=address,undefined  DEBUG=1  WERROR=1  V=1
#          LLHTTP_DIR=<dir with llhttp.c api.c http.c>  LLHTTP_INC=<dir with llhttp.h>

ALLOCATOR  ?= jemalloc
SANITIZE   ?=
DEBUG      ?=
WERROR     ?=
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
CC         ?= cc

ifeq ($(filter $(ALLOCATOR),jemalloc libc),)
$(error ALLOCATOR must be jemalloc or libc, not '$(ALLOCATOR)')
endif

# Each variant builds into its own directory so switching options never mixes objects.
SUFFIX  := $(if $(SANITIZE),-san)$(if $(DEBUG),-debug)$(if $(FAULT),-fault)
VARIANT := $(if $(filter libc,$(ALLOCATOR)),libc)$(SUFFIX)
BUILD   := build$(if $(VARIANT),/$(patsubst -%,%,$(VARIANT)))

ifeq ($(DEBUG),1)
CFLAGS ?= -O0 -g3
else
CFLAGS ?= -O2 -g
endif
override CFLAGS += -std=gnu11 -D_GNU_SOURCE -pthread \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
	-MMD -MP -Iinclude -Isrc -I$(LLHTTP_INC)
override CFLAGS += $(if $(WERROR),-Werror)
override CFLAGS += $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)
override CFLAGS += $(if $(FAULT),-DCZ_FAULT_INJECTION=1)
# Debug and sanitizer builds count each kind's live bytes and report memory a
# request or connection left behind (see catzilla_memory_live_bytes).
override CFLAGS += $(if $(or $(DEBUG),$(SANITIZE)),-DCZ_LEAK_CHECK=1)
override LDFLAGS += -pthread $(if $(SANITIZE),-fsanitize=$(SANITIZE))

ifeq ($(ALLOCATOR),jemalloc)
override CFLAGS += -DCZ_ALLOCATOR_JEMALLOC=1
# jemalloc is linked statically: the shared library drags in libstdc++ and
# libgcc_s (for its C++ operators), about 1.3 MiB of RSS per process that a C
# server never uses.  Sanitizer builds keep the shared library, because a
# static malloc would shadow the sanitizer's own.
ifeq ($(SANITIZE),)
LIBS := -luring -Wl,-Bstatic -ljemalloc_pic -Wl,-Bdynamic -lm
override LDFLAGS += -static-libgcc
else
LIBS := -luring -ljemalloc
endif
else
override CFLAGS += -DCZ_ALLOCATOR_LIBC=1
LIBS := -luring
endif

# llhttp is compiled from Debian's node-llhttp sources (never copied into this repo),
# with warnings relaxed because it is not our code.
LLHTTP_SRC := $(LLHTTP_DIR)/llhttp.c $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c
LLHTTP_OBJ := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o

LIB_SRC  := $(sort $(wildcard src/core/*.c src/http/*.c src/fs/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
LIB      := $(BUILD)/libcatzilla.a
BIN      := $(BUILD)/catzilla

SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/support/*.c)))
UNIT_BIN    := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(sort $(wildcard tests/unit/*.c)))
INTEG_BIN   := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(sort $(wildcard tests/integration/*.c)))
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(sort $(wildcard examples/*.c)))
TEST_BIN    := $(UNIT_BIN) $(INTEG_BIN)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all test check run bench fuzz container-test fmt clean deps deps-test deps-run
# Objects are intermediate to the pattern rules; keep them for incremental builds.
.SECONDARY:
all: $(BIN) $(LIB) $(EXAMPLE_BIN)

$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(filter-out -W%,$(CFLAGS)) -w -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The dashboard page is assembled into its object (.incbin).
$(BUILD)/src/http/dashboard.o: src/http/dashboard.html

$(LIB): $(LIB_OBJ) $(LLHTTP_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(MAIN_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(SUPPORT_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(SUPPORT_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

# make test: dependencies, build, then every test binary; the memory API tests
# also run against the libc build so both allocators keep one contract.
LIBC_MEMTEST := $(if $(filter jemalloc,$(ALLOCATOR)),build/libc$(SUFFIX)/tests/unit/test_memory)
test: deps-test
	$(Q)$(MAKE) --no-print-directory all-tests
ifneq ($(LIBC_MEMTEST),)
	$(Q)$(MAKE) --no-print-directory ALLOCATOR=libc $(LIBC_MEMTEST)
endif
	$(Q)CATZILLA_BIN=$(BIN) scripts/run-tests.sh $(TEST_BIN) $(LIBC_MEMTEST)

.PHONY: all-tests
all-tests: $(BIN) $(LIB) $(TEST_BIN) $(EXAMPLE_BIN)

check: test

deps-test:
	$(Q)scripts/deps.sh test
deps-run:
	$(Q)scripts/deps.sh run
deps:
	$(Q)scripts/deps.sh all

run: deps-run
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(BIN) $(ARGS)

bench: deps
	$(Q)$(MAKE) --no-print-directory $(BIN)
	bench/run.sh $(BENCH_ARGS)

container-test:
	scripts/container-test.sh

FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

fmt:
	clang-format -i $(shell find include src tests examples -name '*.[ch]')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
