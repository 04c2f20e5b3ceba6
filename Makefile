# cmt — container migration tool.  `make` builds build/cmt.
#   make deps     install build/run/test dependencies (Debian, root), CRIU >= 4.2
#   make check    deps + build + unit tests (plain and ASan/UBSan) + fuzz smoke + integration tests
#   make demo     deps + build + a live migration between two lab hosts
#   make install  install build/cmt to $(PREFIX)/bin
CC ?= cc
PREFIX ?= /usr/local
CRIU_PREFIX ?= $(CURDIR)/.deps/criu
CRIU_INC := $(CRIU_PREFIX)/usr/include
CRIU_LIB := $(CRIU_PREFIX)/usr/lib/x86_64-linux-gnu
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation -Wmissing-prototypes -Wstrict-prototypes
CFLAGS ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -DXXH_STATIC_LINKING_ONLY -Isrc -I$(CRIU_INC) -DCMT_VERSION='"$(VERSION)"' -DCMT_CRIU_PREFIX='"$(CRIU_PREFIX)"'
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -MMD -MP
LIBS := $(CRIU_LIB)/libcriu.a -lprotobuf-c -ljansson -larchive -lxxhash -lzstd -lm -pthread

SRCS := $(wildcard src/*.c src/*/*.c)
OBJS := $(SRCS:%.c=build/obj/%.o)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=build/obj/%.o)
SAN_OBJS := $(LIB_SRCS:%.c=build/obj-san/%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
UNIT_SAN_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests-san/%)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all deps check unit unit-san fuzz-smoke integration demo install clean bench

all: build/cmt

build/cmt: $(OBJS)
	@echo "  LD $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $(OBJS) $(LIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

build/obj-san/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC [san] $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -O1 $(SAN) -c -o $@ $<

build/libcmt.a: $(LIB_OBJS)
	@rm -f $@
	@ar rcs $@ $^

build/libcmt-san.a: $(SAN_OBJS)
	@rm -f $@
	@ar rcs $@ $^

build/tests/%: tests/unit/%.c build/libcmt.a tests/unit/tap.h
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -o $@ $< build/libcmt.a $(LIBS)

build/tests-san/%: tests/unit/%.c build/libcmt-san.a tests/unit/tap.h
	@mkdir -p $(dir $@)
	@echo "  CC [san] $<"
	@$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -O1 $(SAN) -o $@ $< build/libcmt-san.a $(LIBS)

deps:
	bash scripts/deps.sh

unit: $(UNIT_BINS)
	@bash tests/run-unit.sh $(UNIT_BINS)

unit-san: $(UNIT_SAN_BINS)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 bash tests/run-unit.sh $(UNIT_SAN_BINS)

fuzz-smoke:
	@bash tests/fuzz/run.sh smoke

integration: build/cmt
	@bash tests/run-integration.sh

check: deps
	$(MAKE) all
	$(MAKE) unit unit-san fuzz-smoke
	$(MAKE) integration

demo: deps
	$(MAKE) all
	bash demo/demo.sh

bench: deps
	$(MAKE) all
	bash bench/bench.sh

install: build/cmt
	install -D -m 0755 build/cmt $(DESTDIR)$(PREFIX)/bin/cmt

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(SAN_OBJS:.o=.d)
