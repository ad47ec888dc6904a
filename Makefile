# Catzilla: one non-recursive Makefile.
#   make [all]            build/catzilla, the libraries, the man page, the examples
#   make test             install missing deps, build, run every Criterion test
#   make run              install missing deps, build, serve on :8080
#   make install          PREFIX=/usr/local DESTDIR= (binary, libraries, headers,
#                         catzilla.pc, man page, default docroot)
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
PREFIX     ?= /usr/local
DESTDIR    ?=

# The library's version comes from its public header; the soname changes
# with the major version (0: every minor release may break the ABI).
VERSION := $(shell sed -n 's/^\#define CATZILLA_VERSION "\(.*\)"/\1/p' include/catzilla/catzilla.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))$(if $(filter 0.%,$(VERSION)),.$(word 2,$(subst ., ,$(VERSION))))

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
# The shared library and programs linked with the installed libraries use the
# shared jemalloc: a process has one malloc, the program's choice.
PUBLIC_LIBS := -luring -ljemalloc -lm
else
override CFLAGS += -DCZ_ALLOCATOR_LIBC=1
LIBS := -luring
PUBLIC_LIBS := -luring
endif

# llhttp is compiled from Debian's node-llhttp sources (never copied into this repo),
# with warnings relaxed because it is not our code.
LLHTTP_SRC := $(LLHTTP_DIR)/llhttp.c $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c
LLHTTP_OBJ := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o

LIB_SRC  := $(sort $(wildcard src/core/*.c src/http/*.c src/fs/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
# LIB: every object with its internals visible, for the binary, the tests and
# the fuzz harness.  The installed libraries show the public API only (CZ_API).
LIB      := $(BUILD)/internal/libcatzilla-internal.a
PUB_A    := $(BUILD)/libcatzilla.a
PUB_SO   := $(BUILD)/libcatzilla.so.$(VERSION)
SONAME   := libcatzilla.so.$(SOMAJOR)
PC       := $(BUILD)/catzilla.pc
MAN      := $(BUILD)/catzilla.1
BIN      := $(BUILD)/catzilla
STAGE    := $(BUILD)/stage

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

.PHONY: all test check run install bench fuzz container-test fmt clean deps deps-test deps-run
# Objects are intermediate to the pattern rules; keep them for incremental builds.
.SECONDARY:
all: $(BIN) $(LIB) $(PUB_A) $(PUB_SO) $(PC) $(MAN) $(EXAMPLE_BIN)

# Library objects are position-independent (they go into the shared library)
# and hide every symbol that is not CZ_API.  -fno-semantic-interposition keeps
# the library's calls to its own public functions direct.
$(LIB_OBJ) $(LLHTTP_OBJ): override CFLAGS += -fPIC -fvisibility=hidden -fno-semantic-interposition

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
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# The installed static library: one relocatable object in which every hidden
# symbol (internals, llhttp) is made local, so only CZ_API can clash with a
# program's own names.
$(PUB_A): $(LIB_OBJ) $(LLHTTP_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)ld -r -o $(BUILD)/catzilla-public.o $^ \
	 && objcopy --localize-hidden $(BUILD)/catzilla-public.o \
	 && rm -f $@ && ar rcs $@ $(BUILD)/catzilla-public.o

$(PUB_SO): $(LIB_OBJ) $(LLHTTP_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,defs $(LDFLAGS) -o $@ $^ $(PUBLIC_LIBS)
	$(Q)ln -sf $(notdir $@) $(BUILD)/$(SONAME) && ln -sf $(notdir $@) $(BUILD)/libcatzilla.so

$(PC): Makefile include/catzilla/catzilla.h
	@$(if $(Q),echo "  GEN     $@")
	$(Q)printf '%s\n' 'prefix=$(PREFIX)' 'exec_prefix=$${prefix}' 'libdir=$${exec_prefix}/lib' \
	  'includedir=$${prefix}/include' '' 'Name: catzilla' \
	  'Description: thread-per-core io_uring HTTP/1.1 server library' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lcatzilla' \
	  'Libs.private: $(PUBLIC_LIBS) -pthread' > $@

$(MAN): $(BIN)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$(BIN) --help-man > $@.tmp && mv $@.tmp $@

$(BIN): $(MAIN_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Examples use the public API only: they link the installed form of the library.
$(BUILD)/examples/%: $(BUILD)/examples/%.o $(PUB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(SUPPORT_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(SUPPORT_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

# make test: dependencies, build, then every test binary (test_install checks
# a `make install` staged in $(STAGE)); the memory API tests
# also run against the libc build so both allocators keep one contract.
LIBC_MEMTEST := $(if $(filter jemalloc,$(ALLOCATOR)),build/libc$(SUFFIX)/tests/unit/test_memory)
test: deps-test
	$(Q)$(MAKE) --no-print-directory all-tests
ifneq ($(LIBC_MEMTEST),)
	$(Q)$(MAKE) --no-print-directory ALLOCATOR=libc $(LIBC_MEMTEST)
endif
	$(Q)rm -rf $(STAGE) && $(MAKE) --no-print-directory -s install DESTDIR=$(abspath $(STAGE)) PREFIX=/usr
	$(Q)CATZILLA_BIN=$(BIN) CATZILLA_STAGE=$(abspath $(STAGE)) \
	    CATZILLA_TEST_CFLAGS="$(if $(SANITIZE),-fsanitize=$(SANITIZE))" \
	    scripts/run-tests.sh $(TEST_BIN) $(LIBC_MEMTEST)

.PHONY: all-tests
all-tests: all $(TEST_BIN)

check: test

# make install [PREFIX=/usr/local] [DESTDIR=]: what a package would ship.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include/catzilla $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/catzilla
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/catzilla
	install -m 644 $(PUB_A) $(DESTDIR)$(PREFIX)/lib/libcatzilla.a
	install -m 755 $(PUB_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(notdir $(PUB_SO)) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(notdir $(PUB_SO)) $(DESTDIR)$(PREFIX)/lib/libcatzilla.so
	install -m 644 include/catzilla/*.h $(DESTDIR)$(PREFIX)/include/catzilla/
	sed 's|^prefix=.*|prefix=$(PREFIX)|' $(PC) > $(DESTDIR)$(PREFIX)/lib/pkgconfig/catzilla.pc
	install -m 644 $(MAN) $(DESTDIR)$(PREFIX)/share/man/man1/catzilla.1
	rm -rf $(DESTDIR)$(PREFIX)/share/catzilla/public
	cp -R public $(DESTDIR)$(PREFIX)/share/catzilla/public

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
